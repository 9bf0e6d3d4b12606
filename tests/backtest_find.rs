//! End-to-end (issue 16): `rollout-guard backtest -n NS -d NAME`, the debug binary, finds the
//! rollout to replay in the fake API server (the Deployment controller numbering revisions and
//! re-using a ReplicaSet on rollback as the real one does) and replays it against a real
//! Prometheus, or fails on a dead one after saying what it chose. When the old ReplicaSet is
//! gone from the API, it finds it in kube-state-metrics series backfilled into Prometheus.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DeleteParams};
use serde_json::Value;
use support::cluster::{Cluster, rolled_out, version};
use support::prometheus::{OpenMetrics, Prometheus, dead_url};

/// Runs `backtest --kubeconfig K -n NS -d shop` with these arguments, off the runtime that
/// serves the fake API.
async fn backtest(kubeconfig: &Path, ns: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollout-guard"));
    cmd.arg("backtest")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns, "-d", "shop"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ROLLOUT_GUARD_PROMETHEUS_URL");
    tokio::task::spawn_blocking(move || cmd.output().expect("running rollout-guard backtest"))
        .await
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and that stderr says each of `wants`.
#[track_caller]
fn says(out: &Output, code: i32, wants: &[&str]) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr:\n{err}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for want in wants {
        assert!(err.contains(want), "{want:?} not in stderr:\n{err}");
    }
}

/// A ReplicaSet as the test knows it: name, creation time, and the VERSION its pods run.
struct Rs {
    name: String,
    created: Timestamp,
    revision: String,
}

/// The ReplicaSet of `shop` whose template runs `v`.
async fn rs_of(c: &Cluster, v: &str) -> Rs {
    let all = c.replicasets("shop").await;
    let rs = all
        .iter()
        .find(|rs| {
            let env = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.env.as_ref());
            env.is_some_and(|e| e.iter().any(|e| e.value.as_deref() == Some(v)))
        })
        .unwrap_or_else(|| panic!("no ReplicaSet of shop runs {v}"));
    Rs {
        name: rs.metadata.name.clone().unwrap(),
        created: rs.metadata.creation_timestamp.as_ref().unwrap().0,
        revision: rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .cloned()
            .unwrap_or_default(),
    }
}

async fn release(c: &Cluster, v: &str) {
    c.release("shop", v, None).await;
    c.wait("shop", v, Duration::from_secs(60), |d| {
        rolled_out(d) && version(d) == v
    })
    .await;
}

/// The first time of a JSON report's timeline, and the PromQL of its queries on `side`.
fn first_step_and_queries(out: &Output, side: &str) -> (Timestamp, Vec<String>) {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    });
    let timeline = v["timeline"].as_array().expect("a timeline");
    let first = timeline[0]["at"].as_str().unwrap().parse().unwrap();
    let promql = timeline
        .iter()
        .flat_map(|s| s["verdicts"].as_array().into_iter().flatten())
        .flat_map(|v| v["queries"].as_array().into_iter().flatten())
        .filter(|q| q["side"] == side)
        .filter_map(|q| q["promql"].as_str().map(str::to_string))
        .collect();
    (first, promql)
}

/// Every query of the side names the ReplicaSet, and there are some.
#[track_caller]
fn all_name(promql: &[String], rs: &str) {
    assert!(!promql.is_empty(), "no queries");
    for q in promql {
        assert!(q.contains(&format!("{rs}-")), "{rs} not in {q}");
    }
}

