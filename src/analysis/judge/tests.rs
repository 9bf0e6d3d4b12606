use super::compare::median_ratio_reached;
use super::*;
use crate::analysis::rules::ProportionTest;
use crate::analysis::rules::RuleSet;
use std::path::PathBuf;

pub(super) fn rule(yaml: &str) -> Rule {
    let text = format!("version: 1\nrules:\n{yaml}");
    RuleSet::from_sources(&[(PathBuf::from("t.yaml"), text)])
        .unwrap()
        .rules
        .remove(0)
}

fn error_rule(extra: &str) -> Rule {
    rule(&format!(
        "  - name: errs\n    action: rollback\n{extra}    check:\n      error_rate:\n        errors: 'increase(e{{pod=~\"{{{{ pods }}}}\"}}[{{{{ interval }}}}])'\n        requests: 'increase(r{{pod=~\"{{{{ pods }}}}\"}}[{{{{ interval }}}}])'\n        min_requests: 50\n"
    ))
}

/// One interval's counts; `None` is an absent series.
fn counts(errors: Option<f64>, requests: Option<f64>) -> Counts {
    let one = |v: Option<f64>| {
        v.map(|v| Series::for_pod("", [(1000.0, v)]))
            .into_iter()
            .collect()
    };
    Counts {
        errors: one(errors),
        requests: one(requests),
    }
}

/// Counts per interval: (time, errors, requests).
fn strata(points: &[(f64, f64, f64)]) -> Counts {
    Counts {
        errors: vec![Series::for_pod("", points.iter().map(|p| (p.0, p.1)))],
        requests: vec![Series::for_pod("", points.iter().map(|p| (p.0, p.2)))],
    }
}

