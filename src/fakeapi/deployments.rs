//! The simulated Deployment controller: a simplified `kube-controller-manager` deployment
//! controller, enough for a real RollingUpdate, a pause, a stall and a rollback.
//!
//! Owns, per Deployment: finding the new ReplicaSet (the owned one whose template equals the
//! Deployment's, ignoring `pod-template-hash`, so a rollback re-uses the old one) or creating
//! `<deployment>-<pod-template-hash>`; revision annotations (max + 1, re-used ReplicaSets
//! bumped and their old revision kept in `revision-history`); scaling new and old ReplicaSets
//! within `maxSurge` / `maxUnavailable`; Recreate; old-ReplicaSet cleanup beyond
//! `revisionHistoryLimit`; and the status with its `Available` and `Progressing` conditions
//! (`NewReplicaSetCreated`, `FoundNewReplicaSet`, `ReplicaSetUpdated`,
//! `NewReplicaSetAvailable`, `ProgressDeadlineExceeded`, `DeploymentPaused`,
//! `DeploymentResumed`). Pods are the ReplicaSet controller's business.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::replicasets::nonzero;
use super::resources::FakeResource;
use super::sim::{CONTROLLER_MANAGER, controller_uid, create, key_of, read_all, write};
use super::status::ApiError;
use super::store::{NAME_ALPHABET, Store, WriteOpts};

/// The label that tells a ReplicaSet's pods from another's.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations the controller does not copy to ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

pub(crate) fn tick(store: &Store) {
    let deployments: Vec<Deployment> = read_all(store, FakeResource::Deployments);
    let replicasets: Vec<ReplicaSet> = read_all(store, FakeResource::ReplicaSets);
    let now = Timestamp::now();
    for d in &deployments {
        if let Err(e) = sync(store, d, &replicasets, now) {
            tracing::debug!(deployment = ?d.metadata.name, error = %e, "fakeapi deployment controller");
        }
    }
}

/// One Deployment's sync, on copies that the writes keep up to date.
struct Sync<'a> {
    store: &'a Store,
    d: Deployment,
    /// Owned ReplicaSets, oldest first.
    rss: Vec<ReplicaSet>,
    /// Index of the new ReplicaSet in `rss`.
    new: Option<usize>,
    now: Timestamp,
}

fn sync(store: &Store, d: &Deployment, all: &[ReplicaSet], now: Timestamp) -> Result<(), ApiError> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    let mut rss: Vec<ReplicaSet> = all
        .iter()
        .filter(|rs| {
            rs.metadata.namespace == d.metadata.namespace
                && controller_uid(&rs.metadata) == Some(uid)
        })
        .cloned()
        .collect();
    rss.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rs.metadata.name.clone(),
        )
    });
    let template = template_value(d.spec.as_ref().map(|s| &s.template));
    let new = rss.iter().position(|rs| {
        template_value(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == template
    });
    let mut s = Sync {
        store,
        d: d.clone(),
        rss,
        new,
        now,
    };
    let paused = s.spec().paused == Some(true);
    s.check_paused_condition();
    if paused {
        s.sync_revision(false)?;
        s.scale_single_active()?;
        s.cleanup()?;
        let status = s.calculate_status();
        return s.write_status(status);
    }
    if s.spec()
        .strategy
        .as_ref()
        .and_then(|st| st.type_.as_deref())
        == Some("Recreate")
    {
        s.rollout_recreate()
    } else {
        s.rollout_rolling()
    }
}

