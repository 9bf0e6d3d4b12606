//! The actuator: carries out a [`Plan`] on a Deployment — pause, resume, rollback, the memory
//! annotation — and publishes its Events.
//!
//! Owns every write the controller makes to the cluster and how it is made. Each write is a
//! JSON patch that first tests what the plan was decided on: the Deployment's
//! `metadata.generation` (which the API server bumps on any change to a Deployment's spec or
//! annotations: a new template, a pause, a rollback, another writer's annotation) and the
//! controller's own memory annotation. A Deployment that changed in between (a person, a
//! GitOps sync, another replica of the controller) is not overwritten: the API server refuses
//! the patch and the controller re-reads and re-decides. Status updates do not refuse it:
//! during a rollout the status changes every few seconds, and the earlier precondition on the
//! resourceVersion made a slow evaluation's plan meet a conflict every time. The memory
//! annotation travels in the same patch as the action, so an action is never made without
//! being remembered. A rollback follows
//! `kubectl rollout undo`: the target ReplicaSet's template without its `pod-template-hash`,
//! its annotations copied, and `spec.paused` cleared first. It decides nothing: the plan is
//! the guard's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::adapters::kubernetes::{HASH_LABEL, annotations_for_rollback, owned, without_hash};
use crate::adapters::telemetry::ActionResult;
use crate::policy::annotations::{ALLOW_REVISION, LAST_VERDICT, STATE};
use crate::policy::guard::{Act, Memory, Note, Plan};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "rollout-guard";

/// Why a plan could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The Deployment changed since the plan was made (409 Conflict, or 422 from a failed
    /// `test` of the patch): re-read and re-decide.
    #[error("the Deployment changed since it was read ({0})")]
    Conflict(u16),
    /// The Deployment was deleted (404).
    #[error("the Deployment is gone")]
    Gone,
    /// The ReplicaSet to roll back to vanished between reading and writing.
    #[error("the ReplicaSet with pod-template-hash {0} to roll back to no longer exists")]
    TargetGone(String),
    /// The Deployment as read has no `metadata.generation` for the patch to test.
    #[error("the Deployment has no generation to write against")]
    NoGeneration,
    /// The memory annotation or the patch cannot be encoded as JSON.
    #[error("cannot encode the controller's memory: {0}")]
    Encode(#[from] serde_json::Error),
    /// Any other Kubernetes API error.
    #[error("Kubernetes API error: {0}")]
    Api(kube::Error),
}

impl From<kube::Error> for ActError {
    fn from(e: kube::Error) -> Self {
        match &e {
            // Every write tests its preconditions: a 422 is the test failing (the real API
            // server and the fake answer a failed `test` op so). Were it another invalid
            // write, re-reading and deciding again is bounded by the controller's backoff.
            kube::Error::Api(s) if s.code == 409 || s.code == 422 => ActError::Conflict(s.code),
            kube::Error::Api(s) if s.code == 404 => ActError::Gone,
            _ => ActError::Api(e),
        }
    }
}

impl ActError {
    /// What the action counters say of it.
    pub fn result(&self) -> ActionResult {
        match self {
            ActError::Conflict(_) => ActionResult::Conflict,
            ActError::Gone => ActionResult::Gone,
            ActError::TargetGone(_) => ActionResult::TargetGone,
            ActError::NoGeneration => ActionResult::NoGeneration,
            ActError::Encode(_) => ActionResult::Encode,
            ActError::Api(_) => ActionResult::Api,
        }
    }
}

/// Writes plans to Deployments and publishes Events about them.
#[derive(Clone)]
pub struct Actuator {
    client: Client,
    recorder: Recorder,
}

