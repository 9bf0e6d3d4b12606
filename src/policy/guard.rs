//! The controller's policy for one Deployment: given where its rollout stands, what was
//! decided and done before, the mode, and the latest evaluation, say what to do now.
//!
//! Owns the per-revision state machine (analysing, gated, baking, passed, paused, rolled back,
//! overridden, skipped), the memory the controller keeps on the Deployment so that a restarted
//! or newly elected controller never acts twice nor undoes a human's later change, the rate
//! limit on rollbacks, and the gate's steps. Pure: it takes the rollout view, the memory, the
//! settings, the verdicts and the time, and returns a [`Plan`]; the controller evaluates and
//! the actuator writes. It must not call Kubernetes, Prometheus or the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::analysis::decision::{Decision, Streaks, overall};
use crate::analysis::evaluate::Target;
use crate::analysis::judge::{Outcome, Verdict};
use crate::analysis::rules::{Action, RuleSet};
use crate::policy::rollout::{Generation, Phase, RolloutView};

/// The schema version of [`Memory`] as written to the Deployment.
pub const MEMORY_VERSION: u32 = 1;
/// Actions kept in [`Memory::history`]: enough for the hourly rate limit.
pub const HISTORY_LEN: usize = 20;
/// Rolled-back revisions remembered in [`Memory::known_bad`] (the oldest forgotten first).
pub const KNOWN_BAD_LEN: usize = 10;
/// Times a held revision is paused again after something resumed it without the allow
/// annotation; the next resume is respected, with a warning (a GitOps tool with
/// `paused: false` in Git would otherwise fight the controller forever).
pub const MAX_REPAUSES: u32 = 3;
/// The annotation a person sets to release a held revision: its pod-template hash. Named here
/// for the messages that explain it; read by `annotations`.
pub const ALLOW_REVISION_ANNOTATION: &str = "rollout-guard.io/allow-revision";

/// How the controller treats one Deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decide and record, never write to the Deployment.
    Observe,
    /// Act during the natural rollout.
    #[default]
    Guard,
    /// Pause the rollout at its first pods (or at listed percentages), analyse for the bake
    /// time, then resume or roll back.
    Gate,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "observe" => Ok(Mode::Observe),
            "guard" => Ok(Mode::Guard),
            "gate" => Ok(Mode::Gate),
            other => Err(format!(
                "unknown mode {other:?} (expected observe, guard or gate)"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Observe => "observe",
            Mode::Guard => "guard",
            Mode::Gate => "gate",
        })
    }
}

/// The settings that apply to one Deployment (config defaults with its annotations applied).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub mode: Mode,
    /// Time between evaluations while a rollout is analysed.
    pub interval: Duration,
    /// How long a gate step is analysed before it resumes, and how long a completed rollout
    /// keeps being checked (absolute checks only, as no old pods remain).
    pub bake: Duration,
    /// Gate steps as percentages of the desired replicas; empty means one step at the first
    /// new pods.
    pub gate_steps: Vec<u32>,
    /// Rollbacks per Deployment in any hour beyond which the controller only records.
    pub max_rollbacks_per_hour: u32,
    /// Turns every action into a record (as in `observe`), globally or for this Deployment.
    pub kill_switch: bool,
    /// How long a rollback may take to show the old ReplicaSet available again.
    pub verify_timeout: Duration,
    /// The pod-template hash a person released with the allow annotation: a revision rolled
    /// back before, deployed again with this hash, is analysed from scratch instead of held.
    pub allowed_hash: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Guard,
            interval: Duration::from_secs(30),
            bake: Duration::from_secs(600),
            gate_steps: Vec::new(),
            max_rollbacks_per_hour: 3,
            kill_switch: false,
            verify_timeout: Duration::from_secs(600),
            allowed_hash: None,
        }
    }
}

impl Settings {
    /// Whether actions are only recorded.
    pub fn dry_run(&self) -> bool {
        self.mode == Mode::Observe || self.kill_switch
    }
}

/// What the controller remembers of one Deployment, written to it as an annotation with every
/// action, so that a restarted or newly elected controller carries on where it stood.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub version: u32,
    /// Bumped on every change; a copy with a higher `seq` is the newer one.
    pub seq: u64,
    /// The revision under analysis (or last analysed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<RevisionState>,
    /// The latest actions, newest last, at most [`HISTORY_LEN`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ActionRecord>,
    /// The revisions the controller rolled back, newest last, at most [`KNOWN_BAD_LEN`]:
    /// deployed again, they are held paused until a person releases them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_bad: Vec<KnownBad>,
}

impl Memory {
    /// What is remembered of a rollback of the revision with this hash, if it was rolled back.
    /// Memories written before `known_bad` existed keep their rollbacks in the history only.
    pub fn rolled_back(&self, hash: &str) -> Option<KnownBad> {
        if let Some(k) = self.known_bad.iter().find(|k| k.hash == hash) {
            return Some(k.clone());
        }
        self.history
            .iter()
            .rev()
            .find(|r| r.executed && r.hash == hash && matches!(r.act, Act::Rollback { .. }))
            .map(|r| KnownBad {
                hash: r.hash.clone(),
                revision: r.revision,
                at: r.at,
                rule: r.rule.clone().unwrap_or_default(),
                reason: String::new(),
                released: None,
            })
    }

    /// The rollback that makes this revision held, if it was rolled back and not released since.
    pub fn held(&self, hash: &str) -> Option<KnownBad> {
        self.rolled_back(hash).filter(|k| k.released.is_none())
    }

    /// Remembers `bad`, replacing what was known of the same hash, within [`KNOWN_BAD_LEN`].
    fn remember(&mut self, bad: KnownBad) {
        self.known_bad.retain(|k| k.hash != bad.hash);
        self.known_bad.push(bad);
        let excess = self.known_bad.len().saturating_sub(KNOWN_BAD_LEN);
        self.known_bad.drain(..excess);
    }
}

