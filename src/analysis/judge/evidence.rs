//! The numbers behind a verdict, as records keep them: one evidence type per check kind, each
//! side's counts or samples, and what the new pods were compared with.
//!
//! Owns the shape of the evidence (its serde form is the records schema) and the one line that
//! says what the new pods were compared with (`Evidence::baseline_line`, for Events); the judges
//! fill it in. Plain data: no judging here.

use serde::{Deserialize, Serialize};

use super::{LogsEvidence, fmt_hms, fmt_num, fmt_pct};
use crate::analysis::rules::{Direction, ProportionTest, Unit};

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The numbers behind a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Evidence {
    /// From an `error_rate` check.
    ErrorRate(ErrorRateEvidence),
    /// From a `compare` check.
    Compare(CompareEvidence),
    /// From an `absolute` check.
    Absolute(AbsoluteEvidence),
    /// From a `logs` check.
    Logs(LogsEvidence),
}

impl Evidence {
    /// The kind of check that produced it, as written in rule files (`Check::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::ErrorRate(_) => "error_rate",
            Evidence::Compare(_) => "compare",
            Evidence::Absolute(_) => "absolute",
            Evidence::Logs(_) => "logs",
        }
    }

    /// What the new pods were compared with, its span and its numbers, in one line, for the
    /// checks that choose their baseline (error rates, compare checks); `None` for the others.
    /// The verdict's reason and the report say more; this is what an Event has room for.
    pub fn baseline_line(&self) -> Option<String> {
        match self {
            Evidence::ErrorRate(x) => Some(x.baseline_line()),
            Evidence::Compare(x) => Some(x.baseline_line()),
            Evidence::Absolute(_) | Evidence::Logs(_) => None,
        }
    }
}

/// `errors/requests errors, rate`.
fn counts(errors: f64, requests: f64) -> String {
    format!(
        "{}/{} errors, {}",
        fmt_num(errors),
        fmt_num(requests),
        fmt_pct(errors / requests.max(1.0))
    )
}

/// `HH:MM:SS–HH:MM:SS UTC`.
fn span(from: jiff::Timestamp, to: jiff::Timestamp) -> String {
    format!("{}–{} UTC", fmt_hms(from), fmt_hms(to))
}

impl ErrorRateEvidence {
    /// `the old pods in 12 interval(s) (3/4000 errors, 0.075%) and the old version's history
    /// 11:02:00–12:01:00 UTC (…, held to at most 0.09%)`.
    fn baseline_line(&self) -> String {
        let mut parts = Vec::new();
        if self.baseline != Baseline::History {
            parts.push(format!(
                "the old pods in {} interval(s) ({})",
                self.strata,
                counts(self.old.errors, self.old.requests)
            ));
        }
        if let Some(h) = &self.history {
            parts.push(format!(
                "the old version's history {} ({}, held to at most {})",
                span(h.from, h.to),
                counts(h.old_errors, h.old_requests),
                fmt_pct(h.rate_bound)
            ));
        } else if let Some(w) = &self.window_bound {
            parts.push(format!(
                "the old version over the window ({}, held to at most {})",
                counts(w.old_errors, w.old_requests),
                fmt_pct(w.rate_bound)
            ));
        }
        if parts.is_empty() {
            return self.baseline.describe().to_string();
        }
        parts.join(" and ")
    }
}

impl CompareEvidence {
    /// `the old pods at the same moments (3 pod(s), 120 samples, median 0.21)`, or `the old
    /// version's level 0.021 over 11:30:00–12:00:00 UTC (a regression needs ×1.15)`.
    fn baseline_line(&self) -> String {
        let at_load = self.at_load.as_ref().map_or(String::new(), |m| {
            format!(", at the old version's load {}", fmt_num(m.reference_load))
        });
        let Some(h) = &self.history else {
            return format!(
                "the old pods at the same moments ({} pod(s), {} samples, median {}{at_load})",
                self.old.pods,
                self.old.samples,
                fmt_num(self.old.median)
            );
        };
        let beside = h.while_both.map_or(String::new(), |r| {
            format!(
                ", and ×{} against the old pods while both served",
                fmt_num(r)
            )
        });
        let assumed = if h.unknown_drift.is_some() {
            ", its drift assumed: too short a history to measure it"
        } else {
            ""
        };
        format!(
            "the old version's level {} over {} (new {}, ×{}{at_load}; a regression needs ×{}{assumed}{beside})",
            fmt_num(h.before),
            span(h.before_from, h.before_to),
            fmt_num(h.after),
            fmt_num(h.ratio),
            fmt_num(h.needed)
        )
    }
}

