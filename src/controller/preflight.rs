//! The preflight at the start of an analysis: whether each rule can be evaluated for the pods
//! that serve now (the check `rollout-guard check` runs), said once per analysis — a Warning
//! Event `RulesCannotEvaluate` naming each rule that will stay inconclusive and why, the gauge
//! `rollout_guard_rules_unevaluable` for the Deployment, a log line, and the webhooks that
//! asked for `inconclusive`. A rule whose series do not exist (no `php_errors_total`, no CPU
//! limits) would otherwise be named only when the analysis ends.
//!
//! Owns when and of what pods the check is made, and how its result is said. Runs beside the
//! reconciliation (spawned): a slow or failing Prometheus never delays a decision; its queries
//! wait for a permit of `limits.max_concurrent_evaluations` as an evaluation's do. Decides
//! nothing about the rollout; what the answers mean is [`crate::analysis::preflight`]'s.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;

use super::{Context, notify};
use crate::analysis::preflight::{self, RuleCheck, Subject};
use crate::analysis::rules::RuleSet;
use crate::analysis::source::MetricSource;
use crate::policy::guard::{EventReason, Note};
use crate::policy::rollout::RolloutView;

/// The ReplicaSet the rules are checked against when an analysis starts: the old one whose
/// pods serve (the new pods have barely started, and may not be scraped yet), else the new
/// one if it has pods; `None` when no pods serve.
pub(crate) fn subject(view: &RolloutView) -> Option<Subject> {
    let serving = view
        .old_with_pods()
        .max_by_key(|g| g.pods)
        .or_else(|| view.new.as_ref().filter(|g| g.pods > 0))?;
    Some(Subject {
        namespace: view.namespace.clone(),
        deployment: view.name.clone(),
        replicaset: serving.name.clone(),
    })
}

/// The note for the rules that cannot be evaluated, if any.
pub(crate) fn note(checks: &[RuleCheck], subject: &Subject) -> Option<Note> {
    let blocked: Vec<String> = checks
        .iter()
        .filter(|c| c.readiness.blocks())
        .map(|c| c.describe(subject))
        .collect();
    if blocked.is_empty() {
        return None;
    }
    Some(Note {
        reason: EventReason::RulesCannotEvaluate,
        message: format!(
            "{} of {} rule(s) cannot be evaluated for the pods of {} and will stay inconclusive in this analysis: {}",
            blocked.len(),
            checks.len(),
            subject.replicaset,
            blocked.join("; ")
        ),
        warning: true,
    })
}

/// Checks `rules` for the serving pods as they were at `at` (the analysis' start) and says
/// what cannot be evaluated, in the background. `publish`: whether Events may be written (not
/// in observe mode or under the kill switch).
pub(super) fn spawn<S: MetricSource + Send + Sync + 'static>(
    ctx: &Arc<Context<S>>,
    d: &Arc<Deployment>,
    view: &RolloutView,
    rules: Arc<RuleSet>,
    at: jiff::Timestamp,
    publish: bool,
) {
    let Some(subject) = subject(view) else { return };
    let (ctx, d, view) = (Arc::clone(ctx), Arc::clone(d), view.clone());
    tokio::spawn(async move {
        // Its queries count against `limits.max_concurrent_evaluations` like an evaluation's:
        // Prometheus sees no more at once for it.
        let permit = ctx.evaluations.acquire().await.ok();
        let checks = preflight::check(&rules, &subject, at, &ctx.source).await;
        drop(permit);
        let note = note(&checks, &subject);
        let blocked = checks.iter().filter(|c| c.readiness.blocks()).count();
        ctx.metrics
            .rules_unevaluable(&view.namespace, &view.name, blocked);
        let Some(note) = note else { return };
        tracing::warn!(
            deployment = %format!("{}/{}", view.namespace, view.name),
            replicaset = %subject.replicaset,
            blocked,
            message = %note.message,
            "rules cannot be evaluated"
        );
        let about = view.new.as_ref().map(|g| g.name.as_str());
        if publish {
            ctx.actuator
                .publish(&d, std::slice::from_ref(&note), about)
                .await;
        }
        notify(&ctx.notifier, &view, std::slice::from_ref(&note), at);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::judge::QueryName;
    use crate::analysis::preflight::Readiness;

    fn check(rule: &str, readiness: Readiness) -> RuleCheck {
        RuleCheck {
            rule: rule.into(),
            readiness,
            answers: Vec::new(),
        }
    }

    #[test]
    fn only_rules_that_will_stay_inconclusive_are_named() {
        let subject = Subject {
            namespace: "shop".into(),
            deployment: "web".into(),
            replicaset: "web-5f".into(),
        };
        let checks = [
            check("ok", Readiness::Ready),
            check("logs", Readiness::NotChecked),
            check("unborn", Readiness::ErrorsNotYetSeen),
            check("cpu", Readiness::NoSeries(QueryName::Query)),
            check(
                "down",
                Readiness::Failed(QueryName::Errors, "timeout".into()),
            ),
        ];
        let n = note(&checks, &subject).expect("two rules blocked");
        assert_eq!(n.reason, EventReason::RulesCannotEvaluate);
        assert!(n.warning);
        assert!(n.message.starts_with("2 of 5 rule(s)"), "{}", n.message);
        assert!(
            n.message.contains("cpu: no series for any pod of web-5f"),
            "{}",
            n.message
        );
        assert!(n.message.contains("down: its errors query failed: timeout"));
        for fine in ["ok:", "logs:", "unborn:"] {
            assert!(!n.message.contains(fine), "{}", n.message);
        }
        assert_eq!(note(&checks[..3], &subject), None);
    }
}
