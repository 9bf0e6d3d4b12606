//! Judging an `error_rate` rule: the new pods' errors per request against the old pods', interval
//! by interval (each interval a stratum of the test, so a shared incident cancels out).
//!
//! Owns reading one side's counts (which intervals can be counted at all), the strata, the
//! effect (Mantel-Haenszel rate ratio), the test, the burst guard and the reason text. Damaged
//! data never counts as zero: an interval where a point is NaN, infinite or negative, or where
//! a pod's error series has a gap (or points at other times than its requests), is left out of
//! the comparison on that side. A pod's counter reset (its container restarted) leaves out
//! that pod alone, from the reset until its error counter is back, the other pods' counts in
//! those intervals kept. The verdict says how many were left out.
//!
//! Once the old pods are gone, the new pods' later intervals are held, with the sequential test,
//! to the old version's own rate over the window (its history: before the rollout and while it
//! served), at the upper end of its confidence interval; evidence that hangs on one stretch of
//! `incident_span` after the old pods left, where the errors per request stand above the
//! rest's and an incident explains the new pods' errors at least as well as one ratio over all
//! (a shared incident), does not fail the rule. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{
    Baseline, Counts, ErrorRateEvidence, Evidence, HistoryEvidence, IntervalCounts, Judged,
    SideCounts, WindowBound, fmt_num, fmt_p, fmt_pct, no_baseline, rate_ratio, ratio_reached,
};
use crate::analysis::rules::{ErrorRate, ProportionTest};
use crate::analysis::source::Series;
use crate::analysis::stats::{self, KnownRate, Stratum};

use crate::analysis::time::{self, Millis, from_seconds as millis};

fn usable(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// Which pod a series belongs to: its `pod` label, or all its labels if it has none.
fn series_key(s: &Series) -> String {
    s.labels
        .get("pod")
        .cloned()
        .unwrap_or_else(|| format!("{:?}", s.labels))
}

/// What of one side cannot be counted, never read as zero.
#[derive(Default)]
struct Skip {
    /// Intervals left out for every pod: a NaN or infinite point in any series, a negative
    /// point or a gap in an error series that no reset of its pod explains.
    intervals: BTreeSet<Millis>,
    /// One pod's intervals left out, its errors and requests alike, the other pods' kept: from
    /// the pod's counter reset (see [`resets`]) to its error series' first point after it (see
    /// [`after_reset`]).
    pods: BTreeMap<String, BTreeSet<Millis>>,
    /// One pod's first intervals left out, its errors and requests alike: a pod that began
    /// inside the window, in its rule's `warmup` (see [`warming`]).
    warming: BTreeMap<String, BTreeSet<Millis>>,
    /// One pod's error points where its own request series has none (a gap in it, or the
    /// whole series lost: see [`orphans`]): its requests there are unknown, so its errors are
    /// left out with them, and the pod counts as absent at those moments, the other pods kept.
    /// Which pods lose request points does not depend on their errors, so this leaves no bias;
    /// leaving the moment out for the whole side would let request points lost a few at a time
    /// from different pods leave out every interval.
    unpaired: BTreeMap<String, BTreeSet<Millis>>,
}

impl Skip {
    /// Whether `pod`'s interval ending at `t` is left out, for it alone.
    fn skips_pod(&self, pod: &str, t: Millis) -> bool {
        [&self.pods, &self.warming, &self.unpaired]
            .iter()
            .any(|m| m.get(pod).is_some_and(|ts| ts.contains(&t)))
    }

    fn skips(&self, pod: &str, t: Millis) -> bool {
        self.intervals.contains(&t) || self.skips_pod(pod, t)
    }

    /// Every interval end left out, for any pod or for all, but for want of a pod's requests
    /// ([`Skip::unpaired`]): where the side last served, its pods' request points say.
    fn times(&self) -> impl Iterator<Item = Millis> + '_ {
        self.intervals
            .iter()
            .copied()
            .chain(self.pods.values().flatten().copied())
            .chain(self.warming.values().flatten().copied())
    }

    /// How many pod-intervals are left out for their pod alone after a counter reset.
    fn pod_intervals(&self) -> usize {
        self.pods.values().map(BTreeSet::len).sum()
    }

    /// How many pod-intervals are left out for their pod alone in its warm-up.
    fn warming_intervals(&self) -> usize {
        self.warming.values().map(BTreeSet::len).sum()
    }

    /// How many of a pod's error points are left out for want of its request points.
    fn unpaired_intervals(&self) -> usize {
        self.unpaired.values().map(BTreeSet::len).sum()
    }
}

/// The pods of a side that began inside the window (their first request point after `start`,
/// the earliest point of either side, where pods that served from before the window begin),
/// each with its intervals in the first `warmup` from its first: what [`Skip::warming`] leaves
/// out. Nothing when the counts cannot be told apart by pod.
fn warming(c: &Counts, start: Millis, warmup: Millis) -> BTreeMap<String, BTreeSet<Millis>> {
    let per_pod = c.requests.iter().all(|s| s.labels.contains_key("pod"));
    if warmup == 0 || !per_pod || !by_pod(c) {
        return BTreeMap::new();
    }
    c.requests
        .iter()
        .filter_map(|s| {
            let times: BTreeSet<Millis> = s.points.iter().map(|p| millis(p.t)).collect();
            let first = *times.first()?;
            // The first point covers part of an interval (the pod began inside it), so the
            // warm-up reaches the point `warmup` after it, included.
            let end = first.saturating_add(warmup);
            (first > start).then(|| (series_key(s), times.range(first..=end).copied().collect()))
        })
        .collect()
}

/// Whether every new pod is still in its warm-up: its first point no more than `warmup` and an
/// interval before the newest point of the new side.
fn all_young(new: &Counts, warmup: Millis, interval: Millis) -> bool {
    let firsts: Vec<Millis> = new
        .requests
        .iter()
        .filter_map(|s| s.points.first().map(|p| millis(p.t)))
        .collect();
    let newest = new
        .requests
        .iter()
        .filter_map(|s| s.points.last().map(|p| millis(p.t)))
        .max();
    newest.is_some_and(|n| {
        firsts
            .iter()
            .all(|f| n - f <= warmup.saturating_add(interval))
    })
}

/// The earliest point of either side's request series: where the window's pods that served
/// from before it begin.
fn earliest(new: &Counts, old: &Counts) -> Option<Millis> {
    new.requests
        .iter()
        .chain(&old.requests)
        .filter_map(|s| s.points.first())
        .map(|p| millis(p.t))
        .min()
}

/// Whether a side's counts can be told apart by pod (`sum by (pod)` on both queries): every
/// error series belongs to a pod with a request series, or is one of the [`orphans`].
fn by_pod(c: &Counts) -> bool {
    let request_pods: BTreeSet<String> = c.requests.iter().map(series_key).collect();
    let orphans = orphans(c);
    c.errors.iter().all(|e| {
        let key = series_key(e);
        request_pods.contains(&key) || orphans.contains(&key)
    })
}

