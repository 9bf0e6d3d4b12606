//! Damaged, partial and wrongly typed answers never roll back or pause a healthy release.
//!
//! A healthy canary gate (the same true error rate on both sides, real NAB noise) is served by
//! a real Prometheus behind a hostile proxy (`support::hostile`) that damages the answers to the
//! old pods' error queries, one kind of damage per test. Each of these made `backtest` roll the
//! release back when damaged points counted as zero errors and warnings were ignored; now the
//! damaged intervals are left out or the rule is inconclusive, and the reason says why. The
//! last test replays a natural rolling update through its bake with every kind of damage in
//! turn: once the old pods are gone, their damaged answers are the history the new pods are
//! held to.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rollout_guard::analysis::backtest::{FinalDecision, Replay, Report, replay};
use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::sim::simulate::{Gate, History, Scenario};
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

/// Replays the gate through a proxy that damages the old pods' error answers; returns the
/// report and the replay's text.
async fn replay_damaged(damage: Damage) -> (Report, String) {
    let h = healthy();
    let spec = gate_replay(&h);
    replay_through(&h, &spec, damage).await
}

/// Replays `spec` of `h` through a proxy that damages the old pods' error answers (the old
/// ReplicaSet's, by name: its history too, once its pods are gone); returns the report and the
/// replay's text.
async fn replay_through(h: &History, spec: &Replay, damage: Damage) -> (Report, String) {
    let prometheus = Prometheus::start(&openmetrics(h)).expect("start Prometheus");
    let old = h.old_replicaset.clone();
    let damaged = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&damaged);
    let hits = Arc::new(move |q: &str| {
        let hit = q.contains("php_errors_total") && q.contains(&old);
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
        "{damage:?}: no answer was damaged; the proxy's selector matches no query"
    );
    let why = text(&report, spec);
    (report, why)
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
    // Undamaged, the release passes: what follows tests the damage, not the release.
    let prometheus = Prometheus::start(&openmetrics(&h)).expect("start Prometheus");
    let clean = replay(
        &RuleSet::defaults(),
        &spec,
        &source(&prometheus.url()),
        |_, _| {},
    )
    .await
    .expect("a valid replay");
    assert_eq!(
        clean.decision,
        FinalDecision::Pass,
        "{}",
        text(&clean, &spec)
    );
    let damages = [
        Damage::Values("NaN"),
        Damage::Values("+Inf"),
        Damage::Values("-3"),
        Damage::Gaps,
        Damage::Shift(7.0),
        Damage::PartialWithWarning,
        Damage::EmptyWithWarning,
        Damage::Vector,
        Damage::Scalar,
    ];
    for damage in damages {
        let (report, why) = replay_through(&h, &spec, damage).await;
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
