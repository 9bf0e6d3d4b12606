//! One rule's numbers over a revision's analysis, new pods against old, as the judge saw them:
//! for an error-rate rule whose deciding verdict kept its intervals, the error rate interval by
//! interval over that verdict's window; otherwise one point per evaluation (each covering that
//! evaluation's window). What the plots draw and the Markdown tables list.

use jiff::Timestamp;

use super::model::Shown;
use crate::analysis::judge::{Evidence, IntervalCounts, LogsEvidence, SampleSummary, SignatureRow};
use crate::analysis::rules::Unit;
use crate::analysis::time;
use crate::records::Record;

/// Which pods a line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The new ReplicaSet's pods.
    New,
    /// The old ReplicaSets' pods.
    Old,
}

/// One line of a plot: a value per evaluation, `None` where the verdict had no such number.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Its name in the legend (`new pods`, `old p90`).
    pub label: String,
    /// Which pods it is about.
    pub side: Side,
    /// A secondary statistic (p90), drawn dashed.
    pub dashed: bool,
    /// One per time of [`SeriesSet::times`]; `None` where the verdict had no such number.
    pub values: Vec<Option<f64>>,
}

/// The lines of one rule over the evaluations.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSet {
    /// What is plotted, in a line.
    pub title: String,
    /// The y axis, with its unit.
    pub y_label: String,
    /// The evaluations' times, one per value of every line.
    pub times: Vec<Timestamp>,
    /// The lines drawn, new pods and old.
    pub lines: Vec<Line>,
    /// A fixed threshold (absolute checks).
    pub threshold: Option<f64>,
    /// The rollout's progress at each evaluation: the new pods available, % of the replicas
    /// asked for (a lane under the plot). Empty in records of versions before it was kept.
    pub progress: Vec<(Timestamp, f64)>,
}

impl SeriesSet {
    /// The largest value of any line or the threshold.
    pub fn max(&self) -> Option<f64> {
        self.lines
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .copied()
            .chain(self.threshold)
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }
}

/// An error-rate verdict's own window, interval by interval: the error rate of each side in
/// each interval it served. `None` without intervals (a record of an older version, or of a
/// verdict that passed).
fn per_interval(intervals: &[IntervalCounts], which: &str) -> Option<SeriesSet> {
    let times: Vec<Timestamp> = intervals
        .iter()
        .map(|i| Timestamp::from_millisecond(time::from_seconds(i.t)))
        .collect::<Result<_, _>>()
        .ok()?;
    if times.is_empty() {
        return None;
    }
    let rate = |cell: Option<[f64; 2]>| cell.filter(|[_, r]| *r > 0.0).map(|[e, r]| 100.0 * e / r);
    Some(SeriesSet {
        title: format!(
            "error rate of the new and the old pods in each interval of {which}'s window"
        ),
        y_label: "errors, % of requests".into(),
        times,
        lines: vec![
            line(
                "new pods",
                Side::New,
                false,
                intervals.iter().map(|i| rate(i.new)).collect(),
            ),
            line(
                "old pods",
                Side::Old,
                false,
                intervals.iter().map(|i| rate(i.old)).collect(),
            ),
        ],
        threshold: None,
        progress: Vec::new(),
    })
}

/// A compare or absolute verdict's own window at the query's step: each side's median across
/// its pods at each step (after its pods left, the old version's last window before). `None`
/// without steps (a record of an older version).
fn per_step(
    new: &SampleSummary,
    old: Option<&SampleSummary>,
    threshold: Option<f64>,
    unit: Unit,
    which: &str,
) -> Option<SeriesSet> {
    let sides = [Some(new), old];
    let mut ms: Vec<i64> = sides
        .iter()
        .flatten()
        .flat_map(|s| s.steps.iter().map(|[t, _]| time::from_seconds(*t)))
        .collect();
    ms.sort_unstable();
    ms.dedup();
    if ms.is_empty() {
        return None;
    }
    let times: Vec<Timestamp> = ms
        .iter()
        .map(|m| Timestamp::from_millisecond(*m))
        .collect::<Result<_, _>>()
        .ok()?;
    let values = |s: Option<&SampleSummary>| -> Vec<Option<f64>> {
        let by: std::collections::BTreeMap<i64, f64> = s
            .map(|s| {
                s.steps
                    .iter()
                    .map(|[t, v]| (time::from_seconds(*t), unit.shown(*v)))
                    .collect()
            })
            .unwrap_or_default();
        ms.iter()
            .map(|m| by.get(m).copied().filter(|v| v.is_finite()))
            .collect()
    };
    Some(SeriesSet {
        title: format!(
            "median of the new pods and of the old pods at each step of {which}'s window{}",
            if threshold.is_some() {
                ", against the threshold"
            } else {
                ""
            }
        ),
        y_label: unit.label().into(),
        times,
        lines: vec![
            line("new pods", Side::New, false, values(Some(new))),
            line("old pods", Side::Old, false, values(old)),
        ],
        threshold: threshold.map(|t| unit.shown(t)),
        progress: Vec::new(),
    })
}

