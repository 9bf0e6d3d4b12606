use super::*;
use crate::analysis::evaluate::{Target, evaluate};
use crate::analysis::judge::Outcome;
use crate::analysis::rules::RuleSet;
use crate::analysis::source::MetricSource;

fn noise() -> Noise {
    Noise::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab"))
        .unwrap()
}

#[test]
fn a_restart_starts_its_pods_counters_again_and_changes_nothing_else() {
    let noise = noise();
    let s = Scenario {
        scrape_offsets: true,
        ..Scenario::healthy("h", 12)
    };
    let restarted = Scenario {
        restarts: vec![Restart {
            new: true,
            pod: 1,
            after: 150.0,
        }],
        ..s.clone()
    };
    let (a, b) = (generate(&s, &noise), generate(&restarted, &noise));
    let k = 10; // the first scrape at or after 150 s
    let mut changed = 0;
    for (p, q) in a.pods.iter().zip(&b.pods) {
        if p.requests == q.requests {
            assert_eq!((&p.errors, &p.cpu_seconds), (&q.errors, &q.cpu_seconds));
            continue;
        }
        changed += 1;
        assert!(p.new, "{}", p.name);
        // Before the restart the same; from it on, less the count before it.
        assert_eq!(p.requests[..k], q.requests[..k]);
        for j in k..p.requests.len() {
            assert!((q.requests[j] - (p.requests[j] - p.requests[k - 1])).abs() < 1e-9);
            for t in 0..ERROR_TYPES.len() {
                let expected = p.errors[j][t] - p.errors[k - 1][t];
                assert!((q.errors[j][t] - expected).abs() < 1e-9);
            }
        }
    }
    assert_eq!(changed, 1, "exactly one pod restarted");
    // Two restarts of one pod, listed out of order, and one twice: each counts from zero until
    // the next, never below.
    let twice = Scenario {
        restarts: [300.0, 150.0, 150.0]
            .map(|after| Restart {
                new: true,
                pod: 1,
                after,
            })
            .to_vec(),
        ..s.clone()
    };
    let c = generate(&twice, &noise);
    let (p, q) = a
        .pods
        .iter()
        .zip(&c.pods)
        .find(|(p, q)| p.requests != q.requests)
        .expect("a pod restarted");
    assert_eq!(q.restarts, [10, 20]);
    for j in 0..p.requests.len() {
        let base = match j {
            0..10 => 0.0,
            10..20 => p.requests[9],
            _ => p.requests[19],
        };
        assert!((q.requests[j] - (p.requests[j] - base)).abs() < 1e-9, "{j}");
        assert!(q.errors[j].iter().all(|e| *e >= 0.0), "{j}");
    }
}

#[test]
fn a_tail_after_the_bake_extends_the_new_pods_and_changes_no_earlier_sample() {
    let noise = noise();
    // A bad release with class errors, a warm-up, offset scrapes: every kind of draw.
    let s = Scenario {
        scrape_offsets: true,
        fault: Fault::ClassErrors { fraction: 0.01 },
        warmup: Some(Warmup {
            seconds: 60.0,
            cpu_multiplier: 2.0,
            error_rate: 0.0,
            decay_seconds: 0.0,
        }),
        ..Scenario::healthy("h", 11)
    };
    let tailed = Scenario {
        tail: 120.0,
        ..s.clone()
    };
    let (a, b) = (generate(&s, &noise), generate(&tailed, &noise));
    assert_eq!(a.first_fault_error, b.first_fault_error);
    for (p, q) in a.pods.iter().zip(&b.pods) {
        assert_eq!((&p.name, p.start), (&q.name, q.start));
        let n = p.requests.len();
        assert_eq!(p.requests[..], q.requests[..n]);
        assert_eq!(p.errors, q.errors[..n]);
        assert_eq!(p.cpu_seconds[..], q.cpu_seconds[..n]);
        assert_eq!(p.cfs_throttled[..], q.cfs_throttled[..n]);
        if p.new {
            assert!(
                (q.end() - tailed.history_end()).abs() < SCRAPE,
                "{}",
                q.end()
            );
            assert_eq!(q.requests.len(), n + 8, "two minutes more of 15-s scrapes");
        } else {
            assert_eq!(q.requests.len(), n, "old pods are gone before the bake");
        }
    }
}

