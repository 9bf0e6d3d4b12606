//! Damaged and partial answers never count as zero errors: with the same true error rate on
//! both sides, no damage to the old side's answers may make the new side look worse (each case
//! rolled a healthy release back before it was left out), and damage to the new side's answers
//! does not hide a real regression.

use super::super::tests::judge_counts_in;
use super::super::{Outcome, Verdict, Window};
use super::*;
use crate::analysis::rules::{Check, Rule, RuleSet};

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
        // A negative error count with no reset of its pod's requests is damage, not a restart.
        assert_eq!(
            (e.intervals_left_out, e.pod_intervals_left_out),
            (40, 0),
            "{value}"
        );
    }
}

/// Pod `pod` of `c` restarts its container in the interval ending at minute `at`, as the
/// default queries answer it from a real Prometheus: its request count there goes negative
/// (the counter, started again, against its value a minute before); its error counter,
/// created at its first error, is gone until `reborn` (a minute index, `None`: never).
fn restart(c: &mut Counts, pod: &str, at: usize, reborn: Option<usize>) {
    let of_pod = |s: &Series| s.labels.get("pod").is_some_and(|p| p == pod);
    for s in c.requests.iter_mut().filter(|s| of_pod(s)) {
        s.points[at].v = -40_000.0;
    }
    let start = times()[0];
    let minute = |t: f64| ((t - start) / 60.0).round() as usize;
    for s in c.errors.iter_mut().filter(|s| of_pod(s)) {
        s.points
            .retain(|p| minute(p.t) <= at || reborn.is_some_and(|r| minute(p.t) >= r));
    }
}

fn left_out(v: &Verdict) -> (usize, usize, f64) {
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    (
        e.intervals_left_out,
        e.pod_intervals_left_out,
        e.new.requests,
    )
}

