//! Compare checks: pods as the unit, and the old version's history once the moments both
//! versions served are too few.

use super::super::tests::rule;
use super::super::{Baseline, Evidence, Observation, Outcome, Verdict, Window, judge};
use crate::analysis::rules::Rule;
use crate::analysis::source::Series;
use crate::analysis::time;

/// The last old pod leaves at this second; the new pods all start 20 s before (a fast rollout).
const LEFT: f64 = 36_000.0;
const STEP: f64 = 60.0;

fn cpu_rule(extra: &str) -> Rule {
    rule(&format!(
        "  - name: cpu\n    action: pause\n    window: 10m\n    check:\n      compare:\n        query: 'x{{pod=~\"{{{{ pods }}}}\"}}'\n        step: 1m\n        warmup: 2m\n        min_ratio: 1.15\n{extra}"
    ))
}

fn window_at(at: f64) -> Window {
    Window {
        at: time::from_seconds(at),
        start: time::from_seconds(at - 600.0),
        query_start: time::from_seconds(at - 720.0),
        warmup: 120_000,
        step: time::from_seconds(STEP),
    }
}

/// A deterministic wobble of ±5% around 1.
fn wobble(i: usize, seed: usize) -> f64 {
    1.0 + 0.1 * (((i * 7 + seed * 13) % 11) as f64 / 10.0 - 0.5)
}

/// `n` old pods on the minute grid from an hour and more before `LEFT` until `LEFT`, their
/// level at time t given by `level`.
fn old_pods(n: usize, level: impl Fn(f64) -> f64) -> Vec<Series> {
    (0..n)
        .map(|p| {
            let points = (0..=64).map(|i| {
                let t = LEFT - 64.0 * STEP + STEP * i as f64;
                (t, level(t) * wobble(i, p))
            });
            Series::for_pod(&format!("old-{p}"), points)
        })
        .collect()
}

/// New pods from 20 s before `LEFT` until `at`, at `levels[p]` (each pod its own level).
fn new_pods(levels: &[f64], at: f64) -> Vec<Series> {
    levels
        .iter()
        .enumerate()
        .map(|(p, level)| {
            let start = LEFT - 20.0;
            let points = (0..)
                .map(|i| start + STEP * i as f64)
                .take_while(|t| *t <= at)
                .enumerate()
                .map(|(i, t)| (t, level * wobble(i, p + 5)));
            Series::for_pod(&format!("new-{p}"), points)
        })
        .collect()
}

fn judged(r: &Rule, at: f64, new: Vec<Series>, old: Vec<Series>) -> Verdict {
    judge(
        r,
        &window_at(at),
        &Observation::Series {
            new,
            old: Some(old),
        },
    )
}

fn evidence(v: &Verdict) -> &super::super::CompareEvidence {
    match &v.evidence {
        Some(Evidence::Compare(e)) => e,
        _ => panic!("no compare evidence: {}", v.reason),
    }
}

