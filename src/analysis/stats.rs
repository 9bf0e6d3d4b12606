//! The statistics: exact tests on error counts, Mann-Whitney U with an effect size on
//! continuous samples, quantiles.
//!
//! Plain functions over numbers, checked against SciPy reference values
//! (`tests/data/stats/reference.json`). Distributions and Fisher's test come from `statrs`; this
//! module arranges their inputs so that each stays cheap at production counts, and adds what
//! `statrs` lacks or gets wrong (Hodges-Lehmann, a conditional Poisson rate test, Mann-Whitney U;
//! see [`mann_whitney`]). It knows nothing of rules, queries or Kubernetes.

use statrs::distribution::{Binomial, ContinuousCDF, Discrete, DiscreteCDF, Normal, StudentsT};
use statrs::stats_tests::Alternative;
use statrs::stats_tests::fisher::fishers_exact;

mod sequential;
pub use sequential::{
    HISTORY_PAIRING, KnownRate, MIXTURE_RATIOS, rate_ratio_log_evalue, rate_ratio_sequential_p,
    rate_ratio_universal_log_evalue, rate_upper_bound,
};

/// A statistical computation that could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A side has no samples.
    #[error("no samples on one side")]
    Empty,
    /// A sample is NaN or infinite.
    #[error("a sample is NaN or infinite")]
    NotFinite,
    /// An input the computation cannot take (a negative count, more successes than trials, …);
    /// the message says which.
    #[error("invalid input: {0}")]
    Invalid(String),
}

/// P(X ≥ k) for X ~ Binomial(n, p): the one-sided binomial test that the success probability
/// exceeds `p` (SciPy's `binomtest(k, n, p, alternative="greater")`).
pub fn binomial_greater(k: u64, n: u64, p: f64) -> Result<f64, StatsError> {
    if k > n {
        return Err(StatsError::Invalid(format!("k = {k} exceeds n = {n}")));
    }
    if k == 0 {
        return Ok(1.0);
    }
    let dist = Binomial::new(p, n).map_err(|e| StatsError::Invalid(e.to_string()))?;
    Ok(dist.sf(k - 1).clamp(0.0, 1.0))
}

/// P(X ≤ k) for X ~ Binomial(n, p) (SciPy's `alternative="less"`).
pub fn binomial_less(k: u64, n: u64, p: f64) -> Result<f64, StatsError> {
    if k > n {
        return Err(StatsError::Invalid(format!("k = {k} exceeds n = {n}")));
    }
    let dist = Binomial::new(p, n).map_err(|e| StatsError::Invalid(e.to_string()))?;
    Ok(dist.cdf(k).clamp(0.0, 1.0))
}

/// One-sided test that the new side's event rate exceeds `tolerance` times the old side's.
///
/// Event counts are modelled as Poisson with the exposures (request counts) as their scale. Given
/// the total `k_new + k_old`, the new side's count is then binomial with success probability
/// `t·E_new / (t·E_new + E_old)` under the null hypothesis `rate_new = t·rate_old`: an exact
/// test at any count, and as cheap at a billion requests as at ten. Counts are rounded (the
/// `increase()` of a counter is extrapolated, hence fractional).
pub fn poisson_rate_greater(
    k_new: f64,
    exposure_new: f64,
    k_old: f64,
    exposure_old: f64,
    tolerance: f64,
) -> Result<f64, StatsError> {
    for v in [k_new, exposure_new, k_old, exposure_old, tolerance] {
        if !v.is_finite() {
            return Err(StatsError::NotFinite);
        }
        if v < 0.0 {
            return Err(StatsError::Invalid("negative count or exposure".into()));
        }
    }
    if exposure_new <= 0.0 || exposure_old <= 0.0 || tolerance <= 0.0 {
        return Err(StatsError::Invalid(
            "exposures and tolerance must be positive".into(),
        ));
    }
    let k = k_new.round() as u64;
    let n = k + k_old.round() as u64;
    let p = tolerance * exposure_new / (tolerance * exposure_new + exposure_old);
    binomial_greater(k, n, p)
}