/// The pods of a side with an error series and no request series, where every request series
/// names its pod: a pod whose request series was lost from the answer (a partial answer with
/// no warning), its requests unknown. Its errors are left out (see [`Skip::unpaired`]), never
/// held against the other pods' requests; with the bundled queries a pod's two series come
/// from one scrape and exist at the same moments.
fn orphans(c: &Counts) -> BTreeSet<String> {
    let named = |s: &Series| s.labels.contains_key("pod");
    if c.requests.is_empty() || !c.requests.iter().all(named) {
        return BTreeSet::new();
    }
    let request_pods: BTreeSet<String> = c.requests.iter().map(series_key).collect();
    c.errors
        .iter()
        .filter(|e| named(e))
        .map(series_key)
        .filter(|k| !request_pods.contains(k))
        .collect()
}

/// What of one side cannot be counted (see [`Skip`]). An error series is born at its pod's
/// first error (no points before: zero errors then, as `absent_errors_are_zero` says); from
/// the interval of its first point on (the last request point at or before it), every
/// interval its pod served must have a point, else that interval's errors are unknown. Error
/// series without a matching pod (other labels) are held against all requests. Unknown errors
/// are left out for the whole side, never for one pod only: only pods with an error series can
/// have a gap or a negative error count, and leaving out their intervals alone would keep the
/// intervals of the pods that made no error and lower the side's rate. The exceptions are set
/// by something other than which pods made errors: a pod's counter reset (by the restart and
/// the pod's next error), and unknown requests (a pod's error points where its request series
/// has none, or has no series at all: [`Skip::unpaired`]), for which the pod is absent.
fn left_out(c: &Counts, linger: Millis, warm: BTreeMap<String, BTreeSet<Millis>>) -> Skip {
    let mut skip = Skip {
        warming: warm,
        ..Skip::default()
    };
    if by_pod(c) {
        for (pod, r) in resets(c) {
            let stretch = after_reset(c, &pod, r, linger);
            skip.pods.entry(pod).or_default().extend(stretch);
        }
    }
    let orphans = orphans(c);
    damaged_points(c, &orphans, &mut skip);
    let served = served_by_pod(c);
    let side_times: BTreeSet<Millis> = served.values().flatten().copied().collect();
    for e in &c.errors {
        let key = series_key(e);
        let times: BTreeSet<Millis> = e.points.iter().map(|p| millis(p.t)).collect();
        if orphans.contains(&key) {
            skip.unpaired.entry(key).or_default().extend(times);
            continue;
        }
        let own = served.get(&key);
        let unknown = unknown_errors(&skip, &key, &times, own.unwrap_or(&side_times));
        skip.intervals.extend(unknown);
        // An error count where its pod's request count is missing (a gap, a partial answer):
        // that pod's requests there are unknown, and its errors must not be held against the
        // other pods' requests alone.
        if let Some(own) = own {
            let unpaired: BTreeSet<Millis> = times.difference(own).copied().collect();
            if !unpaired.is_empty() {
                skip.unpaired.entry(key).or_default().extend(unpaired);
            }
        }
    }
    skip
}

/// Puts into `skip` the intervals of a NaN, infinite or negative point of any series of the
/// side but the [`orphans`]' (a negative one in a stretch its pod's reset explains excepted).
fn damaged_points(c: &Counts, orphans: &BTreeSet<String>, skip: &mut Skip) {
    for s in c.requests.iter().chain(&c.errors) {
        let pod = series_key(s);
        if orphans.contains(&pod) {
            continue;
        }
        for p in s.points.iter().filter(|p| !usable(p.v)) {
            let t = millis(p.t);
            if !(p.v < 0.0 && skip.skips_pod(&pod, t)) {
                skip.intervals.insert(t);
            }
        }
    }
}

/// Each pod's request points' times, by [`series_key`].
fn served_by_pod(c: &Counts) -> BTreeMap<String, BTreeSet<Millis>> {
    let mut served: BTreeMap<String, BTreeSet<Millis>> = BTreeMap::new();
    for s in &c.requests {
        served
            .entry(series_key(s))
            .or_default()
            .extend(s.points.iter().map(|p| millis(p.t)));
    }
    served
}

/// The intervals of `served` (its pod's request times, or the side's for an error series of no
/// pod) whose errors the error series of `key` with points at `times` leaves unknown: from the
/// interval its first point falls in, every one it has no point for that no reset of its pod
/// explains (its gaps); and as many intervals just before its first point as its longest run
/// of consecutive gaps. A series with gaps is damaged, and its first point is then no proof of
/// its birth: the answer that lost k points in a row elsewhere may have lost the k before its
/// first one, and those are unknown, never zero. Going back further would leave out the pod's
/// minutes without errors, which are the ones before a late first error, and raise the side's
/// rate. A counter born at its first error has no gaps, and nothing before it is left out.
fn unknown_errors(
    skip: &Skip,
    key: &str,
    times: &BTreeSet<Millis>,
    served: &BTreeSet<Millis>,
) -> Vec<Millis> {
    let Some(&first) = times.first() else {
        return Vec::new();
    };
    // Born by the interval its first point falls in: a first point off the request grid
    // (error points computed at other times than the requests) tells nothing of that
    // interval's errors, which are then unknown, not zero.
    let born = served.range(..=first).next_back().copied().unwrap_or(first);
    let reset = skip.pods.get(key);
    let mut unknown = Vec::new();
    let (mut longest, mut run) = (0, 0);
    for &t in served.range(born..) {
        if times.contains(&t) || reset.is_some_and(|ts| ts.contains(&t)) {
            run = 0;
        } else {
            unknown.push(t);
            run += 1;
            longest = longest.max(run);
        }
    }
    unknown.extend(served.range(..born).rev().take(longest));
    unknown
}

/// The pods' counter resets: where a pod's request count is negative (with the default
/// queries, the counter against its value an interval before: its container restarted and
/// started it again).
fn resets(c: &Counts) -> BTreeSet<(String, Millis)> {
    c.requests
        .iter()
        .flat_map(|s| {
            let pod = series_key(s);
            s.points
                .iter()
                .filter(|p| p.v < 0.0)
                .map(move |p| (pod.clone(), millis(p.t)))
        })
        .collect()
}

