//! A real Prometheus server preloaded with generated history, for integration tests.
//!
//! Build the history with [`OpenMetrics`], then call [`Prometheus::start`]. It
//! backfills the samples with `promtool tsdb create-blocks-from openmetrics`
//! into a temporary data directory, starts `prometheus` on a free loopback port
//! without any scrape targets, and waits until `/-/ready` answers 200. Dropping
//! the [`Prometheus`] kills the server and deletes the directory.
//!
//! ```ignore
//! let mut history = OpenMetrics::new();
//! for i in 0..240 {
//!     let t = T0 + i * 30; // fixed timestamps a few days in the past
//!     history.sample("http_requests_total", &[("pod", "web-abc")], t, i as f64);
//! }
//! let prometheus = Prometheus::start(&history).expect("start Prometheus");
//! // point the code under test at prometheus.url() and query with `time=` inside the history
//! ```
//!
//! # Prometheus is required, never skipped
//!
//! Tests call `.expect()` on [`Prometheus::start`] / [`Prometheus::start_empty`].
//! If `prometheus` or `promtool` is not on `PATH` they return an `Err` saying to
//! run the tests via `scripts/test` (which installs them), so the test fails,
//! locally and in CI alike. There is deliberately no "skip if missing" helper.
//!
//! # Gotchas (measured with Debian's Prometheus/promtool 2.42)
//!
//! - **Timestamps are seconds.** OpenMetrics timestamps are seconds; promtool
//!   silently accepts milliseconds and stores them ~1000x too far in the future.
//! - **promtool drops bad samples silently.** Within a series, a sample older
//!   than its predecessor is dropped and a repeated timestamp keeps the first
//!   value; promtool still exits 0. That's why [`OpenMetrics`] stores samples
//!   per series keyed by time: output is always sorted, and a repeated
//!   timestamp keeps the *last* value written.
//! - A missing `# EOF` or a sample without a timestamp makes promtool fail.
//!   2.42 also accepts interleaved metric families, but we group them anyway, as
//!   the OpenMetrics spec requires.
//! - **`_total` gauges are fine.** `# TYPE foo_total gauge` with `foo_total`
//!   samples is accepted, and so is `# TYPE foo counter` with `foo_total`
//!   samples. The stored series and query results are identical, and
//!   `rate()` works on both (the TSDB stores no type), so everything is
//!   written as a gauge. Names ending in `_count`, `_sum`, `_bucket`,
//!   `_created` or `_info` are also accepted as gauges.
//! - **NaN round-trips.** `NaN` is stored, and the HTTP API returns it as the
//!   string `"NaN"`. `+Inf`/`-Inf` are written in OpenMetrics spelling.
//! - **2h blocks.** promtool cuts blocks at 2h boundaries that are multiples
//!   of 7200 s since the epoch, so a 2h10m history becomes 3 blocks. Queries
//!   across block boundaries are seamless; nothing to do.
//! - **Recent data is accepted.** promtool 2.42 accepted history ending 10 min
//!   ago and even 1 h in the future, and Prometheus served it (overlapping
//!   blocks are allowed by default since 2.39). Upstream still advises against
//!   backfilling the last ~3 h of a *live* server. Here there is no head data,
//!   but prefer fixed timestamps days in the past so tests are deterministic.
//! - **Retention counts back from the newest block, not from now.** With the
//!   default 15d, a history spanning 20 days lost its older block at startup
//!   ("Deleting obsolete block"). Hence `--storage.tsdb.retention.time=100y`.
//! - **Lookback is left at the default 5m.** An instant query at `time=T`
//!   sees the newest sample in `(T-5m, T]`: 4 min after the last sample a
//!   series is still returned, 6 min after it is gone. The same holds for each
//!   `query_range` step, so sample at least every few minutes.
//! - **Startup is fast.** promtool took 0.15–0.3 s and Prometheus was ready
//!   0.05–0.1 s after spawn for a few series of 2 h at 30 s resolution.
//!   `/-/ready` answers 503 while the TSDB is still loading.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long [`Prometheus::start`] waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often to start Prometheus on a new port if another process took
/// the one [`free_port`] picked.
const START_ATTEMPTS: u32 = 3;

/// No scrape targets: the only data is the backfilled history.
const CONFIG: &str = "global:\n  scrape_interval: 1h\nscrape_configs: []\n";

