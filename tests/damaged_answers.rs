//! Damaged, partial and wrongly typed answers never roll back or pause a healthy release.
//!
//! A healthy canary gate (the same true error rate on both sides, real NAB noise) is served by
//! a real Prometheus behind a hostile proxy (`support::hostile`) that damages the answers to the
//! old pods' error queries, one kind of damage per test. Each of these made `backtest` roll the
//! release back when damaged points counted as zero errors and warnings were ignored; now the
//! damaged intervals are left out or the rule is inconclusive, and the reason says why. A
//! natural rolling update is replayed through its bake with every kind of damage in turn: once
//! the old pods are gone, their damaged answers are the history the new pods are held to. The
//! next tests damage the other counts the error rates and CPU rules divide or compare by (the
//! old pods' request counts, the new pods' errors and requests, either side's CPU usage and
//! throttling, whole answers of the ratio queries that hold them), each with every kind of
//! damage, in the gate and in the rolling update; the crash-looping rule's restart counts are
//! not damaged here. The last test loses some of the new pods' request points or series in a
//! bad rolling update: what is left must still roll it back.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rollout_guard::analysis::backtest::{FinalDecision, Replay, Report, replay};
use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::sim::simulate::{Fault, Gate, History, Scenario};
use support::hostile::{Damage, Hostile};
use support::prometheus::Prometheus;
use support::rollout::{
    gate_replay, gated, guard_replay, history, openmetrics, source, text, ts, verdicts,
};

/// The error-rate rules of the default set.
const ERROR_RATE_RULES: [&str; 2] = ["class-loading-errors", "php-error-rate"];

/// A healthy gate of two new pods among six, at 60 requests/s a pod, both sides making 0.2%
/// errors: enough that reading a part of the old pods' errors as zero makes the new pods look
/// several times worse, clearly enough to roll back.
fn healthy() -> History {
    let mut s = gated("damaged-answers", 21);
    s.rps_per_pod = 60.0;
    s.gate = Some(Gate {
        pods: 2,
        seconds: 600.0,
    });
    history(&s)
}

/// A healthy natural rolling update of six pods, one at a time, at 60 requests/s a pod, both
/// versions making 0.2% errors, with an hour of the old version before it.
fn healthy_rolling_update() -> History {
    let mut s = Scenario::healthy("damaged-answers-guard", 22);
    s.rps_per_pod = 60.0;
    s.before = 3600.0;
    history(&s)
}

/// The same rolling update, its new pods making three times the old pods' errors (no
/// class-loading ones, which act on far less evidence).
fn bad_rolling_update() -> History {
    let mut s = Scenario::healthy("damaged-answers-bad", 22);
    s.rps_per_pod = 60.0;
    s.before = 3600.0;
    s.fault = Fault::ErrorRate { multiplier: 3.0 };
    history(&s)
}

/// Every kind of damage the proxy does.
const DAMAGES: [Damage; 12] = [
    Damage::Values("NaN"),
    Damage::Values("+Inf"),
    Damage::Values("-Inf"),
    Damage::Values("-3"),
    Damage::Gaps,
    Damage::StaggeredGaps,
    Damage::LostSeries,
    Damage::Shift(7.0),
    Damage::PartialWithWarning,
    Damage::EmptyWithWarning,
    Damage::Vector,
    Damage::Scalar,
];

/// Which answers the proxy damages: one metric of one side, picked out of the PromQL by the
/// metric's name and the side's ReplicaSet name (its history too, once its pods are gone).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answers {
    OldErrors,
    /// The old pods' request counts: every error rate, CPU per request and its load divide
    /// or weigh by them.
    OldRequests,
    NewErrors,
    NewRequests,
    /// The old pods' CPU usage and CFS periods (CPU per request, saturation, throttling).
    OldCpu,
    NewCpu,
}

impl Answers {
    /// Whether `query` asks for these answers, of the ReplicaSets named `old` and `new`.
    fn selects(self, query: &str, old: &str, new: &str) -> bool {
        let (metric, replicaset) = match self {
            Answers::OldErrors => ("php_errors_total", old),
            Answers::OldRequests => ("php_requests_total", old),
            Answers::NewErrors => ("php_errors_total", new),
            Answers::NewRequests => ("php_requests_total", new),
            Answers::OldCpu => ("container_cpu_", old),
            Answers::NewCpu => ("container_cpu_", new),
        };
        query.contains(metric) && query.contains(replicaset)
    }
}

