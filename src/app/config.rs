//! The daemon's configuration: one file plus `ROLLOUT_GUARD__...` environment overrides, read
//! with the `config` crate and checked as a whole before anything starts.
//!
//! Owns the configuration schema, its defaults and its validation. Keys are snake_case because
//! the `config` crate's environment overrides cannot reach camelCase keys:
//! `ROLLOUT_GUARD__PROMETHEUS__URL` sets `prometheus.url`, `ROLLOUT_GUARD__DEFAULTS__MODE` sets
//! `defaults.mode`, lists are comma-separated (`ROLLOUT_GUARD__NAMESPACES=shop,billing`).
//! Unknown keys are errors, so a typo in a file or a variable name is caught at start rather
//! than silently ignored. A YAML file is first read by serde-saphyr with a bound on what its
//! aliases may expand to, since the `config` crate's YAML reader has none (a few hundred bytes
//! of nested aliases would take gigabytes). Reads files; performs no other I/O.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::adapters::prometheus::PrometheusConfig;
use crate::analysis::duration::PromDuration;
use crate::controller::leader::LeaderElection;
use crate::policy::guard::{Mode, Settings, gate_steps_ok};
use crate::records::Rotation;

/// The environment prefix of overrides; nested keys are separated by `__`.
pub const ENV_PREFIX: &str = "ROLLOUT_GUARD";

/// How many YAML events aliases may replay in a configuration file: a real one has a few
/// hundred keys and values, a "billion laughs" of nested aliases billions.
const MAX_REPLAYED_EVENTS: usize = 10_000;

/// The smallest `records.max_bytes`: a record with its verdicts' evidence takes a few KiB.
const MIN_RECORDS_BYTES: u64 = 16 << 10;

/// The most rotated record files kept.
const MAX_RECORDS_KEPT: u32 = 100;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach Prometheus.
    pub prometheus: PrometheusConfig,
    /// Rule files or folders; empty means the rules bundled with the binary.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Namespaces to watch; empty means all (cluster-wide RBAC).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// A label selector that replaces the annotation as the way to opt in: only the
    /// Deployments it selects are watched, and each of them is guarded unless annotated
    /// `rollout-guard.io/enabled: "false"`. Without it, the annotation `"true"` opts in.
    #[serde(default)]
    pub selector: Option<String>,
    /// Per-Deployment settings, unless its annotations override them.
    #[serde(default)]
    pub defaults: Defaults,
    /// Limits on actions and on concurrent evaluations.
    #[serde(default)]
    pub limits: Limits,
    /// Turns every action into a record, for every Deployment. Re-read while running.
    #[serde(default)]
    pub kill_switch: bool,
    /// The HTTP server for metrics and health.
    #[serde(default)]
    pub server: Server,
    /// Leader election among the controller's replicas.
    #[serde(default)]
    pub leader_election: LeaderElection,
    /// Where decision records go, and how the file is rotated.
    #[serde(default)]
    pub records: Records,
    /// Webhooks told of rollbacks, pauses, held revisions and ended analyses.
    #[serde(default)]
    pub notify: crate::adapters::notify::NotifyConfig,
    /// Bounds on reading pod logs for `logs` rules.
    #[serde(default)]
    pub logs: crate::adapters::podlogs::LogLimits,
    /// The daemon's own logging.
    #[serde(default)]
    pub log: Log,
}

/// Per-Deployment defaults; annotations override them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// How the controller treats a Deployment: `observe`, `guard` or `gate`
    /// (`rollout-guard.io/mode`).
    pub mode: Mode,
    /// Time between evaluations while a rollout is analysed (`rollout-guard.io/interval`).
    pub interval: PromDuration,
    /// How long a gate step is analysed before it resumes, and how long a completed rollout
    /// keeps being checked (`rollout-guard.io/bake-time`).
    pub bake_time: PromDuration,
    /// Gate steps, percentages of the desired replicas; empty means one step at the first pods.
    pub gate_steps: Vec<u32>,
    /// How long a rollback may take to show the old ReplicaSet available again.
    pub verify_timeout: PromDuration,
}

