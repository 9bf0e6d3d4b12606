#[test]
fn standing_out_matches_the_closed_forms_of_student_t() {
    // One value against three: df = 2, where P(T > t) = (1 - t / sqrt(t² + 2)) / 2.
    let (t, p) = super::stands_out_greater(&[3.0], &[0.0, 1.0, 2.0]).unwrap();
    assert!((t - 3f64.sqrt()).abs() < 1e-12, "{t}");
    let want = 0.5 * (1.0 - t / (t * t + 2.0).sqrt());
    assert!((p - want).abs() < 1e-9, "{p} vs {want}");
    // Two against two: var_y 0.5, t = 2 / sqrt(0.5 · (1/2 + 1/2)), df = 1 (Cauchy).
    let (t, p) = super::stands_out_greater(&[2.0, 3.0], &[0.0, 1.0]).unwrap();
    assert!((t - 2.0 / 0.5f64.sqrt()).abs() < 1e-12, "{t}");
    let cauchy = 0.5 - t.atan() / std::f64::consts::PI;
    assert!((p - cauchy).abs() < 1e-9, "{p} vs {cauchy}");
    // The spread within x does not enter.
    let (t2, _) = super::stands_out_greater(&[1.0, 4.0], &[0.0, 1.0]).unwrap();
    assert!((t2 - t).abs() < 1e-12);
    // A smaller mean is no evidence; a spread of zero is certain either way.
    assert!(super::stands_out_greater(&[0.0], &[1.0, 2.0]).unwrap().1 > 0.5);
    assert_eq!(
        super::stands_out_greater(&[2.0], &[1.0, 1.0]).unwrap().1,
        0.0
    );
    assert!(super::stands_out_greater(&[1.0], &[1.0]).is_err());
    assert!(super::stands_out_greater(&[f64::NAN], &[1.0, 2.0]).is_err());
}

use super::*;

#[test]
fn quantile_matches_numpy_linear() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&v, 0.5).unwrap(), 2.5);
    assert_eq!(quantile(&v, 0.9).unwrap(), 3.7);
    assert_eq!(quantile(&v, 0.0).unwrap(), 1.0);
    assert_eq!(quantile(&v, 1.0).unwrap(), 4.0);
    assert_eq!(quantile(&[5.0], 0.3).unwrap(), 5.0);
    assert!(quantile(&[], 0.5).is_err());
    assert!(quantile(&[1.0, f64::NAN], 0.5).is_err());
    assert!(quantile(&v, 1.5).is_err());
}

#[test]
fn median_of_even_and_odd_counts() {
    assert_eq!(median(&[3.0, 1.0, 2.0]).unwrap(), 2.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]).unwrap(), 2.5);
    assert_eq!(median(&[f64::MAX, f64::MAX]).unwrap(), f64::MAX);
}

#[test]
fn rate_test_is_the_binomial_on_the_error_split() {
    // 10 errors in 1000 new requests, none in 3000 old: under the null each error is new
    // with probability 1/4, so p = (1/4)^10.
    let p = poisson_rate_greater(10.0, 1000.0, 0.0, 3000.0, 1.0).unwrap();
    assert!((p - 0.25f64.powi(10)).abs() < 1e-15, "{p}");
    // A tolerance of 3 makes the same split unremarkable: p0 = 1/2.
    let p = poisson_rate_greater(10.0, 1000.0, 0.0, 3000.0, 3.0).unwrap();
    assert!((p - 0.5f64.powi(10)).abs() < 1e-15, "{p}");
    assert_eq!(
        poisson_rate_greater(0.0, 10.0, 0.0, 10.0, 1.0).unwrap(),
        1.0
    );
    assert!(poisson_rate_greater(f64::NAN, 10.0, 0.0, 10.0, 1.0).is_err());
    assert!(poisson_rate_greater(1.0, 0.0, 0.0, 10.0, 1.0).is_err());
}

fn stratum(errors_new: f64, requests_new: f64, errors_old: f64, requests_old: f64) -> Stratum {
    Stratum {
        errors_new,
        requests_new,
        errors_old,
        requests_old,
    }
}

#[test]
fn one_stratum_is_the_plain_rate_test() {
    for (k_new, e_new, k_old, e_old, t) in [
        (10.0, 1000.0, 0.0, 3000.0, 1.0),
        (7.0, 500.0, 9.0, 1500.0, 1.5),
        (0.0, 9.0, 4.0, 9.0, 1.0),
    ] {
        let plain = poisson_rate_greater(k_new, e_new, k_old, e_old, t).unwrap();
        let strat = poisson_rate_greater_stratified(&[stratum(k_new, e_new, k_old, e_old)], t, 1.0)
            .unwrap();
        assert!((plain - strat).abs() < 1e-12, "{plain} vs {strat}");
    }
}

