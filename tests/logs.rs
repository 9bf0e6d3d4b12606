//! End-to-end for `logs` rules: the fake API server's pods print PHP-FPM output (the new
//! release's pods a missing class, every pod the same unrelated errors), the real `run` loop
//! reads it through `pods/log` and judges it. Also the bounds of reading a pod that prints
//! megabytes.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rollout_guard::adapters::podlogs::{KubeLogs, LogLimits};
use rollout_guard::analysis::source::{LogCounts, LogQuery, LogSource};
use rollout_guard::controller::kept_logs;
use rollout_guard::policy::annotations;
use rollout_guard::sim::simulate::live::FAULT_ANNOTATION;
use serde_json::Value;
use support::cluster::{
    Cluster, ann, guarded, guarded_baking, rollbacks, rolled_out, stage, version,
};

/// How long a test waits for the controller to reach a state before failing with what it
/// saw. A guard against hanging, not a measurement: on an idle machine these states come in
/// 5-25 s of wall time, and with six busy loops on the CI machine's two cores in at most 80 s
/// for the whole suite; a slower machine only makes the wait longer, never the verdict
/// different (the assertions are on what happened and in what order, in simulated time).
const LONG: Duration = Duration::from_secs(90);

/// Real PHP-FPM 8.2 lines (decorated), as in tests/data/php-fpm-logs.
const MISSING_CLASS: [&str; 4] = [
    r##"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4517 said into stderr: "NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class "App\Billing\LegacyTaxCalculator" not found in /var/www/html/index.php:7""##,
    r##"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4517 said into stderr: "Stack trace:""##,
    r##"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4517 said into stderr: "#0 {main}""##,
    r##"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4517 said into stderr: "  thrown in /var/www/html/index.php on line 7""##,
];
const SHARED: &str = r##"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4518 said into stderr: "NOTICE: PHP message: PHP Warning:  Undefined variable $total in /var/www/html/src/Cart.php on line 12""##;
const SHARED_FATAL: [&str; 2] = [
    r##"[25-Nov-2026 16:00:06] WARNING: [pool www] child 4519 said into stderr: "NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class "App\Legacy\Reports" not found in /var/www/html/reports.php:3""##,
    r##"[25-Nov-2026 16:00:06] WARNING: [pool www] child 4519 said into stderr: "  thrown in /var/www/html/reports.php on line 3""##,
];

const MINUTE: jiff::SignedDuration = jiff::SignedDuration::from_mins(1);

/// What a `logs` rule asks of the new ReplicaSet `rs` from `start` to `end`.
fn query(
    c: &Cluster,
    rs: String,
    container: Option<&str>,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
) -> LogQuery {
    LogQuery {
        namespace: c.namespace.clone(),
        replicaset: rs,
        container: container.map(String::from),
        new: true,
        start,
        end,
    }
}

/// A fake cluster with `replicas` pods of the service `shop`: the pods API, the pods, and
/// their ReplicaSet's name.
async fn shop_pods(
    name: &str,
    replicas: i32,
    ann: &[(&str, &str)],
) -> (Cluster, Api<Pod>, Vec<Pod>, String) {
    let c = Cluster::fake(name, Duration::from_millis(100)).await;
    c.deploy("shop", replicas, ann).await;
    let api: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    let pods = api.list(&ListParams::default()).await.unwrap().items;
    let rs = pods[0].owner_references()[0].name.clone();
    (c, api, pods, rs)
}

/// Errors counted, all signatures together.
fn count(l: &LogCounts) -> u64 {
    l.errors.iter().map(|e| e.count).sum()
}

