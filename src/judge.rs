//! The judge: one rule, the observations of the new and old ReplicaSets over one window, one
//! verdict with the numbers behind it.
//!
//! Pure functions over plain data: no queries, no clock, no Kubernetes. [`crate::evaluate`]
//! fetches the observations; `backtest`, the controller and the benchmark all judge through
//! [`judge`]. Missing data never fails a rule unless the rule says so, and a broken query is
//! always inconclusive.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::rules::{
    Absolute, Action, Check, Compare, Direction, ErrorRate, OnMissing, ProportionTest, Rule,
};
use crate::source::Series;
use crate::stats::{self, Tail};

/// What a rule concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Inconclusive,
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

/// Error and request counts of one side over the window; `None` where the query returned no
/// series (or only NaN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub errors: Option<f64>,
    pub requests: Option<f64>,
}

/// What was fetched for one rule. The old side is `None` when the rollout has no old ReplicaSet
/// left to compare with.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    Counts {
        new: Counts,
        old: Option<Counts>,
    },
    Series {
        new: Vec<Series>,
        old: Option<Vec<Series>>,
    },
    /// A query failed: the error, as the source reported it.
    Failed(String),
}

/// The window an observation covers, in unix seconds, and the warm-up to drop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Evaluation time: the end of the window.
    pub at: f64,
    /// Start of the window (`at − window`).
    pub start: f64,
    /// Where the range query began (`start − warmup`); a series whose first point comes later
    /// belongs to a pod that started inside the query range.
    pub query_start: f64,
    pub warmup: f64,
    pub step: f64,
}

/// One rule's conclusion and everything a person needs to see why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub rule: String,
    pub outcome: Outcome,
    /// The rule's action (what a failure asks for).
    pub action: Action,
    /// One line: the numbers and the comparison that decided.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The queries as sent, filled in by the evaluator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<SentQuery>,
    /// The query error, if a query failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A query as it went to the metric source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentQuery {
    /// `new` or `old`.
    pub side: String,
    /// Which of the rule's queries (`errors`, `requests`, `query`).
    pub name: String,
    pub promql: String,
}

