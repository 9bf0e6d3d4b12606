//! Why the controller says something: the reasons of its Kubernetes Events, of the notes in
//! its decision records and of its notifications ([`EventReason`]), and a note to publish
//! ([`Note`]). Owns the names (CamelCase, as Kubernetes and the records carry them); when a
//! reason is given is the planner's.

use serde::{Deserialize, Serialize};

/// A Kubernetes Event to publish: reason (CamelCase) and a one-line note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Why it is published.
    pub reason: EventReason,
    /// What happened, in one line.
    pub message: String,
    /// Whether it is a `Warning` Event rather than a `Normal` one.
    pub warning: bool,
}

/// Why the controller says something: the reason of its Kubernetes Events, of the notes in
/// its decision records, and the kind of a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventReason {
    /// The analysis ended with no action, but some rules never reached a verdict.
    AnalysisInconclusive,
    /// Someone changed the Deployment after the controller acted; it keeps its hands off.
    AnalysisOverridden,
    /// The analysis ended with no action and every rule judged.
    AnalysisPassed,
    /// An analysis of a new revision began.
    AnalysisStarted,
    /// The bake time is over while a rule fails toward its action, or its pass is not settled:
    /// the bake goes on until that streak completes or breaks (at most the rule's
    /// `consecutive` more evaluations), or the pass settles.
    BakeExtended,
    /// A gate step overdue with rules that cannot judge: the rollout stays paused.
    GateInconclusive,
    /// A gate step reached: the controller paused the rollout to analyse it.
    GatePaused,
    /// A gate step passed: the controller resumed the rollout.
    GateResumed,
    /// A revision the controller rolled back is deployed again: held paused.
    KnownBadRevision,
    /// A held revision released by the allow annotation for one fresh analysis.
    KnownBadRevisionReleased,
    /// A held revision replaced by another template: the pause lifted.
    KnownBadRevisionReplaced,
    /// A held revision resumed too often by someone else: no longer held.
    KnownBadRevisionUnheld,
    /// The revision rolled back to is serving again.
    RollbackComplete,
    /// A rollback was due but there is nothing to roll back to.
    RollbackImpossible,
    /// The revision rolled back to did not come back in time.
    RollbackNotTaking,
    /// A rollback was due but the hourly limit was reached: recorded only.
    RollbackRateLimited,
    /// A rollback was due but only recorded (observe mode, kill switch).
    RollbackRecorded,
    /// The controller rolled the Deployment back.
    RolledBack,
    /// Every pod is new; the bake begins.
    RolloutComplete,
    /// The controller paused the rollout on a failing rule.
    RolloutPaused,
    /// The Deployment controller gave up waiting (ProgressDeadlineExceeded).
    RolloutStalled,
    /// A failing rule whose action is only to warn.
    RuleWarning,
    /// At an analysis' start, some rules cannot be evaluated (no series, a failing query).
    RulesCannotEvaluate,
    /// A reason this version does not know (a record written by a newer one).
    #[serde(other)]
    Unknown,
}

impl EventReason {
    /// Every reason the controller gives.
    pub const ALL: [EventReason; 23] = [
        EventReason::AnalysisInconclusive,
        EventReason::AnalysisOverridden,
        EventReason::AnalysisPassed,
        EventReason::AnalysisStarted,
        EventReason::BakeExtended,
        EventReason::GateInconclusive,
        EventReason::GatePaused,
        EventReason::GateResumed,
        EventReason::KnownBadRevision,
        EventReason::KnownBadRevisionReleased,
        EventReason::KnownBadRevisionReplaced,
        EventReason::KnownBadRevisionUnheld,
        EventReason::RollbackComplete,
        EventReason::RollbackImpossible,
        EventReason::RollbackNotTaking,
        EventReason::RollbackRateLimited,
        EventReason::RollbackRecorded,
        EventReason::RolledBack,
        EventReason::RolloutComplete,
        EventReason::RolloutPaused,
        EventReason::RolloutStalled,
        EventReason::RuleWarning,
        EventReason::RulesCannotEvaluate,
    ];

    /// As Kubernetes Events and the records carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::AnalysisInconclusive => "AnalysisInconclusive",
            EventReason::AnalysisOverridden => "AnalysisOverridden",
            EventReason::AnalysisPassed => "AnalysisPassed",
            EventReason::AnalysisStarted => "AnalysisStarted",
            EventReason::BakeExtended => "BakeExtended",
            EventReason::GateInconclusive => "GateInconclusive",
            EventReason::GatePaused => "GatePaused",
            EventReason::GateResumed => "GateResumed",
            EventReason::KnownBadRevision => "KnownBadRevision",
            EventReason::KnownBadRevisionReleased => "KnownBadRevisionReleased",
            EventReason::KnownBadRevisionReplaced => "KnownBadRevisionReplaced",
            EventReason::KnownBadRevisionUnheld => "KnownBadRevisionUnheld",
            EventReason::RollbackComplete => "RollbackComplete",
            EventReason::RollbackImpossible => "RollbackImpossible",
            EventReason::RollbackNotTaking => "RollbackNotTaking",
            EventReason::RollbackRateLimited => "RollbackRateLimited",
            EventReason::RollbackRecorded => "RollbackRecorded",
            EventReason::RolledBack => "RolledBack",
            EventReason::RolloutComplete => "RolloutComplete",
            EventReason::RolloutPaused => "RolloutPaused",
            EventReason::RolloutStalled => "RolloutStalled",
            EventReason::RuleWarning => "RuleWarning",
            EventReason::RulesCannotEvaluate => "RulesCannotEvaluate",
            EventReason::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
