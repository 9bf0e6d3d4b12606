//! Carries what `logs` rules counted of the old pods over a restart of the controller (or a
//! change of leader): while a rollout is analysed, the log source's kept text (error counts
//! per minute and signature of each old pod read, never log lines) is stored in a ConfigMap
//! beside the Deployment, owned by it; a process that meets a Deployment under analysis for
//! the first time gives it back to its log source before its first evaluation, and the
//! ConfigMap is deleted once the analysis is over.
//!
//! Not an annotation: the Deployment controller copies a Deployment's annotations into every
//! new ReplicaSet. Owns when the ConfigMap is read (before this process writes it), when it is
//! worth a write (its text changed, at most once per [`MIN_GAP`], failed writes included) and
//! when it is deleted (only if the Deployment owns it), and its name and owner. What the text
//! holds, and what of it is believed, is the log source's. A ConfigMap that cannot be read or
//! written is logged and left: the logs rules then judge without the old pods the process did
//! not read itself, as they would have without it (inconclusive once none is left to compare
//! with). One the process meets only after the analysis ended (a crash between the last write
//! and the delete) stays until the Deployment is deleted or its next analysis replaces it;
//! nothing reads it in between but a restarted process analysing that next rollout, which
//! takes back only pods of ReplicaSets still old, and no window reaches a day-old read.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::Context;
use crate::analysis::evaluate::Target;
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
    /// Whether it was looked for (once per process and Deployment, if it was under analysis
    /// then), so that nothing is written over it before it was taken back.
    looked: bool,
    /// The text as last written or read; `None` when there is none (or it was deleted).
    text: Option<String>,
    /// When it was last written.
    written_at: Option<Timestamp>,
    /// Why this process keeps nothing for the Deployment, if it does not.
    off: Option<Off>,
}

/// Why the old pods' counts are not kept for a Deployment.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Off {
    /// A ConfigMap of that name is not the Deployment's: it is neither read, written nor
    /// deleted.
    Foreign,
    /// The API server refused (403): RBAC without it (the chart grants it with
    /// `rbac.podLogs`, unless `rbac.podLogCounts` is false). Not asked again by this process.
    Forbidden,
}

impl Off {
    /// `Forbidden` for a 403, else `None` (tried again).
    fn of(e: &kube::Error) -> Option<Off> {
        matches!(e, kube::Error::Api(s) if s.code == 403).then_some(Off::Forbidden)
    }
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
    // Names are ASCII (DNS subdomains); cut by characters all the same.
    let mut cut: String = whole.chars().take(MAX - tail.len()).collect();
    while cut.ends_with(['-', '.']) {
        cut.pop();
    }
    cut + &tail
}

impl LogsKept {
    /// Whether the ConfigMap is known to exist and the analysis is over, outside a dry run
    /// (which deletes nothing either): a Deployment at rest is reconciled once more for its
    /// delete.
    pub(super) fn to_delete(&self, analysing: bool, dry_run: bool) -> bool {
        !analysing && !dry_run && self.text.is_some()
    }
}