/// The numbers behind a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Evidence {
    ErrorRate(ErrorRateEvidence),
    Compare(CompareEvidence),
    Absolute(AbsoluteEvidence),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideCounts {
    pub errors: f64,
    pub requests: f64,
    /// errors / requests.
    pub rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateEvidence {
    pub new: SideCounts,
    pub old: SideCounts,
    /// new rate / old rate (`null` for infinity: errors where the old side had none).
    pub ratio: Option<f64>,
    pub rate_increase: f64,
    pub test: ProportionTest,
    pub p_value: f64,
    pub alpha: f64,
    pub tolerance: f64,
    pub min_ratio: f64,
    pub min_rate_increase: f64,
    pub min_errors: f64,
}

/// Summary of one side's samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSummary {
    pub samples: usize,
    pub pods: usize,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    /// Samples left out as pod warm-up.
    pub warmup_dropped: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareEvidence {
    pub new: SampleSummary,
    pub old: SampleSummary,
    pub direction: Direction,
    /// Worse side's median over the better side's, oriented so that > 1 is worse.
    pub median_ratio: Option<f64>,
    /// Hodges-Lehmann shift, oriented so that > 0 is worse.
    pub shift: f64,
    /// U of the side tested as worse (new for higher-is-worse, old for lower-is-worse).
    pub u_statistic: f64,
    pub p_value: f64,
    pub alpha: f64,
    pub min_ratio: f64,
    pub min_shift: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsoluteEvidence {
    pub new: SampleSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<SampleSummary>,
    pub quantile: f64,
    /// The new side's quantile.
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_value: Option<f64>,
    pub threshold: f64,
    pub direction: Direction,
}

/// Judges one rule on one observation.
pub fn judge(rule: &Rule, window: &Window, observation: &Observation) -> Verdict {
    let judged = match (&rule.check, observation) {
        (_, Observation::Failed(error)) => {
            let mut v = verdict(
                rule,
                Outcome::Inconclusive,
                format!("query failed: {error}"),
            );
            v.error = Some(error.clone());
            return v;
        }
        (Check::ErrorRate(c), Observation::Counts { new, old }) => error_rate(c, new, old.as_ref()),
        (Check::Compare(c), Observation::Series { new, old }) => {
            compare(c, window, new, old.as_deref())
        }
        (Check::Absolute(c), Observation::Series { new, old }) => {
            absolute(c, window, new, old.as_deref())
        }
        (check, _) => Judged::Missing(format!(
            "internal: a {} check was given the wrong kind of observation",
            check.kind()
        )),
    };
    match judged {
        Judged::Decided {
            fail,
            reason,
            evidence,
        } => {
            let outcome = if fail { Outcome::Fail } else { Outcome::Pass };
            let mut v = verdict(rule, outcome, reason);
            v.evidence = Some(evidence);
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
    }
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
    }
}

enum Judged {
    Decided {
        fail: bool,
        reason: String,
        evidence: Evidence,
    },
    /// Missing or insufficient data: what is missing.
    Missing(String),
    /// A comparison with nothing to compare against; never turned into a failure.
    NoBaseline(String),
}

fn no_baseline() -> Judged {
    Judged::NoBaseline("no old ReplicaSet to compare with".into())
}

/// The usable value of a count: finite and non-negative.
fn count(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite() && *x >= 0.0)
}

fn side(name: &str, c: &Counts, rule: &ErrorRate) -> Result<SideCounts, String> {
    let requests =
        count(c.requests).ok_or_else(|| format!("no request count for the {name} pods"))?;
    if requests < rule.min_requests || requests <= 0.0 {
        return Err(format!(
            "the {name} pods served {} requests, fewer than min_requests {}",
            fmt_num(requests),
            fmt_num(rule.min_requests)
        ));
    }
    let errors = match count(c.errors) {
        Some(e) => e,
        None if rule.absent_errors_are_zero && c.errors.is_none() => 0.0,
        None => return Err(format!("no error count for the {name} pods")),
    };
    // increase() extrapolates both counters separately; errors can never exceed requests.
    let errors = errors.min(requests);
    Ok(SideCounts {
        errors,
        requests,
        rate: errors / requests,
    })
}

fn error_rate(rule: &ErrorRate, new: &Counts, old: Option<&Counts>) -> Judged {
    let Some(old) = old else { return no_baseline() };
    let new = match side("new", new, rule) {
        Ok(s) => s,
        Err(e) => return Judged::Missing(e),
    };
    let old = match side("old", old, rule) {
        Ok(s) => s,
        Err(e) => return Judged::Missing(e),
    };
    let p_value = match rule.test {
        ProportionTest::Binomial => stats::poisson_rate_greater(
            new.errors,
            new.requests,
            old.errors,
            old.requests,
            rule.tolerance,
        ),
        ProportionTest::Fisher => {
            let row = |s: &SideCounts| {
                [
                    s.errors.round() as u64,
                    (s.requests - s.errors).round().max(0.0) as u64,
                ]
            };
            stats::fisher_greater([row(&new), row(&old)])
        }
    };
    let p_value = match p_value {
        Ok(p) => p,
        Err(e) => return Judged::Missing(format!("the test could not be computed: {e}")),
    };
    let ratio = rate_ratio(new.rate, old.rate);
    let rate_increase = new.rate - old.rate;
    let significant = p_value < rule.alpha;
    let large = ratio.is_none_or(|r| r >= rule.min_ratio) && new.errors > 0.0;
    let material = rate_increase >= rule.min_rate_increase;
    let enough = new.errors >= rule.min_errors;
    let fail = significant && large && material && enough;

    let mut reason = format!(
        "new {} ({}/{}) vs old {} ({}/{}): ×{}, p={} {} α={}",
        fmt_pct(new.rate),
        fmt_num(new.errors),
        fmt_num(new.requests),
        fmt_pct(old.rate),
        fmt_num(old.errors),
        fmt_num(old.requests),
        ratio.map_or("∞".to_string(), |r| format!("{r:.2}")),
        fmt_p(p_value),
        if significant { "<" } else { "≥" },
        rule.alpha
    );
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
        let _ = write!(reason, "; significant but {}", why.join(", "));
    }
    Judged::Decided {
        fail,
        reason,
        evidence: Evidence::ErrorRate(ErrorRateEvidence {
            ratio,
            rate_increase,
            test: rule.test,
            p_value,
            alpha: rule.alpha,
            tolerance: rule.tolerance,
            min_ratio: rule.min_ratio,
            min_rate_increase: rule.min_rate_increase,
            min_errors: rule.min_errors,
            new,
            old,
        }),
    }
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
    pods: usize,
    warmup_dropped: usize,
}

fn samples(series: &[Series], w: &Window) -> Samples {
    let mut values = Vec::new();
    let mut pods = 0;
    let mut warmup_dropped = 0;
    for s in series {
        let Some(first) = s.points.iter().find(|p| p.v.is_finite()) else {
            continue;
        };
        // A series that begins after the query start belongs to a pod that started then.
        let started_inside = first.t > w.query_start + w.step / 2.0;
        let warm_from = if started_inside {
            first.t + w.warmup
        } else {
            f64::NEG_INFINITY
        };
        let before = values.len();
        for p in &s.points {
            if p.t < w.start || p.t > w.at || !p.v.is_finite() {
                continue;
            }
            if p.t < warm_from {
                warmup_dropped += 1;
                continue;
            }
            values.push(p.v);
        }
        if values.len() > before {
            pods += 1;
        }
    }
    Samples {
        values,
        pods,
        warmup_dropped,
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
    }
}

fn enough(s: &Samples, name: &str, min: usize) -> Result<(), String> {
    if s.values.len() < min {
        Err(format!(
            "{} usable samples from the {name} pods, fewer than min_samples {min}",
            s.values.len()
        ))
    } else {
        Ok(())
    }
}

