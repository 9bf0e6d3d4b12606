//! Damaged and partial answers never count as zero errors: with the same true error rate on
//! both sides, no damage to the old side's answers may make the new side look worse (each case
//! rolled a healthy release back before it was left out), and damage to the new side's answers
//! does not hide a real regression.

use super::super::tests::judge_counts_in;
use super::super::{Outcome, Verdict, Window};
use super::*;
use crate::analysis::rules::{Rule, RuleSet};

/// A bundled rule, as shipped.
fn bundled(name: &str) -> Rule {
    let text = include_str!("../../../../rules/default.yaml");
    RuleSet::from_sources(&[(std::path::PathBuf::from("default.yaml"), text.to_string())])
        .unwrap()
        .rules
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
}

/// Interval ends, one a minute over the hour before `AT`.
const AT: f64 = 1_800_000_000.0;

fn times() -> Vec<f64> {
    (0..60).map(|i| AT - 60.0 * (59 - i) as f64).collect()
}

fn window() -> Window {
    Window {
        at: time::from_seconds(AT),
        start: time::from_seconds(AT - 3600.0),
        query_start: time::from_seconds(AT - 3600.0),
        warmup: 0,
        step: 0,
    }
}

/// Three pods of one side, each serving 700 requests a minute with 0.116% errors (a steady,
/// made-up but realistic rate: 0.8 errors a pod-minute, spread deterministically).
fn side(prefix: &str, rate_multiplier: f64) -> Counts {
    let pods = ["a", "b", "c"];
    let mut errors = Vec::new();
    let mut requests = Vec::new();
    for (k, p) in pods.iter().enumerate() {
        let name = format!("{prefix}-{p}");
        let mut cumulative = 0.0;
        let mut errs = Vec::new();
        for (i, t) in times().into_iter().enumerate() {
            // Errors owed so far at this rate, handed out in whole numbers.
            let owed = 700.0 * 0.00116 * rate_multiplier * (i + 1) as f64 + k as f64 * 0.3;
            let e = (owed - cumulative).floor();
            cumulative += e;
            errs.push((t, e));
        }
        errors.push(Series::for_pod(&name, errs));
        requests.push(Series::for_pod(
            &name,
            times().into_iter().map(|t| (t, 700.0)),
        ));
    }
    Counts { errors, requests }
}

fn judge_php(new: Counts, old: Counts) -> Verdict {
    judge_counts_in(&bundled("php-error-rate"), &window(), new, old)
}

/// Replaces the value of every old error point in the minutes `damaged` selects.
fn damage(c: &mut Counts, value: f64, damaged: impl Fn(usize) -> bool) {
    for s in &mut c.errors {
        for (i, p) in s.points.iter_mut().enumerate() {
            if damaged(i) {
                p.v = value;
            }
        }
    }
}

fn assert_not_acted(v: &Verdict, what: &str) {
    assert_ne!(v.outcome, Outcome::Fail, "{what}: {}", v.reason);
}

#[test]
fn the_same_rate_on_both_sides_passes_undamaged() {
    let v = judge_php(side("new", 1.0), side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(!v.reason.contains("left out"), "{}", v.reason);
}

#[test]
fn damaged_old_error_points_are_left_out_not_zero() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0] {
        let mut old = side("old", 1.0);
        damage(&mut old, value, |i| i % 3 != 0);
        let v = judge_php(side("new", 1.0), old);
        assert_not_acted(&v, &format!("old errors {value}"));
        assert!(v.reason.contains("left out"), "{value}: {}", v.reason);
        let Some(Evidence::ErrorRate(e)) = &v.evidence else {
            panic!("{value}: {}", v.reason)
        };
        // A negative count is its pod's alone (a counter reset): every pod's was damaged here.
        let (intervals, pod_intervals) = if value < 0.0 { (0, 3 * 40) } else { (40, 0) };
        assert_eq!(
            (e.intervals_left_out, e.pod_intervals_left_out),
            (intervals, pod_intervals),
            "{value}"
        );
    }
}

