//! The pod-log adapter: reads containers' logs through the Kubernetes API
//! (`GET .../pods/{pod}/log?timestamps=true&sinceTime=...&limitBytes=...`) and counts the PHP
//! errors in them, for `logs` rules. No sidecar, no log pipeline.
//!
//! Owns what it costs: at most `max_pods_new` pods of a new ReplicaSet and a sample of
//! `max_pods_old` of an old one per evaluation, at most `limit_bytes` per request, at most
//! `concurrency` requests at once; reading resumes where the last read ended; a restarted
//! container's previous log is read once. A pod that is gone keeps what was counted of it, so
//! the old version's errors still count once its pods have left (a fast rollout, the bake),
//! until no window can reach them. What it keeps per pod is a bounded table of error counts
//! per minute and signature, never log text, so memory stays bounded however much a pod prints
//! and however many pods come and go. Parsing is [`crate::analysis::phplog`]'s; judging
//! is the judge's.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::adapters::kubernetes::HASH_LABEL;
use crate::analysis::phplog::{ErrorKind, LogParser, ParserLimits, PhpError, kubelet_time};
use crate::analysis::rules::MAX_WINDOW;
use crate::analysis::source::{
    KeptLogs, LogCounts, LogQuery, LogSource, SignatureCount, SourceError,
};

mod container;
mod kept;
pub use container::{DEFAULT_CONTAINER_ANNOTATION, KNOWN_SIDECARS};
pub use kept::KEPT_LIMIT;

/// The bounds of log reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogLimits {
    /// Pods of a new ReplicaSet read per evaluation (all of them while they are few).
    pub max_pods_new: usize,
    /// Pods of an old ReplicaSet read per evaluation (a stable sample is enough for a
    /// baseline).
    pub max_pods_old: usize,
    /// Bytes per log request (`limitBytes`).
    pub limit_bytes: i64,
    /// Log requests at once, across all evaluations.
    pub concurrency: usize,
    /// Distinct signatures remembered per pod; more are counted as truncated.
    pub max_signatures_per_pod: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_pods_new: 10,
            max_pods_old: 5,
            limit_bytes: 1 << 20,
            concurrency: 4,
            max_signatures_per_pod: 100,
        }
    }
}

/// Why one pod's log could not be read; the pod is skipped, and named in the verdict.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The pod no longer exists (404): skipped, and what was kept of it forgotten.
    #[error("gone")]
    Gone,
    #[error("no container")]
    NoContainer,
    #[error("shutting down")]
    Closed,
    #[error("{0}")]
    Api(kube::Error),
}

/// Maps a time from the cluster (pod start times) to the controller's clock; the identity
/// outside simulations.
pub type TimeMap = Arc<dyn Fn(Timestamp) -> Timestamp + Send + Sync>;

/// A container's log: (namespace, pod, container).
type PodKey = (String, String, String);

/// The pods sampled from a ReplicaSet, and how many it had.
type Sample = (Vec<String>, u32);

/// Counts PHP errors in pod logs through the Kubernetes API.
pub struct KubeLogs {
    client: Client,
    limits: LogLimits,
    permits: Arc<Semaphore>,
    pods: Mutex<HashMap<PodKey, PodState>>,
    /// One read of a container's log at a time (two rules of one evaluation may ask for the
    /// same pods at once): each read starts from the cursor the previous one left, so no line
    /// is counted twice.
    reading: Mutex<HashMap<PodKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Per (namespace, ReplicaSet): the pods sampled, and how many it had, while it has more
    /// pods than are read.
    samples: Mutex<HashMap<(String, String), Sample>>,
    time_map: TimeMap,
}