/// One side's errors and requests, summed over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideCounts {
    /// Errors counted, each interval's at most its requests.
    pub errors: f64,
    /// Requests served.
    pub requests: f64,
    /// errors / requests.
    pub rate: f64,
}

/// The numbers behind an `error_rate` verdict: both sides' counts, the test, and the rule's
/// thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateEvidence {
    /// The new pods' totals over the window.
    pub new: SideCounts,
    /// The old pods' totals over the window.
    pub old: SideCounts,
    /// Intervals in which both sides served requests: the strata of the test.
    pub strata: usize,
    /// New errors in those intervals.
    pub observed_errors: f64,
    /// New errors the old pods' rate in each interval predicts for the new pods' traffic.
    pub expected_errors: f64,
    /// observed / expected (`null` for infinity: errors where the old side had none).
    pub ratio: Option<f64>,
    /// (observed − expected) / the new pods' requests in those intervals.
    pub rate_increase: f64,
    /// How much more than Poisson the counts scatter between intervals (≥ 1); the test's
    /// variance is widened by it.
    pub dispersion: f64,
    /// Which test computed `p_value` (the rule's `test`).
    pub test: ProportionTest,
    /// The test's one-sided p-value against new rate ≤ `tolerance` × old rate (with
    /// `sequential`, valid over every look, and already combined with `window_bound`'s).
    pub p_value: f64,
    /// The rule's `alpha`: significant below it.
    pub alpha: f64,
    /// The rule's `tolerance`: the null hypothesis is new rate ≤ tolerance × old rate.
    pub tolerance: f64,
    /// The rule's `min_ratio`: the floor for `ratio`.
    pub min_ratio: f64,
    /// The rule's `min_rate_increase`: the floor for `rate_increase`, in errors per request.
    pub min_rate_increase: f64,
    /// The rule's `min_errors`: the floor for `observed_errors`.
    pub min_errors: f64,
    /// Side-intervals left out because a point was damaged (NaN, ±Inf, negative) or an error
    /// series had a gap, that no pod's counter reset explains: never read as zero.
    #[serde(default)]
    pub intervals_left_out: usize,
    /// One pod's intervals left out, errors and requests alike, after its counters reset (its
    /// container restarted) until its error counter came back; the other pods' counts kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pod_intervals_left_out: usize,
    /// One pod's intervals left out, errors and requests alike, in its first `warmup` (a pod
    /// that began inside the window).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pod_intervals_warming: usize,
    /// One pod's error points left out where its request series had no point, or where it had
    /// no request series at all (a partial answer with no warning): its requests unknown there.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pod_intervals_unpaired: usize,
    /// What the new pods were compared with.
    #[serde(default)]
    pub baseline: Baseline,
    /// The intervals after the old pods left, judged against the old version's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Box<HistoryEvidence>>,
    /// Every new interval, beside the old pods and after them, against the old version over the
    /// window (its rate unknown): counted when the comparison beside the old pods points the
    /// same way (the verdict's p is then the smaller of the two tests', doubled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_bound: Option<WindowBound>,
    /// Each interval of the window as the judge read it, oldest first: kept with a failing
    /// verdict or one building towards it (what a report plots), empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalCounts>,
}

/// One interval of an error-rate window: each side's errors and requests, absent where that
/// side served no requests or the interval was left out as damaged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalCounts {
    /// The interval's end, in unix seconds.
    pub t: f64,
    /// The new pods' `[errors, requests]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<[f64; 2]>,
    /// The old pods' `[errors, requests]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<[f64; 2]>,
}

/// What a verdict (an error rate's, a compare check's) compared the new pods with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The old pods in the same intervals, only.
    #[default]
    Concurrent,
    /// The old version's history, only (its pods were gone before the new pods served).
    History,
    /// Both: the old pods in the same intervals while they served, and the old version's
    /// history over the window (after they left, or from the first new interval when the
    /// comparison beside them points the same way).
    Both,
}

impl Baseline {
    /// How a person reads it.
    pub fn describe(self) -> &'static str {
        match self {
            Baseline::Concurrent => "the old pods in the same intervals",
            Baseline::History => "the old version's history",
            Baseline::Both => {
                "the old pods in the same intervals and the old version's history over the window"
            }
        }
    }
}

