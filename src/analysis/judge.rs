//! The judge: one rule, the observations of the new and old ReplicaSets over one window, one
//! verdict with the numbers behind it.
//!
//! Pure functions over plain data: no queries, no clock, no Kubernetes. [`crate::analysis::evaluate`]
//! fetches the observations; `backtest`, the controller and the benchmark all judge through
//! [`judge`]. Missing data never fails a rule unless the rule says so, and a broken query is
//! always inconclusive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::rules::{Absolute, Action, Check, Direction, OnMissing, Rule, WARMUP_REACH};
use crate::analysis::source::{LogCounts, Series, SourceError, SourceErrorKind};
use crate::analysis::stats;
use crate::analysis::time::{self, Millis};

/// What a rule concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new pods did not do worse by the rule's test (or `on_missing: pass` applied).
    Pass,
    /// No conclusion: missing or insufficient data, a failed query, or no old pods to compare with.
    Inconclusive,
    /// The new pods did worse by the rule's test (or `on_missing: fail` applied): the rule's action
    /// applies.
    Fail,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Fail => "fail",
        })
    }
}

/// Error and request counts of one side: one point per interval of the window, each the count
/// in that interval (series are summed). Empty where the query returned nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// The errors query's series, each point the errors of one interval.
    pub errors: Vec<Series>,
    /// The requests query's series, each point the requests of one interval.
    pub requests: Vec<Series>,
}

/// What was fetched for one rule. The old side is `None` when the rollout has no old ReplicaSet
/// left to compare with.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// An `error_rate` check's errors and requests.
    Counts {
        /// The new ReplicaSet's counts.
        new: Counts,
        /// The old ReplicaSets' counts.
        old: Option<Counts>,
    },
    /// A `compare` or `absolute` check's query answer, one series per pod.
    Series {
        /// The new ReplicaSet's series.
        new: Vec<Series>,
        /// The old ReplicaSets' series (`None` also when an absolute check does not look at them).
        old: Option<Vec<Series>>,
    },
    /// A `compare` check's answer with the load each pod carried at each moment (its `load`
    /// query), one series per pod on both: judged at the old version's load (the old version's
    /// cost modelled as a fixed part and a part per unit of load).
    SeriesAtLoad {
        /// The new ReplicaSet's series.
        new: Vec<Series>,
        /// The old ReplicaSets' series.
        old: Option<Vec<Series>>,
        /// The new ReplicaSet's pods' loads.
        new_load: Vec<Series>,
        /// The old ReplicaSets' pods' loads.
        old_load: Option<Vec<Series>>,
    },
    /// PHP errors from pod logs.
    Logs {
        /// The new ReplicaSet's pods' errors.
        new: LogCounts,
        /// The old ReplicaSets' pods' errors, merged.
        old: Option<LogCounts>,
    },
    /// A query failed: the error, as the source reported it.
    Failed(SourceError),
}

/// The window an observation covers and the warm-up to drop, in [`Millis`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Evaluation time: the end of the window.
    pub at: Millis,
    /// Start of the window (`at − window`).
    pub start: Millis,
    /// Where the range query began (`start` less the warm-up's reach, [`Window::reach`]); a
    /// series whose first point comes later belongs to a pod that started inside the query
    /// range.
    pub query_start: Millis,
    /// How long after its first sample a pod that started inside the query range is left out
    /// at least (0 for error-rate and logs rules); up to twice it, see [`Window::reach`].
    pub warmup: Millis,
    /// The query's step (0 for error-rate and logs rules).
    pub step: Millis,
}

impl Window {
    /// The window from `start` to `at`, its range queries reaching back over the warm-up's
    /// reach.
    pub fn new(at: Millis, start: Millis, warmup: Millis, step: Millis) -> Window {
        Window {
            at,
            start,
            query_start: start - warmup * WARMUP_REACH,
            warmup,
            step,
        }
    }

    /// How far past a pod's first point its warm-up may reach: the fixed `warmup`, and as
    /// long again for what is still settling ([`settle`]).
    pub fn reach(&self) -> Millis {
        self.warmup * WARMUP_REACH
    }

    /// The same window widened back to `span` before its end (a compare check's history).
    pub fn widened_to(&self, span: std::time::Duration) -> Window {
        Window::new(self.at, self.at - time::span(span), self.warmup, self.step)
    }
}

