//! End-to-end: the real `run` loop against the fake API server (or a real cluster with
//! `ROLLOUT_GUARD_TEST_KUBECONFIG`), a simulated PHP service whose pods produce metrics, and a
//! clock 60× faster than the wall clock. Timeouts are generous wall-clock bounds; what is
//! asserted is what the controller did, never how fast.

mod support;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use rollout_guard::adapters::prometheus::{PrometheusConfig, PrometheusSource};
use rollout_guard::analysis::duration::PromDuration;
use rollout_guard::analysis::judge::{Baseline, CompareHistory, Evidence, Outcome, Verdict};
use rollout_guard::analysis::source::{MetricSource, Series, SourceError};
use rollout_guard::policy::annotations;
use rollout_guard::records::{self, Kind, Record};
use serde_json::json;
use support::cluster::{
    Cluster, ann, guarded, guarded_baking, memory, metric, rollbacks, rolled_out, stage, version,
    write_config,
};

/// How long a test waits for the controller to reach a state before failing with what it
/// saw. A guard against hanging, not a measurement: on an idle machine these states come in
/// 5-25 s of wall time, and with six busy loops on the CI machine's two cores in at most 80 s
/// for the whole suite; a slower machine only makes the wait longer, never the verdict
/// different (the assertions are on what happened and in what order, in simulated time).
const LONG: Duration = Duration::from_secs(90);

/// The evaluation that asked for the last action.
fn deciding(recs: &[Record]) -> &Record {
    recs.iter()
        .rev()
        .find(|r| r.kind == Kind::Evaluation && !r.acts.is_empty())
        .expect("the deciding evaluation")
}

/// The verdicts that decided the last action asked for: those of the evaluation that asked, or,
/// when it decided again after a write conflict, those of the evaluation it names.
fn deciding_verdicts(recs: &[Record]) -> Vec<Verdict> {
    deciding(recs).verdicts_source(recs).verdicts.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_loading_regression_is_rolled_back_to_the_previous_template() {
    let c = Cluster::start("class-errors", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", Some("class-errors")).await;

    let d = c
        .wait("shop", "the rollback to v1", LONG, |d| {
            version(d) == "v1" && rolled_out(d) && stage(d).as_deref() == Some("rolled_back")
        })
        .await;
    assert_eq!(rollbacks(&d), 1);
    let m = memory(&d).unwrap();
    let rec = m.history.last().unwrap();
    assert_eq!(rec.rule.as_deref(), Some("class-loading-errors"));
    // The previous template exactly, as `kubectl rollout undo` would write it.
    let d = c
        .wait("shop", "the rollback verified", LONG, |d| {
            memory(d).is_some_and(|m| {
                matches!(
                    m.current.unwrap().stage,
                    rollout_guard::policy::guard::Stage::RolledBack {
                        verified: Some(true),
                        ..
                    }
                )
            })
        })
        .await;
    let tmpl = &d.spec.as_ref().unwrap().template;
    let labels = tmpl.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert!(!labels.contains_key("pod-template-hash"));
    assert!(
        tmpl.metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("sim.rollout-guard.io/fault")),
        "the bad release's annotation is gone"
    );
    // The latest verdict, in one line for `kubectl describe`.
    let last = &d.annotations()[annotations::LAST_VERDICT];
    assert!(last.starts_with("fail at "), "{last}");
    let wanted = ["AnalysisStarted", "RolledBack", "RollbackComplete"];
    let reasons = c.reasons_with("shop", &wanted).await;
    for want in wanted {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} missing: {reasons:?}"
        );
    }
    // The decision records tell the same story, with the numbers.
    let (recs, skipped) = records::read(&c.records_path()).unwrap();
    assert_eq!(skipped, 0);
    // Writes may meet conflicts (the Deployment controller updates the status meanwhile);
    // exactly one rollback went through.
    let rollbacks_ok = recs
        .iter()
        .filter(|r| {
            r.kind == Kind::Action
                && r.result.as_ref().is_some_and(|w| w.is_ok())
                && r.acts.iter().any(|a| a.name() == "rollback")
        })
        .count();
    assert_eq!(rollbacks_ok, 1);
    let class = deciding_verdicts(&recs)
        .into_iter()
        .find(|v| v.rule == "class-loading-errors")
        .expect("the deciding evaluation's class-loading verdict");
    assert_eq!(class.outcome, Outcome::Fail);
    assert!(class.evidence.is_some() && !class.queries.is_empty());
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"rollout_guard_actions_total{action="rollback",result="ok"}"#
        ),
        1.0
    );
    daemon.stop().await;
}