/// The new pods' intervals, all of them, against the old version over the whole window, its
/// rate unknown: a universal-inference test of the two totals
/// ([`stats::rate_ratio_universal_log_evalue`](crate::analysis::stats::rate_ratio_universal_log_evalue)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowBound {
    /// The upper end of the old rate's 1 − alpha confidence interval over the window (what the
    /// intervals after the old pods left are held to; before stop 24, this test's too).
    pub rate_bound: f64,
    /// The old version's errors over the window (0 in verdicts recorded before stop 24).
    #[serde(default)]
    pub old_errors: f64,
    /// The old version's requests over the window (0 in verdicts recorded before stop 24).
    #[serde(default)]
    pub old_requests: f64,
    /// The always-valid p-value of the test.
    pub p_value: f64,
}

/// The comparison of the new pods, after the old pods left, with the old version's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvidence {
    /// The old version's errors over the window: the history.
    pub old_errors: f64,
    /// The old version's requests over the window.
    pub old_requests: f64,
    /// The span of the history: its first interval end.
    pub from: jiff::Timestamp,
    /// The span of the history: its last interval end.
    pub to: jiff::Timestamp,
    /// The upper end of the old rate's 1 − alpha confidence interval: the rate the new pods
    /// are held to.
    pub rate_bound: f64,
    /// Intervals after the old pods left.
    pub intervals: usize,
    /// The new pods' errors in those intervals.
    pub errors: f64,
    /// The new pods' requests in those intervals.
    pub requests: f64,
    /// The errors the old version's rate (not its bound) predicts for those requests.
    pub expected: f64,
}

/// Summary of one side's samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSummary {
    /// Samples judged (inside the window, after warm-up).
    pub samples: usize,
    /// Pods with samples judged.
    pub pods: usize,
    /// The median of the samples, in the series' unit.
    pub median: f64,
    /// The 90th percentile of the samples.
    pub p90: f64,
    /// The largest sample.
    pub max: f64,
    /// Samples left out as pod warm-up: each pod's first `warmup`, and past it the points still
    /// above what the same pod did later, up to twice `warmup` from its start.
    pub warmup_dropped: usize,
    /// The side's median across its pods at each step of the window, `[unix seconds, value]`:
    /// the series the report plots at the query's step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<[f64; 2]>,
}

/// The numbers behind a `compare` verdict: both sides' samples, the test, and the rule's
/// thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareEvidence {
    /// The new pods' samples.
    pub new: SampleSummary,
    /// The old pods' samples.
    pub old: SampleSummary,
    /// Whether higher or lower values are worse (the rule's `direction`).
    pub direction: Direction,
    /// Median of the worse-oriented side's time-aligned ratios over the other's (> 1 is worse).
    pub median_ratio: Option<f64>,
    /// Hodges-Lehmann shift of the time-aligned differences, in the series' unit (> 0 is worse).
    pub shift: f64,
    /// U of the new side's time-aligned samples.
    pub u_statistic: f64,
    /// The Mann-Whitney test's one-sided p-value that the new side is worse (against the
    /// history: the share of the old version's own drifts at least as large).
    pub p_value: f64,
    /// The rule's `alpha`: significant below it.
    pub alpha: f64,
    /// The rule's `min_ratio`: the floor for `median_ratio`.
    pub min_ratio: f64,
    /// The rule's `min_shift`: the floor for `shift`, in the series' unit.
    pub min_shift: f64,
    /// What the query's number is (the rule's `unit`).
    #[serde(default, skip_serializing_if = "Unit::is_number")]
    pub unit: Unit,
    /// What the new pods were compared with: the old pods at the same moments, or (too few
    /// such moments) the old version's level before its pods left.
    #[serde(default)]
    pub baseline: Baseline,
    /// New pods that are each worse by the effect floor and beyond every old pod's own level
    /// (once the old pods are gone: beyond the 95th percentile of their rises, see
    /// [`CompareHistory::pod_bar`]); more than half of the new pods must be, so that one pod on
    /// a noisy node does not fail a release.
    #[serde(default)]
    pub pods_worse: usize,
    /// The new pods with samples.
    #[serde(default)]
    pub pods_judged: usize,
    /// The comparison with the old version's level before its pods left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Box<CompareHistory>>,
    /// With a `load` query: the old version's cost model both sides were judged at (every
    /// number above is then at the old version's load, not as measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_load: Option<AtLoad>,
}