/// Error and request counts of both sides over one stretch of time (one stratum).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stratum {
    /// The new side's errors in the stratum.
    pub errors_new: f64,
    /// The new side's requests in the stratum.
    pub requests_new: f64,
    /// The old side's errors in the stratum.
    pub errors_old: f64,
    /// The old side's requests in the stratum.
    pub requests_old: f64,
}

/// The Mantel-Haenszel estimate of the rate ratio, new side over old, across strata, as
/// (numerator, denominator): Σ k_new·E_old/T over Σ k_old·E_new/T, with T = E_new + E_old per
/// stratum (Rothman & Greenland, *Modern Epidemiology*, ch. 15). Each stratum weighs by what
/// both sides served in it: in a stretch where the old side served a handful of requests (its
/// last pod leaving), an old error counts as about one error, where observed over expected with
/// each stratum's own old rate as the standard multiplies it by the new side's whole traffic.
/// A zero denominator (the old side made no errors) is an infinite ratio if the new side made
/// any. Strata are checked and kept as [`comparable`] does.
pub fn mantel_haenszel_rate_ratio(strata: &[Stratum]) -> Result<(f64, f64), StatsError> {
    Ok(comparable(strata, 1.0)?
        .into_iter()
        .fold((0.0, 0.0), |(num, den), s| {
            let t = s.requests_new + s.requests_old;
            (
                num + s.errors_new * s.requests_old / t,
                den + s.errors_old * s.requests_new / t,
            )
        }))
}

/// Largest total error count the stratified test convolves as it is; larger counts are scaled
/// down to it (a conservative loss of power where there are thousands of errors).
pub const STRATIFIED_EXACT_MAX: u64 = 2_000;

/// One-sided test that the new side's event rate exceeds `tolerance` times the old side's,
/// minute by minute.
///
/// A rollout's two sides do not spread their traffic alike over a window: the new pods serve
/// mostly its end. If the error rate of both changes within the window (a shared incident, a
/// traffic surge), comparing window totals blames the side that served more of the bad minutes.
/// So each stratum (a short stretch of time in which both sides served requests) gets the
/// conditional binomial of [`poisson_rate_greater`], and the test is on the sum of the new side's
/// errors over strata, whose null distribution is the convolution of the strata's binomials
/// (a Poisson-binomial sum): exact up to [`STRATIFIED_EXACT_MAX`] errors.
///
/// `dispersion` (φ ≥ 1, see [`dispersion`]) widens the test for errors that come in bursts:
/// every count is divided by φ (quasi-Poisson) before the exact test, whose value on the counts
/// as they are stays a floor. At φ = 1 the test is the exact one.
pub fn poisson_rate_greater_stratified(
    strata: &[Stratum],
    tolerance: f64,
    dispersion: f64,
) -> Result<f64, StatsError> {
    stratified(strata, tolerance, dispersion, STRATIFIED_EXACT_MAX)
}

/// How much more error counts scatter than Poisson counts would: the Pearson statistic of each
/// group's cells (errors, requests) around that group's own rate, pooled over the groups and
/// divided by its degrees of freedom, never below 1. Cells are best one per pod and interval: then
/// both bursts (one pod throwing a hundred errors at once) and pods that differ from each other
/// raise it, while a steady regression of the whole new side does not.
pub fn dispersion(groups: &[&[(f64, f64)]]) -> f64 {
    let mut chi2 = 0.0;
    let mut df = 0.0;
    for cells in groups {
        let cells: Vec<(f64, f64)> = cells
            .iter()
            .copied()
            .filter(|(e, r)| *r > 0.0 && e.is_finite() && r.is_finite())
            .collect();
        let (errors, requests) = cells
            .iter()
            .fold((0.0, 0.0), |a, (e, r)| (a.0 + e, a.1 + r));
        if cells.len() < 2 || errors <= 0.0 {
            continue;
        }
        let rate = errors / requests;
        chi2 += cells
            .iter()
            .map(|(e, r)| (e - r * rate).powi(2) / (r * rate))
            .sum::<f64>();
        df += (cells.len() - 1) as f64;
    }
    if df < 1.0 {
        return 1.0;
    }
    // Moderated towards Poisson: a Pearson ratio on d degrees of freedom scatters by √(2/d)
    // around the truth even for Poisson counts (with two cells, φ > 4 one time in twenty), so
    // it is pooled with DISPERSION_PRIOR_DF degrees of freedom at φ = 1.
    phi((chi2 + DISPERSION_PRIOR_DF) / (df + DISPERSION_PRIOR_DF))
}

