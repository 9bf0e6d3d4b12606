use std::sync::Mutex;

use super::*;
use crate::analysis::judge::Outcome;
use crate::analysis::rules::RuleSet;
use crate::analysis::source::{Point, Series, unix_seconds};

/// Answers from a function of the query, and remembers every call.
struct Fake<F> {
    answer: F,
    calls: Mutex<Vec<String>>,
}

impl<F> Fake<F>
where
    F: Fn(&str, f64, f64) -> Result<Vec<Series>, SourceError> + Sync,
{
    fn new(answer: F) -> Self {
        Fake {
            answer,
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl<F> MetricSource for Fake<F>
where
    F: Fn(&str, f64, f64) -> Result<Vec<Series>, SourceError> + Sync,
{
    async fn instant(&self, query: &str, at: Timestamp) -> Result<Vec<Series>, SourceError> {
        self.calls.lock().unwrap().push(format!("instant {query}"));
        (self.answer)(query, unix_seconds(at), unix_seconds(at))
    }

    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: crate::analysis::duration::PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("range {step} {query}"));
        (self.answer)(query, unix_seconds(start), unix_seconds(end))
    }
}

fn scalar(v: f64) -> Vec<Series> {
    vec![Series {
        labels: Default::default(),
        points: vec![Point { t: 0.0, v }],
    }]
}

/// One count per minute from `start` to `end`.
fn per_minute(v: f64, start: f64, end: f64) -> Vec<Series> {
    let points = (0..)
        .map(|i| start + 60.0 * i as f64)
        .take_while(|t| *t <= end)
        .map(|t| Point { t, v });
    vec![Series {
        labels: Default::default(),
        points: points.collect(),
    }]
}

fn target(old: &[&str]) -> Target {
    Target {
        namespace: "shop".into(),
        deployment: "web".into(),
        new_replicaset: "web-new".into(),
        old_replicasets: old.iter().map(|s| s.to_string()).collect(),
        departed: Vec::new(),
    }
}

fn at() -> Timestamp {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

fn only(rules: &RuleSet, name: &str) -> RuleSet {
    RuleSet {
        rules: vec![rules.get(name).unwrap().clone()],
        files: vec![],
    }
}

#[tokio::test]
async fn error_rate_queries_each_side_and_judges() {
    let rules = only(&RuleSet::defaults(), "class-loading-errors");
    let fake = Fake::new(|q: &str, start, end| {
        let new = q.contains("web-new");
        Ok(match (q.contains("php_errors_total"), new) {
            (true, true) => per_minute(4.0, start, end),
            (true, false) => vec![],
            (false, true) => per_minute(400.0, start, end),
            (false, false) => per_minute(1200.0, start, end),
        })
    });
    let eval = evaluate(&rules, &target(&["web-old1", "web-old2"]), at(), &fake).await;
    let v = &eval.verdicts[0];
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let Some(crate::analysis::judge::Evidence::ErrorRate(e)) = &v.evidence else {
        panic!("{}", v.reason)
    };
    // Sixty one-minute intervals in the rule's one-hour window.
    assert_eq!(
        (e.strata, e.observed_errors, e.new.requests),
        (60, 240.0, 24000.0)
    );
    assert_eq!(v.queries.len(), 4);
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4);
    assert!(
        calls.iter().all(|c| c.starts_with("range 1m ")),
        "{calls:?}"
    );
    let old_errors = &v
        .queries
        .iter()
        .find(|q| q.side == QuerySide::Old && q.name == QueryName::Errors)
        .unwrap()
        .promql;
    assert!(
        old_errors.contains(r#"pod=~"(?:web-old1-[a-z0-9]{5}|web-old2-[a-z0-9]{5})""#),
        "{old_errors}"
    );
    // The interval filled in: each point counts the minute before it.
    assert!(old_errors.contains(" offset 1m)"), "{old_errors}");
}

#[tokio::test]
async fn without_old_pods_comparisons_skip_the_old_side() {
    let rules = RuleSet::defaults();
    let fake = Fake::new(|_: &str, _, _| Ok(scalar(1.0)));
    let eval = evaluate(&rules, &target(&[]), at(), &fake).await;
    for v in &eval.verdicts {
        assert!(
            v.queries.iter().all(|q| q.side == QuerySide::New),
            "{}: {:?}",
            v.rule,
            v.queries
        );
        let rule = rules.get(&v.rule).unwrap();
        if rule.check.needs_baseline() {
            assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.rule);
        }
    }
}

#[tokio::test]
async fn once_the_old_pods_are_gone_error_rate_and_compare_checks_pair_with_them() {
    let rules = RuleSet::defaults();
    // The old ReplicaSet served the first half hour of the window, the new one all of it.
    // (The fake answers a point a minute whatever the step; it notes the old side's.)
    let old_points = Mutex::new(std::collections::BTreeMap::new());
    let fake = Fake::new(|q: &str, start, end| {
        let errors = q.contains("php_errors_total");
        Ok(if q.contains("web-new") {
            per_minute(if errors { 30.0 } else { 1000.0 }, start, end)
        } else {
            let old = per_minute(if errors { 1.0 } else { 1000.0 }, start, end - 1800.0);
            let n = old[0].points.len();
            old_points.lock().unwrap().insert(q.to_string(), n);
            old
        })
    });
    let mut t = target(&[]);
    t.departed = vec!["web-old".into()];
    let eval = evaluate(&rules, &t, at(), &fake).await;
    for v in &eval.verdicts {
        let rule = rules.get(&v.rule).unwrap();
        // Absolute checks look at the old side as it is now; compare checks read the old
        // version's history (`history: true`, the default), error-rate checks its intervals.
        let paired = matches!(rule.check, Check::ErrorRate(_) | Check::Compare(_));
        assert_eq!(
            v.queries.iter().any(|q| q.side == QuerySide::Old),
            paired,
            "{}: {:?}",
            v.rule,
            v.queries
        );
        if matches!(rule.check, Check::ErrorRate(_)) {
            assert_eq!(v.outcome, Outcome::Fail, "{}: {}", v.rule, v.reason);
            let Some(crate::analysis::judge::Evidence::ErrorRate(e)) = &v.evidence else {
                panic!("{}", v.reason)
            };
            // Only the half hour both sides served: every point the old side had, no more.
            let old_requests = v
                .queries
                .iter()
                .find(|q| q.side == QuerySide::Old && q.name == QueryName::Requests)
                .unwrap();
            let served = old_points.lock().unwrap()[&*old_requests.promql];
            assert!(served >= 29, "{served}");
            assert_eq!(e.strata, served, "{}", v.reason);
        }
    }
}

#[tokio::test]
async fn range_queries_reach_back_over_the_warm_up() {
    let rules = only(&RuleSet::defaults(), "cpu-saturation");
    let seen = Mutex::new(None);
    let fake = Fake::new(|_: &str, start, end| {
        *seen.lock().unwrap() = Some((start, end));
        Ok(vec![])
    });
    let eval = evaluate(&rules, &target(&["web-old"]), at(), &fake).await;
    let (start, end) = seen.lock().unwrap().unwrap();
    assert_eq!(end, unix_seconds(at()));
    assert_eq!(
        end - start,
        300.0 + 2.0 * 120.0,
        "5m window plus the 2m warm-up's reach (twice it)"
    );
    assert_eq!(eval.verdicts[0].outcome, Outcome::Inconclusive);
    assert!(
        fake.calls
            .lock()
            .unwrap()
            .iter()
            .all(|c| c.starts_with("range 1m "))
    );
}

#[tokio::test]
async fn a_failing_source_makes_every_rule_inconclusive() {
    let rules = RuleSet::defaults();
    let fake =
        Fake::new(|_: &str, _, _| Err(SourceError::Unreachable("connection refused".into())));
    let eval = evaluate(&rules, &target(&["web-old"]), at(), &fake).await;
    assert_eq!(eval.verdicts.len(), rules.rules.len());
    for v in &eval.verdicts {
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.rule);
        assert!(v.error.as_deref().unwrap().contains("connection refused"));
    }
}

