//! A cluster for the controller's end-to-end tests: the in-process fake API server (or a real
//! cluster when `ROLLOUT_GUARD_TEST_KUBECONFIG` names a kubeconfig), Deployments of a
//! simulated PHP service, and the real `run` loop (`daemon::run_with`) driven on a clock 60×
//! faster than the wall clock, with a metric source computed from the pods that exist.
//!
//! "Releasing a bad version" is a template change that sets the pod annotation
//! `sim.rollout-guard.io/fault`; the live source makes such pods throw `Class not found` or
//! saturate their CPU. Tests that inject faults into the API itself (conflicts) or count its
//! requests use [`Cluster::fake`], which is always the fake.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use rollout_guard::adapters::podlogs::{KubeLogs, LogLimits};
use rollout_guard::analysis::source::{MetricSource, WithLogs};
use rollout_guard::app::config::Config;
use rollout_guard::app::daemon::{Options, Running, run_with};
use rollout_guard::policy::annotations;
use rollout_guard::policy::guard::Memory;
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeOptions};
use rollout_guard::sim::simulate::live::{DilatedClock, KubePods, LiveSource, Profile};
use rollout_guard::sim::simulate::service;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Logs to the test's output when `RUST_LOG` is set (`RUST_LOG=rollout_guard=info`).
fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Simulated seconds per wall-clock second.
pub const SPEED: f64 = 60.0;

/// The environment variable that points the tests at a real cluster.
pub const REAL_CLUSTER: &str = "ROLLOUT_GUARD_TEST_KUBECONFIG";

pub struct Cluster {
    pub client: Client,
    pub fake: Option<FakeApiServer>,
    pub namespace: String,
    pub clock: DilatedClock,
    pub dir: tempfile::TempDir,
    /// On a real cluster, the kubeconfig: the test's namespace is deleted when it ends.
    real: Option<PathBuf>,
}

impl Drop for Cluster {
    /// Deletes a real cluster's test namespace (and so everything the test made there). Drop
    /// runs inside the test's runtime, which the deletion must not wait on: it runs on a thread
    /// of its own, with a client of its own.
    fn drop(&mut self) {
        let Some(kubeconfig) = self.real.take() else {
            return;
        };
        let ns = self.namespace.clone();
        let deleted = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let client = real_client(&kubeconfig).await;
                let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
                api.delete(&ns, &DeleteParams::background())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = deleted.map_err(|_| "panicked".to_string()) {
            eprintln!(
                "could not delete the test namespace {}: {e}",
                self.namespace
            );
        }
    }
}