/// What is kept of one container's log.
#[derive(Default)]
struct PodState {
    /// The timestamp of the last line read.
    cursor: Option<Timestamp>,
    /// The restart count when last read.
    restarts: i32,
    /// Errors per minute (unix minute) and signature index.
    minutes: BTreeMap<i64, HashMap<usize, u64>>,
    signatures: Vec<(ErrorKind, String, String)>,
    /// The last read stopped at `limit_bytes`: the counts lag the log until a read catches up
    /// (the next read resumes at the cursor, so nothing is skipped).
    behind: bool,
    /// Minutes (unix minute) whose errors were not all counted (signatures beyond
    /// `max_signatures_per_pod`, or the rest of a second skipped): a window over one of them is
    /// incomplete.
    lost: std::collections::BTreeSet<i64>,
    /// The end of the window last asked for: once it is older than any window can reach, the
    /// state is dropped (its ReplicaSet is no longer analysed).
    last_asked: Timestamp,
    /// When the container started (on the controller's clock), and the end of its last read.
    started: Option<Timestamp>,
    read_to: Option<Timestamp>,
    /// The pod is gone: nothing more is read; its counts up to `read_to` still count.
    gone: bool,
}

impl PodState {
    /// The errors counted in minutes `from..=to` by signature, and whether they are complete;
    /// no pods, no exposure.
    fn counts_in(&self, from: i64, to: i64) -> LogCounts {
        let mut by_sig: HashMap<usize, u64> = HashMap::new();
        for (_, counts) in self.minutes.range(from..=to) {
            for (i, n) in counts {
                *by_sig.entry(*i).or_default() += n;
            }
        }
        let errors = by_sig
            .into_iter()
            .map(|(i, count)| {
                let (kind, signature, example) = self.signatures[i].clone();
                SignatureCount {
                    kind,
                    signature,
                    count,
                    example,
                }
            })
            .collect();
        LogCounts {
            errors,
            truncated: self.behind || self.lost.range(from..=to).next().is_some(),
            ..LogCounts::default()
        }
    }

    /// Counts `errors` by minute (at `end` when they have no time) and signature; an error of
    /// a new signature beyond `max_signatures` is not counted, and its minute is marked lost.
    fn count(&mut self, errors: Vec<PhpError>, end: Timestamp, max_signatures: usize) {
        for e in errors {
            let at = e.time.unwrap_or(end);
            let idx = match self
                .signatures
                .iter()
                .position(|(k, s, _)| *k == e.kind && *s == e.signature)
            {
                Some(i) => i,
                None if self.signatures.len() < max_signatures => {
                    self.signatures.push((e.kind, e.signature, e.first_line));
                    self.signatures.len() - 1
                }
                None => {
                    self.lost.insert(minute(at));
                    continue;
                }
            };
            *self
                .minutes
                .entry(minute(at))
                .or_default()
                .entry(idx)
                .or_default() += 1;
        }
    }

    /// Notes a window ending at `end` was asked for, and forgets the minutes no window can
    /// reach any more: nothing older than the longest window can be asked for again.
    fn asked_until(&mut self, end: Timestamp) {
        self.last_asked = end;
        let oldest = minute(horizon(end));
        self.minutes = self.minutes.split_off(&oldest);
        self.lost = self.lost.split_off(&oldest);
    }
}

/// What one read of a container's log found: the errors after the cursor, the time of the
/// last line read, whether any response stopped at `limit_bytes` (`truncated`), and whether
/// the current container's did (`cut`).
struct Read {
    errors: Vec<PhpError>,
    last: Option<Timestamp>,
    truncated: bool,
    cut: bool,
}

/// The restart count of `container` in `pod` (0 when the pod does not say).
fn restart_count(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map_or(0, |c| c.restart_count)
}

