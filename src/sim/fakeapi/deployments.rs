//! The simulated Deployment controller: a simplified `kube-controller-manager` deployment
//! controller, enough for a real RollingUpdate, a pause, a stall and a rollback.
//!
//! Owns, per Deployment: finding the new ReplicaSet (the owned one whose template equals the
//! Deployment's, ignoring `pod-template-hash`, so a rollback re-uses the old one) or creating
//! `<deployment>-<pod-template-hash>`; revision annotations (max + 1, re-used ReplicaSets
//! bumped and their old revision kept in `revision-history`); scaling new and old ReplicaSets
//! within `maxSurge` / `maxUnavailable`; Recreate; old-ReplicaSet cleanup beyond
//! `revisionHistoryLimit`; the `NewReplicaSetCreated` and `FoundNewReplicaSet` conditions.
//! The status and the rest of its conditions are [`super::rollout_status`]'; the template
//! hash is [`super::template_hash`]'; pods are the ReplicaSet controller's business.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::resources::FakeResource;
use super::rollout_status::{condition, new_condition, set_condition};
use super::sim::{CONTROLLER_MANAGER, controller_uid, create, key_of, read_all, write};
use super::status::ApiError;
use super::store::{Store, WriteOpts};
use super::template_hash::{pod_template_hash, template_value};

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
pub(super) struct Sync<'a> {
    pub(super) store: &'a Store,
    pub(super) d: Deployment,
    /// Owned ReplicaSets, oldest first.
    pub(super) rss: Vec<ReplicaSet>,
    /// Index of the new ReplicaSet in `rss`.
    pub(super) new: Option<usize>,
    pub(super) now: Timestamp,
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
    pub(super) fn spec(&self) -> k8s_openapi::api::apps::v1::DeploymentSpec {
        self.d.spec.clone().unwrap_or_default()
    }

    pub(super) fn replicas(&self) -> i32 {
        self.spec().replicas.unwrap_or(1)
    }

    pub(super) fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    pub(super) fn rs_replicas(&self, i: usize) -> i32 {
        self.rss[i]
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    }

    pub(super) fn rs_available(&self, i: usize) -> i32 {
        self.rss[i]
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    }

    pub(super) fn sum(&self, idx: &[usize], f: impl Fn(&Self, usize) -> i32) -> i32 {
        idx.iter().map(|i| f(self, *i)).sum()
    }

    pub(super) fn all(&self) -> Vec<usize> {
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

    pub(super) fn max_unavailable(&self) -> i32 {
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

    pub(super) fn max_surge(&self) -> i32 {
        let recreate = self
            .spec()
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        if recreate { 0 } else { self.fenceposts().0 }
    }

    pub(super) fn has_deadline(&self) -> bool {
        self.spec()
            .progress_deadline_seconds
            .is_some_and(|s| s != i32::MAX)
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
        if let Some(i) = self.new {
            return self.update_new(i, new_revision);
        }
        if !create_missing {
            return Ok(());
        }
        self.create_new(new_revision)
    }

    /// Brings the annotations of the new ReplicaSet (`self.rss[i]`) up to date, at
    /// `new_revision` if it had an older one, and says it was found.
    fn update_new(&mut self, i: usize, new_revision: i64) -> Result<(), ApiError> {
        let (surge, replicas) = (self.max_surge(), self.replicas());
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
        self.write_rs(i, rs)?;
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
        Ok(())
    }

    /// Creates the new ReplicaSet at `new_revision`, and says it was created.
    fn create_new(&mut self, new_revision: i64) -> Result<(), ApiError> {
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

    /// Writes ReplicaSet `i` as the Deployment controller would, if `rs` changed it.
    fn write_rs(&mut self, i: usize, rs: ReplicaSet) -> Result<(), ApiError> {
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
        self.write_rs(i, rs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled(Some(&pct), 10, true), 3);
        assert_eq!(scaled(Some(&pct), 10, false), 2);
        assert_eq!(scaled(Some(&pct), 1, true), 1);
        assert_eq!(scaled(Some(&pct), 1, false), 0);
        assert_eq!(scaled(Some(&IntOrString::Int(2)), 10, true), 2);
    }
}
