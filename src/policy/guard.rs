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
use crate::analysis::judge::{Baseline, Outcome, Verdict};
use crate::analysis::rules::Action;
use crate::policy::rollout::{Generation, Phase, RolloutView};

mod acting;
mod gate;
mod known_bad;
mod memory;
mod reasons;

pub use memory::{
    Act, ActionRecord, KnownBad, LastVerdict, Memory, RevisionState, Stage, StageName,
};
pub use reasons::{EventReason, Note};

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
    /// How the controller treats the Deployment: observe, guard or gate.
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

/// What to do now.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The memory after this step (to keep in process, and to write when `write` is set).
    pub memory: Memory,
    /// The writes to make, in order; none in a dry run.
    pub acts: Vec<Act>,
    /// Actions decided but not made (dry run, rate limit), for records and events.
    pub suppressed: Vec<Act>,
    /// The Events to publish about this step, also kept in its decision record.
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
/// ones with pods (or alone, once none remain). The first half of [`begin`] taken apart, kept
/// for the tests to check the one pass against (the controller uses [`begin`]).
#[cfg(test)]
pub fn wants_evaluation(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    now: Timestamp,
) -> Option<Target> {
    begin(view, memory, settings, now).target
}

/// One pass through the policy, begun at `now`: what it wants evaluated ([`Step::target`]),
/// and the state a revision seen for the first time starts in, computed once and carried into
/// [`Step::finish`], which plans on the evaluation's verdicts. The tests check it against the
/// two halves taken apart (`wants_evaluation`, `plan`).
pub struct Step<'a> {
    view: &'a RolloutView,
    memory: &'a Memory,
    settings: &'a Settings,
    now: Timestamp,
    started: Option<RevisionState>,
    target: Option<Target>,
}

/// Begins a step for the Deployment whose rollout is `view` and whose memory is `memory`.
pub fn begin<'a>(
    view: &'a RolloutView,
    memory: &'a Memory,
    settings: &'a Settings,
    now: Timestamp,
) -> Step<'a> {
    let unseen = view
        .new
        .as_ref()
        .is_some_and(|new| memory.current.as_ref().is_none_or(|s| s.hash != new.hash));
    let started = if unseen {
        start_state(view, memory, settings, now)
    } else {
        None
    };
    let target = wanted(view, memory, settings, now, started.as_ref());
    Step {
        view,
        memory,
        settings,
        now,
        started,
        target,
    }
}

impl Step<'_> {
    /// What to evaluate now, if anything.
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// The plan, on the verdicts of evaluating [`Step::target`] (with the rules they were
    /// evaluated with), or on none.
    pub fn finish(self, evaluation: Option<&[Verdict]>) -> Plan {
        planned(
            self.view,
            self.memory,
            self.settings,
            evaluation,
            self.now,
            self.started,
        )
    }
}

/// What [`wants_evaluation`] answers, with the state a first-seen revision starts in.
fn wanted(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    now: Timestamp,
    started: Option<&RevisionState>,
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
        _ => started?.clone(),
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
    } else if let Some(done) = finished_unseen(view, memory, settings, now) {
        // Judged alone, against the generation that served before, for what is left of the
        // bake it would have had.
        Stage::Baking { since: done }
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
        baselines: BTreeMap::new(),
        baseline_lines: BTreeMap::new(),
        overdue_step: None,
        bake_extension: None,
    })
}

/// What an `AnalysisStarted` Event says: against which pods, or, for a rollout that completed
/// before the controller analysed it ([`finished_unseen`]), against which generation and until when.
fn start_message(
    view: &RolloutView,
    new: &Generation,
    state: &RevisionState,
    settings: &Settings,
) -> String {
    let Stage::Baking { since } = state.stage else {
        return format!(
            "analysing revision {} ({}) against {} in {} mode",
            new.revision,
            new.name,
            names(view.old_with_pods()),
            settings.mode
        );
    };
    let before = state
        .baseline
        .as_deref()
        .and_then(|hash| view.old_by_hash(hash))
        .map_or("the generation before".to_string(), |g| {
            format!("revision {} ({})", g.revision, g.name)
        });
    format!(
        "revision {} ({}) completed its rollout at {since} before the controller analysed it (it was not running, or not the leader, or no old pod served beside the new ones); checking it alone against the history of {before} until {}",
        new.revision,
        new.name,
        after(since, settings.bake)
    )
}

