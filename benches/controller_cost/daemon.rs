//! The real `rollout-guard run` as a child process, and what `/proc` says it costs.
//!
//! The daemon is the binary Cargo builds for the benchmark (`CARGO_BIN_EXE_rollout-guard`),
//! run with `KUBECONFIG` pointing at the fake API server and a configuration file written
//! here; its log goes to a file. Memory is `VmRSS`/`VmHWM` (and the anonymous/file split) from
//! `/proc/<pid>/status`, CPU is `utime + stime` from `/proc/<pid>/stat` (all threads).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::process::{Child, Command};

/// The daemon's settings that the benchmark varies.
pub struct Settings {
    pub prometheus: SocketAddr,
    pub interval: Duration,
    pub mode: String,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub metrics: SocketAddr,
    pub log: PathBuf,
    http: reqwest::Client,
}

/// One reading of `/proc/<pid>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proc {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
    pub threads: u64,
}

impl Daemon {
    /// Writes the configuration into `dir` and starts the daemon against `kubeconfig`.
    pub async fn start(dir: &Path, kubeconfig: &Path, s: &Settings) -> Result<Daemon> {
        let metrics = free_port()?;
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "prometheus: {{url: \"http://{prom}\", timeout: 10s}}\n\
                 namespaces: [{namespaces}]\n\
                 defaults: {{mode: {mode}, interval: {interval}s}}\n\
                 server: {{listen: \"{metrics}\"}}\n\
                 leader_election: {{enabled: true, namespace: rollout-guard, identity: bench}}\n\
                 log: {{format: json, level: info}}\n",
                prom = s.prometheus,
                mode = s.mode,
                interval = s.interval.as_secs(),
                namespaces = s.namespaces.join(", "),
            ),
        )?;
        let log = dir.join("daemon.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
            .args(["run", "--config"])
            .arg(&config)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting rollout-guard run")?;
        let pid = child.id().context("the daemon exited at once")?;
        Ok(Daemon {
            child,
            pid,
            metrics,
            log,
            http: reqwest::Client::new(),
        })
    }

    /// Fails if the daemon has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the daemon exited ({status}); its log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.metrics);
        self.http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// The value of an unlabelled series (or one with its labels spelt out) on `/metrics`.
    pub async fn metric(&self, series: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await?
            .text()
            .await?;
        Ok(metric_value(&text, series))
    }

    /// Waits until `/metrics` shows `series` at `want` or more.
    pub async fn wait_metric(&self, series: &str, want: f64, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let v = self.metric(series).await.unwrap_or(0.0);
            if v >= want {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("{series} is {v} after {timeout:?}, not {want}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn proc(&self) -> Result<Proc> {
        read_proc(self.pid)
    }

    /// SIGTERM, then up to 15 s for a clean exit.
    pub async fn stop(mut self) -> Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "the daemon exited with {status}; its log:\n{}",
                        self.log_tail()
                    );
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the daemon did not stop within 15 s of SIGTERM")
            }
        }
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The time between consecutive evaluations of the same rollout, in seconds, from the
    /// daemon's `evaluated` log lines.
    pub fn evaluation_gaps(&self) -> Vec<f64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut last: HashMap<String, jiff::Timestamp> = HashMap::new();
        let mut gaps = Vec::new();
        for line in text
            .lines()
            .filter(|l| l.contains("\"message\":\"evaluated\""))
        {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let at = v["timestamp"].as_str().and_then(|t| t.parse().ok());
            let deployment = v["fields"]["deployment"].as_str();
            if let (Some(at), Some(deployment)) = (at, deployment)
                && let Some(prev) = last.insert(deployment.to_string(), at)
            {
                gaps.push(at.duration_since(prev).as_secs_f64());
            }
        }
        gaps
    }

    /// Log lines at WARN or ERROR, counted.
    pub fn log_warnings(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .count()
    }
}

/// A free loopback port (bound, then released for the daemon to bind).
fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// `name{labels} value` in an OpenMetrics text; 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The sum of every series of a family (`name{...} value` and `name value`).
pub fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn read_proc(pid: u32) -> Result<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let rest = &stat[stat.rfind(')').context("/proc/<pid>/stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        Ok(fields
            .get(n - 3)
            .context("/proc/<pid>/stat too short")?
            .parse()?)
    };
    let cpu_ticks = field(14)? + field(15)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok(Proc {
        cpu_ticks,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
        anon_kib: kib("RssAnon:"),
        file_kib: kib("RssFile:"),
        threads: kib("Threads:"),
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know of).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
