//! The three judges, replaying one rollout every 30 s through the same metric source:
//! rollout-guard's rules through `evaluate` and `Streaks`, an Argo-style threshold analysis
//! and a Kayenta-style Mann-Whitney comparison.
//!
//! Owns how each judge queries and decides, and the moments it is asked. A judge returns when
//! it acted, in seconds after the first new pod.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rollout_guard::analysis::backtest::{Replay, replay};
use rollout_guard::analysis::duration::PromDuration;
use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::analysis::source::{MetricSource, Series};
use rollout_guard::analysis::stats::{self, Tail};
use rollout_guard::analysis::template::pods_regex;
use rollout_guard::sim::simulate::{History, Scenario};

/// Seconds between evaluations.
pub const STEP: f64 = 30.0;

/// When (seconds after the first new pod) a judge acted, if it did.
pub type Outcome = Option<f64>;

/// Every evaluation moment: each 30 s from the first new pod to the end of the bake.
pub fn times(s: &Scenario) -> Vec<f64> {
    let mut t = s.rollout_start() + STEP;
    let mut out = Vec::new();
    while t <= s.end() + 1e-6 {
        out.push(t);
        t += STEP;
    }
    out
}

fn ts(t: f64) -> Timestamp {
    Timestamp::from_second(t as i64).expect("valid time")
}

/// rollout-guard: when it acted, and the rule that did, replayed by `backtest`'s own loop, with
/// the target the controller's: its old ReplicaSet departed once the old pods are gone. As the controller, it goes on past the bake's end while evidence is under
/// way (the bench's bake, here as before, ends at its last look at or before it, one look short
/// of the controller's when the end falls between two); the scenario's tail holds that.
pub async fn ours<S: MetricSource>(
    rules: &RuleSet,
    h: &History,
    source: &S,
    trace: Option<&str>,
) -> (Outcome, Option<String>) {
    let s = &h.scenario;
    let r0 = s.rollout_start();
    let last = times(s).last().copied().unwrap_or(r0);
    assert!(
        last > r0 + STEP,
        "a scenario's bake holds more than one evaluation"
    );
    // `DETECTION_FIXED_TARGET=1`: the fixed target of a `backtest` replay without
    // kube-state-metrics (the old ReplicaSet never departed), to measure what that changes.
    let fixed = std::env::var_os("DETECTION_FIXED_TARGET").is_some();
    let gone = Timestamp::from_millisecond((s.rollout_end() * 1000.0).ceil() as i64)
        .expect("a valid time");
    let plan = Replay {
        target: h.target_at(r0),
        from: ts(r0 + STEP),
        to: ts(last),
        step: PromDuration::from_secs(STEP as u64),
        extend_until: Some(ts(s.history_end())),
        departed_at: (!fixed).then_some(gone),
    };
    let at_seconds = |t: Timestamp| t.as_millisecond() as f64 / 1000.0;
    let report = replay(rules, &plan, source, |_, _| {})
        .await
        .expect("a valid replay");
    if let Some(mode) = trace {
        for step in &report.timeline {
            eprintln!(
                "{mode} t+{:.0}s {:?}",
                at_seconds(step.at) - r0,
                step.action
            );
            for v in &step.verdicts {
                eprintln!("{mode}     {} {}: {}", v.rule, v.outcome, v.reason);
                if std::env::var_os("DETECTION_TRACE_STEPS").is_some()
                    && let Some(rollout_guard::analysis::judge::Evidence::Compare(e)) = &v.evidence
                {
                    let steps: Vec<String> = e
                        .new
                        .steps
                        .iter()
                        .map(|[t, v]| format!("{:.0}:{v:.4}", t - r0))
                        .collect();
                    eprintln!("{mode}       new medians by time: {}", steps.join(" "));
                }
            }
        }
    }
    assert!(
        !report.extension.as_ref().is_some_and(|e| e.cut_short),
        "the scenario's tail ({} s) is shorter than the bake's extension",
        s.tail
    );
    (report.decided_at.map(|t| at_seconds(t) - r0), report.rule)
}

fn selector(rs: &str) -> String {
    pods_regex(&[rs.to_string()]).replace('\\', "\\\\")
}

async fn scalar<S: MetricSource>(source: &S, q: &str, t: f64) -> Option<f64> {
    source
        .instant(q, ts(t))
        .await
        .ok()?
        .first()
        .and_then(|s| s.points.last())
        .map(|p| p.v)
}