fn compare(rule: &Compare, w: &Window, new: &[Series], old: Option<&[Series]>) -> Judged {
    let Some(old) = old else { return no_baseline() };
    let n = samples(new, w);
    let o = samples(old, w);
    if let Err(e) = enough(&n, "new", rule.min_samples).and(enough(&o, "old", rule.min_samples)) {
        return Judged::Missing(e);
    }
    // Orient everything so that "greater" is worse: (a, b) = (new, old) when higher is worse.
    let (a, b) = match rule.direction {
        Direction::HigherIsWorse => (&n.values, &o.values),
        Direction::LowerIsWorse => (&o.values, &n.values),
    };
    let (u, p_value) = match stats::mann_whitney(a, b, Tail::Greater) {
        Ok(r) => r,
        Err(e) => return Judged::Missing(format!("the test could not be computed: {e}")),
    };
    let (Ok(shift), Ok(m_worse), Ok(m_better)) = (
        stats::hodges_lehmann(a, b),
        stats::median(a),
        stats::median(b),
    ) else {
        return Judged::Missing("no finite samples".into());
    };
    let median_ratio = rate_ratio(m_worse, m_better).filter(|_| m_worse >= 0.0 && m_better >= 0.0);
    let new_summary = summary(&n);
    let old_summary = summary(&o);
    let significant = p_value < rule.alpha;
    let large = median_ratio.is_none_or(|r| r >= rule.min_ratio) && m_worse > m_better;
    let material = shift >= rule.min_shift && shift > 0.0;
    let fail = significant && large && material;
    let reason = format!(
        "median new {} vs old {} ({} vs {} samples from {} vs {} pods): ratio {}, shift {}, p={} {} α={}{}",
        fmt_num(new_summary.median),
        fmt_num(old_summary.median),
        new_summary.samples,
        old_summary.samples,
        new_summary.pods,
        old_summary.pods,
        median_ratio.map_or("∞".to_string(), |r| format!("{r:.2}")),
        fmt_num(shift),
        fmt_p(p_value),
        if significant { "<" } else { "≥" },
        rule.alpha,
        if significant && !fail {
            format!(
                "; significant but below min_ratio {} or min_shift {}",
                rule.min_ratio, rule.min_shift
            )
        } else {
            String::new()
        }
    );
    Judged::Decided {
        fail,
        reason,
        evidence: Evidence::Compare(CompareEvidence {
            new: new_summary,
            old: old_summary,
            direction: rule.direction,
            median_ratio,
            shift,
            u_statistic: u,
            p_value,
            alpha: rule.alpha,
            min_ratio: rule.min_ratio,
            min_shift: rule.min_shift,
        }),
    }
}

fn breaches(value: f64, threshold: f64, direction: Direction) -> bool {
    match direction {
        Direction::HigherIsWorse => value >= threshold,
        Direction::LowerIsWorse => value <= threshold,
    }
}

fn absolute(rule: &Absolute, w: &Window, new: &[Series], old: Option<&[Series]>) -> Judged {
    let n = samples(new, w);
    if let Err(e) = enough(&n, "new", rule.min_samples) {
        return Judged::Missing(e);
    }
    let Ok(value) = stats::quantile(&n.values, rule.quantile) else {
        return Judged::Missing("no finite samples".into());
    };
    let breach = breaches(value, rule.threshold, rule.direction);
    let old_samples = old.filter(|_| rule.unless_old_too).map(|o| samples(o, w));
    let old_summary = old_samples
        .as_ref()
        .filter(|o| o.values.len() >= rule.min_samples)
        .map(summary);
    let old_value = old_samples
        .as_ref()
        .filter(|o| o.values.len() >= rule.min_samples)
        .and_then(|o| stats::quantile(&o.values, rule.quantile).ok());
    let shared = breach && old_value.is_some_and(|v| breaches(v, rule.threshold, rule.direction));
    let fail = breach && !shared;
    let cmp = match rule.direction {
        Direction::HigherIsWorse => "≥",
        Direction::LowerIsWorse => "≤",
    };
    let new_summary = summary(&n);
    let mut reason = format!(
        "new pods' p{} {} ({} samples from {} pods) {} threshold {}",
        (rule.quantile * 100.0).round(),
        fmt_num(value),
        new_summary.samples,
        new_summary.pods,
        if breach { cmp } else { "within" },
        fmt_num(rule.threshold)
    );
    if let Some(ov) = old_value {
        let _ = write!(reason, "; old pods {}", fmt_num(ov));
    }
    if shared {
        reason.push_str(": the old pods breach it too, so the cause is shared, not the release");
    }
    Judged::Decided {
        fail,
        reason,
        evidence: Evidence::Absolute(AbsoluteEvidence {
            new: new_summary,
            old: old_summary,
            quantile: rule.quantile,
            value,
            old_value,
            threshold: rule.threshold,
            direction: rule.direction,
        }),
    }
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
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.3e}")
    }
}

fn fmt_pct(rate: f64) -> String {
    format!("{}%", fmt_num(rate * 100.0))
}

fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

#[cfg(test)]
mod tests;
