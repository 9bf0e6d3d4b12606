//! Carries what `logs` rules counted of the old pods over a restart of the controller (or a
//! change of leader): while a rollout is analysed, the log source's kept text (error counts
//! per minute and signature of each old pod read, never log lines) is stored in a ConfigMap
//! beside the Deployment, owned by it; a process that meets a Deployment under analysis for
//! the first time gives it back to its log source before its first evaluation, and the
//! ConfigMap is deleted once the analysis is over.
//!
//! Not an annotation: the Deployment controller copies a Deployment's annotations into every
//! new ReplicaSet (and a write would bump nothing but a ConfigMap's own version here). Owns
//! when the ConfigMap is read, when it is worth a write (its text changed, at most once per
//! [`MIN_GAP`]) and when it is deleted, and its name and owner. What the text holds, and what
//! of it is believed, is the log source's. A ConfigMap that cannot be read or written is
//! logged and left: the logs rules then judge without the old pods the process did not read
//! itself, as they would have without it (inconclusive once none is left to compare with).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::Context;
use crate::analysis::evaluate::Target;
use crate::analysis::rules::Check;
use crate::analysis::source::MetricSource;
use crate::controller::actions::FIELD_MANAGER;
use crate::policy::rollout::RolloutView;

/// The ConfigMap's key holding the text.
pub const DATA_KEY: &str = "counts.json";
/// The prefix of the ConfigMap's name; the Deployment's name follows.
pub const NAME_PREFIX: &str = "rollout-guard-logs-";
/// The least time between two writes of one Deployment's ConfigMap while its text changes
/// (every evaluation reads the old pods again): what a restart can lose of a pod that leaves
/// between two writes.
pub const MIN_GAP: SignedDuration = SignedDuration::from_secs(60);

/// What this process knows of one Deployment's ConfigMap.
#[derive(Clone, Debug, Default)]
pub(super) struct LogsKept {
    /// Whether it was looked for (once per process and Deployment under analysis).
    looked: bool,
    /// The text as last written or read; `None` when there is none (or it was deleted).
    text: Option<String>,
    /// When it was last written.
    written_at: Option<Timestamp>,
}

/// What to do with the ConfigMap after a reconciliation.
#[derive(Debug, PartialEq)]
pub(super) enum Change {
    Write(String),
    Delete,
}

/// The ConfigMap's name for the Deployment `deployment`: the prefix and the name, cut and
/// ended with a hash of the whole name when that would be longer than a name may be.
pub fn config_map_name(deployment: &str) -> String {
    const MAX: usize = 253;
    let whole = format!("{NAME_PREFIX}{deployment}");
    if whole.len() <= MAX {
        return whole;
    }
    let hash = deployment.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tail = format!("-{hash:016x}");
    let mut cut = whole[..MAX - tail.len()].to_string();
    while cut.ends_with(['-', '.']) {
        cut.pop();
    }
    cut + &tail
}

/// Whether any loaded rule reads pod logs.
fn has_logs_rules<S>(ctx: &Context<S>) -> bool {
    ctx.rules
        .borrow()
        .rules
        .iter()
        .any(|r| matches!(r.check, Check::Logs(_)))
}

/// Gives the log source what the ConfigMap kept, the first time this process reconciles `d`
/// while it is `analysing`; the pods of `view`'s old ReplicaSets only.
pub(super) async fn take_back<S: MetricSource>(
    ctx: &Context<S>,
    d: &Deployment,
    view: &RolloutView,
    kept: &mut LogsKept,
    analysing: bool,
    now: Timestamp,
) {
    if kept.looked || !analysing || !has_logs_rules(ctx) {
        return;
    }
    let Some(ns) = d.metadata.namespace.as_deref() else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let name = config_map_name(&d.name_any());
    let found = match api.get_opt(&name).await {
        Ok(found) => found,
        Err(e) => {
            // Forbidden (the chart's rbac.podLogs grants it) is not tried again; anything
            // else is, at the next reconciliation.
            kept.looked = matches!(&e, kube::Error::Api(s) if s.code == 403);
            tracing::warn!(deployment = %d.name_any(), config_map = %name, error = %e, "could not read the kept log counts; logs rules judge without the old pods this process did not read");
            return;
        }
    };
    kept.looked = true;
    let Some(cm) = found else { return };
    if !owned_by(&cm, d) {
        tracing::warn!(deployment = %d.name_any(), config_map = %name, "a ConfigMap of that name is not this Deployment's; left as it is, and not read");
        return;
    }
    let Some(text) = cm.data.as_ref().and_then(|m| m.get(DATA_KEY)) else {
        return;
    };
    kept.text = Some(text.clone());
    let old: Vec<String> = view.old.iter().map(|g| g.name.clone()).collect();
    match ctx.source.take_back_logs(ns, &old, text, now) {
        Ok(pods) => {
            tracing::info!(deployment = %d.name_any(), pods, "took back the old pods' log counts kept before a restart");
        }
        Err(why) => {
            tracing::warn!(deployment = %d.name_any(), %why, "the kept log counts could not be read; logs rules judge without them");
        }
    }
}