/// A revision the controller rolled back: why, and whether a person released it since.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownBad {
    /// The rolled-back ReplicaSet's `pod-template-hash`.
    pub hash: String,
    pub revision: u64,
    /// When it was rolled back.
    pub at: Timestamp,
    /// The rule that rolled it back.
    pub rule: String,
    /// The decision's reason, cut to a line (empty for rollbacks remembered by older versions).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When a person released it with the allow annotation; cleared by the next rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Timestamp>,
}

/// One revision's analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevisionState {
    /// The new ReplicaSet's `pod-template-hash`.
    pub hash: String,
    pub revision: u64,
    pub replicaset: String,
    /// When the controller first saw this revision rolling.
    pub since: Timestamp,
    /// The generation that served before it (where a rollback lands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    pub stage: Stage,
    #[serde(default)]
    pub streaks: Streaks,
    #[serde(default)]
    pub evaluations: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastVerdict>,
    /// Whether the Deployment controller gave up on this rollout (`ProgressDeadlineExceeded`)
    /// and the controller said so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// The rules that have reached a verdict (pass or fail) in this analysis.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub judged: BTreeSet<String>,
    /// The rules that have not yet, with the latest reason why (cut to a line).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unjudged: BTreeMap<String, String>,
    /// The gate step whose bake time ran out without a pass, once said (`GateInconclusive`
    /// is published once per hold, not at every evaluation while it holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue_step: Option<usize>,
}

/// Where one revision's analysis stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Rolling out; evaluated every interval.
    Analysing,
    /// Gate: resumed towards step `step`; paused again when the new pods reach its percentage.
    GateRolling { step: usize },
    /// Gate: paused by the controller at step `step`; analysed from `ready_since` (the first
    /// moment new pods were available) for the bake time.
    GateHold {
        step: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ready_since: Option<Timestamp>,
    },
    /// Rolled out; absolute checks until `since` + bake time.
    Baking { since: Timestamp },
    /// Analysed to the end with no action.
    Passed { at: Timestamp },
    /// Analysed to the end with no action, but these rules never reached a verdict (no data,
    /// too little traffic, no baseline): the analysis did not judge what they guard.
    Inconclusive { at: Timestamp, rules: Vec<String> },
    /// Paused by the controller on a failing rule; a person decides what comes next.
    Paused { at: Timestamp, rule: String },
    /// Rolled back by the controller to `to_hash`.
    RolledBack {
        at: Timestamp,
        to_hash: String,
        to_revision: u64,
        /// `None` while the old ReplicaSet is coming back, then whether it did in time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
    },
    /// A revision the controller rolled back, deployed again: held paused (not analysed, not
    /// rolled back again) until a person releases it with the allow annotation, or replaces
    /// its template. `repauses` counts the resumes the controller undid.
    Held {
        at: Timestamp,
        rule: String,
        #[serde(default)]
        repauses: u32,
    },
    /// Someone changed the Deployment after the controller acted (resumed what it paused):
    /// the controller keeps its hands off this revision.
    Overridden { at: Timestamp, why: String },
    /// Not analysed, and why. Written by versions before [`Stage::Held`] for a rolled-back
    /// revision deployed again; kept so that their memories still read.
    Skipped { at: Timestamp, why: String },
}

impl Stage {
    /// Stages in which the controller no longer evaluates nor watches this revision (a held
    /// one is watched: for its release, a resume, or a new template).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Stage::Passed { .. }
                | Stage::Inconclusive { .. }
                | Stage::Paused { .. }
                | Stage::RolledBack { .. }
                | Stage::Overridden { .. }
                | Stage::Skipped { .. }
        )
    }

    /// Which stage it is, without its data.
    pub fn kind(&self) -> StageName {
        match self {
            Stage::Analysing => StageName::Analysing,
            Stage::GateRolling { .. } => StageName::GateRolling,
            Stage::GateHold { .. } => StageName::GateHold,
            Stage::Baking { .. } => StageName::Baking,
            Stage::Passed { .. } => StageName::Passed,
            Stage::Inconclusive { .. } => StageName::Inconclusive,
            Stage::Paused { .. } => StageName::Paused,
            Stage::RolledBack { .. } => StageName::RolledBack,
            Stage::Held { .. } => StageName::Held,
            Stage::Overridden { .. } => StageName::Overridden,
            Stage::Skipped { .. } => StageName::Skipped,
        }
    }

    /// A short name for metrics and messages.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// The name of a [`Stage`], as decision records and messages carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Analysing,
    GateRolling,
    GateHold,
    Baking,
    Passed,
    Inconclusive,
    Paused,
    RolledBack,
    Held,
    Overridden,
    Skipped,
    /// A stage this version does not know (a record written by a newer one): read, not refused.
    #[serde(other)]
    Unknown,
}

impl StageName {
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Analysing => "analysing",
            StageName::GateRolling => "gate_rolling",
            StageName::GateHold => "gate_hold",
            StageName::Baking => "baking",
            StageName::Passed => "passed",
            StageName::Inconclusive => "inconclusive",
            StageName::Paused => "paused",
            StageName::RolledBack => "rolled_back",
            StageName::Held => "held",
            StageName::Overridden => "overridden",
            StageName::Skipped => "skipped",
            StageName::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest evaluation, in one line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastVerdict {
    pub at: Timestamp,
    pub outcome: Outcome,
    pub reason: String,
}

/// A write the controller asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Act {
    Pause,
    Resume,
    /// Back to the ReplicaSet with this pod-template hash.
    Rollback {
        to_hash: String,
        to_revision: u64,
    },
}

impl Act {
    pub fn name(&self) -> &'static str {
        match self {
            Act::Pause => "pause",
            Act::Resume => "resume",
            Act::Rollback { .. } => "rollback",
        }
    }
}