/// The old version's cost model a compare check with `load` judged both sides at: cost =
/// `fixed` + `per_unit` × load, fitted on `samples` of the old version at loads `low` to `high`
/// (its 5th to 95th percentile, beyond which it is held at the edge); the samples are shown at
/// its median load `reference_load`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtLoad {
    /// The cost at no load.
    pub fixed: f64,
    /// The cost of one more unit of load.
    pub per_unit: f64,
    /// The old version's median load.
    pub reference_load: f64,
    /// The old version's 5th percentile of load.
    pub low: f64,
    /// Its 95th percentile.
    pub high: f64,
    /// The old samples the model was fitted on.
    pub samples: usize,
    /// Samples of either side left out for want of a load at their moment.
    #[serde(default)]
    pub without_load: usize,
}

/// A compare check judged against the old version's level before its pods left, and the drift
/// the old version showed by itself over the same gap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareHistory {
    /// The start of the stretch of the old version's level: the `window` before its last
    /// sample.
    pub before_from: jiff::Timestamp,
    /// The end of that stretch: the old version's last sample.
    pub before_to: jiff::Timestamp,
    /// The median of the old version's per-moment medians over that stretch.
    pub before: f64,
    /// The median of the new pods' per-moment medians (after warm-up) over the window.
    pub after: f64,
    /// after / before, oriented so that > 1 is worse.
    pub ratio: f64,
    /// From the middle of the old stretch to the middle of the new one.
    pub gap_seconds: f64,
    /// The largest worse-ward change of the old version's own level between two stretches
    /// that far apart within `history_span`, as a ratio (1 when it never moved worse-ward).
    pub largest_drift: f64,
    /// How many pairs of stretches `largest_drift` was measured on.
    pub drift_pairs: usize,
    /// The ratio a regression must reach: the larger of min_ratio and largest_drift (and
    /// `unknown_drift` when set).
    pub needed: f64,
    /// The rule's `unknown_drift`, when the history held fewer than `min_drift_pairs` pairs
    /// (`drift_pairs`): the drift assumed because it could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_drift: Option<f64>,
    /// The 95th percentile of the old pods' rises above the whole old version over the same
    /// gap (every old pod at every pair of stretches, pooled): each new pod counted as worse
    /// is beyond it and `needed`.
    #[serde(default)]
    pub pod_bar: f64,
    /// Where one more old pod's level would fall, by the spread of the old pods' levels in the
    /// window before they left (the 95% prediction bound): each new pod counted as worse is
    /// beyond it too. `None` with fewer than two old pods there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_bar: Option<f64>,
    /// The new pods' median ratio to the old pods at the moments both served (after warm-up),
    /// over the history span, when there were enough: a regression must show there too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub while_both: Option<f64>,
    /// Where the old version's series began.
    pub history_from: jiff::Timestamp,
}

impl CompareHistory {
    /// The bar each new pod's level had to beat: the largest of the regression's (`needed`),
    /// the old pods' own rises (`pod_bar`) and their spread (`spread_bar`).
    pub fn pod_needed(&self) -> f64 {
        pod_needed(self.needed, self.pod_bar, self.spread_bar)
    }
}

/// The largest of the three bars a new pod's level must beat after the old pods left.
pub(super) fn pod_needed(needed: f64, pod_bar: f64, spread_bar: Option<f64>) -> f64 {
    needed.max(pod_bar).max(spread_bar.unwrap_or(1.0))
}

/// The numbers behind an `absolute` verdict: the new pods' quantile against the threshold, and the
/// old pods' at the same moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsoluteEvidence {
    /// The new pods' samples (those at moments of shared pressure left out).
    pub new: SampleSummary,
    /// The old pods' samples at the moments judged; `None` when there were none to compare with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<SampleSummary>,
    /// The rule's `quantile` of the samples that is compared with the threshold.
    pub quantile: f64,
    /// The new side's quantile.
    pub value: f64,
    /// The old pods' same quantile at the same moments; `None` without old samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_value: Option<f64>,
    /// The rule's `threshold`, in the series' unit.
    pub threshold: f64,
    /// Whether higher or lower values are worse (the rule's `direction`).
    pub direction: Direction,
    /// What the query's number is (the rule's `unit`).
    #[serde(default, skip_serializing_if = "Unit::is_number")]
    pub unit: Unit,
}
