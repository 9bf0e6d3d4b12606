//! The `GET /api/v1/namespaces/{ns}/pods/{name}/log` endpoint, including `follow=true`.
//!
//! Owns the kubelet's answers around a log: which container (the only one, or the one named,
//! else 400), 404 for a missing pod, 400 for `previous=true` without a terminated instance,
//! the parameters' parsing, and following a log until the pod goes away, the container
//! restarts, `limitBytes` is spent, or the server shuts down. The lines themselves and their
//! selection are [`super::logs`]'.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tokio::sync::watch;

use super::http::{Reply, Req};
use super::logs::{LogQuery, render, truncate};
use super::resources::FakeResource;
use super::status::ApiError;
use super::store::{ObjKey, Store};

/// Serves a log request.
pub(crate) fn get(req: &Req<'_>, ns: &str, pod_name: &str) -> Result<Reply, ApiError> {
    let q = req.query;
    let key = ObjKey::new(FakeResource::Pods, ns, pod_name);
    let pod = req
        .app
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(FakeResource::Pods, pod_name))?;
    let container = pick_container(&pod, pod_name, q.get("container"))?;
    let since = match (q.get("sinceTime"), q.number("sinceSeconds")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        (Some(t), None) => Some(
            t.parse::<Timestamp>()
                .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?,
        ),
        (None, Some(s)) => Some(Timestamp::now() - SignedDuration::from_secs(s as i64)),
        (None, None) => None,
    };
    let query = LogQuery {
        previous: q.flag("previous"),
        since,
        tail_lines: q.number("tailLines")?.map(|n| n as usize),
        timestamps: q.flag("timestamps"),
        limit_bytes: q.number("limitBytes")?.map(|n| n as usize),
    };
    let (lines, cursor) = {
        let inner = req.app.store.lock();
        if query.previous && !inner.logs.has_previous(ns, pod_name, &container) {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )));
        }
        (
            inner.logs.select(ns, pod_name, &container, &query),
            inner.logs.current_len(ns, pod_name, &container),
        )
    };
    let mut text = render(&lines, query.timestamps);
    if let Some(limit) = query.limit_bytes {
        truncate(&mut text, limit);
    }
    if !q.flag("follow") || query.previous {
        return Ok(Reply::Text(StatusCode::OK, text));
    }
    let follow = Follow {
        store: req.app.store.clone(),
        key,
        uid: pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        restarts: restart_count(&pod, &container),
        container,
        cursor,
        timestamps: query.timestamps,
        remaining: query.limit_bytes.map(|l| l - text.len()),
        first: Some(text),
        logs: req.app.store.subscribe_logs(),
        written: req.app.store.subscribe(),
        shutdown: req.app.shutdown.clone(),
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        f.next_chunk().await.map(|b| (Ok(b), f))
    });
    Ok(Reply::Stream("text/plain", stream.boxed()))
}

/// The container a request means: the named one (which must exist), or the pod's only one.
fn pick_container(pod: &Value, pod_name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let main = names("containers");
    match asked {
        Some(c) if main.iter().chain(&names("initContainers")).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if main.len() == 1 => Ok(main[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            main.join(" ")
        ))),
    }
}

/// `restartCount` of a container, from the pod's status.
fn restart_count(pod: &Value, container: &str) -> Option<i64> {
    pod.pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))?
        .get("restartCount")?
        .as_i64()
}

/// A followed log.
struct Follow {
    store: Arc<Store>,
    key: ObjKey,
    /// The pod instance followed; a new pod with the same name ends the stream.
    uid: Value,
    /// The container instance followed; a restart ends the stream, as when a container exits.
    restarts: Option<i64>,
    container: String,
    /// Lines of the current instance already sent.
    cursor: usize,
    timestamps: bool,
    remaining: Option<usize>,
    first: Option<String>,
    logs: watch::Receiver<u64>,
    written: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
}

impl Follow {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take()
            && !first.is_empty()
        {
            return Some(Bytes::from(first));
        }
        loop {
            if self.remaining == Some(0) {
                return None;
            }
            self.logs.borrow_and_update();
            self.written.borrow_and_update();
            let lines = {
                let inner = self.store.lock();
                let same_instance = inner.get(&self.key).is_some_and(|p| {
                    p.pointer("/metadata/uid") == Some(&self.uid)
                        && restart_count(&p, &self.container) == self.restarts
                });
                let (ns, pod) = (&self.key.namespace, &self.key.name);
                let len = inner.logs.current_len(ns, pod, &self.container);
                if !same_instance || len < self.cursor {
                    return None; // pod gone or container restarted: the instance ended
                }
                let lines = inner
                    .logs
                    .current_from(ns, pod, &self.container, self.cursor);
                self.cursor = len;
                lines
            };
            if !lines.is_empty() {
                let mut text = render(&lines, self.timestamps);
                if let Some(r) = &mut self.remaining {
                    truncate(&mut text, *r);
                    *r -= text.len();
                }
                return Some(Bytes::from(text));
            }
            tokio::select! {
                _ = self.logs.changed() => {}
                _ = self.written.changed() => {}
                _ = self.shutdown.changed() => return None,
            }
        }
    }
}