/// An action taken (or, when `executed` is false, only recorded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub at: Timestamp,
    pub act: Act,
    /// The revision acted on, by pod-template hash.
    pub hash: String,
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub executed: bool,
}

/// A Kubernetes Event to publish: reason (CamelCase) and a one-line note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub reason: EventReason,
    pub message: String,
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
    pub const ALL: [EventReason; 22] = [
        EventReason::AnalysisInconclusive,
        EventReason::AnalysisOverridden,
        EventReason::AnalysisPassed,
        EventReason::AnalysisStarted,
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

/// What to do now.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The memory after this step (to keep in process, and to write when `write` is set).
    pub memory: Memory,
    /// The writes to make, in order; none in a dry run.
    pub acts: Vec<Act>,
    /// Actions decided but not made (dry run, rate limit), for records and events.
    pub suppressed: Vec<Act>,
    pub notes: Vec<Note>,
    /// Whether the memory changed enough to be written to the Deployment.
    pub write: bool,
    /// Whether to remove the allow annotation with the write: the release it granted was
    /// taken (a release is good for one analysis; set again to release again).
    pub clear_allow: bool,
    /// The decision of this step's evaluation, if there was one.
    pub decision: Option<Decision>,
    /// When to look again.
    pub requeue: Duration,
}

/// What the controller should evaluate now, if anything: the new ReplicaSet against the old
/// ones with pods (or alone, once none remain).
pub fn wants_evaluation(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    now: Timestamp,
) -> Option<Target> {
    let new = view.new.as_ref()?;
    let state = match &memory.current {
        Some(s) if s.hash == new.hash => s.clone(),
        // Our own rollback rolling out: verified, not analysed.
        Some(RevisionState {
            stage: Stage::RolledBack { to_hash, .. },
            ..
        }) if *to_hash == new.hash => return None,
        // A held revision's template replaced: `plan` resumes first.
        Some(RevisionState {
            stage: Stage::Held { .. },
            ..
        }) => return None,
        // Not seen yet: `plan` decides whether it starts an analysis; evaluate only if it would.
        _ => start_state(view, memory, settings, now)?,
    };
    let evaluate = match &state.stage {
        Stage::Analysing | Stage::GateRolling { .. } | Stage::Baking { .. } => true,
        Stage::GateHold { .. } => new.available > 0,
        _ => false,
    };
    (evaluate && until_due(&state, settings, now).is_zero()).then(|| target(view, new, &state))
}

/// How long until the revision's next evaluation is due: zero when it is (or it was never
/// evaluated). Evaluations are paced by the interval, whatever wakes the controller: a
/// rollout's own watch events (every step changes the Deployment's and its ReplicaSets'
/// status) would otherwise evaluate it several times per interval, multiplying the queries
/// and shortening the `consecutive` streaks, which count evaluations one interval apart.
/// A wake-up up to a twentieth of the interval early (timer rounding) counts as due.
pub fn until_due(state: &RevisionState, settings: &Settings, now: Timestamp) -> Duration {
    let Some(last) = &state.last else {
        return Duration::ZERO;
    };
    let due = after(last.at, settings.interval - settings.interval / 20);
    if now >= due {
        return Duration::ZERO;
    }
    interval_left(last.at, settings, now)
}

/// What is left at `now` of the interval that began at `at`; zero once it has passed.
pub fn interval_left(at: Timestamp, settings: &Settings, now: Timestamp) -> Duration {
    Duration::try_from(after(at, settings.interval).duration_since(now)).unwrap_or(Duration::ZERO)
}

/// The new ReplicaSet against the old ones with pods, and against the generation that served
/// before the analysis began once its pods are gone (see [`Target::departed`]).
fn target(view: &RolloutView, new: &Generation, state: &RevisionState) -> Target {
    Target {
        namespace: view.namespace.clone(),
        deployment: view.name.clone(),
        new_replicaset: new.name.clone(),
        old_replicasets: view.old_with_pods().map(|g| g.name.clone()).collect(),
        departed: state
            .baseline
            .as_deref()
            .and_then(|hash| view.old_by_hash(hash))
            .filter(|g| g.pods == 0)
            .map(|g| g.name.clone())
            .into_iter()
            .collect(),
    }
}

/// The state a revision starts in when first seen, or `None` when there is nothing to analyse
/// (no rollout under way).
fn start_state(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    now: Timestamp,
) -> Option<RevisionState> {
    let new = view.new.as_ref()?;
    let stage = if let Some(bad) = memory
        .held(&new.hash)
        .filter(|_| settings.allowed_hash.as_deref() != Some(new.hash.as_str()))
    {
        Stage::Held {
            at: now,
            rule: bad.rule,
            repauses: 0,
        }
    } else if !view.is_rolling() || view.old_with_pods().next().is_none() {
        return None;
    } else if settings.mode == Mode::Gate && settings.gate_steps.is_empty() {
        // No percentages listed: the gate holds at the first new pods.
        Stage::GateHold {
            step: 0,
            ready_since: None,
        }
    } else if settings.mode == Mode::Gate {
        // Percentages listed: roll (and analyse) until the new pods reach the first one.
        Stage::GateRolling { step: 0 }
    } else {
        Stage::Analysing
    };
    Some(RevisionState {
        hash: new.hash.clone(),
        revision: new.revision,
        replicaset: new.name.clone(),
        since: now,
        baseline: serving_before(view, memory).map(|g| g.hash.clone()),
        stage,
        streaks: Streaks::default(),
        evaluations: 0,
        last: None,
        stalled: false,
        judged: BTreeSet::new(),
        unjudged: BTreeMap::new(),
        overdue_step: None,
    })
}

