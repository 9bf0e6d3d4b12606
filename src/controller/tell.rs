//! What the controller tells about each step: the decision records ([`Recording`]), the log
//! line of an evaluation and of each note, the notices for the webhooks, the Events of a
//! written plan and the preflight when an analysis begins, and the action counters. Deciding
//! and writing the plan are elsewhere.

use std::collections::BTreeMap;

use jiff::Timestamp;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;

use super::{Context, preflight};
use crate::adapters::notify::{Notice, NoticeKind, Notifier};
use crate::adapters::telemetry::{ActionResult, Metrics};
use crate::analysis::judge::Verdict;
use crate::analysis::rules::RuleSet;
use crate::analysis::source::MetricSource;
use crate::policy::guard::{self, Note, Plan, Settings};
use crate::policy::rollout::RolloutView;
use crate::records::{Kind, Progress, Record, SCHEMA, WriteResult};

/// Logs an evaluation's verdicts and decision, and each note of the plan.
pub(super) fn log_step(
    name: &str,
    view: &RolloutView,
    settings: &Settings,
    verdicts: Option<&[Verdict]>,
    plan: &Plan,
) {
    let stage = plan
        .memory
        .current
        .as_ref()
        .map_or("none", |s| s.stage.name());
    if let Some(v) = verdicts {
        let summary: Vec<String> = v
            .iter()
            .map(|v| format!("{}={}", v.rule, v.outcome))
            .collect();
        tracing::info!(
            deployment = %name,
            phase = %view.phase,
            mode = %settings.mode,
            stage,
            verdicts = %summary.join(","),
            decision = plan.decision.as_ref().map_or("", |d| d.reason.as_str()),
            acts = ?plan.acts,
            suppressed = ?plan.suppressed,
            "evaluated"
        );
    }
    for n in &plan.notes {
        tracing::info!(deployment = %name, reason = %n.reason, "{}", n.message);
    }
}

/// The container images of the new generation, the old ones with pods, and the newest old one
/// (the version a fast rollout replaced is gone before the first record), by ReplicaSet.
pub(super) fn images(view: &RolloutView) -> BTreeMap<String, BTreeMap<String, String>> {
    view.new
        .iter()
        .chain(view.old_with_pods())
        .chain(view.old.first())
        .filter(|g| !g.images.is_empty())
        .map(|g| (g.name.clone(), g.images.clone()))
        .collect()
}

/// Hands the notices the written plan's Events make to the notifier (which never waits).
pub(super) fn notify(notifier: &Notifier, view: &RolloutView, notes: &[Note], at: Timestamp) {
    for n in notes {
        let Some(kind) = NoticeKind::of(n.reason) else {
            continue;
        };
        notifier.notify(&Notice {
            kind,
            reason: n.reason,
            namespace: view.namespace.clone(),
            deployment: view.name.clone(),
            revision: view.new.as_ref().map(|g| g.revision),
            at,
            message: n.message.clone(),
        });
    }
}

/// What a step's records share: when, about what, in which mode, and what was planned.
pub(super) struct Recording<'a> {
    pub(super) at: Timestamp,
    pub(super) view: &'a RolloutView,
    pub(super) mode: guard::Mode,
    pub(super) plan: &'a Plan,
    /// When the verdicts decided on were made, if an earlier evaluation's were reused.
    pub(super) reused_at: Option<Timestamp>,
}

impl Recording<'_> {
    pub(super) fn record(
        &self,
        kind: Kind,
        verdicts: Vec<Verdict>,
        result: Option<WriteResult>,
        notes: Vec<guard::Note>,
    ) -> Record {
        let view = self.view;
        Record {
            schema: SCHEMA,
            kind,
            at: self.at,
            namespace: view.namespace.clone(),
            deployment: view.name.clone(),
            mode: self.mode,
            phase: view.phase,
            revision: view.new.as_ref().map(|g| g.revision),
            new_replicaset: view.new.as_ref().map(|g| g.name.clone()),
            old_replicasets: view.old_with_pods().map(|g| g.name.clone()).collect(),
            stage: self.plan.memory.current.as_ref().map(|s| s.stage.kind()),
            verdicts,
            verdicts_of: self.reused_at.filter(|_| kind == Kind::Evaluation),
            decision: self.plan.decision.clone(),
            acts: self.plan.acts.clone(),
            suppressed: self.plan.suppressed.clone(),
            notes,
            result,
            progress: view.new.as_ref().map(|g| Progress {
                new_available: g.available,
                desired: view.desired,
            }),
            images: images(view),
        }
    }
}

/// Counts `acts` on the Deployment with `result`.
pub(super) fn count(
    metrics: &Metrics,
    view: &RolloutView,
    acts: &[guard::Act],
    result: ActionResult,
) {
    for a in acts {
        metrics.action(&view.namespace, &view.name, a.name(), result);
    }
}

/// Publishes the written plan's Events (not in a dry run), and starts the preflight when an
/// analysis begins.
pub(super) async fn say<S: MetricSource + Send + Sync + 'static>(
    ctx: &Arc<Context<S>>,
    d: &Arc<Deployment>,
    view: &RolloutView,
    plan: &Plan,
    rules: Arc<RuleSet>,
    now: Timestamp,
    publish: bool,
) {
    if publish {
        let about = plan.memory.current.as_ref().map(|s| s.replicaset.as_str());
        ctx.actuator.publish(d, &plan.notes, about).await;
    }
    if plan
        .notes
        .iter()
        .any(|n| n.reason == guard::EventReason::AnalysisStarted)
    {
        preflight::spawn(ctx, d, view, rules, now, publish);
    }
}