/// Whether a rollout that completed at `done` is still inside the bake it would have had.
fn within_bake(done: Timestamp, settings: &Settings, now: Timestamp) -> bool {
    now < after(done, settings.bake)
}

/// Whether a Deployment at rest, its rollout of `revision` completed at `done`, may still need
/// a look at its ReplicaSets: a revision not in `memory`, complete for less than the bake time
/// ([`finished_unseen`] decides, from the ReplicaSets, whether it gets a bake). For the
/// controller's quick exit, which reads only the Deployment.
pub fn completed_unseen(
    memory: &Memory,
    revision: u64,
    done: Timestamp,
    settings: &Settings,
    now: Timestamp,
) -> bool {
    let seen = memory
        .current
        .as_ref()
        .is_some_and(|s| s.revision == revision);
    !seen && within_bake(done, settings, now)
}

/// How far back a release may have begun for [`finished_unseen`] to bake it: the default rules'
/// window, over which the judge still sees its first pods and the old version's history.
const UNSEEN_REACH: Duration = Duration::from_secs(3600);

/// How long before a release unseen the generation it is held against must have begun for
/// [`finished_unseen`] to bake it: a rollout interrupted by the next one is, within minutes.
const UNSEEN_BEFORE: Duration = Duration::from_secs(600);