/// The generation that served before this rollout ([`RolloutView::serving_before`]), among
/// those not held as known-bad: a rollback never lands on a revision the controller rolled
/// back, and a release is not judged against one (after a Git revert while a bad revision
/// was held, the held one is the newest old ReplicaSet and still has its surge pods).
fn serving_before<'a>(view: &'a RolloutView, memory: &Memory) -> Option<&'a Generation> {
    let fine = |g: &&Generation| memory.held(&g.hash).is_none();
    view.old
        .iter()
        .filter(fine)
        .filter(|g| g.available > 0)
        .max_by_key(|g| (g.available, g.revision))
        .or_else(|| view.old.iter().find(fine))
}

/// Decides the next step for one Deployment. `evaluation` is the result of evaluating the
/// target [`wants_evaluation`] returned (with the rules it was evaluated with), if any.
pub fn plan(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    evaluation: Option<(&RuleSet, &[Verdict])>,
    now: Timestamp,
) -> Plan {
    let mut p = Planner {
        view,
        settings,
        now,
        memory: memory.clone(),
        acts: Vec::new(),
        suppressed: Vec::new(),
        notes: Vec::new(),
        write: false,
        clear_allow: false,
        decision: None,
    };
    let mut requeue = p.step(evaluation);
    // Woken between evaluations (a watch event): look again when the next one is due, not a
    // whole interval later.
    if let Some(state) = &p.memory.current
        && !state.stage.is_final()
    {
        let due = until_due(state, settings, now);
        if !due.is_zero() {
            requeue = requeue.min(due);
        }
    }
    let changed = p.memory != *memory;
    if changed {
        p.memory.version = MEMORY_VERSION;
        p.memory.seq = memory.seq + 1;
    }
    let dry = settings.dry_run();
    let mut acts = std::mem::take(&mut p.acts);
    if dry {
        p.suppressed.append(&mut acts);
    }
    Plan {
        write: p.write && changed && !dry,
        clear_allow: p.clear_allow && !dry,
        memory: p.memory,
        acts,
        suppressed: p.suppressed,
        notes: p.notes,
        decision: p.decision,
        requeue,
    }
}

/// Requeue time when nothing is under way: the watch wakes the controller on any change, so
/// this is only a safety net.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);

struct Planner<'a> {
    view: &'a RolloutView,
    settings: &'a Settings,
    now: Timestamp,
    memory: Memory,
    acts: Vec<Act>,
    suppressed: Vec<Act>,
    notes: Vec<Note>,
    write: bool,
    clear_allow: bool,
    decision: Option<Decision>,
}