impl Default for Defaults {
    fn default() -> Self {
        let s = Settings::default();
        Defaults {
            mode: s.mode,
            interval: s.interval.into(),
            bake_time: s.bake.into(),
            gate_steps: s.gate_steps,
            verify_timeout: s.verify_timeout.into(),
        }
    }
}

/// Limits on actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Rollbacks per Deployment in any hour beyond which the controller only records.
    pub max_rollbacks_per_hour: u32,
    /// Evaluations running at once across all Deployments (read at start). Each sends its
    /// rules' queries together, so this bounds the queries in flight to Prometheus.
    pub max_concurrent_evaluations: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rollbacks_per_hour: Settings::default().max_rollbacks_per_hour,
            max_concurrent_evaluations: 8,
        }
    }
}

/// The HTTP server for `/metrics`, `/healthz` and `/readyz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// The address it listens on, `host:port`.
    pub listen: String,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "0.0.0.0:8080".into(),
        }
    }
}

/// Decision records: one JSON line per evaluation and action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Records {
    /// Append-only file; none means records go to the log only.
    pub path: Option<PathBuf>,
    /// The file is rotated before a record would take it past this many bytes: it becomes
    /// `<path>.1` (the older ones `.2`, …) and a new file starts.
    pub max_bytes: u64,
    /// Rotated files kept; older ones are deleted. The records take at most about
    /// `max_bytes` × (`keep` + 1).
    pub keep: u32,
    /// Serve them, read only, at `GET /records` on the metrics port (filtered by
    /// `?namespace=&deployment=&revision=`), for `report --records http://…`.
    pub endpoint: bool,
}

impl Default for Records {
    fn default() -> Self {
        let rotation = Rotation::default();
        Records {
            path: None,
            max_bytes: rotation.max_bytes,
            keep: rotation.keep,
            endpoint: false,
        }
    }
}

impl Records {
    /// When the record file is rotated.
    pub fn rotation(&self) -> Rotation {
        Rotation {
            max_bytes: self.max_bytes,
            keep: self.keep,
        }
    }

    /// What is wrong with the rotation settings.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_bytes < MIN_RECORDS_BYTES {
            problems.push(format!(
                "records.max_bytes: at least {MIN_RECORDS_BYTES} (16 KiB), got {}",
                self.max_bytes
            ));
        }
        if !(1..=MAX_RECORDS_KEPT).contains(&self.keep) {
            problems.push(format!(
                "records.keep: 1 to {MAX_RECORDS_KEPT} rotated files, got {}",
                self.keep
            ));
        }
        problems
    }
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `rollout_guard=debug,kube=warn`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// How the daemon writes its log lines on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file cannot be read or parsed; the message says which and why.
    #[error("cannot read the configuration: {0}")]
    Read(String),
    /// The configuration was read but some values are wrong, each problem named by its key.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Whether `filter` is a `tracing` filter whose every directive names a level: `info`, or
/// `target=level` (a bare word is a target at every level in tracing's syntax, which in this
/// key is a misspelt level rather than what was meant).
fn log_filter_ok(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("{filter:?}: {e}"))?;
    match filter.split(',').map(str::trim).find(|d| {
        !d.is_empty() && !d.contains('=') && !LEVELS.contains(&d.to_ascii_lowercase().as_str())
    }) {
        Some(d) => Err(format!(
            "{d:?} is neither a level ({}) nor a target=level directive",
            LEVELS.join(", ")
        )),
        None => Ok(()),
    }
}