#[test]
fn a_pods_counter_reset_leaves_out_that_pod_alone_and_the_regression_still_fails() {
    // A release that quintuples the errors and whose first pod's container restarts every ten
    // minutes: each restart makes that pod's counts one interval back larger than now, so both
    // its differences go negative there. Only that pod's interval is left out, errors and
    // requests alike; the other two pods' counts in it are kept.
    let mut new = side("new", 5.0);
    let restarts = |i: usize| i % 10 == 5;
    for s in new.errors.iter_mut().chain(new.requests.iter_mut()) {
        if s.labels.get("pod").is_some_and(|p| p == "new-a") {
            for (i, p) in s.points.iter_mut().enumerate() {
                if restarts(i) {
                    p.v = -p.v.max(1.0) * 40.0;
                }
            }
        }
    }
    let v = judge_php(new, side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(
        v.reason.contains("6 pod-interval(s) left out") && !v.reason.contains("side-interval"),
        "{}",
        v.reason
    );
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    assert_eq!(e.new.requests, 700.0 * (3.0 * 60.0 - 6.0));
    assert_eq!((e.intervals_left_out, e.pod_intervals_left_out), (0, 6));
}

#[test]
fn damaged_old_request_points_leave_the_interval_out() {
    let mut old = side("old", 1.0);
    for s in &mut old.requests {
        for p in s.points.iter_mut().skip(10) {
            p.v = f64::NAN;
        }
    }
    let v = judge_php(side("new", 1.0), old);
    assert_not_acted(&v, "old requests NaN");
}

#[test]
fn a_gap_in_an_old_error_series_is_not_zero_errors() {
    // An answer that lost points (a partial response without a warning): the old pods' error
    // series stop having points for 40 of the 60 minutes while their requests go on.
    let mut old = side("old", 1.0);
    for s in &mut old.errors {
        let mut i = 0;
        s.points.retain(|_| {
            i += 1;
            i % 3 == 1
        });
    }
    let v = judge_php(side("new", 1.0), old);
    assert_not_acted(&v, "old error series with gaps");
    assert!(v.reason.contains("left out"), "{}", v.reason);
}

#[test]
fn error_points_not_aligned_with_request_points_are_not_zero_errors() {
    let mut old = side("old", 1.0);
    for s in &mut old.errors {
        for p in &mut s.points {
            p.t += 30.0;
        }
    }
    let v = judge_php(side("new", 1.0), old);
    assert_not_acted(&v, "old error points 30 s off the request grid");
}

#[test]
fn an_error_series_born_later_counts_zero_before_its_first_point() {
    // Counters born at a pod's first error have no points before: those minutes had none.
    let mut new = side("new", 0.0);
    let old = side("old", 0.0);
    for s in &mut new.errors {
        s.points.retain(|p| p.t >= AT - 1200.0);
        for p in &mut s.points {
            p.v = 2.0;
        }
    }
    let v = judge_counts_in(&bundled("class-loading-errors"), &window(), new, old);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(!v.reason.contains("left out"), "{}", v.reason);
}

#[test]
fn damage_on_the_new_side_does_not_hide_a_regression() {
    let mut new = side("new", 3.0);
    damage(&mut new, f64::NAN, |i| i % 4 == 0);
    let v = judge_php(new, side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(
        v.reason.contains("15 side-interval(s) left out"),
        "{}",
        v.reason
    );
}

#[test]
fn every_interval_damaged_is_missing_data() {
    let mut old = side("old", 1.0);
    for s in &mut old.requests {
        for p in &mut s.points {
            p.v = f64::NAN;
        }
    }
    let v = judge_php(side("new", 1.0), old);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(
        v.reason
            .contains("no request counts for the old pods: all 60 interval(s) damaged"),
        "{}",
        v.reason
    );
}

mod history;
