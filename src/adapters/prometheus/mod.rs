//! The Prometheus adapter: [`MetricSource`] over Prometheus' HTTP API, through
//! `prometheus-http-query`.
//!
//! Owns the connection settings (base URL with a path prefix, timeout, bearer-token file, basic
//! auth, extra headers such as `X-Scope-OrgID`, a CA file) and the translation of every failure
//! into a typed [`SourceError`], which the judge turns into `inconclusive`. It does not build
//! queries or judge their answers; [`answer`] reads them.

mod answer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::Timestamp;
use prometheus_http_query::{Client, Error as PromError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::adapters::errors::chain;
use crate::analysis::duration::PromDuration;
use crate::analysis::source::{MetricSource, Series, SourceError};

/// How to reach Prometheus (or anything that speaks its query API: Thanos, Mimir, VictoriaMetrics).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL, with a path prefix if Prometheus is served under one
    /// (`https://mimir.example/prometheus`). A trailing slash is ignored.
    pub url: String,
    /// Per-query timeout, sent to Prometheus and enforced on the request.
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// A file holding a bearer token, re-read for every query so that rotated tokens work.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic auth, if Prometheus asks for it.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Extra request headers, e.g. `X-Scope-OrgID` for a Mimir or Thanos tenant.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The largest answer body read, in bytes; a larger one makes the rule inconclusive
    /// ("answer too large") instead of taking the controller's memory.
    #[serde(default = "default_max_answer_bytes")]
    pub max_answer_bytes: usize,
    /// The most series one answer may hold (a query that lost its `sum by (pod)` returns one per
    /// container, scrape job and label combination).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// The most answer bytes held at once by all the queries being read together (the
    /// controller runs several evaluations at once, each with its queries in parallel); an
    /// answer that would go beyond makes its rule inconclusive. With `max_answer_bytes`
    /// alone, 18 queries × 8 evaluations of 16 MiB could take 2.3 GB.
    #[serde(default = "default_max_bytes_in_flight")]
    pub max_bytes_in_flight: usize,
}

fn default_max_answer_bytes() -> usize {
    16 << 20
}

fn default_max_bytes_in_flight() -> usize {
    32 << 20
}

fn default_max_series() -> usize {
    5_000
}

/// HTTP basic auth; the password comes from a file so it never sits in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// A file holding the password (a mounted Secret).
    pub password_file: PathBuf,
}

fn default_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}

impl PrometheusConfig {
    /// Settings with only a URL.
    pub fn new(url: impl Into<String>) -> Self {
        PrometheusConfig {
            url: url.into(),
            timeout: default_timeout(),
            bearer_token_file: None,
            basic_auth: None,
            headers: BTreeMap::new(),
            ca_file: None,
            max_answer_bytes: default_max_answer_bytes(),
            max_series: default_max_series(),
            max_bytes_in_flight: default_max_bytes_in_flight(),
        }
    }
}

/// Settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL does not parse, or its scheme is not http or https.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file named in the settings cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    File {
        /// Which file it is ("CA file", "bearer token file", ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// A header (an extra one, or the `Authorization` built from a secret) is not valid HTTP.
    #[error("invalid header {name:?}: {reason}")]
    Header {
        /// The header's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("invalid CA file {path}: {reason}")]
    Ca {
        /// The CA file's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client cannot be built (the reason as text).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// `max_bytes_in_flight` is below `max_answer_bytes`.
    #[error(
        "prometheus.max_bytes_in_flight ({in_flight}) must be at least prometheus.max_answer_bytes ({answer}), or the largest answer allowed could never be read"
    )]
    Budget {
        /// `max_bytes_in_flight`, in bytes.
        in_flight: usize,
        /// `max_answer_bytes`, in bytes.
        answer: usize,
    },
}

/// A Prometheus query endpoint.
#[derive(Clone)]
pub struct PrometheusSource {
    client: Client,
    timeout: PromDuration,
    token_file: Option<PathBuf>,
    url: String,
    limits: answer::Limits,
    /// The bytes of answers being read, in KiB, shared by every clone of this source.
    in_flight: Arc<Semaphore>,
    max_bytes_in_flight: usize,
}

/// The URL as `prometheus-http-query` wants it: no trailing slash (one breaks every path).
pub fn normalise_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The settings' URL normalised, if it is an http or https URL.
fn checked_url(cfg: &PrometheusConfig) -> Result<String, ConfigError> {
    let url = normalise_url(&cfg.url);
    let parsed = reqwest::Url::parse(&url).map_err(|e| ConfigError::Url {
        url: cfg.url.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::Url {
            url: cfg.url.clone(),
            reason: "the scheme must be http or https".into(),
        });
    }
    Ok(url)
}

/// The headers every request carries: the configured ones and basic auth (its password file
/// read now), all marked sensitive.
fn default_headers(cfg: &PrometheusConfig) -> Result<HeaderMap, ConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let bad = |reason: String| ConfigError::Header {
            name: name.clone(),
            reason,
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let mut v = HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?;
        v.set_sensitive(true);
        headers.insert(n, v);
    }
    if let Some(auth) = &cfg.basic_auth {
        let password = read_secret("basic-auth password file", &auth.password_file)?;
        let encoded = BASE64.encode(format!("{}:{}", auth.username, password));
        let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|e| {
            ConfigError::Header {
                name: "Authorization".into(),
                reason: e.to_string(),
            }
        })?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    Ok(headers)
}

