//! What the judgement needs from a metric store, as plain data and one trait.
//!
//! Owns the sample types (`Series`, `Point`), the [`MetricSource`] trait that the Prometheus
//! adapter, the demo's simulation and the tests implement, and the typed errors a source may
//! return. Nothing here performs I/O.

use std::collections::BTreeMap;
use std::future::Future;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::analysis::duration::PromDuration;

mod consistent;
use crate::analysis::phplog::ErrorKind;
pub use consistent::Consistent;

/// One sample: unix time in seconds and a value (which may be NaN or infinite: the judge treats
/// such a point as damaged, never as zero).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When the sample was taken, in unix seconds.
    pub t: f64,
    /// The sample's value, in the query's unit.
    pub v: f64,
}

/// One series: its labels and its samples in time order. An instant query returns series of
/// one point each.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The series' labels (`pod`, `namespace`, …).
    pub labels: BTreeMap<String, String>,
    /// Its samples, oldest first.
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
    /// An answer arrived but cannot be read: not Prometheus' JSON, a result type the query
    /// cannot have (a vector for a range query), native histograms where numbers are needed.
    #[error("unreadable answer: {0}")]
    Malformed(String),
    /// The source said its answer may be incomplete (a Thanos or Mimir partial response, a
    /// Prometheus query warning): data that may be missing is never read as zero.
    #[error("partial answer: {0}")]
    Partial(String),
    /// The answer is larger than the configured bounds allow.
    #[error("answer too large: {0}")]
    TooLarge(String),
    /// Anything else that went wrong between asking and having an answer.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// What kind of [`SourceError`] a verdict's query met, for records and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceErrorKind {
    /// Could not connect ([`SourceError::Unreachable`]).
    Unreachable,
    /// No answer in time ([`SourceError::Timeout`]).
    Timeout,
    /// The query was refused ([`SourceError::BadQuery`]).
    BadQuery,
    /// An error status ([`SourceError::Server`]).
    Server,
    /// An unreadable answer ([`SourceError::Malformed`]).
    Malformed,
    /// A possibly incomplete answer ([`SourceError::Partial`]).
    Partial,
    /// An answer beyond the configured bounds ([`SourceError::TooLarge`]).
    TooLarge,
    /// Anything else ([`SourceError::Unexpected`]).
    Unexpected,
}

impl SourceError {
    /// Its kind, without the message.
    pub fn kind(&self) -> SourceErrorKind {
        match self {
            SourceError::Unreachable(_) => SourceErrorKind::Unreachable,
            SourceError::Timeout(_) => SourceErrorKind::Timeout,
            SourceError::BadQuery(_) => SourceErrorKind::BadQuery,
            SourceError::Server(_) => SourceErrorKind::Server,
            SourceError::Malformed(_) => SourceErrorKind::Malformed,
            SourceError::Partial(_) => SourceErrorKind::Partial,
            SourceError::TooLarge(_) => SourceErrorKind::TooLarge,
            SourceError::Unexpected(_) => SourceErrorKind::Unexpected,
        }
    }
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

    /// The PHP errors of one ReplicaSet's pod logs, for `logs` rules. Sources without logs
    /// refuse, and the rule is inconclusive.
    fn logs(
        &self,
        query: &LogQuery,
    ) -> impl Future<Output = Result<LogCounts, SourceError>> + Send {
        let _ = query;
        async {
            Err(SourceError::BadQuery(
                "no pod-log source is configured, so `logs` rules cannot be evaluated".into(),
            ))
        }
    }

    /// What is kept of the pod-log source's old pods over a restart (see [`KeptLogs`]);
    /// `None` for sources without pod logs.
    fn kept_logs(&self) -> Option<&dyn KeptLogs> {
        None
    }
}

/// What a `logs` rule asks of one ReplicaSet: the PHP errors its pods printed in a window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogQuery {
    /// The ReplicaSet's namespace.
    pub namespace: String,
    /// The ReplicaSet whose pods' logs are read.
    pub replicaset: String,
    /// The container to read; when `None`, the pod's main container as the log reader picks it.
    pub container: Option<String>,
    /// Whether this is the new ReplicaSet (all of whose pods are read while they are few) or
    /// an old one (a sample of pods is enough for a baseline).
    pub new: bool,
    /// The window's start: errors printed before it do not count.
    pub start: Timestamp,
    /// The window's end: the evaluation time.
    pub end: Timestamp,
}