const MISSING_HINT: &str = "Prometheus is required for the integration tests, which are never skipped; \
     run them with `scripts/test`, which installs `prometheus` and `promtool` \
     (Debian: `apt-get install prometheus`)";

pub use rollout_guard::sim::simulate::OpenMetrics;

/// A running `prometheus` process with its own temporary data directory.
///
/// Dropping it kills the process, waits for it, then deletes the directory.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
    // Declared after `child`, so it is removed only after `Drop::drop` has reaped the process.
    dir: TempDir,
}

impl Prometheus {
    /// Backfills `history` with promtool, starts Prometheus on it and
    /// waits until it is ready.
    ///
    /// Fails if `prometheus` or `promtool` is not on `PATH`, if promtool
    /// fails, or if Prometheus exits or isn't ready within 30 s. The error includes
    /// the tail of the log. Tests call `.expect()` on the result.
    pub fn start(history: &OpenMetrics) -> Result<Self, String> {
        let prometheus = find_binary("prometheus")?;
        let promtool = find_binary("promtool")?;
        let dir = temp_dir()?;
        let input = dir.path().join("history.om");
        fs::write(&input, history.render())
            .map_err(|e| format!("writing {}: {e}", input.display()))?;
        let output = Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
            .arg(&input)
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", promtool.display()))?;
        if !output.status.success() {
            return Err(format!(
                "promtool tsdb create-blocks-from openmetrics failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            ));
        }
        Self::launch(&prometheus, dir)
    }

    /// Starts Prometheus without any data, for tests that need no history.
    pub fn start_empty() -> Result<Self, String> {
        let prometheus = find_binary("prometheus")?;
        Self::launch(&prometheus, temp_dir()?)
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn launch(binary: &Path, dir: TempDir) -> Result<Self, String> {
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, CONFIG).map_err(|e| format!("writing {}: {e}", config.display()))?;
        let mut attempt = 1;
        loop {
            let port = free_port();
            let log = dir.path().join(format!("prometheus-{attempt}.log"));
            let mut child = spawn(binary, &config, &dir.path().join("data"), port, &log)?;
            match wait_ready(&mut child, port, &log) {
                Ok(()) => return Ok(Self { child, port, dir }),
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // Another process may have taken the port after `free_port` released it.
                    if attempt < START_ATTEMPTS && error.contains("address already in use") {
                        attempt += 1;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago (bound to `127.0.0.1:0`, then released).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding an ephemeral loopback port")
        .port()
}

/// A loopback URL where nothing listens, for "Prometheus is down" tests.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn find_binary(name: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("`{name}` not found on PATH. {MISSING_HINT}"))
}

fn temp_dir() -> Result<TempDir, String> {
    tempfile::Builder::new()
        .prefix("rollout-guard-prometheus-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))
}

fn spawn(
    binary: &Path,
    config: &Path,
    data: &Path,
    port: u16,
    log: &Path,
) -> Result<Child, String> {
    let stderr = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let stdout = stderr
        .try_clone()
        .map_err(|e| format!("duplicating {}: {e}", log.display()))?;
    Command::new(binary)
        .arg(path_flag("--config.file=", config))
        .arg(path_flag("--storage.tsdb.path=", data))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("running {}: {e}", binary.display()))
}

fn path_flag(flag: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(flag);
    arg.push(path);
    arg
}

/// Polls `/-/ready` until it answers 200 while our child is still running
/// (so a different server that took the port doesn't count).
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = probe_ready(port);
        let exited = child
            .try_wait()
            .map_err(|e| format!("waiting for prometheus: {e}"))?;
        match exited {
            Some(status) => {
                return Err(format!(
                    "prometheus exited with {status} before it was ready; log tail:\n{}",
                    log_tail(log)
                ));
            }
            None if ready => return Ok(()),
            None if Instant::now() >= deadline => {
                return Err(format!(
                    "prometheus wasn't ready within {READY_TIMEOUT:?}; log tail:\n{}",
                    log_tail(log)
                ));
            }
            None => thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// Sends a raw `GET /-/ready HTTP/1.0` and reports whether the status is 200.
fn probe_ready(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    if stream
        .write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    // HTTP/1.0: the server closes the connection after the response.
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    // Status line: `HTTP/1.x 200 OK`.
    String::from_utf8_lossy(&response).split_whitespace().nth(1) == Some("200")
}

/// The last 40 lines of the log.
fn log_tail(log: &Path) -> String {
    match fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}
