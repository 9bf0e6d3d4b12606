//! Simulated rollouts served by a real Prometheus, replayed through the library and through the
//! `rollout-guard` binary.
//!
//! A test builds a [`Scenario`] (usually [`gated`]), generates its [`History`], turns it into the
//! harness's [`OpenMetrics`] with [`openmetrics`] (or [`openmetrics_with`] to tamper with
//! samples), starts [`Prometheus`] on it and replays the gate with [`replay_library`] and
//! [`backtest_json`]. [`same_report`] checks that the binary printed exactly what the library
//! returned.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use rollout_guard::adapters::prometheus::{PrometheusConfig, PrometheusSource};
use rollout_guard::analysis::backtest::{Replay, Report, replay};
use rollout_guard::analysis::duration::PromDuration;
use rollout_guard::analysis::evaluate::Target;
use rollout_guard::analysis::judge::{Outcome, Verdict};
use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::sim::simulate::{Gate, History, Noise, Scenario, generate};
use serde_json::Value;

use super::prometheus::OpenMetrics;

/// The bundled NAB traces, loaded once per test binary.
pub fn noise() -> &'static Noise {
    static NOISE: OnceLock<Noise> = OnceLock::new();
    NOISE.get_or_init(|| {
        Noise::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab"))
            .expect("load the NAB traces in tests/data/nab")
    })
}

/// A healthy rollout that pauses for 10 minutes after its first new pod, old pods still serving.
pub fn gated(name: &str, seed: u64) -> Scenario {
    let mut s = Scenario::healthy(name, seed);
    s.gate = Some(Gate {
        pods: 1,
        seconds: 600.0,
    });
    s
}

/// The scenario's generated history.
pub fn history(scenario: &Scenario) -> History {
    generate(scenario, noise())
}

/// Every sample of the history, as Prometheus would have scraped it.
pub fn openmetrics(history: &History) -> OpenMetrics {
    history.to_openmetrics()
}

/// The history's samples, each passed through `edit(metric, labels, unix_seconds, value)`:
/// `Some(v)` writes `v` instead, `None` drops the sample.
pub fn openmetrics_with(
    history: &History,
    mut edit: impl FnMut(&str, &[(&str, &str)], f64, f64) -> Option<f64>,
) -> OpenMetrics {
    let mut om = OpenMetrics::new();
    history.for_each_sample(|metric, labels, t, v| {
        if let Some(v) = edit(metric, labels, t, v) {
            om.sample(metric, labels, t.round() as i64, v);
        }
    });
    om
}

/// Unix seconds as a timestamp (the simulation's times are whole seconds).
pub fn ts(unix_seconds: f64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_millis((unix_seconds * 1000.0).round() as i64)
}

/// The rollout's Deployment and ReplicaSets.
pub fn target(history: &History) -> Target {
    Target {
        namespace: history.scenario.namespace.clone(),
        deployment: history.scenario.deployment.clone(),
        new_replicaset: history.new_replicaset.clone(),
        old_replicasets: vec![history.old_replicaset.clone()],
        departed: Vec::new(),
    }
}

/// The gate, every 30 s: from the first new pod to the end of the pause.
pub fn gate_replay(history: &History) -> Replay {
    Replay {
        target: target(history),
        from: ts(history.scenario.rollout_start()),
        to: ts(history.scenario.gate_end()),
        step: PromDuration::from_secs(30),
        extend_until: None,
        departed_at: None,
    }
}

/// A natural rolling update every 30 s from its first new pod to the end of its bake, the old
/// ReplicaSet departed once its last pod left, as the controller has it.
pub fn guard_replay(history: &History) -> Replay {
    let s = &history.scenario;
    Replay {
        target: target(history),
        from: ts(s.rollout_start()),
        to: ts(s.end()),
        step: PromDuration::from_secs(30),
        extend_until: None,
        departed_at: Some(ts(s.rollout_end())),
    }
}

/// A Prometheus source with nothing but a URL.
pub fn source(url: &str) -> PrometheusSource {
    PrometheusSource::new(&PrometheusConfig::new(url)).expect("valid Prometheus settings")
}