/// The HTTP client: the settings' timeouts, `headers` on every request, and the CA file's
/// certificates trusted too.
fn http_client(cfg: &PrometheusConfig, headers: HeaderMap) -> Result<reqwest::Client, ConfigError> {
    // The server gets the query timeout; the request gets a little more, so that a
    // Prometheus-side timeout comes back as its own answer rather than a broken connection.
    let request_timeout = cfg.timeout.as_std() + Duration::from_secs(2);
    let mut builder = reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(Duration::from_secs(5).min(request_timeout))
        .default_headers(headers);
    if let Some(path) = &cfg.ca_file {
        builder = builder.tls_certs_merge(ca_certs(path)?);
    }
    builder
        .build()
        .map_err(|e| ConfigError::Client(e.to_string()))
}

/// The certificates of the PEM bundle at `path` (at least one).
fn ca_certs(path: &Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let pem = std::fs::read(path).map_err(|source| ConfigError::File {
        what: "CA file",
        path: path.to_path_buf(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::Ca {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(ConfigError::Ca {
            path: path.to_path_buf(),
            reason: "no PEM certificate in it".into(),
        });
    }
    Ok(certs)
}

impl PrometheusSource {
    /// Builds the client. Files named in the settings are read now, so a typo fails at start.
    pub fn new(cfg: &PrometheusConfig) -> Result<Self, ConfigError> {
        if cfg.max_bytes_in_flight < cfg.max_answer_bytes {
            return Err(ConfigError::Budget {
                in_flight: cfg.max_bytes_in_flight,
                answer: cfg.max_answer_bytes,
            });
        }
        let url = checked_url(cfg)?;
        let headers = default_headers(cfg)?;
        if let Some(path) = &cfg.bearer_token_file {
            read_secret("bearer token file", path)?;
        }
        let http = http_client(cfg, headers)?;
        let client = Client::from(http, &url).map_err(|e| ConfigError::Url {
            url: cfg.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(PrometheusSource {
            client,
            timeout: cfg.timeout,
            token_file: cfg.bearer_token_file.clone(),
            url,
            limits: answer::Limits {
                max_bytes: cfg.max_answer_bytes,
                max_series: cfg.max_series,
            },
            in_flight: Arc::new(Semaphore::new(
                (cfg.max_bytes_in_flight / 1024).min(Semaphore::MAX_PERMITS),
            )),
            max_bytes_in_flight: cfg.max_bytes_in_flight,
        })
    }

    /// The base URL queries go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks Prometheus for `1`: tells a wrong URL, a dead server or refused credentials apart
    /// from a working endpoint before any rule runs.
    pub async fn check(&self) -> Result<(), SourceError> {
        self.instant("vector(1)", Timestamp::now())
            .await
            .map(|_| ())
    }

    fn auth_header(&self) -> Result<Option<HeaderValue>, SourceError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let token = read_secret("bearer token file", path)
            .map_err(|e| SourceError::Server(e.to_string()))?;
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            SourceError::Server(format!(
                "the bearer token in {} is not a valid header",
                path.display()
            ))
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    fn timeout_ms(&self) -> i64 {
        self.timeout.as_std().as_millis() as i64
    }
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn read_secret(what: &'static str, path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| ConfigError::File {
            what,
            path: path.clone(),
            source,
        })
}

impl MetricSource for PrometheusSource {
    async fn instant(&self, query: &str, at: Timestamp) -> Result<Vec<Series>, SourceError> {
        let mut q = self
            .client
            .query(query)
            .at(at.as_second())
            .timeout(self.timeout_ms());
        if let Some(auth) = self.auth_header()? {
            q = q.header(AUTHORIZATION, auth);
        }
        let response = q.get_raw().await.map_err(|e| map_error(e, self.timeout))?;
        self.read(response, answer::Kind::Instant).await
    }

    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        let mut q = self
            .client
            .query_range(
                query,
                start.as_second(),
                end.as_second(),
                step.as_secs_f64(),
            )
            .timeout(self.timeout_ms());
        if let Some(auth) = self.auth_header()? {
            q = q.header(AUTHORIZATION, auth);
        }
        let response = q.get_raw().await.map_err(|e| map_error(e, self.timeout))?;
        self.read(response, answer::Kind::Range).await
    }
}

impl PrometheusSource {
    /// Reads an answer's body, no more than `max_answer_bytes` of it, and its series.
    async fn read(
        &self,
        mut response: reqwest::Response,
        kind: answer::Kind,
    ) -> Result<Vec<Series>, SourceError> {
        let status = response.status().as_u16();
        let max = self.limits.max_bytes;
        let too_large = || {
            SourceError::TooLarge(format!(
                "the answer is larger than {max} bytes (prometheus.max_answer_bytes)"
            ))
        };
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        // The bytes read so far, held against the budget of all answers read at once until
        // the answer is parsed. Never waited for: readers that each hold part of the budget
        // and wait for more would wait for ever.
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| body_error(&e, self.timeout))?
        {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            let kib = u32::try_from(chunk.len().div_ceil(1024)).unwrap_or(u32::MAX);
            let permit = self
                .in_flight
                .clone()
                .try_acquire_many_owned(kib)
                .map_err(|_| {
                    SourceError::TooLarge(format!(
                        "the answers being read at once would hold more than {} bytes (prometheus.max_bytes_in_flight)",
                        self.max_bytes_in_flight
                    ))
                })?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            body.extend_from_slice(&chunk);
        }
        let answer = answer::read(status, &body, kind, self.limits, self.timeout);
        drop(held);
        answer
    }
}

/// A body that broke off while it was read.
fn body_error(e: &reqwest::Error, timeout: PromDuration) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout(timeout)
    } else {
        SourceError::Unreachable(format!("the answer broke off: {}", chain(e)))
    }
}