impl LogQuery {
    /// A description for decision records, in place of a PromQL text.
    pub fn describe(&self) -> String {
        format!(
            "pods/log of {}/{}-* container={} from {} to {}",
            self.namespace,
            self.replicaset,
            self.container.as_deref().unwrap_or("(default)"),
            self.start,
            self.end
        )
    }
}

/// The PHP errors one ReplicaSet's pods printed over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogCounts {
    /// Pods whose logs were read.
    pub pods_read: u32,
    /// Pods the ReplicaSet has.
    pub pods_total: u32,
    /// Pods gone since they were read, whose counts (up to their last read) still count.
    pub pods_departed: u32,
    /// Minutes of log covered, summed over the pods read: the exposure errors are counted on.
    pub pod_minutes: f64,
    /// Errors by signature, most frequent first.
    pub errors: Vec<SignatureCount>,
    /// Whether some log was cut (`limitBytes`) or a pod's signatures overflowed their cap.
    pub truncated: bool,
    /// Pods that could not be read and why (gone, no such container).
    pub skipped: Vec<String>,
}

/// How often one error signature was printed.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureCount {
    /// The error's kind.
    pub kind: ErrorKind,
    /// The message with paths, line numbers and ids normalised away.
    pub signature: String,
    /// How many times it was printed in the window.
    pub count: u64,
    /// One occurrence as written.
    pub example: String,
}

impl LogCounts {
    /// Merges another ReplicaSet's counts into these (the old side may be several).
    pub fn merge(&mut self, other: LogCounts) {
        self.pods_read += other.pods_read;
        self.pods_total += other.pods_total;
        self.pods_departed += other.pods_departed;
        self.pod_minutes += other.pod_minutes;
        self.truncated |= other.truncated;
        self.skipped.extend(other.skipped);
        for e in other.errors {
            match self
                .errors
                .iter_mut()
                .find(|m| m.kind == e.kind && m.signature == e.signature)
            {
                Some(m) => m.count += e.count,
                None => self.errors.push(e),
            }
        }
        self.errors
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
    }
}

/// Reads the PHP errors of a ReplicaSet's pods from their logs.
pub trait LogSource: Sync {
    /// The PHP errors the pods of `query`'s ReplicaSet printed over its window, counted by
    /// signature.
    fn logs(&self, query: &LogQuery)
    -> impl Future<Output = Result<LogCounts, SourceError>> + Send;

    /// What is kept of its old pods over a restart (see [`KeptLogs`]); `None` when nothing is.
    fn kept_logs(&self) -> Option<&dyn KeptLogs> {
        None
    }
}

/// What a pod-log source counted of a Deployment's old pods, as text kept outside the process
/// (the controller stores it beside the Deployment), so a restarted controller still holds the
/// old version's counts once its pods have left.
pub trait KeptLogs: Sync {
    /// What was counted of the pods of `replicasets` (in `namespace`); `None` when no pod of
    /// them was read.
    fn keep(&self, namespace: &str, replicasets: &[String]) -> Option<String>;

    /// Takes back what [`KeptLogs::keep`] gave, for the pods of `replicasets` in `namespace`
    /// only, as of `now` (pods this process already knows are left as they are); how many pods
    /// were taken, or why none was.
    fn take_back(
        &self,
        namespace: &str,
        replicasets: &[String],
        kept: &str,
        now: Timestamp,
    ) -> Result<usize, String>;
}

/// A metric source with a log source beside it, for rule sets with `logs` rules.
pub struct WithLogs<M, L> {
    /// The source of metric queries.
    pub metrics: M,
    /// The source of pod logs.
    pub logs: L,
}

impl<M: MetricSource, L: LogSource> MetricSource for WithLogs<M, L> {
    fn instant(
        &self,
        query: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<Vec<Series>, SourceError>> + Send {
        self.metrics.instant(query, at)
    }

    fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> impl Future<Output = Result<Vec<Series>, SourceError>> + Send {
        self.metrics.range(query, start, end, step)
    }

    fn logs(
        &self,
        query: &LogQuery,
    ) -> impl Future<Output = Result<LogCounts, SourceError>> + Send {
        self.logs.logs(query)
    }

    fn kept_logs(&self) -> Option<&dyn KeptLogs> {
        self.logs.kept_logs()
    }
}

/// Unix seconds of a timestamp, as sources report sample times.
pub fn unix_seconds(t: Timestamp) -> f64 {
    crate::analysis::time::to_seconds(crate::analysis::time::from_timestamp(t))
}