/// Counts the pod-log reads asked of it; every read finds one pod's ten minutes, no errors.
#[derive(Default)]
struct CountingLogs {
    reads: Mutex<Vec<String>>,
}

impl crate::analysis::source::LogSource for CountingLogs {
    async fn logs(&self, q: &LogQuery) -> Result<LogCounts, SourceError> {
        self.reads.lock().unwrap().push(q.replicaset.clone());
        Ok(LogCounts {
            pods_read: 1,
            pods_total: 1,
            pod_minutes: 10.0,
            ..LogCounts::default()
        })
    }
}

#[tokio::test]
async fn rules_reading_the_same_logs_share_one_read_per_replicaset() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/php-logs.yaml");
    let rules = RuleSet::load(&[path]).unwrap();
    assert_eq!(rules.rules.len(), 2, "both bundled logs rules");
    let source = crate::analysis::source::WithLogs {
        metrics: Fake::new(|_, _, _| Ok(vec![])),
        logs: CountingLogs::default(),
    };
    let eval = evaluate(&rules, &target(&["web-old"]), at(), &source).await;
    let mut reads = source.logs.reads.lock().unwrap().clone();
    reads.sort();
    assert_eq!(reads, ["web-new", "web-old"]);
    // Each rule still records the reads it was answered from.
    for v in &eval.verdicts {
        assert_eq!(v.queries.len(), 2, "{}: {:?}", v.rule, v.queries);
    }
}

#[tokio::test]
async fn a_compare_check_reads_the_old_version_over_its_history_span() {
    let rules = only(&RuleSet::defaults(), "cpu-per-request");
    let seen = Mutex::new(Vec::new());
    let fake = Fake::new(|q: &str, start, end| {
        seen.lock()
            .unwrap()
            .push((q.contains("web-old"), start, end));
        Ok(vec![])
    });
    let mut t = target(&[]);
    t.departed = vec!["web-old".into()];
    evaluate(&rules, &t, at(), &fake).await;
    let seen = seen.lock().unwrap();
    let (_, start, end) = *seen.iter().find(|(old, ..)| *old).expect("an old query");
    assert_eq!(
        end - start,
        3600.0 + 2.0 * 120.0,
        "an hour of history plus the warm-up's reach"
    );
    let (_, start, end) = *seen.iter().find(|(old, ..)| !*old).expect("a new query");
    assert_eq!(
        end - start,
        3600.0 + 2.0 * 120.0,
        "the same span: all the moments both versions served"
    );
}
