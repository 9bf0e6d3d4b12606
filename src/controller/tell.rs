//! What the controller tells about each step besides the Kubernetes Events: the log line of
//! an evaluation and of each note, the notices for the webhooks, and the images a record
//! names. Formatting only; deciding and writing are elsewhere.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::adapters::notify::{Notice, NoticeKind, Notifier};
use crate::analysis::judge::Verdict;
use crate::policy::guard::{Note, Plan, Settings};
use crate::policy::rollout::RolloutView;

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
