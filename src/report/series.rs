//! One rule's numbers over a revision's analysis, new pods against old, as the judge saw them:
//! for an error-rate rule whose deciding verdict kept its intervals, the error rate interval by
//! interval over that verdict's window; otherwise one point per evaluation (each covering that
//! evaluation's window). What the plots draw and the Markdown tables list.

use jiff::Timestamp;

use super::model::Shown;
use crate::analysis::judge::{Evidence, IntervalCounts, LogsEvidence, SampleSummary, SignatureRow};
use crate::records::Record;

/// Which pods a line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    New,
    Old,
}

/// One line of a plot: a value per evaluation, `None` where the verdict had no such number.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub label: String,
    pub side: Side,
    /// A secondary statistic (p90), drawn dashed.
    pub dashed: bool,
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
    pub lines: Vec<Line>,
    /// A fixed threshold (absolute checks).
    pub threshold: Option<f64>,
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
fn per_interval(intervals: &[IntervalCounts]) -> Option<SeriesSet> {
    let times: Vec<Timestamp> = intervals
        .iter()
        .map(|i| Timestamp::from_millisecond((i.t * 1000.0).round() as i64))
        .collect::<Result<_, _>>()
        .ok()?;
    if times.is_empty() {
        return None;
    }
    let rate = |cell: Option<[f64; 2]>| cell.filter(|[_, r]| *r > 0.0).map(|[e, r]| 100.0 * e / r);
    Some(SeriesSet {
        title: "error rate of the new and the old pods in each interval of the deciding evaluation's window"
            .into(),
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
    })
}

/// The series of `rule`; `shown` is the verdict whose evidence the report shows (for logs, its
/// deciding signature is the one followed). `None` when no evaluation had numbers for it.
pub fn series_of(rule: &str, evaluations: &[&Record], shown: Option<&Shown>) -> Option<SeriesSet> {
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
        .or_else(|| evidence.iter().flatten().next().copied())?;
    if let Evidence::ErrorRate(x) = kind
        && let Some(set) = per_interval(&x.intervals)
    {
        return Some(set);
    }
    let times: Vec<Timestamp> = evaluations.iter().map(|r| r.at).collect();
    let set = match kind {
        Evidence::ErrorRate(_) => {
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
                title: "error rate of the new and the old pods over each evaluation's window"
                    .into(),
                y_label: "errors, % of requests".into(),
                times,
                lines: vec![
                    line("new pods", Side::New, false, rate(Side::New)),
                    line("old pods", Side::Old, false, rate(Side::Old)),
                ],
                threshold: None,
            }
        }
        Evidence::Compare(_) | Evidence::Absolute(_) => {
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
                    .map(|s| s.map(f).filter(|v| v.is_finite()))
                    .collect()
            };
            let threshold = evidence.iter().rev().find_map(|e| match e {
                Some(Evidence::Absolute(x)) => Some(x.threshold),
                _ => None,
            });
            let title = if threshold.is_some() {
                "median (solid) and p90 (dashed) of the new and the old pods' samples, against the threshold"
            } else {
                "median (solid) and p90 (dashed) of the new and the old pods' samples"
            };
            SeriesSet {
                title: title.into(),
                y_label: "value, in the query's unit".into(),
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
            }
        }
        Evidence::Logs(deciding) => {
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
            }
        }
    };
    set.lines
        .iter()
        .any(|l| l.values.iter().any(Option::is_some))
        .then_some(set)
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