fn map_error(e: PromError, timeout: PromDuration) -> SourceError {
    match e {
        PromError::Prometheus(p) if p.is_bad_data() => {
            SourceError::BadQuery(p.message().to_string())
        }
        PromError::Prometheus(p) if p.is_timeout() || p.is_canceled() => {
            SourceError::Timeout(timeout)
        }
        PromError::Prometheus(p) => {
            SourceError::Server(format!("{:?}: {}", p.error_type(), p.message()))
        }
        PromError::Client(c) => match c.inner() {
            Some(r) if r.is_timeout() => SourceError::Timeout(timeout),
            Some(r) if r.is_connect() => SourceError::Unreachable(chain(r)),
            Some(r) if r.status().is_some() => SourceError::Server(format!("{c}: {}", chain(r))),
            Some(r) => SourceError::Unreachable(format!("{c}: {}", chain(r))),
            None => SourceError::Unexpected(c.to_string()),
        },
        other => SourceError::Unexpected(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-route server answering every range query with `series` series of one point.
    async fn serving(series: usize) -> String {
        let body: String = {
            let items: Vec<String> = (0..series)
                .map(|i| format!(r#"{{"metric":{{"pod":"p{i}"}},"values":[[1790000000,"1"]]}}"#))
                .collect();
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
                items.join(",")
            )
        };
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn answers_read_at_once_share_one_byte_budget() {
        // An answer of about 1.6 MB; a budget of 2 MiB for all answers together.
        let url = serving(30_000).await;
        let mut cfg = PrometheusConfig::new(url);
        cfg.max_answer_bytes = 2 << 20;
        cfg.max_bytes_in_flight = 2 << 20;
        cfg.max_series = 100_000;
        let src = PrometheusSource::new(&cfg).unwrap();
        let (start, end) = (
            Timestamp::from_second(1_790_000_000).unwrap(),
            Timestamp::from_second(1_790_000_060).unwrap(),
        );
        let step = PromDuration::from_secs(30);
        assert_eq!(
            src.range("x", start, end, step).await.unwrap().len(),
            30_000
        );
        // Another answer being read holds most of the budget: this one does not fit beside it.
        let other = src.in_flight.clone().try_acquire_many_owned(1024).unwrap();
        let e = src.range("x", start, end, step).await.unwrap_err();
        assert!(
            matches!(&e, SourceError::TooLarge(m) if m.contains("prometheus.max_bytes_in_flight")),
            "{e}"
        );
        // Once it is done, the budget is whole again.
        drop(other);
        assert_eq!(
            src.range("x", start, end, step).await.unwrap().len(),
            30_000
        );
        assert_eq!(
            src.in_flight.available_permits(),
            2048,
            "nothing kept after reading"
        );
        // A budget below the largest answer allowed is refused at start.
        cfg.max_bytes_in_flight = 1 << 20;
        let e = PrometheusSource::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("max_bytes_in_flight"), "{e}");
    }

    #[test]
    fn trailing_slashes_are_dropped() {
        assert_eq!(normalise_url("http://p:9090/"), "http://p:9090");
        assert_eq!(normalise_url(" http://p/prefix// "), "http://p/prefix");
    }

    #[test]
    fn bad_settings_fail_at_start_with_a_clear_message() {
        let e = PrometheusSource::new(&PrometheusConfig::new("not a url"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid Prometheus URL"), "{e}");
        let e = PrometheusSource::new(&PrometheusConfig::new("ftp://x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http or https"), "{e}");
        let mut cfg = PrometheusConfig::new("http://127.0.0.1:9");
        cfg.bearer_token_file = Some("/nonexistent/token".into());
        let e = PrometheusSource::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("bearer token file /nonexistent/token"), "{e}");
        let mut cfg = PrometheusConfig::new("http://127.0.0.1:9");
        cfg.headers
            .insert("X-Scope-OrgID".into(), "bad\nvalue".into());
        assert!(PrometheusSource::new(&cfg).is_err());
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut cfg = PrometheusConfig::new("https://127.0.0.1:9");
        cfg.ca_file = Some(ca);
        let e = PrometheusSource::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("CA file"), "{e}");
    }
}
