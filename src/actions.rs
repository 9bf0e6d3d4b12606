//! The actuator: carries out a [`Plan`] on a Deployment — pause, resume, rollback, the memory
//! annotation — and publishes its Events.
//!
//! Owns every write the controller makes to the cluster and how it is made: each write carries
//! the resourceVersion the plan was decided on, so a Deployment that changed in between (a
//! person, a GitOps sync, another controller) gets a 409 Conflict and the controller re-reads
//! and re-decides instead of overwriting; the memory annotation travels in the same patch as
//! the action, so an action is never made without being remembered. A rollback follows
//! `kubectl rollout undo`: the target ReplicaSet's template without its `pod-template-hash`,
//! its annotations copied, and `spec.paused` cleared first. It decides nothing: the plan is
//! the guard's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::annotations::{LAST_VERDICT, STATE};
use crate::guard::{Act, Memory, Note, Plan};
use crate::rollout::{HASH_LABEL, annotations_for_rollback, owned, without_hash};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "rollout-guard";

/// Why a plan could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The Deployment changed since the plan was made: re-read and re-decide.
    #[error("the Deployment changed since it was read (409 Conflict)")]
    Conflict,
    #[error("the Deployment is gone")]
    Gone,
    /// The ReplicaSet to roll back to vanished between reading and writing.
    #[error("the ReplicaSet with pod-template-hash {0} to roll back to no longer exists")]
    TargetGone(String),
    #[error("the Deployment has no resourceVersion to write against")]
    NoResourceVersion,
    #[error("cannot encode the controller's memory: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("Kubernetes API error: {0}")]
    Api(kube::Error),
}

impl From<kube::Error> for ActError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 409 => ActError::Conflict,
            kube::Error::Api(s) if s.code == 404 => ActError::Gone,
            _ => ActError::Api(e),
        }
    }
}

impl ActError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ActError::Conflict => "conflict",
            ActError::Gone => "gone",
            ActError::TargetGone(_) => "target_gone",
            ActError::NoResourceVersion => "no_resource_version",
            ActError::Encode(_) => "encode",
            ActError::Api(_) => "api",
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
        let rv = d
            .metadata
            .resource_version
            .clone()
            .ok_or(ActError::NoResourceVersion)?;
        let ns = d.namespace().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let ours = our_annotations(&plan.memory)?;
        let patch = match plan.acts.iter().find_map(|a| match a {
            Act::Rollback { to_hash, .. } => Some(to_hash),
            _ => None,
        }) {
            Some(hash) => rollback_patch(d, replicasets, hash, &rv, ours)?,
            None => {
                let paused = plan.acts.iter().rev().find_map(|a| match a {
                    Act::Pause => Some(true),
                    Act::Resume => Some(false),
                    Act::Rollback { .. } => None,
                });
                let mut body = json!({
                    "metadata": { "resourceVersion": rv, "annotations": ours },
                });
                if let Some(p) = paused {
                    body["spec"] = json!({ "paused": p });
                }
                Patch::Merge(body)
            }
        };
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let written = api.patch(&d.name_any(), &pp, &patch).await?;
        Ok(Some(written))
    }

    /// Publishes the plan's notes as Events on the Deployment. Failures are logged, not
    /// returned: an Event is a courtesy, the memory annotation is the record.
    pub async fn publish(&self, d: &Deployment, notes: &[Note]) {
        let reference = d.object_ref(&());
        for n in notes {
            let ev = Event {
                type_: if n.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: n.reason.clone(),
                note: Some(truncate(&n.message, 1000)),
                action: n.reason.clone(),
                secondary: None,
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

/// `kubectl rollout undo` as a JSON patch, with the resourceVersion as a precondition (a
/// replaced `metadata.resourceVersion` that no longer matches makes the API server answer 409).
fn rollback_patch(
    d: &Deployment,
    replicasets: &[ReplicaSet],
    hash: &str,
    rv: &str,
    ours: BTreeMap<String, String>,
) -> Result<Patch<serde_json::Value>, ActError> {
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
    let ops = json!([
        { "op": "replace", "path": "/metadata/resourceVersion", "value": rv },
        { "op": "replace", "path": "/spec/template", "value": template },
        { "op": "add", "path": "/metadata/annotations", "value": annotations },
        { "op": "add", "path": "/spec/paused", "value": false },
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops)?;
    Ok(Patch::Json(patch))
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
