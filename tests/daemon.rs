//! The daemon as a process and as an operator meets it: a broken configuration is refused at
//! start with the reason; `run` serves /healthz, /readyz and /metrics, takes the leader Lease,
//! and stops cleanly on SIGTERM, releasing it; a broken rule edit keeps the last good rules.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeOptions};
use support::cluster::{Cluster, metric};

/// Runs `run --config <config>`, which must be refused with exit code 2; returns stderr.
fn refused(config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_broken_configuration_is_refused_at_start_with_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "prometheus: {url: 'http://p:9090'}\ndefaults: {mode: canary, interval: 30s}\nserver: {listen: nowhere}\n",
    )
    .unwrap();
    let err = refused(&cfg);
    assert!(err.contains("canary"), "{err}");
    let cfg2 = dir.path().join("config2.yaml");
    std::fs::write(
        &cfg2,
        "prometheus: {url: 'http://p:9090'}\nserver: {listen: nowhere}\n",
    )
    .unwrap();
    let err = refused(&cfg2);
    assert!(
        err.contains("server.listen") && err.contains("nowhere"),
        "{err}"
    );
    let err = refused(std::path::Path::new("/nonexistent/config.yaml"));
    assert!(err.contains("/nonexistent/config.yaml"), "{err}");
}

#[test]
fn broken_rules_are_refused_before_any_cluster_is_tried() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "version: 1\nrules:\n  - name: x\n    action: explode\n",
    )
    .unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus: {{url: 'http://p:9090'}}\nrules: [{}]\n",
            rules.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid rules") && err.contains("explode"),
        "{err}"
    );
    assert!(!err.contains("Kubernetes"), "{err}");
}

/// A fake API server, its kubeconfig, and a daemon config (Prometheus unreachable, metrics on a
/// free port) with `extra` YAML lines appended.
struct Setup {
    fake: FakeApiServer,
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
    config: std::path::PathBuf,
    port: u16,
}

impl Setup {
    async fn new(extra: &str) -> Setup {
        let fake = FakeApiServer::start(FakeOptions::fast()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig).unwrap();
        let port = support::prometheus::free_port();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "prometheus: {{url: 'http://127.0.0.1:9'}}\nserver: {{listen: '127.0.0.1:{port}'}}\n{extra}"
            ),
        )
        .unwrap();
        Setup {
            fake,
            dir,
            kubeconfig,
            config,
            port,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_the_api_server_refuses_stops_the_start() {
    let s = Setup::new("selector: 'tier in (web'\n").await;
    let (cfg, kubeconfig) = (s.config.clone(), s.kubeconfig.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("selector \"tier in (web\" refused by the API server"),
        "{stderr}"
    );
}

/// Issue 16: `run --kubeconfig FILE` reaches the cluster that file names, whatever
/// `$KUBECONFIG` says; a `--context` the file does not have is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reaches_the_cluster_its_kubeconfig_flag_names() {
    let s = Setup::new("selector: 'tier in (web'\n").await;
    let (cfg, kubeconfig, dir) = (
        s.config.clone(),
        s.kubeconfig.clone(),
        s.dir.path().to_path_buf(),
    );
    let run = move |extra: &[&str]| {
        let mut args = vec!["run", "--config", cfg.to_str().unwrap()];
        args.extend(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
            .args(&args)
            .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let path = kubeconfig.to_str().unwrap().to_string();
    let (through_flag, no_context) = tokio::task::spawn_blocking(move || {
        (
            run(&["--kubeconfig", &path]),
            run(&["--kubeconfig", &path, "--context", "no-such-context"]),
        )
    })
    .await
    .unwrap();
    // Only a server that was reached can refuse the selector.
    assert!(
        through_flag
            .1
            .contains("selector \"tier in (web\" refused by the API server"),
        "{through_flag:?}"
    );
    assert_eq!(no_context.0, Some(2), "{no_context:?}");
    assert!(no_context.1.contains("no-such-context"), "{no_context:?}");
}

/// A child process killed if the test fails before it stops it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_health_leads_and_stops_cleanly_on_sigterm() {
    let s = Setup::new(
        "leader_election: {namespace: ops, identity: replica-1, lease_duration: 5s}\nlog: {format: json}\n",
    )
    .await;
    let (fake, dir, kubeconfig, cfg, port) = (&s.fake, &s.dir, &s.kubeconfig, &s.config, s.port);
    // Logs to a file: a pipe nobody reads would fill and block the daemon.
    let log_path = dir.path().join("stderr.log");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    eventually("/healthz", async || {
        get(&format!("{base}/healthz"))
            .await
            .is_some_and(|(s, _)| s == 200)
    })
    .await;
    for _ in 0..300 {
        if get(&format!("{base}/readyz"))
            .await
            .is_some_and(|(s, _)| s == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = get(&format!("{base}/readyz")).await;
    assert_eq!(
        ready.as_ref().map(|r| r.0),
        Some(200),
        "{ready:?}\n{}",
        logs()
    );
    eventually("leadership", async || {
        get(&format!("{base}/metrics"))
            .await
            .is_some_and(|(_, text)| metric(&text, "rollout_guard_leader") == 1.0)
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(fake.client(), "ops");
    let held = leases.get("rollout-guard").await.unwrap();
    assert_eq!(
        held.spec.unwrap().holder_identity.as_deref(),
        Some("replica-1")
    );

    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = logs();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    // JSON logs, one object a line.
    let first = stderr.lines().next().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    // The Lease is free for the next replica at once.
    let after = leases.get("rollout-guard").await.unwrap();
    assert_eq!(after.spec.and_then(|s| s.holder_identity), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_edit_keeps_the_last_good_rules() {
    let c = Cluster::fake("reload", Duration::from_millis(100)).await;
    let rules = c.dir.path().join("rules.yaml");
    let default =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
            .unwrap();
    std::fs::write(&rules, &default).unwrap();
    let mut cfg = c.config();
    cfg.rules = vec![rules.clone()];
    let daemon = c.daemon(cfg).await;
    let reloads = async |result: &str| {
        metric(
            &daemon.metrics().await,
            &format!(r#"rollout_guard_rule_reloads_total{{result="{result}"}}"#),
        )
    };
    // A typo: an unknown key. The daemon keeps the rules it had.
    let broken = default.replacen("consecutive:", "consecutiv:", 1);
    std::fs::File::create(&rules)
        .unwrap()
        .write_all(broken.as_bytes())
        .unwrap();
    eventually("the broken edit to be noticed", async || {
        reloads("kept_last_good").await == 1.0
    })
    .await;
    assert_eq!(reloads("ok").await, 0.0);
    // Fixed: reloaded.
    std::fs::write(
        &rules,
        default.replace("class-loading-errors", "class-loading"),
    )
    .unwrap();
    eventually("the fixed rules to load", async || {
        reloads("ok").await == 1.0
    })
    .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_the_watches_have_synced() {
    let c = Cluster::fake("ready", Duration::from_millis(100)).await;
    let cfg = c.config();
    let daemon = c.daemon(cfg).await;
    let health = daemon.running.health.clone();
    eventually("readiness", async || health.is_ready()).await;
    daemon.stop().await;
}
