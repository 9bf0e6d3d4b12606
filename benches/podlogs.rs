//! What one evaluation of a `logs` rule costs the Kubernetes API for a 100-pod Deployment in
//! the middle of a rollout (10 new pods, 100 old): requests and bytes, on the first evaluation
//! (the whole window is read) and on the next ones (only what was printed since).
//!
//! Run: `cargo bench --bench podlogs`. The fake API server serves the logs; its request
//! statistics are the figures. Every pod prints a realistic PHP-FPM stream: a line every two
//! seconds, 1 in 20 a PHP error (the new pods also a missing class).

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rollout_guard::adapters::podlogs::{KubeLogs, LogLimits};
use rollout_guard::analysis::source::{KeptLogs, LogQuery, LogSource};
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeOptions, NEVER_READY_ANNOTATION};
use serde_json::json;

const NS: &str = "bench";
const REPLICAS: i32 = 100;
const SURGE: i32 = 10;
/// Seconds of log each pod has printed before the first evaluation.
const HISTORY: i64 = 600;
/// Seconds between evaluations.
const INTERVAL: i64 = 30;

fn line(i: i64, faulty: bool) -> String {
    if faulty && i % 10 == 0 {
        return r#"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4517 said into stderr: "NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class "App\Billing\LegacyTaxCalculator" not found in /var/www/html/index.php:7""#.into();
    }
    if i % 20 == 0 {
        return r#"[25-Nov-2026 16:00:05] WARNING: [pool www] child 4518 said into stderr: "NOTICE: PHP message: PHP Warning:  Undefined variable $total in /var/www/html/src/Cart.php on line 12""#.into();
    }
    format!(
        r#"10.0.{}.{} - - [25/Nov/2026:16:00:05 +0000] "GET /cart/{i} HTTP/1.1" 200 5123 "-" "Mozilla/5.0""#,
        i % 250,
        i % 200
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fake = FakeApiServer::start(FakeOptions {
        ready_after: Duration::from_millis(50),
        ..FakeOptions::fast()
    })
    .await
    .expect("fake API server");
    let client = fake.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "shop", "namespace": NS},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "shop"}},
            "strategy": {"rollingUpdate": {"maxSurge": SURGE, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "php", "image": "php:8.2-fpm"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    wait(&client, |pods| {
        pods.len() == REPLICAS as usize && ready(pods) == REPLICAS as usize
    })
    .await;
    // The release: its pods never become ready, so the rollout holds at 10 new + 100 old.
    let release = json!({"spec": {"template": {"metadata": {"annotations": {NEVER_READY_ANNOTATION: "true"}}}}});
    deployments
        .patch("shop", &PatchParams::default(), &Patch::Strategic(release))
        .await
        .unwrap();
    wait(&client, |pods| pods.len() == (REPLICAS + SURGE) as usize).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let all = pods.list(&ListParams::default()).await.unwrap().items;
    let (new_rs, old_rs) = replicasets(&all);
    let now = Timestamp::now();
    let t0 = now - SignedDuration::from_secs(HISTORY);
    let started = Instant::now();
    let print = |from: i64, to: i64| -> u64 {
        let mut printed = 0;
        for p in &all {
            let faulty = p.annotations().contains_key(NEVER_READY_ANNOTATION)
                || p.owner_references()[0].name == new_rs;
            for s in (from..to).step_by(2) {
                let l = line(s, faulty);
                printed += l.len() as u64 + 1;
                fake.append_log(
                    NS,
                    &p.name_any(),
                    "php",
                    t0 + SignedDuration::from_secs(s),
                    &l,
                )
                .unwrap();
            }
        }
        printed
    };
    let printed = print(0, HISTORY);
    eprintln!(
        "{} pods printed {:.1} MB of log in {:.1}s",
        all.len(),
        printed as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let logs = KubeLogs::new(client.clone(), LogLimits::default());
    let window = SignedDuration::from_mins(10);
    println!(
        "| evaluation | API requests | of which pods/log | bytes received from the API | new pods read | old pods read | time |"
    );
    println!("|---|---|---|---|---|---|---|");
    for eval in 0..3 {
        let at = now + SignedDuration::from_secs(eval * INTERVAL);
        if eval > 0 {
            print(HISTORY + (eval - 1) * INTERVAL, HISTORY + eval * INTERVAL);
        }
        fake.reset_requests();
        let started = Instant::now();
        let q = |rs: &str, new| LogQuery {
            namespace: NS.into(),
            replicaset: rs.into(),
            container: Some("php".into()),
            new,
            start: at - window,
            end: at,
        };
        let (qn, qo) = (q(&new_rs, true), q(&old_rs, false));
        let (n, o) = futures::join!(logs.logs(&qn), logs.logs(&qo));
        let (n, o) = (n.unwrap(), o.unwrap());
        let took = started.elapsed();
        let stats = fake.requests();
        let log_reads = stats.counter("get", "pods/log");
        let found: u64 = n.errors.iter().map(|e| e.count).sum();
        assert!(found > 0, "the new pods' errors were found");
        println!(
            "| {} | {} | {} | {:.0} kB | {}/{} | {}/{} | {:.0} ms |",
            if eval == 0 {
                "first (whole window)".to_string()
            } else {
                format!("next ({INTERVAL}s later)")
            },
            stats.total.requests,
            log_reads.requests,
            stats.total.bytes_sent as f64 / 1e3,
            n.pods_read,
            n.pods_total,
            o.pods_read,
            o.pods_total,
            took.as_secs_f64() * 1e3
        );
    }
    // What a restarted controller is given back of the old pods read (the ConfigMap's text).
    let kept = logs
        .keep(NS, std::slice::from_ref(&old_rs))
        .unwrap_or_default();
    println!(
        "\nKept for a restart (the ConfigMap `rollout-guard-logs-<deployment>`): {:.1} kB for the old pods read",
        kept.len() as f64 / 1e3
    );
    fake.shutdown().await;
}

fn ready(pods: &[Pod]) -> usize {
    pods.iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

async fn wait(client: &kube::Client, done: impl Fn(&[Pod]) -> bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for _ in 0..600 {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        if done(&list) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fake cluster did not reach the state in time");
}

/// The new and the old ReplicaSet's names, from the pods' owners.
fn replicasets(pods: &[Pod]) -> (String, String) {
    let owner = |p: &Pod| p.owner_references()[0].name.clone();
    let new = pods
        .iter()
        .find(|p| p.annotations().contains_key(NEVER_READY_ANNOTATION))
        .map(owner)
        .expect("new pods");
    let old = pods
        .iter()
        .map(owner)
        .find(|o| *o != new)
        .expect("old pods");
    (new, old)
}