/// One rule's conclusion and everything a person needs to see why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The rule's name.
    pub rule: String,
    /// What the rule concluded.
    pub outcome: Outcome,
    /// The rule's action (what a failure asks for).
    pub action: Action,
    /// One line: the numbers and the comparison that decided.
    pub reason: String,
    /// The numbers behind the conclusion; `None` when there was none to reach (missing data, a
    /// failed query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The queries as sent, filled in by the evaluator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<SentQuery>,
    /// The query error, if a query failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its kind (records written before it was kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<SourceErrorKind>,
    /// A pass on evidence that is building towards a failure (significant but held back by
    /// the rule's other conditions: a burst, too few errors yet; or nearly significant): it
    /// keeps the rule's streak of failures rather than resetting it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub building: bool,
    /// A pass that the evidence so far cannot settle, and the seconds until it can: a
    /// significant excess set aside as a shared incident that ended too recently for the
    /// minutes after it to show whether it lasts, as a regression's would. An analysis whose
    /// time is up goes on until they can (see
    /// [`crate::analysis::decision::Decision::open_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles_in: Option<u64>,
    /// The judge let a failure only warn where the rule asks for more (no baseline to rule out
    /// a shared cause): not evidence for the rule's own action, so it neither counts towards
    /// nor resets the streak. What the decision needs of the rule travels with its verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warn_only: bool,
    /// How many failing evaluations in a row the rule needs before its action (its
    /// `consecutive`, recorded when more than one).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub consecutive: u32,
    /// The rule's test holds its level over any number of looks (`Check::valid_over_looks`):
    /// an analysis may go on looking while its streak is under way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub valid_over_looks: bool,
}

impl Verdict {
    /// What the verdict compared the new pods with, for the checks that choose (error rates,
    /// compare checks); `None` for the others and where there was no evidence.
    pub fn baseline(&self) -> Option<Baseline> {
        match self.evidence.as_ref()? {
            Evidence::ErrorRate(e) => Some(e.baseline),
            Evidence::Compare(e) => Some(e.baseline),
            Evidence::Absolute(_) | Evidence::Logs(_) => None,
        }
    }

    /// That baseline's span and numbers in one line ([`Evidence::baseline_line`]).
    pub fn baseline_line(&self) -> Option<String> {
        self.evidence.as_ref()?.baseline_line()
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Which pods a query asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuerySide {
    /// The new ReplicaSet's pods.
    New,
    /// The old ReplicaSets' pods.
    Old,
}

/// Which of a rule's queries went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryName {
    /// An `error_rate` check's errors query.
    Errors,
    /// An `error_rate` check's requests query.
    Requests,
    /// A `compare` or `absolute` check's query.
    Query,
    /// A `compare` check's load query.
    Load,
    /// A `logs` rule's read of the pods' logs (its text says which).
    Logs,
}

impl QuerySide {
    /// The name used in records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            QuerySide::New => "new",
            QuerySide::Old => "old",
        }
    }
}

impl QueryName {
    /// The name used in records and reports (as the query's key in the rule file).
    pub fn as_str(self) -> &'static str {
        match self {
            QueryName::Errors => "errors",
            QueryName::Requests => "requests",
            QueryName::Query => "query",
            QueryName::Load => "load",
            QueryName::Logs => "logs",
        }
    }
}

/// A query as it went to the metric source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentQuery {
    /// Which pods it asked about.
    pub side: QuerySide,
    /// Which of the rule's queries it was.
    pub name: QueryName,
    /// Shared: the same text is sent at every evaluation of a revision, and a report reading
    /// 100,000 evaluations keeps it once (see `records::load`).
    pub promql: std::sync::Arc<str>,
}

