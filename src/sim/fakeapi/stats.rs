//! What the fake server served: request counts and bytes by verb and resource, and a log of
//! every request, for tests that assert on API traffic and for the controller's cost
//! benchmark.
//!
//! Owns the counters and their snapshot type [`RequestStats`]. It does not classify requests
//! (the HTTP layer names the verb and resource) and never refuses one.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Requests and bytes for one (verb, resource).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Requests served.
    pub requests: u64,
    /// Response bytes, streamed watch and log bodies included as they are sent.
    pub bytes_sent: u64,
    /// Request body bytes.
    pub bytes_received: u64,
}

/// One request, as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The HTTP method (`GET`, `PATCH`, ...).
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// `pods`, `pods/log`, `apps/deployments`, `apps/deployments/status`,
    /// `events.k8s.io/events`, `coordination.k8s.io/leases`; for discovery paths the path.
    pub resource: String,
    /// The HTTP status answered (for a watch, the status of the stream: 200).
    pub status: u16,
}

/// A snapshot of the server's request counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestStats {
    /// Totals over every request.
    pub total: Counter,
    /// Keyed by (verb, resource), as in [`RequestRecord`].
    pub by_verb_resource: BTreeMap<(String, String), Counter>,
    /// Every request in arrival order (the oldest are dropped past [`MAX_LOGGED`]).
    pub log: Vec<RequestRecord>,
}

/// The request log keeps at most this many records.
pub const MAX_LOGGED: usize = 100_000;

impl RequestStats {
    /// Requests for a verb and resource (`stats.count("patch", "apps/deployments")`).
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.counter(verb, resource).requests
    }

    /// The counter for a verb and resource (zero if never requested).
    pub fn counter(&self, verb: &str, resource: &str) -> Counter {
        self.by_verb_resource
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Bytes sent in answer to one verb, whatever the resource (`"watch"`, `"list"`).
    pub fn bytes_sent_for(&self, verb: &str) -> u64 {
        self.by_verb_resource
            .iter()
            .filter(|((v, _), _)| v == verb)
            .map(|(_, c)| c.bytes_sent)
            .sum()
    }

    /// Requests of any verb to a resource.
    pub fn count_resource(&self, resource: &str) -> u64 {
        self.by_verb_resource
            .iter()
            .filter(|((_, r), _)| r == resource)
            .map(|(_, c)| c.requests)
            .sum()
    }
}

/// The live counters behind the handle.
#[derive(Default)]
pub(crate) struct Stats {
    inner: Mutex<RequestStats>,
}

impl Stats {
    /// Counts a request when it arrives.
    pub(super) fn request(&self, record: RequestRecord, bytes_received: u64) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.total.requests += 1;
        s.total.bytes_received += bytes_received;
        let c = s
            .by_verb_resource
            .entry((record.verb.clone(), record.resource.clone()))
            .or_default();
        c.requests += 1;
        c.bytes_received += bytes_received;
        if s.log.len() >= MAX_LOGGED {
            s.log.drain(..MAX_LOGGED / 10);
        }
        s.log.push(record);
    }

    /// Counts response bytes (called again for every chunk of a stream).
    pub(super) fn sent(&self, verb: &str, resource: &str, bytes: u64) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.total.bytes_sent += bytes;
        // A stream opened before a reset still counts its bytes (with no request).
        s.by_verb_resource
            .entry((verb.to_string(), resource.to_string()))
            .or_default()
            .bytes_sent += bytes;
    }

    pub(super) fn snapshot(&self) -> RequestStats {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn reset(&self) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = RequestStats::default();
    }
}
