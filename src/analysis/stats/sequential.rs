//! The sequential (always-valid) test that the new side's error rate exceeds the old side's: a
//! mixture likelihood ratio over rate ratios, as evidence accrues interval by interval.
//!
//! Two kinds of interval feed it: strata in which both sides served (the conditional binomial
//! of the error split, which a shared incident cannot move), and intervals after the old side
//! left, judged against the old side's history in two ways at once: a Poisson likelihood ratio
//! against a conservative upper bound of its rate (strong where the history shows no such
//! error at all), and each interval against its own stretch of that history (a conditional
//! binomial as for the strata, which pays no bound and so sees moderate increases). The two
//! evidences are combined by a union bound. Plain numbers in, numbers out.

use statrs::distribution::{ContinuousCDF, Gamma};

use super::{StatsError, Stratum, comparable, phi};

/// The alternatives of the sequential test: rate ratios (new over `tolerance` × old) that the
/// mixture gives equal weight. From ×1.25 (a regression the test can only confirm on thousands
/// of errors) to ×10,000 (errors the old pods never make: class-loading errors), evenly spread on
/// a log scale where the corpus' faults lie.
pub const MIXTURE_RATIOS: [f64; 10] = [
    1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1_000.0, 10_000.0,
];

/// Intervals in which only the new side served, judged against what the old side showed
/// earlier: its rate (errors per request, already an upper bound, see [`rate_upper_bound`]),
/// the new side's (errors, requests) in each interval, and the old side's own (errors,
/// requests) interval by interval, most recent first (see [`HISTORY_PAIRING`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KnownRate {
    /// The old side's rate the new intervals are held to, in errors per request.
    pub rate: f64,
    /// The new side's `(errors, requests)` in each interval it served alone, in time order.
    pub intervals: Vec<(f64, f64)>,
    /// The old side's `(errors, requests)` in each interval it served, most recent first.
    pub history: Vec<(f64, f64)>,
    /// How many times an interval's requests its own stretch of history holds (the rule's
    /// `history_pairing`, [`HISTORY_PAIRING`] by default).
    pub pairing: f64,
}

impl Default for KnownRate {
    fn default() -> Self {
        KnownRate {
            rate: 0.0,
            intervals: Vec::new(),
            history: Vec::new(),
            pairing: HISTORY_PAIRING,
        }
    }
}

/// How many times an interval's requests its own stretch of the old side's history holds at
/// least: each interval after the old side left is set against the next stretch of the
/// history, walking back from its most recent interval, no stretch used twice. Five times
/// keeps the comparison's variance within a fifth of that against an exactly known rate, and
/// an hour of history pairs the first twelve minutes after the old pods left (the default
/// bake is ten); later intervals count against the rate bound only. Measured against three
/// and eight (BENCHMARKS.md, detection): five caught the most, with no more false actions.
pub const HISTORY_PAIRING: f64 = 5.0;

/// The upper end of a one-sided 1 − `alpha` confidence interval for a Poisson rate seen as
/// `errors` in `requests`: the Jeffreys interval, the `1 − alpha` quantile of
/// Gamma(errors + ½, requests). With no errors in 100,000 requests and `alpha` 0.001 it is
/// about 5.4 per 100,000: a history without errors still allows a few.
pub fn rate_upper_bound(errors: f64, requests: f64, alpha: f64) -> Result<f64, StatsError> {
    if !(errors.is_finite() && requests.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    if errors < 0.0 || requests <= 0.0 || !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::Invalid(format!(
            "a rate bound needs errors ≥ 0, requests > 0 and 0 < alpha < 1 (got {errors}, {requests}, {alpha})"
        )));
    }
    let gamma =
        Gamma::new(errors + 0.5, requests).map_err(|e| StatsError::Invalid(e.to_string()))?;
    Ok(gamma.inverse_cdf(1.0 - alpha))
}