/// Replays the gate through a proxy that damages the old pods' error answers; returns the
/// report and the replay's text.
async fn replay_damaged(damage: Damage) -> (Report, String) {
    let h = healthy();
    let spec = gate_replay(&h);
    let prometheus = Prometheus::start(&openmetrics(&h)).expect("start Prometheus");
    replay_through(&prometheus, &h, &spec, damage, Answers::OldErrors).await
}

/// Replays `spec` of `h` from `prometheus` through a proxy that damages the `answers`; returns
/// the report and the replay's text.
async fn replay_through(
    prometheus: &Prometheus,
    h: &History,
    spec: &Replay,
    damage: Damage,
    answers: Answers,
) -> (Report, String) {
    let damaged = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&damaged);
    let (old, new) = (h.old_replicaset.clone(), h.new_replicaset.clone());
    let hits = Arc::new(move |q: &str| {
        let hit = answers.selects(q, &old, &new);
        if hit {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        hit
    });
    let proxy = Hostile::start(prometheus.url(), damage, hits).await;
    let report = replay(&RuleSet::defaults(), spec, &source(&proxy.url()), |_, _| {})
        .await
        .expect("a valid replay");
    assert!(
        damaged.load(Ordering::Relaxed) > 0,
        "{answers:?} {damage:?}: no answer was damaged; the proxy's selector matches no query"
    );
    let why = text(&report, spec);
    (report, why)
}

/// Replays `spec` of `h` undamaged and asserts that it passes: what follows tests the damage,
/// not the release. Returns the Prometheus serving `h`.
async fn passes_undamaged(h: &History, spec: &Replay) -> Prometheus {
    let prometheus = Prometheus::start(&openmetrics(h)).expect("start Prometheus");
    let clean = replay(
        &RuleSet::defaults(),
        spec,
        &source(&prometheus.url()),
        |_, _| {},
    )
    .await
    .expect("a valid replay");
    assert_eq!(
        clean.decision,
        FinalDecision::Pass,
        "{}",
        text(&clean, spec)
    );
    prometheus
}

/// Every kind of damage to `answers`, in the healthy gate and in the healthy rolling update
/// through its bake: none may end in an action. Every case is run before failing, so that
/// the message lists them all.
async fn no_damage_to_them_acts(answers: Answers) {
    let mut acted = Vec::new();
    for (mode, h, to_spec) in [
        ("gate", healthy(), gate_replay as fn(&History) -> Replay),
        ("rolling update", healthy_rolling_update(), guard_replay),
    ] {
        let spec = to_spec(&h);
        let prometheus = passes_undamaged(&h, &spec).await;
        for damage in DAMAGES {
            let (report, why) = replay_through(&prometheus, &h, &spec, damage, answers).await;
            if !matches!(
                report.decision,
                FinalDecision::Pass | FinalDecision::Inconclusive
            ) {
                acted.push(format!(
                    "{mode}, {answers:?} {damage:?}: {:?}\n{why}",
                    report.decision
                ));
            }
        }
    }
    assert!(
        acted.is_empty(),
        "{} of {} damaged replays acted:\n{}",
        acted.len(),
        2 * DAMAGES.len(),
        acted.join("\n\n")
    );
}

#[track_caller]
fn assert_no_action(report: &Report, damage: Damage, why: &str) {
    assert!(
        matches!(
            report.decision,
            FinalDecision::Pass | FinalDecision::Inconclusive
        ),
        "{damage:?}: expected no action, got {:?}:\n{why}",
        report.decision
    );
}

/// Every error-rate verdict that was not a pass says `cause`.
#[track_caller]
fn assert_error_rates_say(report: &Report, cause: &str) {
    let mut said = 0;
    for (at, v) in verdicts(report).filter(|(_, v)| ERROR_RATE_RULES.contains(&v.rule.as_str())) {
        assert!(
            v.reason.contains(cause),
            "{at} {} ({:?}): {}",
            v.rule,
            v.outcome,
            v.reason
        );
        said += 1;
    }
    assert!(said > 0, "no error-rate verdicts");
}

#[tokio::test]
async fn nan_error_counts_of_the_old_pods_are_left_out() {
    let (report, why) = replay_damaged(Damage::Values("NaN")).await;
    assert_no_action(&report, Damage::Values("NaN"), &why);
}

#[tokio::test]
async fn infinite_error_counts_of_the_old_pods_are_left_out() {
    for value in ["+Inf", "-Inf"] {
        let (report, why) = replay_damaged(Damage::Values(value)).await;
        assert_no_action(&report, Damage::Values(value), &why);
    }
}

#[tokio::test]
async fn negative_error_counts_of_the_old_pods_are_left_out() {
    let (report, why) = replay_damaged(Damage::Values("-3")).await;
    assert_no_action(&report, Damage::Values("-3"), &why);
}