#[test]
fn stratified_sum_matches_brute_force() {
    // Two strata, n = 2 with p = 1/2 and n = 1 with p = 1/4: P(X1 + X2 >= 2) by hand.
    let strata = [
        stratum(1.0, 100.0, 1.0, 100.0),
        stratum(1.0, 100.0, 0.0, 300.0),
    ];
    let p = poisson_rate_greater_stratified(&strata, 1.0, 1.0).unwrap();
    // P(sum >= 2) = P(X1=2) + P(X1=1)P(X2=1) = 1/4 + 1/2 * 1/4.
    assert!((p - (0.25 + 0.125)).abs() < 1e-12, "{p}");
}

#[test]
fn a_shared_incident_late_in_the_window_is_not_the_new_sides_fault() {
    // Minute 1: calm, old serves most. Minute 2: incident at 5% for everyone, new serves most.
    let strata = [
        stratum(0.0, 100.0, 1.0, 900.0),
        stratum(40.0, 800.0, 10.0, 200.0),
    ];
    let pooled = poisson_rate_greater(40.0, 900.0, 11.0, 1100.0, 1.0).unwrap();
    let stratified = poisson_rate_greater_stratified(&strata, 1.0, 1.0).unwrap();
    assert!(pooled < 1e-4, "the pooled test is fooled: {pooled}");
    assert!(stratified > 0.3, "{stratified}");
}

#[test]
fn widening_and_scaling_never_make_the_test_stricter() {
    // Few errors: any φ > 1 must give at least the exact p-value (a normal approximation
    // here gave 2.5e-4 against the exact 3.7e-3).
    let few = [stratum(3.0, 1000.0, 1.0, 9000.0)];
    let exact = poisson_rate_greater_stratified(&few, 1.0, 1.0).unwrap();
    assert!((exact - 3.7e-3).abs() < 1e-4, "{exact}");
    for phi in [1.01, 1.2, 2.0, 10.0] {
        let widened = poisson_rate_greater_stratified(&few, 1.0, phi).unwrap();
        assert!(widened >= exact, "φ={phi}: {widened} < {exact}");
    }
    // Many errors on both sides (over the exact limit): the normal approximation, close to
    // the exact value.
    let many: Vec<Stratum> = (0..10)
        .map(|_| stratum(53.0, 1000.0, 47.0, 1000.0))
        .collect();
    let exact = stratified(&many, 1.0, 1.0, u64::MAX).unwrap();
    let approx = stratified(&many, 1.0, 1.0, 100).unwrap();
    assert!(exact > 0.01 && exact < 0.1, "{exact}");
    assert!((approx / exact - 1.0).abs() < 0.05, "{approx} vs {exact}");
    // Many errors but a lopsided split (the new side expects few): scaled, never stricter
    // than exact (the normal approximation gave 7.6e-4 against the exact 3.8e-3).
    let lopsided = [stratum(9.0, 1000.0, 3000.0, 1e6)];
    let exact = stratified(&lopsided, 1.0, 1.0, u64::MAX).unwrap();
    let scaled = stratified(&lopsided, 1.0, 1.0, 2000).unwrap();
    assert!(scaled >= exact, "{scaled} vs {exact}");
    assert!(
        poisson_rate_greater_stratified(&[stratum(f64::NAN, 1.0, 0.0, 1.0)], 1.0, 1.0).is_err()
    );
    assert_eq!(poisson_rate_greater_stratified(&[], 1.0, 1.0).unwrap(), 1.0);
}

#[test]
fn dispersion_sees_bursts_not_steady_regressions() {
    let cells = |v: &[Stratum], new: bool| -> Vec<(f64, f64)> {
        v.iter()
            .map(|s| {
                if new {
                    (s.errors_new, s.requests_new)
                } else {
                    (s.errors_old, s.requests_old)
                }
            })
            .collect()
    };
    // Steady: every interval at the side's own rate, the new side twice the old.
    let steady: Vec<Stratum> = (0..10)
        .map(|_| stratum(20.0, 1000.0, 10.0, 1000.0))
        .collect();
    assert_eq!(
        dispersion(&[&cells(&steady, true), &cells(&steady, false)]),
        1.0
    );
    // Bursty: same totals, but all in two intervals.
    let bursty: Vec<Stratum> = (0..10)
        .map(|i| {
            if i < 2 {
                stratum(100.0, 1000.0, 50.0, 1000.0)
            } else {
                stratum(0.0, 1000.0, 0.0, 1000.0)
            }
        })
        .collect();
    let phi = dispersion(&[&cells(&bursty, true), &cells(&bursty, false)]);
    assert!(phi > 30.0, "{phi}");
    // Widening makes the bursty case unremarkable while the exact test calls it certain.
    let exact = poisson_rate_greater_stratified(&bursty, 1.0, 1.0).unwrap();
    let widened = poisson_rate_greater_stratified(&bursty, 1.0, phi).unwrap();
    assert!(exact < 1e-4 && widened > 0.05, "{exact} {widened}");
    assert_eq!(
        dispersion(&[&cells(&steady[..1], true)]),
        1.0,
        "one cell has no degrees of freedom"
    );
}