/// Always-valid evidence that the new side's event rate exceeds `tolerance` times the old side's:
/// the natural logarithm of an e-value, a mixture likelihood ratio (mSPRT) over
/// [`MIXTURE_RATIOS`]; with `known` intervals, half the larger of two such mixtures (against
/// the rate bound, and against the history stretch by stretch).
///
/// Each stratum contributes the conditional binomial of [`super::poisson_rate_greater`]: given
/// its `n` errors, the new side's `k` is Binomial(n, p(θ)) with p(θ) = θ·t·E_new / (θ·t·E_new +
/// E_old). Each interval of `known` contributes the Poisson likelihood ratio of its `k` errors
/// in `E` requests at θ·t·rate against t·rate: k·ln θ − (θ − 1)·t·rate·E. Under the null
/// hypothesis (and, for `known`, a true rate at most `known.rate`) the likelihood ratio of each
/// θ is a non-negative supermartingale as intervals accrue, and so is any mixture of them, so by
/// Ville's inequality the chance that it EVER reaches 1/α, however often it is looked at, is at
/// most α. `exp(−result)` (capped at 1) is therefore a p-value valid at every look at once, for
/// data that only grow (a window that reaches back to the first stratum).
///
/// `dispersion` (φ ≥ 1, see [`super::dispersion`]) tempers the log-likelihood ratios by 1/φ
/// (quasi-likelihood): for counts whose variance is φ times the Poisson one, a tempered ratio is
/// a martingale again in the normal limit. Counts need not be whole (`increase()` extrapolates).
pub fn rate_ratio_log_evalue(
    strata: &[Stratum],
    known: Option<&KnownRate>,
    tolerance: f64,
    dispersion: f64,
) -> Result<f64, StatsError> {
    let phi = phi(dispersion);
    let mut log_lr = [0.0f64; MIXTURE_RATIOS.len()];
    add_strata(&mut log_lr, strata, tolerance)?;
    let Some(known) = known else {
        return mixture(&log_lr, phi);
    };
    let mut against_bound = log_lr;
    add_known(&mut against_bound, known, tolerance)?;
    let bound = mixture(&against_bound, phi)?;
    let paired = paired_with_history(known);
    if paired.is_empty() {
        return Ok(bound);
    }
    let mut against_history = log_lr;
    add_strata(&mut against_history, &paired, tolerance)?;
    let history = mixture(&against_history, phi)?;
    // Each is a test supermartingale in its own filtration, so by Ville's inequality each
    // reaches 2/α with chance at most α/2: half the larger reaches 1/α with chance at most α.
    Ok(bound.max(history) - std::f64::consts::LN_2)
}

/// The intervals after the old side left, each with its own stretch of the history (see
/// [`HISTORY_PAIRING`]), as strata; intervals past the history's end are left out.
fn paired_with_history(known: &KnownRate) -> Vec<Stratum> {
    let mut history = known.history.iter();
    let mut out = Vec::new();
    for &(errors_new, requests_new) in &known.intervals {
        if requests_new <= 0.0 {
            continue;
        }
        let (mut errors_old, mut requests_old) = (0.0, 0.0);
        while requests_old < known.pairing * requests_new {
            let Some(&(e, r)) = history.next() else {
                return out;
            };
            errors_old += e;
            requests_old += r;
        }
        out.push(Stratum {
            errors_new,
            requests_new,
            errors_old,
            requests_old,
        });
    }
    out
}

/// Adds the conditional binomial log-likelihood ratios of `strata`.
fn add_strata(
    log_lr: &mut [f64; MIXTURE_RATIOS.len()],
    strata: &[Stratum],
    tolerance: f64,
) -> Result<(), StatsError> {
    for s in comparable(strata, tolerance)? {
        let k = s.errors_new;
        let rest = s.errors_old;
        if k + rest <= 0.0 {
            continue;
        }
        // Odds of an error being the new side's under the null hypothesis.
        let odds = tolerance * s.requests_new / s.requests_old;
        for (l, theta) in log_lr.iter_mut().zip(MIXTURE_RATIOS) {
            // k·ln(p_θ/p_1) + rest·ln((1 − p_θ)/(1 − p_1)), with p = o/(1 + o):
            // ln(p_θ/p_1) = ln θ − ln((1 + θo)/(1 + o)), ln((1−p_θ)/(1−p_1)) = −ln((1 + θo)/(1 + o)).
            let norm = ((1.0 + theta * odds) / (1.0 + odds)).ln();
            *l += k * (theta.ln() - norm) - rest * norm;
        }
    }
    Ok(())
}

