//! `rollout-guard run`: assembles the daemon from its configuration — rules (re-read when
//! their files change), leader election, the metrics server, the actuator and the controller —
//! and takes it down cleanly on SIGTERM.
//!
//! Owns start-up order, reloading and shutdown. [`run_with`] takes the Kubernetes client and
//! the metric source as arguments, so the tests and the demo run exactly this code against the
//! fake API server and a simulated source.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::podlogs::KubeLogs;
use crate::adapters::telemetry::{Health, Metrics, ResultLabels};
use crate::analysis::rules::RuleSet;
use crate::analysis::source::{MetricSource, WithLogs};
use crate::app::config::Config;
use crate::controller::actions::Actuator;
use crate::controller::leader::Leadership;
use crate::controller::{Clock, Context, run_controller};
use crate::policy::guard::Settings;
use crate::records::Recorder;

/// Knobs of the daemon that are not configuration (tests shorten them).
#[derive(Clone)]
pub struct Options {
    /// How often rule files and the config file are checked for changes.
    pub reload_every: Duration,
    /// The controller's clock and its speed (simulated seconds per second); the system clock
    /// when `None`.
    pub clock: Option<(Clock, f64)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reload_every: Duration::from_secs(10),
            clock: None,
        }
    }
}

/// A running daemon's handles, for tests and the demo.
pub struct Running {
    /// The daemon's metrics, as `/metrics` serves them.
    pub metrics: Arc<Metrics>,
    /// Its readiness, as `/readyz` tells it.
    pub health: Health,
    /// The address the metrics server is bound to.
    pub addr: SocketAddr,
}

/// Runs the daemon until `stop` becomes true. `started` is called once the metrics server is
/// bound.
pub async fn run_with<S: MetricSource + Send + Sync + 'static>(
    client: Client,
    config: Config,
    config_path: Option<PathBuf>,
    source: S,
    options: Options,
    stop: watch::Receiver<bool>,
    started: impl FnOnce(Running) + Send,
) -> Result<()> {
    // What the files were when read, so that an edit made while starting is still noticed.
    let rules_seen = fingerprint(&config.rules);
    let config_file = config_path.map(|p| {
        let seen = fingerprint(std::slice::from_ref(&p));
        (p, seen)
    });
    let rules = RuleSet::load_or_defaults(&config.rules)
        .map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    tracing::info!(rules = rules.rules.len(), files = ?rules.files, "rules loaded");
    let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
    let (base_tx, base_rx) = watch::channel(config.base_settings());
    let metrics = Arc::new(Metrics::new());
    let health = Health::default();

    let (addr, server) = start_server(&config, &metrics, &health, &stop).await?;
    started(Running {
        metrics: metrics.clone(),
        health: health.clone(),
        addr,
    });

    if let Some(sel) = &config.selector {
        check_selector(&client, &config.namespaces, sel).await?;
    }
    let leadership = Leadership::elect(client.clone(), &config.leader_election)
        .await
        .context("starting leader election")?;
    let identity = std::env::var("HOSTNAME").ok();
    let ctx = Context::new(
        client.clone(),
        Actuator::new(client, identity),
        source,
        rules_rx,
        base_rx,
        config.selector.clone(),
        leadership.is_leader.clone(),
        metrics.clone(),
        usize::from(config.limits.max_concurrent_evaluations),
    );
    let ctx = Arc::new(with_outputs(ctx, &config, &options)?);
    let reloader = tokio::spawn(
        Reloader {
            rules_seen,
            config_file,
            config: config.clone(),
            rules_tx,
            base_tx,
            metrics: metrics.clone(),
        }
        .run(options.reload_every, stop.clone()),
    );
    let ready = health.clone();
    run_controller(ctx, &config.namespaces, stop.clone(), move || {
        ready.set_ready(true)
    })
    .await;
    shut_down(&health, leadership, reloader, server).await;
    Ok(())
}