/// Replays with the library and the default rules.
pub async fn replay_library(url: &str, spec: &Replay) -> Report {
    replay(&RuleSet::defaults(), spec, &source(url), |_, _| {})
        .await
        .expect("a valid replay")
}

/// The report as `backtest --output text` prints it, for assertion messages.
pub fn text(report: &Report, spec: &Replay) -> String {
    report.to_text(spec, &RuleSet::defaults())
}

/// Runs the binary with these arguments.
pub fn run_binary<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(args)
        // Keep the binary's logs out of its stderr, and the environment out of its flags.
        .env_remove("RUST_LOG")
        .env_remove("ROLLOUT_GUARD_PROMETHEUS_URL")
        .output()
        .expect("run the rollout-guard binary")
}

/// The `backtest` arguments for a replay.
pub fn backtest_args(url: &str, spec: &Replay, output: &str) -> Vec<String> {
    let t = &spec.target;
    let mut args = vec![
        "backtest".to_string(),
        "--prometheus-url".into(),
        url.into(),
        "--namespace".into(),
        t.namespace.clone(),
        "--deployment".into(),
        t.deployment.clone(),
        "--new-replicaset".into(),
        t.new_replicaset.clone(),
    ];
    for old in &t.old_replicasets {
        args.push("--old-replicaset".into());
        args.push(old.clone());
    }
    args.extend([
        "--from".into(),
        spec.from.to_string(),
        "--to".into(),
        spec.to.to_string(),
        "--step".into(),
        spec.step.to_string(),
        "--output".into(),
        output.into(),
    ]);
    // The binary goes on past --to up to now; a replay that does not is asked for.
    if spec.extend_until.is_none() {
        args.push("--no-extension".into());
    }
    args
}

