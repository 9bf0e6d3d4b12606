//! A stand-in for Prometheus that answers every query with an empty result and counts them.
//!
//! It answers `GET`/`POST /api/v1/query` (an empty vector) and `/api/v1/query_range` (an empty
//! matrix) as `prometheus-http-query` 0.9 expects (the daemon sends `GET` with the query in the
//! URL), and counts every request by endpoint, with the distinct `pod=~"..."` selectors seen, so
//! the benchmark can tell how many queries and how many ReplicaSets a cycle touched, and the
//! most queries it had in flight at once. Each answer waits `latency` first, as a real
//! Prometheus takes a few milliseconds to evaluate a small range query. Empty
//! answers make every verdict inconclusive, so the controller never acts: the cost measured is
//! that of watching and analysing, not of rolling back.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::any;

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;

/// What the fake Prometheus was asked.
#[derive(Default)]
pub struct Counts {
    latency: Duration,
    instant: AtomicU64,
    range: AtomicU64,
    other: AtomicU64,
    in_flight: AtomicU64,
    /// The most queries in flight at once since the last [`Counts::take_max_in_flight`].
    max_in_flight: AtomicU64,
    /// Distinct `pod=~"..."` selectors, one per ReplicaSet side queried.
    selectors: Mutex<HashSet<String>>,
}

/// A snapshot of [`Counts`].
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub instant: u64,
    pub range: u64,
    pub other: u64,
}

impl Snapshot {
    /// Queries of any kind (`other` are requests to paths the daemon should never use).
    pub fn queries(&self) -> u64 {
        self.instant + self.range
    }

    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            instant: self.instant - earlier.instant,
            range: self.range - earlier.range,
            other: self.other - earlier.other,
        }
    }
}

impl Counts {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            instant: self.instant.load(Ordering::Relaxed),
            range: self.range.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }

    /// The most queries in flight at once since the last call.
    pub fn take_max_in_flight(&self) -> u64 {
        self.max_in_flight.swap(0, Ordering::Relaxed)
    }

    /// Counts a query in and, after the latency, out.
    async fn serve(&self, params: &HashMap<String, String>, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.note(params);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        // Counted out even if the client gives up while waiting.
        let _out = InFlight(&self.in_flight);
        tokio::time::sleep(self.latency).await;
    }

    /// The distinct pod selectors seen since the last call, and forgets them.
    pub fn take_selectors(&self) -> usize {
        let mut s = self
            .selectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = s.len();
        s.clear();
        n
    }

    fn note(&self, params: &HashMap<String, String>) {
        if let Some(sel) = params.get("query").and_then(|q| pod_selector(q)) {
            self.selectors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(sel.to_string());
        }
    }
}

/// Decrements the in-flight count when dropped.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The first `pod=~"..."` value of a query.
fn pod_selector(query: &str) -> Option<&str> {
    let start = query.find("pod=~\"")? + "pod=~\"".len();
    let len = query[start..].find('"')?;
    Some(&query[start..start + len])
}

/// Serves on a free loopback port until the runtime ends, answering each query after
/// `latency`; returns its address and counters.
pub async fn start(latency: Duration) -> std::io::Result<(SocketAddr, Arc<Counts>)> {
    let counts = Arc::new(Counts {
        latency,
        ..Counts::default()
    });
    let app = Router::new()
        .route("/api/v1/query", any(instant))
        .route("/api/v1/query_range", any(range))
        .fallback(other)
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake Prometheus stopped: {e}");
        }
    });
    Ok((addr, counts))
}

async fn instant(
    State(c): State<Arc<Counts>>,
    Query(params): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    c.serve(&params, &c.instant).await;
    ([(header::CONTENT_TYPE, "application/json")], VECTOR)
}

async fn range(
    State(c): State<Arc<Counts>>,
    Query(params): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    c.serve(&params, &c.range).await;
    ([(header::CONTENT_TYPE, "application/json")], MATRIX)
}

async fn other(State(c): State<Arc<Counts>>) -> impl IntoResponse {
    c.other.fetch_add(1, Ordering::Relaxed);
    (axum::http::StatusCode::NOT_FOUND, "not served by the fake")
}