/// Judges one rule on one observation.
pub fn judge(rule: &Rule, window: &Window, observation: &Observation) -> Verdict {
    let duplicate = duplicate_pod(observation);
    let judged = match (&rule.check, observation) {
        (_, _) if duplicate.is_some() => Judged::Missing(format!(
            "two series for pod {}: the query must return one series per pod (aggregate it, e.g. sum by (pod) (...)), or the pod would count twice",
            duplicate.as_deref().unwrap_or_default()
        )),
        (_, Observation::Failed(error)) => {
            let mut v = verdict(
                rule,
                Outcome::Inconclusive,
                format!("query failed: {error}"),
            );
            v.error = Some(error.to_string());
            v.error_kind = Some(error.kind());
            return v;
        }
        (Check::ErrorRate(c), Observation::Counts { new, old }) => {
            error_rate::error_rate(c, new, old.as_ref())
        }
        (Check::Compare(c), Observation::Series { new, old }) => {
            compare::compare(c, window, new, old.as_deref())
        }
        (
            Check::Compare(c),
            Observation::SeriesAtLoad {
                new,
                old,
                new_load,
                old_load,
            },
        ) => compare::compare_at_load(
            c,
            window,
            (new, new_load),
            old.as_deref().zip(old_load.as_deref()),
        ),
        (Check::Absolute(c), Observation::Series { new, old }) => {
            absolute::absolute(c, window, new, old.as_deref())
        }
        (Check::Logs(c), Observation::Logs { new, old }) => logs::judge_logs(c, new, old.as_ref()),
        (check, _) => Judged::Missing(format!(
            "internal: a {} check was given the wrong kind of observation",
            check.kind()
        )),
    };
    let mut v = match judged {
        Judged::Decided {
            fail,
            reason,
            evidence,
            warn_only,
            building,
            unsettled,
        } => {
            let outcome = if fail { Outcome::Fail } else { Outcome::Pass };
            let mut v = verdict(rule, outcome, reason);
            v.evidence = Some(evidence);
            v.building = building && !fail;
            v.settles_in = unsettled.filter(|_| !fail).map(time::to_seconds_ceil);
            if warn_only {
                v.action = Action::Warn;
                v.warn_only = true;
            }
            v
        }
        Judged::NoBaseline(reason) => verdict(rule, Outcome::Inconclusive, reason),
        Judged::Missing(what) => {
            let (outcome, consequence) = match rule.on_missing {
                OnMissing::Inconclusive => (Outcome::Inconclusive, "inconclusive"),
                OnMissing::Pass => (Outcome::Pass, "pass (on_missing: pass)"),
                OnMissing::Fail => (Outcome::Fail, "fail (on_missing: fail)"),
            };
            verdict(
                rule,
                outcome,
                format!("missing data: {what} → {consequence}"),
            )
        }
    };
    if let Some(note) = unusable_note(observation, window) {
        v.reason.push_str(&note);
    }
    v
}

/// What a series observation held that is no number (NaN, ±Inf: a division by zero, a
/// damaged answer) inside the rule's window (not over a history span before it): left out,
/// never read as zero, and said.
fn unusable_note(observation: &Observation, w: &Window) -> Option<String> {
    let count = |series: &[Series]| -> usize {
        series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|p| {
                let t = time::from_seconds(p.t);
                t >= w.start && t <= w.at && !p.v.is_finite()
            })
            .count()
    };
    // A load that is no number is said as a sample without a load ([`compare`]).
    let (Observation::Series { new, old } | Observation::SeriesAtLoad { new, old, .. }) =
        observation
    else {
        return None;
    };
    let (new, old) = (count(new), old.as_deref().map_or(0, count));
    (new + old > 0).then(|| {
        format!(
            "; inside the window, left out as no number (NaN or infinite): {new} new and {old} old point(s)"
        )
    })
}

/// A pod that two series of the same query belong to (a pod scraped by two jobs, a query that
/// keeps a label the rule does not expect), if any.
fn duplicate_pod(obs: &Observation) -> Option<String> {
    let groups: Vec<&Vec<Series>> = match obs {
        Observation::Counts { new, old } => {
            let mut g = vec![&new.errors, &new.requests];
            if let Some(o) = old {
                g.extend([&o.errors, &o.requests]);
            }
            g
        }
        Observation::Series { new, old } => std::iter::once(new).chain(old.as_ref()).collect(),
        Observation::SeriesAtLoad {
            new,
            old,
            new_load,
            old_load,
        } => [new, new_load]
            .into_iter()
            .chain(old.as_ref())
            .chain(old_load.as_ref())
            .collect(),
        Observation::Failed(_) | Observation::Logs { .. } => Vec::new(),
    };
    groups.into_iter().find_map(|series| {
        let mut seen = std::collections::BTreeSet::new();
        series
            .iter()
            .filter_map(|s| s.labels.get("pod"))
            .find(|pod| !seen.insert(pod.as_str()))
            .cloned()
    })
}