/// Degrees of freedom of the prior "Poisson" (φ = 1) that [`dispersion`] pools the measured
/// Pearson ratio with: a handful of cells barely move it, hundreds decide it.
pub const DISPERSION_PRIOR_DF: f64 = 10.0;

/// The strata with requests on both sides (a stretch without is no comparison), once every
/// stratum and `tolerance` are checked: finite, not negative, a positive tolerance.
fn comparable(strata: &[Stratum], tolerance: f64) -> Result<Vec<&Stratum>, StatsError> {
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(StatsError::Invalid("tolerance must be positive".into()));
    }
    for s in strata {
        let values = [s.errors_new, s.requests_new, s.errors_old, s.requests_old];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(StatsError::NotFinite);
        }
        if values.iter().any(|v| *v < 0.0) {
            return Err(StatsError::Invalid("negative count or exposure".into()));
        }
    }
    Ok(strata
        .iter()
        .filter(|s| s.requests_new > 0.0 && s.requests_old > 0.0)
        .collect())
}

/// The dispersion a test uses: φ ≥ 1 (under-dispersion is not credited), 1 when unknown.
/// How much better a step explains Poisson counts than one common ratio does: the log-likelihood
/// ratio of the two fits. Counts are `(observed, expected)`, in a `part` and in the `rest`. The
/// step lets the part have any rate of its own (its mean is what it observed) and holds the
/// rest to at most `rest_cap` (no rise outside the part beyond what the expected count may be
/// off by: a shared incident); the common ratio puts one ratio to expected over both (a
/// regression). Positive where the step fits better, negative where one ratio does. Where the
/// rest observed no more than its cap, the step fits both cells as well as anything can, and
/// the ratio is never negative. Divided by `dispersion` (φ ≥ 1, see [`dispersion`]), as
/// quasi-Poisson likelihoods are for counts that come in bursts; that never changes its sign.
pub fn step_against_common_ratio(
    part: (f64, f64),
    rest: (f64, f64),
    rest_cap: f64,
    dispersion: f64,
) -> Result<f64, StatsError> {
    let values = [part.0, part.1, rest.0, rest.1, rest_cap];
    if values.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    if values.iter().any(|v| *v < 0.0) || part.1 <= 0.0 || rest.1 <= 0.0 || rest_cap <= 0.0 {
        return Err(StatsError::Invalid(
            "counts must not be negative, expected counts and the cap positive".into(),
        ));
    }
    // Each cell's Poisson log-likelihood at the step's mean less that at the common mean
    // (o·ln(μ₁/μ₂) − μ₁ + μ₂; the terms both share, ln o!, cancel), taken cell by cell so that
    // large counts are not subtracted from each other.
    let ratio = (part.0 + rest.0) / (part.1 + rest.1);
    let cell = |o: f64, step: f64, common: f64| {
        let log = if o > 0.0 {
            o * (step / common).ln()
        } else {
            0.0
        };
        log - step + common
    };
    let rest_mean = rest.0.min(rest_cap);
    let lr = cell(part.0, part.0, ratio * part.1) + cell(rest.0, rest_mean, ratio * rest.1);
    if !lr.is_finite() {
        return Err(StatsError::NotFinite);
    }
    Ok(lr / phi(dispersion))
}

fn phi(dispersion: f64) -> f64 {
    if dispersion.is_finite() {
        dispersion.max(1.0)
    } else {
        1.0
    }
}

