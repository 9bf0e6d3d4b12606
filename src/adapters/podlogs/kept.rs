//! What is kept of the old pods' logs across a restart of the controller (or a change of
//! leader): each old pod's error counts per minute and signature, and how far it was read, as
//! JSON the controller stores outside the process and gives back to a fresh one, so the old
//! version's counts still count once its pods have left (a fast rollout, the bake).
//!
//! Owns that text's format and its bounds: signatures (normalised messages), never log lines;
//! each pod whole, with every minute a window can still reach, within [`KEPT_LIMIT`] bytes in
//! all: the pods still running (whose logs a new process can read again) are left out first,
//! then those read longest ago, whatever they printed. A pod is kept whole or not at all, never some of its minutes:
//! its errors and its minutes of exposure go together, so what is taken back is a smaller
//! sample of the old version, never one that reads cleaner than it was; minutes whose errors
//! were not all counted stay marked lost. Reading and counting logs is the parent's; where the
//! text is kept is the controller's.
//!
//! The text comes back from an object that those allowed to write ConfigMaps in the namespace
//! can change (as, with most roles, they can change the Deployment itself). It is checked, and
//! a text with anything that does not fit is refused whole, never partly trusted: only pods of
//! the ReplicaSets the caller names (a Deployment's old ones, never the release's own), read
//! no later than now (a minute's leeway for two replicas' clocks), with at most as many
//! signatures as a pod counts and counts a pod could print.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{KubeLogs, PodKey, PodState, horizon, minute};
use crate::analysis::phplog::ErrorKind;
use crate::analysis::source::KeptLogs;

/// The most the kept text may weigh (a ConfigMap holds at most 1 MiB).
pub const KEPT_LIMIT: usize = 256 * 1024;
/// The most pods taken back from one text.
const MAX_PODS: usize = 1000;
/// The longest signature taken back, in bytes.
const MAX_SIGNATURE: usize = 2048;
/// The most errors of one signature in one minute taken back (ten million lines a minute is
/// more than `limit_bytes` lets a read count).
const MAX_COUNT: u64 = 10_000_000;
/// The most minutes taken back per pod: a day's, as long as any window.
const MAX_MINUTES: usize = 24 * 60 + 1;
/// How far ahead of this process's clock the process that kept a text may have been (two
/// replicas on two nodes).
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);
/// The format's version: a text of another is refused.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kept {
    version: u32,
    pods: Vec<KeptPod>,
}

/// One old pod's container, as the parent keeps it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptPod {
    namespace: String,
    pod: String,
    container: String,
    restarts: i32,
    /// The timestamp of the last log line read (the next read resumes after it).
    cursor: Option<Timestamp>,
    started: Option<Timestamp>,
    read_to: Timestamp,
    gone: bool,
    behind: bool,
    /// Kind and signature; the minutes index into them.
    signatures: Vec<(ErrorKind, String)>,
    /// (unix minute, [(signature index, count)]).
    minutes: Vec<(i64, Vec<(usize, u64)>)>,
    /// Minutes whose errors were not all counted.
    lost: Vec<i64>,
}

impl KeptPod {
    /// What is kept of one pod: its minutes with errors and the signatures they use.
    fn of(key: &PodKey, s: &PodState, read_to: Timestamp) -> KeptPod {
        let (namespace, pod, container) = key.clone();
        let mut index: BTreeMap<usize, usize> = BTreeMap::new();
        let mut signatures = Vec::new();
        let mut minutes = Vec::new();
        for (m, counts) in &s.minutes {
            let mut row: Vec<(usize, u64)> = Vec::new();
            for (i, n) in counts {
                let Some((kind, signature, _example)) = s.signatures.get(*i) else {
                    continue;
                };
                let j = *index.entry(*i).or_insert_with(|| {
                    signatures.push((*kind, signature.clone()));
                    signatures.len() - 1
                });
                row.push((j, *n));
            }
            row.sort_unstable();
            minutes.push((*m, row));
        }
        KeptPod {
            namespace,
            pod,
            container,
            restarts: s.restarts,
            cursor: s.cursor,
            started: s.started,
            read_to,
            gone: s.gone,
            behind: s.behind,
            signatures,
            minutes,
            lost: s.lost.iter().copied().collect(),
        }
    }

    /// Why this pod cannot be taken back in `namespace` at `now`, for the ReplicaSets whose
    /// pods' names start with one of `prefixes`; `None` when it can.
    fn refused(
        &self,
        namespace: &str,
        prefixes: &[String],
        now: Timestamp,
        max_signatures: usize,
    ) -> Option<String> {
        let why = if self.namespace != namespace {
            "another namespace"
        } else if !prefixes.iter().any(|p| self.pod.starts_with(p.as_str())) {
            "not a pod of an old ReplicaSet of this Deployment"
        } else if self.read_to > now + CLOCK_SKEW {
            "read after now"
        } else if self.started.is_some_and(|s| s > self.read_to) {
            "started after its last read"
        } else if self.signatures.len() > max_signatures
            || self.signatures.iter().any(|(_, s)| s.len() > MAX_SIGNATURE)
        {
            "more or longer signatures than are counted"
        } else if self.minutes.len() > MAX_MINUTES || self.lost.len() > MAX_MINUTES {
            "more minutes than a window reaches"
        } else if self.minutes.iter().any(|(_, row)| {
            row.iter()
                .any(|(i, n)| *i >= self.signatures.len() || *n > MAX_COUNT)
        }) {
            "a count out of range, or of no signature"
        } else {
            return None;
        };
        Some(format!("{}: {why}", self.pod))
    }

