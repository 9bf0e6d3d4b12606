//! The Deployment status the simulated controller writes: replica counts and the `Available`
//! and `Progressing` conditions, following k8s `calculateStatus`, `syncRolloutStatus` and
//! `checkPausedConditions`.
//!
//! Owns the condition rules (when a reason changes, which times move) and the decision to
//! write the status; the scaling decisions are [`super::deployments`]'.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::deployments::Sync;
use super::replicasets::nonzero;
use super::resources::FakeResource;
use super::sim::{CONTROLLER_MANAGER, key_of, write};
use super::status::ApiError;
use super::store::WriteOpts;

impl Sync<'_> {
    /// Paused deployments get `Progressing=Unknown DeploymentPaused`; resumed ones
    /// `DeploymentResumed` (a timed-out condition is left alone).
    pub(super) fn check_paused_condition(&mut self) {
        if !self.has_deadline() {
            return;
        }
        let paused = self.spec().paused == Some(true);
        let status = self.d.status.get_or_insert_with(Default::default);
        let reason = condition(status, "Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return;
        }
        let paused_cond = reason.as_deref() == Some("DeploymentPaused");
        if paused && !paused_cond {
            set_condition(
                status,
                new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    self.now,
                ),
            );
        } else if !paused && paused_cond {
            set_condition(
                status,
                new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                    self.now,
                ),
            );
        }
    }

    /// Replica counts and the `Available` condition (k8s `calculateStatus`).
    pub(super) fn calculate_status(&self) -> DeploymentStatus {
        let all = self.all();
        let available = self.sum(&all, Self::rs_available);
        let total = self.sum(&all, Self::rs_replicas);
        let actual = |idx: &[usize]| {
            idx.iter()
                .map(|i| self.rss[*i].status.as_ref().map_or(0, |s| s.replicas))
                .sum::<i32>()
        };
        let ready: i32 = all
            .iter()
            .map(|i| {
                self.rss[*i]
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            })
            .sum();
        let old = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: nonzero(actual(&all)),
            updated_replicas: nonzero(self.new.map_or(0, |n| actual(&[n]))),
            ready_replicas: nonzero(ready),
            available_replicas: nonzero(available),
            unavailable_replicas: nonzero((total - available).max(0)),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        if available >= self.replicas() - self.max_unavailable() {
            set_condition(
                &mut status,
                new_condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    self.now,
                ),
            );
        } else {
            set_condition(
                &mut status,
                new_condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    self.now,
                ),
            );
        }
        status
    }

    /// `Progressing` from how the rollout moved since the last status (k8s
    /// `syncRolloutStatus`).
    pub(super) fn rollout_status(&self) -> DeploymentStatus {
        let mut status = self.calculate_status();
        if !self.has_deadline() {
            if let Some(cs) = status.conditions.as_mut() {
                cs.retain(|c| c.type_ != "Progressing");
            }
            return status;
        }
        let old = self.d.status.clone().unwrap_or_default();
        let current = condition(&status, "Progressing").cloned();
        let done = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
        if done {
            return status;
        }
        let rs_name = self
            .new
            .and_then(|n| self.rss[n].metadata.name.clone())
            .unwrap_or_default();
        if self.complete(status.clone()) {
            let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &msg,
                    self.now,
                ),
            );
        } else if progressed(&old, &status) {
            let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
            let mut c = new_condition("Progressing", "True", "ReplicaSetUpdated", &msg, self.now);
            if let Some(cur) = &current
                && cur.status == "True"
            {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            if let Some(cs) = status.conditions.as_mut() {
                cs.retain(|x| x.type_ != "Progressing");
            }
            set_condition(&mut status, c);
        } else if self.timed_out(current.as_ref()) {
            let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &msg,
                    self.now,
                ),
            );
        }
        status
    }

    pub(super) fn complete(&self, status: DeploymentStatus) -> bool {
        let r = self.replicas();
        status.updated_replicas.unwrap_or(0) == r
            && status.replicas.unwrap_or(0) == r
            && status.available_replicas.unwrap_or(0) == r
            && status.observed_generation.unwrap_or(0) >= self.d.metadata.generation.unwrap_or(0)
    }

    fn timed_out(&self, current: Option<&DeploymentCondition>) -> bool {
        let Some(c) = current else { return false };
        match c.reason.as_deref() {
            Some("NewReplicaSetAvailable") => false,
            Some("ProgressDeadlineExceeded") => true,
            _ => {
                let deadline = i64::from(self.spec().progress_deadline_seconds.unwrap_or(600));
                c.last_update_time
                    .as_ref()
                    .is_some_and(|t| t.0 + SignedDuration::from_secs(deadline) < self.now)
            }
        }
    }

    /// Writes the status (and the revision annotation) when they changed.
    pub(super) fn write_status(&self, status: DeploymentStatus) -> Result<(), ApiError> {
        let mut d = self.d.clone();
        d.status = Some(status);
        let original = self.store.get(&key_of(
            FakeResource::Deployments,
            &serde_json::to_value(&self.d).unwrap_or_default(),
        ));
        let unchanged = original
            .as_deref()
            .and_then(|o| serde_json::from_value::<Deployment>(o.clone()).ok())
            .is_some_and(|o| {
                o.status == d.status && o.metadata.annotations == d.metadata.annotations
            });
        if !unchanged {
            write(
                self.store,
                FakeResource::Deployments,
                &d,
                &WriteOpts::status(CONTROLLER_MANAGER),
            )?;
        }
        Ok(())
    }
}

/// Any sign of progress between two statuses (k8s `DeploymentProgressing`).
fn progressed(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

pub(super) fn condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub(super) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    // Conditions carry whole seconds, like metav1.Time on the wire.
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// k8s `SetDeploymentCondition`: same status and reason is no change; same status keeps the
/// transition time; the condition moves to the end.
pub(super) fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conditions.iter().find(|x| x.type_ == c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conditions.retain(|x| x.type_ != c.type_);
    conditions.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_transition_time_for_same_status() {
        let t0 = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1 = "2025-01-01T00:01:00Z".parse().unwrap();
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition("Progressing", "True", "ReplicaSetUpdated", "a", t0),
        );
        set_condition(
            &mut s,
            new_condition("Progressing", "True", "NewReplicaSetAvailable", "b", t1),
        );
        let c = condition(&s, "Progressing").unwrap();
        assert_eq!(c.reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t0);
        assert_eq!(c.last_update_time.as_ref().unwrap().0, t1);
    }
}