#[test]
fn generation_is_deterministic_and_follows_the_rolling_update() {
    let noise = noise();
    let s = Scenario::healthy("h", 7);
    let a = generate(&s, &noise);
    let b = generate(&s, &noise);
    assert_eq!(a.pods, b.pods);
    assert_eq!(a.pods.len(), 2 * s.replicas);
    let old: Vec<_> = a.pods.iter().filter(|p| !p.new).collect();
    let new: Vec<_> = a.pods.iter().filter(|p| p.new).collect();
    // Old pods go one by one during the rollout; new ones arrive one by one and stay.
    assert!(old.iter().all(|p| p.end() < s.rollout_end()));
    assert!(
        new.iter()
            .all(|p| p.start >= s.rollout_start() && (p.end() - s.end()).abs() < SCRAPE)
    );
    assert!(
        a.pods
            .iter()
            .all(|p| p.name.starts_with(&p.replicaset) && p.name.len() == p.replicaset.len() + 6)
    );
    // Counters only go up.
    for p in &a.pods {
        assert!(p.requests.windows(2).all(|w| w[1] >= w[0]));
        assert!(p.cpu_seconds.windows(2).all(|w| w[1] >= w[0]));
    }
    // About rps × scrape requests per sample.
    let per_sample = old[0].requests[20] / 21.0;
    assert!(per_sample > 100.0 && per_sample < 700.0, "{per_sample}");
}

#[test]
fn faults_show_only_in_the_new_pods() {
    let noise = noise();
    let mut s = Scenario::healthy("bad", 3);
    s.fault = Fault::ClassErrors { fraction: 0.01 };
    let h = generate(&s, &noise);
    for p in &h.pods {
        let class: f64 = p.errors.last().unwrap()[..4].iter().sum();
        if p.new {
            assert!(class > 0.0, "{}", p.name);
        } else {
            assert_eq!(class, 0.0, "{}", p.name);
        }
    }
}

fn target(h: &History, with_old: bool) -> Target {
    Target {
        namespace: h.scenario.namespace.clone(),
        deployment: h.scenario.deployment.clone(),
        new_replicaset: h.new_replicaset.clone(),
        old_replicasets: if with_old {
            vec![h.old_replicaset.clone()]
        } else {
            vec![]
        },
        departed: Vec::new(),
    }
}

fn at(t: f64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t as i64).unwrap()
}

#[tokio::test]
async fn the_default_rules_see_the_simulated_fault() {
    let noise = noise();
    let rules = RuleSet::defaults();
    let mut s = Scenario::healthy("bad", 11);
    s.pod_interval = 90.0;
    s.fault = Fault::ClassErrors { fraction: 0.01 };
    let h = generate(&s, &noise);
    let source = SimSource::new(&h);
    let mid = s.rollout_start() + 500.0;
    let eval = evaluate(&rules, &target(&h, true), at(mid), &source).await;
    let by = |n: &str| eval.verdicts.iter().find(|v| v.rule == n).unwrap();
    assert_eq!(
        by("class-loading-errors").outcome,
        Outcome::Fail,
        "{}",
        by("class-loading-errors").reason
    );
    for name in ["cpu-saturation", "cpu-throttling", "cpu-per-request"] {
        assert_eq!(
            by(name).outcome,
            Outcome::Pass,
            "{name}: {}",
            by(name).reason
        );
    }
}

#[tokio::test]
async fn a_healthy_history_passes_every_default_rule() {
    let noise = noise();
    let rules = RuleSet::defaults();
    let mut s = Scenario::healthy("ok", 5);
    s.pod_interval = 90.0;
    let h = generate(&s, &noise);
    let source = SimSource::new(&h);
    let mid = s.rollout_start() + 500.0;
    let eval = evaluate(&rules, &target(&h, true), at(mid), &source).await;
    for v in &eval.verdicts {
        assert_eq!(v.outcome, Outcome::Pass, "{}: {}", v.rule, v.reason);
    }
}

#[tokio::test]
async fn unknown_queries_are_refused_not_guessed() {
    let noise = noise();
    let h = generate(&Scenario::healthy("x", 1), &noise);
    let source = SimSource::new(&h);
    let e = source
        .instant("up", at(h.scenario.end()))
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        crate::analysis::source::SourceError::BadQuery(_)
    ));
    let e = source
        .instant(
            r#"sum(increase(php_requests_total{pod=~"(["}[5m]))"#,
            at(h.scenario.end()),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        crate::analysis::source::SourceError::BadQuery(_)
    ));
}