/// Refuses a YAML file (by extension) that serde-saphyr cannot read within its budget and
/// [`MAX_REPLAYED_EVENTS`], before the `config` crate expands its aliases without bound.
fn check_yaml(path: &Path) -> Result<(), ConfigError> {
    if !matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    ) {
        return Ok(());
    }
    let refuse = |e: String| ConfigError::Read(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))?;
    let options = serde_saphyr::options! {
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
        },
    };
    serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(&text, options)
        .map(|_| ())
        .map_err(|e| refuse(e.without_snippet().to_string()))
}

impl Config {
    /// Reads `file` (YAML or TOML by extension; optional) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Read(format!("{}: no such file", f.display())));
            }
            check_yaml(f)?;
            builder = builder.add_source(config::File::from(f).required(true));
        }
        let vars: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("rules")
                .with_list_parse_key("namespaces")
                .with_list_parse_key("defaults.gate_steps")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Read(e.to_string()))?;
        let cfg: Config = raw
            .try_deserialize()
            .map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every problem that would make the daemon misbehave, found before it starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = crate::adapters::prometheus::PrometheusSource::new(&self.prometheus) {
            problems.push(format!("prometheus: {e}"));
        }
        if self.defaults.interval.is_zero() {
            problems.push("defaults.interval: must be longer than 0s".into());
        }
        if let Err(e) = gate_steps_ok(&self.defaults.gate_steps) {
            problems.push(format!("defaults.gate_steps: {e}"));
        }
        if self.server.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "server.listen: {:?} is not an address:port",
                self.server.listen
            ));
        }
        if self.leader_election.enabled && self.leader_election.lease_duration.as_secs() < 2 {
            problems.push("leader_election.lease_duration: at least 2s".into());
        }
        if self.logs.concurrency == 0 || self.logs.max_pods_new == 0 || self.logs.max_pods_old == 0
        {
            problems
                .push("logs: concurrency, max_pods_new and max_pods_old must be at least 1".into());
        }
        if self.logs.limit_bytes < 1024 {
            problems.push(format!(
                "logs.limit_bytes: at least 1024, got {}",
                self.logs.limit_bytes
            ));
        }
        problems.extend(self.records.problems());
        problems.extend(self.notify.problems());
        if let Err(e) = log_filter_ok(&self.log.level) {
            problems.push(format!("log.level: {e}"));
        }
        if self.limits.max_concurrent_evaluations == 0 {
            problems.push("limits.max_concurrent_evaluations: at least 1".into());
        }
        if let Some(sel) = &self.selector
            && sel.trim().is_empty()
        {
            problems.push("selector: empty; leave it out to rely on the annotation".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The parts of `new` that differ from `self` and take effect only at the next start:
    /// everything but `defaults`, `limits.max_rollbacks_per_hour` and `kill_switch`.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let differs = [
            ("prometheus", self.prometheus != new.prometheus),
            ("rules", self.rules != new.rules),
            ("namespaces", self.namespaces != new.namespaces),
            ("selector", self.selector != new.selector),
            (
                "limits.max_concurrent_evaluations",
                self.limits.max_concurrent_evaluations != new.limits.max_concurrent_evaluations,
            ),
            ("server", self.server != new.server),
            (
                "leader_election",
                self.leader_election != new.leader_election,
            ),
            ("records", self.records != new.records),
            ("notify", self.notify != new.notify),
            ("logs", self.logs != new.logs),
            ("log", self.log != new.log),
        ];
        differs
            .into_iter()
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect()
    }

    /// The settings a Deployment gets before its annotations are applied.
    pub fn base_settings(&self) -> Settings {
        Settings {
            mode: self.defaults.mode,
            interval: self.defaults.interval.as_std(),
            bake: self.defaults.bake_time.as_std(),
            gate_steps: self.defaults.gate_steps.clone(),
            max_rollbacks_per_hour: self.limits.max_rollbacks_per_hour,
            kill_switch: self.kill_switch,
            verify_timeout: self.defaults.verify_timeout.as_std(),
            allowed_hash: None,
        }
    }
}

#[cfg(test)]
mod tests;
