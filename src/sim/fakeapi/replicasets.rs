//! The simulated ReplicaSet controller: keep `spec.replicas` pods for each ReplicaSet and
//! report them in its status.
//!
//! Owns creating pods named `<replicaset>-<5 random chars>` from the template (labels,
//! annotations, an owner reference with `controller: true`), deleting surplus pods (unready
//! and unscheduled ones first, then the newest), and the status fields `replicas`,
//! `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas` (ready for
//! `minReadySeconds`) and `observedGeneration`. It does not adopt orphans and does not touch
//! pod status.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::resources::FakeResource;
use super::selectors::LabelSelector;
use super::sim::{CONTROLLER_MANAGER, controller_uid, create, key_of, read_all, write};
use super::status::ApiError;
use super::store::{Store, WriteOpts};

/// At most this many pods are created or deleted per ReplicaSet per tick, like the real
/// controller's burst limit.
const BURST: usize = 500;

pub(crate) fn tick(store: &Store) {
    let replicasets: Vec<ReplicaSet> = read_all(store, FakeResource::ReplicaSets);
    let pods: Vec<Pod> = read_all(store, FakeResource::Pods);
    let now = Timestamp::now();
    for rs in &replicasets {
        if let Err(e) = sync(store, rs, &pods, now) {
            tracing::debug!(replicaset = ?rs.metadata.name, error = %e, "fakeapi replicaset controller");
        }
    }
}

/// Whether a pod counts towards its ReplicaSet: not terminating, not finished.
fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The pod's `Ready` condition, if true: since when.
pub(crate) fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

/// Ready for at least `min_ready` seconds.
pub(crate) fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    ready_since(pod).is_some_and(|t| {
        min_ready <= 0 || t + SignedDuration::from_secs(i64::from(min_ready)) <= now
    })
}

/// Brings one ReplicaSet's pods to `spec.replicas` (at most [`BURST`] created or deleted) and
/// writes its status when it changed.
fn sync(store: &Store, rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Result<(), ApiError> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let Some(uid) = rs.metadata.uid.as_deref() else {
        return Ok(());
    };
    let spec = rs.spec.clone().unwrap_or_default();
    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata.namespace == rs.metadata.namespace
                && controller_uid(&p.metadata) == Some(uid)
        })
        .filter(|p| is_active(p))
        .collect();
    let desired = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let deleted = scale(store, rs, uid, &owned, desired)?;

    // Status reports the pods this sync observed, less those it deleted (so the Deployment
    // controller never counts a deleted pod as available); the ones it created count on the
    // next tick, once they exist.
    let owned: Vec<&Pod> = owned
        .into_iter()
        .filter(|p| !deleted.contains(&p.metadata.uid))
        .collect();
    let status = status_of(rs, &spec, &owned, now);
    if rs.status.as_ref() != Some(&status) {
        let mut updated = rs.clone();
        updated.status = Some(status);
        write(
            store,
            FakeResource::ReplicaSets,
            &updated,
            &WriteOpts::status(CONTROLLER_MANAGER),
        )?;
    }
    Ok(())
}

/// Creates pods up to `desired`, or deletes the surplus of `owned` (unscheduled, then unready,
/// then the most recently created first), at most [`BURST`]; returns the uids of the pods
/// deleted.
fn scale(
    store: &Store,
    rs: &ReplicaSet,
    uid: &str,
    owned: &[&Pod],
    desired: usize,
) -> Result<Vec<Option<String>>, ApiError> {
    let mut deleted = Vec::new();
    if owned.len() < desired {
        for _ in 0..(desired - owned.len()).min(BURST) {
            create(store, FakeResource::Pods, &new_pod(rs, uid))?;
        }
    } else if owned.len() > desired {
        let mut ranked = owned.to_vec();
        // Unscheduled, then unready, then the most recently created go first.
        ranked.sort_by_key(|p| {
            let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (
                scheduled,
                ready_since(p).is_some(),
                std::cmp::Reverse(created),
            )
        });
        for pod in ranked.iter().take((owned.len() - desired).min(BURST)) {
            let value = serde_json::to_value(pod).unwrap_or_default();
            store.delete(&key_of(FakeResource::Pods, &value), None, None, false)?;
            deleted.push(pod.metadata.uid.clone());
        }
    }
    Ok(deleted)
}

/// The ReplicaSet's status with the pods `owned`: how many, fully labeled, ready and available
/// (ready for `minReadySeconds` at `now`); conditions as they were.
fn status_of(
    rs: &ReplicaSet,
    spec: &ReplicaSetSpec,
    owned: &[&Pod],
    now: Timestamp,
) -> ReplicaSetStatus {
    let selector = LabelSelector::from_label_selector(
        &serde_json::to_value(&spec.selector).unwrap_or_default(),
    );
    let labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p| {
        let l = p.metadata.labels.clone().unwrap_or_default();
        labels.iter().all(|(k, v)| l.get(k) == Some(v))
            && selector.matches(serde_json::to_value(&l).ok().as_ref())
    });
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: nonzero(fully_labeled),
        ready_replicas: nonzero(count(&|p| ready_since(p).is_some())),
        available_replicas: nonzero(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    }
}

/// Go's `omitempty`: zero counts are absent from the JSON.
pub(crate) fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn new_pod(rs: &ReplicaSet, uid: &str) -> Pod {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name,
                uid: uid.to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}