const STEP: SignedDuration = SignedDuration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_latest_rollout_or_the_one_a_revision_introduced() {
    let c = Cluster::fake("backtest-find", Duration::from_millis(100)).await;
    c.deploy("shop", 2, &[]).await;
    release(&c, "v2").await;
    release(&c, "v3").await;
    // A rollback: the Deployment controller re-uses v1's ReplicaSet as revision 4.
    release(&c, "v1").await;
    let (a, b, cc) = (
        rs_of(&c, "v1").await,
        rs_of(&c, "v2").await,
        rs_of(&c, "v3").await,
    );
    assert_eq!(
        [a.revision.as_str(), &b.revision, &cc.revision],
        ["4", "2", "3"]
    );
    let kubeconfig = c.kubeconfig();
    let ns = c.namespace.clone();
    let dead = dead_url();

    // The latest rollout is the rollback, which the re-used ReplicaSet's age cannot date.
    let out = backtest(&kubeconfig, &ns, &["--prometheus-url", &dead]).await;
    says(
        &out,
        2,
        &[&format!(
            "revision 4 of {ns}/shop re-used ReplicaSet {} (created for revision 1: a rollback), \
             so its creation time does not say when that rollout began: give --from (the \
             rollback's time), or --revision 3 to replay the release it replaced",
            a.name
        )],
    );
    // With --from given, the rollback replaced v3; the dead Prometheus is said after the choice.
    let from = Timestamp::from_second(Timestamp::now().as_second() - 3 * 3600).unwrap();
    let to = from + SignedDuration::from_hours(1);
    let from_arg = from.to_string();
    let out = backtest(
        &kubeconfig,
        &ns,
        &["--prometheus-url", &dead, "--from", &from_arg],
    )
    .await;
    says(
        &out,
        2,
        &[
            &format!(
                "backtest: {ns}/shop revision 4: new ReplicaSet {} (re-used), old {} (revision 3)",
                a.name, cc.name
            ),
            &format!("from {from} (given) to {to} (an hour after --from)"),
            &format!("cannot query Prometheus at {dead}"),
        ],
    );

    // --revision 3 (v3) replaced revision 2 (v2), replayed against a real Prometheus.
    let prometheus = Prometheus::start_empty().expect("start Prometheus");
    let args = ["--prometheus-url", &prometheus.url(), "--revision", "3"];
    let out = backtest(&kubeconfig, &ns, &[&args[..], &["-o", "json"]].concat()).await;
    let start = cc.created - STEP;
    says(
        &out,
        0,
        &[
            &format!(
                "backtest: {ns}/shop revision 3: new ReplicaSet {} (created {}), old {} (revision 2)",
                cc.name, cc.created, b.name
            ),
            &format!(
                "from {start} (one --step before {} was created) to ",
                cc.name
            ),
            " (now)",
        ],
    );
    let (first, new_queries) = first_step_and_queries(&out, "new");
    assert_eq!(first, start);
    all_name(&new_queries, &cc.name);
    let (_, old_queries) = first_step_and_queries(&out, "old");
    all_name(&old_queries, &b.name);

    // Revision 2 replaced revision 1, which v1's ReplicaSet held before the rollback.
    let out = backtest(
        &kubeconfig,
        &ns,
        &["--prometheus-url", &dead, "--revision", "2"],
    )
    .await;
    says(
        &out,
        2,
        &[&format!(
            "revision 2: new ReplicaSet {} (created {}), old {} (revision 1)",
            b.name, b.created, a.name
        )],
    );
    // An old ReplicaSet given by hand wins over the one found.
    let out = backtest(
        &kubeconfig,
        &ns,
        &[
            "--prometheus-url",
            &dead,
            "--revision",
            "3",
            "--old-replicaset",
            &a.name,
        ],
    )
    .await;
    says(
        &out,
        2,
        &[&format!(
            "revision 3: new ReplicaSet {} (created {}), old {} (given)",
            cc.name, cc.created, a.name
        )],
    );
    // A revision that never was, and a Deployment that is not there.
    let out = backtest(
        &kubeconfig,
        &ns,
        &["--prometheus-url", &dead, "--revision", "9"],
    )
    .await;
    says(
        &out,
        2,
        &["no ReplicaSet of it holds revision 9 (revisions there: 1, 2, 3, 4)"],
    );
    assert!(out.stdout.is_empty());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollout-guard"));
    cmd.args([
        "backtest",
        "-n",
        &ns,
        "-d",
        "nope",
        "--prometheus-url",
        &dead,
    ])
    .arg("--kubeconfig")
    .arg(&kubeconfig);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    says(
        &out,
        2,
        &[&format!("there is no Deployment nope in namespace {ns}")],
    );
}

