//! Where a Deployment's rollout stands: which ReplicaSet is new, which are old, and whether the
//! rollout is progressing, paused, stalled or complete.
//!
//! Owns the reading of `apps/v1` objects the way the Deployment controller itself reads them:
//! ReplicaSets belong to a Deployment by controller owner reference; the new one is the one
//! whose pod template equals the Deployment's, ignoring the `pod-template-hash` label (the
//! oldest such, as `FindNewReplicaSet` does); revisions come from the
//! `deployment.kubernetes.io/revision` annotation. Plain functions over the objects as given:
//! no client, no I/O, no clock (the caller passes the time where it matters).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};

/// The annotation the Deployment controller numbers ReplicaSets (and the Deployment) with.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the Deployment controller adds to a ReplicaSet's selector and template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Annotations of a ReplicaSet that a rollback does not copy to the Deployment: those
/// `kubectl rollout undo` leaves, and the allow annotation the Deployment controller copied
/// to the ReplicaSet with the release it granted (copied back, it would release that revision
/// again after its next rollback with no one asking).
const NOT_COPIED_ON_ROLLBACK: [&str; 7] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
    crate::guard::ALLOW_REVISION_ANNOTATION,
];

/// One ReplicaSet of a Deployment: a generation of its pod template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub name: String,
    /// `deployment.kubernetes.io/revision`; 0 when absent or unreadable.
    pub revision: u64,
    /// The `pod-template-hash` label; stable across revision renumbering, so it names the
    /// generation in what the controller remembers.
    pub hash: String,
    /// Pods asked for (`spec.replicas`).
    pub desired: i32,
    /// Pods that exist (`status.replicas`).
    pub pods: i32,
    pub ready: i32,
    pub available: i32,
}

/// The stage of a rollout, as `kubectl rollout status` would tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The Deployment controller has not yet acted on the latest spec (or has not yet created
    /// the new ReplicaSet).
    Pending,
    /// New pods coming up or old ones going away.
    Progressing,
    /// `spec.paused`: nothing moves until someone resumes.
    Paused,
    /// `ProgressDeadlineExceeded`: the Deployment controller gave up waiting.
    Stalled,
    /// Every pod is new and available.
    Complete,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Pending => "pending",
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Stalled => "stalled",
            Phase::Complete => "complete",
        })
    }
}

/// A Deployment's rollout, read from the Deployment and the ReplicaSets it owns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    pub namespace: String,
    pub name: String,
    /// `spec.replicas` (1 when unset, the API default).
    pub desired: i32,
    pub paused: bool,
    pub phase: Phase,
    /// The ReplicaSet whose template is the Deployment's; `None` before it is created.
    pub new: Option<Generation>,
    /// Every other owned ReplicaSet, highest revision first (including those scaled to zero:
    /// they are the rollback targets).
    pub old: Vec<Generation>,
}

impl RolloutView {
    /// Old ReplicaSets that still have pods: the baseline a comparison can use.
    pub fn old_with_pods(&self) -> impl Iterator<Item = &Generation> {
        self.old.iter().filter(|g| g.pods > 0)
    }

    /// True while old pods run next to new ones, or new ones are still coming up.
    pub fn is_rolling(&self) -> bool {
        matches!(
            self.phase,
            Phase::Progressing | Phase::Paused | Phase::Stalled
        ) && self.new.is_some()
            && (self.old_with_pods().next().is_some()
                || self
                    .new
                    .as_ref()
                    .is_some_and(|n| n.available < self.desired))
    }

    /// The generation that served before this rollout: among the old ReplicaSets, the one
    /// with the most available pods, the highest revision on a tie. This is where a rollback
    /// should land. It differs from `kubectl rollout undo`'s "previous revision" when a
    /// rollout interrupted another: undo would return to the half-rolled-out one, this returns
    /// to the one that was actually serving.
    pub fn serving_before(&self) -> Option<&Generation> {
        self.old
            .iter()
            .filter(|g| g.available > 0)
            .max_by_key(|g| (g.available, g.revision))
            .or_else(|| self.old.first())
    }

    /// The old generation with the given pod-template hash.
    pub fn old_by_hash(&self, hash: &str) -> Option<&Generation> {
        self.old.iter().find(|g| g.hash == hash)
    }
}