/// The controller was not running (or not the leader) while a bad release rolled out whole,
/// as a 20-s rollout fits inside a leader handover: it bakes the release against the history
/// of the generation before, and rolls it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_that_rolled_out_while_no_controller_ran_is_baked_and_rolled_back() {
    let c = Cluster::start("unseen", Duration::from_millis(1500)).await;
    // A bake of 30 simulated minutes, 30 s of wall time: the daemon starts inside it however
    // slow the machine.
    let opted = guarded_baking("guard", "30m");
    c.deploy("shop", 4, &ann(&opted)).await;
    // v1 serves for more than 10 simulated minutes: the generation a release is held against
    // must have begun well before it (not a rollout it interrupted).
    tokio::time::sleep(Duration::from_secs(11)).await;
    // Prometheus scrapes whether or not the controller runs: the source sees every pod.
    let source = c.source();
    c.release("shop", "v2", Some("class-errors")).await;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        source
            .instant(
                r#"sum by (pod) (rate(php_requests_total{pod=~"shop-.*"}[1m]))"#,
                jiff::Timestamp::now(),
            )
            .await
            .expect("the simulated source answers");
        let d = c.deployments().get("shop").await.expect("the Deployment");
        if version(&d) == "v2" && rolled_out(&d) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "v2 never rolled out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let daemon = c.daemon_with(c.config(), source).await;
    c.wait("shop", "the rollback to v1", LONG, |d| {
        version(d) == "v1" && rolled_out(d) && stage(d).as_deref() == Some("rolled_back")
    })
    .await;
    let events = c.events("shop").await;
    let started = events
        .iter()
        .find(|(reason, _)| reason == "AnalysisStarted")
        .expect("an AnalysisStarted Event");
    assert!(
        started.1.contains("before the controller analysed it"),
        "{}",
        started.1
    );
    let (recs, _) = records::read(&c.records_path()).unwrap();
    let class = deciding_verdicts(&recs)
        .into_iter()
        .find(|v| v.rule == "class-loading-errors")
        .expect("the deciding evaluation's class-loading verdict");
    assert_eq!(class.outcome, Outcome::Fail, "{}", class.reason);
    daemon.stop().await;
}

/// The issue's fast rollout of a CPU regression: v1 serves `served` wall seconds (simulated
/// minutes), then v2 needs twice the CPU per request, under the limit (so saturation says
/// nothing), and replaces every pod at once (maxSurge 100%): the old pods leave a few simulated
/// seconds after the new ones start, well inside the rules' two-minute warm-up, so no new
/// pod's CPU counts while an old pod serves. (One pod at a time took about a simulated minute
/// on an idle machine but over two on a loaded one, and then the old pods were still there to
/// compare with.) Waits for the pause (cpu-per-request's action) and returns the deciding
/// cpu-per-request verdict, which came after the old pods were gone.
async fn fast_cpu_regression_paused(served: u64, bake: &str) -> Verdict {
    let c = Cluster::start(&format!("fast-cpu-{served}"), Duration::from_millis(100)).await;
    let opted = guarded_baking("guard", bake);
    c.deploy("shop", 4, &ann(&opted)).await;
    let all_at_once = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "100%"}}}});
    c.deployments()
        .patch("shop", &PatchParams::default(), &Patch::Merge(all_at_once))
        .await
        .expect("replacing every pod at once");
    tokio::time::sleep(Duration::from_secs(served)).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", Some("cpu-regression")).await;
    let d = c
        .wait("shop", "the pause", LONG, |d| {
            d.spec.as_ref().unwrap().paused == Some(true) && stage(d).as_deref() == Some("paused")
        })
        .await;
    assert_eq!(version(&d), "v2", "paused, not rolled back");
    assert_eq!(
        memory(&d).unwrap().history.last().unwrap().rule.as_deref(),
        Some("cpu-per-request")
    );
    let (recs, _) = records::read(&c.records_path()).unwrap();
    let old = &deciding(&recs).old_replicasets;
    assert!(
        old.is_empty(),
        "the old pods were gone when it decided: {old:?}"
    );
    let cpu = deciding_verdicts(&recs)
        .into_iter()
        .find(|v| v.rule == "cpu-per-request")
        .expect("the deciding evaluation's cpu-per-request verdict");
    assert_eq!(cpu.outcome, Outcome::Fail, "{}", cpu.reason);
    assert_eq!(cpu.baseline(), Some(Baseline::History), "{}", cpu.reason);
    daemon.stop().await;
    cpu
}

/// What a compare verdict held the new pods to after the old pods left.
fn history(v: &Verdict) -> CompareHistory {
    match &v.evidence {
        Some(Evidence::Compare(e)) => *e.history.clone().expect("judged against the history"),
        _ => panic!("no compare evidence: {}", v.reason),
    }
}

/// Before stop 26 every CPU rule stayed inconclusive in such a rollout and the release passed.
/// Now cpu-per-request holds the new pods to the old version's history after its pods left.
/// v1 serves 40 simulated minutes: the rule measures how much v1's level moved by itself
/// between 10-minute stretches as far apart as the old and the new pods' (about 10 minutes),
/// from 10 such pairs or more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_regression_rolled_out_inside_the_warm_up_is_judged_against_the_history() {
    let cpu = fast_cpu_regression_paused(40, "30m").await;
    let h = history(&cpu);
    assert!(h.drift_pairs >= 10 && h.unknown_drift.is_none(), "{h:?}");
}