/// kube-state-metrics' view of `shop` around its rollout to `new` at `at`: `old` had two pods
/// until a minute after, then none; an older ReplicaSet of shop and another Deployment's had
/// pods or none throughout, and must not be taken for the old one.
fn kube_state_metrics(ns: &str, old: &str, new: &str, at: Timestamp) -> OpenMetrics {
    let mut om = OpenMetrics::new();
    let t0 = at.as_second() - 600;
    let end = Timestamp::now().as_second() + 60;
    for t in (t0..=end).step_by(30) {
        let mut rs = |name: &str, owner: &str, pods: f64| {
            let owner_labels = [
                ("namespace", ns),
                ("replicaset", name),
                ("owner_kind", "Deployment"),
                ("owner_name", owner),
                ("owner_is_controller", "true"),
            ];
            om.sample("kube_replicaset_owner", &owner_labels, t, 1.0);
            let labels = [("namespace", ns), ("replicaset", name)];
            om.sample("kube_replicaset_status_replicas", &labels, t, pods);
        };
        let rolled = t >= at.as_second() + 60;
        rs(old, "shop", if rolled { 0.0 } else { 2.0 });
        if t >= at.as_second() {
            rs(new, "shop", if rolled { 2.0 } else { 1.0 });
        }
        rs("shop-older", "shop", 0.0);
        rs("other-5f7c9", "other", 3.0);
    }
    om
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_replicaset_gone_from_the_api_is_found_in_kube_state_metrics() {
    let c = Cluster::fake("backtest-gone", Duration::from_millis(100)).await;
    c.deploy("shop", 2, &[]).await;
    release(&c, "v2").await;
    let (a, b) = (rs_of(&c, "v1").await, rs_of(&c, "v2").await);
    // As revisionHistoryLimit would.
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), &c.namespace);
    api.delete(&a.name, &DeleteParams::default()).await.unwrap();
    assert!(
        c.replicasets("shop")
            .await
            .iter()
            .all(|rs| rs.metadata.name.as_deref() != Some(&a.name))
    );
    let kubeconfig = c.kubeconfig();
    let ns = c.namespace.clone();
    let start = b.created - STEP;
    let gone = format!(
        "the ReplicaSet of revision 1, which revision 2 ({}) replaced, is gone from the API",
        b.name
    );

    // Prometheus down: the message says what is gone and which flag to give.
    let dead = dead_url();
    let out = backtest(&kubeconfig, &ns, &["--prometheus-url", &dead]).await;
    says(
        &out,
        2,
        &[
            &gone,
            "asking kube-state-metrics in Prometheus failed",
            "give --old-replicaset",
        ],
    );
    // A Prometheus without kube-state-metrics.
    let empty = Prometheus::start_empty().expect("start Prometheus");
    let out = backtest(&kubeconfig, &ns, &["--prometheus-url", &empty.url()]).await;
    says(
        &out,
        2,
        &[
            &gone,
            &format!(
                "kube-state-metrics in Prometheus shows no other ReplicaSet of it with pods at {start}"
            ),
        ],
    );
    drop(empty);

    // With kube-state-metrics: the ReplicaSet of shop that had pods one step before v2's.
    let prometheus = Prometheus::start(&kube_state_metrics(&ns, &a.name, &b.name, b.created))
        .expect("start Prometheus with kube-state-metrics series");
    let out = backtest(
        &kubeconfig,
        &ns,
        &["--prometheus-url", &prometheus.url(), "-o", "json"],
    )
    .await;
    says(
        &out,
        0,
        &[&format!(
            "revision 2: new ReplicaSet {} (created {}), old {} (revision 1: gone from the API, \
             found by kube-state-metrics with pods at {start})",
            b.name, b.created, a.name
        )],
    );
    let (first, old_queries) = first_step_and_queries(&out, "old");
    assert_eq!(first, start);
    all_name(&old_queries, &a.name);
}