#[tokio::test]
async fn gaps_in_the_old_pods_error_series_are_not_zero_errors() {
    let (report, why) = replay_damaged(Damage::Gaps).await;
    assert_no_action(&report, Damage::Gaps, &why);
}

#[tokio::test]
async fn error_points_off_the_request_grid_are_not_zero_errors() {
    let (report, why) = replay_damaged(Damage::Shift(7.0)).await;
    assert_no_action(&report, Damage::Shift(7.0), &why);
}

#[tokio::test]
async fn old_error_answers_that_lost_points_or_series_without_a_warning_never_act() {
    // In a gate the old pods stay, so the same series are lost at every look.
    for damage in [Damage::StaggeredGaps, Damage::LostSeries] {
        let (report, why) = replay_damaged(damage).await;
        assert_no_action(&report, damage, &why);
    }
}

#[tokio::test]
async fn a_partial_answer_with_a_warning_is_inconclusive() {
    let (report, why) = replay_damaged(Damage::PartialWithWarning).await;
    assert_no_action(&report, Damage::PartialWithWarning, &why);
    assert_error_rates_say(&report, "partial answer: partial response");
}

#[tokio::test]
async fn an_empty_answer_with_a_warning_is_inconclusive() {
    let (report, why) = replay_damaged(Damage::EmptyWithWarning).await;
    assert_no_action(&report, Damage::EmptyWithWarning, &why);
    assert_error_rates_say(&report, "partial answer");
}

#[tokio::test]
async fn a_vector_or_scalar_answer_to_a_range_query_is_inconclusive() {
    for damage in [Damage::Vector, Damage::Scalar] {
        let (report, why) = replay_damaged(damage).await;
        assert_no_action(&report, damage, &why);
        assert_error_rates_say(&report, "where the query asks for a matrix");
    }
}

#[tokio::test]
async fn in_a_rolling_update_damaged_answers_of_the_old_version_never_act_also_after_it_left() {
    let h = healthy_rolling_update();
    let spec = guard_replay(&h);
    let prometheus = passes_undamaged(&h, &spec).await;
    for damage in DAMAGES {
        let (report, why) =
            replay_through(&prometheus, &h, &spec, damage, Answers::OldErrors).await;
        assert_no_action(&report, damage, &why);
        // The evaluations after the old pods left were judged against their history, or said
        // why they could not be.
        let after = verdicts(&report)
            .filter(|(at, v)| *at > ts(h.scenario.rollout_end()) && v.rule == "php-error-rate")
            .count();
        assert!(
            after > 0,
            "{damage:?}: no verdict after the old pods left:\n{why}"
        );
    }
}

#[tokio::test]
async fn damaged_request_counts_of_the_old_pods_never_act() {
    no_damage_to_them_acts(Answers::OldRequests).await;
}

#[tokio::test]
async fn damaged_error_counts_of_the_new_pods_never_act() {
    no_damage_to_them_acts(Answers::NewErrors).await;
}

#[tokio::test]
async fn damaged_request_counts_of_the_new_pods_never_act() {
    no_damage_to_them_acts(Answers::NewRequests).await;
}

#[tokio::test]
async fn damaged_cpu_of_the_old_pods_never_acts() {
    no_damage_to_them_acts(Answers::OldCpu).await;
}

#[tokio::test]
async fn damaged_cpu_of_the_new_pods_never_acts() {
    no_damage_to_them_acts(Answers::NewCpu).await;
}

#[tokio::test]
async fn new_pods_request_answers_that_lost_points_or_series_do_not_hide_a_regression() {
    // What is left of the new pods' counts after such losses still tells: the pods whose
    // points survived are judged, the others are absent where their requests are unknown.
    // (Error series lost whole, with no warning, are not here: a pod's error counter that is
    // missing reads as one not born yet, no errors, and that can hide a regression; nothing in
    // the answer tells the two apart.)
    let h = bad_rolling_update();
    let spec = guard_replay(&h);
    let prometheus = Prometheus::start(&openmetrics(&h)).expect("start Prometheus");
    let mut missed = Vec::new();
    for (answers, damage) in [
        (Answers::NewRequests, Damage::StaggeredGaps),
        (Answers::NewRequests, Damage::LostSeries),
    ] {
        let (report, why) = replay_through(&prometheus, &h, &spec, damage, answers).await;
        if report.decision != FinalDecision::Rollback {
            missed.push(format!(
                "{answers:?} {damage:?}: {:?}\n{why}",
                report.decision
            ));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n\n"));
}