impl Actuator {
    /// Writes through `client`; its Events name `instance` (the pod name) as the reporting
    /// instance.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Actuator {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    /// Writes the plan's acts and memory to `d` (as read when the plan was made), in one patch.
    /// `replicasets` are those the plan was made from (the rollback target is among them).
    /// Returns the Deployment as written, or `None` when there was nothing to write.
    pub async fn write(
        &self,
        d: &Deployment,
        replicasets: &[ReplicaSet],
        plan: &Plan,
    ) -> Result<Option<Deployment>, ActError> {
        if plan.acts.is_empty() && !plan.write {
            return Ok(None);
        }
        let ns = d.namespace().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let mut ops = preconditions(d)?;
        let ours = our_annotations(&plan.memory)?;
        match plan.acts.iter().find_map(|a| match a {
            Act::Rollback { to_hash, .. } => Some(to_hash),
            _ => None,
        }) {
            Some(hash) => ops.extend(rollback_ops(d, replicasets, hash, ours)?),
            None => {
                ops.extend(annotation_ops(d, ours));
                let paused = plan.acts.iter().rev().find_map(|a| match a {
                    Act::Pause => Some(true),
                    Act::Resume => Some(false),
                    Act::Rollback { .. } => None,
                });
                if let Some(p) = paused {
                    ops.push(json!({ "op": "add", "path": "/spec/paused", "value": p }));
                }
            }
        }
        // A release taken: the allow annotation goes, so that it releases one analysis only.
        if plan.clear_allow
            && d.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ALLOW_REVISION))
        {
            ops.push(json!({ "op": "remove", "path": annotation_path(ALLOW_REVISION) }));
        }
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))?;
        let patch = Patch::Json::<()>(patch);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let written = api.patch(&d.name_any(), &pp, &patch).await?;
        Ok(Some(written))
    }

    /// Publishes the plan's notes as Events on the Deployment, related to the ReplicaSet of the
    /// revision they are about. Failures are logged, not returned: an Event is a courtesy, the
    /// memory annotation is the record. The related ReplicaSet also keeps the Events of two
    /// revisions apart: the recorder folds an Event into an earlier one with the same reason
    /// and objects (a `series`, keeping the first note), which would show the next release's
    /// `AnalysisStarted` with the previous release's text.
    pub async fn publish(&self, d: &Deployment, notes: &[Note], replicaset: Option<&str>) {
        let reference = d.object_ref(&());
        let related = replicaset.map(|name| ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some(name.into()),
            namespace: d.namespace(),
            ..ObjectReference::default()
        });
        for n in notes {
            let ev = Event {
                type_: if n.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: n.reason.to_string(),
                note: Some(truncate(&n.message, 1000)),
                action: n.reason.to_string(),
                secondary: related.clone(),
            };
            if let Err(e) = self.recorder.publish(&ev, &reference).await {
                tracing::warn!(deployment = %d.name_any(), reason = %n.reason, error = %e, "could not publish an Event");
            }
        }
    }
}

/// The annotations the controller writes: its memory, and the latest verdict in one line.
fn our_annotations(memory: &Memory) -> Result<BTreeMap<String, String>, ActError> {
    let mut out = BTreeMap::from([(STATE.to_string(), serde_json::to_string(memory)?)]);
    if let Some(last) = memory.current.as_ref().and_then(|s| s.last.as_ref()) {
        out.insert(
            LAST_VERDICT.into(),
            truncate(
                &format!("{} at {}: {}", last.outcome, last.at, last.reason),
                1000,
            ),
        );
    }
    Ok(out)
}

/// The tests a write starts with: the spec generation the plan was decided on, and the
/// controller's memory as it was read. Without a memory yet there is nothing of ours to test
/// (JSON patch cannot test for absence), and none is needed: the first write of a memory
/// changes the annotations, and so the generation, and a second one made on the same read
/// fails its generation test.
fn preconditions(d: &Deployment) -> Result<Vec<serde_json::Value>, ActError> {
    let generation = d.metadata.generation.ok_or(ActError::NoGeneration)?;
    let mut ops =
        vec![json!({ "op": "test", "path": "/metadata/generation", "value": generation })];
    if let Some(state) = d.metadata.annotations.as_ref().and_then(|a| a.get(STATE)) {
        ops.push(json!({ "op": "test", "path": annotation_path(STATE), "value": state }));
    }
    Ok(ops)
}

/// The JSON pointer of one annotation (RFC 6901: `~` as `~0`, `/` as `~1`).
fn annotation_path(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

/// Sets `wanted` annotations key by key (those that differ from `d`'s), or the whole map when
/// `d` has none (a patch of only what changes, like the rest of the write).
fn annotation_ops(d: &Deployment, wanted: BTreeMap<String, String>) -> Vec<serde_json::Value> {
    let Some(current) = d.metadata.annotations.as_ref() else {
        return vec![json!({ "op": "add", "path": "/metadata/annotations", "value": wanted })];
    };
    wanted
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .map(|(k, v)| json!({ "op": "add", "path": annotation_path(&k), "value": v }))
        .collect()
}

/// `kubectl rollout undo` as JSON patch operations: the target's template without its
/// pod-template-hash, its annotations copied, and `spec.paused` cleared.
fn rollback_ops(
    d: &Deployment,
    replicasets: &[ReplicaSet],
    hash: &str,
    ours: BTreeMap<String, String>,
) -> Result<Vec<serde_json::Value>, ActError> {
    let target = owned(d, replicasets)
        .into_iter()
        .find(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL))
                .is_some_and(|h| h == hash)
        })
        .ok_or_else(|| ActError::TargetGone(hash.into()))?;
    let template = target
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(without_hash)
        .ok_or_else(|| ActError::TargetGone(hash.into()))?;
    let mut annotations = annotations_for_rollback(d, target);
    annotations.extend(ours);
    let mut ops = vec![json!({ "op": "replace", "path": "/spec/template", "value": template })];
    ops.extend(annotation_ops(d, annotations));
    ops.push(json!({ "op": "add", "path": "/spec/paused", "value": false }));
    Ok(ops)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