/// Whether `cm` names `d` (by uid) among its owners.
fn owned_by(cm: &ConfigMap, d: &Deployment) -> bool {
    let uid = d.metadata.uid.as_deref();
    uid.is_some()
        && cm
            .owner_references()
            .iter()
            .any(|o| o.kind == "Deployment" && Some(o.uid.as_str()) == uid)
}

/// What the ConfigMap needs: while a rollout is `analysing` and the old side of the `evaluated`
/// target was read, its new text when it changed and [`MIN_GAP`] has passed since the last
/// write; once it is not, deleting it if this process knows of it. `None` when nothing is to be
/// done (also in a dry run, which writes nothing).
pub(super) fn change<S: MetricSource>(
    ctx: &Context<S>,
    analysing: bool,
    evaluated: Option<&Target>,
    kept: &LogsKept,
    dry_run: bool,
    now: Timestamp,
) -> Option<Change> {
    if dry_run {
        return None;
    }
    if !analysing {
        return kept.text.is_some().then_some(Change::Delete);
    }
    let t = evaluated?;
    let text = ctx.source.kept_logs(&t.namespace, &t.paired_old())?;
    let due = kept
        .written_at
        .is_none_or(|w| now.duration_since(w) >= MIN_GAP);
    (due && kept.text.as_deref() != Some(text.as_str())).then_some(Change::Write(text))
}

/// Carries out `change` on `d`'s ConfigMap; what was done is remembered in `kept`, a failure
/// logged (the next change tries again).
pub(super) async fn apply<S>(
    ctx: &Context<S>,
    d: &Deployment,
    kept: &mut LogsKept,
    change: Change,
    now: Timestamp,
) {
    let Some(ns) = d.metadata.namespace.as_deref() else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let name = config_map_name(&d.name_any());
    match change {
        Change::Write(text) => {
            let Some(cm) = config_map(d, &name, &text) else {
                return;
            };
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch(&name, &params, &Patch::Apply(&cm)).await {
                Ok(_) => {
                    kept.text = Some(text);
                    kept.written_at = Some(now);
                }
                Err(e) => {
                    tracing::warn!(deployment = %d.name_any(), config_map = %name, error = %e, "could not keep the old pods' log counts; a restarted controller would judge without them");
                }
            }
        }
        Change::Delete => match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => kept.text = None,
            Err(kube::Error::Api(s)) if s.code == 404 => kept.text = None,
            Err(e) => {
                tracing::warn!(deployment = %d.name_any(), config_map = %name, error = %e, "could not delete the kept log counts; they go with the Deployment");
            }
        },
    }
}

/// The ConfigMap holding `text` for `d`, owned by it (garbage-collected with it); `None` when
/// `d` has no uid yet.
fn config_map(d: &Deployment, name: &str, text: &str) -> Option<ConfigMap> {
    let uid = d.metadata.uid.clone()?;
    let owner = OwnerReference {
        api_version: Deployment::api_version(&()).into_owned(),
        kind: Deployment::kind(&()).into_owned(),
        name: d.name_any(),
        uid,
        ..OwnerReference::default()
    };
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
        ("rollout-guard.io/deployment".to_string(), d.name_any()),
    ]);
    Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_string(), text.to_string())])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_too_long_is_cut_and_ended_with_a_hash_of_the_whole() {
        assert_eq!(config_map_name("shop"), "rollout-guard-logs-shop");
        let long = format!("{}-a", "x".repeat(250));
        let other = format!("{}-b", "x".repeat(250));
        let (a, b) = (config_map_name(&long), config_map_name(&other));
        assert_eq!(a.len(), 253);
        assert_ne!(a, b);
        assert!(a.ends_with(|c: char| c.is_ascii_alphanumeric()));
    }
}
