//! What the controller remembers of one Deployment between reconciliations and across
//! restarts and leader changes, as written to its state annotation: the revision under
//! analysis and its stage, the history of actions, the revisions rolled back (held when they
//! come back), and the acts a plan asks for. Plain data with the questions asked of it; the
//! planner changes it.

use super::*;

/// What the controller remembers of one Deployment, written to it as an annotation with every
/// action, so that a restarted or newly elected controller carries on where it stood.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// The schema version it was written in ([`MEMORY_VERSION`]).
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
    pub(super) fn remember(&mut self, bad: KnownBad) {
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
    /// Its Deployment revision number (`deployment.kubernetes.io/revision`).
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
    /// Its Deployment revision number (`deployment.kubernetes.io/revision`).
    pub revision: u64,
    /// The new ReplicaSet's name.
    pub replicaset: String,
    /// When the controller first saw this revision rolling.
    pub since: Timestamp,
    /// The generation that served before it (where a rollback lands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Where the analysis stands.
    pub stage: Stage,
    /// Failing evaluations in a row, per rule, in this analysis.
    #[serde(default)]
    pub streaks: Streaks,
    /// Evaluations made in this analysis.
    #[serde(default)]
    pub evaluations: u32,
    /// The latest evaluation, in one line; `None` before the first.
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
    /// What each rule that chooses its baseline (error rates, compare checks) compared the new
    /// pods with at its latest verdict, said when the analysis ends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, Baseline>,
    /// The same baselines' spans and numbers at that verdict, in one line each (empty in state
    /// written before stop 31: the Event then names the kind only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baseline_lines: BTreeMap<String, String>,
    /// Once the bake time ran out while a rule's streak was under way or its pass unsettled: how many more
    /// evaluations the bake may go on for (`BakeExtended` is published when it is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_extension: Option<u32>,
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
    GateRolling {
        /// The gate step rolled towards: an index into the settings' `gate_steps`.
        step: usize,
    },
    /// Gate: paused by the controller at step `step`; analysed from `ready_since` (the first
    /// moment new pods were available) for the bake time.
    GateHold {
        /// The gate step held at: an index into the settings' `gate_steps` (0 when none are
        /// listed).
        step: usize,
        /// When new pods were first seen available at this step; `None` until then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ready_since: Option<Timestamp>,
    },
    /// Rolled out; absolute checks until `since` + bake time.
    Baking {
        /// When the controller saw the rollout complete: the bake's start.
        since: Timestamp,
    },
    /// Analysed to the end with no action.
    Passed {
        /// When the analysis ended.
        at: Timestamp,
    },
    /// Analysed to the end with no action, but these rules never reached a verdict (no data,
    /// too little traffic, no baseline): the analysis did not judge what they guard.
    Inconclusive {
        /// When the analysis ended.
        at: Timestamp,
        /// The rules that never reached a verdict.
        rules: Vec<String>,
        /// Why each of them did not, at its latest evaluation (one line, shortened); empty in
        /// what a controller before it wrote.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        why: BTreeMap<String, String>,
    },
    /// Paused by the controller on a failing rule; a person decides what comes next.
    Paused {
        /// When the controller paused it.
        at: Timestamp,
        /// The failing rule that paused it (or asked for a rollback with nothing to roll back
        /// to).
        rule: String,
    },
    /// Rolled back by the controller to `to_hash`.
    RolledBack {
        /// When the controller rolled it back.
        at: Timestamp,
        /// The `pod-template-hash` of the ReplicaSet rolled back to.
        to_hash: String,
        /// The Deployment revision number of the ReplicaSet rolled back to.
        to_revision: u64,
        /// `None` while the old ReplicaSet is coming back, then whether it did in time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
    },
    /// A revision the controller rolled back, deployed again: held paused (not analysed, not
    /// rolled back again) until a person releases it with the allow annotation, or replaces
    /// its template. `repauses` counts the resumes the controller undid.
    Held {
        /// When the controller found it deployed again.
        at: Timestamp,
        /// The rule that rolled it back before.
        rule: String,
        /// Resumes by someone else that the controller paused again (at most [`MAX_REPAUSES`]).
        #[serde(default)]
        repauses: u32,
    },
    /// Someone changed the Deployment after the controller acted (resumed what it paused):
    /// the controller keeps its hands off this revision.
    Overridden {
        /// When the controller saw the change.
        at: Timestamp,
        /// What was changed, in one line.
        why: String,
    },
    /// Not analysed, and why. Written by versions before [`Stage::Held`] for a rolled-back
    /// revision deployed again; kept so that their memories still read.
    Skipped {
        /// When the analysis was skipped.
        at: Timestamp,
        /// Why, in one line.
        why: String,
    },
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
    /// Rolling out and analysed ([`Stage::Analysing`]).
    Analysing,
    /// Gate: rolling towards a step ([`Stage::GateRolling`]).
    GateRolling,
    /// Gate: paused at a step for its analysis ([`Stage::GateHold`]).
    GateHold,
    /// Rolled out; the bake ([`Stage::Baking`]).
    Baking,
    /// Analysed to the end with no action ([`Stage::Passed`]).
    Passed,
    /// Analysed to the end with no action, some rules never judged ([`Stage::Inconclusive`]).
    Inconclusive,
    /// Paused by the controller on a failing rule ([`Stage::Paused`]).
    Paused,
    /// Rolled back by the controller ([`Stage::RolledBack`]).
    RolledBack,
    /// A rolled-back revision deployed again, held paused ([`Stage::Held`]).
    Held,
    /// Changed by someone after the controller acted ([`Stage::Overridden`]).
    Overridden,
    /// Not analysed (older versions' [`Stage::Skipped`]).
    Skipped,
    /// A stage this version does not know (a record written by a newer one): read, not refused.
    #[serde(other)]
    Unknown,
}

impl StageName {
    /// The name in snake case, as records, metrics and messages carry it.
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
    /// When the evaluation was made.
    pub at: Timestamp,
    /// The evaluation's overall outcome: fail if any rule failed, else inconclusive if any was,
    /// else pass.
    pub outcome: Outcome,
    /// The decision's reason, in one line.
    pub reason: String,
}

/// A write the controller asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Act {
    /// Pause the rollout (`spec.paused: true`).
    Pause,
    /// Resume the rollout (`spec.paused: false`).
    Resume,
    /// Back to the ReplicaSet with this pod-template hash.
    Rollback {
        /// The `pod-template-hash` of the ReplicaSet to roll back to.
        to_hash: String,
        /// Its Deployment revision number.
        to_revision: u64,
    },
}

impl Act {
    /// Whether `other` is the same kind of act (a rollback to any generation is a rollback).
    pub fn same_kind(&self, other: &Act) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// A short name for records and messages: `pause`, `resume` or `rollback`.
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
    /// When it was decided.
    pub at: Timestamp,
    /// What was (or would have been) written.
    pub act: Act,
    /// The revision acted on, by pod-template hash.
    pub hash: String,
    /// The revision acted on, by Deployment revision number.
    pub revision: u64,
    /// The rule that decided it; `None` for gate pauses and for resumes, which no rule decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Whether it was written to the Deployment; `false` when only recorded (dry run, rate limit).
    pub executed: bool,
}