/// Runs `backtest --output text` and returns stdout; panics unless it exits 0.
pub fn backtest_text(url: &str, spec: &Replay) -> String {
    let out = run_binary(backtest_args(url, spec, "text"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "backtest --output text exited with {}\nstderr:\n{}\nstdout:\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `backtest --output json` and returns the one JSON object it prints; panics unless it
/// exits 0 with exactly one JSON object on stdout.
pub fn backtest_json(url: &str, spec: &Replay) -> Value {
    let out = run_binary(backtest_args(url, spec, "json"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "backtest --output json exited with {}\nstderr:\n{}\nstdout:\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "--output json prints one line:\n{stdout}"
    );
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--output json is not JSON ({e}):\n{stdout}"));
    assert_report_shape(&value);
    value
}

/// Checks the documented shape of `--output json` (README, "backtest").
pub fn assert_report_shape(json: &Value) {
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .unwrap_or_else(|| panic!("not a JSON object: {v}"))
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let is_time = |v: &Value| v.as_str().is_some_and(|s| s.parse::<Timestamp>().is_ok());
    // Always there, and the ones there only when they say something.
    let mut always = keys(json);
    always.retain(|k| {
        !["extension", "left_open", "not_replayable", "unjudged"].contains(&k.as_str())
    });
    assert_eq!(
        always,
        ["decided_at", "decision", "rule", "timeline"],
        "top-level keys"
    );
    if let Some(e) = json.get("extension") {
        assert_eq!(
            keys(e),
            ["because", "cut_short", "evaluations"],
            "extension keys"
        );
        assert!(
            e["because"].is_string() && e["cut_short"].is_boolean(),
            "{e}"
        );
        assert!(e["evaluations"].is_u64(), "{e}");
    }
    if let Some(unjudged) = json.get("unjudged") {
        assert!(
            json["decision"] == "inconclusive"
                && unjudged
                    .as_object()
                    .is_some_and(|m| !m.is_empty() && m.values().all(|w| w.is_string())),
            "unjudged {unjudged} with decision {}",
            json["decision"]
        );
    }
    if let Some(open) = json.get("left_open") {
        assert!(
            open.as_str().is_some_and(|s| !s.is_empty()),
            "left_open {open}"
        );
    }
    let decision = json["decision"].as_str().unwrap_or_default();
    assert!(
        ["rollback", "pause", "pass", "inconclusive"].contains(&decision),
        "decision {}",
        json["decision"]
    );
    let acted = matches!(decision, "rollback" | "pause");
    assert_eq!(
        is_time(&json["decided_at"]),
        acted,
        "decided_at {}",
        json["decided_at"]
    );
    assert_eq!(json["rule"].is_string(), acted, "rule {}", json["rule"]);
    assert!(acted || json["decided_at"].is_null() && json["rule"].is_null());
    let timeline = json["timeline"].as_array().expect("timeline is an array");
    assert!(!timeline.is_empty(), "empty timeline");
    for step in timeline {
        assert!(is_time(&step["at"]), "step without a time: {step}");
        let verdicts = step["verdicts"].as_array().expect("verdicts is an array");
        assert!(!verdicts.is_empty(), "step without verdicts: {step}");
        for v in verdicts {
            assert!(v["rule"].is_string(), "verdict without a rule: {v}");
            assert!(
                ["pass", "fail", "inconclusive"].contains(&v["outcome"].as_str().unwrap_or("")),
                "verdict outcome: {v}"
            );
            assert!(v["reason"].is_string(), "verdict without a reason: {v}");
            if let Some(evidence) = v.get("evidence") {
                assert!(evidence["check"].is_string(), "evidence without check: {v}");
            }
        }
    }
    if acted {
        assert_eq!(
            timeline.last().map(|s| &s["at"]),
            Some(&json["decided_at"]),
            "the timeline stops at the decision"
        );
    }
}

/// Checks that the binary's JSON is the library's report: same decision, moment, rule, and the
/// same timeline verdict by verdict.
pub fn same_report(json: &Value, report: &Report) {
    // Both through the same text → Value path, so floats compare exactly.
    let expected: Value = serde_json::from_str(
        &serde_json::to_string(report).expect("serialise the library's report"),
    )
    .expect("parse the library's report");
    for key in ["decision", "decided_at", "rule", "extension", "left_open"] {
        assert_eq!(
            json[key], expected[key],
            "binary and library differ in {key}"
        );
    }
    let steps = |v: &Value| v["timeline"].as_array().map_or(0, Vec::len);
    assert_eq!(
        steps(json),
        steps(&expected),
        "binary and library timelines differ in length"
    );
    for (i, (got, want)) in json["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(expected["timeline"].as_array().into_iter().flatten())
        .enumerate()
    {
        assert_eq!(got, want, "binary and library differ at step {i}");
    }
    assert_eq!(json, &expected);
}

/// The verdict of `rule` at the report's last step (where it decided, if it did).
pub fn decisive_verdict<'a>(report: &'a Report, rule: &str) -> &'a Verdict {
    let step = report.timeline.last().expect("a non-empty timeline");
    step.verdicts
        .iter()
        .find(|v| v.rule == rule)
        .unwrap_or_else(|| panic!("no verdict of {rule} at {}", step.at))
}

/// Every verdict of the report, with the time of its step.
/// Asserts that a verdict's reason says `why`, and (when `inconclusive`) that it concluded nothing.
#[track_caller]
pub fn assert_reason(at: Timestamp, v: &Verdict, inconclusive: bool, why: &str) {
    if inconclusive {
        assert_eq!(
            v.outcome,
            Outcome::Inconclusive,
            "{at} {}: {}",
            v.rule,
            v.reason
        );
    }
    assert!(v.reason.contains(why), "{at} {}: {}", v.rule, v.reason);
}

pub fn verdicts(report: &Report) -> impl Iterator<Item = (Timestamp, &Verdict)> {
    report
        .timeline
        .iter()
        .flat_map(|s| s.verdicts.iter().map(move |v| (s.at, v)))
}

/// Panics if any verdict of the report failed.
pub fn assert_no_failure(report: &Report, context: &str) {
    let failed: Vec<String> = verdicts(report)
        .filter(|(_, v)| v.outcome == Outcome::Fail)
        .map(|(at, v)| format!("{at} {}: {}", v.rule, v.reason))
        .collect();
    assert!(
        failed.is_empty(),
        "{context}: verdicts failed:\n{}",
        failed.join("\n")
    );
}