fn stratified(
    strata: &[Stratum],
    tolerance: f64,
    dispersion: f64,
    exact_max: u64,
) -> Result<f64, StatsError> {
    let mut parts = Vec::with_capacity(strata.len());
    let mut observed = 0u64;
    for s in comparable(strata, tolerance)? {
        let k = s.errors_new.round() as u64;
        let n = k + s.errors_old.round() as u64;
        if n == 0 {
            continue;
        }
        let p = tolerance * s.requests_new / (tolerance * s.requests_new + s.requests_old);
        observed += k;
        parts.push((k, n, p));
    }
    if observed == 0 {
        return Ok(1.0);
    }
    let total: u64 = parts.iter().map(|(_, n, _)| n).sum();
    let phi = phi(dispersion);
    // Quasi-likelihood: dividing every count by φ leaves the rates alone and widens the test as
    // much as the overdispersion does. The exact test on the counts as they are is a floor:
    // scaling and rounding never make the test stricter.
    let mean: f64 = parts.iter().map(|(_, n, p)| *n as f64 * p).sum();
    let rest: f64 = parts.iter().map(|(_, n, p)| *n as f64 * (1.0 - p)).sum();
    if total as f64 / phi > exact_max as f64 && mean >= 30.0 && rest >= 30.0 {
        // Thousands of errors on both sides: the normal approximation of the sum, its variance
        // widened by φ, is accurate here.
        let var: f64 = phi
            * parts
                .iter()
                .map(|(_, n, p)| *n as f64 * p * (1.0 - p))
                .sum::<f64>();
        let z = (observed as f64 - 0.5 - mean) / var.sqrt();
        return Ok(Normal::standard().sf(z).clamp(0.0, 1.0));
    }
    // Otherwise exact, on counts divided by φ (or, for huge counts with a lopsided split,
    // by as much as keeps the convolution small: conservative, and rare).
    let scale = phi.max(total as f64 / exact_max.max(1) as f64);
    let plain = if total <= exact_max {
        upper_tail(&parts)?
    } else {
        0.0
    };
    if scale <= 1.0 {
        return Ok(plain);
    }
    let scaled: Vec<(u64, u64, f64)> = parts
        .iter()
        .map(|(k, n, p)| {
            let n = (*n as f64 / scale).round() as u64;
            ((*k as f64 / scale).round().min(n as f64) as u64, n, *p)
        })
        .collect();
    Ok(plain.max(upper_tail(&scaled)?))
}

/// P(Σ X_j ≥ Σ k_j) for independent X_j ~ Binomial(n_j, p_j): the binomial pmfs convolved.
fn upper_tail(parts: &[(u64, u64, f64)]) -> Result<f64, StatsError> {
    let observed: u64 = parts.iter().map(|(k, _, _)| k).sum();
    if observed == 0 {
        return Ok(1.0);
    }
    let mut dist = vec![1.0f64];
    for &(_, n, p) in parts {
        if n == 0 {
            continue;
        }
        let b = Binomial::new(p, n).map_err(|e| StatsError::Invalid(e.to_string()))?;
        let pmf: Vec<f64> = (0..=n).map(|k| b.pmf(k)).collect();
        let mut next = vec![0.0; dist.len() + n as usize];
        for (i, a) in dist.iter().enumerate() {
            if *a == 0.0 {
                continue;
            }
            for (j, b) in pmf.iter().enumerate() {
                next[i + j] += a * b;
            }
        }
        dist = next;
    }
    let upper: f64 = dist
        .get(observed as usize..)
        .map_or(0.0, |d| d.iter().sum());
    Ok(upper.clamp(0.0, 1.0))
}

/// Fisher's exact test, one-sided: are the odds in the first row greater than in the second?
/// Table `[[a, b], [c, d]]` in SciPy's order; returns SciPy's `fisher_exact(..., "greater")`.
///
/// `statrs` sums the hypergeometric CDF up to one cell; the table is turned around so that the
/// sum runs over the small error counts, never over the millions of good requests.
pub fn fisher_greater(table: [[u64; 2]; 2]) -> Result<f64, StatsError> {
    let [[a, b], [c, d]] = table;
    // P(A ≥ a) with margins fixed = P(C ≤ c) on the swapped table.
    fishers_exact(&[c, d, a, b], Alternative::Less)
        .map(|p| p.clamp(0.0, 1.0))
        .map_err(|e| StatsError::Invalid(e.to_string()))
}

/// Which side a one-sided continuous test looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Is `x` stochastically greater than `y`?
    Greater,
    /// Is `x` stochastically smaller than `y`?
    Less,
}