fn verdict(rule: &Rule, outcome: Outcome, reason: String) -> Verdict {
    Verdict {
        rule: rule.name.clone(),
        outcome,
        action: rule.action,
        reason,
        evidence: None,
        queries: Vec::new(),
        error: None,
        error_kind: None,
        building: false,
        settles_in: None,
        warn_only: false,
        consecutive: rule.consecutive,
        valid_over_looks: rule.check.valid_over_looks(),
    }
}

// One short-lived value per rule and evaluation, moved once into its verdict: boxing the
// evidence would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Judged {
    Decided {
        fail: bool,
        reason: String,
        evidence: Evidence,
        /// A failure that may only warn, whatever the rule's action.
        warn_only: bool,
        /// A pass on evidence building towards a failure (see [`Verdict::building`]).
        building: bool,
        /// A pass the evidence so far cannot settle, and the time until it can (see
        /// [`Verdict::settles_in`]).
        unsettled: Option<Millis>,
    },
    /// Missing or insufficient data: what is missing.
    Missing(String),
    /// A comparison with nothing to compare against; never turned into a failure.
    NoBaseline(String),
}

impl Judged {
    /// The judgement with its reason, or what is missing, rewritten by `f`; its outcome and
    /// evidence as they were.
    fn map_reason(mut self, f: impl FnOnce(String) -> String) -> Judged {
        match &mut self {
            Judged::Decided { reason, .. } | Judged::Missing(reason) => {
                *reason = f(std::mem::take(reason));
            }
            Judged::NoBaseline(_) => {}
        }
        self
    }

    /// The evidence, when there is some, for `f` to add to.
    fn with_evidence(mut self, f: impl FnOnce(&mut Evidence)) -> Judged {
        if let Judged::Decided { evidence, .. } = &mut self {
            f(evidence);
        }
        self
    }
}

fn no_baseline() -> Judged {
    Judged::NoBaseline("no old ReplicaSet to compare with".into())
}

/// new / old, with 0/0 = 1 and x/0 = infinity (`None`).
fn rate_ratio(new: f64, old: f64) -> Option<f64> {
    if old > 0.0 {
        Some(new / old)
    } else if new > 0.0 {
        None
    } else {
        Some(1.0)
    }
}

/// The finite samples of a side inside the window, with each pod's warm-up left out.
struct Samples {
    values: Vec<f64>,
    /// The time of each value, in milliseconds (the range query's grid).
    times: Vec<i64>,
    /// The pod of each value: its series' index among those with samples.
    pod: Vec<usize>,
    pods: usize,
    warmup_dropped: usize,
}

fn samples(series: &[Series], w: &Window, direction: Direction) -> Samples {
    let mut out = Samples {
        values: Vec::new(),
        times: Vec::new(),
        pod: Vec::new(),
        pods: 0,
        warmup_dropped: 0,
    };
    for s in series {
        let points = pod_points(s, w, direction);
        let in_window = |t: &Millis| *t >= w.start;
        out.warmup_dropped += points.warming.iter().filter(|(t, _)| in_window(t)).count();
        let before = out.values.len();
        for (t, v) in points.counted.into_iter().filter(|(t, _)| in_window(t)) {
            out.values.push(v);
            out.times.push(t);
            out.pod.push(out.pods);
        }
        if out.values.len() > before {
            out.pods += 1;
        }
    }
    out
}

/// One pod's finite points up to the window's end, split into those of its warm-up and those
/// that count.
struct PodPoints {
    warming: Vec<(Millis, f64)>,
    counted: Vec<(Millis, f64)>,
}

/// A series that begins after the query start belongs to a pod that started then: its first
/// `warmup` is left out, and past that, where higher is worse, what [`settle`] finds still
/// above the pod's later level (a start-up that costs less is no excess to wait out).
fn pod_points(s: &Series, w: &Window, direction: Direction) -> PodPoints {
    let mut points: Vec<(Millis, f64)> = s
        .points
        .iter()
        .filter(|p| p.v.is_finite())
        .map(|p| (time::from_seconds(p.t), p.v))
        .filter(|(t, _)| *t <= w.at)
        .collect();
    let started_inside = points
        .first()
        .is_some_and(|(first, _)| *first > w.query_start + w.step / 2);
    if !started_inside || w.warmup == 0 {
        return PodPoints {
            warming: Vec::new(),
            counted: points,
        };
    }
    let first = points[0].0;
    let fixed = points
        .iter()
        .take_while(|(t, _)| *t < first + w.warmup)
        .count();
    let mut rest = points.split_off(fixed);
    let settling = match direction {
        Direction::HigherIsWorse => settle::unsettled(&rest, first + w.reach()),
        Direction::LowerIsWorse => 0,
    };
    let counted = rest.split_off(settling);
    points.extend(rest);
    PodPoints {
        warming: points,
        counted,
    }
}