#[test]
fn mantel_haenszel_rate_ratio_by_hand() {
    // (10·200/300 + 4·50/100) / (5·100/300 + 6·50/100) = (20/3 + 2) / (5/3 + 3) = 26/14.
    let s = [
        stratum(10.0, 100.0, 5.0, 200.0),
        stratum(4.0, 50.0, 6.0, 50.0),
    ];
    let (num, den) = mantel_haenszel_rate_ratio(&s).unwrap();
    assert!((num / den - 26.0 / 14.0).abs() < 1e-12, "{num}/{den}");
    // One stratum: the plain rate ratio.
    let (num, den) = mantel_haenszel_rate_ratio(&[stratum(6.0, 300.0, 2.0, 200.0)]).unwrap();
    assert!((num / den - 2.0).abs() < 1e-12);
    // A stretch in which the old side served 10 requests and made one error: observed over
    // the errors each stretch's old rate predicts falls from 2 to 10/33 (one old error at
    // 10% of 300 new requests predicts 30); Mantel-Haenszel counts that error as one
    // error, not as thirty: (2.4 + 40/310) / (1.2 + 300/310) = 1.17.
    let thin = [
        stratum(6.0, 300.0, 2.0, 200.0),
        stratum(4.0, 300.0, 1.0, 10.0),
    ];
    let (num, den) = mantel_haenszel_rate_ratio(&thin).unwrap();
    assert!((num / den - (2.4 + 40.0 / 310.0) / (1.2 + 300.0 / 310.0)).abs() < 1e-12);
    // Strata without requests on both sides are no comparison; no old errors: a zero
    // denominator.
    assert_eq!(
        mantel_haenszel_rate_ratio(&[stratum(3.0, 10.0, 0.0, 0.0), stratum(1.0, 5.0, 0.0, 5.0)])
            .unwrap(),
        (0.5, 0.0)
    );
}

#[test]
fn sequential_evalue_of_one_stratum_by_hand() {
    // 3 errors on the new side, none on the old, a quarter of the traffic: for each θ the
    // likelihood ratio is (p_θ / p_1)^3 with p_θ = θ/(θ + 3).
    let s = [stratum(3.0, 100.0, 0.0, 300.0)];
    let mean: f64 = MIXTURE_RATIOS
        .iter()
        .map(|t| (t / (t + 3.0) / 0.25).powi(3))
        .sum::<f64>()
        / MIXTURE_RATIOS.len() as f64;
    let got = rate_ratio_log_evalue(&s, None, 1.0, 1.0).unwrap();
    assert!((got - mean.ln()).abs() < 1e-12, "{got} vs {}", mean.ln());
    // Dispersion 2 tempers each ratio to its square root.
    let tempered: f64 = MIXTURE_RATIOS
        .iter()
        .map(|t| (t / (t + 3.0) / 0.25).powf(1.5))
        .sum::<f64>()
        / MIXTURE_RATIOS.len() as f64;
    let got = rate_ratio_log_evalue(&s, None, 1.0, 2.0).unwrap();
    assert!((got - tempered.ln()).abs() < 1e-12);
    // No errors: no evidence either way (e = 1, p = 1).
    assert_eq!(rate_ratio_log_evalue(&[], None, 1.0, 1.0).unwrap(), 0.0);
    assert_eq!(
        rate_ratio_sequential_p(&[stratum(0.0, 10.0, 0.0, 10.0)], None, 1.0, 1.0).unwrap(),
        1.0
    );
    assert!(rate_ratio_log_evalue(&[stratum(f64::NAN, 1.0, 0.0, 1.0)], None, 1.0, 1.0).is_err());
    assert!(rate_ratio_log_evalue(&[stratum(-1.0, 1.0, 0.0, 1.0)], None, 1.0, 1.0).is_err());
    assert!(rate_ratio_log_evalue(&s, None, 0.0, 1.0).is_err());
    // A huge count stays finite.
    let huge = [stratum(1e7, 1e8, 0.0, 1e8)];
    assert!(
        rate_ratio_log_evalue(&huge, None, 1.0, 1.0)
            .unwrap()
            .is_finite()
    );
}