/// Mann-Whitney U: the U statistic of `x` (ties counted half) and the one-sided p-value, as
/// SciPy's `mannwhitneyu` computes them.
///
/// Tie-free samples of up to [`EXACT_MAX`] values in all get the exact null distribution of U;
/// larger samples, or samples with ties, the normal approximation with tie and continuity
/// corrections. Both are computed here rather than by `statrs` 0.19, whose exact method returns
/// the wrong tail whenever `x` is not the larger sample and whose approximation computes
/// `1 − cdf` and so reports p = 0 below about 1e-16; the SciPy reference tests caught both.
pub fn mann_whitney(x: &[f64], y: &[f64], tail: Tail) -> Result<(f64, f64), StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::Empty);
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let (m, n) = (x.len(), y.len());
    let (rank_sum_x, tie_term) = rank_sum(x, y);
    let u = rank_sum_x - (m * (m + 1)) as f64 / 2.0;
    let mn = (m * n) as f64;
    // Orient so that the upper tail of `u_tail` is the alternative.
    let u_tail = match tail {
        Tail::Greater => u,
        Tail::Less => mn - u,
    };
    if tie_term == 0.0 && m + n <= EXACT_MAX {
        return Ok((u, exact_upper_tail(m, n, u_tail.round() as usize)));
    }
    let total = (m + n) as f64;
    let variance = mn / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if variance <= 0.0 {
        // Every value equal: no evidence either way.
        return Ok((u, 1.0));
    }
    let z = (u_tail - mn / 2.0 - 0.5) / variance.sqrt();
    let p = Normal::standard().sf(z);
    Ok((u, p.clamp(0.0, 1.0)))
}

/// The rank sum of `x` in the pooled sample (mid-ranks for ties) and Σ(t³ − t) over tie groups.
fn rank_sum(x: &[f64], y: &[f64]) -> (f64, f64) {
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Positions i..j (0-based) share the mid-rank of ranks i+1..=j.
        let mid_rank = (i + 1 + j) as f64 / 2.0;
        let from_x = pooled[i..j].iter().filter(|p| p.1).count();
        rank_sum += mid_rank * from_x as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    (rank_sum, tie_term)
}

/// Largest total sample size for the exact distribution: the counts stay within `i128`
/// (C(120, 60) ≈ 1e35) and the work within m·n·min(m, n) steps.
pub const EXACT_MAX: usize = 120;

/// P(U ≥ u) under the null hypothesis for sample sizes `m` and `n` without ties.
///
/// The number of arrangements with U = k is the coefficient of q^k in the Gaussian binomial
/// coefficient [m+n choose m]_q = ∏_{i=1..m} (1 − q^(n+i)) / (1 − q^i), built one factor at a
/// time with exact integer arithmetic.
fn exact_upper_tail(m: usize, n: usize, u: usize) -> f64 {
    let (m, n) = (m.min(n), m.max(n));
    let top = m * n;
    if u == 0 {
        return 1.0;
    }
    if u > top {
        return 0.0;
    }
    let mut poly = vec![0i128; top + 1];
    poly[0] = 1;
    for i in 1..=m {
        // Multiply by (1 − q^(n+i)), then divide by (1 − q^i); the quotient stays a polynomial
        // of degree i·n with non-negative coefficients.
        let shift = n + i;
        for k in (shift..=top).rev() {
            poly[k] -= poly[k - shift];
        }
        for k in i..=top {
            poly[k] += poly[k - i];
        }
    }
    let total: i128 = poly.iter().sum();
    let upper: i128 = poly[u..].iter().sum();
    upper as f64 / total as f64
}

/// Hodges-Lehmann estimate of the shift of `x` over `y`: the median of all pairwise differences
/// `x_i − y_j`. Robust to outliers, in the series' own unit.
pub fn hodges_lehmann(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::Empty);
    }
    // All pairs of 2,000 against 2,000 samples are 32 MB; beyond that, every k-th sample of the
    // larger side (an even thinning keeps the estimate, and memory bounded).
    if x.len() * y.len() > HL_MAX_PAIRS {
        let thin = |v: &[f64], other: usize| -> Vec<f64> {
            let keep = (HL_MAX_PAIRS / other.max(1)).max(1);
            let k = v.len().div_ceil(keep);
            v.iter().step_by(k.max(1)).copied().collect()
        };
        let (x, y) = if x.len() >= y.len() {
            let x = thin(x, y.len().min(2000));
            let y = thin(y, x.len());
            (x, y)
        } else {
            let y = thin(y, x.len().min(2000));
            let x = thin(x, y.len());
            (x, y)
        };
        return hodges_lehmann(&x, &y);
    }
    let mut diffs = Vec::with_capacity(x.len() * y.len());
    for a in x {
        for b in y {
            diffs.push(a - b);
        }
    }
    median_in_place(&mut diffs)
}