#[tokio::test]
async fn a_rate_falls_back_only_as_the_default_rules_write_it() {
    let noise = noise();
    let h = generate(&Scenario::healthy("x", 1), &noise);
    let source = SimSource::new(&h);
    let t = at(h.scenario.end());
    let y = r#"php_requests_total{pod=~".+"}"#;
    let query =
        |fallback: &str| format!("sum by (pod) (rate({y}[1m]){})", fallback.replace('X', y));
    // A fallback the simulation does not know is refused, not answered as another.
    for partial in [
        " or rate(X[2m])",
        " or (rate(X[2m]) and count_over_time(X[2m]) <= 2)",
        " or (rate(X[2m]) and count_over_time(X[1m]) > 0)",
    ] {
        let e = source.instant(&query(partial), t).await.unwrap_err();
        assert!(
            matches!(e, crate::analysis::source::SourceError::BadQuery(_)),
            "{partial}: {e:?}"
        );
    }
    // The default rules' one changes nothing at 15-s scrapes.
    let whole = " or (rate(X[2m]) and count_over_time(X[2m]) <= 2 and count_over_time(X[1m]) > 0)";
    let fell_back = source.instant(&query(whole), t).await.unwrap();
    let plain = source.instant(&query(""), t).await.unwrap();
    assert!(!plain.is_empty());
    assert_eq!(fell_back, plain);
}

/// The first value of an instant query's answer.
async fn value(source: SimSource<'_>, q: &str, t: f64) -> Option<f64> {
    source
        .instant(q, at(t))
        .await
        .unwrap()
        .first()
        .map(|s| s.points[0].v)
}

#[tokio::test]
async fn a_pod_gone_inside_the_window_still_counts_its_samples() {
    // As increase() in Prometheus: a series that ended inside the range contributes the samples
    // it has there, extrapolated half an interval past its last one; one that ended before the
    // range contributes nothing.
    let noise = noise();
    let s = Scenario::healthy("gone", 2);
    let h = generate(&s, &noise);
    let pod = h.pods.iter().find(|p| !p.new).unwrap();
    let end = pod.end();
    let q = format!(
        r#"sum(increase(php_requests_total{{pod=~"{}"}}[1m]))"#,
        pod.name
    );
    let last = pod.requests[pod.requests.len() - 1];
    let before = pod.requests[pod.requests.len() - 3];
    // 30 s after its last sample: the last three scrapes are inside [t − 1m, t], 30 s apart;
    // Prometheus extrapolates 7.5 s past the last, the true count stops there.
    let (prom, exact) = (SimSource::new(&h), SimSource::exact(&h));
    assert_eq!(
        value(prom, &q, end + 30.0).await,
        Some((last - before) * 37.5 / 30.0)
    );
    assert_eq!(value(exact, &q, end + 30.0).await, Some(last - before));
    // 90 s after: nothing of it is inside the range.
    assert_eq!(value(prom, &q, end + 90.0).await, None);
    assert_eq!(value(exact, &q, end + 90.0).await, None);
}

#[test]
fn a_class_fault_records_when_its_first_errors_show() {
    let noise = noise();
    let mut s = Scenario::healthy("first", 4);
    s.fault = Fault::ClassErrors { fraction: 0.01 };
    let h = generate(&s, &noise);
    let first = h.first_fault_error.expect("the fault's errors show");
    let earliest = h
        .pods
        .iter()
        .filter(|p| p.new)
        .filter_map(|p| {
            let i = p
                .errors
                .iter()
                .position(|e| e[..3].iter().sum::<f64>() > 0.0)?;
            Some(p.start + i as f64 * SCRAPE)
        })
        .fold(f64::INFINITY, f64::min);
    assert_eq!(first, earliest);
    assert!(first >= s.rollout_start());
    assert_eq!(
        generate(&Scenario::healthy("ok", 4), &noise).first_fault_error,
        None
    );
}