/// Adds the Poisson log-likelihood ratios of the intervals judged against a known rate.
fn add_known(
    log_lr: &mut [f64; MIXTURE_RATIOS.len()],
    known: &KnownRate,
    tolerance: f64,
) -> Result<(), StatsError> {
    if !(known.rate.is_finite() && known.rate > 0.0) {
        return Err(StatsError::Invalid(format!(
            "a known rate must be positive (got {})",
            known.rate
        )));
    }
    for &(k, requests) in &known.intervals {
        if !(k.is_finite() && requests.is_finite()) {
            return Err(StatsError::NotFinite);
        }
        if k < 0.0 || requests < 0.0 {
            return Err(StatsError::Invalid("negative count or exposure".into()));
        }
        let expected = tolerance * known.rate * requests;
        for (l, theta) in log_lr.iter_mut().zip(MIXTURE_RATIOS) {
            *l += k * theta.ln() - (theta - 1.0) * expected;
        }
    }
    Ok(())
}

/// ln( mean_θ exp(log_lr_θ / φ) ), computed without overflow.
fn mixture(log_lr: &[f64; MIXTURE_RATIOS.len()], phi: f64) -> Result<f64, StatsError> {
    let tempered: Vec<f64> = log_lr.iter().map(|l| l / phi).collect();
    log_mean_exp(&tempered)
}

/// ln( mean exp(values) ), computed without overflow; NaN is an error.
fn log_mean_exp(values: &[f64]) -> Result<f64, StatsError> {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = values.iter().map(|l| (l - max).exp()).sum();
    let log_mean = max + (sum / values.len() as f64).ln();
    if log_mean.is_nan() {
        return Err(StatsError::NotFinite);
    }
    Ok(log_mean)
}

/// Always-valid evidence that the new side's event rate exceeds `tolerance` times the old
/// side's, both seen as totals (`new` and `old`, each `(errors, requests)`), with the old rate
/// unknown: the natural logarithm of a universal-inference e-value (Wasserman, Ramdas and
/// Balakrishnan, 2020). Its numerator is a mixture likelihood: the old rate λ drawn from
/// Gamma(½, old requests) (a Jeffreys-like prior scaled by the history's exposure), the new
/// rate θ·tolerance·λ with θ over [`MIXTURE_RATIOS`]
/// with equal weights. Its denominator is the likelihood maximised under the null hypothesis
/// (new rate at most tolerance × old). For the true null rates the numerator over the true
/// likelihood is a non-negative martingale as the new side's data grow, and the maximised
/// likelihood is at least the true one, so by Ville's inequality the e-value reaches 1/α with
/// chance at most α, at any look, for an old side fixed in advance. A judge's old side is a
/// sliding window, partly served beside the new pods, so there the guarantee is approximate
/// (simulated: no more crossings than with a fixed history). It holds on average over the old
/// side's counts, not given them: an old side that by chance printed none makes the new side's
/// few errors weigh more than they would with the truth known. Unlike a bound on the old rate,
/// it pays nothing for the old rate's uncertainty beyond what the data show: with no old error
/// in 70,000 requests, 6 new ones in 9,000 give an e-value near 16,000 (against a 99.9% bound,
/// about 310). `dispersion` tempers the log-ratio by 1/φ (a quasi-likelihood heuristic for
/// counts more variable than Poisson; for φ ≥ 1 it only weakens the evidence).
pub fn rate_ratio_universal_log_evalue(
    new: (f64, f64),
    old: (f64, f64),
    tolerance: f64,
    dispersion: f64,
) -> Result<f64, StatsError> {
    let ((k_n, n_n), (k_o, n_o)) = (new, old);
    for v in [k_n, n_n, k_o, n_o, tolerance] {
        if !v.is_finite() {
            return Err(StatsError::NotFinite);
        }
    }
    if k_n < 0.0 || k_o < 0.0 || n_n <= 0.0 || n_o <= 0.0 || tolerance <= 0.0 {
        return Err(StatsError::Invalid(
            "a universal test needs counts ≥ 0 and exposures and tolerance > 0".into(),
        ));
    }
    let e_n = tolerance * n_n;
    // The null's maximum: on the boundary (new rate = tolerance × old) when the new side's
    // rate is above it, else at the two sides' own rates.
    let log_l0 = if k_n / e_n > k_o / n_o {
        let rate = (k_o + k_n) / (n_o + e_n);
        xlogy(k_o, rate * n_o) - rate * n_o + xlogy(k_n, rate * e_n) - rate * e_n
    } else {
        xlogy(k_o, k_o) - k_o + xlogy(k_n, k_n) - k_n
    };
    // ln ∫ Pois(k_o; λ n_o) Pois(k_n; θ λ e_n) Gamma(λ; a, b) dλ, less the factorials the
    // denominator shares.
    let (a, b) = (0.5, n_o);
    let total = k_o + k_n + a;
    let log_m: Vec<f64> = MIXTURE_RATIOS
        .iter()
        .map(|theta| {
            statrs::function::gamma::ln_gamma(total) - statrs::function::gamma::ln_gamma(a)
                + a * b.ln()
                + xlogy(k_o, n_o)
                + xlogy(k_n, theta * e_n)
                - total * (b + n_o + theta * e_n).ln()
        })
        .collect();
    let log_e = (log_mean_exp(&log_m)? - log_l0) / phi(dispersion);
    if log_e.is_nan() {
        return Err(StatsError::NotFinite);
    }
    Ok(log_e)
}