impl Planner<'_> {
    fn step(&mut self, evaluation: Option<(&RuleSet, &[Verdict])>) -> Duration {
        if let Some(requeue) = self.held_replaced() {
            return requeue;
        }
        let Some(new) = self.view.new.clone() else {
            return self.settings.interval;
        };
        // A rollback we made is verified while the Deployment runs the revision we went back to.
        if let Some(state) = &self.memory.current
            && let Stage::RolledBack { to_hash, .. } = &state.stage
            && *to_hash == new.hash
        {
            return self.verify_rollback(&new);
        }
        if let Some(requeue) = self.known_bad(&new) {
            return requeue;
        }
        let seen = self
            .memory
            .current
            .as_ref()
            .is_some_and(|s| s.hash == new.hash);
        if !seen {
            match start_state(self.view, &self.memory, self.settings, self.now) {
                None => return IDLE_REQUEUE,
                Some(state) => {
                    let msg = format!(
                        "analysing revision {} ({}) against {} in {} mode",
                        new.revision,
                        new.name,
                        names(self.view.old_with_pods()),
                        self.settings.mode
                    );
                    self.note(EventReason::AnalysisStarted, msg, false);
                    self.memory.current = Some(state);
                    self.write = true;
                }
            }
        }
        if let Some((rules, verdicts)) = evaluation {
            self.fold(rules, verdicts);
        }
        let stage = self.state().stage.clone();
        if !stage.is_final() && self.view.phase == Phase::Stalled && !self.state().stalled {
            self.state().stalled = true;
            self.write = true;
            self.note(
                EventReason::RolloutStalled,
                format!(
                    "revision {} is stuck: the Deployment controller gave up waiting for its pods (ProgressDeadlineExceeded); the analysis goes on with the pods that run",
                    new.revision
                ),
                true,
            );
        }
        match stage {
            Stage::Analysing => self.analysing(&new),
            Stage::GateRolling { step } => self.gate_rolling(&new, step),
            Stage::GateHold { step, ready_since } => self.gate_hold(&new, step, ready_since),
            Stage::Baking { since } => self.baking(since),
            Stage::Paused { .. } => {
                if !self.view.paused {
                    self.override_by_human("resumed after the controller paused it");
                }
                IDLE_REQUEUE
            }
            _ => IDLE_REQUEUE,
        }
    }

    /// A revision the controller rolled back, deployed again (by a person, a pipeline re-run
    /// or a GitOps re-sync): held paused, released by the allow annotation, never analysed
    /// into a second rollback on its own. `None` when `new` is not such a revision, or when
    /// the controller already let go of it (released, or resumed past the re-pauses).
    fn known_bad(&mut self, new: &Generation) -> Option<Duration> {
        let bad = self.memory.held(&new.hash)?;
        let stage = self
            .memory
            .current
            .as_ref()
            .filter(|s| s.hash == new.hash)
            .map(|s| s.stage.clone());
        let held_now = matches!(stage, Some(Stage::Held { .. }));
        match stage {
            None | Some(Stage::RolledBack { .. } | Stage::Held { .. }) => {}
            // An older version let it roll out (`RevisionSkipped`): it runs; pausing it now, at
            // some unrelated event, would only surprise.
            Some(_) => return None,
        }
        if self.settings.allowed_hash.as_deref() == Some(new.hash.as_str()) {
            // Setting the annotation bumped the generation: wait until the Deployment
            // controller has seen it, so that the rollout's phase is known (its status update
            // wakes the controller).
            if self.view.phase == Phase::Pending {
                return Some(self.settings.interval);
            }
            return Some(self.release(new, bad, held_now));
        }
        Some(if held_now {
            self.keep_holding(new, &bad)
        } else {
            self.hold(new, &bad)
        })
    }

    fn hold(&mut self, new: &Generation, bad: &KnownBad) -> Duration {
        self.memory.current = start_state(self.view, &self.memory, self.settings, self.now);
        self.write = true;
        if self.view.phase == Phase::Complete {
            // Rolled out in full already (while no controller ran, or with actions off): a
            // pause would stop nothing. Said, and let go.
            let why = format!(
                "found fully rolled out; rolled back before on rule {}",
                bad.rule
            );
            self.state().stage = Stage::Overridden { at: self.now, why };
            let msg = format!(
                "{}; it is deployed again and already fully rolled out (while no controller ran, or with actions off), so it is not held: roll it back by hand if it is still bad",
                self.known_bad_story(new, bad)
            );
            self.note(EventReason::KnownBadRevision, msg, true);
            return IDLE_REQUEUE;
        }
        if !self.view.paused {
            self.acts.push(Act::Pause);
            self.record(Act::Pause, Some(bad.rule.clone()));
        }
        let what = if self.settings.dry_run() {
            "actions are off, so it is not held"
        } else {
            "it is held paused before it replaces more pods"
        };
        let msg = format!(
            "{}; deployed again, {what}. {}",
            self.known_bad_story(new, bad),
            self.release_hint(new)
        );
        self.note(EventReason::KnownBadRevision, msg, true);
        IDLE_REQUEUE
    }

    /// A held revision resumed without the allow annotation: paused again, up to
    /// [`MAX_REPAUSES`] times; then the controller lets go and says so.
    fn keep_holding(&mut self, new: &Generation, bad: &KnownBad) -> Duration {
        if self.view.paused || self.settings.dry_run() {
            return IDLE_REQUEUE;
        }
        let Stage::Held { repauses, .. } = self.state().stage.clone() else {
            return IDLE_REQUEUE;
        };
        self.write = true;
        if repauses >= MAX_REPAUSES {
            let why = format!(
                "resumed the held revision {} times without {ALLOW_REVISION_ANNOTATION}",
                repauses + 1
            );
            self.state().stage = Stage::Overridden { at: self.now, why };
            let msg = format!(
                "{}; it was resumed {} times without the allow annotation (a GitOps tool with `paused: false` in Git?): the controller stops holding it, and it rolls out unanalysed",
                self.known_bad_story(new, bad),
                repauses + 1
            );
            self.note(EventReason::KnownBadRevisionUnheld, msg, true);
            return IDLE_REQUEUE;
        }
        self.acts.push(Act::Pause);
        self.record(Act::Pause, Some(bad.rule.clone()));
        if let Stage::Held { repauses, .. } = &mut self.state().stage {
            *repauses += 1;
        }
        let msg = format!(
            "{}; it was resumed, and is held paused again ({} of {MAX_REPAUSES}). {}",
            self.known_bad_story(new, bad),
            repauses + 1,
            self.release_hint(new)
        );
        self.note(EventReason::KnownBadRevision, msg, true);
        IDLE_REQUEUE
    }

    /// The allow annotation names a held revision: it is analysed from scratch like any
    /// release (resumed if the controller paused it, unless a gate holds it there anyway), and
    /// the annotation is removed, so that a second rollback holds it again.
    fn release(&mut self, new: &Generation, mut bad: KnownBad, held_now: bool) -> Duration {
        bad.released = Some(self.now);
        self.memory.remember(bad);
        self.clear_allow = true;
        self.write = true;
        let resume = held_now && self.view.paused && self.paused_by_us(&new.hash);
        let state = start_state(self.view, &self.memory, self.settings, self.now);
        let what = match state {
            Some(state) => {
                let gate_hold = matches!(state.stage, Stage::GateHold { .. });
                self.memory.current = Some(state);
                if resume && !gate_hold {
                    self.acts.push(Act::Resume);
                    self.record(Act::Resume, None);
                }
                format!(
                    "analysing it from scratch against {} in {} mode",
                    names(self.view.old_with_pods()),
                    self.settings.mode
                )
            }
            None => {
                if held_now {
                    if resume {
                        self.acts.push(Act::Resume);
                        self.record(Act::Resume, None);
                    }
                    self.state().stage = Stage::Overridden {
                        at: self.now,
                        why: format!("released with {ALLOW_REVISION_ANNOTATION}"),
                    };
                }
                "it is not rolling out, so there is nothing to analyse".to_string()
            }
        };
        self.note(
            EventReason::KnownBadRevisionReleased,
            format!(
                "revision {} ({}) was released with {ALLOW_REVISION_ANNOTATION}; {what}",
                new.revision, new.name
            ),
            false,
        );
        self.settings.interval
    }

    /// A held revision whose template was replaced (Git reverted, another release): the pause
    /// the controller made for it is lifted (a paused Deployment does not roll out its new
    /// template), and the new template is analysed as any release.
    fn held_replaced(&mut self) -> Option<Duration> {
        let state = self.memory.current.as_ref()?;
        if !matches!(state.stage, Stage::Held { .. })
            || self.view.new.as_ref().is_some_and(|n| n.hash == state.hash)
        {
            return None;
        }
        let (hash, revision) = (state.hash.clone(), state.revision);
        let resume = self.view.paused && self.paused_by_us(&hash) && !self.settings.dry_run();
        if resume {
            self.acts.push(Act::Resume);
            self.record(Act::Resume, None);
        }
        self.state().stage = Stage::Overridden {
            at: self.now,
            why: "replaced the held revision's pod template".into(),
        };
        self.write = true;
        let resumed = if resume {
            "; resuming the rollout the controller paused"
        } else {
            ""
        };
        self.note(
            EventReason::KnownBadRevisionReplaced,
            format!("the held revision {revision} ({hash}) was replaced by another pod template{resumed}"),
            false,
        );
        Some(self.settings.interval)
    }

    /// Which rule rolled `new` back, when, and with what numbers.
    fn known_bad_story(&self, new: &Generation, bad: &KnownBad) -> String {
        let numbers = if bad.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", bad.reason)
        };
        format!(
            "revision {} ({}) is the pod template the controller rolled back at {} (as revision {}) on rule {}{numbers}",
            new.revision,
            new.name,
            bad.at,
            bad.revision,
            if bad.rule.is_empty() { "?" } else { &bad.rule },
        )
    }

    fn release_hint(&self, new: &Generation) -> String {
        format!(
            "To analyse it again from scratch: kubectl -n {} annotate deployment {} {ALLOW_REVISION_ANNOTATION}={} --overwrite",
            self.view.namespace, self.view.name, new.hash
        )
    }

    fn state(&mut self) -> &mut RevisionState {
        self.memory
            .current
            .as_mut()
            .expect("the planner sets the current revision before using it")
    }

    fn note(&mut self, reason: EventReason, message: String, warning: bool) {
        self.notes.push(Note {
            reason,
            message,
            warning,
        });
    }

    /// Folds an evaluation into the streaks and keeps its one-line summary.
    fn fold(&mut self, rules: &RuleSet, verdicts: &[Verdict]) {
        let now = self.now;
        let state = self.state();
        let decision = state.streaks.update(rules, verdicts);
        state.evaluations += 1;
        for v in verdicts {
            if v.outcome == Outcome::Inconclusive {
                if !state.judged.contains(&v.rule) {
                    state
                        .unjudged
                        .insert(v.rule.clone(), one_line(&v.reason, UNJUDGED_REASON));
                }
            } else if state.judged.insert(v.rule.clone()) {
                state.unjudged.remove(&v.rule);
            }
        }
        let outcome = overall(verdicts);
        let changed = state.last.as_ref().is_none_or(|l| l.outcome != outcome);
        state.last = Some(LastVerdict {
            at: now,
            outcome,
            reason: decision.reason.clone(),
        });
        // Written when the outcome changes, not on every evaluation: the Deployment is not a
        // log (the decision records are).
        self.write |= changed;
        self.decision = Some(decision);
    }

    /// The action the latest decision asks for, if it asks for pause or rollback.
    fn decided(&self) -> Option<(Action, String)> {
        let d = self.decision.as_ref()?;
        match d.action {
            Some(a @ (Action::Pause | Action::Rollback)) => {
                Some((a, d.rule.clone().unwrap_or_default()))
            }
            _ => None,
        }
    }

    fn analysing(&mut self, new: &Generation) -> Duration {
        if self.act_on_decision(new) {
            return self.settings.interval;
        }
        self.warn_on_decision();
        if self.view.phase == Phase::Complete {
            let revision = new.revision;
            self.state().stage = Stage::Baking { since: self.now };
            self.write = true;
            self.note(
                EventReason::RolloutComplete,
                format!(
                    "revision {revision} is fully rolled out; checking it alone for {}",
                    human(self.settings.bake)
                ),
                false,
            );
        }
        self.settings.interval
    }

    fn baking(&mut self, since: Timestamp) -> Duration {
        let new = self.view.new.clone().expect("checked by step");
        if self.act_on_decision(&new) {
            return self.settings.interval;
        }
        self.warn_on_decision();
        if self.now >= after(since, self.settings.bake) {
            self.end_without_action(new.revision);
            return IDLE_REQUEUE;
        }
        self.settings.interval
    }

    /// The end of an analysis that asked for nothing: passed when every rule reached a
    /// verdict at least once, inconclusive (a warning naming the rules and why) when some never
    /// did, or when nothing was evaluated at all.
    fn end_without_action(&mut self, revision: u64) {
        let now = self.now;
        let state = self.state();
        let evaluations = state.evaluations;
        let unjudged = std::mem::take(&mut state.unjudged);
        self.write = true;
        if evaluations > 0 && unjudged.is_empty() {
            self.state().stage = Stage::Passed { at: now };
            self.note(
                EventReason::AnalysisPassed,
                format!("revision {revision} passed: {evaluations} evaluation(s), no action"),
                false,
            );
            return;
        }
        let why = if evaluations == 0 {
            "no evaluation was made".to_string()
        } else {
            unjudged
                .iter()
                .map(|(rule, reason)| format!("{rule}: {reason}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        self.state().stage = Stage::Inconclusive {
            at: now,
            rules: unjudged.into_keys().collect(),
        };
        self.note(
            EventReason::AnalysisInconclusive,
            format!(
                "revision {revision}: no action, but not everything was judged in {evaluations} evaluation(s): {why}"
            ),
            true,
        );
    }

    fn gate_rolling(&mut self, new: &Generation, step: usize) -> Duration {
        if self.act_on_decision(new) {
            return self.settings.interval;
        }
        self.warn_on_decision();
        let Some(&pct) = self.settings.gate_steps.get(step) else {
            self.state().stage = Stage::Analysing;
            self.write = true;
            return self.analysing(new);
        };
        let reached =
            i64::from(new.available) * 100 >= i64::from(pct) * i64::from(self.view.desired);
        if reached && self.view.phase != Phase::Complete {
            self.pause_for_gate(step, Some(self.now));
        } else if self.view.phase == Phase::Complete {
            self.state().stage = Stage::Analysing;
            return self.analysing(new);
        }
        self.settings.interval
    }

    fn pause_for_gate(&mut self, step: usize, ready_since: Option<Timestamp>) {
        if !self.view.paused {
            self.acts.push(Act::Pause);
            let of = self.settings.gate_steps.len().max(1);
            self.note(
                EventReason::GatePaused,
                format!(
                    "gate step {} of {of}: paused to analyse for {}",
                    step + 1,
                    human(self.settings.bake)
                ),
                false,
            );
            self.record(Act::Pause, None);
        }
        self.state().stage = Stage::GateHold { step, ready_since };
        self.write = true;
    }

    fn gate_hold(
        &mut self,
        new: &Generation,
        step: usize,
        ready_since: Option<Timestamp>,
    ) -> Duration {
        let paused_by_us = self.paused_by_us(&new.hash);
        if !self.view.paused {
            if paused_by_us && !self.settings.dry_run() {
                self.override_by_human("resumed during the gate's analysis");
                return IDLE_REQUEUE;
            }
            if !self.settings.dry_run() || !self.already_recorded(&Act::Pause) {
                self.pause_for_gate(step, ready_since);
            }
        }
        if self.act_on_decision(new) {
            return self.settings.interval;
        }
        self.warn_on_decision();
        if new.available == 0 {
            return self.settings.interval;
        }
        let Some(since) = ready_since else {
            self.state().stage = Stage::GateHold {
                step,
                ready_since: Some(self.now),
            };
            self.write = true;
            return self.settings.interval;
        };
        if self.now < after(since, self.settings.bake) {
            return self.settings.interval;
        }
        // Resume only on evidence: the latest evaluation passed with nothing failing. An
        // inconclusive gate (Prometheus down, too little traffic) holds, and says so once.
        let passed = self
            .state()
            .last
            .as_ref()
            .is_some_and(|l| l.outcome == Outcome::Pass);
        if !passed {
            let already = self.state().overdue_step == Some(step);
            if !already && self.decision.is_some() {
                self.state().overdue_step = Some(step);
                self.write = true;
                let last = self
                    .state()
                    .last
                    .as_ref()
                    .map_or("no evaluation".into(), |l| l.reason.clone());
                self.note(
                    EventReason::GateInconclusive,
                    format!(
                        "gate step {}: the bake time is over but the analysis has not passed ({}); holding the rollout paused",
                        step + 1,
                        last
                    ),
                    true,
                );
            }
            return self.settings.interval;
        }
        self.acts.push(Act::Resume);
        self.record(Act::Resume, None);
        let next = step + 1;
        self.state().stage = if next < self.settings.gate_steps.len() {
            Stage::GateRolling { step: next }
        } else {
            Stage::Analysing
        };
        self.write = true;
        self.note(
            EventReason::GateResumed,
            format!(
                "gate step {} passed after {}: resuming the rollout",
                step + 1,
                human(self.settings.bake)
            ),
            false,
        );
        self.settings.interval
    }

    /// Pauses or rolls back when the decision says so. Returns whether it did (or recorded).
    fn act_on_decision(&mut self, new: &Generation) -> bool {
        let Some((action, rule)) = self.decided() else {
            return false;
        };
        let reason = self
            .decision
            .as_ref()
            .map(|d| d.reason.clone())
            .unwrap_or_default();
        match action {
            Action::Rollback => self.rollback(new, &rule, &reason),
            Action::Pause => {
                if self.settings.dry_run() {
                    if self.already_recorded(&Act::Pause) {
                        return false;
                    }
                } else if !self.view.paused {
                    self.acts.push(Act::Pause);
                }
                self.record(Act::Pause, Some(rule.clone()));
                self.note(EventReason::RolloutPaused, reason, true);
                if !self.settings.dry_run() {
                    self.state().stage = Stage::Paused { at: self.now, rule };
                }
                self.write = true;
                true
            }
            Action::Warn => false,
        }
    }

    fn rollback(&mut self, new: &Generation, rule: &str, reason: &str) -> bool {
        let baseline = self.state().baseline.clone();
        let target = baseline
            .as_deref()
            .and_then(|h| self.view.old_by_hash(h))
            .filter(|g| self.memory.held(&g.hash).is_none())
            .or_else(|| serving_before(self.view, &self.memory))
            .cloned();
        let Some(target) = target else {
            // Nothing to go back to (revision history cleaned up): pausing is the safe part.
            if self.settings.dry_run() && self.already_recorded(&Act::Pause) {
                return false;
            }
            if !self.view.paused && !self.settings.dry_run() {
                self.acts.push(Act::Pause);
            }
            self.record(Act::Pause, Some(rule.into()));
            self.note(
                EventReason::RollbackImpossible,
                format!("{reason}; no earlier ReplicaSet is left to roll back to, so the rollout is paused instead"),
                true,
            );
            if !self.settings.dry_run() {
                self.state().stage = Stage::Paused {
                    at: self.now,
                    rule: rule.into(),
                };
            }
            self.write = true;
            return true;
        };
        let act = Act::Rollback {
            to_hash: target.hash.clone(),
            to_revision: target.revision,
        };
        if self.settings.dry_run() {
            if self.already_recorded(&act) {
                return false;
            }
            self.record(act.clone(), Some(rule.into()));
            self.suppressed.push(act);
            self.note(
                EventReason::RollbackRecorded,
                format!(
                    "{reason}; would roll back to revision {} ({}) but actions are off ({})",
                    target.revision,
                    target.name,
                    if self.settings.kill_switch {
                        "kill switch"
                    } else {
                        "observe mode"
                    }
                ),
                true,
            );
            return true;
        }
        let hour_ago = self.now - SignedDuration::from_hours(1);
        let recent = self
            .memory
            .history
            .iter()
            .filter(|r| r.executed && matches!(r.act, Act::Rollback { .. }) && r.at > hour_ago)
            .count();
        if recent >= self.settings.max_rollbacks_per_hour as usize {
            if self.already_recorded(&act) {
                return false;
            }
            self.record_as(act.clone(), Some(rule.into()), false);
            self.suppressed.push(act);
            self.note(
                EventReason::RollbackRateLimited,
                format!(
                    "{reason}; not rolling back: {recent} rollback(s) in the last hour reached the limit of {}",
                    self.settings.max_rollbacks_per_hour
                ),
                true,
            );
            self.write = true;
            return true;
        }
        self.acts.push(act.clone());
        self.record(act, Some(rule.into()));
        let (hash, revision) = (new.hash.clone(), new.revision);
        self.memory.remember(KnownBad {
            hash,
            revision,
            at: self.now,
            rule: rule.into(),
            reason: one_line(reason, KNOWN_BAD_REASON),
            released: None,
        });
        self.note(
            EventReason::RolledBack,
            format!(
                "{reason}; rolling back from revision {} ({}) to revision {} ({})",
                new.revision, new.name, target.revision, target.name
            ),
            true,
        );
        self.state().stage = Stage::RolledBack {
            at: self.now,
            to_hash: target.hash.clone(),
            to_revision: target.revision,
            verified: None,
        };
        self.write = true;
        true
    }

    /// Whether the controller's latest pause-or-resume of this revision was a pause it made.
    /// Only the current analysis of `hash` counts (its records since it began): a pause from
    /// an earlier analysis of the same template was lifted by the rollback that ended it
    /// (a rollback clears `spec.paused`), whatever the history says after it.
    fn paused_by_us(&self, hash: &str) -> bool {
        let since = self
            .memory
            .current
            .as_ref()
            .filter(|s| s.hash == hash)
            .map(|s| s.since);
        self.memory
            .history
            .iter()
            .rev()
            .take_while(|r| since.is_none_or(|t| r.at >= t))
            .find(|r| r.hash == hash && r.executed)
            .is_some_and(|r| r.act == Act::Pause)
    }

    /// Whether this revision already has a record of the same action not carried out (dry
    /// runs and rate limits keep evaluating after deciding, and say so once).
    fn already_recorded(&self, act: &Act) -> bool {
        let hash = self.memory.current.as_ref().map(|s| s.hash.as_str());
        self.memory
            .history
            .iter()
            .any(|r| !r.executed && Some(r.hash.as_str()) == hash && r.act.name() == act.name())
    }

    fn warn_on_decision(&mut self) {
        if let Some(d) = &self.decision
            && d.action == Some(Action::Warn)
        {
            let reason = d.reason.clone();
            self.note(EventReason::RuleWarning, reason, true);
        }
    }

    fn record(&mut self, act: Act, rule: Option<String>) {
        let executed = !self.settings.dry_run();
        self.record_as(act, rule, executed);
    }

    fn record_as(&mut self, act: Act, rule: Option<String>, executed: bool) {
        let (hash, revision) = {
            let s = self.state();
            (s.hash.clone(), s.revision)
        };
        self.memory.history.push(ActionRecord {
            at: self.now,
            act,
            hash,
            revision,
            rule,
            executed,
        });
        let excess = self.memory.history.len().saturating_sub(HISTORY_LEN);
        self.memory.history.drain(..excess);
    }

    fn override_by_human(&mut self, what: &str) {
        let revision = self.state().revision;
        self.state().stage = Stage::Overridden {
            at: self.now,
            why: format!("someone {what}"),
        };
        self.write = true;
        self.note(
            EventReason::AnalysisOverridden,
            format!("revision {revision} was {what}; the controller keeps its hands off it"),
            false,
        );
    }

    fn verify_rollback(&mut self, new: &Generation) -> Duration {
        let Some(Stage::RolledBack { at, verified, .. }) =
            self.memory.current.as_ref().map(|s| s.stage.clone())
        else {
            return IDLE_REQUEUE;
        };
        if verified.is_some() {
            return IDLE_REQUEUE;
        }
        let bad = self.state().hash.clone();
        let bad_pods: i32 = self
            .view
            .old
            .iter()
            .filter(|g| g.hash == bad)
            .map(|g| g.pods)
            .sum();
        let back = new.available >= self.view.desired && bad_pods == 0;
        let result = if back {
            self.note(
                EventReason::RollbackComplete,
                format!(
                    "the previous release ({}) is available again on all {} pod(s), as revision {} (a rollback gives the restored template the next revision number)",
                    new.name, self.view.desired, new.revision
                ),
                false,
            );
            Some(true)
        } else if self.now >= after(at, self.settings.verify_timeout) {
            self.note(
                EventReason::RollbackNotTaking,
                format!(
                    "{} after the rollback, revision {} ({}) has {} of {} pod(s) available and the bad revision still has {bad_pods}: check the Deployment",
                    human(self.settings.verify_timeout),
                    new.revision,
                    new.name,
                    new.available,
                    self.view.desired
                ),
                true,
            );
            Some(false)
        } else {
            None
        };
        if let Some(ok) = result
            && let Stage::RolledBack { verified, .. } = &mut self.state().stage
        {
            *verified = Some(ok);
            self.write = true;
            return IDLE_REQUEUE;
        }
        self.settings.interval
    }
}

fn names<'a>(gens: impl Iterator<Item = &'a Generation>) -> String {
    let v: Vec<&str> = gens.map(|g| g.name.as_str()).collect();
    if v.is_empty() {
        "no old pods".into()
    } else {
        v.join(", ")
    }
}

/// `t` plus `d`, saturating.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// How much of a rule's latest reason is kept for a rule that has not yet judged.
const UNJUDGED_REASON: usize = 200;
/// How much of the decision's reason is kept for a rolled-back revision.
const KNOWN_BAD_REASON: usize = 300;

/// The first `max` bytes of `s` (at a character boundary), with an ellipsis when cut.
fn one_line(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A duration for people: `90s`, `10m`, `1h30m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// Gate steps must be percentages in 1..=100, strictly increasing.
pub fn gate_steps_ok(steps: &[u32]) -> Result<(), String> {
    if let Some(bad) = steps.iter().find(|s| !(1..=100).contains(*s)) {
        return Err(format!("{bad} is not a percentage in 1..=100"));
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("{steps:?} must be strictly increasing"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