/// The intervals of `pod` a reset at `r` leaves out: its own, and where the pod's error series
/// was born before it, every one up to and including the first point of that series after it
/// (to the end of the window when there is none), and at least `linger` after the reset. A
/// restarted container's error counter, created at its first error, is gone until the pod's
/// next error, and the interval it comes back in is held against its value before the
/// restart (or, differenced series by series, counted from zero: left out all the same).
/// With several error types summed by pod and then differenced, one type coming back is not
/// all: another's value before the restart is still read an interval back (such queries look
/// up to 5 minutes back), and makes the pod's count too low, negative or not, until it ages
/// out: `linger` (the rule's `reset_linger`), by default that look back and an interval; the
/// bundled rules difference each series on its own and need none. The stretch's length is set by the
/// restart and by the pod's next error, whenever it comes, so it leaves as many errors out as
/// its requests would make at the pod's rate, on average: its intervals are not chosen for
/// holding few errors or many (ending it at the last negative count would be: the minutes
/// after, too low but not negative, would stay).
fn after_reset(c: &Counts, pod: &str, r: Millis, linger: Millis) -> BTreeSet<Millis> {
    let of_pod = |s: &&Series| series_key(s) == pod;
    let error_points: BTreeMap<Millis, f64> = c
        .errors
        .iter()
        .filter(of_pod)
        .flat_map(|s| s.points.iter().map(|p| (millis(p.t), p.v)))
        .collect();
    let end = match error_points.keys().next() {
        Some(&born) if born <= r => {
            let back = error_points
                .range(r + 1..)
                .next()
                .map_or(Millis::MAX, |(t, _)| *t);
            back.max(r.saturating_add(linger))
        }
        _ => r,
    };
    c.requests
        .iter()
        .filter(of_pod)
        .flat_map(|s| s.points.iter().map(|p| millis(p.t)))
        .filter(|t| (r..=end).contains(t))
        .collect()
}

/// How long after a reset a pod's error count may still be too low for it (see
/// [`after_reset`]): the rule's `reset_linger`, by default a pod-summed difference's look back
/// for the value an interval before, 5 minutes, and the interval.
fn reset_linger(rule: &ErrorRate) -> Millis {
    match rule.reset_linger {
        Some(linger) => time::span(linger.as_std()),
        None => {
            time::span(std::time::Duration::from_secs(300)) + time::span(rule.interval.as_std())
        }
    }
}

/// Counts by interval end: usable values of all series summed, leaving out what `skip` says.
fn by_time(series: &[Series], skip: &Skip) -> BTreeMap<Millis, f64> {
    let mut out = BTreeMap::new();
    for s in series {
        let pod = series_key(s);
        for p in s.points.iter().filter(|p| usable(p.v)) {
            let t = millis(p.t);
            if !skip.skips(&pod, t) {
                *out.entry(t).or_insert(0.0) += p.v;
            }
        }
    }
    out
}

/// One side's errors and requests by interval end, its totals, and the intervals left out.
struct Side {
    errors: BTreeMap<Millis, f64>,
    requests: BTreeMap<Millis, f64>,
    totals: SideCounts,
    skipped: Skip,
}

/// The errors of the interval ending at `t`, at most its `requests`: errors never exceed
/// requests, but `increase()` extrapolates the two counters separately, and counts from
/// different scrape targets can go stale apart.
fn capped(errors: &BTreeMap<Millis, f64>, t: &Millis, requests: f64) -> f64 {
    errors.get(t).copied().unwrap_or(0.0).min(requests)
}

/// One side's counts by interval, or what is missing.
fn side(
    name: &str,
    c: &Counts,
    rule: &ErrorRate,
    warm: Option<(Millis, Millis)>,
) -> Result<Side, String> {
    let warm = warm.map_or_else(BTreeMap::new, |(start, warmup)| warming(c, start, warmup));
    let skipped = left_out(c, reset_linger(rule), warm);
    let requests = by_time(&c.requests, &skipped);
    if requests.is_empty() {
        return Err(if skipped.intervals.is_empty() && skipped.pods.is_empty() {
            if skipped.warming.is_empty() {
                format!("no request counts for the {name} pods")
            } else {
                format!(
                    "no request counts for the {name} pods past their first {} (warmup)",
                    rule.warmup
                )
            }
        } else {
            let resets = match skipped.pod_intervals() {
                0 => String::new(),
                n => format!(", and {n} pod-interval(s) after counter resets"),
            };
            format!(
                "no request counts for the {name} pods: all {} interval(s) damaged (NaN, ±Inf, negative values or gaps){resets}",
                skipped.intervals.len(),
            )
        });
    }
    let errors = by_time(&c.errors, &skipped);
    if errors.is_empty()
        && !(rule.absent_errors_are_zero && c.errors.iter().all(|s| s.points.is_empty()))
    {
        return Err(format!("no error counts for the {name} pods"));
    }
    let total_requests: f64 = requests.values().sum();
    if total_requests < rule.min_requests || total_requests <= 0.0 {
        return Err(format!(
            "the {name} pods served {} requests, fewer than min_requests {}",
            fmt_num(total_requests),
            fmt_num(rule.min_requests)
        ));
    }
    let total_errors: f64 = requests.iter().map(|(t, r)| capped(&errors, t, *r)).sum();
    let totals = SideCounts {
        errors: total_errors,
        requests: total_requests,
        rate: total_errors / total_requests,
    };
    Ok(Side {
        errors,
        requests,
        totals,
        skipped,
    })
}

/// One side's errors and requests in one interval, for one pod (or for all, see [`cells`]).
struct Cell {
    pod: String,
    t: Millis,
    errors: f64,
    requests: f64,
}

/// One side's cells: per pod and interval when the queries keep the `pod` label
/// (`sum by (pod)`) and every error series belongs to a pod that has a request series; per
/// interval (all pods together) otherwise. Errors are matched to requests by pod; a pod without
/// an error series had none. Intervals in `skip` are left out.
fn cells(c: &Counts, skip: &Skip) -> Vec<Cell> {
    if !by_pod(c) {
        let errors = by_time(&c.errors, skip);
        return by_time(&c.requests, skip)
            .into_iter()
            .filter(|(_, r)| *r > 0.0)
            .map(|(t, r)| Cell {
                pod: "all pods".into(),
                t,
                errors: errors.get(&t).copied().unwrap_or(0.0).min(r),
                requests: r,
            })
            .collect();
    }
    let mut errors: BTreeMap<(String, Millis), f64> = BTreeMap::new();
    for s in &c.errors {
        for p in s.points.iter().filter(|p| usable(p.v)) {
            *errors.entry((series_key(s), millis(p.t))).or_insert(0.0) += p.v;
        }
    }
    let mut out = Vec::new();
    for s in &c.requests {
        let pod = series_key(s);
        for p in s.points.iter().filter(|p| usable(p.v) && p.v > 0.0) {
            let t = millis(p.t);
            if skip.skips(&pod, t) {
                continue;
            }
            let e = errors.get(&(pod.clone(), t)).copied().unwrap_or(0.0);
            out.push(Cell {
                pod: pod.clone(),
                t,
                errors: e.min(p.v),
                requests: p.v,
            });
        }
    }
    out
}

/// The strata: every interval in which both sides served requests, with its end.
fn strata(new: &Side, old: &Side) -> Vec<(Millis, Stratum)> {
    new.requests
        .iter()
        .filter_map(|(t, rn)| {
            let ro = *old.requests.get(t)?;
            (*rn > 0.0 && ro > 0.0).then(|| {
                let stratum = Stratum {
                    errors_new: new.errors.get(t).copied().unwrap_or(0.0).min(*rn),
                    requests_new: *rn,
                    errors_old: old.errors.get(t).copied().unwrap_or(0.0).min(ro),
                    requests_old: ro,
                };
                (*t, stratum)
            })
        })
        .collect()
}