#[test]
fn a_fast_rollouts_regression_is_judged_against_the_old_version_before_it_left() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    let v = judged(&r, at, new_pods(&[1.6, 1.5, 1.7], at), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let e = evidence(&v);
    assert_eq!(e.baseline, Baseline::History);
    assert_eq!((e.pods_worse, e.pods_judged), (3, 3));
    let h = e.history.as_ref().unwrap();
    assert!(h.ratio > 1.4 && h.ratio < 1.8, "{h:?}");
    assert!(h.largest_drift < 1.15, "{h:?}");
    assert!(h.drift_pairs >= 10, "{h:?}");
    assert!(
        v.reason.contains("against the old version's history"),
        "{}",
        v.reason
    );

    // The same release without the regression passes.
    let v = judged(
        &r,
        at,
        new_pods(&[1.0, 0.97, 1.03], at),
        old_pods(4, |_| 1.0),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert_eq!(evidence(&v).baseline, Baseline::History);
}

#[test]
fn the_old_versions_own_drift_raises_the_bar() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    // The old version's level swings by itself between 0.7 and 1.3 every 20 minutes (the
    // request mix of the hour): a new level 1.4 times its last is within what it does alone.
    let swinging = |t: f64| 1.0 + 0.3 * (std::f64::consts::TAU * t / 1200.0).sin();
    let before = swinging(LEFT - 300.0);
    let v = judged(
        &r,
        at,
        new_pods(&[1.4 * before, 1.4 * before, 1.4 * before], at),
        old_pods(4, swinging),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let h = evidence(&v).history.clone().unwrap();
    assert!(h.largest_drift > 1.3, "{h:?}");
    assert!(h.needed > 1.4, "{h:?}");
}

#[test]
fn one_old_pods_rarest_excursion_does_not_set_the_bar_for_every_new_pod() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    // One old pod of four spent 6 minutes of its hour at twice the others' level (a noisy
    // neighbour on its node came and went). That is not what a new pod must beat: the new pods
    // all at ×1.5 of the old version's level are a regression.
    let mut old = old_pods(4, |_| 1.0);
    let noisy = LEFT - 40.0 * STEP;
    for point in &mut old[3].points {
        if (noisy..noisy + 6.0 * STEP).contains(&point.t) {
            point.v *= 2.0;
        }
    }
    let v = judged(&r, at, new_pods(&[1.5, 1.45, 1.55], at), old.clone());
    let h = evidence(&v).history.clone().unwrap();
    assert!(h.pod_bar < 1.3, "{h:?}");
    assert_eq!((evidence(&v).pods_worse, evidence(&v).pods_judged), (3, 3));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);

    // An old pod that sits at ×1.6 all hour (its node is always busy) does raise the bar: one
    // new pod beside such a node is no regression, and new pods at ×1.5 are within what one
    // old pod shows.
    let mut old = old_pods(4, |_| 1.0);
    for point in &mut old[3].points {
        point.v *= 1.6;
    }
    let v = judged(&r, at, new_pods(&[1.5, 1.45, 1.55], at), old);
    let h = evidence(&v).history.clone().unwrap();
    assert!(h.pod_bar > 1.5, "{h:?}");
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
}

/// `n` old pods as [`old_pods`], pod `p` at `levels[p]` all hour (each on its own node).
fn old_pods_at(levels: &[f64]) -> Vec<Series> {
    let mut old = old_pods(levels.len(), |_| 1.0);
    for (pod, level) in old.iter_mut().zip(levels) {
        for point in &mut pod.points {
            point.v *= level;
        }
    }
    old
}

