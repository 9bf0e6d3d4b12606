//! The simulated control plane's loop: each tick runs, in order, the garbage collector, the
//! Deployment controller, the ReplicaSet controller and the kubelet.
//!
//! Owns the loop, its options and the typed read/write helpers the controllers share. The
//! controllers act only through the store's ordinary write path (with resourceVersion
//! preconditions, as `kube-controller-manager` writes through the API), so a conflicting
//! write by a test simply makes them retry on the next tick. It does not serve HTTP.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

use super::deployments;
use super::kubelet::Kubelet;
use super::replicasets;
use super::resources::FakeResource;
use super::status::ApiError;
use super::store::{ObjKey, Proposed, Store, WriteOpts};

/// The field manager of the simulated controllers' writes.
pub(crate) const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// What the simulation needs from [`super::FakeOptions`].
#[derive(Clone, Debug)]
pub(crate) struct SimOptions {
    pub tick: Duration,
    pub ready_after: Duration,
}

/// Runs until `shutdown` turns true (or its sender goes away).
pub(crate) async fn run(store: Arc<Store>, opts: SimOptions, mut shutdown: watch::Receiver<bool>) {
    let mut kubelet = Kubelet::new(opts.ready_after);
    let mut ticks = tokio::time::interval(opts.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        collect_garbage(&store);
        deployments::tick(&store);
        replicasets::tick(&store);
        kubelet.tick(&store);
    }
}

/// Every object of a kind, typed; objects that do not parse are skipped.
pub(crate) fn read_all<K: DeserializeOwned>(store: &Store, resource: FakeResource) -> Vec<K> {
    let (objects, _) = store.list(resource, None);
    objects
        .iter()
        .filter_map(|o| serde_json::from_value((**o).clone()).ok())
        .collect()
}

/// Writes a typed object read earlier, through the main resource or the status
/// subresource; fails with 409 if it changed since it was read.
pub(crate) fn write<K: Serialize>(
    store: &Store,
    resource: FakeResource,
    obj: &K,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let value = serde_json::to_value(obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let key = key_of(resource, &value);
    let out = store.update(&key, opts, |_, _| Ok(Proposed::Object(value)))?;
    Ok((*out).clone())
}

/// Creates a typed object.
pub(crate) fn create<K: Serialize>(
    store: &Store,
    resource: FakeResource,
    obj: &K,
) -> Result<Value, ApiError> {
    let value = serde_json::to_value(obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ns = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let out = store.create(resource, &ns, value, &WriteOpts::main(CONTROLLER_MANAGER))?;
    Ok((*out).clone())
}

/// The store key of an object.
pub(crate) fn key_of(resource: FakeResource, obj: &Value) -> ObjKey {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    ObjKey::new(resource, s("/metadata/namespace"), s("/metadata/name"))
}

/// The uid of the controller owner (`ownerReferences[].controller == true`).
pub(crate) fn controller_uid(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&str> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// The garbage collector, simplified: an object whose every owner reference names a uid that
/// no longer exists is deleted (background propagation; `orphan` is not honoured).
fn collect_garbage(store: &Store) {
    let doomed: Vec<ObjKey> = {
        let inner = store.lock();
        let uids = inner.uids();
        let mut doomed = Vec::new();
        for resource in [
            FakeResource::ReplicaSets,
            FakeResource::Pods,
            FakeResource::ConfigMaps,
        ] {
            for obj in inner.list(resource, None) {
                let Some(owners) = obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                else {
                    continue;
                };
                let orphaned = !owners.is_empty()
                    && owners.iter().all(|o| {
                        o.get("uid")
                            .and_then(Value::as_str)
                            .is_none_or(|uid| !uids.contains(uid))
                    });
                if orphaned {
                    doomed.push(key_of(resource, &obj));
                }
            }
        }
        doomed
    };
    for key in doomed {
        if let Err(e) = store.delete(&key, None, None, false) {
            tracing::debug!(?key, error = %e, "fakeapi garbage collector");
        }
    }
}