#[test]
fn quarter_batches_replace_the_pods_in_a_few_steps() {
    let noise = noise();
    let mut s = Scenario::healthy("batches", 6);
    s.replicas = 8;
    s.max_surge = 2;
    s.max_unavailable = 2;
    let h = generate(&s, &noise);
    let t = s.timetable();
    assert!(s.rollout_end() - s.rollout_start() <= 3.0 * s.pod_interval);
    let new: Vec<_> = h.pods.iter().filter(|p| p.new).collect();
    let old: Vec<_> = h.pods.iter().filter(|p| !p.new).collect();
    assert_eq!(new.len(), 8);
    for (p, start) in new.iter().zip(&t.new_starts) {
        assert_eq!(p.start, *start);
    }
    for (p, gone) in old.iter().zip(&t.old_ends) {
        assert_eq!(p.end(), gone - SCRAPE);
        assert_eq!(p.start, s.start);
    }
}

#[test]
fn new_features_leave_the_other_draws_alone_and_show_where_asked() {
    let noise = noise();
    let plain = Scenario::healthy("plain", 9);
    let a = generate(&plain, &noise);
    // Scrape offsets move each pod's samples by 1-14 s and change no value.
    let mut offset = plain.clone();
    offset.scrape_offsets = true;
    let b = generate(&offset, &noise);
    for (p, q) in a.pods.iter().zip(&b.pods) {
        let shift = q.start - p.start;
        assert!((1.0..SCRAPE).contains(&shift), "{shift}");
        assert_eq!(
            (&p.requests, &p.errors, &p.cpu_seconds),
            (&q.requests, &q.errors, &q.cpu_seconds)
        );
    }
    // A background class error shows on old and new pods alike, from the start.
    let mut bg = plain.clone();
    bg.background_class_rate = 0.002;
    let c = generate(&bg, &noise);
    for p in &c.pods {
        assert!(p.errors.last().unwrap()[0] > 0.0, "{}", p.name);
    }
    assert_eq!(c.first_fault_error, None);
    // Wider per-pod levels spread the pods' CPU per request.
    let spread = |h: &History| {
        let per_request: Vec<f64> = h
            .pods
            .iter()
            .map(|p| p.cpu_seconds.last().unwrap() / p.requests.last().unwrap())
            .collect();
        let max = per_request.iter().copied().fold(0.0, f64::max);
        let min = per_request.iter().copied().fold(f64::INFINITY, f64::min);
        max / min
    };
    let mut wide = plain.clone();
    wide.pod_level_sigma = 0.25;
    wide.pod_cpu_anomalies = true;
    assert!(
        spread(&generate(&wide, &noise)) > spread(&a),
        "wider levels, wider spread"
    );
}

#[test]
fn a_warm_up_holds_its_factor_or_lets_it_fall() {
    let step = Warmup {
        seconds: 120.0,
        cpu_multiplier: 3.0,
        decay_seconds: 0.0,
        error_rate: 0.0,
    };
    assert_eq!(
        [0.0, 119.0, 120.0].map(|a| step.cpu_factor(a)),
        [3.0, 3.0, 1.0]
    );
    let falling = Warmup {
        decay_seconds: 40.0,
        ..step
    };
    let f = [0.0, 40.0, 80.0, 120.0].map(|a| falling.cpu_factor(a));
    assert_eq!(f[0], 3.0);
    assert!(
        (f[1] - (1.0 + 2.0 / std::f64::consts::E)).abs() < 1e-12,
        "{f:?}"
    );
    assert!(f[2] < f[1] && f[2] > 1.0, "{f:?}");
    assert_eq!(f[3], 1.0, "ends at `seconds`");
}

#[test]
fn slower_scrapes_fall_at_each_pods_own_phase() {
    let h = generate(&Scenario::healthy("x", 1), &noise());
    let every_minute = h.scraped_every(4);
    let mut phases = std::collections::BTreeSet::new();
    for (full, slow) in h.pods.iter().zip(&every_minute.pods) {
        let kept: Vec<usize> = (0..slow.requests.len())
            .filter(|&i| !slow.requests[i].is_nan())
            .collect();
        // One scrape in four, at a fixed phase, each the full history's own sample.
        assert!(kept.windows(2).all(|w| w[1] - w[0] == 4), "{}", slow.name);
        assert!(kept.iter().all(|&i| slow.requests[i] == full.requests[i]));
        assert!(kept.first().is_some_and(|&i| i < 4), "{}", slow.name);
        phases.insert(kept[0]);
    }
    assert!(phases.len() > 1, "every pod at the same phase: {phases:?}");
    // Every 15 s is the history itself.
    assert_eq!(h.scraped_every(1).pods[0].requests, h.pods[0].requests);
}
