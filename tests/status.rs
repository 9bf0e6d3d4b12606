//! End-to-end: `rollout-guard status`, the release binary as a CI pipeline runs it, against the
//! fake API server (or a real cluster with `ROLLOUT_GUARD_TEST_KUBECONFIG`) while the real `run`
//! loop guards the Deployment on a clock 60× faster than the wall clock.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rollout_guard::policy::annotations;
use serde_json::Value;
use support::cluster::{Cluster, ann, guarded};

/// Runs `rollout-guard status` with these arguments against the cluster's kubeconfig, in a
/// thread of its own (it blocks until it ends, with `--wait` for as long as the analysis lasts).
async fn status(kubeconfig: &Path, ns: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollout-guard"));
    cmd.arg("status")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns])
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("running rollout-guard status"))
        .await
        .unwrap()
}

/// `status -d shop --wait -o json`, as a pipeline runs it after `kubectl rollout status`.
async fn waited(kubeconfig: &Path, ns: &str) -> (Output, Value) {
    let args = ["-d", "shop", "--wait", "--timeout", "5m", "-o", "json"];
    let out = status(kubeconfig, ns, &args).await;
    let v = json(&out);
    (out, v)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_learns_that_its_release_was_rolled_back_or_passed() {
    let c = Cluster::start("status", Duration::from_millis(500)).await;
    // Without cpu-per-request: against the old version's history it needs an hour of it,
    // which a cluster made for the test has not got (the healthy release would end
    // `inconclusive`, exit 6, which `each_stage_has_its_state_and_exit_code` covers).
    let mut shop = guarded("guard");
    shop.push((
        annotations::RULES,
        "class-loading-errors, php-error-rate, cpu-saturation, cpu-throttling".into(),
    ));
    c.deploy("shop", 3, &ann(&shop)).await;
    c.deploy("other", 1, &[]).await;
    let kubeconfig = c.kubeconfig();
    let ns = c.namespace.clone();
    let daemon = c.daemon(c.config()).await;

    // Not opted in: said at once, whatever --wait.
    let out = status(&kubeconfig, &ns, &["-d", "other", "--wait", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(7), "{}", json(&out));
    assert_eq!(json(&out)["state"], "not_guarded");
    // No such Deployment: a usage error, said on stderr.
    let out = status(&kubeconfig, &ns, &["-d", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Deployment nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A bad release: `status --wait`, started as the rollout begins, ends on the rollback.
    c.release("shop", "v2", Some("class-errors")).await;
    let (out, v) = waited(&kubeconfig, &ns).await;
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["state"], "rolled_back");
    assert_eq!(v["rule"], "class-loading-errors");
    assert_eq!(v["revision"], 2);
    let reasons: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"RolledBack"), "{reasons:?}");
    // The same in text, for a person reading the pipeline's log.
    let out = status(&kubeconfig, &ns, &["-d", "shop"]).await;
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        line.starts_with(&format!("{ns}/shop revision 2 (shop-"))
            && line.contains("rolled back [class-loading-errors]"),
        "{line}"
    );

    // A healthy release: analysing while it rolls and bakes, then passed.
    c.release("shop", "v3", None).await;
    let out = status(&kubeconfig, &ns, &["-d", "shop", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", json(&out));
    assert_eq!(json(&out)["state"], "analysing");
    let (out, v) = waited(&kubeconfig, &ns).await;
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["state"], "passed");
    // What the error rate was held to, with its numbers, for the pipeline's log.
    let errors = v["compared_with"]["php-error-rate"].as_str().unwrap_or("");
    assert!(
        errors.starts_with("the old ") && errors.contains("errors"),
        "{v}"
    );
    // The rolled-back revision, asked by number, is still told.
    let out = status(&kubeconfig, &ns, &["-d", "shop", "--revision", "2"]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A state annotation someone broke: an error, not a guess.
    let broken =
        serde_json::json!({"metadata": {"annotations": {annotations::STATE: "{not json"}}});
    daemon.stop().await;
    c.deployments()
        .patch(
            "shop",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(broken),
        )
        .await
        .unwrap();
    let out = status(&kubeconfig, &ns, &["-d", "shop"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be read"));
}

/// Issue 16: `check` tells, rule by rule, what will never judge: here a real Prometheus that
/// scrapes nothing of the service, so every metric rule stays inconclusive, and the `logs`
/// rules are said not to be checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_which_rules_will_stay_inconclusive() {
    let c = Cluster::start("check", Duration::from_millis(500)).await;
    c.deploy("shop", 2, &ann(&guarded("guard"))).await;
    let prometheus = support::prometheus::Prometheus::start_empty().expect("prometheus");
    let kubeconfig = c.kubeconfig();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let check = |deployment: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollout-guard"));
        cmd.args(["check", "-d", deployment, "-n", &c.namespace])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--prometheus-url", &prometheus.url(), "--rules", rules]);
        cmd
    };
    let out = tokio::task::spawn_blocking({
        let mut cmd = check("shop");
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "php-error-rate: no series for any pod of shop-",
        "cpu-saturation: no series for any pod of shop-",
        "php-log-class-errors: reads pod logs, not metrics; not checked here",
        "will stay inconclusive",
    ] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    // A Deployment that is not there is a usage error, not a verdict.
    let out = tokio::task::spawn_blocking({
        let mut cmd = check("nope");
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no Deployment nope"));
}