/// After a v1 that served only 5 simulated minutes (a hotfix, or a test that deploys v1 and
/// then v2), its history is too short to measure how much its level moves by itself: the new
/// pods are held to the drift the rule assumes then (`unknown_drift`, 1.75), which twice the
/// cost per request clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_regression_after_a_short_lived_version_is_held_to_the_drift_assumed() {
    let cpu = fast_cpu_regression_paused(5, "15m").await;
    let h = history(&cpu);
    assert!(h.drift_pairs < 10, "{h:?}");
    assert_eq!(h.unknown_drift, Some(1.75), "{}", cpu.reason);
    assert!(
        cpu.reason
            .contains("too short a history to measure how much it moves by itself"),
        "{}",
        cpu.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_saturation_rolls_back_and_a_pause_rule_pauses() {
    let c = Cluster::start("cpu", Duration::from_millis(2500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    // Only the pause rule for the second Deployment.
    let mut pausing = guarded("guard");
    pausing.push((annotations::RULES, "cpu-throttling".into()));
    c.deploy("cart", 4, &ann(&pausing)).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", Some("cpu-saturation")).await;
    c.release("cart", "v2", Some("cpu-saturation")).await;

    let d = c.wait_rolled_back("shop").await;
    assert_eq!(
        memory(&d).unwrap().history.last().unwrap().rule.as_deref(),
        Some("cpu-saturation")
    );
    let cart = c
        .wait("cart", "the pause", LONG, |d| {
            d.spec.as_ref().unwrap().paused == Some(true) && stage(d).as_deref() == Some("paused")
        })
        .await;
    assert_eq!(version(&cart), "v2", "paused, not rolled back");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_rollout_is_left_alone_and_passes() {
    let c = Cluster::start("healthy", Duration::from_millis(1000)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", None).await;
    let d = c
        .wait("shop", "the analysis to pass, all pods on v2", LONG, |d| {
            // (Annotation writes bump the generation: wait for the status to catch up too.)
            stage(d).as_deref() == Some("passed") && rolled_out(d)
        })
        .await;
    assert_eq!(version(&d), "v2");
    assert_eq!(rollbacks(&d), 0);
    assert!(memory(&d).unwrap().history.is_empty(), "no action at all");
    assert_ne!(d.spec.as_ref().unwrap().paused, Some(true));
    daemon.stop().await;
}

/// A rule whose series the service does not have (here a latency histogram it does not
/// export) is named when the analysis starts, once, in an Event and a gauge, rather than only
/// when the analysis ends with it never judged. (The simulated metric source refuses a metric
/// it does not know; a real Prometheus answers no series. Both keep the rule inconclusive.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_cannot_be_evaluated_are_named_when_the_analysis_starts() {
    let c = Cluster::start("preflight", Duration::from_millis(1000)).await;
    c.deploy("shop", 3, &ann(&guarded("guard"))).await;
    let extra = c.dir.path().join("latency.yaml");
    std::fs::write(
        &extra,
        r#"version: 1
rules:
  - name: latency-p99
    action: pause
    window: 5m
    check:
      absolute:
        query: 'histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="{{ namespace }}", pod=~"{{ pods }}"}[1m])))'
        threshold: 2
"#,
    )
    .unwrap();
    let mut config = c.config();
    config.rules = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml").into(),
        extra,
    ];
    let daemon = c.daemon(config).await;
    c.release("shop", "v2", None).await;
    // The RulesCannotEvaluate Events' notes and how often each was published.
    let cannot_evaluate = |events: Vec<(String, String, i32)>| -> Vec<(String, i32)> {
        events
            .into_iter()
            .filter(|(reason, _, _)| reason == "RulesCannotEvaluate")
            .map(|(_, note, times)| (note, times))
            .collect()
    };
    let deadline = std::time::Instant::now() + LONG;
    let said = loop {
        let said = cannot_evaluate(c.published("shop").await);
        if !said.is_empty() || std::time::Instant::now() > deadline {
            break said;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(said.len(), 1, "one Event: {said:?}");
    // Once in the analysis, however many evaluations follow.
    c.wait("shop", "the analysis to end", LONG, |d| {
        rolled_out(d) && stage(d).is_some_and(|s| s != "analysing")
    })
    .await;
    let said = cannot_evaluate(c.published("shop").await);
    assert_eq!(said.len(), 1, "one Event: {said:?}");
    let (note, times) = &said[0];
    assert_eq!(*times, 1, "said once: {note}");
    assert!(note.starts_with("1 of 7 rule(s)"), "{note}");
    assert!(note.contains("latency-p99"), "{note}");
    assert!(note.contains("will stay inconclusive"), "{note}");
    let text = daemon.metrics().await;
    let series = format!(
        r#"rollout_guard_rules_unevaluable{{namespace="{}",deployment="shop"}}"#,
        c.namespace
    );
    assert_eq!(metric(&text, &series), 1.0, "{text}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_annotation_removed_by_someone_else_does_not_stop_the_guard() {
    let c = Cluster::start("state-removed", Duration::from_millis(1000)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", None).await;
    c.wait("shop", "the analysis to start", LONG, |d| {
        stage(d).as_deref() == Some("analysing")
    })
    .await;
    // As a GitOps tool replacing the object would (or `kubectl rollout undo`, which copies an
    // older ReplicaSet's annotations back): the controller's last write is gone.
    let patch = serde_json::json!({"metadata": {"annotations": {annotations::STATE: null}}});
    c.deployments()
        .patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("removing the state annotation");
    let d = c
        .wait("shop", "the analysis to go on and pass", LONG, |d| {
            stage(d).as_deref() == Some("passed") && rolled_out(d)
        })
        .await;
    assert_eq!(version(&d), "v2");
    assert!(memory(&d).unwrap().history.is_empty(), "no action at all");
    daemon.stop().await;
}

/// Waits until the gate holds the rollout of `shop` paused.
async fn gate_hold(c: &Cluster) -> k8s_openapi::api::apps::v1::Deployment {
    c.wait("shop", "the gate to pause", LONG, |d| {
        d.spec.as_ref().unwrap().paused == Some(true) && stage(d).as_deref() == Some("gate_hold")
    })
    .await
}

/// Waits until `shop` has passed its analysis and rolled out, and checks it is on `v2`.
async fn passed_on_v2(c: &Cluster) -> k8s_openapi::api::apps::v1::Deployment {
    let d = c
        .wait(
            "shop",
            "the gate to resume and the rollout to pass",
            LONG,
            |d| rolled_out(d) && stage(d).as_deref() == Some("passed"),
        )
        .await;
    assert_eq!(version(&d), "v2");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_pauses_analyses_and_resumes() {
    let c = Cluster::start("gate", Duration::from_millis(500)).await;
    c.deploy("shop", 4, &ann(&guarded("gate"))).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", None).await;
    let held = gate_hold(&c).await;
    // Paused with the canary alone: at most maxSurge new pods.
    let new_pods: i32 = c
        .replicasets("shop")
        .await
        .iter()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .unwrap()
                .template
                .as_ref()
                .is_some_and(|t| {
                    t.spec.as_ref().unwrap().containers[0].env.as_ref().unwrap()[0]
                        .value
                        .as_deref()
                        == Some("v2")
                })
        })
        .map(|rs| rs.spec.as_ref().unwrap().replicas.unwrap_or(0))
        .sum();
    assert!(new_pods <= 1, "{new_pods} new pods while gated");
    assert_eq!(version(&held), "v2");
    passed_on_v2(&c).await;
    let wanted = ["GatePaused", "GateResumed", "AnalysisPassed"];
    let reasons = c.reasons_with("shop", &wanted).await;
    for want in wanted {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} missing: {reasons:?}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_decides_and_records_but_never_writes() {
    let c = Cluster::fake("observe", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("observe"))).await;
    let daemon = c.daemon(c.config()).await;
    a_bad_release_is_only_recorded(&c, daemon).await;
}

/// Releases a version with class-loading errors on the fake cluster and checks that the
/// controller decides to roll back but only records it: the release rolls out, the decision
/// records carry the rollback as suppressed, and nothing but the test's own release is written.
async fn a_bad_release_is_only_recorded(c: &Cluster, daemon: support::cluster::Daemon) {
    let fake = c.fake.as_ref().unwrap();
    fake.reset_requests();
    c.release("shop", "v2", Some("class-errors")).await;
    let d = c
        .wait("shop", "the bad release to roll out", LONG, rolled_out)
        .await;
    assert_eq!(version(&d), "v2", "recorded, not rolled back");
    // Wait for the decision the controller only records.
    let deadline = tokio::time::Instant::now() + LONG;
    let recorded = loop {
        let (recs, _) = records::read(&c.records_path()).unwrap_or_default();
        if let Some(r) = recs.into_iter().find(|r| !r.suppressed.is_empty()) {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recorded decision"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(recorded.acts.is_empty());
    assert_eq!(recorded.suppressed[0].name(), "rollback");
    daemon.stop().await;
    let stats = fake.requests();
    let writes: Vec<_> = stats
        .log
        .iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .collect();
    assert_eq!(writes.len(), 1, "only the test's own release: {writes:#?}");
    assert_eq!(writes[0].verb, "patch");
    assert!(memory(&c.deployments().get("shop").await.unwrap()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_turned_on_in_the_config_file_turns_acts_into_records() {
    let c = Cluster::fake("kill-switch", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let mut config = c.config();
    let (daemon, path) = c.daemon_from_file(config.clone()).await;
    // Turned on while running: the daemon re-reads the file (every 200 ms in tests).
    config.kill_switch = true;
    write_config(&path, &config);
    tokio::time::sleep(Duration::from_secs(2)).await;
    a_bad_release_is_only_recorded(&c, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prometheus_down_nothing_is_done() {
    let c = Cluster::start("promdown", Duration::from_millis(1000)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    // Nothing listens on port 9 of the loopback.
    let down = PrometheusSource::new(&PrometheusConfig::new("http://127.0.0.1:9")).unwrap();
    let daemon = c.daemon_with(c.config(), down).await;
    c.release("shop", "v2", Some("class-errors")).await;
    // Nothing was judged: the analysis ends inconclusive, not passed, and says why.
    let d = c
        .wait("shop", "the release to roll out and bake", LONG, |d| {
            rolled_out(d) && stage(d).as_deref() == Some("inconclusive")
        })
        .await;
    assert_eq!(version(&d), "v2");
    assert_eq!(rollbacks(&d), 0);
    let last = memory(&d).unwrap().current.unwrap().last.unwrap();
    assert_eq!(last.outcome.to_string(), "inconclusive");
    c.reasons_with("shop", &["AnalysisInconclusive"]).await;
    let events = c.events("shop").await;
    assert!(
        !events.iter().any(|(reason, _)| reason == "AnalysisPassed"),
        "{events:?}"
    );
    let (_, note) = events
        .iter()
        .find(|(reason, _)| reason == "AnalysisInconclusive")
        .expect("an AnalysisInconclusive Event");
    assert!(
        note.contains("class-loading-errors") && note.contains("unreachable"),
        "{note}"
    );
    let text = daemon.metrics().await;
    assert!(
        metric(
            &text,
            r#"rollout_guard_query_errors_total{rule="class-loading-errors"}"#
        ) > 0.0,
        "{text}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_re_read_and_re_decided() {
    let c = Cluster::fake("conflict", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", Some("class-errors")).await;
    // Someone else writes first, three times in a row.
    c.fake
        .as_ref()
        .unwrap()
        .inject_conflicts::<k8s_openapi::api::apps::v1::Deployment>(&c.namespace, "shop", 3)
        .unwrap();
    let d = c.wait_rolled_back("shop").await;
    assert_eq!(rollbacks(&d), 1);
    let stats = c.fake.as_ref().unwrap().requests();
    let refused = stats
        .log
        .iter()
        .filter(|r| r.verb == "patch" && r.status == 409)
        .count();
    // The injected ones, and any the Deployment controller's status updates caused.
    assert!(refused >= 3, "every injected conflict was met: {refused}");
    // A plan that met a conflict is decided again on the verdicts already recorded, and the
    // record of that decision says which: the numbers behind the rollback are never lost.
    let (recs, _) = records::read(&c.records_path()).unwrap();
    let again: Vec<&Record> = recs.iter().filter(|r| r.verdicts_of.is_some()).collect();
    assert!(
        !again.is_empty(),
        "no decision was taken again on kept verdicts"
    );
    for r in again {
        assert!(r.verdicts.is_empty());
        assert!(
            !r.verdicts_source(&recs).verdicts.is_empty(),
            "the verdicts of {:?} are recorded",
            r.verdicts_of
        );
    }
    let class = deciding_verdicts(&recs)
        .into_iter()
        .find(|v| v.rule == "class-loading-errors")
        .expect("the deciding evaluation's class-loading verdict");
    assert_eq!(class.outcome, Outcome::Fail);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_does_not_act_twice() {
    let c = Cluster::start("restart", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let first = c.daemon(c.config()).await;
    c.release("shop", "v2", Some("class-errors")).await;
    let d = c.wait_rolled_back("shop").await;
    first.stop().await;
    // (Annotation writes bump a Deployment's generation, so the spec itself is compared.)
    let spec = serde_json::to_value(&d.spec).unwrap();
    // A new process, with nothing in memory but what is on the Deployment.
    let second = c.daemon(c.config()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let d = c.deployments().get("shop").await.unwrap();
    assert_eq!(rollbacks(&d), 1);
    assert_eq!(
        serde_json::to_value(&d.spec).unwrap(),
        spec,
        "the spec was not touched again"
    );
    assert_eq!(version(&d), "v1");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_the_gate_hold_carries_on_without_acting_twice() {
    let c = Cluster::start("gate-restart", Duration::from_millis(500)).await;
    c.deploy("shop", 4, &ann(&guarded("gate"))).await;
    let first = c.daemon(c.config()).await;
    c.release("shop", "v2", None).await;
    gate_hold(&c).await;
    first.stop().await;
    // A new process, with nothing in memory but what is on the Deployment, in the middle of
    // the gate's analysis.
    let second = c.daemon(c.config()).await;
    let d = passed_on_v2(&c).await;
    let acts: Vec<String> = memory(&d)
        .unwrap()
        .history
        .iter()
        .map(|h| h.act.name().to_string())
        .collect();
    assert_eq!(acts, ["pause", "resume"], "paused once, resumed once");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_leader_election_act_once() {
    let c = Cluster::start("ha", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let mut a = c.config();
    a.leader_election.enabled = true;
    a.leader_election.identity = "replica-a".into();
    a.leader_election.lease_duration = "3s".parse().unwrap();
    let mut b = a.clone();
    b.leader_election.identity = "replica-b".into();
    b.records.path = Some(c.dir.path().join("records-b.jsonl"));
    let ra = c.daemon(a).await;
    let rb = c.daemon(b).await;
    c.release("shop", "v2", Some("class-errors")).await;
    let d = c.wait_rolled_back("shop").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d2 = c.deployments().get("shop").await.unwrap();
    assert_eq!(rollbacks(&d2), 1);
    assert_eq!(
        serde_json::to_value(&d2.spec).unwrap(),
        serde_json::to_value(&d.spec).unwrap()
    );
    // One rollback renumbers the old ReplicaSet once: 1 -> 3.
    let revisions: Vec<u64> = c
        .replicasets("shop")
        .await
        .iter()
        .map(|rs| rollout_guard::adapters::kubernetes::revision_of(&rs.metadata))
        .collect();
    assert_eq!(revisions.iter().max(), Some(&3), "{revisions:?}");
    let leaders = metric(&ra.metrics().await, "rollout_guard_leader")
        + metric(&rb.metrics().await, "rollout_guard_leader");
    assert_eq!(leaders, 1.0, "exactly one leader");
    ra.stop().await;
    rb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_did_not_opt_in_is_never_touched() {
    let c = Cluster::fake("untouched", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    c.deploy("legacy", 3, &[]).await;
    let daemon = c.daemon(c.config()).await;
    c.fake.as_ref().unwrap().reset_requests();
    c.release("legacy", "v2", Some("class-errors")).await;
    c.release("shop", "v2", Some("class-errors")).await;
    c.wait_rolled_back("shop").await;
    let legacy = c
        .wait("legacy", "the unguarded one rolled out", LONG, rolled_out)
        .await;
    assert_eq!(version(&legacy), "v2");
    assert!(memory(&legacy).is_none());
    daemon.stop().await;
    let writes_to_legacy: Vec<_> = c
        .fake
        .as_ref()
        .unwrap()
        .requests()
        .log
        .into_iter()
        .filter(|r| r.uri.contains("/deployments/legacy") && r.verb != "get")
        .collect();
    assert_eq!(
        writes_to_legacy.len(),
        1,
        "only the test's release: {writes_to_legacy:#?}"
    );
    assert!(c.events("legacy").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_opts_in_what_it_selects_but_an_explicit_opt_out() {
    let c = Cluster::start("selector", Duration::from_millis(1500)).await;
    // Opted in by the selector alone: no `enabled` annotation.
    let by_selector: Vec<_> = guarded("guard")
        .into_iter()
        .filter(|(k, _)| *k != annotations::ENABLED)
        .collect();
    let mut opted_out = by_selector.clone();
    opted_out.push((annotations::ENABLED, "false".into()));
    c.deploy("shop", 3, &ann(&by_selector)).await;
    c.deploy("cart", 3, &ann(&opted_out)).await;
    // Annotated, but outside the selector: not even watched.
    c.deploy("legacy", 3, &ann(&guarded("guard"))).await;
    let label = serde_json::json!({"metadata": {"labels": {"guard": "yes"}}});
    for name in ["shop", "cart"] {
        c.deployments()
            .patch(name, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .unwrap();
    }
    let mut config = c.config();
    config.selector = Some("guard=yes".into());
    let daemon = c.daemon(config).await;
    for name in ["shop", "cart", "legacy"] {
        c.release(name, "v2", Some("class-errors")).await;
    }
    c.wait_rolled_back("shop").await;
    for name in ["cart", "legacy"] {
        let d = c
            .wait(name, "the unguarded one rolled out", LONG, |d| {
                rolled_out(d) && version(d) == "v2"
            })
            .await;
        assert!(memory(&d).is_none(), "{name} was analysed");
        assert!(c.events(name).await.is_empty(), "{name} has Events");
    }
    daemon.stop().await;
}

/// A metric source that watches how the controller uses another: which rollouts have queries
/// in flight at once, and at which moments each rollout is evaluated (every query of one
/// evaluation is made at the same `now`). Each query takes 50 ms of wall time, so that
/// evaluations that run together overlap.
struct Watching<S> {
    inner: S,
    names: Vec<&'static str>,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    in_flight: std::collections::BTreeMap<&'static str, usize>,
    most_rollouts_at_once: usize,
    evaluated_at: std::collections::BTreeMap<&'static str, std::collections::BTreeSet<i64>>,
}

impl<S: MetricSource> Watching<S> {
    /// A query begins; `evaluation`: it is one of an evaluation's (range queries), not of the
    /// preflight at an analysis's start (instant queries), which runs after the start is
    /// written: seconds after the first evaluation when that write met a conflict.
    fn begin(&self, query: &str, at: jiff::Timestamp, evaluation: bool) -> Option<&'static str> {
        let name = *self.names.iter().find(|n| query.contains(*n))?;
        let mut s = self.seen.lock().unwrap();
        *s.in_flight.entry(name).or_default() += 1;
        let busy = s.in_flight.values().filter(|n| **n > 0).count();
        s.most_rollouts_at_once = s.most_rollouts_at_once.max(busy);
        if evaluation {
            s.evaluated_at
                .entry(name)
                .or_default()
                .insert(at.as_millisecond());
        }
        Some(name)
    }

    async fn end(&self, name: Option<&'static str>) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(n) = name {
            *self.seen.lock().unwrap().in_flight.get_mut(n).unwrap() -= 1;
        }
    }
}

impl<S: MetricSource + Send + Sync> MetricSource for Watching<S> {
    async fn instant(&self, query: &str, at: jiff::Timestamp) -> Result<Vec<Series>, SourceError> {
        let name = self.begin(query, at, false);
        let out = self.inner.instant(query, at).await;
        self.end(name).await;
        out
    }

    async fn range(
        &self,
        query: &str,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        step: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        let name = self.begin(query, end, true);
        let out = self.inner.range(query, start, end, step).await;
        self.end(name).await;
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_are_bounded_in_number_and_paced_by_the_interval() {
    let c = Cluster::start("paced", Duration::from_millis(1500)).await;
    let names = ["alpha", "bravo", "charlie"];
    for n in names {
        c.deploy(n, 3, &ann(&guarded("guard"))).await;
    }
    let mut config = c.config();
    config.limits.max_concurrent_evaluations = 1;
    let seen = std::sync::Arc::default();
    let source = Watching {
        inner: c.source(),
        names: names.to_vec(),
        seen: std::sync::Arc::clone(&seen),
    };
    let daemon = c.daemon_with(config, source).await;
    for n in names {
        c.release(n, "v2", None).await;
    }
    // The analysis ends without acting: passed, or, on a machine so loaded that few
    // evaluations fit in the simulated rollout and bake, inconclusive (a rule that needs
    // minutes of samples never judged, and the analysis says so). Its pace is what is tested.
    for n in names {
        c.wait(n, "the analysis to end without acting", LONG, |d| {
            matches!(stage(d).as_deref(), Some("passed" | "inconclusive"))
        })
        .await;
    }
    daemon.stop().await;

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.most_rollouts_at_once, 1,
        "one evaluation at a time, as configured"
    );
    for n in names {
        let at: Vec<i64> = seen.evaluated_at[n].iter().copied().collect();
        // How many evaluations fit before the analysis passes depends on how fast the machine
        // runs them (the rollout and the bake are in simulated time, the evaluations queue for
        // the one permit in wall time); two are enough to measure the pace.
        assert!(at.len() >= 2, "{n}: evaluated {} times", at.len());
        // Every step of a 3-pod rollout wakes the controller; still, one evaluation per
        // 30-s interval (a twentieth early at most).
        let gaps: Vec<i64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let closest = *gaps.iter().min().unwrap();
        assert!(closest >= 28_500, "{n}: evaluations {gaps:?} ms apart");
    }
}

/// A rollout whose first plan meets write conflicts (status updates during a rollout make
/// them): the analysis starts once, and its evaluations stay an interval apart. (Before the
/// preflight's queries were told from evaluations', `evaluations_are_bounded_…` failed now and
/// then on this: they came at the start's successful write, seconds after the evaluation.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_plan_that_meets_conflicts_while_the_rollout_completes_starts_one_analysis() {
    let c = Cluster::fake("conflict-fast", Duration::from_millis(300)).await;
    c.deploy("shop", 2, &ann(&guarded("guard"))).await;
    // v1 serves for more than 10 simulated minutes before v2, as a release unseen needs.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let seen = std::sync::Arc::default();
    let source = Watching {
        inner: c.source(),
        names: vec!["shop"],
        seen: std::sync::Arc::clone(&seen),
    };
    let daemon = c.daemon_with(c.config(), source).await;
    c.release("shop", "v2", None).await;
    c.fake
        .as_ref()
        .unwrap()
        .inject_conflicts::<k8s_openapi::api::apps::v1::Deployment>(&c.namespace, "shop", 6)
        .unwrap();
    c.wait("shop", "the analysis to end without acting", LONG, |d| {
        matches!(stage(d).as_deref(), Some("passed" | "inconclusive"))
    })
    .await;
    daemon.stop().await;
    let events = c.events("shop").await;
    let started: Vec<&String> = events
        .iter()
        .filter(|(reason, _)| reason == "AnalysisStarted")
        .map(|(_, note)| note)
        .collect();
    assert_eq!(started.len(), 1, "{started:#?}");
    let seen = seen.lock().unwrap();
    let at: Vec<i64> = seen.evaluated_at["shop"].iter().copied().collect();
    let gaps: Vec<i64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= 28_500),
        "evaluations {gaps:?} ms apart"
    );
}

/// A plan with these acts and a memory at `seq`, to write with the actuator directly.
fn plan_of(
    acts: Vec<rollout_guard::policy::guard::Act>,
    seq: u64,
) -> rollout_guard::policy::guard::Plan {
    rollout_guard::policy::guard::Plan {
        memory: rollout_guard::policy::guard::Memory {
            version: 1,
            seq,
            ..Default::default()
        },
        acts,
        suppressed: Vec::new(),
        notes: Vec::new(),
        write: true,
        clear_allow: false,
        decision: None,
        requeue: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_written_over_status_updates_but_never_over_another_writer() {
    use rollout_guard::controller::actions::{ActError, Actuator};
    use rollout_guard::policy::guard::Act;
    let c = Cluster::start("preconditions", Duration::from_millis(500)).await;
    c.deploy("shop", 2, &[]).await;
    let api = c.deployments();
    let actuator = Actuator::new(c.client.clone(), None);
    let read = api.get("shop").await.unwrap();
    // The status moves on after the read, as it does every few seconds during a rollout.
    let status = json!({ "status": { "collisionCount": 3 } });
    api.patch_status("shop", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_ne!(
        api.get("shop").await.unwrap().metadata.resource_version,
        read.metadata.resource_version
    );
    let written = actuator
        .write(
            &read,
            &c.replicasets("shop").await,
            &plan_of(vec![Act::Pause], 1),
        )
        .await
        .expect("a status update does not refuse the write")
        .expect("something was written");
    assert_eq!(written.spec.as_ref().unwrap().paused, Some(true));
    assert_eq!(memory(&written).unwrap().seq, 1);

    // Another writer changes the annotations (a GitOps sync, a person): the plan decided on
    // the earlier read is refused and nothing of it is written.
    let read = api.get("shop").await.unwrap();
    let theirs = json!({ "metadata": { "annotations": { "team": "payments" } } });
    api.patch("shop", &PatchParams::default(), &Patch::Merge(&theirs))
        .await
        .unwrap();
    let refused = actuator
        .write(
            &read,
            &c.replicasets("shop").await,
            &plan_of(vec![Act::Resume], 2),
        )
        .await;
    assert!(matches!(refused, Err(ActError::Conflict(_))), "{refused:?}");
    let now = api.get("shop").await.unwrap();
    assert_eq!(now.spec.as_ref().unwrap().paused, Some(true));
    assert_eq!(memory(&now).unwrap().seq, 1);
    assert_eq!(
        now.annotations().get("team").map(String::as_str),
        Some("payments")
    );

    // Another replica of the controller wrote its memory: refused too.
    let read = now;
    let mut other = memory(&read).unwrap();
    other.seq = 5;
    let ours = json!({ "metadata": { "annotations": {
        annotations::STATE: serde_json::to_string(&other).unwrap() } } });
    api.patch("shop", &PatchParams::default(), &Patch::Merge(&ours))
        .await
        .unwrap();
    let refused = actuator
        .write(
            &read,
            &c.replicasets("shop").await,
            &plan_of(vec![Act::Resume], 2),
        )
        .await;
    assert!(matches!(refused, Err(ActError::Conflict(_))), "{refused:?}");
    assert_eq!(memory(&api.get("shop").await.unwrap()).unwrap().seq, 5);
}

/// A webhook receiver on a free loopback port: every JSON body posted to `/<name>`, by name.
async fn webhook_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::post(
            move |axum::extract::Path(name): axum::extract::Path<String>,
                  body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    kept.lock().unwrap().push((name, v));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_told_to_the_webhooks_that_asked_for_it_and_its_records_are_served() {
    use rollout_guard::adapters::notify::{Format, NoticeKind, Webhook};
    let c = Cluster::start("notify", Duration::from_millis(1500)).await;
    let (base, got) = webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = |name: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, format!("{base}/{name}\n")).unwrap();
        f
    };
    let mut config = c.config();
    config.notify.webhooks = vec![
        Webhook {
            name: "oncall".into(),
            url_file: url_file("oncall"),
            format: Format::Json,
            on: vec![NoticeKind::RolledBack, NoticeKind::RollbackNotTaking],
        },
        Webhook {
            name: "releases".into(),
            url_file: url_file("releases"),
            format: Format::Slack,
            on: vec![NoticeKind::Passed],
        },
    ];
    config.records.endpoint = true;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon(config).await;
    c.release("shop", "v2", Some("class-errors")).await;
    c.wait("shop", "the rollback to v1", LONG, |d| {
        version(d) == "v1" && stage(d).as_deref() == Some("rolled_back")
    })
    .await;
    // The same run serves its records at /records, filtered as asked.
    let served = reqwest::get(format!(
        "http://{}/records?deployment=shop&revision=2",
        daemon.running.addr
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let (served, unreadable) = records::load_from(served.as_bytes(), "endpoint").unwrap();
    assert!(unreadable.is_empty());
    assert!(served.iter().all(|r| r.revision == Some(2)));
    assert!(
        served
            .iter()
            .any(|r| r.acts.iter().any(|a| a.name() == "rollback")),
        "{} records served, none of the rollback",
        served.len()
    );
    // Delivery runs beside the controller; wait for it (a bound, not a measurement).
    let mut bodies = Vec::new();
    for _ in 0..600 {
        bodies = got.lock().unwrap().clone();
        if !bodies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let (hook, body) = &bodies[0];
    assert_eq!(hook, "oncall");
    assert_eq!(body["kind"], "rolled_back");
    assert_eq!(body["reason"], "RolledBack");
    assert_eq!(body["namespace"], c.namespace.as_str());
    assert_eq!(body["deployment"], "shop");
    assert_eq!(body["revision"], 2);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("class-loading-errors"),
        "{body}"
    );
    let report = body["report"].as_str().unwrap();
    assert!(
        report.contains(&c.records_path().display().to_string())
            && report.ends_with("--revision 2"),
        "{report}"
    );
}