#[test]
fn new_pods_are_held_to_where_one_more_old_pod_would_fall_not_to_the_highest_old_pod() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    // Three old pods whose nodes set them at ×0.8, ×1 and ×1.25 of each other: two new pods
    // landing above the highest of them is what one in five healthy releases does, when the
    // new pods' nodes are as varied.
    let spread = [0.8, 1.0, 1.25];
    let v = judged(
        &r,
        at,
        new_pods(&[1.45, 1.4, 0.9], at),
        old_pods_at(&spread),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let h = evidence(&v).history.clone().unwrap();
    let bar = h.spread_bar.expect("three old pods");
    assert!(bar > 1.5 && bar < 3.0, "{h:?}");
    // Without it, two new pods of three would be beyond the bar: the ratio, the drift and the
    // old pods' rises all stay below ×1.4.
    assert!(
        h.ratio >= h.needed && h.needed < 1.4 && h.pod_bar < 1.4,
        "the rest would not hold it back: {h:?}"
    );
    assert!(
        v.reason.contains("where one more old pod would fall"),
        "{}",
        v.reason
    );
    // Every new pod beyond it is a regression.
    let v = judged(&r, at, new_pods(&[3.2, 3.0, 3.4], at), old_pods_at(&spread));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    // Old pods alike leave the bar near their own wobble: a ×1.5 release still fails.
    let v = judged(
        &r,
        at,
        new_pods(&[1.5, 1.45, 1.55], at),
        old_pods_at(&[1.0, 1.02, 0.98]),
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(evidence(&v).history.as_ref().unwrap().spread_bar.unwrap() < 1.2);
    // Two old pods set no bar: from two, the t quantile alone would put it beyond ×3.
    let v = judged(
        &r,
        at,
        new_pods(&[1.5, 1.45, 1.55], at),
        old_pods_at(&[0.9, 1.1]),
    );
    assert_eq!(evidence(&v).history.as_ref().unwrap().spread_bar, None);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

#[test]
fn a_regression_beyond_the_drift_and_the_floor_fails_without_their_product() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    // The old version's level moves by itself by up to about a fifth: a new level a third
    // above its last is beyond that and beyond min_ratio 1.15, though not beyond both
    // multiplied (a bar that held back a third of the +50% regressions).
    let swinging = |t: f64| 1.0 + 0.12 * (std::f64::consts::TAU * t / 1200.0).sin();
    let before = swinging(LEFT - 300.0);
    let v = judged(
        &r,
        at,
        new_pods(&[1.33 * before, 1.33 * before, 1.33 * before], at),
        old_pods(4, swinging),
    );
    let h = evidence(&v).history.clone().unwrap();
    assert!(h.largest_drift > 1.15, "{h:?}");
    assert!(h.ratio < 1.15 * h.largest_drift, "{h:?}");
    assert_eq!(h.needed, h.largest_drift, "{h:?}");
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

#[test]
fn too_short_a_history_is_missing_data() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    // Only 12 minutes of the old version: no way to know how it drifts by itself.
    let v = judged(
        &r,
        at,
        new_pods(&[2.0, 2.0, 2.0], at),
        short_lived(3, 720.0),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(v.reason.contains("too little to know"), "{}", v.reason);
}

/// The old version's series since `from` seconds before `LEFT` only (a short-lived version).
fn short_lived(n: usize, from: f64) -> Vec<Series> {
    old_pods(n, |_| 1.0)
        .into_iter()
        .map(|mut s| {
            s.points.retain(|p| p.t > LEFT - from);
            s
        })
        .collect()
}

#[test]
fn too_short_a_history_holds_a_regression_to_the_drift_the_rule_assumes() {
    let r = cpu_rule("        unknown_drift: 1.75\n");
    let at = LEFT + 480.0;
    // Twice the old level on every new pod: beyond the drift assumed.
    let v = judged(
        &r,
        at,
        new_pods(&[2.0, 1.9, 2.1], at),
        short_lived(3, 720.0),
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let e = evidence(&v);
    assert_eq!(e.baseline, Baseline::History);
    let h = e.history.as_ref().unwrap();
    assert_eq!(h.unknown_drift, Some(1.75));
    assert!(h.drift_pairs < 10 && h.needed == 1.75, "{h:?}");
    assert!(
        v.reason.contains("too short a history to measure how much it moves by itself, so a regression needs ×1.75"),
        "{}",
        v.reason
    );
    assert!(v.baseline_line().unwrap().contains("its drift assumed"));
    // +50%: beyond min_ratio and what little drift was measured, but not beyond the drift
    // assumed: passes.
    let v = judged(
        &r,
        at,
        new_pods(&[1.5, 1.5, 1.5], at),
        short_lived(3, 720.0),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // A history long enough to measure the drift: the measured drift, not the assumed one.
    let v = judged(&r, at, new_pods(&[1.5, 1.5, 1.5], at), old_pods(3, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert_eq!(evidence(&v).history.as_ref().unwrap().unknown_drift, None);
}

#[test]
fn a_long_lived_versions_history_is_never_held_to_an_assumed_drift() {
    let r = cpu_rule("        unknown_drift: 1.75\n");
    // Half an hour into a long bake, the old version (over an hour old) left 30 minutes ago:
    // its stretches 30 minutes apart no longer fit in the span. That is a long gap, not a
    // short-lived version: inconclusive, as without unknown_drift.
    let at = LEFT + 1800.0;
    let v = judged(&r, at, new_pods(&[2.0, 2.0, 2.0], at), old_pods(3, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(v.reason.contains("too little to know"), "{}", v.reason);
}

#[test]
fn an_old_level_of_too_few_moments_is_not_held_to_an_assumed_drift() {
    let r = cpu_rule("        unknown_drift: 1.75\n");
    let at = LEFT + 480.0;
    // The old version served five minutes, its first two a warm-up: its level rests on too
    // few moments to hold anything to it.
    let v = judged(
        &r,
        at,
        new_pods(&[2.0, 2.0, 2.0], at),
        short_lived(3, 200.0),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(
        v.reason.contains(
            "rests on 2 moment(s), fewer than min_samples 10: too little to hold the new pods to an assumed drift"
        ),
        "{}",
        v.reason
    );
}

#[test]
fn without_history_a_rollout_that_left_no_common_moments_is_missing_data() {
    let r = cpu_rule("        history: false\n");
    let at = LEFT + 480.0;
    let v = judged(&r, at, new_pods(&[2.0, 2.0], at), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
}

/// New pods at `levels` of the old pods' CPU over the 12 minutes before `at`, long past warm-up.
fn serving_beside(levels: &[f64], at: f64) -> Vec<Series> {
    levels
        .iter()
        .enumerate()
        .map(|(p, level)| {
            let points = (0..=12).map(|i| (at - 720.0 + STEP * i as f64, level * wobble(i, p + 5)));
            Series::for_pod(&format!("new-{p}"), points)
        })
        .collect()
}

#[test]
fn one_pod_on_a_busy_node_does_not_fail_a_release_but_most_pods_do() {
    let r = cpu_rule("");
    // Both versions serve the whole window: old pods from before, new pods since long enough
    // to be past warm-up. One new pod of three runs at twice the CPU (its node is busy).
    let at = LEFT;
    let new = |levels: &[f64]| serving_beside(levels, at);
    let v = judged(&r, at, new(&[2.0, 1.0, 1.0]), old_pods(6, |_| 1.0));
    let e = evidence(&v);
    assert_eq!(e.baseline, Baseline::Concurrent);
    assert_eq!((e.pods_worse, e.pods_judged), (1, 3));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);

    let v = judged(&r, at, new(&[2.0, 1.5, 1.0]), old_pods(6, |_| 1.0));
    let e = evidence(&v);
    assert_eq!((e.pods_worse, e.pods_judged), (2, 3));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

#[test]
fn a_pass_held_back_only_by_the_pods_not_agreeing_yet_keeps_the_streak() {
    let r = cpu_rule("");
    let at = LEFT;
    // Two of three new pods at twice the CPU, and a fourth just past its warm-up with two
    // samples at the old level: significant and large, but not on most pods yet (a pod
    // joining a regression's first pods looks like this): a pass that keeps the streak.
    let mut new = serving_beside(&[2.0, 2.0, 1.0], at);
    let young = (0..5).map(|i| (at - 240.0 + STEP * i as f64, wobble(i, 9)));
    new.push(Series::for_pod("new-young", young));
    let v = judged(&r, at, new, old_pods(6, |_| 1.0));
    assert_eq!((evidence(&v).pods_worse, evidence(&v).pods_judged), (2, 4));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(v.building, "{}", v.reason);
    // The same without a young pod, two pods disagreeing for good (one on a busy node, say):
    // nothing building, a pass that resets the streak.
    let v = judged(
        &r,
        at,
        serving_beside(&[2.0, 2.0, 1.0, 1.0], at),
        old_pods(6, |_| 1.0),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(!v.building, "{}", v.reason);
    // The same levels as the old pods: a clean pass.
    let v = judged(&r, at, serving_beside(&[1.0; 4], at), old_pods(6, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(!v.building, "{}", v.reason);
}

#[test]
fn one_new_pod_is_judged_against_how_much_the_old_pods_differ_from_each_other() {
    let r = cpu_rule("");
    let at = LEFT;
    let one_new = |level: f64| -> Vec<Series> {
        let points = (0..=12).map(|i| {
            let t = at - 720.0 + STEP * i as f64;
            (t, level * wobble(i, 9))
        });
        vec![Series::for_pod("new-0", points)]
    };
    // Old pods on nodes with different neighbours: levels 0.8 to 1.25 of each other.
    let spread = [0.8, 0.9, 1.0, 1.1, 1.25];
    let old: Vec<Series> = spread
        .iter()
        .enumerate()
        .map(|(p, level)| {
            let points = (0..=64).map(|i| {
                let t = LEFT - 64.0 * STEP + STEP * i as f64;
                (t, level * wobble(i, p))
            });
            Series::for_pod(&format!("old-{p}"), points)
        })
        .collect();
    // The first new pod lands on a busy node: 1.45, above every old pod, and significant
    // sample by sample, yet within how much the old pods differ.
    let v = judged(&r, at, one_new(1.45), old.clone());
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(v.reason.contains("≥ pod_alpha"), "{}", v.reason);
    // Twice the old level stands out from that spread.
    let v = judged(&r, at, one_new(2.4), old);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    // Old pods that agree with each other: the same 1.45 stands out.
    let v = judged(&r, at, one_new(1.45), old_pods(5, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

/// New pods since 15 minutes before `LEFT` (a slow rollout), at `before` while the old pods
/// serve and `after` once they left.
fn slow_new_pods(n: usize, before: f64, after: f64, at: f64) -> Vec<Series> {
    new_pods_since(LEFT - 900.0, n, (before, after), at)
}

/// `n` new pods on the minute grid from `start` until `at`, at `levels.0` until `LEFT` and
/// `levels.1` after.
fn new_pods_since(start: f64, n: usize, levels: (f64, f64), at: f64) -> Vec<Series> {
    (0..n)
        .map(|p| {
            let points = (0..)
                .map(|i| start + STEP * i as f64)
                .take_while(|t| *t <= at)
                .enumerate()
                .map(|(i, t)| {
                    let level = if t <= LEFT { levels.0 } else { levels.1 };
                    (t, level * wobble(i, p + 5))
                });
            Series::for_pod(&format!("new-{p}"), points)
        })
        .collect()
}

#[test]
fn a_rise_only_after_the_old_pods_left_is_the_loads_not_the_releases() {
    let r = cpu_rule("");
    let at = LEFT + 600.0;
    // While both served, the new pods ran as the old ones did; the level rose after.
    let v = judged(&r, at, slow_new_pods(3, 1.0, 1.5, at), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let h = evidence(&v).history.clone().unwrap();
    assert!(h.ratio > 1.4, "{h:?}");
    assert!(h.while_both.unwrap() < 1.1, "{h:?}");
    assert!(
        v.reason.contains("the rise came after the old pods left"),
        "{}",
        v.reason
    );
    // A release that was worse while both served, and stays worse, fails.
    let v = judged(&r, at, slow_new_pods(3, 1.5, 1.5, at), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(evidence(&v).history.as_ref().unwrap().while_both.unwrap() > 1.4);
}

#[test]
fn a_shared_incident_after_the_old_pods_left_is_not_a_regression() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    // Twice the CPU for four minutes on every new pod (a slow database), then back: four of
    // the seven moments after warm-up, so the plain median alone would blame the release.
    let incident = |t: f64| (LEFT + 120.0..LEFT + 360.0).contains(&t);
    let new: Vec<Series> = new_pods(&[1.0, 1.0, 1.0], at)
        .into_iter()
        .map(|mut s| {
            for p in &mut s.points {
                if incident(p.t) {
                    p.v *= 2.0;
                }
            }
            s
        })
        .collect();
    let v = judged(&r, at, new.clone(), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // Before the new level spans longer than incident_span, nothing is concluded.
    let early = LEFT + 300.0;
    let v = judged(
        &r,
        early,
        new_pods(&[2.0, 2.0, 2.0], early),
        old_pods(4, |_| 1.0),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(v.reason.contains("incident_span"), "{}", v.reason);
}

/// New pods from five minutes before `LEFT` until `at`, at `level`: three minutes past
/// warm-up beside the old pods.
fn brief_new_pods(n: usize, level: f64, at: f64) -> Vec<Series> {
    new_pods_since(LEFT - 300.0, n, (level, level), at)
}

#[test]
fn what_both_versions_showed_side_by_side_still_counts_after_the_old_pods_left() {
    let r = cpu_rule("");
    // A minute after the last old pod left: the new level after warm-up spans 4 minutes, too
    // short for the history comparison, but for three minutes both versions served and the
    // new pods ran 1.6 times the old ones' CPU.
    let at = LEFT + 60.0;
    let v = judged(&r, at, brief_new_pods(3, 1.6, at), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(
        v.reason.contains("at the moments both served"),
        "{}",
        v.reason
    );
    assert_eq!(evidence(&v).baseline, Baseline::Concurrent);
    // A release that ran as the old one did: the history cannot judge yet, and nothing fails.
    let v = judged(&r, at, brief_new_pods(3, 1.0, at), old_pods(4, |_| 1.0));
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(v.reason.contains("incident_span"), "{}", v.reason);
}

#[test]
fn new_pods_seen_at_few_moments_are_set_against_the_old_pods_at_those_moments() {
    let r = cpu_rule("        min_samples: 5\n");
    let at = LEFT;
    // Five old pods at one level for an hour, then, over the last three minutes, spread
    // apart (a noisy neighbour on some nodes): 0.8 to 1.3 of their median.
    let wide = [0.8, 0.9, 1.0, 1.15, 1.3];
    let old: Vec<Series> = (0..5)
        .map(|p| {
            let points = (0..=64).map(|i| {
                let t = LEFT - 64.0 * STEP + STEP * i as f64;
                (t, if i >= 62 { wide[p] } else { wobble(i, p) })
            });
            Series::for_pod(&format!("old-{p}"), points)
        })
        .collect();
    // Three new pods, past warm-up for those three minutes only, within that spread: over
    // the hour the old pods' levels agree closely and the new ones would stand out from
    // them, but at the moments the new pods were seen, the old pods ran as high.
    let new: Vec<Series> = [1.2, 1.25, 1.28]
        .iter()
        .enumerate()
        .map(|(p, level)| {
            let points = (0..=4).map(|i| (at - 240.0 + STEP * i as f64, level * wobble(i, p)));
            Series::for_pod(&format!("new-{p}"), points)
        })
        .collect();
    let v = judged(&r, at, new, old);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
}

/// Old pods whose loads differ from moment to moment and pod to pod (4 to 10 requests/s), each
/// costing `fixed + per_request × load` CPU: their CPU per request, and their loads.
fn old_pods_with_load(n: usize, fixed: f64, per_request: f64) -> (Vec<Series>, Vec<Series>) {
    let load = |i: usize, p: usize| 4.0 + 6.0 * ((i * 7 + p * 3) % 13) as f64 / 12.0;
    let times = |i: usize| LEFT - 64.0 * STEP + STEP * i as f64;
    (0..n)
        .map(|p| {
            let values = (0..=64).map(|i| {
                let l = load(i, p);
                (
                    times(i),
                    (fixed + per_request * l) / l * (1.0 + (wobble(i, p) - 1.0) * 0.2),
                )
            });
            let loads = (0..=64).map(|i| (times(i), load(i, p)));
            (
                Series::for_pod(&format!("old-{p}"), values),
                Series::for_pod(&format!("old-{p}"), loads),
            )
        })
        .unzip()
}

/// New pods from 20 s before `LEFT` until `at`, each at `load` requests/s and costing `factor`
/// times what the old version would at that load.
fn new_pods_with_load(
    pods: usize,
    load: f64,
    cost: impl Fn(f64) -> f64,
    factor: f64,
    at: f64,
) -> (Vec<Series>, Vec<Series>) {
    (0..pods)
        .map(|p| {
            let times: Vec<f64> = (0..)
                .map(|i| LEFT - 20.0 + STEP * i as f64)
                .take_while(|t| *t <= at)
                .collect();
            let values = times.iter().enumerate().map(|(i, t)| {
                (
                    *t,
                    factor * cost(load) / load * (1.0 + (wobble(i, p + 5) - 1.0) * 0.2),
                )
            });
            let loads = times.iter().map(|t| (*t, load));
            (
                Series::for_pod(&format!("new-{p}"), values),
                Series::for_pod(&format!("new-{p}"), loads.collect::<Vec<_>>()),
            )
        })
        .unzip()
}

#[test]
fn cpu_per_request_is_judged_at_the_old_versions_load() {
    let r = cpu_rule("");
    let at = LEFT + 480.0;
    let (fixed, per_request) = (0.1, 0.01);
    let cost = |l: f64| fixed + per_request * l;
    let (old, old_load) = old_pods_with_load(4, fixed, per_request);
    // After the old pods left, the load fell to 4.5 requests/s (within what the old version
    // carried): the fixed part weighs more on each request, a third more CPU per request than
    // the old version's usual, with no change in the code.
    let (new, new_load) = new_pods_with_load(3, 4.5, cost, 1.0, at);
    let as_measured = judged(&r, at, new.clone(), old.clone());
    assert_eq!(as_measured.outcome, Outcome::Fail, "{}", as_measured.reason);
    let at_load = |new: Vec<Series>, new_load: Vec<Series>| {
        judge(
            &r,
            &window_at(at),
            &Observation::SeriesAtLoad {
                new,
                old: Some(old.clone()),
                new_load,
                old_load: Some(old_load.clone()),
            },
        )
    };
    let v = at_load(new, new_load);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // The verdict's own reason first, the model after: a line cut short keeps what decided.
    assert!(
        v.reason
            .starts_with("the old pods are gone, so against the old version's history"),
        "{}",
        v.reason
    );
    assert!(
        v.reason
            .contains("; both sides at the old version's load (its cost modelled as 0.1015")
            && v.reason
                .contains(" + 0.009773 × load, fitted on 260 samples at loads 4 to 10"),
        "{}",
        v.reason
    );
    let model = evidence(&v)
        .at_load
        .clone()
        .expect("the model is in the evidence");
    assert_eq!((model.samples, model.without_load), (260, 0), "{model:?}");
    // A release that costs half as much again at that load fails.
    let (new, new_load) = new_pods_with_load(3, 4.5, cost, 1.5, at);
    let v = at_load(new.clone(), new_load);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(
        evidence(&v).history.as_ref().is_some_and(|h| h.ratio > 1.4),
        "{}",
        v.reason
    );
    // With no load for the new pods there is nothing to judge at the old version's load.
    let v = at_load(new, Vec::new());
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(
        v.reason.contains("the new pods' samples have no load"),
        "{}",
        v.reason
    );
}

#[test]
fn the_load_model_is_fitted_on_the_old_side_and_never_extrapolated() {
    use super::load::{LoadModel, Loads};
    let cost = |l: f64| 0.05 + 0.02 * l;
    let pairs: Vec<(f64, f64)> = (0..40)
        .map(|i| {
            let l = 2.0 + i as f64 * 0.2;
            (l, cost(l) / l)
        })
        .collect();
    let m = LoadModel::fit(&pairs, 10).expect("fits");
    assert!(
        (m.fixed - 0.05).abs() < 1e-9 && (m.per_unit - 0.02).abs() < 1e-9,
        "{m:?}"
    );
    assert!(m.loads.0 > 2.0 && m.loads.1 < 9.8, "{m:?}");
    // The old version's own samples at any load come out at its cost per request at its
    // median load; a release at 1.5 times the cost, at 1.5 times that.
    let reference = m.reference_cost();
    let series = |factor: f64, load: f64| {
        (
            vec![Series::for_pod("p", [(60.0, factor * cost(load) / load)])],
            vec![Series::for_pod("p", [(60.0, load)])],
        )
    };
    for load in [3.0, 5.0, 9.0] {
        for factor in [1.0, 1.5] {
            let (v, l) = series(factor, load);
            let got = m.rescale(&v, &Loads::of(&l))[0].points[0].v;
            assert!(
                (got / reference - factor).abs() < 1e-9,
                "{load} {factor}: {got}"
            );
        }
    }
    // Beyond the loads the old version carried, the cost per request is held at the edge's.
    let (v, l) = series(1.0, 0.5);
    let edge = cost(m.loads.0) / m.loads.0;
    let got = m.rescale(&v, &Loads::of(&l))[0].points[0].v;
    assert!(
        (got / reference - (cost(0.5) / 0.5) / edge).abs() < 1e-9,
        "{got}"
    );
    // A sample with no load at its moment, or none of its pod, is left out.
    let v = vec![Series::for_pod("p", [(60.0, 0.1), (120.0, 0.1)])];
    let l = vec![
        Series::for_pod("p", [(60.0, 3.0)]),
        Series::for_pod("q", [(120.0, 3.0)]),
    ];
    assert_eq!(m.rescale(&v, &Loads::of(&l))[0].points.len(), 1);

    // A cost that grows faster than the load (a negative fixed part) is fitted through zero.
    let steep: Vec<(f64, f64)> = (1..=20).map(|l| (l as f64, 0.01 * l as f64)).collect();
    let m = LoadModel::fit(&steep, 10).expect("fits");
    assert_eq!(m.fixed, 0.0, "{m:?}");
    // A cost the load explains none of (a slope below zero) is all fixed: continuous with a
    // slope that shrinks to zero, not a switch to a plain cost per unit.
    let flat: Vec<(f64, f64)> = (1..=20)
        .map(|l| (l as f64, (0.5 - 0.001 * l as f64) / l as f64))
        .collect();
    let m = LoadModel::fit(&flat, 10).expect("fits");
    assert_eq!(m.per_unit, 0.0, "{m:?}");
    assert!((m.fixed - (0.5 - 0.001 * 10.5)).abs() < 1e-9, "{m:?}");
    // A traffic spike whose cost was capped at the CPU limit (a tenth of the samples, at
    // five times the usual load) does not tilt the line the rest follow.
    let true_cost = |l: f64| 0.02 + 0.024 * l;
    let capped: Vec<(f64, f64)> = (0..100)
        .map(|i| {
            let l = if i % 10 == 9 {
                40.0 + i as f64 / 5.0
            } else {
                4.0 + (i % 9) as f64
            };
            (l, true_cost(l).min(0.5) / l)
        })
        .collect();
    let m = LoadModel::fit(&capped, 10).expect("fits");
    assert!(
        (m.per_unit - 0.024).abs() < 1e-9 && (m.fixed - 0.02).abs() < 1e-9,
        "{m:?}"
    );
    // Too few usable pairs (NaN, no load) fit nothing.
    let few = [
        (f64::NAN, 0.1),
        (0.0, 0.1),
        (3.0, f64::INFINITY),
        (3.0, 0.1),
    ];
    assert!(LoadModel::fit(&few, 2).is_none());
}