/// The old side's rate by interval end: its own in each stratum, the history's point estimate
/// in the intervals after it left.
fn old_rates(timed: &[(Millis, Stratum)], later: Option<&Later>) -> BTreeMap<Millis, f64> {
    let mut rates: BTreeMap<Millis, f64> = timed
        .iter()
        .map(|(t, s)| (*t, s.errors_old / s.requests_old))
        .collect();
    if let Some(l) = later {
        rates.extend(l.times.iter().map(|t| (*t, l.rate)));
    }
    rates
}

/// The new side's cell with the largest excess of errors over what the old side's rate in
/// that interval predicts, if it carries at least `share` of the whole excess.
fn largest_excess<'c>(
    cells: &'c [Cell],
    old_rate: &BTreeMap<Millis, f64>,
    share: f64,
) -> Option<&'c Cell> {
    if cells.len() < 2 {
        return None; // nothing to tell a burst from
    }
    let excess = |c: &Cell| old_rate.get(&c.t).map(|rate| c.errors - c.requests * rate);
    let best = cells
        .iter()
        .filter_map(|c| excess(c).map(|x| (x, c)))
        .filter(|(x, _)| *x > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    let total_excess: f64 = cells.iter().filter_map(excess).sum();
    (best.0 >= share * total_excess).then_some(best.1)
}

/// The rule's test on some strata (and, for the sequential test, the intervals after the old
/// pods left): a one-sided p-value that the new rate exceeds the old.
fn p_value(
    rule: &ErrorRate,
    strata: &[Stratum],
    known: Option<&KnownRate>,
    whole: Option<Whole>,
    dispersion: f64,
) -> Result<f64, stats::StatsError> {
    tested(rule, strata, known, whole, dispersion).map(|(p, _)| p)
}

/// [`p_value`], with the window bound's own test when it was counted (for the evidence).
fn tested(
    rule: &ErrorRate,
    strata: &[Stratum],
    known: Option<&KnownRate>,
    whole: Option<Whole>,
    dispersion: f64,
) -> Result<(f64, Option<WindowBound>), stats::StatsError> {
    match rule.test {
        ProportionTest::Binomial => Ok((
            stats::poisson_rate_greater_stratified(strata, rule.tolerance, dispersion)?,
            None,
        )),
        ProportionTest::Sequential => {
            let p = stats::rate_ratio_sequential_p(strata, known, rule.tolerance, dispersion)?;
            let Some(Whole {
                bound: rate_bound,
                old,
            }) = whole
            else {
                return Ok((p, None));
            };
            let new = strata
                .iter()
                .map(|s| (s.errors_new, s.requests_new))
                .chain(known.into_iter().flat_map(|k| k.intervals.iter().copied()))
                .fold((0.0, 0.0), |a, i| (a.0 + i.0, a.1 + i.1));
            let log_e =
                stats::rate_ratio_universal_log_evalue(new, old, rule.tolerance, dispersion)?;
            let p_whole = (-log_e).exp().clamp(0.0, 1.0);
            // Two always-valid p-values, each at level α/2: the smaller, doubled (a union bound).
            let bound = WindowBound {
                rate_bound,
                old_errors: old.0,
                old_requests: old.1,
                p_value: p_whole,
            };
            Ok(((2.0 * p.min(p_whole)).min(1.0), Some(bound)))
        }
        ProportionTest::Fisher => {
            let sum = |f: fn(&Stratum) -> f64| strata.iter().map(f).sum::<f64>();
            let row = |e: f64, r: f64| [e.round() as u64, (r - e).round().max(0.0) as u64];
            stats::fisher_greater([
                row(sum(|s| s.errors_new), sum(|s| s.requests_new)),
                row(sum(|s| s.errors_old), sum(|s| s.requests_old)),
            ])
            .map(|p| (p, None))
        }
    }
}

/// The old version over the window, when every new interval, beside the old pods too, may be
/// tested against it (the universal test of [`tested`]): the sequential test with `history`,
/// errors the old version (nearly) never made in the window (fewer than `min_errors`: a class
/// it still shipped, a file it still had), and a comparison at the same moments that points the same way (a
/// Mantel-Haenszel ratio of `min_ratio` or more). Errors a shared incident or a drift of the
/// error rate produce, the old version makes too, beside the new pods or in its hour; then the
/// old pods beside the new ones are the baseline, and their history is not.
fn window_bound(
    rule: &ErrorRate,
    strata: &[Stratum],
    old: &Side,
    bound: Option<f64>,
) -> Option<Whole> {
    let bound = bound?;
    if strata.is_empty() || old.totals.errors >= rule.min_errors {
        return None;
    }
    let (num, den) = stats::mantel_haenszel_rate_ratio(strata).ok()?;
    let agrees = num > 0.0 && (den <= 0.0 || num / den >= rule.min_ratio);
    agrees.then_some(Whole {
        bound,
        old: (old.totals.errors, old.totals.requests),
    })
}

/// The old version over the window, for the test of every new interval against it: its rate
/// bound and its totals, (errors, requests).
#[derive(Clone, Copy, Debug)]
struct Whole {
    bound: f64,
    old: (f64, f64),
}

/// The upper end of the old version's rate over the window (its 1 − alpha confidence
/// interval), which the new pods are held to where the rule judges against history: the
/// sequential test with `history` only, since only it may keep looking as evidence accrues.
fn history_bound(rule: &ErrorRate, old: &Side) -> Option<f64> {
    if !rule.history || rule.test != ProportionTest::Sequential {
        return None;
    }
    stats::rate_upper_bound(old.totals.errors, old.totals.requests, rule.alpha).ok()
}

/// The new pods' intervals after the old pods' last, held to the old version's history.
struct Later {
    /// Their interval ends, in the order of `known.intervals`.
    times: Vec<Millis>,
    /// The history's rate bound and the new pods' (errors, requests) in each interval.
    known: KnownRate,
    /// The history's point estimate of the old rate.
    rate: f64,
    evidence: HistoryEvidence,
}

/// The intervals after the old side's last one (served or damaged), held to the history's
/// `bound` (see [`history_bound`]), if the rule judges them against history and there are any.
fn later(rule: &ErrorRate, new: &Side, old: &Side, bound: Option<f64>) -> Option<Later> {
    let bound = bound?;
    let served = old
        .requests
        .iter()
        .filter(|(_, r)| **r > 0.0)
        .map(|(t, _)| *t);
    let last_old = served.chain(old.skipped.times()).max()?;
    let first_old = *old.requests.keys().next()?;
    let after: Vec<(Millis, f64, f64)> = new
        .requests
        .range(last_old + 1..)
        .filter(|(_, r)| **r > 0.0)
        .map(|(t, r)| (*t, new.errors.get(t).copied().unwrap_or(0.0).min(*r), *r))
        .collect();
    if after.is_empty() {
        return None;
    }
    let stamp = time::to_timestamp;
    let (errors, requests) = after.iter().fold((0.0, 0.0), |a, i| (a.0 + i.1, a.1 + i.2));
    Some(Later {
        times: after.iter().map(|i| i.0).collect(),
        known: KnownRate {
            rate: bound,
            intervals: after.iter().map(|i| (i.1, i.2)).collect(),
            history: most_recent_first(old, last_old),
            pairing: rule.history_pairing,
        },
        rate: old.totals.rate,
        evidence: HistoryEvidence {
            old_errors: old.totals.errors,
            old_requests: old.totals.requests,
            from: stamp(first_old),
            to: stamp(last_old),
            rate_bound: bound,
            intervals: after.len(),
            errors,
            requests,
            expected: old.totals.rate * requests,
        },
    })
}