/// The ReplicaSets the Deployment owns as their controller.
pub fn owned<'a>(d: &Deployment, replicasets: &'a [ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let uid = d.metadata.uid.as_deref();
    let name = d.metadata.name.as_deref();
    replicasets
        .iter()
        .filter(|rs| rs.metadata.namespace == d.metadata.namespace)
        .filter(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|o| {
                o.controller == Some(true)
                    && o.kind == "Deployment"
                    && match uid {
                        Some(uid) => o.uid == uid,
                        None => Some(o.name.as_str()) == name,
                    }
            })
        })
        .collect()
}

/// The new ReplicaSet: the oldest owned one whose template equals the Deployment's, ignoring
/// the `pod-template-hash` label.
pub fn find_new<'a>(d: &Deployment, owned: &[&'a ReplicaSet]) -> Option<&'a ReplicaSet> {
    let want = d.spec.as_ref().map(|s| &s.template)?;
    let mut matching: Vec<&ReplicaSet> = owned
        .iter()
        .copied()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignoring_hash(t, want))
        })
        .collect();
    matching.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    });
    matching.into_iter().next()
}

/// Whether two pod templates are equal once `pod-template-hash` is removed from both.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// A template as it is written back to the Deployment on rollback: without the
/// `pod-template-hash` label the ReplicaSet carries.
pub fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    t
}

/// The annotations a rollback to `target` gives the Deployment, as `kubectl rollout undo`
/// computes them: the Deployment's own, with those the target ReplicaSet carries copied over
/// (except the Deployment controller's bookkeeping ones).
pub fn annotations_for_rollback(
    d: &Deployment,
    target: &ReplicaSet,
) -> std::collections::BTreeMap<String, String> {
    let mut out = d.metadata.annotations.clone().unwrap_or_default();
    for (k, v) in target.metadata.annotations.iter().flatten() {
        if !NOT_COPIED_ON_ROLLBACK.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Whether the Deployment's latest spec is fully rolled out: observed, every replica updated
/// and available, none old. The controller has nothing to analyse in a Deployment at rest
/// unless it has something pending on it.
pub fn rolled_out(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
}

/// Reads a ReplicaSet as a generation.
pub fn generation(rs: &ReplicaSet) -> Generation {
    let status = rs.status.as_ref();
    Generation {
        name: rs.metadata.name.clone().unwrap_or_default(),
        revision: revision_of(&rs.metadata),
        hash: rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
            .unwrap_or_default(),
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        pods: status.map_or(0, |s| s.replicas),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

/// The `deployment.kubernetes.io/revision` of an object; 0 when absent or unreadable.
pub fn revision_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads a Deployment and the ReplicaSets (any, not only its own) into a rollout view.
pub fn view(d: &Deployment, replicasets: &[ReplicaSet]) -> RolloutView {
    let owned = owned(d, replicasets);
    let new_rs = find_new(d, &owned);
    let new = new_rs.map(generation);
    let mut old: Vec<Generation> = owned
        .iter()
        .filter(|rs| new_rs.is_none_or(|n| !std::ptr::eq(**rs, n)))
        .map(|rs| generation(rs))
        .collect();
    old.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.name.cmp(&b.name)));
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    let phase = phase(d, new.as_ref(), &old, desired, paused);
    RolloutView {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        desired,
        paused,
        phase,
        new,
        old,
    }
}

fn phase(
    d: &Deployment,
    new: Option<&Generation>,
    old: &[Generation],
    desired: i32,
    paused: bool,
) -> Phase {
    let status = d.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
    if observed < d.metadata.generation.unwrap_or(0) {
        return Phase::Pending;
    }
    let stalled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
    if stalled {
        return Phase::Stalled;
    }
    if paused {
        return Phase::Paused;
    }
    let Some(new) = new else {
        return Phase::Pending;
    };
    let old_pods: i32 = old.iter().map(|g| g.pods).sum();
    if new.desired < desired || new.available < desired || old_pods > 0 {
        Phase::Progressing
    } else {
        Phase::Complete
    }
}

#[cfg(test)]
mod tests;
