//! Carries what `logs` rules counted of gone old pods over a restart of the controller (or a
//! change of leader): the log source's kept text goes into the `rollout-guard.io/kept-logs`
//! annotation while a rollout is analysed, and a process that meets a Deployment for the
//! first time gives it back to its log source before its first evaluation.
//!
//! Owns when the annotation is read and when it is worth a write (it changed; emptied once
//! nothing is analysed). What the text holds is the log source's; the write itself is the
//! actuator's. A text that cannot be taken back is logged and left: the logs rules then judge
//! without those pods, as they would have without the annotation.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt};

use super::{Context, Kept};
use crate::analysis::evaluate::Target;
use crate::analysis::source::MetricSource;
use crate::policy::annotations::KEPT_LOGS;

/// Gives the log source what the annotation kept, the first time this process reconciles `d`
/// (the store holds a slimmed copy, so the annotation is read from the API server).
pub(super) async fn restore<S: MetricSource>(
    ctx: &Context<S>,
    d: &Deployment,
    kept: &mut Kept,
    now: Timestamp,
) {
    if kept.logs.is_some() {
        return;
    }
    kept.logs = Some(String::new());
    let present = d
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.get(KEPT_LOGS).is_some_and(|v| !v.is_empty()));
    let Some(ns) = d.metadata.namespace.as_deref().filter(|_| present) else {
        return;
    };
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let text = match api.get(&d.name_any()).await {
        Ok(fresh) => fresh
            .annotations()
            .get(KEPT_LOGS)
            .cloned()
            .unwrap_or_default(),
        Err(e) => {
            // Tried again at the next reconciliation.
            kept.logs = None;
            tracing::warn!(deployment = %d.name_any(), error = %e, "could not read the kept log counts; logs rules judge without them until they are read");
            return;
        }
    };
    // Known as it is, taken back or not: replaced by the next change, emptied at the end.
    kept.logs = Some(text.clone());
    if text.is_empty() {
        return;
    }
    match ctx.source.restore_departed(ns, &text, now) {
        Ok(pods) => {
            tracing::info!(deployment = %d.name_any(), pods, "took back the log counts of gone pods kept before a restart");
        }
        Err(why) => {
            tracing::warn!(deployment = %d.name_any(), %why, "the kept log counts could not be read; logs rules judge without them");
        }
    }
}

/// The annotation's new value when it changed: while a rollout is `analysing`, what the log
/// source keeps of the gone pods of the old side of the `evaluated` target (none evaluated
/// now: nothing new); once it is not, empty. `None` when there is nothing to write (also in a
/// dry run, which writes nothing).
pub(super) fn changed<S: MetricSource>(
    ctx: &Context<S>,
    analysing: bool,
    evaluated: Option<&Target>,
    kept: &Kept,
    dry_run: bool,
) -> Option<String> {
    if dry_run {
        return None;
    }
    let now = match (analysing, evaluated) {
        (false, _) => String::new(),
        (true, Some(t)) => ctx
            .source
            .kept_departed(&t.namespace, &t.paired_old())
            .unwrap_or_default(),
        (true, None) => return None,
    };
    let before = kept.logs.as_deref().unwrap_or_default();
    (now != before).then_some(now)
}