/// The old side's (errors, requests) by interval up to `last`, most recent first: the history
/// the intervals after it left are paired with, stretch by stretch.
fn most_recent_first(old: &Side, last: Millis) -> Vec<(f64, f64)> {
    old.requests
        .range(..=last)
        .rev()
        .filter(|(_, r)| **r > 0.0)
        .map(|(t, r)| (capped(&old.errors, t, *r), *r))
        .collect()
}

/// The effect: the new pods' errors (observed), the rate ratio, and the errors the old side's
/// rate predicts (expected). Over the strata, the Mantel-Haenszel rate ratio, whose expected
/// errors are observed / ratio; after the old pods left, the history's rate applied to the new
/// pods' requests. The ratio over both is observed over expected in all.
fn effect(
    strata: &[Stratum],
    later: Option<&Later>,
) -> Result<(f64, Option<f64>, f64), stats::StatsError> {
    let (observed_c, ratio_c, expected_c) = if strata.is_empty() {
        (0.0, None, 0.0)
    } else {
        let b = beside(strata)?;
        (b.observed, b.ratio, b.expected.unwrap_or(0.0))
    };
    let Some(l) = later else {
        return Ok((observed_c, ratio_c, expected_c));
    };
    let observed = observed_c + l.evidence.errors;
    let expected = expected_c + l.evidence.expected;
    Ok((observed, rate_ratio(observed, expected), expected))
}

/// A significant excess that hangs on one pod in one interval: the cell with the largest
/// excess, if it carries `burst_share` of it or more and the test without it is no longer significant
/// (pod, interval end, its errors, the p-value without it).
fn burst(
    rule: &ErrorRate,
    new_cells: &[Cell],
    timed: &[(Millis, Stratum)],
    later: Option<&Later>,
    whole: Option<Whole>,
    dispersion: f64,
) -> Option<(String, Millis, f64, f64)> {
    let cell = largest_excess(new_cells, &old_rates(timed, later), rule.burst_share)?;
    let take = |errors: f64, requests: f64| {
        (
            (errors - cell.errors).max(0.0),
            (requests - cell.requests).max(0.0),
        )
    };
    let without: Vec<Stratum> = timed
        .iter()
        .map(|(t, s)| {
            if *t != cell.t {
                return *s;
            }
            let (errors_new, requests_new) = take(s.errors_new, s.requests_new);
            Stratum {
                errors_new,
                requests_new,
                ..*s
            }
        })
        .collect();
    let known = later.map(|l| KnownRate {
        rate: l.known.rate,
        intervals: l
            .times
            .iter()
            .zip(&l.known.intervals)
            .map(|(t, (e, r))| if *t == cell.t { take(*e, *r) } else { (*e, *r) })
            .collect(),
        history: l.known.history.clone(),
        pairing: l.known.pairing,
    });
    let p = p_value(rule, &without, known.as_ref(), whole, dispersion).ok()?;
    (p >= rule.alpha).then(|| (cell.pod.clone(), cell.t, cell.errors, p))
}