    /// The pod's state again (checked by [`KeptPod::refused`]), asked for at `now`, without
    /// the minutes no window ending at `now` can reach.
    fn state(self, now: Timestamp) -> PodState {
        let oldest = minute(horizon(now));
        let mut minutes: BTreeMap<i64, HashMap<usize, u64>> = BTreeMap::new();
        for (m, row) in self.minutes.into_iter().filter(|(m, _)| *m >= oldest) {
            for (i, n) in row {
                let count = minutes.entry(m).or_default().entry(i).or_default();
                *count = count.saturating_add(n);
            }
        }
        PodState {
            cursor: self.cursor,
            restarts: self.restarts,
            minutes,
            signatures: self
                .signatures
                .into_iter()
                .map(|(k, s)| (k, s, String::new()))
                .collect(),
            behind: self.behind,
            lost: self.lost.into_iter().filter(|m| *m >= oldest).collect(),
            last_asked: now,
            started: self.started,
            read_to: Some(self.read_to),
            gone: self.gone,
        }
    }
}

impl KeptLogs for KubeLogs {
    /// The pods of `replicasets` in `namespace` read so far, gone and serving, as text (see the
    /// module): within [`KEPT_LIMIT`], the gone ones first (nothing can read them again), the
    /// most recently read first among them; `None` when none was read.
    fn keep(&self, namespace: &str, replicasets: &[String]) -> Option<String> {
        let prefixes = prefixes(replicasets);
        let mut pods: Vec<KeptPod> = {
            let states = self.pods.lock().unwrap_or_else(|p| p.into_inner());
            states
                .iter()
                .filter(|((ns, pod, _), _)| {
                    ns == namespace && prefixes.iter().any(|p| pod.starts_with(p.as_str()))
                })
                .filter_map(|(key, s)| s.read_to.map(|r| KeptPod::of(key, s, r)))
                .collect()
        };
        pods.sort_by(|a, b| {
            (b.gone, b.read_to, &a.pod, &a.container).cmp(&(
                a.gone,
                a.read_to,
                &b.pod,
                &b.container,
            ))
        });
        let envelope = r#"{"version":1,"pods":[]}"#.len();
        let mut size = envelope;
        let mut kept = Kept {
            version: VERSION,
            pods: Vec::new(),
        };
        // The first pod that does not fit ends the text: which pods are left out must not
        // depend on how much they printed (the noisiest would be, and the old side read
        // cleaner than it was).
        let total = pods.len();
        for pod in pods {
            let weight = serde_json::to_string(&pod).map_or(usize::MAX, |t| t.len() + 1);
            if size.saturating_add(weight) > KEPT_LIMIT {
                break;
            }
            size += weight;
            kept.pods.push(pod);
        }
        let left_out = total - kept.pods.len();
        if left_out > 0 {
            tracing::warn!(
                namespace,
                left_out,
                "old pods' log counts beyond the kept limit are not carried over a restart"
            );
        }
        if kept.pods.is_empty() {
            return None;
        }
        serde_json::to_string(&kept).ok()
    }

    /// Takes back the pods of `replicasets` in `namespace` that `text` kept (see
    /// [`KeptLogs::keep`]), as of `now`, all of them or, when any does not fit, none; pods
    /// already known here stay as they are. How many were taken, or why none was.
    fn take_back(
        &self,
        namespace: &str,
        replicasets: &[String],
        text: &str,
        now: Timestamp,
    ) -> Result<usize, String> {
        let kept: Kept = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if kept.version != VERSION {
            return Err(format!(
                "format version {} (this controller reads {VERSION})",
                kept.version
            ));
        }
        if kept.pods.len() > MAX_PODS {
            return Err(format!(
                "{} pods, more than the {MAX_PODS} ever kept",
                kept.pods.len()
            ));
        }
        let prefixes = prefixes(replicasets);
        let max = self.limits.max_signatures_per_pod;
        let refused: Vec<String> = kept
            .pods
            .iter()
            .filter_map(|pod| pod.refused(namespace, &prefixes, now, max))
            .collect();
        if !refused.is_empty() {
            return Err(format!("refused whole: {}", refused.join("; ")));
        }
        let mut taken = 0;
        let mut states = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        for pod in kept.pods {
            let key = (
                pod.namespace.clone(),
                pod.pod.clone(),
                pod.container.clone(),
            );
            if let std::collections::hash_map::Entry::Vacant(slot) = states.entry(key) {
                slot.insert(pod.state(now));
                taken += 1;
            }
        }
        Ok(taken)
    }
}

/// The prefix of the names of each ReplicaSet's pods.
fn prefixes(replicasets: &[String]) -> Vec<String> {
    replicasets.iter().map(|r| format!("{r}-")).collect()
}

#[cfg(test)]
mod tests;
