//! Where a Deployment's rollout stands, as plain data: its generations (one per ReplicaSet),
//! which is new and which are old, and whether the rollout is progressing, paused, stalled or
//! complete.
//!
//! Owns the view the policy reasons over and the questions asked of it (which old generation
//! served before, which still has pods). Must not read Kubernetes objects: the controller
//! builds the view from `apps/v1` objects (`controller::objects`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One ReplicaSet of a Deployment: a generation of its pod template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// The ReplicaSet's name.
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
    /// Pods ready (`status.readyReplicas`).
    pub ready: i32,
    /// Pods available: ready for at least `minReadySeconds` (`status.availableReplicas`).
    pub available: i32,
    /// The image of each container of its pod template (container → image): what a release
    /// changed, for records and reports. Empty when unknown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// When the ReplicaSet was created (`metadata.creationTimestamp`): when its release began,
    /// unless a rollback went back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
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
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
    /// `spec.replicas` (1 when unset, the API default).
    pub desired: i32,
    /// Whether the Deployment is paused (`spec.paused`).
    pub paused: bool,
    /// Where the rollout stands.
    pub phase: Phase,
    /// The ReplicaSet whose template is the Deployment's; `None` before it is created.
    pub new: Option<Generation>,
    /// Every other owned ReplicaSet, highest revision first (including those scaled to zero:
    /// they are the rollback targets).
    pub old: Vec<Generation>,
    /// When the rollout last completed: the `Progressing` condition's `lastUpdateTime` once
    /// its reason is `NewReplicaSetAvailable` (the Deployment controller sets it then, and
    /// leaves it until the next rollout). `None` while rolling, or when the API does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
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