/// Gives the log source what the ConfigMap kept, the first time this process reconciles `d`
/// while it is `analysing`; the pods of `view`'s old ReplicaSets only. Met first at rest, or
/// without logs rules or a pod-log source, there is nothing to take back.
pub(super) async fn take_back<S: MetricSource>(
    ctx: &Context<S>,
    d: &Deployment,
    view: &RolloutView,
    kept: &mut LogsKept,
    analysing: bool,
    now: Timestamp,
) {
    if kept.looked {
        return;
    }
    let keeper = ctx
        .source
        .kept_logs()
        .filter(|_| analysing && ctx.rules.borrow().reads_pod_logs());
    let Some(logs) = keeper else {
        kept.looked = true;
        return;
    };
    let Some(ns) = d.metadata.namespace.as_deref() else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let name = config_map_name(&d.name_any());
    let found = match api.get_opt(&name).await {
        Ok(found) => found,
        Err(e) => {
            // Forbidden is not tried again; anything else is, at the next reconciliation.
            kept.off = Off::of(&e);
            kept.looked = kept.off.is_some();
            tracing::warn!(deployment = %d.name_any(), config_map = %name, error = %e, "could not read the kept log counts; logs rules judge without the old pods this process did not read");
            return;
        }
    };
    kept.looked = true;
    let Some(cm) = found else { return };
    if !owned_by(&cm, d) {
        kept.off = Some(Off::Foreign);
        tracing::warn!(deployment = %d.name_any(), config_map = %name, "a ConfigMap of that name is not this Deployment's; left as it is, and the old pods' log counts are not kept");
        return;
    }
    let Some(text) = cm.data.as_ref().and_then(|m| m.get(DATA_KEY)) else {
        return;
    };
    kept.text = Some(text.clone());
    let old: Vec<String> = view.old.iter().map(|g| g.name.clone()).collect();
    match logs.take_back(ns, &old, text, now) {
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
/// write (once it was looked for); once it is not, deleting it if this process knows of it.
/// `None` when nothing is to be done (also in a dry run, which writes nothing).
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
    if !kept.looked || kept.off.is_some() {
        return None;
    }
    let t = evaluated?;
    let due = kept
        .written_at
        .is_none_or(|w| now.duration_since(w) >= MIN_GAP);
    // The text is made only when a write is due.
    let text = due
        .then(|| ctx.source.kept_logs()?.keep(&t.namespace, &t.paired_old()))
        .flatten()?;
    (kept.text.as_deref() != Some(text.as_str())).then_some(Change::Write(text))
}

/// Carries out `change` on `d`'s ConfigMap; what was done is remembered in `kept`, a failure
/// logged (a write is tried again [`MIN_GAP`] later, a delete at the next reconciliation).
pub(super) async fn apply<S>(
    ctx: &Context<S>,
    d: &Deployment,
    kept: &mut LogsKept,
    change: Change,
    now: Timestamp,
) {
    // A Deployment read from the API server has both.
    let (Some(ns), Some(uid)) = (d.metadata.namespace.as_deref(), d.metadata.uid.as_deref()) else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let name = config_map_name(&d.name_any());
    match change {
        Change::Write(text) => {
            kept.written_at = Some(now);
            let cm = config_map(d, uid, &name, &text);
            match write(&api, &cm, d, kept.text.is_none()).await {
                Ok(Written::Ours) => kept.text = Some(text),
                Ok(Written::Foreign) => {
                    kept.off = Some(Off::Foreign);
                    tracing::warn!(deployment = %d.name_any(), config_map = %name, "a ConfigMap of that name is not this Deployment's; left as it is, and the old pods' log counts are not kept");
                }
                Err(e) => {
                    kept.off = Off::of(&e);
                    tracing::warn!(deployment = %d.name_any(), config_map = %name, error = %e, "could not keep the old pods' log counts; a restarted controller would judge without them");
                }
            }
        }
        Change::Delete => match delete_owned(&api, &name, d).await {
            Ok(()) => kept.text = None,
            Err(e) => {
                tracing::warn!(deployment = %d.name_any(), config_map = %name, error = %e, "could not delete the kept log counts; tried again at the next reconciliation");
            }
        },
    }
}

/// What became of a write.
enum Written {
    Ours,
    /// A ConfigMap of that name is someone else's: not written.
    Foreign,
}

/// Writes `cm`, `d`'s ConfigMap (server-side apply); `first`, this process's first write of
/// it, looks whether one of that name is someone else's before.
async fn write(
    api: &Api<ConfigMap>,
    cm: &ConfigMap,
    d: &Deployment,
    first: bool,
) -> Result<Written, kube::Error> {
    let name = cm.metadata.name.as_deref().unwrap_or_default();
    if first
        && api
            .get_opt(name)
            .await?
            .is_some_and(|found| !owned_by(&found, d))
    {
        return Ok(Written::Foreign);
    }
    // Not forced: a field someone else wrote since is refused (409), not taken over.
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(cm))
        .await?;
    Ok(Written::Ours)
}

/// Deletes the ConfigMap `name` if `d` owns it (its uid as a precondition); one that is gone,
/// or not `d`'s, is left.
async fn delete_owned(api: &Api<ConfigMap>, name: &str, d: &Deployment) -> Result<(), kube::Error> {
    let Some(cm) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !owned_by(&cm, d) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: cm.metadata.uid.map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ConfigMap `name` holding `text` for `d` (whose uid is `uid`), owned by it
/// (garbage-collected with it).
fn config_map(d: &Deployment, uid: &str, name: &str, text: &str) -> ConfigMap {
    let owner = OwnerReference {
        api_version: Deployment::api_version(&()).into_owned(),
        kind: Deployment::kind(&()).into_owned(),
        name: d.name_any(),
        uid: uid.into(),
        ..OwnerReference::default()
    };
    // The Deployment is named by the owner reference (a label value could not hold a name
    // longer than 63 characters).
    let labels = BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_string(),
        FIELD_MANAGER.to_string(),
    )]);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_string(), text.to_string())])),
        ..ConfigMap::default()
    }
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