/// Binds the metrics server on `server.listen` and spawns it until `stop`; returns the address
/// it is bound to and its task.
async fn start_server(
    config: &Config,
    metrics: &Arc<Metrics>,
    health: &Health,
    stop: &watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listen: SocketAddr = config
        .server
        .listen
        .parse()
        .with_context(|| format!("server.listen {:?}", config.server.listen))?;
    let (addr, server) = crate::adapters::telemetry::serve(
        listen,
        metrics.clone(),
        health.clone(),
        records_reader(&config.records),
        crate::adapters::telemetry::ServerLimits::default(),
        crate::controller::stopped(stop.clone()),
    )
    .await
    .with_context(|| format!("binding the metrics server on {listen}"))?;
    let server = tokio::spawn(server);
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    Ok((addr, server))
}

/// `ctx` with what the configuration asks for beyond the controller itself: notifications,
/// decision records, and the clock of `options`.
fn with_outputs<S>(mut ctx: Context<S>, config: &Config, options: &Options) -> Result<Context<S>> {
    let notify = crate::adapters::notify::NotifyConfig {
        records: config.records.path.clone(),
        ..config.notify.clone()
    };
    ctx = ctx.with_notifier(
        crate::adapters::notify::Notifier::start(&notify).context("starting notifications")?,
    );
    if !notify.webhooks.is_empty() {
        let names: Vec<&str> = notify.webhooks.iter().map(|w| w.name.as_str()).collect();
        tracing::info!(webhooks = ?names, "notifying webhooks");
    }
    if let Some(path) = &config.records.path {
        let rotation = config.records.rotation();
        ctx = ctx.with_records(Recorder::open(path, rotation)?);
        tracing::info!(
            path = %path.display(),
            max_bytes = rotation.max_bytes,
            keep = rotation.keep,
            "writing decision records"
        );
    }
    if let Some((clock, speed)) = options.clock.clone() {
        ctx = ctx.with_clock(clock, speed);
    }
    Ok(ctx)
}

/// After the controller stopped: not ready any more, the lease released, the reloader stopped,
/// and the metrics server waited for.
async fn shut_down(
    health: &Health,
    leadership: Leadership,
    reloader: JoinHandle<()>,
    server: JoinHandle<std::io::Result<()>>,
) {
    health.set_ready(false);
    tracing::info!("controller stopped; releasing the lease");
    leadership.release().await;
    reloader.abort();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics server"),
        Err(e) => tracing::warn!(error = %e, "metrics server task"),
    }
}

/// The reader behind `GET /records`, when the records are written to a file and served.
fn records_reader(
    records: &crate::app::config::Records,
) -> Option<crate::adapters::telemetry::RecordsReader> {
    let path = records.path.clone().filter(|_| records.endpoint)?;
    Some(Arc::new(
        move |q: crate::adapters::telemetry::RecordsQuery| {
            let filter = crate::records::Filter {
                namespace: q.namespace,
                deployment: q.deployment,
                revision: q.revision,
            };
            crate::records::json_lines(&path, &filter).map_err(|e| e.to_string())
        },
    ))
}

/// Re-reads the rule files and the configuration file when they change.
struct Reloader {
    rules_seen: u64,
    /// The configuration file, if any, and its fingerprint when last read.
    config_file: Option<(PathBuf, u64)>,
    /// The configuration the daemon started with (its rule paths are the ones watched: a
    /// change to them needs a restart).
    config: Config,
    rules_tx: watch::Sender<Arc<RuleSet>>,
    base_tx: watch::Sender<Settings>,
    metrics: Arc<Metrics>,
}