/// x·ln(y), 0 where x is 0.
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x * y.ln() }
}

/// The always-valid p-value of [`rate_ratio_log_evalue`]: 1 / e-value, at most 1.
pub fn rate_ratio_sequential_p(
    strata: &[Stratum],
    known: Option<&KnownRate>,
    tolerance: f64,
    dispersion: f64,
) -> Result<f64, StatsError> {
    let log_e = rate_ratio_log_evalue(strata, known, tolerance, dispersion)?;
    Ok((-log_e).exp().clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_bound_matches_scipy() {
        // scipy.stats.gamma.ppf(0.999, a=0.5, scale=1/100000) = 5.413783e-05
        let b = rate_upper_bound(0.0, 100_000.0, 0.001).unwrap();
        assert!((b - 5.413_783e-5).abs() < 1e-11, "{b}");
        // scipy.stats.gamma.ppf(0.999, a=20.5, scale=1/10000) = 0.0037372469
        let b = rate_upper_bound(20.0, 10_000.0, 0.001).unwrap();
        assert!((b - 0.003_737_246_9).abs() < 1e-9, "{b}");
        assert!(rate_upper_bound(1.0, 0.0, 0.001).is_err());
        assert!(rate_upper_bound(f64::NAN, 1.0, 0.001).is_err());
    }

    #[test]
    fn known_rate_intervals_by_hand() {
        // One interval: 3 errors where the known rate predicts 1.
        let known = KnownRate {
            rate: 0.001,
            intervals: vec![(3.0, 1000.0)],
            history: Vec::new(),
            pairing: HISTORY_PAIRING,
        };
        let got = rate_ratio_log_evalue(&[], Some(&known), 1.0, 1.0).unwrap();
        let mean: f64 = MIXTURE_RATIOS
            .iter()
            .map(|t: &f64| (3.0 * t.ln() - (t - 1.0)).exp())
            .sum::<f64>()
            / MIXTURE_RATIOS.len() as f64;
        assert!((got - mean.ln()).abs() < 1e-12, "{got} vs {}", mean.ln());
        let bad = KnownRate {
            rate: 0.0,
            intervals: vec![(1.0, 1.0)],
            history: Vec::new(),
            pairing: HISTORY_PAIRING,
        };
        assert!(rate_ratio_log_evalue(&[], Some(&bad), 1.0, 1.0).is_err());
    }

    /// Whether the p-value crosses 0.01 at any look as `intervals` accrue on `known`.
    fn ever_crosses(mut known: KnownRate, intervals: Vec<(f64, f64)>) -> bool {
        intervals.into_iter().any(|interval| {
            known.intervals.push(interval);
            rate_ratio_sequential_p(&[], Some(&known), 1.0, 1.0).unwrap() < 0.01
        })
    }

    #[test]
    fn known_rate_evidence_holds_its_level_over_every_look() {
        // Errors at exactly the known rate, looked at after every interval: the e-value must
        // stay below 1/α at every look in nearly every run (Ville), here with a seeded Poisson.
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let crossed = (0..500)
            .filter(|_| {
                let known = KnownRate {
                    rate: 0.002,
                    ..KnownRate::default()
                };
                ever_crosses(known, poisson_intervals(&mut rng, 60, 0.002, 1000.0))
            })
            .count();
        assert!(crossed <= 10, "{crossed} of 500 runs crossed α = 0.01");
    }

    #[test]
    fn each_interval_gets_its_own_stretch_of_history_walking_back() {
        assert_eq!(
            HISTORY_PAIRING, 5.0,
            "the stretches below are cut for five times"
        );
        let known = KnownRate {
            rate: 0.01,
            intervals: vec![(1.0, 100.0), (0.0, 0.0), (2.0, 200.0), (3.0, 100.0)],
            // Most recent first.
            history: vec![
                (1.0, 200.0),
                (2.0, 200.0),
                (0.0, 100.0),
                (4.0, 600.0),
                (5.0, 400.0),
                (1.0, 100.0),
            ],
            pairing: HISTORY_PAIRING,
        };
        let paired = paired_with_history(&known);
        // 100 requests need 500: the first three stretches; 200 need 1,000: the next two; the
        // last interval finds only 100 left and is left out; the empty interval is skipped.
        assert_eq!(
            paired,
            vec![
                Stratum {
                    errors_new: 1.0,
                    requests_new: 100.0,
                    errors_old: 3.0,
                    requests_old: 500.0
                },
                Stratum {
                    errors_new: 2.0,
                    requests_new: 200.0,
                    errors_old: 9.0,
                    requests_old: 1000.0
                },
            ]
        );
    }

    #[test]
    fn the_pairing_is_the_rules() {
        // Twice its requests instead of five times: the first interval takes the first two
        // stretches, the second the next three.
        let known = KnownRate {
            rate: 0.01,
            intervals: vec![(1.0, 100.0), (2.0, 150.0)],
            history: vec![
                (1.0, 100.0),
                (2.0, 100.0),
                (0.0, 100.0),
                (4.0, 100.0),
                (5.0, 100.0),
            ],
            pairing: 2.0,
        };
        let paired = paired_with_history(&known);
        let old: Vec<(f64, f64)> = paired
            .iter()
            .map(|s| (s.errors_old, s.requests_old))
            .collect();
        assert_eq!(old, [(3.0, 200.0), (9.0, 300.0)]);
    }

    /// Seeded Poisson counts: `n` intervals of `requests` at `rate`.
    fn poisson_intervals(
        rng: &mut rand::rngs::StdRng,
        n: usize,
        rate: f64,
        requests: f64,
    ) -> Vec<(f64, f64)> {
        use rand_distr::{Distribution, Poisson};
        let poisson = Poisson::new(rate * requests).unwrap();
        (0..n).map(|_| (poisson.sample(rng), requests)).collect()
    }

    #[test]
    fn the_universal_test_by_hand() {
        // No old error in 70,000 requests, 6 new ones in 9,000: ln e = 9.6927 (the formula
        // evaluated in Python with math.lgamma), an e-value of about 16,000.
        let got = rate_ratio_universal_log_evalue((6.0, 9000.0), (0.0, 70000.0), 1.0, 1.0).unwrap();
        assert!((got - 9.692_734_6).abs() < 1e-6, "{got}");
        // Tempered by the dispersion.
        let wide =
            rate_ratio_universal_log_evalue((6.0, 9000.0), (0.0, 70000.0), 1.0, 2.0).unwrap();
        assert!((wide - got / 2.0).abs() < 1e-12, "{wide}");
        // No new error, or the new side at the old side's rate: no evidence (e ≤ 1).
        for new in [(0.0, 9000.0), (9.0, 9000.0)] {
            let e = rate_ratio_universal_log_evalue(new, (70.0, 70000.0), 1.0, 1.0).unwrap();
            assert!(e <= 0.0, "{new:?}: {e}");
        }
        // ×14 the old rate: strong evidence against "no worse", none against "at most ×20".
        let worse = |t| rate_ratio_universal_log_evalue((18.0, 9000.0), (10.0, 70000.0), t, 1.0);
        assert!(worse(1.0).unwrap() > 1000f64.ln(), "{:?}", worse(1.0));
        assert!(worse(20.0).unwrap() <= 0.0, "{:?}", worse(20.0));
        assert!(rate_ratio_universal_log_evalue((1.0, 0.0), (0.0, 1.0), 1.0, 1.0).is_err());
        assert!(rate_ratio_universal_log_evalue((f64::NAN, 1.0), (0.0, 1.0), 1.0, 1.0).is_err());
        assert!(rate_ratio_universal_log_evalue((-1.0, 1.0), (0.0, 1.0), 1.0, 1.0).is_err());
    }

    /// ln of the same e-value by brute force: each θ's marginal likelihood integrated over the
    /// old rate on a fine log grid, the null's likelihood maximised over a grid, and the
    /// factorials left in (they cancel).
    fn universal_by_brute_force(new: (f64, f64), old: (f64, f64), tolerance: f64) -> f64 {
        use statrs::function::gamma::ln_gamma;
        let ((k_n, n_n), (k_o, n_o)) = (new, old);
        let ln_pois = |k: f64, mu: f64| {
            if mu <= 0.0 {
                if k == 0.0 { 0.0 } else { f64::NEG_INFINITY }
            } else {
                k * mu.ln() - mu - ln_gamma(k + 1.0)
            }
        };
        let (a, b) = (0.5, n_o);
        let ln_prior = |l: f64| a * b.ln() - ln_gamma(a) + (a - 1.0) * l.ln() - b * l;
        // λ from 1e-12 to 1 on a log grid: ∫ f(λ) dλ = ∫ f(e^u) e^u du.
        let grid: Vec<f64> = (0..=200_000)
            .map(|i| (-12.0 + 12.0 * f64::from(i) / 200_000.0) * std::f64::consts::LN_10)
            .collect();
        let du = grid[1] - grid[0];
        let mean_m: f64 = MIXTURE_RATIOS
            .iter()
            .map(|theta| {
                grid.iter()
                    .map(|u| {
                        let l = u.exp();
                        (ln_pois(k_o, l * n_o)
                            + ln_pois(k_n, theta * tolerance * l * n_n)
                            + ln_prior(l)
                            + u)
                            .exp()
                            * du
                    })
                    .sum::<f64>()
            })
            .sum::<f64>()
            / MIXTURE_RATIOS.len() as f64;
        // The null: new rate ≤ tolerance × old, maximised over both rates on a grid.
        let rates: Vec<f64> = (0..=2000)
            .map(|i| 10f64.powf(-9.0 + 8.0 * f64::from(i) / 2000.0))
            .collect();
        let mut l0 = f64::NEG_INFINITY;
        for &lo in &rates {
            let best_new = (k_n / n_n).min(tolerance * lo);
            l0 = l0.max(ln_pois(k_o, lo * n_o) + ln_pois(k_n, best_new * n_n));
        }
        mean_m.ln() - l0
    }

    #[test]
    fn the_universal_test_matches_brute_force() {
        for (new, old, t) in [
            ((6.0, 9000.0), (0.0, 70000.0), 1.0),
            ((3.4, 1200.5), (0.7, 800.2), 1.0),
            ((0.0, 5000.0), (4.0, 60000.0), 1.0),
            ((12.0, 20000.0), (3.0, 50000.0), 2.0),
            ((5.0, 3000.0), (9.0, 90000.0), 0.5),
        ] {
            let closed = rate_ratio_universal_log_evalue(new, old, t, 1.0).unwrap();
            let brute = universal_by_brute_force(new, old, t);
            assert!(
                (closed - brute).abs() < 2e-3,
                "{new:?} {old:?} ×{t}: {closed} vs {brute}"
            );
        }
    }

    #[test]
    fn the_universal_test_holds_its_level_over_every_look() {
        // The old side's hour at a rate that gives it 0.6 errors on average (most hours none) or
        // 6, the new side at the same rate, looked at after each of 60 minutes of 1,000 requests:
        // the chance that the e-value ever reaches 1/α must stay within α.
        use rand::SeedableRng;
        use rand_distr::{Distribution, Poisson};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // With a tolerance of 2, the new side at twice the old rate (the null's edge); and
        // at e ≥ 10 (α = 10%) too, where a test that paid less than it claims would show.
        for (rate, tolerance) in [(1e-5, 1.0), (1e-4, 1.0), (1e-4, 2.0)] {
            let (mut at_1, mut at_10) = (0, 0);
            for _ in 0..400 {
                let old = (
                    Poisson::new(rate * 60_000.0).unwrap().sample(&mut rng),
                    60_000.0,
                );
                let mut new = (0.0, 0.0);
                let mut most = f64::NEG_INFINITY;
                for (k, n) in poisson_intervals(&mut rng, 60, rate * tolerance, 1000.0) {
                    new = (new.0 + k, new.1 + n);
                    let e = rate_ratio_universal_log_evalue(new, old, tolerance, 1.0).unwrap();
                    most = most.max(e);
                }
                at_1 += usize::from(most >= 100f64.ln());
                at_10 += usize::from(most >= 10f64.ln());
            }
            assert!(
                at_1 <= 4,
                "rate {rate} ×{tolerance}: {at_1} of 400 runs crossed α = 0.01"
            );
            assert!(
                at_10 <= 40,
                "rate {rate} ×{tolerance}: {at_10} of 400 crossed α = 0.1"
            );
        }
    }

    #[test]
    fn the_universal_test_sees_errors_the_old_side_never_made_sooner_than_a_bound() {
        // 6 new errors in 9,000 requests where the old side made none in 70,000: the old rate's
        // 1 − 0.001 bound (5.4 per 70,000) predicts 0.7 of them, and the Poisson mixture against
        // it stays far weaker than the universal test, which pays only for what the data show.
        let bound = rate_upper_bound(0.0, 70_000.0, 0.001).unwrap();
        let known = KnownRate {
            rate: bound,
            intervals: vec![(6.0, 9000.0)],
            ..KnownRate::default()
        };
        let against_bound = rate_ratio_log_evalue(&[], Some(&known), 1.0, 1.0).unwrap();
        let universal =
            rate_ratio_universal_log_evalue((6.0, 9000.0), (0.0, 70_000.0), 1.0, 1.0).unwrap();
        assert!(
            universal > against_bound + 3.0,
            "{universal} vs {against_bound}"
        );
        assert!(universal > 1000f64.ln(), "{universal}");
    }

    #[test]
    fn history_evidence_holds_its_level_over_every_look() {
        // The old side's hour at 0.2% of 1,000 requests a minute, the new side at the same
        // rate, looked at after each of 30 minutes: both the rate bound and the history
        // stretch by stretch are in play, and the chance that either ever crosses must stay
        // within α.
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let crossed = (0..500)
            .filter(|_| {
                let history = poisson_intervals(&mut rng, 60, 0.002, 1000.0);
                let (errors, requests) = history
                    .iter()
                    .fold((0.0, 0.0), |a, h| (a.0 + h.0, a.1 + h.1));
                let known = KnownRate {
                    rate: rate_upper_bound(errors, requests, 0.01).unwrap(),
                    intervals: Vec::new(),
                    history,
                    pairing: HISTORY_PAIRING,
                };
                ever_crosses(known, poisson_intervals(&mut rng, 30, 0.002, 1000.0))
            })
            .count();
        assert!(crossed <= 10, "{crossed} of 500 runs crossed α = 0.01");
    }

    #[test]
    fn the_history_stretch_by_stretch_sees_an_increase_the_rate_bound_hides() {
        // An hour of 0.2% errors (240 of 120,000), then ten minutes of the new side at 0.4%
        // (80 errors where 40 were due): the bound at α lifts the old rate ×1.2, and what is
        // left of ×2 is not enough; against the history itself it is.
        let history: Vec<(f64, f64)> = (0..60).map(|_| (4.0, 2000.0)).collect();
        let intervals: Vec<(f64, f64)> = (0..10).map(|_| (8.0, 2000.0)).collect();
        let bound = rate_upper_bound(240.0, 120_000.0, 0.001).unwrap();
        let alone = KnownRate {
            rate: bound,
            intervals: intervals.clone(),
            history: Vec::new(),
            pairing: HISTORY_PAIRING,
        };
        let paired = KnownRate {
            history,
            ..alone.clone()
        };
        let p_bound = rate_ratio_sequential_p(&[], Some(&alone), 1.0, 1.0).unwrap();
        let p_paired = rate_ratio_sequential_p(&[], Some(&paired), 1.0, 1.0).unwrap();
        assert!(p_bound >= 0.001, "{p_bound}");
        assert!(p_paired < 0.001, "{p_paired}");
    }
}