/// The unix minute of `t`: errors are kept per minute.
fn minute(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

/// The oldest time a window ending at `end` can reach.
fn horizon(end: Timestamp) -> Timestamp {
    end - SignedDuration::try_from(MAX_WINDOW.as_std()).unwrap_or_default()
}

impl KubeLogs {
    /// Reads logs through `client` within `limits`, taking pod times as the controller's.
    pub fn new(client: Client, limits: LogLimits) -> Self {
        KubeLogs {
            client,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            limits,
            pods: Mutex::new(HashMap::new()),
            reading: Mutex::new(HashMap::new()),
            samples: Mutex::new(HashMap::new()),
            time_map: Arc::new(|t| t),
        }
    }

    /// Uses `map` for the cluster's times (tests and the demo run on a faster clock).
    pub fn with_time_map(mut self, map: TimeMap) -> Self {
        self.time_map = map;
        self
    }

    /// Pods kept in memory (for tests of the bounds).
    pub fn pods_tracked(&self) -> usize {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Reads one container's log from where the last read ended (or the window's start), counts
    /// its PHP errors into what is kept of it, and returns its counts over the window.
    async fn read_pod(
        &self,
        api: &Api<Pod>,
        pod: &Pod,
        container: &str,
        q: &LogQuery,
    ) -> Result<LogCounts, ReadError> {
        let name = pod.name_any();
        let key = (q.namespace.clone(), name.clone(), container.to_string());
        let restarts = restart_count(pod, container);
        let turn = self
            .reading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        // A pod read for the first time has no restarts to catch up on.
        let (cursor, known_restarts) = self
            .pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .map_or((None, restarts), |s| (s.cursor, s.restarts));
        let since = cursor.unwrap_or(q.start).min(q.end);
        let restarted = restarts > known_restarts;
        let mut read = self
            .read_since(api, &name, container, since, cursor, restarted)
            .await?;
        // `sinceTime` takes whole seconds: a second with more than `limit_bytes` of output would
        // be read from its start again and again, never past. Skip to the next second, and
        // count the minute as lost.
        let mut skipped = None;
        if let Some(c) = cursor
            && read.cut
            && read.last == cursor
        {
            skipped = Some(c);
            read.last = Timestamp::from_second(c.as_second() + 1).ok();
        }

        let started = self.started(pod, q.start);
        let covered = (q.end.duration_since(started.max(q.start)).as_secs_f64() / 60.0).max(0.0);

        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        let state = pods.entry(key).or_default();
        state.started = Some(started);
        state.read_to = Some(state.read_to.map_or(q.end, |r| r.max(q.end)));
        state.cursor = read.last.or(state.cursor);
        state.restarts = restarts;
        state.behind = read.truncated;
        if let Some(c) = skipped {
            tracing::warn!(pod = %name, at = %c, "more log in one second than limit_bytes; the rest of that second is not read");
            state.lost.insert(minute(c));
        }
        state.count(read.errors, q.end, self.limits.max_signatures_per_pod);
        state.asked_until(q.end);
        Ok(LogCounts {
            pods_read: 1,
            pod_minutes: covered,
            ..state.counts_in(minute(q.start), minute(q.end))
        })
    }

    /// Reads a container's log since `since` (and first its previous container's, when it
    /// `restarted`), within the limit of requests at once, keeping the errors after `cursor`.
    async fn read_since(
        &self,
        api: &Api<Pod>,
        name: &str,
        container: &str,
        since: Timestamp,
        cursor: Option<Timestamp>,
        restarted: bool,
    ) -> Result<Read, ReadError> {
        let mut errors = Vec::new();
        let mut last = cursor;
        let mut truncated = false;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ReadError::Closed)?;
        // A restart since the last read: what the previous container printed after the cursor.
        if restarted {
            match self.fetch(api, name, container, since, true).await {
                Ok(text) => {
                    truncated |= text.len() as i64 >= self.limits.limit_bytes;
                    parse(&text, cursor, &mut errors, &mut last);
                }
                Err(e) => tracing::debug!(pod = %name, error = %e, "no previous log"),
            }
        }
        let text = self.fetch(api, name, container, since, false).await?;
        let cut = text.len() as i64 >= self.limits.limit_bytes;
        truncated |= cut;
        parse(&text, cursor, &mut errors, &mut last);
        Ok(Read {
            errors,
            last,
            truncated,
            cut,
        })
    }

    /// When `pod` started, on the controller's clock; `otherwise` when it does not say.
    fn started(&self, pod: &Pod, otherwise: Timestamp) -> Timestamp {
        pod.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| (self.time_map)(t.0))
            .unwrap_or(otherwise)
    }

    async fn fetch(
        &self,
        api: &Api<Pod>,
        pod: &str,
        container: &str,
        since: Timestamp,
        previous: bool,
    ) -> Result<String, ReadError> {
        let lp = LogParams {
            container: Some(container.to_string()),
            // The API takes whole seconds: lines already read are skipped by time.
            since_time: Some(Timestamp::from_second(since.as_second()).unwrap_or(since)),
            timestamps: true,
            limit_bytes: Some(self.limits.limit_bytes),
            previous,
            ..LogParams::default()
        };
        api.logs(pod, &lp).await.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 404 => ReadError::Gone,
            _ => ReadError::Api(e),
        })
    }
}