/// Every 100 ms (6 simulated seconds), each running pod prints: all of them the shared lines
/// (a warning, and with `shared_fatal` a missing class both releases hit); pods with the
/// `class-errors` fault also the new release's missing class. Runs until dropped.
async fn printing(c: &Cluster, shared_fatal: bool) {
    let fake = c.fake.as_ref().expect("fake API server");
    let api: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    loop {
        if let Ok(pods) = api.list(&ListParams::default()).await {
            for p in pods.items {
                if p.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .is_none()
                {
                    continue;
                }
                let faulty = p.annotations().get(FAULT_ANNOTATION).map(String::as_str)
                    == Some("class-errors");
                let now = c.clock.now();
                let mut lines: Vec<&str> = vec![SHARED];
                if shared_fatal {
                    lines.extend(SHARED_FATAL);
                }
                if faulty {
                    lines.extend(MISSING_CLASS);
                }
                for l in lines {
                    // A pod deleted meanwhile is no error.
                    let _ = fake.append_log(&c.namespace, &p.name_any(), "php", now, l);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that the Deployment was rolled back once, by php-log-class-errors on the new
/// release's missing class; returns the deciding reason.
fn rolled_back_on_the_missing_class(d: &k8s_openapi::api::apps::v1::Deployment) -> String {
    assert_eq!(rollbacks(d), 1);
    let m = support::cluster::memory(d).unwrap();
    assert_eq!(
        m.history.last().unwrap().rule.as_deref(),
        Some("php-log-class-errors")
    );
    let reason = m.current.unwrap().last.unwrap().reason;
    assert!(reason.contains("LegacyTaxCalculator"), "{reason}");
    reason
}

/// The service `shop` (4 pods, guarded, only the `logs` rules loaded) released as `v2`, whose
/// pods print a missing class, in a fast rollout; the Deployment once rolled back. The old
/// pods print for three simulated minutes first, as pods that served before a release have:
/// their log must hold the 2 pod-minutes a logs rule needs of each side.
async fn fast_rollout_of_a_missing_class(c: &Cluster) -> k8s_openapi::api::apps::v1::Deployment {
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon_with(logs_config(c), c.source_with_logs()).await;
    let d = tokio::select! {
        _ = printing(c, true) => unreachable!(),
        d = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            c.release("shop", "v2", Some("class-errors")).await;
            c.wait_rolled_back("shop").await
        } => d,
    };
    daemon.stop().await;
    d
}

fn logs_config(c: &Cluster) -> rollout_guard::app::config::Config {
    let mut cfg = c.config();
    cfg.rules = vec![concat!(env!("CARGO_MANIFEST_DIR"), "/rules/php-logs.yaml").into()];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_missing_only_in_the_new_pods_logs_is_rolled_back() {
    let c = Cluster::fake("logs-class", Duration::from_millis(1500)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon_with(logs_config(&c), c.source_with_logs()).await;
    c.release("shop", "v2", Some("class-errors")).await;
    let d = tokio::select! {
        _ = printing(&c, true) => unreachable!(),
        d = c.wait_rolled_back("shop") => d,
    };
    let reason = rolled_back_on_the_missing_class(&d);
    assert!(!reason.contains("App\\Legacy\\Reports"), "{reason}");
    daemon.stop().await;
}

/// The issue's fast rollout: four pods replaced one at a time in about 20 s (each ready some
/// 5 simulated seconds after it starts), with only the `logs` rules loaded. The old pods are
/// gone almost at once; their counts, read while they served, stay the baseline, and the
/// missing class only the new pods print is rolled back, not passed unjudged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_rollouts_missing_class_is_rolled_back_on_the_old_pods_counts_kept() {
    let c = Cluster::fake("logs-fast", Duration::from_millis(80)).await;
    let d = fast_rollout_of_a_missing_class(&c).await;
    let reason = rolled_back_on_the_missing_class(&d);
    // Judged on the old pods' counts kept after they were gone, as the reason says.
    assert!(reason.contains("gone since, their counts kept"), "{reason}");
}

/// Where the ConfigMap keeping the old pods' counts is refused (RBAC without it, a quota, an
/// API server failing), nothing else changes: the counts stay in memory, and the fast rollout's
/// missing class is rolled back as it is with the ConfigMap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_config_map_changes_no_decision() {
    let c = Cluster::fake("logs-cm-refused", Duration::from_millis(80)).await;
    let fake = c.fake.as_ref().expect("fake API server");
    fake.inject_failures(
        &format!("/api/v1/namespaces/{}/configmaps", c.namespace),
        403,
        10_000,
    );
    let d = fast_rollout_of_a_missing_class(&c).await;
    let reason = rolled_back_on_the_missing_class(&d);
    assert!(reason.contains("gone since, their counts kept"), "{reason}");
    let requests = fake.requests();
    let tried = ["get", "patch"]
        .map(|verb| requests.counter(verb, "configmaps").requests)
        .iter()
        .sum::<u64>();
    assert!(tried > 0, "the controller tried to keep the counts");
}

/// A ConfigMap that happens to have the name the counts would be kept under, but is not the
/// Deployment's, is neither read, written, taken over nor deleted; the decision is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_config_map_of_that_name_is_left_as_it_is() {
    let c = Cluster::fake("logs-cm-foreign", Duration::from_millis(80)).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
    let theirs: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": kept_logs::config_map_name("shop")},
        "data": {"note": "not rollout-guard's"},
    }))
    .unwrap();
    api.create(&Default::default(), &theirs).await.unwrap();
    let d = fast_rollout_of_a_missing_class(&c).await;
    rolled_back_on_the_missing_class(&d);
    // It was looked at, and not written.
    let requests = c.fake.as_ref().unwrap().requests();
    assert!(requests.counter("get", "configmaps").requests > 0);
    assert_eq!(requests.counter("patch", "configmaps").requests, 0);
    let after = api
        .get(&kept_logs::config_map_name("shop"))
        .await
        .expect("still there");
    assert_eq!(after.data, theirs.data);
    assert!(after.owner_references().is_empty(), "{after:?}");
}