/// Most pairwise differences [`hodges_lehmann`] computes before thinning its inputs.
pub const HL_MAX_PAIRS: usize = 4_000_000;

/// The median (average of the two middle values for an even count).
pub fn median(values: &[f64]) -> Result<f64, StatsError> {
    median_in_place(&mut values.to_vec())
}

fn median_in_place(v: &mut [f64]) -> Result<f64, StatsError> {
    if v.is_empty() {
        return Err(StatsError::Empty);
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let mid = v.len() / 2;
    let odd = v.len() % 2 == 1;
    let (lower, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if odd {
        Ok(m)
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok(below + (m - below) / 2.0)
    }
}

/// The `q` quantile with linear interpolation between order statistics (NumPy's default,
/// Hyndman & Fan type 7).
pub fn quantile(values: &[f64], q: f64) -> Result<f64, StatsError> {
    if values.is_empty() {
        return Err(StatsError::Empty);
    }
    if !(0.0..=1.0).contains(&q) {
        return Err(StatsError::Invalid(format!(
            "quantile {q} is outside [0, 1]"
        )));
    }
    if values.iter().any(|x| !x.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let h = q * (v.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Ok(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// The `q` quantile of one more draw from the population `y` was drawn from, a normal one of
/// unknown mean and spread: `mean + t(n−1, q) · s · √(1 + 1/n)` (the prediction bound).
pub fn prediction_upper(y: &[f64], q: f64) -> Result<f64, StatsError> {
    if y.len() < 2 {
        return Err(StatsError::Invalid(format!(
            "needs two values, got {}",
            y.len()
        )));
    }
    if y.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let n = y.len() as f64;
    let mean = mean(y);
    let sd = sample_variance(y, mean).sqrt();
    let t = student_t(n - 1.0)?.inverse_cdf(q);
    Ok(mean + t * sd * (1.0 + 1.0 / n).sqrt())
}

/// The arithmetic mean of `v` (not empty).
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The sample variance of `v` (two values or more) around its `mean`.
fn sample_variance(v: &[f64], mean: f64) -> f64 {
    v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// Student's t with `df` degrees of freedom.
fn student_t(df: f64) -> Result<StudentsT, StatsError> {
    StudentsT::new(0.0, 1.0, df).map_err(|e| StatsError::Invalid(e.to_string()))
}

/// One-sided t-test that the mean of `x` exceeds the mean of the population `y` is drawn from,
/// with the spread estimated from `y` alone (df = |y| − 1): "do these values stand out from
/// how much `y`'s members differ from each other?". With one value in `x` it is the prediction
/// interval of one more draw from `y`'s population; the spread within `x` does not enter, so
/// values that differ among themselves for a reason of their own (a release that hits some
/// pods harder) do not hide their common shift. Returns (t, p). Needs two values in `y`; a
/// spread of zero gives p = 0 for a larger mean and 1 otherwise.
pub fn stands_out_greater(x: &[f64], y: &[f64]) -> Result<(f64, f64), StatsError> {
    if x.is_empty() || y.len() < 2 {
        return Err(StatsError::Invalid(format!(
            "needs a value in x and two in y, got {} and {}",
            x.len(),
            y.len()
        )));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let (mx, my) = (mean(x), mean(y));
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let var_y = sample_variance(y, my);
    let scale = (var_y * (1.0 / nx + 1.0 / ny)).sqrt();
    if scale == 0.0 {
        return Ok(if mx > my {
            (f64::INFINITY, 0.0)
        } else {
            (0.0, 1.0)
        });
    }
    let t = (mx - my) / scale;
    Ok((t, student_t(ny - 1.0)?.sf(t)))
}

#[cfg(test)]
mod tests;
