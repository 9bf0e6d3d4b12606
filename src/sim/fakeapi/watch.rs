//! Watch streams: `?watch=true` answered as newline-delimited JSON watch events.
//!
//! Owns a watch's life: the synthetic ADDED events of a watch without a resourceVersion (or
//! with `sendInitialEvents=true`, ended by the `k8s.io/initial-events-end` bookmark), the
//! replay of the history after a given resourceVersion, live events, periodic BOOKMARKs, the
//! 410 ERROR event when the history no longer reaches back far enough, and the end of the
//! stream at `timeoutSeconds`, at shutdown, or when the handle closes all watches. It reads
//! the store and never writes it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::resources::FakeResource;
use super::selectors::Filter;
use super::status::ApiError;
use super::store::{Change, ChangeType, Store};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub(crate) struct WatchSpec {
    pub resource: FakeResource,
    pub filter: Filter,
    /// Replay changes after this resourceVersion; `None` (no resourceVersion, or `"0"`) starts
    /// with the current state as ADDED events.
    pub since: Option<u64>,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: current state first, then a bookmark marking its end.
    pub initial_events: bool,
    pub timeout: Option<Duration>,
    /// The client asked for metadata only (`Accept: ...;as=PartialObjectMetadata`).
    pub metadata_only: bool,
}

/// What a watch stream listens to besides the store.
pub(crate) struct WatchEnv {
    pub store: Arc<Store>,
    pub bookmark_interval: Duration,
    pub shutdown: watch::Receiver<bool>,
    pub close_all: watch::Receiver<u64>,
}

struct State {
    env: WatchEnv,
    spec: WatchSpec,
    cursor: u64,
    pending: VecDeque<Bytes>,
    finished: bool,
    deadline: Option<Instant>,
    next_bookmark: Instant,
    written: watch::Receiver<u64>,
}

/// The body of a watch response.
pub(crate) fn stream(
    mut env: WatchEnv,
    spec: WatchSpec,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut written = env.store.subscribe();
    written.borrow_and_update();
    env.close_all.borrow_and_update();
    env.shutdown.borrow_and_update();
    let mut pending = VecDeque::new();
    let cursor = match spec.since {
        Some(rv) => rv,
        None => {
            // The current state, read atomically with the version it is current at.
            let inner = env.store.lock();
            for obj in inner.list(spec.resource, spec.filter.namespace.as_deref()) {
                if spec.filter.matches(&obj) {
                    pending.push_back(event_line("ADDED", &obj, spec.metadata_only));
                }
            }
            inner.current_rv()
        }
    };
    if spec.initial_events {
        pending.push_back(bookmark_line(&spec, cursor, true));
    }
    let now = Instant::now();
    let state = State {
        deadline: spec.timeout.map(|t| now + t),
        next_bookmark: now + env.bookmark_interval,
        env,
        spec,
        cursor,
        pending,
        finished: false,
        written,
    };
    futures::stream::unfold(state, |mut st| async move {
        next_chunk(&mut st).await.map(|b| (Ok(b), st))
    })
}

async fn next_chunk(st: &mut State) -> Option<Bytes> {
    loop {
        if let Some(b) = st.pending.pop_front() {
            return Some(b);
        }
        if st.finished || st.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        // Mark the current version seen before reading, so a write after the read wakes us.
        st.written.borrow_and_update();
        let read = st
            .env
            .store
            .lock()
            .changes_since(st.cursor, st.spec.resource);
        match read {
            Err(expired) => {
                st.pending.push_back(error_line(&expired));
                st.finished = true;
                continue;
            }
            Ok((changes, cursor)) => {
                for c in &changes {
                    if let Some(line) = filtered(c, &st.spec) {
                        st.pending.push_back(line);
                    }
                }
                st.cursor = cursor;
                if !st.pending.is_empty() {
                    continue;
                }
            }
        }
        let deadline = st.deadline;
        tokio::select! {
            _ = st.written.changed() => {}
            _ = tokio::time::sleep_until(st.next_bookmark), if st.spec.bookmarks => {
                st.pending.push_back(bookmark_line(&st.spec, st.cursor, false));
                st.next_bookmark = Instant::now() + st.env.bookmark_interval;
            }
            _ = sleep_until_opt(deadline) => return None,
            _ = st.env.close_all.changed() => return None,
            _ = st.env.shutdown.changed() => return None,
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The event a filtered watch sends for a change: a MODIFIED object that stops matching
/// becomes DELETED, one that starts matching becomes ADDED.
fn filtered(c: &Change, spec: &WatchSpec) -> Option<Bytes> {
    let filter = &spec.filter;
    let now = filter.matches(&c.object);
    let kind = match c.kind {
        ChangeType::Added => now.then_some("ADDED"),
        ChangeType::Deleted => now.then_some("DELETED"),
        ChangeType::Modified => {
            let before = c.previous.as_deref().is_some_and(|p| filter.matches(p));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (true, false) => Some("DELETED"),
                (false, true) => Some("ADDED"),
                (false, false) => None,
            }
        }
    };
    kind.map(|k| event_line(k, &c.object, spec.metadata_only))
}

fn event_line(kind: &str, obj: &Value, metadata_only: bool) -> Bytes {
    if metadata_only {
        line(&json!({"type": kind, "object": partial(obj)}))
    } else {
        line(&json!({"type": kind, "object": obj}))
    }
}

/// An object as a `PartialObjectMetadata`: its metadata, nothing of its spec or status.
pub(crate) fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn error_line(err: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": err.to_status()}))
}

/// A BOOKMARK: an object of the watched kind with only its resourceVersion, promising that
/// every change up to that version has been sent.
fn bookmark_line(spec: &WatchSpec, rv: u64, initial_events_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = if spec.metadata_only {
        partial(&json!({"metadata": meta}))
    } else {
        json!({"kind": spec.resource.kind(), "apiVersion": spec.resource.api_version(), "metadata": meta})
    };
    line(&json!({"type": "BOOKMARK", "object": object}))
}

fn line(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).expect("JSON values serialize");
    bytes.push(b'\n');
    Bytes::from(bytes)
}
