//! What is kept of gone pods' logs across a restart of the controller: each gone pod's error
//! counts per minute and signature, as JSON that the controller writes on the Deployment and
//! gives back to a fresh process, so the old version's counts still count after a restart
//! once its pods have left (a fast rollout, the bake).
//!
//! Owns that text's format and its bounds (at most [`KEPT_MINUTES`] minutes per pod, at most
//! [`KEPT_LIMIT`] bytes in all); minutes left out are marked lost, so a window over them reads
//! as truncated, never as clean. Reading and counting logs is the parent's; where the text is
//! kept is the controller's. The text comes back from an annotation anyone who may edit the
//! Deployment can change: it is checked, and what does not fit is refused, never trusted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{KubeLogs, PodState};
use crate::analysis::phplog::ErrorKind;

/// The most the kept text may weigh: it shares the Deployment's 256 KiB of annotations with
/// the controller's state and the user's own.
pub const KEPT_LIMIT: usize = 64 * 1024;
/// Minutes with errors kept per pod, the newest: longer than any bundled `logs` rule's window.
pub const KEPT_MINUTES: usize = 120;
/// An example line is kept up to this many characters.
const EXAMPLE_CHARS: usize = 300;
/// The format's version: a text of another is refused.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kept {
    version: u32,
    pods: Vec<KeptPod>,
}

/// One gone pod's container, as the parent keeps it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptPod {
    namespace: String,
    pod: String,
    container: String,
    started: Option<Timestamp>,
    read_to: Timestamp,
    /// Kind, signature and an example line; the minutes index into it.
    signatures: Vec<(ErrorKind, String, String)>,
    /// (unix minute, [(signature index, count)]).
    minutes: Vec<(i64, Vec<(usize, u64)>)>,
    /// Minutes whose errors were not all counted (or were left out here).
    lost: Vec<i64>,
    behind: bool,
}

impl KeptPod {
    /// What is kept of one gone pod: its newest [`KEPT_MINUTES`] minutes (older ones marked
    /// lost) and the signatures they use.
    fn of(key: &(String, String, String), s: &PodState, read_to: Timestamp) -> KeptPod {
        let (namespace, pod, container) = key.clone();
        let mut lost: BTreeSet<i64> = s.lost.clone();
        let skip = s.minutes.len().saturating_sub(KEPT_MINUTES);
        lost.extend(s.minutes.keys().take(skip));
        let mut index: BTreeMap<usize, usize> = BTreeMap::new();
        let mut signatures = Vec::new();
        let mut minutes = Vec::new();
        for (m, counts) in s.minutes.iter().skip(skip) {
            let mut row: Vec<(usize, u64)> = Vec::new();
            for (i, n) in counts {
                let Some((kind, signature, example)) = s.signatures.get(*i) else {
                    continue;
                };
                let j = *index.entry(*i).or_insert_with(|| {
                    let example: String = example.chars().take(EXAMPLE_CHARS).collect();
                    signatures.push((*kind, signature.clone(), example));
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
            started: s.started,
            read_to,
            signatures,
            minutes,
            lost: lost.into_iter().collect(),
            behind: s.behind,
        }
    }

    /// The pod's state again, gone, asked for at `now`; `None` when an index is out of range.
    fn state(self, now: Timestamp) -> Option<PodState> {
        let mut minutes: BTreeMap<i64, HashMap<usize, u64>> = BTreeMap::new();
        for (m, row) in self.minutes {
            for (i, n) in row {
                if i >= self.signatures.len() {
                    return None;
                }
                *minutes.entry(m).or_default().entry(i).or_default() += n;
            }
        }
        Some(PodState {
            cursor: Some(self.read_to),
            minutes,
            signatures: self.signatures,
            behind: self.behind,
            lost: self.lost.into_iter().collect(),
            last_asked: now,
            started: self.started,
            read_to: Some(self.read_to),
            gone: true,
            ..PodState::default()
        })
    }
}

impl KubeLogs {
    /// The gone pods of `replicasets` in `namespace` as text (see the module), the most
    /// recently read first while the text stays within [`KEPT_LIMIT`]; `None` when none is
    /// gone.
    pub(super) fn keep_departed(&self, namespace: &str, replicasets: &[String]) -> Option<String> {
        let prefixes: Vec<String> = replicasets.iter().map(|r| format!("{r}-")).collect();
        let mut pods: Vec<KeptPod> = {
            let states = self.pods.lock().unwrap_or_else(|p| p.into_inner());
            states
                .iter()
                .filter(|((ns, pod, _), s)| {
                    s.gone && ns == namespace && prefixes.iter().any(|p| pod.starts_with(p))
                })
                .filter_map(|(key, s)| s.read_to.map(|r| KeptPod::of(key, s, r)))
                .collect()
        };
        if pods.is_empty() {
            return None;
        }
        pods.sort_by(|a, b| b.read_to.cmp(&a.read_to).then(a.pod.cmp(&b.pod)));
        let mut kept = Kept {
            version: VERSION,
            pods: Vec::new(),
        };
        let mut left_out = 0;
        for pod in pods {
            kept.pods.push(pod);
            let fits = serde_json::to_string(&kept).is_ok_and(|t| t.len() <= KEPT_LIMIT);
            if !fits {
                kept.pods.pop();
                left_out += 1;
            }
        }
        if left_out > 0 {
            tracing::warn!(
                namespace,
                left_out,
                "gone pods' log counts beyond the kept limit are not carried over a restart"
            );
        }
        if kept.pods.is_empty() {
            return None;
        }
        serde_json::to_string(&kept).ok()
    }

    /// Takes back the gone pods of `namespace` in `text` (see [`KubeLogs::keep_departed`]);
    /// pods already known here stay as they are.
    pub(super) fn restore_kept(
        &self,
        namespace: &str,
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
        let mut taken = 0;
        let mut states = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        for pod in kept.pods {
            if pod.namespace != namespace
                || pod.signatures.len() > self.limits.max_signatures_per_pod
            {
                continue;
            }
            let key = (
                pod.namespace.clone(),
                pod.pod.clone(),
                pod.container.clone(),
            );
            if states.contains_key(&key) {
                continue;
            }
            if let Some(state) = pod.state(now) {
                states.insert(key, state);
                taken += 1;
            }
        }
        Ok(taken)
    }
}