/// The text kept of the old pods' logs for the Deployment `shop`, when there is any.
async fn kept_text(c: &Cluster) -> Option<(ConfigMap, String)> {
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
    let cm = api
        .get_opt(&kept_logs::config_map_name("shop"))
        .await
        .unwrap()?;
    let text = cm.data.as_ref()?.get(kept_logs::DATA_KEY)?.clone();
    Some((cm, text))
}

/// A controller restarted in the bake of a fast rollout (its old pods gone, their logs with
/// them) still compares with what the previous process counted of them: that process kept the
/// counts in a ConfigMap owned by the Deployment, the new one takes them back. Without them,
/// its logs verdicts could only say that nothing of the old version is left to compare with,
/// and a missing class both versions print would have nothing to be told apart from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_compares_with_the_old_pods_counts_the_last_one_kept() {
    let c = Cluster::fake("logs-restart", Duration::from_millis(80)).await;
    // A bake of 45 simulated minutes (45 s here), time for a restart inside it however
    // loaded the machine, and the bundled logs rules with an hour's window, which reaches
    // the old pods' minutes to its end.
    c.deploy("shop", 4, &ann(&guarded_baking("guard", "45m")))
        .await;
    let bundled = std::fs::read_to_string(logs_config(&c).rules[0].clone()).unwrap();
    let hour = c.dir.path().join("php-logs-hour.yaml");
    std::fs::write(&hour, bundled.replace("window: 10m", "window: 60m")).unwrap();
    let mut cfg = logs_config(&c);
    cfg.rules = vec![hour];
    let first = c.daemon_with(cfg.clone(), c.source_with_logs()).await;
    let restarted_at = tokio::select! {
        _ = printing(&c, true) => unreachable!(),
        at = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            c.release("shop", "v2", None).await;
            let d = c.wait("shop", "the old pods to go", LONG, rolled_out).await;
            // Kept after the old side was read again with its pods gone: every pod kept says
            // so (and the old pods' shared missing class is among the counts).
            let all_gone = |text: &str| {
                let kept: Value = serde_json::from_str(text).unwrap();
                let pods = kept["pods"].as_array().cloned().unwrap_or_default();
                !pods.is_empty() && pods.iter().all(|p| p["gone"] == true)
            };
            let kept = tokio::time::timeout(LONG, async {
                loop {
                    if let Some((cm, text)) = kept_text(&c).await
                        && all_gone(&text)
                        && text.contains("class_not_found")
                    {
                        return cm;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
            .expect("the gone old pods' counts kept in the ConfigMap");
            // Owned by the Deployment: deleted with it.
            let owner = &kept.owner_references()[0];
            assert_eq!(
                (owner.kind.as_str(), Some(&owner.uid)),
                ("Deployment", d.metadata.uid.as_ref())
            );
            first.stop().await;
            c.clock.now()
        } => at,
    };
    let second = c.daemon_with(cfg, c.source_with_logs()).await;
    let d = tokio::select! {
        _ = printing(&c, true) => unreachable!(),
        d = c.wait("shop", "the release to pass", LONG, |d| {
            stage(d).as_deref() == Some("passed")
        }) => d,
    };
    second.stop().await;
    assert_eq!((version(&d), rollbacks(&d)), ("v2".to_string(), 0));
    let (records, _) = rollout_guard::records::read(&c.records_path()).unwrap();
    let after: Vec<_> = records
        .iter()
        .filter(|r| r.at > restarted_at)
        .flat_map(|r| &r.verdicts)
        .filter(|v| v.rule == "php-log-class-errors")
        .collect();
    assert!(!after.is_empty(), "no logs verdict after the restart");
    let unlike: Vec<_> = after
        .iter()
        .filter(|v| {
            v.outcome.to_string() != "pass" || !v.reason.contains("gone since, their counts kept")
        })
        .map(|v| (v.outcome.to_string(), &v.reason))
        .collect();
    assert!(unlike.is_empty(), "after the restart: {unlike:#?}");
    // The analysis over, nothing is kept any more.
    assert!(kept_text(&c).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_old_and_new_pods_print_alike_is_no_reason_to_act() {
    let c = Cluster::fake("logs-shared", Duration::from_millis(1000)).await;
    c.deploy("shop", 4, &ann(&guarded("guard"))).await;
    let daemon = c.daemon_with(logs_config(&c), c.source_with_logs()).await;
    c.release("shop", "v2", None).await;
    let d = tokio::select! {
        _ = printing(&c, true) => unreachable!(),
        d = c.wait("shop", "the release to roll out and pass", LONG, |d| {
            rolled_out(d) && stage(d).as_deref() == Some("passed")
        }) => d,
    };
    assert_eq!(version(&d), "v2");
    assert_eq!(rollbacks(&d), 0);
    // The logs were read and judged, not merely missing.
    let (records, _) = rollout_guard::records::read(&c.records_path()).unwrap();
    let passes = records
        .iter()
        .flat_map(|r| &r.verdicts)
        .filter(|v| v.rule == "php-log-class-errors" && v.outcome.to_string() == "pass")
        .count();
    assert!(
        passes > 0,
        "no passing log verdict in {} records",
        records.len()
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_printing_megabytes_is_read_within_its_bounds() {
    let (c, api, pods, rs) = shop_pods("logs-noise", 2, &[(annotations::ENABLED, "true")]).await;
    let fake = c.fake.as_ref().unwrap();
    let noisy = pods[0].name_any();
    let start = jiff::Timestamp::now();
    // 8 MB of noise, 1,000 different missing classes among it, then one known error.
    let noise = format!("{} {}", "x".repeat(990), "noise");
    for i in 0..8_000 {
        let t = start + jiff::SignedDuration::from_millis(i);
        fake.append_log(&c.namespace, &noisy, "php", t, &noise)
            .unwrap();
        if i % 8 == 0 {
            let line = format!(
                "PHP Fatal error:  Uncaught Error: Class \"App\\Gen{}\" not found in /app/x.php:1",
                i / 8
            );
            fake.append_log(&c.namespace, &noisy, "php", t, &line)
                .unwrap();
        }
    }
    let limits = LogLimits {
        limit_bytes: 256 * 1024,
        max_signatures_per_pod: 50,
        ..LogLimits::default()
    };
    let logs = KubeLogs::new(c.client.clone(), limits.clone());
    fake.reset_requests();
    let q = query(&c, rs.clone(), Some("php"), start - MINUTE, start + MINUTE);
    let first = logs.logs(&q).await.unwrap();
    assert!(first.truncated, "the read was cut at limitBytes");
    let stats = fake.requests();
    let log_reads = stats.counter("get", "pods/log");
    assert_eq!(log_reads.requests, 2, "one request per pod: {stats:?}");
    assert!(
        log_reads.bytes_sent <= 2 * limits.limit_bytes as u64,
        "{} bytes read for a {} byte limit",
        log_reads.bytes_sent,
        limits.limit_bytes
    );
    let sigs = first.errors.len();
    assert!(
        sigs > 0 && sigs <= limits.max_signatures_per_pod,
        "{sigs} signatures kept"
    );
    // Reading resumes where it stopped: the next evaluation reads on, never from the start.
    let second = logs.logs(&q).await.unwrap();
    let stats = fake.requests();
    assert_eq!(stats.counter("get", "pods/log").requests, 4);
    assert!(second.errors.len() <= limits.max_signatures_per_pod);
    assert!(count(&second) >= count(&first));
    assert_eq!(logs.pods_tracked(), 2);
    // Once the reads have caught up with the log, a window clear of the minutes whose errors
    // were not all counted is complete again.
    let later = query(
        &c,
        rs.clone(),
        Some("php"),
        start + 3 * MINUTE,
        start + 4 * MINUTE,
    );
    let mut caught_up = None;
    for _ in 0..64 {
        let counts = logs.logs(&later).await.unwrap();
        if !counts.truncated {
            caught_up = Some(counts);
            break;
        }
    }
    let caught_up = caught_up.expect("the reads catch up with 8 MB in 64 reads");
    assert_eq!(count(&caught_up), 0, "no errors in that window");
    assert!(
        logs.logs(&q).await.unwrap().truncated,
        "the first minute lost errors"
    );
    // A pod that is gone is not read again; what was counted of it is kept (bounded).
    api.delete(&noisy, &Default::default()).await.unwrap();
    let third = logs.logs(&q).await.unwrap();
    assert!(third.pods_read <= 2);
    // Tracked: the pods read now (the other one, and the replacement if it has started by
    // then, which depends on the machine's speed) and the departed one, nothing more.
    assert!(
        logs.pods_tracked() <= third.pods_read as usize + 1,
        "{} tracked, {} read",
        logs.pods_tracked(),
        third.pods_read
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_s_last_words_are_read_from_its_previous_log() {
    let c = Cluster::fake("logs-restart", Duration::from_millis(100)).await;
    c.deploy("shop", 1, &[]).await;
    let fake = c.fake.as_ref().unwrap();
    let api: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    let pod = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let (name, rs) = (pod.name_any(), pod.owner_references()[0].name.clone());
    let start = jiff::Timestamp::now();
    let at = |s: i64| start + jiff::SignedDuration::from_secs(s);
    let fatal = MISSING_CLASS[0];
    for s in 0..4 {
        fake.append_log(&c.namespace, &name, "php", at(s), fatal)
            .unwrap();
    }
    let logs = KubeLogs::new(c.client.clone(), LogLimits::default());
    let q = query(&c, rs, None, at(-60), at(120));
    assert_eq!(count(&logs.logs(&q).await.unwrap()), 4);
    // Two more, then the container dies (out of memory, say) and a new one prints one.
    for s in 10..12 {
        fake.append_log(&c.namespace, &name, "php", at(s), fatal)
            .unwrap();
    }
    fake.restart_container(&c.namespace, &name, "php").unwrap();
    fake.append_log(&c.namespace, &name, "php", at(30), fatal)
        .unwrap();
    let after = logs.logs(&q).await.unwrap();
    assert_eq!(
        count(&after),
        7,
        "4 read before, 2 from the previous container, 1 new"
    );
    // Nothing is counted twice on the next read.
    assert_eq!(count(&logs.logs(&q).await.unwrap()), 7);
}

/// A mesh injects its proxy as the pod's first container (Istio does so when the application
/// must wait for it): a `logs` rule that names no container reads the application's log, not
/// the proxy's; the pod's `kubectl.kubernetes.io/default-container` is followed where set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_named_container_the_mesh_proxy_is_skipped_and_the_pods_default_followed() {
    use rollout_guard::adapters::podlogs::DEFAULT_CONTAINER_ANNOTATION;
    use rollout_guard::sim::simulate::service;

    let c = Cluster::fake("logs-sidecar", Duration::from_millis(100)).await;
    let mut d = service::manifest(&c.namespace, "shop", 1, &[]);
    let spec = d.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    let mut proxy = spec.containers[0].clone();
    proxy.name = "istio-proxy".into();
    let mut worker = spec.containers[0].clone();
    worker.name = "worker".into();
    spec.containers.insert(0, proxy);
    spec.containers.push(worker);
    c.deployments()
        .create(&kube::api::PostParams::default(), &d)
        .await
        .unwrap();
    c.wait("shop", "the first rollout to complete", LONG, rolled_out)
        .await;
    let fake = c.fake.as_ref().unwrap();
    let api: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    let pod = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let (name, rs) = (pod.name_any(), pod.owner_references()[0].name.clone());
    let start = jiff::Timestamp::now();
    let at = |s: i64| start + jiff::SignedDuration::from_secs(s);
    // The proxy prints one PHP-looking line (it relays what it sees), the application two, the
    // worker three.
    let lines = [("istio-proxy", 1), ("php", 2), ("worker", 3)];
    for (container, n) in lines {
        for s in 0..n {
            fake.append_log(&c.namespace, &name, container, at(s), MISSING_CLASS[0])
                .unwrap();
        }
    }
    let q = query(&c, rs.clone(), None, at(-60), at(120));
    let read = KubeLogs::new(c.client.clone(), LogLimits::default());
    assert_eq!(
        count(&read.logs(&q).await.unwrap()),
        2,
        "the php container's"
    );

    // The pod names its main container: that one is read.
    let mut annotated = pod.clone();
    annotated
        .annotations_mut()
        .insert(DEFAULT_CONTAINER_ANNOTATION.into(), "worker".into());
    api.replace(&name, &kube::api::PostParams::default(), &annotated)
        .await
        .unwrap();
    let read = KubeLogs::new(c.client.clone(), LogLimits::default());
    assert_eq!(count(&read.logs(&q).await.unwrap()), 3, "the worker's");
}

/// Two `logs` rules ask for the same pods in the same evaluation, at the same moment: each
/// line must still be counted once (both reads used to start from the same cursor, and both
/// added what they read). What is kept of the pods goes once no window reaches them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_the_same_pod_at_once_count_each_line_once() {
    let (c, _, pods, rs) = shop_pods("logs-twice", 2, &[]).await;
    let fake = c.fake.as_ref().unwrap();
    let start = jiff::Timestamp::now();
    for p in &pods {
        for s in 0..5 {
            let t = start + jiff::SignedDuration::from_secs(s);
            fake.append_log(&c.namespace, &p.name_any(), "php", t, MISSING_CLASS[0])
                .unwrap();
        }
    }
    let logs = KubeLogs::new(c.client.clone(), LogLimits::default());
    let q = query(&c, rs, Some("php"), start - MINUTE, start + MINUTE);
    let (a, b) = futures::join!(logs.logs(&q), logs.logs(&q));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.pods_read, b.pods_read), (2, 2));
    assert_eq!(
        (count(&a), count(&b)),
        (10, 10),
        "5 errors in each of 2 pods"
    );
    assert_eq!(count(&logs.logs(&q).await.unwrap()), 10);
    assert_eq!(logs.pods_tracked(), 2);
    // Once no window can reach back to them (the ReplicaSet is no longer analysed), what is
    // kept of these pods is dropped, whatever else is read.
    let later = LogQuery {
        replicaset: "other-7d9f8c6b5".into(),
        start: q.end + jiff::SignedDuration::from_hours(30),
        end: q.end + jiff::SignedDuration::from_hours(31),
        ..q.clone()
    };
    logs.logs(&later).await.unwrap();
    assert_eq!(logs.pods_tracked(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_pods_errors_still_count_until_no_window_reaches_them() {
    let (c, api, pods, rs) = shop_pods("logs-departed", 2, &[(annotations::ENABLED, "true")]).await;
    let fake = c.fake.as_ref().unwrap();
    let start = jiff::Timestamp::now();
    for p in &pods {
        for i in 0..3 {
            let t = start + jiff::SignedDuration::from_millis(i);
            fake.append_log(&c.namespace, &p.name_any(), "php", t, SHARED_FATAL[0])
                .unwrap();
        }
    }
    let logs = KubeLogs::new(c.client.clone(), LogLimits::default());
    let old = |from, to| LogQuery {
        new: false,
        ..query(&c, rs.clone(), Some("php"), from, to)
    };
    let q = old(start - MINUTE, start + MINUTE);
    let read = logs.logs(&q).await.unwrap();
    assert_eq!(
        (read.pods_read, read.pods_departed, count(&read)),
        (2, 0, 6)
    );

    // The rollout finished: the old ReplicaSet is scaled to zero and its pods are gone.
    let zero = serde_json::json!({ "spec": { "replicas": 0 } });
    c.deployments()
        .patch(
            "shop",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&zero),
        )
        .await
        .unwrap();
    c.wait("shop", "the pods to go", LONG, |d| {
        d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
    })
    .await;
    let deadline = tokio::time::Instant::now() + LONG;
    while !api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pods never went"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = logs.logs(&q).await.unwrap();
    assert_eq!(
        (kept.pods_read, kept.pods_departed, count(&kept)),
        (0, 2, 6),
        "what was counted of the old pods still counts: {kept:?}"
    );
    assert!(kept.pod_minutes > 0.0, "{kept:?}");

    // A window that no longer reaches them: forgotten, memory freed.
    let later = start + jiff::SignedDuration::from_hours(30);
    let gone = logs.logs(&old(later - MINUTE, later)).await.unwrap();
    assert_eq!((gone.pods_departed, count(&gone)), (0, 0));
    assert_eq!(logs.pods_tracked(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_rights_to_list_pods_the_error_says_which_value_grants_them() {
    let (c, _, _, rs) = shop_pods("logs-forbidden", 1, &[]).await;
    let fake = c.fake.as_ref().unwrap();
    fake.inject_failures(&format!("/api/v1/namespaces/{}/pods", c.namespace), 403, 1);
    let logs = KubeLogs::new(c.client.clone(), LogLimits::default());
    let now = jiff::Timestamp::now();
    let err = logs
        .logs(&query(&c, rs, Some("php"), now - MINUTE, now))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rbac.podLogs: true"), "{err}");
}
