//! What the judgement needs from a metric store, as plain data and one trait.
//!
//! Owns the sample types (`Series`, `Point`), the [`MetricSource`] trait that the Prometheus
//! adapter, the demo's simulation and the tests implement, and the typed errors a source may
//! return. Nothing here performs I/O.

use std::collections::BTreeMap;
use std::future::Future;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::duration::PromDuration;

/// One sample: unix time in seconds and a value (which may be NaN; the judge drops those).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub t: f64,
    pub v: f64,
}

/// One series: its labels and its samples in time order. An instant query returns series of
/// one point each.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<Point>,
}

impl Series {
    /// A series with a `pod` label, for tests and simulations.
    pub fn for_pod(pod: &str, points: impl IntoIterator<Item = (f64, f64)>) -> Series {
        Series {
            labels: BTreeMap::from([("pod".to_string(), pod.to_string())]),
            points: points.into_iter().map(|(t, v)| Point { t, v }).collect(),
        }
    }

    /// A short name for messages: the `pod` label if there is one.
    pub fn name(&self) -> String {
        self.labels
            .get("pod")
            .cloned()
            .unwrap_or_else(|| format!("{:?}", self.labels))
    }
}

/// Why a query got no answer. Every kind is inconclusive for the judge, never a failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// Could not connect or the connection broke.
    #[error("metric source unreachable: {0}")]
    Unreachable(String),
    /// No answer within the query timeout.
    #[error("query timed out after {0}")]
    Timeout(PromDuration),
    /// The source refused the query (bad PromQL, bad parameters).
    #[error("query rejected: {0}")]
    BadQuery(String),
    /// The source answered with an error status (auth, overload, internal error).
    #[error("metric source error: {0}")]
    Server(String),
    /// The answer was not of the expected shape.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// A store of time series that answers PromQL, instantly or over a range.
///
/// Implementations must only return samples at or before the time asked for, so that a replay
/// (`backtest`) sees exactly what the live controller saw at that moment.
pub trait MetricSource: Sync {
    /// An instant query evaluated at `at`.
    fn instant(
        &self,
        query: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<Vec<Series>, SourceError>> + Send;

    /// A range query from `start` to `end` inclusive, one point per `step`.
    fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> impl Future<Output = Result<Vec<Series>, SourceError>> + Send;
}

/// Unix seconds of a timestamp, as sample times are kept.
pub fn unix_seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}