/// Errors per request of a ReplicaSet over `window` ending at `t`, of the error types the
/// matcher selects (all with an empty one); absent errors are zero.
async fn error_rate<S: MetricSource>(source: &S, rs: &str, t: f64, types: &str) -> Option<f64> {
    let pods = selector(rs);
    let e = scalar(
        source,
        &format!(r#"sum(increase(php_errors_total{{pod=~"{pods}"{types}}}[1m]))"#),
        t,
    )
    .await;
    let r = scalar(
        source,
        &format!(r#"sum(increase(php_requests_total{{pod=~"{pods}"}}[1m]))"#),
        t,
    )
    .await?;
    (r > 0.0).then(|| e.unwrap_or(0.0) / r)
}

const ALL_ERRORS: &str = "";
/// The class-loading kinds, as the default rule selects them.
const CLASS_ERRORS: &str =
    r#",type=~"class_not_found|interface_not_found|trait_not_found|failed_opening_required""#;

async fn per_pod<S: MetricSource>(
    source: &S,
    query: &str,
    rs: &str,
    (from, to): (f64, f64),
    step: f64,
) -> Vec<Series> {
    let q = query.replace("PODS", &selector(rs));
    source
        .range(&q, ts(from), ts(to), PromDuration::from_secs(step as u64))
        .await
        .unwrap_or_default()
}

/// Per-pod CPU utilisation and CPU per request. `sum by (pod)` on both sides, as a real
/// Prometheus needs to match them (the series' other labels differ).
const UTILISATION: &str = r#"sum by (pod) (rate(container_cpu_usage_seconds_total{pod=~"PODS"}[1m])) / sum by (pod) (kube_pod_container_resource_limits{pod=~"PODS",resource="cpu"})"#;
const CPU_PER_REQUEST: &str = r#"sum by (pod) (rate(container_cpu_usage_seconds_total{pod=~"PODS"}[1m])) / sum by (pod) (rate(php_requests_total{pod=~"PODS"}[1m]))"#;

/// Mean over pods at each time: one aggregated series per ReplicaSet, as Kayenta fetches.
fn aggregate(series: &[Series]) -> Vec<f64> {
    let mut by_t: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for s in series {
        for p in &s.points {
            if p.v.is_finite() {
                let e = by_t.entry(p.t as i64).or_default();
                e.0 += p.v;
                e.1 += 1;
            }
        }
    }
    by_t.values().map(|(sum, n)| sum / *n as f64).collect()
}

/// Settings of the threshold baseline: error rate and CPU limits, and failed measurements
/// tolerated before aborting.
#[derive(Clone, Copy)]
pub struct Argo {
    pub max_error_rate: f64,
    pub max_cpu: f64,
    pub failure_limit: u32,
}

/// Settings of the Mann-Whitney baseline: two-sided level and failing evaluations in a row.
#[derive(Clone, Copy)]
pub struct Kayenta {
    pub alpha: f64,
    pub consecutive: u32,
}

pub async fn argo<S: MetricSource>(h: &History, source: &S, cfg: Argo) -> Outcome {
    let mut failures = 0;
    let r0 = h.scenario.rollout_start();
    for t in times(&h.scenario) {
        let rate = error_rate(source, &h.new_replicaset, t, ALL_ERRORS).await;
        let cpu = per_pod(source, UTILISATION, &h.new_replicaset, (t, t), STEP).await;
        let cpu = aggregate(&cpu).first().copied();
        let failed =
            rate.is_some_and(|r| r >= cfg.max_error_rate) || cpu.is_some_and(|c| c >= cfg.max_cpu);
        if failed {
            failures += 1;
            if failures > cfg.failure_limit {
                return Some(t - r0);
            }
        }
    }
    None
}

/// Kayenta-style classification of one metric: two-sided Mann-Whitney, worse when significant
/// and shifted the bad way (higher).
fn kayenta_worse(new: &[f64], old: &[f64], alpha: f64) -> bool {
    if new.len() < 3 || old.len() < 3 {
        return false;
    }
    let (Ok((_, p_greater)), Ok((_, p_less))) = (
        stats::mann_whitney(new, old, Tail::Greater),
        stats::mann_whitney(new, old, Tail::Less),
    ) else {
        return false;
    };
    let p = (2.0 * p_greater.min(p_less)).min(1.0);
    let shift = stats::hodges_lehmann(new, old).unwrap_or(0.0);
    p < alpha && shift > 0.0
}

/// Per-minute error rates of both sides over the last 10 minutes.
async fn error_series<S: MetricSource>(
    source: &S,
    h: &History,
    t: f64,
    types: &str,
) -> (Vec<f64>, Vec<f64>) {
    let (mut new, mut old) = (Vec::new(), Vec::new());
    let mut u = t - 540.0;
    while u <= t {
        new.extend(error_rate(source, &h.new_replicaset, u, types).await);
        old.extend(error_rate(source, &h.old_replicaset, u, types).await);
        u += 60.0;
    }
    (new, old)
}

/// Whether any of the four metrics is significantly worse on the new pods at `t`.
async fn kayenta_fails<S: MetricSource>(source: &S, h: &History, t: f64, alpha: f64) -> bool {
    let mut worse = false;
    for types in [ALL_ERRORS, CLASS_ERRORS] {
        let (new, old) = error_series(source, h, t, types).await;
        worse |= kayenta_worse(&new, &old, alpha);
    }
    for query in [UTILISATION, CPU_PER_REQUEST] {
        let span = (t - 300.0, t);
        let new = aggregate(&per_pod(source, query, &h.new_replicaset, span, 60.0).await);
        let old = aggregate(&per_pod(source, query, &h.old_replicaset, span, 60.0).await);
        worse |= kayenta_worse(&new, &old, alpha);
    }
    worse
}

pub async fn kayenta<S: MetricSource>(h: &History, source: &S, cfg: Kayenta) -> Outcome {
    let mut streak = 0;
    let s = &h.scenario;
    for t in times(s) {
        if t >= s.rollout_end() {
            break; // no baseline left
        }
        streak = if kayenta_fails(source, h, t, cfg.alpha).await {
            streak + 1
        } else {
            0
        };
        if streak >= cfg.consecutive {
            return Some(t - s.rollout_start());
        }
    }
    None
}