/// A client for the real cluster of `kubeconfig`.
async fn real_client(kubeconfig: &std::path::Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

impl Cluster {
    /// The fake API server (containers ready `ready_after` after they start), or the real
    /// cluster of `ROLLOUT_GUARD_TEST_KUBECONFIG`.
    pub async fn start(namespace: &str, ready_after: Duration) -> Cluster {
        init_logging();
        match std::env::var_os(REAL_CLUSTER) {
            Some(path) => Cluster::real(namespace, PathBuf::from(path)).await,
            None => Cluster::fake(namespace, ready_after).await,
        }
    }

    /// Always the fake API server.
    pub async fn fake(namespace: &str, ready_after: Duration) -> Cluster {
        init_logging();
        let opts = FakeOptions {
            ready_after,
            ..FakeOptions::fast()
        };
        let fake = FakeApiServer::start(opts).await.expect("fake API server");
        Cluster {
            client: fake.client(),
            fake: Some(fake),
            namespace: namespace.into(),
            clock: DilatedClock::new(SPEED),
            dir: tempfile::tempdir().unwrap(),
            real: None,
        }
    }

    async fn real(namespace: &str, kubeconfig: PathBuf) -> Cluster {
        let client = real_client(&kubeconfig).await;
        let ns = format!("{namespace}-{}", std::process::id());
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        api.create(&PostParams::default(), &obj)
            .await
            .expect("creating the test namespace");
        Cluster {
            client,
            fake: None,
            namespace: ns,
            clock: DilatedClock::new(SPEED),
            dir: tempfile::tempdir().unwrap(),
            real: Some(kubeconfig),
        }
    }

    /// A kubeconfig for this cluster, for the command line: the fake's (written to the test's
    /// folder) or the real cluster's.
    pub fn kubeconfig(&self) -> PathBuf {
        if let Some(real) = &self.real {
            return real.clone();
        }
        let path = self.dir.path().join("kubeconfig");
        if let Some(fake) = &self.fake {
            fake.write_kubeconfig(&path)
                .expect("writing the kubeconfig");
        }
        path
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A Deployment of the simulated PHP service at `v1`, with the given annotations, rolled
    /// out one pod at a time; waits until it is available.
    pub async fn deploy(&self, name: &str, replicas: i32, ann: &[(&str, &str)]) -> Deployment {
        let d = service::manifest(&self.namespace, name, replicas, ann);
        self.deployments()
            .create(&PostParams::default(), &d)
            .await
            .expect("creating the Deployment");
        self.wait(
            name,
            "the first rollout to complete",
            Duration::from_secs(60),
            |d| rolled_out(d) && version(d) == "v1",
        )
        .await
    }

    /// Releases `version` of the service, whose pods have `fault` (`class-errors`,
    /// `cpu-saturation`) or none.
    pub async fn release(&self, name: &str, version: &str, fault: Option<&str>) {
        service::release(&self.deployments(), name, version, fault)
            .await
            .expect("releasing");
    }

    /// Waits until the Deployment satisfies `pred`; on timeout, fails with its state and
    /// Events.
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Deployment) -> bool,
    ) -> Deployment {
        let api = self.deployments();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(d) = api.get(name).await
                && pred(&d)
            {
                return d;
            }
            if tokio::time::Instant::now() > deadline {
                let d = api.get(name).await.ok();
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nDeployment: {}\nEvents: {:#?}",
                    serde_json::to_string_pretty(&d).unwrap(),
                    self.events(name).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the controller has rolled the Deployment back to `v1` (90 s: a guard against
    /// hanging, as the tests' `LONG`).
    pub async fn wait_rolled_back(&self, name: &str) -> Deployment {
        self.wait(name, "the rollback to v1", Duration::from_secs(90), |d| {
            version(d) == "v1" && stage(d).as_deref() == Some("rolled_back")
        })
        .await
    }

    /// The reasons of the Events on the Deployment once every one of `wanted` is among them,
    /// or what there is after 10 s (for the caller's assertion to name). The controller
    /// publishes an Event after the write it announces: a test that has seen the write may
    /// look before the Event is there.
    pub async fn reasons_with(&self, name: &str, wanted: &[&str]) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let reasons: Vec<String> = self.events(name).await.into_iter().map(|e| e.0).collect();
            let all = wanted.iter().all(|w| reasons.iter().any(|r| r == w));
            if all || tokio::time::Instant::now() > deadline {
                return reasons;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Cluster::published`] once `ready` holds for it, or as it is after 10 s (for the
    /// caller's assertion to name): an Event follows the write it announces.
    pub async fn published_when(
        &self,
        name: &str,
        ready: impl Fn(&[(String, String, i32)]) -> bool,
    ) -> Vec<(String, String, i32)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.published(name).await;
            if ready(&events) || tokio::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (reason, note) of the Events on the Deployment, oldest first.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        self.published(name)
            .await
            .into_iter()
            .map(|(reason, note, _)| (reason, note))
            .collect()
    }

    /// (reason, note, times) of the Events on the Deployment, oldest first. The Event
    /// recorder folds a repeat of an Event into the first one's `series` (as `kubectl` shows
    /// it), so how many times an Event was published is its series count.
    pub async fn published(&self, name: &str) -> Vec<(String, String, i32)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut evs: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        evs.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        evs.into_iter()
            .map(|e| {
                let times = e.series.as_ref().map_or(1, |s| s.count);
                (
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                    times,
                )
            })
            .collect()
    }

    pub async fn replicasets(&self, name: &str) -> Vec<ReplicaSet> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        api.list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .unwrap()
            .items
    }

    /// The daemon's configuration for this cluster: one namespace, no leader election, the
    /// metrics server on a free port, decision records in the test's folder.
    pub fn config(&self) -> Config {
        let mut c = Config::load_with_env(
            None,
            [(
                "ROLLOUT_GUARD__PROMETHEUS__URL".to_string(),
                "http://127.0.0.1:9".to_string(),
            )],
        )
        .unwrap();
        c.namespaces = vec![self.namespace.clone()];
        c.server.listen = "127.0.0.1:0".into();
        c.leader_election.enabled = false;
        c.leader_election.namespace = self.namespace.clone();
        c.records.path = Some(self.records_path());
        c
    }

    pub fn records_path(&self) -> PathBuf {
        self.dir.path().join("records.jsonl")
    }

    /// The live simulated metric source of this cluster's pods.
    pub fn source(&self) -> LiveSource<KubePods> {
        LiveSource::new(
            KubePods::new(self.client.clone(), &self.namespace),
            self.clock,
            Profile::default(),
        )
    }

    /// The pod-log reader, on the simulated clock.
    pub fn logs(&self) -> KubeLogs {
        let clock = self.clock;
        KubeLogs::new(self.client.clone(), LogLimits::default())
            .with_time_map(Arc::new(move |t| clock.sim(t)))
    }

    /// The live metric source with the pod-log reader beside it.
    pub fn source_with_logs(&self) -> WithLogs<LiveSource<KubePods>, KubeLogs> {
        WithLogs {
            metrics: self.source(),
            logs: self.logs(),
        }
    }

    /// Starts the real `run` loop with the live source.
    pub async fn daemon(&self, config: Config) -> Daemon {
        self.daemon_with(config, self.source()).await
    }

    /// Starts the real `run` loop with the given metric source.
    pub async fn daemon_with<S: MetricSource + Send + Sync + 'static>(
        &self,
        config: Config,
        source: S,
    ) -> Daemon {
        self.start_daemon(config, None, source).await
    }

    /// Starts the real `run` loop with the live source and `config` written to a file, which
    /// it re-reads on change as `run --config` does; returns the file's path too.
    pub async fn daemon_from_file(&self, config: Config) -> (Daemon, PathBuf) {
        let path = self.dir.path().join("config.yaml");
        write_config(&path, &config);
        let daemon = self
            .start_daemon(config, Some(path.clone()), self.source())
            .await;
        (daemon, path)
    }

    async fn start_daemon<S: MetricSource + Send + Sync + 'static>(
        &self,
        config: Config,
        path: Option<PathBuf>,
        source: S,
    ) -> Daemon {
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let clock = self.clock;
        let options = Options {
            reload_every: Duration::from_millis(200),
            clock: Some((Arc::new(move || clock.now()), SPEED)),
        };
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            run_with(client, config, path, source, options, stop_rx, move |r| {
                let _ = tx.send(r);
            })
            .await
        });
        let running = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("daemon started")
            .expect("daemon started");
        Daemon {
            stop,
            task,
            running,
        }
    }
}

pub struct Daemon {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    pub running: Running,
}

impl Daemon {
    /// Stops it as SIGTERM would, and waits for it to finish.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("daemon stopped in time")
            .expect("daemon task")
            .expect("daemon ran cleanly");
    }

    /// The daemon's `/metrics` text, fetched over HTTP.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.running.addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap()
    }
}

/// The value of a metric line (`name{labels} value`) in an OpenMetrics text; 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[allow(unused_imports)]
pub use rollout_guard::adapters::kubernetes::rolled_out;
#[allow(unused_imports)]
pub use rollout_guard::sim::simulate::service::{rollbacks, stage, version};

/// Writes `config` as the YAML file `run --config` reads.
pub fn write_config(path: &std::path::Path, config: &Config) {
    let yaml = serde_saphyr::to_string(config).expect("a configuration serializes");
    std::fs::write(path, yaml).expect("writing the configuration");
}

/// The controller's memory on the Deployment.
pub fn memory(d: &Deployment) -> Option<Memory> {
    annotations::state(d.annotations()).map(|m| m.expect("a readable state annotation"))
}

/// Owned annotations (as [`guarded`] returns them) borrowed as `deploy` takes them.
pub fn ann<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Annotations that opt in, in `mode`, evaluating every 30 simulated seconds.
pub fn guarded(mode: &str) -> Vec<(&'static str, String)> {
    vec![
        (annotations::ENABLED, "true".into()),
        (annotations::MODE, mode.into()),
        (annotations::INTERVAL, "30s".into()),
        (annotations::BAKE_TIME, "3m".into()),
    ]
}

/// [`guarded`] with a bake of `bake` (a duration as the annotation takes it) instead of 3m.
pub fn guarded_baking(mode: &str, bake: &str) -> Vec<(&'static str, String)> {
    let mut settings = guarded(mode);
    settings.retain(|(k, _)| *k != annotations::BAKE_TIME);
    settings.push((annotations::BAKE_TIME, bake.into()));
    settings
}