fn summary(s: &Samples) -> SampleSummary {
    let q = |q| stats::quantile(&s.values, q).unwrap_or(f64::NAN);
    SampleSummary {
        samples: s.values.len(),
        pods: s.pods,
        median: q(0.5),
        p90: q(0.9),
        max: q(1.0),
        warmup_dropped: s.warmup_dropped,
        steps: medians_by_time(s)
            .into_iter()
            .map(|(ms, v)| [time::to_seconds(ms), v])
            .collect(),
    }
}

fn enough(count: usize, name: &str, min: usize) -> Result<(), String> {
    if count < min {
        Err(format!(
            "{count} usable samples from the {name} pods, fewer than min_samples {min}"
        ))
    } else {
        Ok(())
    }
}

fn breaches(value: f64, threshold: f64, direction: Direction) -> bool {
    match direction {
        Direction::HigherIsWorse => value >= threshold,
        Direction::LowerIsWorse => value <= threshold,
    }
}

/// The effect floor of an error-rate check: errors observed, and a ratio (`None`: infinite)
/// of at least `min_ratio`.
fn ratio_reached(ratio: Option<f64>, observed: f64, min_ratio: f64) -> bool {
    observed > 0.0 && ratio.is_none_or(|r| r >= min_ratio)
}

impl CompareEvidence {
    /// Whether the effect floor on the median ratio was reached (as the judge decided it).
    pub fn ratio_met(&self) -> bool {
        compare::median_ratio_reached(self.median_ratio, self.min_ratio)
    }
}

impl ErrorRateEvidence {
    /// Whether the effect floor on the ratio was reached (as the judge decided it).
    pub fn ratio_met(&self) -> bool {
        ratio_reached(self.ratio, self.observed_errors, self.min_ratio)
    }
}

impl AbsoluteEvidence {
    /// Whether the value is beyond the threshold (as the judge decided it).
    pub fn breaches(&self) -> bool {
        breaches(self.value, self.threshold, self.direction)
    }
}

/// The median of a side's samples at each moment.
fn medians_by_time(s: &Samples) -> BTreeMap<i64, f64> {
    let mut by: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (v, t) in s.values.iter().zip(&s.times) {
        by.entry(*t).or_default().push(*v);
    }
    by.into_iter()
        .filter_map(|(t, vs)| stats::median(&vs).ok().map(|m| (t, m)))
        .collect()
}

/// The samples of `s` taken at one of `times`.
fn restricted(s: &Samples, times: &std::collections::BTreeSet<i64>) -> Samples {
    let mut out = Samples {
        values: Vec::new(),
        times: Vec::new(),
        pod: Vec::new(),
        pods: s.pods,
        warmup_dropped: s.warmup_dropped,
    };
    for ((v, t), pod) in s.values.iter().zip(&s.times).zip(&s.pod) {
        if times.contains(t) {
            out.values.push(*v);
            out.times.push(*t);
            out.pod.push(*pod);
        }
    }
    out
}

/// A number for people: four significant digits, no exponent for everyday magnitudes.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.3e}")
    }
}

/// A moment for people: `HH:MM:SS` in UTC.
pub fn fmt_hms(t: jiff::Timestamp) -> String {
    t.strftime("%H:%M:%S").to_string()
}

/// A rate (a fraction) as a percentage.
pub fn fmt_pct(rate: f64) -> String {
    format!("{}%", fmt_num(rate * 100.0))
}

/// A p-value for people: three decimals, or two significant digits below 0.001.
pub fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

mod absolute;
mod compare;
mod error_rate;
mod evidence;
pub use evidence::*;
mod logs;
mod settle;
pub use logs::{LogsEvidence, MAX_ROWS as MAX_LOG_ROWS, SignatureRow};

#[cfg(test)]
mod tests;
