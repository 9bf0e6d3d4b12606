//! A Deployment's rollout read from its `apps/v1` objects the way the Deployment controller
//! itself reads them: ReplicaSets belong to a Deployment by controller owner reference; the new
//! one is the one whose pod template equals the Deployment's, ignoring the `pod-template-hash`
//! label (the oldest such, as `FindNewReplicaSet` does); revisions come from the
//! `deployment.kubernetes.io/revision` annotation. Also what a rollback copies from a
//! ReplicaSet, as `kubectl rollout undo` does, and, in [`revisions`], which ReplicaSets a
//! past rollout replaced.
//!
//! Owns the translation of Kubernetes objects into the policy's [`RolloutView`]. Plain
//! functions over the objects as given: no client, no I/O, no clock.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::policy::rollout::{Generation, Phase, RolloutView};

pub(crate) mod revisions;

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
    revisions::REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
    crate::policy::guard::ALLOW_REVISION_ANNOTATION,
];

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
        images: images(rs),
        created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// The image of each container of a ReplicaSet's pod template.
fn images(rs: &ReplicaSet) -> std::collections::BTreeMap<String, String> {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
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
        completed_at: progress_completed(d).filter(|_| phase == Phase::Complete),
    }
}

/// When the Deployment controller last found a rollout complete: the `Progressing` condition's
/// `lastUpdateTime` (else its `lastTransitionTime`) while its reason is
/// `NewReplicaSetAvailable`.
pub fn progress_completed(d: &Deployment) -> Option<jiff::Timestamp> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")?;
    (c.reason.as_deref() == Some("NewReplicaSetAvailable"))
        .then(|| {
            c.last_update_time
                .as_ref()
                .or(c.last_transition_time.as_ref())
        })
        .flatten()
        .map(|t| t.0)
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