#[test]
fn intervals_are_compared_with_intervals_not_the_window_with_the_window() {
    let r = error_rule("");
    // Minute one: calm; the old pods serve most. Minute two: a shared incident at 5%, and the
    // new pods now serve most. In window totals the new side looks four times worse.
    let new = strata(&[(940.0, 0.0, 100.0), (1000.0, 40.0, 800.0)]);
    let old = strata(&[(940.0, 1.0, 900.0), (1000.0, 10.0, 200.0)]);
    let v = judge(
        &r,
        &window(),
        &Observation::Counts {
            new,
            old: Some(old),
        },
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!()
    };
    assert_eq!(e.strata, 2);
    // Mantel-Haenszel: (0·900 + 40·200)/1000 over (1·100 + 10·800)/1000, i.e. 8 / 8.1.
    assert!(
        (e.expected_errors - 40.5).abs() < 1e-9,
        "{}",
        e.expected_errors
    );
    assert!((e.ratio.unwrap() - 8.0 / 8.1).abs() < 1e-12);
    assert!(
        e.new.rate > 3.0 * e.old.rate,
        "window totals mislead: {e:?}"
    );
    // The same minutes with the new pods alone at 5% do fail.
    let new = strata(&[(940.0, 5.0, 100.0), (1000.0, 40.0, 800.0)]);
    let old = strata(&[(940.0, 0.0, 900.0), (1000.0, 0.0, 200.0)]);
    let v = judge(
        &r,
        &window(),
        &Observation::Counts {
            new,
            old: Some(old),
        },
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

#[test]
fn sides_that_never_overlap_are_missing_data() {
    let r = error_rule("");
    let new = strata(&[(1000.0, 5.0, 800.0)]);
    let old = strata(&[(940.0, 0.0, 900.0)]);
    let v = judge(
        &r,
        &window(),
        &Observation::Counts {
            new,
            old: Some(old),
        },
    );
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(
        v.reason
            .contains("never served requests in the same interval"),
        "{}",
        v.reason
    );
}

pub(super) fn window() -> Window {
    Window {
        at: 1_000_000,
        start: 700_000,
        query_start: 580_000,
        warmup: 120_000,
        step: 30_000,
    }
}

fn judge_counts(
    r: &Rule,
    new: (Option<f64>, Option<f64>),
    old: Option<(Option<f64>, Option<f64>)>,
) -> Verdict {
    let obs = Observation::Counts {
        new: counts(new.0, new.1),
        old: old.map(|o| counts(o.0, o.1)),
    };
    judge(r, &window(), &obs)
}

#[test]
fn class_errors_only_in_the_new_pods_fail_with_the_numbers() {
    let r = error_rule("");
    let v = judge_counts(&r, (Some(30.0), Some(5000.0)), Some((None, Some(15000.0))));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("evidence")
    };
    assert_eq!(
        (e.new.errors, e.new.requests, e.old.errors),
        (30.0, 5000.0, 0.0)
    );
    assert_eq!(
        e.ratio, None,
        "errors where the old side had none: infinite ratio"
    );
    // 30 errors, each new with probability 1/4 under the null.
    assert!((e.p_value - 0.25f64.powi(30)).abs() < 1e-25);
    assert!(v.reason.contains("0.6% (30/5000)"), "{}", v.reason);
    assert!(
        v.reason
            .contains("made 30 errors where the old pods' rate predicts 0"),
        "{}",
        v.reason
    );
    assert!(v.reason.contains("×∞"), "{}", v.reason);
}

#[test]
fn a_shared_incident_is_not_blamed_on_the_release() {
    let r = error_rule("");
    // Both sides at 1%: a database outage hits old and new alike.
    let v = judge_counts(
        &r,
        (Some(50.0), Some(5000.0)),
        Some((Some(150.0), Some(15000.0))),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
}

#[test]
fn low_traffic_neither_fails_nor_pretends() {
    let r = error_rule("");
    // Too few requests for any conclusion.
    let v = judge_counts(&r, (Some(1.0), Some(40.0)), Some((Some(0.0), Some(400.0))));
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(
        v.reason.contains("fewer than min_requests 50"),
        "{}",
        v.reason
    );
    // Two errors out of 200 against none out of 600: p = 1/16, not evidence.
    let v = judge_counts(&r, (Some(2.0), Some(200.0)), Some((Some(0.0), Some(600.0))));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
}

#[test]
fn significant_but_tiny_differences_do_not_fail() {
    let r = error_rule("");
    // 0.012% against 0.010% on a million requests each: real, but far below ×2.
    let v = judge_counts(
        &r,
        (Some(1200.0), Some(1e7)),
        Some((Some(1000.0), Some(1e7))),
    );
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!()
    };
    assert!(e.p_value < 0.001, "{}", e.p_value);
    assert_eq!(v.outcome, Outcome::Pass);
    assert!(
        v.reason.contains("significant but ratio below min_ratio 2"),
        "{}",
        v.reason
    );
}

/// The default error-rate rule with `test`, after checking that it decides two clear cases:
/// 30 errors in 5,000 requests against none in 15,000 fails, 1% against 1% passes.
fn decides_clear_cases(test: ProportionTest) -> Rule {
    let mut r = error_rule("");
    let Check::ErrorRate(c) = &mut r.check else {
        panic!()
    };
    c.test = test;
    for (new, old, want) in [
        ((30.0, 5000.0), (0.0, 15000.0), Outcome::Fail),
        ((50.0, 5000.0), (150.0, 15000.0), Outcome::Pass),
    ] {
        let v = judge_counts(
            &r,
            (Some(new.0), Some(new.1)),
            Some((Some(old.0), Some(old.1))),
        );
        assert_eq!(v.outcome, want, "{}", v.reason);
        let Some(Evidence::ErrorRate(e)) = &v.evidence else {
            panic!()
        };
        assert_eq!(e.test, test);
    }
    r
}

#[test]
fn fisher_gives_the_same_answer_on_clear_cases() {
    decides_clear_cases(ProportionTest::Fisher);
}

#[test]
fn missing_data_follows_on_missing_and_never_fails_by_default() {
    let r = error_rule("");
    // Absent errors are zero errors (the counter does not exist yet).
    let v = judge_counts(&r, (None, Some(5000.0)), Some((None, Some(5000.0))));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // Absent requests, or NaN, are missing data.
    for new in [
        (Some(1.0), None),
        (Some(f64::NAN), Some(100.0)),
        (Some(1.0), Some(f64::NAN)),
    ] {
        let v = judge_counts(&r, new, Some((Some(0.0), Some(5000.0))));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{new:?}: {}", v.reason);
        assert!(v.reason.starts_with("missing data"), "{}", v.reason);
    }
    let fail_when_missing = error_rule("    on_missing: fail\n");
    let v = judge_counts(
        &fail_when_missing,
        (Some(1.0), None),
        Some((Some(0.0), Some(5000.0))),
    );
    assert_eq!(v.outcome, Outcome::Fail);
    let pass_when_missing = error_rule("    on_missing: pass\n");
    let v = judge_counts(
        &pass_when_missing,
        (Some(1.0), None),
        Some((Some(0.0), Some(5000.0))),
    );
    assert_eq!(v.outcome, Outcome::Pass);
}

#[test]
fn no_baseline_and_failed_queries_are_always_inconclusive() {
    let r = error_rule("    on_missing: fail\n");
    let v = judge_counts(&r, (Some(30.0), Some(5000.0)), None);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.reason.contains("no old ReplicaSet"), "{}", v.reason);
    let v = judge(
        &r,
        &window(),
        &Observation::Failed(SourceError::Unreachable("refused".into())),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert_eq!(
        v.error.as_deref(),
        Some("metric source unreachable: refused")
    );
    assert_eq!(v.error_kind, Some(SourceErrorKind::Unreachable));
    // A check handed the wrong kind of observation does not panic either.
    let v = judge_series(&r, vec![], None);
    assert_eq!(
        v.outcome,
        Outcome::Fail,
        "on_missing: fail applies to unusable data"
    );
    assert!(v.reason.contains("internal"), "{}", v.reason);
}

/// Judges count observations over a window, with an old side.
pub(super) fn judge_counts_in(r: &Rule, w: &Window, new: Counts, old: Counts) -> Verdict {
    judge(
        r,
        w,
        &Observation::Counts {
            new,
            old: Some(old),
        },
    )
}

/// Two old pods at 2 errors per 1,000 requests in each of five minutes ending at 1000.
fn steady_old() -> Counts {
    let cells: Vec<(&str, f64, f64, f64)> = [760.0, 820.0, 880.0, 940.0, 1000.0]
        .iter()
        .flat_map(|t| [("old-a", *t, 2.0, 1000.0), ("old-b", *t, 2.0, 1000.0)])
        .collect();
    by_pod(&cells)
}

/// Judges series observations over the standard window.
fn judge_series(r: &Rule, new: Vec<Series>, old: Option<Vec<Series>>) -> Verdict {
    judge(r, &window(), &Observation::Series { new, old })
}

/// A pod whose series covers the whole query range, values from `f`.
fn pod(name: &str, f: impl Fn(usize) -> f64) -> Series {
    Series::for_pod(name, (0..=14).map(|i| (580.0 + 30.0 * i as f64, f(i))))
}

fn cpu_rule(extra: &str) -> Rule {
    rule(&format!(
        "  - name: cpu\n    action: pause\n    check:\n      compare:\n        query: 'x{{pod=~\"{{{{ pods }}}}\"}}'\n        warmup: 2m\n{extra}"
    ))
}

/// `n` pods named `<prefix>-<i>` around `base`, each with its own wobble.
fn noisy_pods(prefix: &str, n: usize, base: f64, seed: usize) -> Vec<Series> {
    (0..n)
        .map(|p| pod(&format!("{prefix}-{p}"), noisy(base, p + seed)))
        .collect()
}

fn noisy(base: f64, seed: usize) -> impl Fn(usize) -> f64 {
    move |i| base * (1.0 + 0.05 * (((i * 7 + seed * 13) % 11) as f64 / 10.0 - 0.5))
}

#[test]
fn compare_fails_a_clear_regression_and_passes_equal_sides() {
    let r = cpu_rule("");
    let old: Vec<Series> = noisy_pods("old", 4, 1.0, 0);
    let worse: Vec<Series> = noisy_pods("new", 2, 1.5, 7);
    let v = judge_series(&r, worse, Some(old.clone()));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let Some(Evidence::Compare(e)) = &v.evidence else {
        panic!()
    };
    assert_eq!((e.new.pods, e.old.pods), (2, 4));
    // Only the 11 points inside [700, 1000] count.
    assert_eq!((e.new.samples, e.old.samples), (22, 44));
    assert!(e.median_ratio.unwrap() > 1.4 && e.shift > 0.4, "{e:?}");

    let same: Vec<Series> = noisy_pods("new", 2, 1.0, 7);
    let v = judge_series(&r, same, Some(old));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
}

#[test]
fn compare_respects_direction() {
    let r = cpu_rule("        direction: lower_is_worse\n");
    let old: Vec<Series> = noisy_pods("old", 4, 1.0, 0);
    let higher: Vec<Series> = noisy_pods("new", 2, 1.5, 0);
    let v = judge_series(&r, higher, Some(old.clone()));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let lower: Vec<Series> = noisy_pods("new", 2, 0.5, 0);
    let v = judge_series(&r, lower, Some(old));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

#[test]
fn warm_up_of_young_pods_is_left_out() {
    let r = cpu_rule("");
    let old: Vec<Series> = noisy_pods("old", 4, 1.0, 0);
    // New pods started at t = 640 (inside the query range): three times the CPU for their first
    // two minutes (opcache priming), normal after.
    let young = |name: &str| {
        Series::for_pod(
            name,
            (0..=12).map(|i| {
                let t = 640.0 + 30.0 * i as f64;
                (
                    t,
                    if t < 760.0 {
                        3.0
                    } else {
                        1.0 + 0.001 * i as f64
                    },
                )
            }),
        )
    };
    let new = vec![young("new-a"), young("new-b"), young("new-c")];
    let v = judge_series(&r, new.clone(), Some(old.clone()));
    let Some(Evidence::Compare(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    assert_eq!(e.new.warmup_dropped, 6, "points at 700 and 730 of each pod");
    assert_eq!(e.new.samples, 27);
    assert!(e.new.max < 1.1, "{e:?}");
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // Without the warm-up allowance the spikes count.
    let mut w = window();
    w.warmup = 0;
    let v = judge(
        &r,
        &w,
        &Observation::Series {
            new,
            old: Some(old),
        },
    );
    let Some(Evidence::Compare(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    assert_eq!(
        (e.new.samples, e.new.warmup_dropped, e.new.max),
        (33, 0, 3.0)
    );
}

#[test]
fn a_warm_up_longer_than_the_rules_ends_where_each_pods_own_level_stops_falling() {
    let r = cpu_rule("");
    let old: Vec<Series> = noisy_pods("old", 4, 1.0, 0);
    // New pods started at t = 640: the rule's warm-up (2m) ends at 760, its reach at 880.
    let pods = |excess_until: f64, level: f64| -> Vec<Series> {
        ["new-a", "new-b", "new-c"]
            .iter()
            .map(|name| {
                Series::for_pod(
                    name,
                    (0..=12).map(|i| {
                        let t = 640.0 + 30.0 * i as f64;
                        let v = if t < excess_until { 3.0 } else { level };
                        (t, v + 0.001 * i as f64)
                    }),
                )
            })
            .collect()
    };
    // Three minutes of start-up excess: the points at 760 and 790 are above what each pod
    // does later, and are left out with the first two minutes'.
    let v = judge_series(&r, pods(820.0, 1.0), Some(old.clone()));
    let Some(Evidence::Compare(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    assert_eq!((e.new.warmup_dropped, e.new.samples), (12, 21), "{e:?}");
    assert!(e.new.max < 1.1, "{e:?}");
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // A regression holds its level: each pod's point at 760 is confirmed by the next, and
    // every point past the rule's warm-up counts.
    let v = judge_series(&r, pods(760.0, 1.6), Some(old.clone()));
    let Some(Evidence::Compare(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    assert_eq!((e.new.warmup_dropped, e.new.samples), (6, 27), "{e:?}");
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    // Where lower is worse, a start-up that costs more is no excess to wait out: only the
    // rule's own warm-up is left out.
    let lower = cpu_rule("        direction: lower_is_worse\n");
    let v = judge_series(&lower, pods(820.0, 1.0), Some(old));
    let Some(Evidence::Compare(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    assert_eq!((e.new.warmup_dropped, e.new.samples), (6, 27), "{e:?}");
}

#[test]
fn compare_needs_enough_samples_and_drops_nan() {
    let r = cpu_rule("        min_samples: 10\n");
    let old: Vec<Series> = noisy_pods("old", 4, 1.0, 0);
    let nan_pod = pod("new-0", |i| if i % 2 == 0 { f64::NAN } else { 9.0 });
    let v = judge_series(&r, vec![nan_pod], Some(old));
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(
        v.reason.contains("5 usable samples from the new pods"),
        "{}",
        v.reason
    );
    // Said, not read as zero: the points inside the window (700 to 1000) that are no number.
    assert!(
        v.reason.ends_with(
            "; inside the window, left out as no number (NaN or infinite): 6 new and 0 old point(s)"
        ),
        "{}",
        v.reason
    );
    // A clean answer says nothing of it.
    let v = judge_series(
        &r,
        noisy_pods("new", 2, 1.0, 3),
        Some(noisy_pods("old", 4, 1.0, 0)),
    );
    assert!(!v.reason.contains("no number"), "{}", v.reason);
}

fn saturation_rule(extra: &str) -> Rule {
    rule(&format!(
        "  - name: sat\n    action: rollback\n    check:\n      absolute:\n        query: 'x{{pod=~\"{{{{ pods }}}}\"}}'\n        threshold: 0.9\n        min_samples: 6\n{extra}"
    ))
}

#[test]
fn absolute_saturation_needs_no_baseline_but_spares_shared_load() {
    let r = saturation_rule("");
    let pegged: Vec<Series> = (0..2).map(|p| pod(&format!("new-{p}"), |_| 0.97)).collect();
    let calm: Vec<Series> = (0..3).map(|p| pod(&format!("old-{p}"), |_| 0.4)).collect();
    let v = judge_series(&r, pegged.clone(), None);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let v = judge_series(&r, pegged.clone(), Some(calm));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    assert!(
        v.reason.contains("0.97") && v.reason.contains("old pods 0.4"),
        "{}",
        v.reason
    );
    let hot: Vec<Series> = (0..3).map(|p| pod(&format!("old-{p}"), |_| 0.95)).collect();
    let v = judge_series(&r, pegged.clone(), Some(hot.clone()));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(v.reason.contains("shared"), "{}", v.reason);
    let strict = saturation_rule("        unless_old_too: false\n");
    let v = judge(
        &strict,
        &window(),
        &Observation::Series {
            new: pegged,
            old: Some(hot),
        },
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
}

#[test]
fn absolute_with_no_data_is_inconclusive() {
    let r = saturation_rule("");
    let v = judge_series(&r, vec![], None);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    let v = judge(
        &r,
        &window(),
        &Observation::Series {
            new: vec![pod("p", |_| f64::NAN)],
            old: None,
        },
    );
    assert_eq!(v.outcome, Outcome::Inconclusive);
}

#[test]
fn verdicts_serialise_with_their_evidence() {
    let r = error_rule("");
    let v = judge_counts(&r, (Some(30.0), Some(5000.0)), Some((None, Some(15000.0))));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["outcome"], "fail");
    assert_eq!(json["action"], "rollback");
    assert_eq!(json["evidence"]["check"], "error_rate");
    assert_eq!(json["evidence"]["new"]["errors"], 30.0);
    assert_eq!(json["evidence"]["ratio"], serde_json::Value::Null);
    let back: Verdict = serde_json::from_value(json).unwrap();
    assert_eq!(back, v);
}

#[test]
fn numbers_read_well() {
    assert_eq!(fmt_num(5000.0), "5000");
    assert_eq!(fmt_num(0.123456), "0.1235");
    assert_eq!(fmt_num(1.5), "1.5");
    assert_eq!(fmt_num(1234.5678), "1235");
    assert_eq!(fmt_num(0.0000123), "1.230e-5");
    assert_eq!(fmt_p(0.0123), "0.012");
    assert_eq!(fmt_p(1.5e-9), "1.5e-9");
}

/// Issue 14, bug 1: rounding to no decimals must not lose the integer part's zeros.
#[test]
fn numbers_rounded_to_whole_keep_their_zeros() {
    assert_eq!(fmt_num(108369.96), "108370");
    assert_eq!(fmt_num(1999.7), "2000");
    assert_eq!(fmt_num(-1999.7), "-2000");
    assert_eq!(fmt_num(999.96), "1000");
    assert_eq!(fmt_num(99.996), "100");
    assert_eq!(fmt_num(10.5), "10.5");
    assert_eq!(fmt_num(0.0010), "0.001");
}

#[test]
fn absolute_compares_the_old_pods_at_the_same_moments() {
    let r = saturation_rule("");
    // Load climbs through the window; three old pods leave as it climbs, one stays. Where both
    // sides were measured (after the new pods' warm-up, t ≥ 940) the old pod is as hot as the new
    // ones, though the old side's whole-window median is not: the load, not the release.
    let load = |t: f64| 0.3 + 0.7 * ((t - 700.0) / 300.0).clamp(0.0, 1.0);
    let old: Vec<Series> = (0..3)
        .map(|p| {
            Series::for_pod(
                &format!("old-{p}"),
                (0..=8)
                    .map(|i| 580.0 + 30.0 * i as f64)
                    .map(|t| (t, load(t))),
            )
        })
        .chain([Series::for_pod(
            "old-late",
            (0..=14)
                .map(|i| 580.0 + 30.0 * i as f64)
                .map(|t| (t, load(t))),
        )])
        .collect();
    let new: Vec<Series> = (0..3)
        .map(|p| {
            Series::for_pod(
                &format!("new-{p}"),
                (8..=14)
                    .map(|i| 580.0 + 30.0 * i as f64)
                    .map(|t| (t, load(t) * 1.02)),
            )
        })
        .collect();
    let v = judge_series(&r, new.clone(), Some(old));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(v.reason.contains("shared"), "{}", v.reason);
    // Had the old pods left before the new ones came, there would be nothing to compare with:
    // the breach only warns.
    let gone = flat_pods("old", 5, 0.3);
    let v = judge(
        &r,
        &window(),
        &Observation::Series {
            new,
            old: Some(gone),
        },
    );
    assert_eq!(
        (v.outcome, v.action),
        (Outcome::Fail, Action::Warn),
        "{}",
        v.reason
    );
    assert!(v.reason.contains("only warns"), "{}", v.reason);
}

/// Three pods `{prefix}-0..2`, each at `value` every 30 s from 580 s through step `last`.
fn flat_pods(prefix: &str, last: usize, value: f64) -> Vec<Series> {
    (0..3)
        .map(|p| {
            Series::for_pod(
                &format!("{prefix}-{p}"),
                (0..=last).map(|i| (580.0 + 30.0 * i as f64, value)),
            )
        })
        .collect()
}

/// Old pods whose series stop before the new pods' latest moment have left (a replay's fixed
/// target still names their ReplicaSet): a breach judged by the minutes both served, when
/// the old pods were calm, could have been shared since; it only warns, as when the controller
/// no longer lists them.
#[test]
fn old_pods_no_longer_measured_are_gone_for_an_absolute_check() {
    let r = saturation_rule("");
    let new = flat_pods("new", 14, 0.97);
    let old = |last: usize| flat_pods("old", last, 0.4);
    let judged = |old: Vec<Series>| {
        judge(
            &r,
            &window(),
            &Observation::Series {
                new: new.clone(),
                old: Some(old),
            },
        )
    };
    // Measured to the end: the old pods were calm where the new ones breached.
    let v = judged(old(14));
    assert_eq!(
        (v.outcome, v.action),
        (Outcome::Fail, Action::Rollback),
        "{}",
        v.reason
    );
    // Gone three moments before: nothing rules out a shared cause now.
    let v = judged(old(11));
    assert_eq!(
        (v.outcome, v.action),
        (Outcome::Fail, Action::Warn),
        "{}",
        v.reason
    );
    assert!(v.reason.contains("only warns"), "{}", v.reason);
}

/// Per-pod counts: (pod, time, errors, requests).
fn by_pod(cells: &[(&str, f64, f64, f64)]) -> Counts {
    let mut pods: Vec<&str> = Vec::new();
    for c in cells {
        if !pods.contains(&c.0) {
            pods.push(c.0);
        }
    }
    let series = |pick: fn(&(&str, f64, f64, f64)) -> f64| -> Vec<Series> {
        pods.iter()
            .map(|p| {
                Series::for_pod(
                    p,
                    cells.iter().filter(|c| c.0 == *p).map(|c| (c.1, pick(c))),
                )
            })
            .collect()
    };
    Counts {
        errors: series(|c| c.2),
        requests: series(|c| c.3),
    }
}

#[test]
fn one_burst_in_one_pod_is_not_a_regression() {
    let r = error_rule("");
    let times: Vec<f64> = (0..10).map(|i| 460.0 + 60.0 * i as f64).collect();
    // A one-pod canary against twenty old pods: the old side's many steady cells keep the
    // pooled dispersion near 1, so only the burst guard can tell the burst from a regression.
    let cells = |prefix: &'static str, burst: f64| -> Vec<(String, f64, f64, f64)> {
        let pods: Vec<String> = (0..if prefix == "new" { 1 } else { 20 })
            .map(|i| ["a", "b", "c", "d"][i % 4].to_string() + &i.to_string())
            .collect();
        times
            .iter()
            .flat_map(|t| {
                pods.clone().into_iter().map(move |p| {
                    let e = if prefix == "new" && *t == 700.0 {
                        burst
                    } else {
                        2.0
                    };
                    (format!("{prefix}-{p}"), *t, e, 1000.0)
                })
            })
            .collect()
    };
    let as_ref = |v: &[(String, f64, f64, f64)]| -> Counts {
        by_pod(
            &v.iter()
                .map(|c| (c.0.as_str(), c.1, c.2, c.3))
                .collect::<Vec<_>>(),
        )
    };
    let mut w = window();
    w.start = 400_000;
    let old = cells("old", 0.0);
    // One new pod throws 30 errors in one minute; every other minute and pod looks like the old.
    let new = cells("new", 30.0);
    let v = judge_counts_in(&r, &w, as_ref(&new), as_ref(&old));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(
        v.reason
            .contains("carried by one burst (30 errors from new-a0"),
        "{}",
        v.reason
    );
    assert!(
        v.building,
        "significant but held back: evidence building, the streak is kept"
    );
    // How much of the excess one burst must carry is the rule's: the other minutes a little
    // above the old pods' (2.4 errors against 2), the burst carries 89% of the excess; held
    // back at the default share of a half, a regression for a rule that asks 95%.
    let mostly: Vec<(String, f64, f64, f64)> = new
        .iter()
        .map(|c| (c.0.clone(), c.1, if c.1 == 700.0 { c.2 } else { 2.4 }, c.3))
        .collect();
    let v = judge_counts_in(&r, &w, as_ref(&mostly), as_ref(&old));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(v.reason.contains("carried by one burst"), "{}", v.reason);
    let strict = rule(
        "  - name: errs\n    action: rollback\n    check:\n      error_rate:\n        errors: 'increase(e{pod=~\"{{ pods }}\"}[{{ interval }}])'\n        requests: 'increase(r{pod=~\"{{ pods }}\"}[{{ interval }}])'\n        min_requests: 50\n        burst_share: 0.95\n",
    );
    let v = judge_counts_in(&strict, &w, as_ref(&mostly), as_ref(&old));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    // The same excess spread over every minute is a regression.
    let spread: Vec<(String, f64, f64, f64)> =
        new.iter().map(|c| (c.0.clone(), c.1, 4.8, c.3)).collect();
    let v = judge_counts_in(&r, &w, as_ref(&spread), as_ref(&old));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    // A failing verdict keeps its window interval by interval, for the report's plot.
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("error-rate evidence")
    };
    assert!(!e.intervals.is_empty());
    assert!(
        e.intervals
            .iter()
            .all(|i| i.new.is_some() && i.old.is_some())
    );
    // A clean pass keeps none: its record stays small.
    let v = judge_counts_in(&r, &w, as_ref(&old), as_ref(&old));
    assert_eq!(
        (v.outcome, v.building),
        (Outcome::Pass, false),
        "{}",
        v.reason
    );
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("error-rate evidence")
    };
    assert!(e.intervals.is_empty());
}

#[test]
fn a_nan_cell_neither_hides_a_burst_nor_fails_a_rule() {
    let r = error_rule("");
    let times = [760.0, 820.0, 880.0, 940.0, 1000.0];
    let bursty: Vec<(&str, f64, f64, f64)> = times
        .iter()
        .map(|t| match *t {
            880.0 => ("new-a", *t, 40.0, 1000.0),
            940.0 => ("new-a", *t, f64::NAN, 1000.0),
            _ => ("new-a", *t, 2.0, 1000.0),
        })
        .collect();
    let v = judge_counts_in(&r, &window(), by_pod(&bursty), steady_old());
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
}

#[test]
fn error_series_with_other_labels_fall_back_to_intervals() {
    let r = error_rule("");
    let times = [760.0, 820.0, 880.0, 940.0, 1000.0];
    let bursty: Vec<(&str, f64, f64, f64)> = times
        .iter()
        .map(|t| ("new-a", *t, if *t == 880.0 { 60.0 } else { 2.0 }, 1000.0))
        .collect();
    let mut new = by_pod(&bursty);
    // The errors query kept a `type` label the requests query does not have.
    for s in &mut new.errors {
        s.labels.insert("type".into(), "warning".into());
        s.labels.remove("pod");
    }
    let v = judge(
        &r,
        &window(),
        &Observation::Counts {
            new,
            old: Some(steady_old()),
        },
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    // The burst was still seen, in the per-interval cells.
    let Some(Evidence::ErrorRate(e)) = &v.evidence else {
        panic!()
    };
    assert!(e.dispersion > 5.0, "{e:?}");
}

#[test]
fn a_pod_counted_twice_is_missing_data_not_evidence() {
    let r = cpu_rule("");
    let old = noisy_pods("old", 4, 1.0, 0);
    // The same new pod scraped by two jobs: its samples would weigh double.
    let mut new = noisy_pods("new", 2, 1.5, 7);
    new.push(new[0].clone());
    let v = judge_series(&r, new, Some(old));
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    assert!(
        v.reason.contains("two series for pod new-0"),
        "{}",
        v.reason
    );
}

#[test]
fn sequential_test_is_stricter_than_one_look_but_decides_clear_cases() {
    let r = error_rule("");
    let seq = decides_clear_cases(ProportionTest::Sequential);
    // Its p-value (valid over every look) is never below the one-look test's.
    let counts = ((12.0, 5000.0), (10.0, 15000.0));
    let p = |rule: &Rule| {
        let v = judge_counts(
            rule,
            (Some(counts.0.0), Some(counts.0.1)),
            Some((Some(counts.1.0), Some(counts.1.1))),
        );
        let Some(Evidence::ErrorRate(e)) = v.evidence else {
            panic!()
        };
        e.p_value
    };
    assert!(p(&seq) > p(&r), "{} vs {}", p(&seq), p(&r));
}

#[test]
fn a_compare_floor_of_one_still_needs_the_new_side_worse() {
    // `min_ratio: 1` with equal medians: significant or not, nothing is worse.
    assert!(!median_ratio_reached(Some(1.0), 1.0));
    assert!(median_ratio_reached(Some(1.01), 1.0));
    assert!(!median_ratio_reached(Some(1.1), 1.15));
    // Worse than a zero median: an infinite ratio.
    assert!(median_ratio_reached(None, 1.15));
}