impl Reloader {
    async fn run(mut self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.reload_rules();
            self.reload_config();
        }
    }

    /// Loads the rule files again if they changed; a broken edit keeps the last good rules.
    fn reload_rules(&mut self) {
        let paths = &self.config.rules;
        let now = fingerprint(paths);
        if paths.is_empty() || now == self.rules_seen {
            return;
        }
        self.rules_seen = now;
        let result = match RuleSet::load(paths) {
            Ok(r) => {
                tracing::info!(rules = r.rules.len(), "rule files changed: reloaded");
                self.rules_tx.send_replace(Arc::new(r));
                "ok"
            }
            Err(e) => {
                tracing::error!(errors = %e, "rule files changed but do not load; keeping the last good rules");
                "kept_last_good"
            }
        };
        self.metrics
            .rule_reloads
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    /// Loads the configuration file again if it changed and applies what can change while
    /// running (defaults, the rollback limit, the kill switch).
    fn reload_config(&mut self) {
        let Some((path, seen)) = &mut self.config_file else {
            return;
        };
        let now = fingerprint(std::slice::from_ref(path));
        if now == *seen {
            return;
        }
        *seen = now;
        match Config::load(Some(path)) {
            Ok(c) => {
                let restart = self.config.restart_only_changes(&c);
                if !restart.is_empty() {
                    tracing::warn!(
                        parts = %restart.join(", "),
                        "configuration changed in parts that need a restart; applying only defaults, max_rollbacks_per_hour and the kill switch"
                    );
                }
                tracing::info!(kill_switch = c.kill_switch, "configuration reloaded");
                self.base_tx.send_replace(c.base_settings());
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration changed but is invalid; keeping the last good one")
            }
        }
    }
}

/// A hash of the names and contents of the files under `paths` (missing ones included as
/// such), to tell when anything changed — also through the symlink swaps of a ConfigMap.
fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in paths {
        hash_path(p, &mut h, 0);
    }
    h.finish()
}

fn hash_path(p: &Path, h: &mut DefaultHasher, depth: usize) {
    p.hash(h);
    if depth > 8 {
        return;
    }
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            // Kubernetes mounts ConfigMaps with `..data` links and dated folders; the files
            // themselves are what matter.
            if e.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."))
            {
                continue;
            }
            hash_path(&e, h, depth + 1);
        }
    } else {
        std::fs::read(p).ok().hash(h);
    }
}

/// Where `run` reaches the cluster (`--kubeconfig`, `--context`; the environment without).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// The kubeconfig file (`--kubeconfig`); when none, `$KUBECONFIG`, `~/.kube/config` or
    /// the in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (`--context`); when none, its current one.
    pub context: Option<String>,
}

/// `rollout-guard run`: the daemon with the real cluster and Prometheus.
pub async fn run(config_path: Option<PathBuf>, config: Config, cluster: Cluster) -> Result<()> {
    // What can be checked here is checked before anything is connected: a broken rules file
    // says so, not that no cluster is reachable from where it was tried.
    RuleSet::load_or_defaults(&config.rules).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    let prometheus = crate::adapters::prometheus::PrometheusSource::new(&config.prometheus)
        .context("configuring the Prometheus client")?;
    let (client, _) =
        crate::app::cluster::client(cluster.kubeconfig.as_deref(), cluster.context.as_deref())
            .await
            .context("connecting to Kubernetes (in-cluster config or kubeconfig)")?;
    let source = WithLogs {
        // An answer that lost series it had before is partial, not zero.
        metrics: crate::analysis::source::Consistent::new(prometheus),
        logs: KubeLogs::new(client.clone(), config.logs.clone()),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        stop_tx.send_replace(true);
    });
    run_with(
        client,
        config,
        config_path,
        source,
        Options::default(),
        stop_rx,
        |_| {},
    )
    .await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Asks the API server, the authority on label selector syntax, whether it takes `selector`:
/// one list of at most one Deployment's metadata. A selector it refuses (400) stops the start
/// with its message, rather than a watch that fails and retries for ever; any other error is
/// left to the watches, which retry.
async fn check_selector(client: &Client, namespaces: &[String], selector: &str) -> Result<()> {
    let api: Api<Deployment> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api
        .list_metadata(&ListParams::default().labels(selector).limit(1))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 400 => {
            anyhow::bail!(
                "selector {selector:?} refused by the API server: {}",
                s.message
            )
        }
        _ => Ok(()),
    }
}