/// A significant excess that hangs on one stretch of `incident_span` after the old pods left
/// (what a shared incident during the bake looks like, with no old pods left to share it): the
/// stretch with the largest excess over the history's rate, if without it the rest is not even
/// nearly significant, p ≥ √α as for building evidence, the stretch's rate stands above the
/// rest's (see [`stands_apart`]), and an incident explains the new pods' errors at least as well
/// as a regression does ([`Apart::fit`]): its first and last interval ends, its errors, the
/// p-value without it. A regression that lasts shows outside the stretch too, at the same rate:
/// a stretch of heavy traffic holds most of a regression's excess, but not a higher ratio; and a
/// mild regression whose stretch stands a little above its rest (a busier minute, a burst)
/// still leaves the rest above what it is held to, which one ratio over both explains better
/// than an incident that leaves the rest where it was.
fn incident(
    rule: &ErrorRate,
    strata: &[Stratum],
    later: &Later,
    whole: Option<Whole>,
    dispersion: f64,
) -> Option<Incident> {
    // An incident of `incident_span` that does not begin on an interval's edge touches one
    // interval more than the span holds.
    let span = time::span(rule.incident_span.as_std()) + time::span(rule.interval.as_std());
    let excess = |(e, r): &(f64, f64)| e - r * later.rate;
    let stretch = |i: usize| {
        let start = later.times[i];
        (i..later.times.len()).take_while(move |&j| later.times[j] < start + span)
    };
    let worst = (0..later.times.len())
        .map(|i| {
            let x: f64 = stretch(i).map(|j| excess(&later.known.intervals[j])).sum();
            (x, i)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(x, _)| *x > 0.0)?
        .1;
    let inside: BTreeSet<usize> = stretch(worst).collect();
    let known = KnownRate {
        rate: later.known.rate,
        intervals: (0..later.times.len())
            .filter(|j| !inside.contains(j))
            .map(|j| later.known.intervals[j])
            .collect(),
        history: later.known.history.clone(),
        pairing: later.known.pairing,
    };
    let p = p_value(rule, strata, Some(&known), whole, dispersion).ok()?;
    let last = *inside.last()?;
    let errors = inside.iter().map(|j| later.known.intervals[*j].0).sum();
    if p < rule.alpha.sqrt() {
        return None;
    }
    let apart = stands_apart(strata, later, &inside, dispersion);
    apart.excuses().then(|| Incident {
        from: later.times[worst],
        to: later.times[last],
        errors,
        p_without: p,
        apart,
        settles_in: settles_in(rule, later, later.times[worst], later.times[last]),
    })
}

/// How long until `incident_span` of intervals follow the stretch that begins at `from` and
/// ends at `to`, when fewer do. A stretch cut short by the newest interval is taken at its
/// full length (`incident_span` past its first interval end, as [`incident`] takes it): an
/// incident that began there may go on that long, and only the minutes after it can show
/// whether the excess lasts. At most twice `incident_span`, for a stretch that begins at the
/// newest interval.
fn settles_in(rule: &ErrorRate, later: &Later, from: Millis, to: Millis) -> Option<Millis> {
    let needed = time::span(rule.incident_span.as_std());
    let last = later.times.last().copied().unwrap_or(to);
    let settled_at = to.max(from + needed) + needed;
    (last < settled_at).then_some(settled_at - last)
}

/// A stretch after the old pods left taken for a shared incident: its first and last interval
/// ends, its errors, the p-value without it, and how far its rate stands above the rest's.
struct Incident {
    from: Millis,
    to: Millis,
    errors: f64,
    p_without: f64,
    apart: Apart,
    /// How long until `incident_span` of the new pods' intervals follow the stretch, when
    /// fewer do: until then they are too few to show whether the excess lasts beyond it, as a
    /// regression's would.
    settles_in: Option<Millis>,
}

/// The new pods' errors beside the old pods, and what the old pods beside them say of them.
struct Beside {
    observed: f64,
    /// The Mantel-Haenszel rate ratio (infinite, `None`, when the old pods made no error).
    ratio: Option<f64>,
    /// The errors the old pods predict: the observed errors over the Mantel-Haenszel ratio,
    /// which weighs each interval by the old pods' share of its requests (a draining old
    /// pod's few error-free requests count for little); with no new errors, the old pods' rate
    /// interval by interval; `None` when the old pods made no error beside them.
    expected: Option<f64>,
}

/// [`Beside`] of non-empty strata.
fn beside(strata: &[Stratum]) -> Result<Beside, stats::StatsError> {
    let observed: f64 = strata.iter().map(|s| s.errors_new).sum();
    let (num, den) = stats::mantel_haenszel_rate_ratio(strata)?;
    let (ratio, expected) = if den > 0.0 && num > 0.0 {
        (Some(num / den), Some(observed * den / num))
    } else if den > 0.0 {
        // No new errors: nothing to scale; the old pods' rate applied interval by interval.
        let expected = strata
            .iter()
            .map(|s| s.errors_old / s.requests_old * s.requests_new)
            .sum();
        (Some(0.0), Some(expected))
    } else {
        (rate_ratio(observed, 0.0), None)
    };
    Ok(Beside {
        observed,
        ratio,
        expected,
    })
}

/// The new pods' errors beside the old pods and the errors expected of them, for the rest of
/// an incident's test: what the old pods beside them predict ([`Beside`]), so the rest follows
/// an incident they shared there; the history's `rate` where they made no error.
fn expected_beside(strata: &[Stratum], rate: f64) -> (f64, f64) {
    if strata.is_empty() {
        return (0.0, 0.0);
    }
    let requests: f64 = strata.iter().map(|s| s.requests_new).sum();
    let observed: f64 = strata.iter().map(|s| s.errors_new).sum();
    let expected = beside(strata).ok().and_then(|b| b.expected);
    (observed, expected.unwrap_or(requests * rate))
}

/// How far the stretch's errors per request stand above the rest's: the ratio of the two rates
/// (infinite when the rest made no errors; `None` when there is no rest to set the stretch
/// against, or no history rate), the one-sided p-value of [`stands_apart`], and how much
/// better an incident explains the new pods' errors than a regression does.
struct Apart {
    ratio: Option<f64>,
    p_value: f64,
    /// The log-likelihood ratio of an incident (the stretch at a rate of its own, the rest at
    /// most at what it is held to: after the old pods left, the history's bound; beside them,
    /// what they predict) against a regression (one ratio over the stretch and the rest),
    /// widened for bursts ([`stats::step_against_common_ratio`]): negative where one ratio fits
    /// better. Infinite where nothing tells the two apart, as for `p_value`, or where it cannot
    /// be computed: the guard errs on the side of the release.
    fit: f64,
}

impl Apart {
    /// Whether the stretch is taken for a shared incident: it stands above the rest, and an
    /// incident explains the new pods' errors at least as well as a regression does.
    fn excuses(&self) -> bool {
        self.p_value < INCIDENT_APART && self.fit >= INCIDENT_FIT
    }
}

/// How clearly the stretch's rate must stand above the rest's for the excess to be taken for a
/// shared incident (the one-sided level of [`stands_apart`]). A loose level, so that some sign
/// of a higher rate in the stretch is enough for the excuse: a guard that rolls back a healthy
/// release is worse than none. A rest too short to show any sign is no excuse, so a strict level
/// rolled back an incident that covered nearly all of a small rollout's bake. Measured at α,
/// √α, 0.1, 0.2 and 0.3 (BENCHMARKS.md, detection): 0.1 is the strictest that paused no
/// healthy release in a mild incident.
const INCIDENT_APART: f64 = 0.1;

/// How well an incident must explain the new pods' errors, against one ratio over all of them,
/// for the excuse ([`Apart::fit`]): at least as well, each model with one free rate where the
/// rest is at its cap. A mild regression whose busiest minutes stand a little above the rest
/// leaves the rest above where an incident would; an incident leaves it at most at its cap,
/// where the ratio is never negative. Measured at 0, −2 and −5 (BENCHMARKS.md, detection): 0
/// caught the most and paused no more healthy releases.
const INCIDENT_FIT: f64 = 0.0;

/// Whether the new pods' errors per request in the stretch stand above theirs in the rest (a
/// one-sided test, widened for bursts): an incident raises the rate in its stretch only, while
/// a regression raises it everywhere the new pods served, in proportion to their requests (a
/// stretch of heavy traffic holds most of its excess, but not a higher rate). The rest is the
/// new pods' intervals after the old pods left outside the stretch, held like the stretch to
/// the history's rate, and those beside the old pods, held to what the old pods beside them
/// predict ([`expected_beside`]); each side's expected errors are its exposure. Where the
/// history's rate is zero, or nothing is outside the stretch, or the test cannot be computed,
/// nothing tells the stretch from an incident: p = 0, the excuse stands. On the same two sides,
/// how much better an incident fits than a regression ([`Apart::fit`]).
fn stands_apart(
    strata: &[Stratum],
    later: &Later,
    inside: &BTreeSet<usize>,
    dispersion: f64,
) -> Apart {
    let (mut o_in, mut r_in, mut o_out, mut r_out) = (0.0, 0.0, 0.0, 0.0);
    for (j, (e, r)) in later.known.intervals.iter().enumerate() {
        let (o, x) = if inside.contains(&j) {
            (&mut o_in, &mut r_in)
        } else {
            (&mut o_out, &mut r_out)
        };
        *o += e;
        *x += r;
    }
    let (e_in, mut e_out) = (r_in * later.rate, r_out * later.rate);
    // An incident leaves the rest where the old version would have it: after the old pods
    // left, at most the history's bound, as the test holds it (the point rate is an estimate).
    let mut cap = r_out * later.known.rate;
    let (o_beside, e_beside) = expected_beside(strata, later.rate);
    o_out += o_beside;
    e_out += e_beside;
    cap += e_beside;
    if !(e_in > 0.0 && e_out > 0.0) {
        return Apart {
            ratio: None,
            p_value: 0.0,
            fit: f64::INFINITY,
        };
    }
    let split = Stratum {
        errors_new: o_in,
        requests_new: e_in,
        errors_old: o_out,
        requests_old: e_out,
    };
    Apart {
        ratio: Some(rate_ratio(o_in / e_in, o_out / e_out).unwrap_or(f64::INFINITY)),
        p_value: stats::poisson_rate_greater_stratified(&[split], 1.0, dispersion).unwrap_or(0.0),
        fit: stats::step_against_common_ratio((o_in, e_in), (o_out, e_out), cap, dispersion)
            .unwrap_or(f64::INFINITY),
    }
}

/// The rule on the two sides' counts. With a `warmup`, a failure must also hold without the
/// first `warmup` of the pods that began inside the window: an excess that hangs on those
/// minutes is start-up errors, which every release's pods print (the old pods theirs an hour
/// and more before), and the verdict is then the one without them. While every new pod is
/// still in its warm-up, too little without them leaves the rule inconclusive; later, too
/// little without them (restarts, a fast rollout) lets the failure stand. Only a failure is
/// judged again: leaving those minutes out everywhere would also leave out most of what the new
/// pods served beside the old ones in a fast rollout, and with it what tells a shared incident
/// in the bake from the release.
pub(super) fn error_rate(rule: &ErrorRate, new: &Counts, old: Option<&Counts>) -> Judged {
    let Some(old) = old else { return no_baseline() };
    let judged = judge_counts(rule, new, old, None);
    let warmup = time::span(rule.warmup.as_std());
    if warmup == 0 || !matches!(judged, Judged::Decided { fail: true, .. }) {
        return judged;
    }
    let start = earliest(new, old).unwrap_or(0);
    let young = || all_young(new, warmup, time::span(rule.interval.as_std()));
    match judge_counts(rule, new, old, Some((start, warmup))) {
        Judged::Decided {
            fail: false,
            reason,
            evidence,
            unsettled,
            building,
            ..
        } => Judged::Decided {
            fail: false,
            reason: format!(
                "significant only with the first {} of the pods that began in the window, as start-up errors are (every release's pods print them); without them: {reason}",
                rule.warmup
            ),
            evidence,
            warn_only: false,
            building,
            unsettled,
        },
        // Every new pod still in its warm-up: nothing tells the excess from start-up errors
        // yet, so the failure waits (the streak neither grows nor breaks). Older pods with too
        // little left without those minutes (restarts, a fast rollout) are judged on the whole.
        Judged::Missing(why) | Judged::NoBaseline(why) if young() => Judged::Missing(format!(
            "significant only with the first {} of the pods that began in the window, which start-up errors could explain; without them: {why}",
            rule.warmup
        )),
        Judged::Missing(_) | Judged::NoBaseline(_) | Judged::Decided { fail: true, .. } => judged,
    }
}

/// [`error_rate`] on the counts, with each pod's intervals in `warming` (the window's start
/// and the warm-up's length) left out for pods that began after that start.
fn judge_counts(
    rule: &ErrorRate,
    new: &Counts,
    old: &Counts,
    warming: Option<(Millis, Millis)>,
) -> Judged {
    let (new_side, old_side) = match (
        side("new", new, rule, warming),
        side("old", old, rule, warming),
    ) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return Judged::Missing(e),
    };
    let timed = strata(&new_side, &old_side);
    let strata: Vec<Stratum> = timed.iter().map(|(_, s)| *s).collect();
    let bound = history_bound(rule, &old_side);
    let later = later(rule, &new_side, &old_side, bound);
    let whole = window_bound(rule, &strata, &old_side, bound);
    let baseline = match (strata.is_empty(), &later) {
        (true, None) => {
            return Judged::Missing(
                "the new and old pods never served requests in the same interval".into(),
            );
        }
        (true, Some(_)) => Baseline::History,
        (false, Some(_)) => Baseline::Both,
        (false, None) if whole.is_some() => Baseline::Both,
        (false, None) => Baseline::Concurrent,
    };
    // Each side's cells, read once: for the dispersion, and the new side's for the burst guard.
    let new_cells = cells(new, &new_side.skipped);
    let pairs = |cells: &[Cell]| {
        cells
            .iter()
            .map(|c| (c.errors, c.requests))
            .collect::<Vec<_>>()
    };
    let dispersion =
        stats::dispersion(&[&pairs(&new_cells), &pairs(&cells(old, &old_side.skipped))]);
    let known = later.as_ref().map(|l| &l.known);
    let computed = effect(&strata, later.as_ref())
        .and_then(|effect| Ok((effect, tested(rule, &strata, known, whole, dispersion)?)));
    let ((observed, ratio, expected), (p_value, window_bound)) = match computed {
        Ok(c) => c,
        Err(e) => return Judged::Missing(format!("the test could not be computed: {e}")),
    };
    let significant = p_value < rule.alpha;
    let burst = significant
        .then(|| burst(rule, &new_cells, &timed, later.as_ref(), whole, dispersion))
        .flatten();
    let incident = significant
        .then_some(later.as_ref())
        .flatten()
        .and_then(|l| incident(rule, &strata, l, whole, dispersion));
    let compared_requests: f64 = strata.iter().map(|s| s.requests_new).sum::<f64>()
        + later.as_ref().map_or(0.0, |l| l.evidence.requests);
    let evidence = ErrorRateEvidence {
        strata: strata.len(),
        observed_errors: observed,
        expected_errors: expected,
        ratio,
        rate_increase: (observed - expected) / compared_requests,
        dispersion,
        test: rule.test,
        p_value,
        alpha: rule.alpha,
        tolerance: rule.tolerance,
        min_ratio: rule.min_ratio,
        min_rate_increase: rule.min_rate_increase,
        min_errors: rule.min_errors,
        intervals_left_out: new_side.skipped.intervals.len() + old_side.skipped.intervals.len(),
        pod_intervals_left_out: new_side.skipped.pod_intervals() + old_side.skipped.pod_intervals(),
        pod_intervals_warming: new_side.skipped.warming_intervals()
            + old_side.skipped.warming_intervals(),
        pod_intervals_unpaired: new_side.skipped.unpaired_intervals()
            + old_side.skipped.unpaired_intervals(),
        baseline,
        window_bound,
        history: later.map(|l| Box::new(l.evidence)),
        intervals: Vec::new(),
        new: new_side.totals.clone(),
        old: old_side.totals.clone(),
    };
    let window = || intervals(&new_side, &old_side);
    decide(rule, evidence, Guards { burst, incident }, window)
}