/// The series of `rule`; `shown` is the verdict whose evidence the report shows (for logs, its
/// deciding signature is the one followed). `None` when no evaluation had numbers for it.
pub(super) fn series_of(
    rule: &str,
    evaluations: &[&Record],
    shown: Option<&Shown>,
) -> Option<SeriesSet> {
    let evidence: Vec<Option<&Evidence>> = evaluations
        .iter()
        .map(|r| {
            r.verdicts
                .iter()
                .find(|v| v.rule == rule)
                .and_then(|v| v.evidence.as_ref())
        })
        .collect();
    let kind = shown
        .and_then(|s| s.verdict.evidence.as_ref())
        .or_else(|| evidence.iter().flatten().next_back().copied())?;
    let which = shown.map_or("the latest evaluation", |s| s.label());
    if let Some(set) = own_window(kind, which)
        .filter(|s| s.lines.iter().any(|l| l.values.iter().any(Option::is_some)))
    {
        return Some(with_progress(set, evaluations));
    }
    let times: Vec<Timestamp> = evaluations.iter().map(|r| r.at).collect();
    let set = match kind {
        Evidence::ErrorRate(_) => error_rates(&evidence, times),
        Evidence::Compare(x) => samples(&evidence, times, x.unit),
        Evidence::Absolute(x) => samples(&evidence, times, x.unit),
        Evidence::Logs(deciding) => logs(&evidence, times, deciding),
    };
    set.lines
        .iter()
        .any(|l| l.values.iter().any(Option::is_some))
        .then(|| with_progress(set, evaluations))
}

/// The series over the window of the verdict `kind` itself (`which` names it), when its
/// evidence kept one.
fn own_window(kind: &Evidence, which: &str) -> Option<SeriesSet> {
    match kind {
        Evidence::ErrorRate(x) => per_interval(&x.intervals, which),
        Evidence::Compare(x) => per_step(&x.new, Some(&x.old), None, x.unit, which),
        Evidence::Absolute(x) => per_step(&x.new, x.old.as_ref(), Some(x.threshold), x.unit, which),
        Evidence::Logs(_) => None,
    }
}

/// Each side's error rate over each evaluation's window, from the error-rate `evidence`.
fn error_rates(evidence: &[Option<&Evidence>], times: Vec<Timestamp>) -> SeriesSet {
    let rate = |side: Side| {
        evidence
            .iter()
            .map(|e| match e {
                Some(Evidence::ErrorRate(x)) => Some(
                    100.0
                        * match side {
                            Side::New => x.new.rate,
                            Side::Old => x.old.rate,
                        },
                ),
                _ => None,
            })
            .collect()
    };
    SeriesSet {
        title: "error rate of the new and the old pods over each evaluation's window".into(),
        y_label: "errors, % of requests".into(),
        times,
        lines: vec![
            line("new pods", Side::New, false, rate(Side::New)),
            line("old pods", Side::Old, false, rate(Side::Old)),
        ],
        threshold: None,
        progress: Vec::new(),
    }
}