impl Sync<'_> {
    fn spec(&self) -> k8s_openapi::api::apps::v1::DeploymentSpec {
        self.d.spec.clone().unwrap_or_default()
    }

    fn replicas(&self) -> i32 {
        self.spec().replicas.unwrap_or(1)
    }

    fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn rs_replicas(&self, i: usize) -> i32 {
        self.rss[i]
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    }

    fn rs_available(&self, i: usize) -> i32 {
        self.rss[i]
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    }

    fn sum(&self, idx: &[usize], f: impl Fn(&Self, usize) -> i32) -> i32 {
        idx.iter().map(|i| f(self, *i)).sum()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    /// maxSurge (rounded up) and maxUnavailable (rounded down) against the desired
    /// replicas; both zero makes maxUnavailable 1, as in Kubernetes.
    fn fenceposts(&self) -> (i32, i32) {
        let spec = self.spec();
        let ru = spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.clone())
            .unwrap_or_default();
        let desired = self.replicas();
        let surge = scaled(ru.max_surge.as_ref(), desired, true);
        let unavailable = scaled(ru.max_unavailable.as_ref(), desired, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }

    fn max_unavailable(&self) -> i32 {
        let recreate = self
            .spec()
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        if recreate || self.replicas() == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas())
    }

    fn max_surge(&self) -> i32 {
        let recreate = self
            .spec()
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        if recreate { 0 } else { self.fenceposts().0 }
    }

    fn has_deadline(&self) -> bool {
        self.spec()
            .progress_deadline_seconds
            .is_some_and(|s| s != i32::MAX)
    }

    /// Paused deployments get `Progressing=Unknown DeploymentPaused`; resumed ones
    /// `DeploymentResumed` (a timed-out condition is left alone).
    fn check_paused_condition(&mut self) {
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

    /// Finds (and updates the annotations of) or, with `create`, creates the new ReplicaSet.
    fn sync_revision(&mut self, create_missing: bool) -> Result<(), ApiError> {
        let max_old = self
            .old_indices()
            .iter()
            .map(|i| revision(&self.rss[*i].metadata))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let (surge, replicas) = (self.max_surge(), self.replicas());
        if let Some(i) = self.new {
            let mut rs = self.rss[i].clone();
            let meta = &mut rs.metadata;
            let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
            copy_annotations(self.d.metadata.annotations.as_ref(), annotations);
            let old = revision(meta);
            let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
            if old < new_revision {
                if annotations.contains_key(REVISION) {
                    // A re-used ReplicaSet (a rollback): remember the revisions it had.
                    let history = annotations
                        .get(REVISION_HISTORY)
                        .cloned()
                        .unwrap_or_default();
                    let joined = if history.is_empty() {
                        old.to_string()
                    } else {
                        format!("{history},{old}")
                    };
                    annotations.insert(REVISION_HISTORY.into(), joined);
                }
                annotations.insert(REVISION.into(), new_revision.to_string());
            }
            annotations.insert(DESIRED_REPLICAS.into(), replicas.to_string());
            annotations.insert(MAX_REPLICAS.into(), (replicas + surge).to_string());
            let rev = revision(&rs.metadata);
            if rs != self.rss[i] {
                self.rss[i] = parse(write(
                    self.store,
                    FakeResource::ReplicaSets,
                    &rs,
                    &WriteOpts::main(CONTROLLER_MANAGER),
                )?)?;
            }
            self.set_deployment_revision(rev);
            let no_progress_yet = self
                .d
                .status
                .as_ref()
                .is_none_or(|st| condition(st, "Progressing").is_none());
            if self.has_deadline() && no_progress_yet {
                let name = self.rss[i].metadata.name.clone().unwrap_or_default();
                let msg = format!("Found new replica set \"{name}\"");
                set_condition(
                    self.d.status.get_or_insert_with(Default::default),
                    new_condition("Progressing", "True", "FoundNewReplicaSet", &msg, self.now),
                );
            }
            return Ok(());
        }
        if !create_missing {
            return Ok(());
        }
        let rs = self.new_replicaset(new_revision)?;
        let name = rs.metadata.name.clone().unwrap_or_default();
        let created: ReplicaSet = parse(create(self.store, FakeResource::ReplicaSets, &rs)?)?;
        self.rss.push(created);
        self.new = Some(self.rss.len() - 1);
        self.set_deployment_revision(new_revision);
        if self.has_deadline() {
            let msg = format!("Created new replica set \"{name}\"");
            set_condition(
                self.d.status.get_or_insert_with(Default::default),
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &msg,
                    self.now,
                ),
            );
        }
        Ok(())
    }

    fn set_deployment_revision(&mut self, rev: i64) {
        let a = self
            .d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        a.insert(REVISION.into(), rev.to_string());
    }

    /// The ReplicaSet for the current template: named `<deployment>-<hash>`, where a name
    /// taken by another ReplicaSet bumps `status.collisionCount` and the hash changes.
    fn new_replicaset(&mut self, revision: i64) -> Result<ReplicaSet, ApiError> {
        let spec = self.spec();
        let dname = self.d.metadata.name.clone().unwrap_or_default();
        let ns = self.d.metadata.namespace.clone().unwrap_or_default();
        let template_json = template_value(Some(&spec.template));
        let (hash, name) = loop {
            let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
            let hash = pod_template_hash(&template_json, collisions);
            let name = format!("{dname}-{hash}");
            let key = key_of(
                FakeResource::ReplicaSets,
                &serde_json::json!({"metadata": {"namespace": ns, "name": name}}),
            );
            if self.store.get(&key).is_none() {
                break (hash, name);
            }
            let status = self.d.status.get_or_insert_with(Default::default);
            status.collision_count = Some(collisions.unwrap_or(0) + 1);
        };
        let mut template = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut annotations = BTreeMap::new();
        copy_annotations(self.d.metadata.annotations.as_ref(), &mut annotations);
        annotations.insert(REVISION.into(), revision.to_string());
        let (replicas, surge) = (self.replicas(), self.max_surge());
        annotations.insert(DESIRED_REPLICAS.into(), replicas.to_string());
        annotations.insert(MAX_REPLICAS.into(), (replicas + surge).to_string());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns),
                labels: tmeta.labels.clone(),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: dname,
                    uid: self.d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        // A fresh ReplicaSet starts at the size a rolling update allows it now (Recreate
        // starts it at full size once the old pods are gone).
        let start = if self.max_surge() == 0 && self.max_unavailable() == 0 {
            replicas
        } else {
            self.new_rs_target(0)
        };
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(start);
        }
        Ok(rs)
    }

    /// What the new ReplicaSet should scale to now (k8s `NewRSNewReplicas`), given its size.
    fn new_rs_target(&self, new_size: i32) -> i32 {
        let current_total = self.sum(&self.old_indices(), Self::rs_replicas) + new_size;
        let max_total = self.replicas() + self.max_surge();
        if current_total >= max_total {
            return new_size;
        }
        let up = (max_total - current_total).min(self.replicas() - new_size);
        new_size + up.max(0)
    }

    /// Scales ReplicaSet `i`, keeping its replica annotations current.
    fn scale(&mut self, i: usize, to: i32) -> Result<(), ApiError> {
        let mut rs = self.rss[i].clone();
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(to);
        }
        let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(DESIRED_REPLICAS.into(), self.replicas().to_string());
        annotations.insert(
            MAX_REPLICAS.into(),
            (self.replicas() + self.max_surge()).to_string(),
        );
        if rs != self.rss[i] {
            self.rss[i] = parse(write(
                self.store,
                FakeResource::ReplicaSets,
                &rs,
                &WriteOpts::main(CONTROLLER_MANAGER),
            )?)?;
        }
        Ok(())
    }

    fn rollout_rolling(&mut self) -> Result<(), ApiError> {
        self.sync_revision(true)?;
        let Some(new) = self.new else { return Ok(()) };
        // Scale the new ReplicaSet up (within maxSurge) or down (to the desired size).
        let size = self.rs_replicas(new);
        let target = if size > self.replicas() {
            self.replicas()
        } else {
            self.new_rs_target(size)
        };
        let scaled_up = target > size;
        if target != size {
            self.scale(new, target)?;
        }
        if !scaled_up {
            let scaled_down = self.reconcile_old(new)?;
            if !scaled_down && self.complete(self.d.status.clone().unwrap_or_default()) {
                self.cleanup()?;
            }
        }
        let status = self.rollout_status();
        self.write_status(status)
    }

    /// Scales old ReplicaSets down as far as `maxUnavailable` allows (k8s
    /// `reconcileOldReplicaSets`): unhealthy replicas first, then oldest first.
    fn reconcile_old(&mut self, new: usize) -> Result<bool, ApiError> {
        let olds: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|i| self.rs_replicas(*i) > 0)
            .collect();
        if olds.is_empty() {
            return Ok(false);
        }
        let all_pods = self.sum(&self.all(), Self::rs_replicas);
        let min_available = self.replicas() - self.max_unavailable();
        let new_unavailable = self.rs_replicas(new) - self.rs_available(new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let mut scaled = 0;
        for &i in &olds {
            if scaled >= max_scaled_down {
                break;
            }
            let unhealthy = self.rs_replicas(i) - self.rs_available(i);
            if unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(max_scaled_down - scaled);
            self.scale(i, self.rs_replicas(i) - down)?;
            scaled += down;
        }
        let available = self.sum(&self.all(), Self::rs_available);
        let mut budget = available - min_available;
        for &i in &olds {
            if budget <= 0 {
                break;
            }
            let size = self.rs_replicas(i);
            if size == 0 {
                continue;
            }
            let down = size.min(budget);
            self.scale(i, size - down)?;
            budget -= down;
            scaled += down;
        }
        Ok(scaled > 0)
    }

    /// Recreate: old ReplicaSets to zero, wait until their pods are gone, then the new one to
    /// full size. "Gone" is read from the old ReplicaSets' `status.replicas`.
    fn rollout_recreate(&mut self) -> Result<(), ApiError> {
        self.sync_revision(false)?;
        let mut scaled_down = false;
        for i in self.old_indices() {
            if self.rs_replicas(i) > 0 {
                self.scale(i, 0)?;
                scaled_down = true;
            }
        }
        let old_running = self
            .old_indices()
            .iter()
            .any(|i| self.rss[*i].status.as_ref().is_some_and(|s| s.replicas > 0));
        if !scaled_down && !old_running {
            if self.new.is_none() {
                self.sync_revision(true)?;
            }
            if let Some(new) = self.new
                && self.rs_replicas(new) != self.replicas()
            {
                self.scale(new, self.replicas())?;
            }
            if self.complete(self.d.status.clone().unwrap_or_default()) {
                self.cleanup()?;
            }
        }
        let status = self.rollout_status();
        self.write_status(status)
    }

    /// A paused Deployment whose replicas changed: with a single active ReplicaSet, that one
    /// takes the new size (proportional scaling across several is not simulated).
    fn scale_single_active(&mut self) -> Result<(), ApiError> {
        let active: Vec<usize> = self
            .all()
            .into_iter()
            .filter(|i| self.rs_replicas(*i) > 0)
            .collect();
        let target = match (active.as_slice(), self.new) {
            ([only], _) => Some(*only),
            ([], Some(new)) => Some(new),
            _ => None,
        };
        if let Some(i) = target
            && self.rs_replicas(i) != self.replicas()
        {
            self.scale(i, self.replicas())?;
        }
        Ok(())
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    fn cleanup(&mut self) -> Result<(), ApiError> {
        let Some(limit) = self.spec().revision_history_limit else {
            return Ok(());
        };
        let mut olds = self.old_indices();
        let excess = olds.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        olds.sort_by_key(|i| revision(&self.rss[*i].metadata));
        let mut doomed = Vec::new();
        for &i in olds.iter().take(excess as usize) {
            let rs = &self.rss[i];
            let st = rs.status.clone().unwrap_or_default();
            let settled = st.replicas == 0
                && self.rs_replicas(i) == 0
                && rs.metadata.generation <= st.observed_generation;
            if settled {
                doomed.push(i);
            }
        }
        for &i in doomed.iter().rev() {
            let key = key_of(
                FakeResource::ReplicaSets,
                &serde_json::to_value(&self.rss[i]).unwrap_or_default(),
            );
            self.store.delete(&key, None, None, false)?;
            self.rss.remove(i);
            if let Some(n) = self.new.as_mut()
                && *n > i
            {
                *n -= 1;
            }
        }
        Ok(())
    }

    /// Replica counts and the `Available` condition (k8s `calculateStatus`).
    fn calculate_status(&self) -> DeploymentStatus {
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
    fn rollout_status(&self) -> DeploymentStatus {
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

    fn complete(&self, status: DeploymentStatus) -> bool {
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
    fn write_status(&self, status: DeploymentStatus) -> Result<(), ApiError> {
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

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn copy_annotations(from: Option<&BTreeMap<String, String>>, to: &mut BTreeMap<String, String>) {
    for (k, v) in from.into_iter().flatten() {
        if !NOT_COPIED.contains(&k.as_str()) {
            to.insert(k.clone(), v.clone());
        }
    }
}

/// `IntOrString` against a total: a percentage rounds up or down, as k8s
/// `GetScaledValueFromIntOrPercent`. Unset counts as zero (the API server defaults 25%).
fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = pct * i64::from(total);
            let value = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn new_condition(
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
fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
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

/// A template as compared and hashed: the `pod-template-hash` label dropped, and nulls, empty
/// objects and empty lists removed (Kubernetes' semantic equality treats empty and unset
/// alike).
fn template_value(t: Option<&PodTemplateSpec>) -> Value {
    let mut v = t
        .map(|t| serde_json::to_value(t).unwrap_or_default())
        .unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    normalize(&mut v);
    v
}

fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                normalize(child);
            }
            m.retain(|_, c| {
                !(c.is_null()
                    || c.as_object().is_some_and(|o| o.is_empty())
                    || c.as_array().is_some_and(|a| a.is_empty()))
            });
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// The pod-template hash the real controller computes: FNV-1a (32 bit) of the template (here
/// its canonical JSON, where Kubernetes hashes a printout of the Go struct, so the values
/// differ from a real cluster's), then the collision count, printed in decimal and each
/// digit mapped into [`NAME_ALPHABET`] (`SafeEncodeString`). Usually 10 characters, fewer
/// when the hash is below 10⁹, exactly as in Kubernetes.
pub(crate) fn pod_template_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    // serde_json's map keeps keys sorted, so this text is canonical.
    feed(template.to_string().as_bytes());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_deterministic_and_ignores_its_own_label() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "php", "image": "php:1"}]}
        }))
        .unwrap();
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), "x".into());
        let a = pod_template_hash(&template_value(Some(&t)), None);
        assert_eq!(a, pod_template_hash(&template_value(Some(&labelled)), None));
        assert!(a.len() <= 10 && !a.is_empty());
        assert!(a.bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert_ne!(a, pod_template_hash(&template_value(Some(&t)), Some(1)));
        let mut other = t.clone();
        other.spec.as_mut().unwrap().containers[0].image = Some("php:2".into());
        assert_ne!(a, pod_template_hash(&template_value(Some(&other)), None));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled(Some(&pct), 10, true), 3);
        assert_eq!(scaled(Some(&pct), 10, false), 2);
        assert_eq!(scaled(Some(&pct), 1, true), 1);
        assert_eq!(scaled(Some(&pct), 1, false), 0);
        assert_eq!(scaled(Some(&IntOrString::Int(2)), 10, true), 2);
    }

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