/// Poisson draws (Knuth's method; the means here are small).
fn poisson_draw(rng: &mut rand::rngs::StdRng, mean: f64) -> f64 {
    use rand::RngExt;
    let limit = (-mean).exp();
    let mut k = 0.0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1.0;
        p *= rng.random::<f64>();
    }
    k
}

/// `rollouts` of 40 one-minute strata, looked at after every stratum: how many ever reach
/// p < α, with the new side's rate `ratio` times the old side's.
fn crossings(rollouts: usize, ratio: f64, alpha: f64, sequential: bool) -> usize {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut crossed = 0;
    for _ in 0..rollouts {
        let mut strata = Vec::new();
        for _ in 0..40 {
            let (rn, ro) = (400.0, 3600.0);
            let rate = 0.005;
            strata.push(stratum(
                poisson_draw(&mut rng, rn * rate * ratio),
                rn,
                poisson_draw(&mut rng, ro * rate),
                ro,
            ));
            let p = if sequential {
                rate_ratio_sequential_p(&strata, None, 1.0, 1.0).unwrap()
            } else {
                poisson_rate_greater_stratified(&strata, 1.0, 1.0).unwrap()
            };
            if p < alpha {
                crossed += 1;
                break;
            }
        }
    }
    crossed
}

#[test]
fn sequential_test_holds_its_level_over_every_look() {
    // Under the null hypothesis, the chance of EVER crossing α over 40 looks stays below α
    // (Ville's inequality); the fixed-sample test, looked at as often, crosses far more.
    let alpha = 0.05;
    // (Measured: 6 of 400 sequential, 92 of 400 fixed; 400 of 400 found at ×2.)
    let sequential = crossings(400, 1.0, alpha, true);
    assert!(sequential <= 20, "{sequential} of 400 crossed");
    let fixed = crossings(100, 1.0, alpha, false);
    assert!(
        fixed > 10,
        "{fixed} of 100: the per-look test should overshoot"
    );
    // And it still finds a doubled error rate in most rollouts.
    let power = crossings(400, 2.0, 0.001, true);
    assert!(power > 360, "{power} of 400");
}

#[test]
fn exact_distribution_of_u() {
    // m = n = 2: U takes 0, 1, 2, 2, 3, 4 over the six arrangements.
    assert_eq!(exact_upper_tail(2, 2, 4), 1.0 / 6.0);
    assert_eq!(exact_upper_tail(2, 2, 2), 4.0 / 6.0);
    assert_eq!(exact_upper_tail(2, 2, 0), 1.0);
    assert_eq!(exact_upper_tail(2, 2, 5), 0.0);
    // All of x above all of y, 8 against 8: one arrangement in C(16, 8) = 12870.
    assert_eq!(exact_upper_tail(8, 8, 64), 1.0 / 12870.0);
    // The largest size allowed stays finite and sums to one.
    let p = exact_upper_tail(60, 60, 0);
    assert_eq!(p, 1.0);
    let mid = exact_upper_tail(60, 60, 1800);
    assert!(mid > 0.5 && mid < 0.52, "{mid}");
}

#[test]
fn large_unbalanced_samples_use_the_approximation() {
    // 3 against 200 exactly would be fine here, but 3 against 300 must not enumerate.
    let x: Vec<f64> = (0..3).map(|i| 10.0 + i as f64).collect();
    let y: Vec<f64> = (0..300).map(|i| i as f64 / 100.0).collect();
    let (u, p) = mann_whitney(&x, &y, Tail::Greater).unwrap();
    assert_eq!(u, 900.0);
    assert!(p < 0.01, "{p}");
    let (_, p_less) = mann_whitney(&x, &y, Tail::Less).unwrap();
    assert!(p_less > 0.99, "{p_less}");
}

#[test]
fn hodges_lehmann_stays_bounded_on_huge_samples() {
    let x: Vec<f64> = (0..100_000).map(|i| 2.0 + (i % 97) as f64 / 97.0).collect();
    let y: Vec<f64> = (0..50_000).map(|i| 1.0 + (i % 89) as f64 / 89.0).collect();
    let shift = hodges_lehmann(&x, &y).unwrap();
    assert!((shift - 1.0).abs() < 0.02, "{shift}");
}