/// When the rollout completed, for a release the controller never analysed rolling out (it was
/// not running, or not the leader: a 20-s rollout fits inside a leader handover; or no old pod
/// served beside the new ones, as with the `Recreate` strategy), if it is still worth a bake:
/// pods asked for, complete for less than the bake time, its ReplicaSet created less than
/// [`UNSEEN_REACH`] before that (a template of long ago rolled back to is no release), and a
/// generation begun [`UNSEEN_BEFORE`] before it, to be held against.
fn finished_unseen(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    now: Timestamp,
) -> Option<Timestamp> {
    let new = view.new.as_ref()?;
    // An API server's clock a little ahead of ours must not lose the bake.
    let (done, created) = (view.completed_at?.min(now), new.created?);
    let recent = within_bake(done, settings, now);
    let released = created <= done && done < after(created, UNSEEN_REACH);
    // The generation before must have begun well before this one: after a rollout
    // interrupted by the next, both complete unseen, the interrupted one is the newest old
    // ReplicaSet, with minutes of history, and likely the release that was replaced.
    let before = serving_before(view, memory).is_some_and(|g| {
        g.hash != new.hash && g.created.is_none_or(|c| after(c, UNSEEN_BEFORE) <= created)
    });
    let pods = view.desired > 0;
    (view.phase == Phase::Complete && recent && released && before && pods).then_some(done)
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
/// target [`wants_evaluation`] returned, if any: its verdicts carry what the decision needs of
/// their rules. The second half of the one pass taken apart, kept for the tests to check
/// [`Step::finish`] against.
#[cfg(test)]
pub fn plan(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    evaluation: Option<&[Verdict]>,
    now: Timestamp,
) -> Plan {
    planned(view, memory, settings, evaluation, now, None)
}

/// [`plan`], with the start state [`begin`] computed, if it did.
fn planned(
    view: &RolloutView,
    memory: &Memory,
    settings: &Settings,
    evaluation: Option<&[Verdict]>,
    now: Timestamp,
    started: Option<RevisionState>,
) -> Plan {
    let mut p = Planner {
        view,
        settings,
        now,
        started,
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
    /// The state a first-seen revision starts in, when [`begin`] computed it already (on the
    /// same view, memory, settings and time: the planner's steps before it change nothing).
    started: Option<RevisionState>,
    memory: Memory,
    acts: Vec<Act>,
    suppressed: Vec<Act>,
    notes: Vec<Note>,
    write: bool,
    clear_allow: bool,
    decision: Option<Decision>,
}

impl Planner<'_> {
    fn step(&mut self, evaluation: Option<&[Verdict]>) -> Duration {
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
            let started = self
                .started
                .take()
                .or_else(|| start_state(self.view, &self.memory, self.settings, self.now));
            match started {
                None => return IDLE_REQUEUE,
                Some(state) => {
                    let msg = start_message(self.view, &new, &state, self.settings);
                    self.note(EventReason::AnalysisStarted, msg, false);
                    self.memory.current = Some(state);
                    self.write = true;
                }
            }
        }
        if let Some(verdicts) = evaluation {
            self.fold(verdicts);
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
    fn fold(&mut self, verdicts: &[Verdict]) {
        let now = self.now;
        let state = self.state();
        let decision = state.streaks.update(verdicts);
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
            if v.outcome != Outcome::Inconclusive
                && let Some(b) = v.baseline()
            {
                state.baselines.insert(v.rule.clone(), b);
                if let Some(line) = v.baseline_line() {
                    state
                        .baseline_lines
                        .insert(v.rule.clone(), one_line(&line, BASELINE_LINE));
                }
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
        if self.now < after(since, self.settings.bake) {
            return self.settings.interval;
        }
        // The bake time is over. Only an evaluation ends it: a wake-up between two (the
        // controller's own annotation write, a watch event) waits for the next, which knows
        // whether a streak is under way.
        let Some(decision) = self.decision.clone() else {
            return self.settings.interval;
        };
        if self.extend_bake(&decision, new.revision) {
            return self.settings.interval;
        }
        self.end_without_action(new.revision);
        IDLE_REQUEUE
    }

    /// The bake time is over: whether it goes on because a rule fails toward its action and
    /// has not reached it, or its pass is not settled yet (an analysis must not pass on
    /// evidence under way; see [`Decision::extension_after`]). Says so once.
    fn extend_bake(&mut self, decision: &Decision, revision: u64) -> bool {
        let every = self.settings.interval;
        let state = self.state();
        let first = state.bake_extension.is_none();
        let Some(left) = decision.extension_after(state.bake_extension, every) else {
            return false;
        };
        state.bake_extension = Some(left);
        self.write = true;
        if first {
            self.note(
                EventReason::BakeExtended,
                format!(
                    "revision {revision}: the bake time is over while {}; checking up to {} more evaluation(s) before passing it",
                    decision.under_way(),
                    decision.open_for(every)
                ),
                false,
            );
        }
        true
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
            // A streak still open or a pass not settled once the bake's extension ran out:
            // said, for whoever reads the Event after an incident.
            let open = self
                .decision
                .as_ref()
                .map(|d| d.left_open("when the bake ended"))
                .filter(|o| !o.is_empty())
                .map_or(String::new(), |o| format!("; {o}"));
            let against = compared_with(self.state());
            self.note(
                EventReason::AnalysisPassed,
                format!(
                    "revision {revision} passed: {evaluations} evaluation(s), no action{open}{against}"
                ),
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
            rules: unjudged.keys().cloned().collect(),
            why: unjudged,
        };
        let against = compared_with(self.state());
        self.note(
            EventReason::AnalysisInconclusive,
            format!(
                "revision {revision}: no action, but not everything was judged in {evaluations} evaluation(s): {why}{against}"
            ),
            true,
        );
    }
}

/// What the rules that choose their baseline compared the new pods with at their latest
/// verdict, with its span and numbers: `"; compared with: cpu-per-request, the old version's
/// level 0.021 over 11:30:00–12:00:00 UTC (…)"`, or nothing when no such rule judged. State
/// written before the numbers were kept names the kind, rules with the same kind together.
fn compared_with(state: &RevisionState) -> String {
    let mut kinds: BTreeMap<Baseline, Vec<&str>> = BTreeMap::new();
    let mut lines = Vec::new();
    for (rule, b) in &state.baselines {
        match state.baseline_lines.get(rule) {
            Some(line) => lines.push(format!("{rule}, {line}")),
            None => kinds.entry(*b).or_default().push(rule),
        }
    }
    let mut out: String = kinds
        .iter()
        .map(|(b, rules)| format!("; compared with {}: {}", b.describe(), rules.join(", ")))
        .collect();
    if !lines.is_empty() {
        out.push_str(&format!("; compared with: {}", lines.join("; ")));
    }
    out
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
const UNJUDGED_REASON: usize = 260;
/// How much of a rule's baseline line is kept for the Event that ends the analysis.
const BASELINE_LINE: usize = 220;
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