/// Both sides' counts interval by interval, for the record (errors capped at the requests, as
/// in the totals).
fn intervals(new: &Side, old: &Side) -> Vec<IntervalCounts> {
    let cell = |s: &Side, t: &Millis| s.requests.get(t).map(|r| [capped(&s.errors, t, *r), *r]);
    let times: BTreeSet<Millis> = new
        .requests
        .keys()
        .chain(old.requests.keys())
        .copied()
        .collect();
    times
        .iter()
        .map(|t| IntervalCounts {
            t: time::to_seconds(*t),
            new: cell(new, t),
            old: cell(old, t),
        })
        .collect()
}

/// What can keep a significant excess from failing the rule.
struct Guards {
    burst: Option<(String, Millis, f64, f64)>,
    incident: Option<Incident>,
}

/// The verdict on the evidence: every condition of the rule must hold, and no burst or
/// shared incident carry it.
/// `window` gives the intervals the evidence keeps when the verdict fails or is building (what
/// a report plots); a pass keeps none, so its record stays small and nothing is built for it.
fn decide(
    rule: &ErrorRate,
    mut e: ErrorRateEvidence,
    guards: Guards,
    window: impl FnOnce() -> Vec<IntervalCounts>,
) -> Judged {
    let significant = e.p_value < rule.alpha;
    let large = ratio_reached(e.ratio, e.observed_errors, rule.min_ratio);
    let material = e.rate_increase >= rule.min_rate_increase;
    let enough = e.observed_errors >= rule.min_errors;
    // Every condition of the rule met, and no burst carrying it: only an incident can hold it.
    let but_for_an_incident = significant && large && material && enough && guards.burst.is_none();
    let fail = but_for_an_incident && guards.incident.is_none();
    // Evidence building: an excess large enough to matter that is significant but held back
    // (one burst, too few errors yet), or nearly significant (p below the square root of
    // alpha). Such a pass keeps the streak; a clean pass resets it, and so does an excess
    // carried by a shared incident after the old pods left (that is evidence the release is
    // not the cause).
    let near = e.p_value < rule.alpha.sqrt();
    let building = !fail && large && material && (significant || near) && guards.incident.is_none();
    // An excess that only an incident too recent to tell from a lasting regression keeps from
    // failing the rule.
    let unsettled = guards
        .incident
        .as_ref()
        .filter(|_| but_for_an_incident)
        .and_then(|i| i.settles_in);
    if fail || building {
        e.intervals = window();
    }
    let mut reason = headline(&e, significant);
    if significant && !fail {
        let mut why = Vec::new();
        if !large {
            why.push(format!("ratio below min_ratio {}", rule.min_ratio));
        }
        if !material {
            why.push(format!(
                "increase below min_rate_increase {}",
                fmt_pct(rule.min_rate_increase)
            ));
        }
        if !enough {
            why.push(format!(
                "fewer than min_errors {}",
                fmt_num(rule.min_errors)
            ));
        }
        if let Some((pod, t, errors, p)) = &guards.burst {
            why.push(format!(
                "carried by one burst ({} errors from {pod} in the interval ending {}; p={} without it)",
                fmt_num(*errors),
                moment(*t),
                fmt_p(*p)
            ));
        }
        if let Some(i) = &guards.incident {
            let apart = match i.apart.ratio {
                Some(r) if r.is_finite() => format!(
                    "×{r:.2} the rest's errors per request, p={}; an incident fits the new pods' errors at least as well as one ratio over all, log-likelihood ratio {:.1}",
                    fmt_p(i.apart.p_value),
                    i.apart.fit
                ),
                Some(_) => format!("none in the rest's requests, p={}", fmt_p(i.apart.p_value)),
                None => "nothing to set it against".to_string(),
            };
            let unsettled = i.settles_in.map_or(String::new(), |ms| {
                format!(
                    "; too recent to tell from a regression that lasts: settled in {} s, once {} follows it",
                    time::to_seconds_ceil(ms),
                    rule.incident_span
                )
            });
            why.push(format!(
                "carried by one stretch after the old pods left, as a shared incident would be ({} errors in the intervals ending {} to {}, {apart}; p={} without it{unsettled})",
                fmt_num(i.errors),
                moment(i.from),
                moment(i.to),
                fmt_p(i.p_without)
            ));
        }
        let _ = write!(reason, "; significant but {}", why.join(", "));
    }
    Judged::Decided {
        fail,
        reason,
        warn_only: false,
        building,
        unsettled,
        evidence: Evidence::ErrorRate(e),
    }
}