#[test]
fn a_restarted_pod_is_left_out_until_its_error_counter_is_back_and_no_other_pod() {
    // The old rate on both sides; one new pod restarts at minute 20, its error counter back
    // at minute 35: that pod's minutes 20 to 35 are left out, errors and requests alike, and
    // nothing of the other pods.
    let mut new = side("new", 1.0);
    restart(&mut new, "new-a", 20, Some(35));
    let v = judge_php(new, side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert_eq!(left_out(&v), (0, 16, 700.0 * (3.0 * 60.0 - 16.0)));
    assert!(
        v.reason.contains("16 pod-interval(s) left out"),
        "{}",
        v.reason
    );
    // The error counter gone already in the interval of the reset itself (a reset and a gap
    // at the same moment, which once panicked): the same.
    let mut new = side("new", 1.0);
    restart(&mut new, "new-a", 20, Some(35));
    for s in new.errors.iter_mut().filter(|s| s.labels["pod"] == "new-a") {
        s.points.retain(|p| p.t != times()[20]);
    }
    assert_eq!(left_out(&judge_php(new, side("old", 1.0))).1, 16);
    // Never back within the window: the pod is left out to its end.
    let mut new = side("new", 1.0);
    restart(&mut new, "new-a", 50, None);
    assert_eq!(left_out(&judge_php(new, side("old", 1.0))).1, 10);
    // A pod that never had an error counter: only the reset's interval (a counter born after
    // it counts from zero).
    let mut new = side("new", 1.0);
    new.errors.retain(|s| s.labels["pod"] != "new-a");
    restart(&mut new, "new-a", 20, None);
    assert_eq!(left_out(&judge_php(new, side("old", 1.0))).1, 1);
}

#[test]
fn a_gap_or_a_negative_error_count_without_a_reset_leaves_the_side_out() {
    // The same hole in one pod's error series with its requests going on, or a negative
    // error count with none in its requests: unknown, and left out for every pod, since
    // leaving out only the pods with an error series (the ones that made errors) would keep
    // the error-free pods' minutes and lower the side's rate.
    let mut new = side("new", 1.0);
    restart(&mut new, "new-a", 20, Some(35));
    for s in new.requests.iter_mut() {
        for p in s.points.iter_mut().filter(|p| p.v < 0.0) {
            p.v = 700.0;
        }
    }
    assert_eq!(left_out(&judge_php(new, side("old", 1.0))).0, 14);
    let mut old = side("old", 1.0);
    for s in old.errors.iter_mut().filter(|s| s.labels["pod"] == "old-a") {
        s.points[30].v = -2.0;
    }
    assert_eq!(left_out(&judge_php(side("new", 1.0), old)).0, 1);
}

#[test]
fn a_crashing_release_whose_pods_restart_still_fails() {
    // Five times the errors, and every new pod restarting every 12 minutes, its error counter
    // back two minutes later: the release is still judged on what its pods counted, and no
    // interval is left out for the pods that did not restart in it.
    let mut new = side("new", 5.0);
    for pod in ["new-a", "new-b", "new-c"] {
        for at in [10, 22, 34, 46] {
            restart(&mut new, pod, at, Some(at + 2));
        }
    }
    let v = judge_php(new.clone(), side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert_eq!(left_out(&v).0, 0, "{}", v.reason);
    // Each restart: its minute and the two until its error counter is back (the bundled
    // rule differences each error series on its own: `reset_linger: 0s`).
    assert_eq!(left_out(&v).1, 3 * 4 * 3, "{}", v.reason);
    // With errors summed by pod before they are differenced, the default linger: its minute
    // and the six after it (the query's look back and an interval).
    let mut summed = bundled("php-error-rate");
    let Check::ErrorRate(check) = &mut summed.check else {
        panic!("php-error-rate is an error_rate check")
    };
    check.reset_linger = None;
    let v = judge_counts_in(&summed, &window(), new, side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert_eq!(left_out(&v).1, 3 * 4 * 7, "{}", v.reason);
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

/// `c` with the request points of pod `k` (0, 1, 2) kept only where `keep(k, minute)` says.
fn request_gaps(mut c: Counts, keep: impl Fn(usize, usize) -> bool) -> Counts {
    for (k, s) in c.requests.iter_mut().enumerate() {
        let mut i = 0;
        s.points.retain(|_| {
            i += 1;
            keep(k, i - 1)
        });
    }
    c
}

fn unpaired(v: &Verdict) -> (usize, usize) {
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    (e.intervals_left_out, e.pod_intervals_unpaired)
}

#[test]
fn a_gap_in_a_request_series_leaves_that_pods_errors_out_there() {
    // An answer that lost points of the new pods' request series (a partial response without
    // a warning) while their error series are whole: those minutes' errors must not be held
    // against the requests of the pods whose points survived. Two pods of three lose two
    // minutes in three; without this, ×2.01 and a rollback.
    let new = request_gaps(side("new", 1.0), |k, i| k == 2 || i % 3 == 0);
    let v = judge_php(new, side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert_eq!(unpaired(&v), (0, 80), "{}", v.reason);
    assert!(
        v.reason.contains("80 pod-interval(s) left out"),
        "{}",
        v.reason
    );
}

#[test]
fn request_points_lost_a_few_at_a_time_from_every_pod_do_not_hide_a_regression() {
    // Each pod loses a different third of its request points: every minute lacks one pod's,
    // and leaving those minutes out for the whole side would leave nothing to judge. The pod is
    // absent where its requests are; the others still count.
    let lossy = |c: Counts| request_gaps(c, |k, i| i % 3 != k);
    let bad = judge_php(lossy(side("new", 3.0)), side("old", 1.0));
    assert_eq!(bad.outcome, Outcome::Fail, "{}", bad.reason);
    assert_eq!(unpaired(&bad), (0, 60), "{}", bad.reason);
    let healthy = judge_php(lossy(side("new", 1.0)), side("old", 1.0));
    assert_eq!(healthy.outcome, Outcome::Pass, "{}", healthy.reason);
}

#[test]
fn a_pod_whose_request_series_is_lost_is_absent_not_held_against_the_others() {
    // The answer lost one pod's request series whole: its errors have no requests of their
    // own, and held against the other two pods' requests they would make a healthy release
    // ×1.5 worse. They are left out; the other pods are still judged by pod, a regression too.
    let lose_one = |mut c: Counts| {
        c.requests.remove(0);
        c
    };
    let v = judge_php(lose_one(side("new", 1.0)), side("old", 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert_eq!(unpaired(&v), (0, 60), "{}", v.reason);
    let bad = judge_php(lose_one(side("new", 3.0)), side("old", 1.0));
    assert_eq!(bad.outcome, Outcome::Fail, "{}", bad.reason);
}

#[test]
fn a_series_with_holes_is_no_proof_of_its_birth_at_its_first_point() {
    // Each old error series loses two points in three, each at other minutes, its first one or
    // two among them: read as counters born at their first point, the minutes before would
    // count as zero errors, and kept (the other series had no point yet either) they made a
    // history of a third of the true rate, against which a healthy release was rolled back
    // (a rolling update replayed through a real Prometheus). A series with holes says nothing
    // of the minutes before its first point.
    let mut old = side("old", 1.0);
    for (k, s) in old.errors.iter_mut().enumerate() {
        let mut i = 0;
        s.points.retain(|_| {
            i += 1;
            (i - 1 + k) % 3 == 0
        });
    }
    let skip = super::left_out(&old, 0, BTreeMap::new());
    assert_eq!(skip.intervals.len(), 60);
    // A counter born at its first error, whole from there on: the minutes before had none.
    let mut born_later = side("old", 1.0);
    born_later.errors[0].points.drain(..20);
    let skip = super::left_out(&born_later, 0, BTreeMap::new());
    assert!(skip.intervals.is_empty(), "{:?}", skip.intervals);
}

#[test]
fn a_late_counter_with_one_hole_leaves_out_one_minute_before_its_first_point_not_all() {
    // Born at its first error in minute 20, one point lost in minute 40: the answer that lost
    // one point may have lost the one before the first too, but not the twenty error-free
    // minutes before it, which would raise the side's rate if left out.
    let mut old = side("old", 1.0);
    let e = &mut old.errors[0];
    e.points.drain(..20);
    e.points.remove(20);
    let skip = super::left_out(&old, 0, BTreeMap::new());
    let expected: BTreeSet<Millis> = [19, 40].map(|i| millis(times()[i])).into();
    assert_eq!(skip.intervals, expected);
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