/// Parses a log read, skipping lines at or before the cursor; moves the cursor on.
fn parse(
    text: &str,
    cursor: Option<Timestamp>,
    out: &mut Vec<PhpError>,
    last: &mut Option<Timestamp>,
) {
    let mut parser = LogParser::new(ParserLimits::default());
    for line in text.lines() {
        let t = kubelet_time(line);
        if let (Some(t), Some(c)) = (t, cursor)
            && t <= c
        {
            continue;
        }
        if let Some(t) = t {
            *last = Some(last.map_or(t, |l| l.max(t)));
        }
        parser.push_line(line, out);
    }
    parser.finish(out);
}

/// A stable sample of `n` pods: the same pods are read evaluation after evaluation (so their
/// cursors keep working), spread by a hash of the name rather than by age.
fn sample(mut pods: Vec<Pod>, n: usize) -> Vec<Pod> {
    if pods.len() <= n {
        return pods;
    }
    pods.sort_by_key(|p| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        p.name_any().hash(&mut h);
        h.finish()
    });
    pods.truncate(n);
    pods
}

impl LogSource for KubeLogs {
    async fn logs(&self, q: &LogQuery) -> Result<LogCounts, SourceError> {
        self.forget_unasked_since(horizon(q.end));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &q.namespace);
        let max = if q.new {
            self.limits.max_pods_new
        } else {
            self.limits.max_pods_old
        };
        // A ReplicaSet larger than its sample: read the same pods by name rather than list
        // them all again (a list of 100 pods costs ten times the logs read).
        let cached = self.sampled(q);
        if let Some((names, total)) = cached {
            let gets = futures::future::join_all(names.iter().map(|n| api.get_opt(n))).await;
            let pods: Option<Vec<Pod>> = gets
                .into_iter()
                .map(|r| r.ok().flatten())
                .collect::<Option<Vec<Pod>>>()
                .filter(|ps| ps.iter().all(|p| owned_by(p, &q.replicaset)));
            if let Some(pods) = pods {
                let mut counts = self.read_all(&api, pods, total, q).await;
                counts.merge(self.departed(q));
                return Ok(counts);
            }
        }
        let hash = q
            .replicaset
            .rsplit_once('-')
            .map(|(_, h)| h)
            .unwrap_or_default();
        let listed = api
            .list(&ListParams::default().labels(&format!("{HASH_LABEL}={hash}")))
            .await
            .map_err(|e| {
                let hint = match &e {
                    kube::Error::Api(s) if s.code == 403 => {
                        " (logs rules need get and list on pods and get on pods/log: the chart's rbac.podLogs: true)"
                    }
                    _ => "",
                };
                SourceError::Unreachable(format!(
                    "listing the pods of {}: {e}{hint}",
                    q.replicaset
                ))
            })?;
        let owned: Vec<Pod> = listed
            .items
            .into_iter()
            .filter(|p| owned_by(p, &q.replicaset))
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .is_some()
            })
            .collect();
        self.mark_gone_unless_listed(q, &owned);
        let total = owned.len() as u32;
        let sampled = owned.len() > max;
        let chosen = sample(owned, max);
        self.remember_sample(
            q,
            sampled.then(|| chosen.iter().map(|p| p.name_any()).collect()),
            total,
        );
        let mut counts = self.read_all(&api, chosen, total, q).await;
        counts.merge(self.departed(q));
        Ok(counts)
    }
    fn kept_logs(&self) -> Option<&dyn KeptLogs> {
        Some(self)
    }
}

fn owned_by(p: &Pod, replicaset: &str) -> bool {
    p.owner_references()
        .iter()
        .any(|o| o.kind == "ReplicaSet" && o.name == replicaset)
}