/// An interval end as a person reads it.
fn moment(t: Millis) -> String {
    jiff::Timestamp::from_millisecond(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// The numbers of the comparison, in one line.
fn headline(e: &ErrorRateEvidence, significant: bool) -> String {
    let mut reason = format!(
        "new {} ({}/{}) vs old {} ({}/{}); ",
        fmt_pct(e.new.rate),
        fmt_num(e.new.errors),
        fmt_num(e.new.requests),
        fmt_pct(e.old.rate),
        fmt_num(e.old.errors),
        fmt_num(e.old.requests),
    );
    match &e.history {
        None => {
            let _ = write!(
                reason,
                "over {} interval(s) the new pods made {} errors where the old pods' rate predicts {}",
                e.strata,
                fmt_num(e.observed_errors),
                fmt_num(e.expected_errors)
            );
        }
        Some(h) => {
            if e.strata > 0 {
                let _ = write!(
                    reason,
                    "over {} interval(s) beside the old pods and ",
                    e.strata
                );
            } else {
                reason.push_str("over ");
            }
            let _ = write!(
                reason,
                "{} interval(s) after they left (held to the old version's history, {} in {} requests from {} to {}: at most {}), the new pods made {} errors where the old rate predicts {}",
                h.intervals,
                fmt_num(h.old_errors),
                fmt_num(h.old_requests),
                h.from,
                h.to,
                fmt_pct(h.rate_bound),
                fmt_num(e.observed_errors),
                fmt_num(e.expected_errors)
            );
        }
    }
    let _ = write!(
        reason,
        ": ×{}, p={} {} α={}",
        e.ratio.map_or("∞".to_string(), |r| format!("{r:.2}")),
        fmt_p(e.p_value),
        if significant { "<" } else { "≥" },
        e.alpha
    );
    if let Some(w) = &e.window_bound {
        let _ = write!(
            reason,
            " (the smaller p, doubled, of that and every new interval against the old version's {} errors in {} requests over the window, its rate unknown (universal inference): p={})",
            fmt_num(w.old_errors),
            fmt_num(w.old_requests),
            fmt_p(w.p_value)
        );
    }
    if e.dispersion > 1.0 {
        let _ = write!(
            reason,
            " (errors come in bursts: test widened ×{:.1})",
            e.dispersion
        );
    }
    if e.intervals_left_out > 0 {
        let _ = write!(
            reason,
            " ({} side-interval(s) left out: damaged points or gaps in the answers)",
            e.intervals_left_out
        );
    }
    if e.pod_intervals_left_out > 0 {
        let _ = write!(
            reason,
            " ({} pod-interval(s) left out, errors and requests alike: a pod's counters reset when its container restarted, until its error counter came back)",
            e.pod_intervals_left_out
        );
    }
    if e.pod_intervals_warming > 0 {
        let _ = write!(
            reason,
            " ({} pod-interval(s) of pods in their warm-up left out, errors and requests alike)",
            e.pod_intervals_warming
        );
    }
    if e.pod_intervals_unpaired > 0 {
        let _ = write!(
            reason,
            " ({} pod-interval(s) left out: a pod's error count where its request count was missing, the pod absent there)",
            e.pod_intervals_unpaired
        );
    }
    reason
}

#[cfg(test)]
mod tests;