/// Without cluster access, the message names the flags that replace it.
#[test]
fn without_a_cluster_the_error_names_the_flags_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-kubeconfig");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
            .args(["backtest", "-d", "shop", "--prometheus-url", &dead_url()])
            .arg("--kubeconfig")
            .arg(&missing)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let out = run(&["--from", "now-1h"]);
    says(
        &out,
        2,
        &[
            "cannot read Deployment shop from the cluster to find the rollout to replay; without cluster access give --namespace, --old-replicaset, --new-replicaset and --to",
        ],
    );
    let out = run(&["-n", "web", "--old-replicaset", "shop-a"]);
    says(
        &out,
        2,
        &[
            "cannot read web/shop from the cluster",
            "give --new-replicaset, --from and --to",
        ],
    );
    // All of them given: the cluster is not read, Prometheus is asked.
    let out = run(&[
        "-n",
        "web",
        "--old-replicaset",
        "shop-a",
        "--new-replicaset",
        "shop-b",
        "--from",
        "now-1h",
        "--to",
        "now",
    ]);
    says(&out, 2, &["cannot query Prometheus at"]);
    assert!(!stderr(&out).contains("cluster"), "{}", stderr(&out));
    // --revision with all of them has nothing to pick.
    let out = run(&[
        "-n",
        "web",
        "--old-replicaset",
        "shop-a",
        "--new-replicaset",
        "shop-b",
        "--from",
        "now-1h",
        "--to",
        "now",
        "--revision",
        "2",
    ]);
    says(&out, 2, &["--revision picks the rollout to find"]);
}

/// Without --to, the replay ends where the controller's analysis ended: at the first moment
/// kube-state-metrics counts no replica of the old ReplicaSet (the rollout's completion), plus
/// the bake (the Deployment's `rollout-guard.io/bake-time`, or `--bake`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_to_the_replay_ends_at_the_completion_plus_the_bake() {
    let c = Cluster::fake("backtest-bake", Duration::from_millis(100)).await;
    c.deploy("shop", 2, &[("rollout-guard.io/bake-time", "2m")])
        .await;
    release(&c, "v2").await;
    let (a, b) = (rs_of(&c, "v1").await, rs_of(&c, "v2").await);
    let kubeconfig = c.kubeconfig();
    let ns = c.namespace.clone();
    // A rollout three hours ago: the old ReplicaSet's last replica gone a minute after it began.
    let from = Timestamp::from_second(Timestamp::now().as_second() / 30 * 30 - 3 * 3600).unwrap();
    let completed = from + SignedDuration::from_mins(1);
    let prometheus = Prometheus::start(&kube_state_metrics(&ns, &a.name, &b.name, from))
        .expect("start Prometheus with kube-state-metrics series");
    let url = prometheus.url();
    let from_arg = from.to_string();
    let base = [
        "--prometheus-url",
        url.as_str(),
        "--from",
        &from_arg,
        "-o",
        "json",
    ];

    let out = backtest(&kubeconfig, &ns, &base).await;
    let end = completed + SignedDuration::from_mins(2);
    says(
        &out,
        0,
        &[&format!(
            "from {from} (given) to {end} (the rollout completed at {completed} by \
             kube-state-metrics, plus the bake of 2m)"
        )],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = json["timeline"].as_array().unwrap();
    let last: Timestamp = steps.last().unwrap()["at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Nothing judged (no PHP series), so no extension: the last evaluation is the end.
    assert_eq!(last, end);
    assert!(json.get("extension").is_none(), "{json}");
    // From the completion on, the old ReplicaSet is departed, as the controller moves it: an
    // absolute check no longer asks for the old pods' side.
    for step in steps {
        let at: Timestamp = step["at"].as_str().unwrap().parse().unwrap();
        let saturation = step["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["rule"] == "cpu-saturation")
            .expect("cpu-saturation judged");
        let asks_old = saturation["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["side"] == "old");
        assert_eq!(asks_old, at < completed, "at {at}: {saturation}");
    }

    // --bake wins over the annotation.
    let out = backtest(&kubeconfig, &ns, &[&base[..], &["--bake", "3m"]].concat()).await;
    let end = completed + SignedDuration::from_mins(3);
    says(
        &out,
        0,
        &[&format!("to {end} (the rollout completed at {completed}")],
    );

    // A Prometheus without kube-state-metrics: an hour, and the flag to give.
    let empty = Prometheus::start_empty().expect("start Prometheus");
    let empty_url = empty.url();
    let out = backtest(
        &kubeconfig,
        &ns,
        &["--prometheus-url", &empty_url, "--from", &from_arg],
    )
    .await;
    says(
        &out,
        0,
        &[
            &format!("does not show {} going from some replicas to 0", a.name),
            "give --to (the rollout's completion plus the bake)",
            &format!(
                "to {} (an hour after --from)",
                from + SignedDuration::from_hours(1)
            ),
        ],
    );
}