impl KubeLogs {
    fn sampled(&self, q: &LogQuery) -> Option<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(q.namespace.clone(), q.replicaset.clone()))
            .cloned()
    }

    fn remember_sample(&self, q: &LogQuery, names: Option<Vec<String>>, total: u32) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let key = (q.namespace.clone(), q.replicaset.clone());
        match names {
            Some(n) => {
                samples.insert(key, (n, total));
            }
            None => {
                samples.remove(&key);
            }
        }
        // Bounded whatever the churn of ReplicaSets.
        if samples.len() > 1000 {
            samples.clear();
        }
    }

    async fn read_all(
        &self,
        api: &Api<Pod>,
        chosen: Vec<Pod>,
        total: u32,
        q: &LogQuery,
    ) -> LogCounts {
        let reads = futures::future::join_all(chosen.iter().map(|pod| {
            let container = container::log_container(pod, q.container.as_deref());
            async move {
                let Some(container) = container else {
                    return (pod.name_any(), Err(ReadError::NoContainer));
                };
                (pod.name_any(), self.read_pod(api, pod, &container, q).await)
            }
        }))
        .await;
        let mut out = LogCounts {
            pods_total: total,
            ..LogCounts::default()
        };
        for (name, r) in reads {
            match r {
                Ok(counts) => out.merge(counts),
                Err(why) => {
                    if matches!(why, ReadError::Gone) {
                        self.mark_gone(&q.namespace, &name);
                    }
                    out.skipped.push(format!("{name}: {why}"));
                }
            }
        }
        out
    }
}

impl KubeLogs {
    /// Marks this ReplicaSet's pods that were read before and are no longer listed as gone.
    fn mark_gone_unless_listed(&self, q: &LogQuery, listed: &[Pod]) {
        let prefix = format!("{}-", q.replicaset);
        let names: Vec<String> = listed.iter().map(|p| p.name_any()).collect();
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        for ((ns, pod, _), state) in pods.iter_mut() {
            if ns == &q.namespace && pod.starts_with(&prefix) && !names.contains(pod) {
                state.gone = true;
            }
        }
    }

    fn mark_gone(&self, namespace: &str, pod: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        for ((ns, p, _), state) in pods.iter_mut() {
            if ns == namespace && p == pod {
                state.gone = true;
            }
        }
    }

    /// What was counted of this ReplicaSet's gone pods inside the query's window, with the
    /// minutes they served in it; those no window can reach any more are dropped.
    fn departed(&self, q: &LogQuery) -> LogCounts {
        let prefix = format!("{}-", q.replicaset);
        let oldest = horizon(q.end);
        let mut out = LogCounts::default();
        let mut dropped = std::collections::HashSet::new();
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        pods.retain(|key, state| {
            let (ns, pod, _) = key;
            if !(state.gone && ns == &q.namespace && pod.starts_with(&prefix)) {
                return true;
            }
            let Some(read_to) = state.read_to.filter(|t| *t >= oldest) else {
                dropped.insert(key.clone());
                return false;
            };
            state.last_asked = q.end;
            state.minutes = state.minutes.split_off(&minute(oldest));
            state.lost = state.lost.split_off(&minute(oldest));
            let from = state.started.unwrap_or(q.start).max(q.start);
            let to = read_to.min(q.end);
            if to > from {
                out.pods_departed += 1;
                out.pod_minutes += to.duration_since(from).as_secs_f64() / 60.0;
                out.merge(state.counts_in(minute(q.start), minute(to)));
            }
            true
        });
        drop(pods);
        if !dropped.is_empty() {
            self.reading
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k, _| !dropped.contains(k));
        }
        out
    }

    /// Drops the logs no window asked for since `t`: pods of ReplicaSets no longer analysed
    /// (a finished rollout's old pods are never listed again, so `forget_gone` never sees them).
    fn forget_unasked_since(&self, t: Timestamp) {
        let mut stale = std::collections::HashSet::new();
        self.pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, s| {
                let keep = s.last_asked >= t;
                if !keep {
                    stale.insert(k.clone());
                }
                keep
            });
        if !stale.is_empty() {
            self.reading
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k, _| !stale.contains(k));
        }
    }
}