/// Each side's median and p90 over each evaluation's window, in `unit`, from the compare or
/// absolute `evidence`, with the latest absolute threshold.
fn samples(evidence: &[Option<&Evidence>], times: Vec<Timestamp>, unit: Unit) -> SeriesSet {
    let summary = |side: Side| -> Vec<Option<&SampleSummary>> {
        evidence
            .iter()
            .map(|e| match (e, side) {
                (Some(Evidence::Compare(x)), Side::New) => Some(&x.new),
                (Some(Evidence::Compare(x)), Side::Old) => Some(&x.old),
                (Some(Evidence::Absolute(x)), Side::New) => Some(&x.new),
                (Some(Evidence::Absolute(x)), Side::Old) => x.old.as_ref(),
                _ => None,
            })
            .collect()
    };
    let stat = |side: Side, f: fn(&SampleSummary) -> f64| {
        summary(side)
            .into_iter()
            .map(|s| s.map(f).map(|v| unit.shown(v)).filter(|v| v.is_finite()))
            .collect()
    };
    let threshold = evidence.iter().rev().find_map(|e| match e {
        Some(Evidence::Absolute(x)) => Some(unit.shown(x.threshold)),
        _ => None,
    });
    let title = if threshold.is_some() {
        "median (solid) and p90 (dashed) of the new and the old pods' samples, against the threshold"
    } else {
        "median (solid) and p90 (dashed) of the new and the old pods' samples"
    };
    SeriesSet {
        title: title.into(),
        y_label: unit.label().into(),
        times,
        lines: vec![
            line(
                "new median",
                Side::New,
                false,
                stat(Side::New, |s| s.median),
            ),
            line(
                "old median",
                Side::Old,
                false,
                stat(Side::Old, |s| s.median),
            ),
            line("new p90", Side::New, true, stat(Side::New, |s| s.p90)),
            line("old p90", Side::Old, true, stat(Side::Old, |s| s.p90)),
        ],
        threshold,
        progress: Vec::new(),
    }
}

/// Each side's errors per pod-minute of log over each evaluation's window, from the logs
/// `evidence`, for the signature `deciding` follows.
fn logs(
    evidence: &[Option<&Evidence>],
    times: Vec<Timestamp>,
    deciding: &LogsEvidence,
) -> SeriesSet {
    let key = followed(deciding);
    let per_minute = |side: Side| {
        evidence
            .iter()
            .map(|e| match e {
                Some(Evidence::Logs(x)) => logs_rate(x, &key, side),
                _ => None,
            })
            .collect()
    };
    SeriesSet {
        title: format!(
            "{} per pod-minute of log, new and old pods",
            if key.1.is_empty() {
                "errors of the counted kinds".to_string()
            } else {
                format!("`{}`", key.1)
            }
        ),
        y_label: "errors per pod-minute".into(),
        times,
        lines: vec![
            line("new pods", Side::New, false, per_minute(Side::New)),
            line("old pods", Side::Old, false, per_minute(Side::Old)),
        ],
        threshold: None,
        progress: Vec::new(),
    }
}

/// `set` with the rollout's progress at each evaluation.
fn with_progress(mut set: SeriesSet, evaluations: &[&Record]) -> SeriesSet {
    set.progress = evaluations
        .iter()
        .filter_map(|r| r.progress.map(|p| (r.at, p.percent())))
        .collect();
    set
}

fn line(label: &str, side: Side, dashed: bool, values: Vec<Option<f64>>) -> Line {
    Line {
        label: label.into(),
        side,
        dashed,
        values,
    }
}

/// The signature a logs plot follows: the deciding one (first row), or the total when no row
/// is there; an empty signature stands for the total.
fn followed(e: &LogsEvidence) -> (String, String) {
    match e.signatures.first() {
        Some(r) => (r.kind.to_string(), r.signature.clone()),
        None => (String::new(), String::new()),
    }
}

fn logs_rate(e: &LogsEvidence, key: &(String, String), side: Side) -> Option<f64> {
    let row: Option<&SignatureRow> = if key.1.is_empty() {
        Some(&e.total)
    } else {
        e.signatures
            .iter()
            .find(|r| r.kind.to_string() == key.0 && r.signature == key.1)
    };
    let minutes = match side {
        Side::New => e.new_pod_minutes,
        Side::Old => e.old_pod_minutes,
    };
    if minutes <= 0.0 {
        return None;
    }
    match row {
        Some(r) => Some(
            match side {
                Side::New => r.new,
                Side::Old => r.old,
            } as f64
                / minutes,
        ),
        // Rows list every signature the new pods printed (up to a limit): absent, the new pods
        // printed none; how often the old pods did is not recorded.
        None if side == Side::New && e.signatures.len() < crate::analysis::judge::MAX_LOG_ROWS => {
            Some(0.0)
        }
        None => None,
    }
}