#[test]
fn refuses_empty_and_non_finite_samples() {
    assert_eq!(
        mann_whitney(&[], &[1.0], Tail::Greater),
        Err(StatsError::Empty)
    );
    assert_eq!(
        mann_whitney(&[f64::NAN], &[1.0], Tail::Greater),
        Err(StatsError::NotFinite)
    );
    assert_eq!(hodges_lehmann(&[1.0], &[]), Err(StatsError::Empty));
    assert!(binomial_greater(5, 3, 0.5).is_err());
}

/// The Poisson log-likelihood of counts `observed` at means `mu`, from statrs' own pmf.
fn poisson_log_likelihood(observed: &[u64], mu: &[f64]) -> f64 {
    use statrs::distribution::Poisson;
    observed
        .iter()
        .zip(mu)
        .map(|(o, m)| Poisson::new(*m).unwrap().ln_pmf(*o))
        .sum()
}

#[test]
fn a_step_against_one_ratio_is_the_likelihood_ratio_of_the_two_fits() {
    let lr = |part, rest, cap, phi| step_against_common_ratio(part, rest, cap, phi).unwrap();
    // 30 errors where 10 were expected in the part, 18 where 20 were in the rest: the step
    // fits the part at 30 and the rest at 18 (below its cap); one ratio, 48/30, fits 16 and 32.
    let got = lr((30.0, 10.0), (18.0, 20.0), 20.0, 1.0);
    let want = poisson_log_likelihood(&[30, 18], &[30.0, 18.0])
        - poisson_log_likelihood(&[30, 18], &[16.0, 32.0]);
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert!(got > 0.0);
    // The rest above its cap: the step holds it there (20), one ratio fits both exactly.
    let got = lr((15.0, 10.0), (30.0, 20.0), 20.0, 1.0);
    let want = poisson_log_likelihood(&[15, 30], &[15.0, 20.0])
        - poisson_log_likelihood(&[15, 30], &[15.0, 30.0]);
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert!(got < 0.0);
    // A cap with room for what the rest observed: the step fits both cells as they are, one
    // ratio (2) neither.
    assert!(lr((30.0, 10.0), (30.0, 20.0), 30.0, 1.0) > 0.0);
    // Bursts widen it: the same counts, half the weight.
    let widened = lr((15.0, 10.0), (30.0, 20.0), 20.0, 2.0);
    assert!((widened - got / 2.0).abs() < 1e-12);
    // A cell without errors: its likelihood is e^-μ in each fit.
    let got = lr((10.0, 5.0), (0.0, 20.0), 20.0, 1.0);
    let want = poisson_log_likelihood(&[10, 0], &[10.0, f64::MIN_POSITIVE])
        - poisson_log_likelihood(&[10, 0], &[2.0, 8.0]);
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    // No errors anywhere: nothing to choose between.
    assert_eq!(lr((0.0, 10.0), (0.0, 20.0), 20.0, 1.0), 0.0);
    // Whatever the counts, a rest at most at its cap never favours one ratio.
    for (part, rest) in [((1.0, 10.0), (3.0, 20.0)), ((50.0, 10.0), (20.0, 20.0))] {
        assert!(lr(part, rest, rest.1, 1.0) >= 0.0, "{part:?} {rest:?}");
    }
    let invalid = [
        ((1.0, 0.0), (1.0, 1.0), 1.0),
        ((f64::NAN, 1.0), (1.0, 1.0), 1.0),
        ((1.0, 1.0), (-1.0, 1.0), 1.0),
        ((1.0, 1.0), (1.0, 1.0), 0.0),
    ];
    for (part, rest, cap) in invalid {
        assert!(step_against_common_ratio(part, rest, cap, 1.0).is_err());
    }
}

#[test]
fn the_prediction_bound_is_the_t_quantile_of_one_more_draw() {
    // mean 1, s = 1, n = 3: 1 + t(2, 0.95) · √(4/3), t(2, 0.95) = 2.919986 (tables).
    let b = prediction_upper(&[0.0, 1.0, 2.0], 0.95).unwrap();
    assert!(
        (b - (1.0 + 2.919_986 * (4.0f64 / 3.0).sqrt())).abs() < 1e-5,
        "{b}"
    );
    // No spread, no room above the mean; one value is no spread to speak of.
    assert_eq!(prediction_upper(&[2.0, 2.0], 0.95).unwrap(), 2.0);
    assert!(prediction_upper(&[2.0], 0.95).is_err());
    assert!(prediction_upper(&[2.0, f64::NAN], 0.95).is_err());
}
