//! What `rollout-guard status` says of a release, for a CI pipeline that runs it after
//! `kubectl rollout status`: passed, rolled back, held or paused, still analysing,
//! inconclusive, or not guarded, each with its own exit code.
//!
//! Owns the reading of a Deployment's rollout view and the controller's memory (its state
//! annotation) into one [`Status`], and the exit codes. Pure: the command fetches the objects
//! and waits; this module must not call Kubernetes or the clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::policy::guard::{Memory, Mode, RevisionState, Stage};
use crate::policy::rollout::{Generation, RolloutView};

/// Where a release stands, as a pipeline needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// Analysed to the end; no rule acted, and every rule reached a verdict.
    Passed,
    /// Rolled back by the controller: the release is not what runs.
    RolledBack,
    /// A release the controller rolled back before, deployed again and held paused.
    Held,
    /// Paused by the controller on a failing rule: a person decides.
    Paused,
    /// The analysis goes on (rolling out, gate, bake), or has not begun yet.
    Analysing,
    /// Analysed to the end with no action, but some rules never reached a verdict.
    Inconclusive,
    /// Not guarded: not opted in, observe mode, taken over by a person, or never analysed.
    NotGuarded,
}

impl State {
    /// The command's exit code (2 is left for usage and connection errors).
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            State::Passed => 0,
            State::RolledBack => 3,
            State::Held | State::Paused => 4,
            State::Analysing => 5,
            State::Inconclusive => 6,
            State::NotGuarded => 7,
        }
    }

    /// Whether waiting longer could change it.
    pub(crate) fn is_settled(self) -> bool {
        self != State::Analysing
    }

    /// A short name for people (`rolled back`, `not guarded`, …).
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Passed => "passed",
            State::RolledBack => "rolled back",
            State::Held => "held",
            State::Paused => "paused",
            State::Analysing => "analysing",
            State::Inconclusive => "inconclusive",
            State::NotGuarded => "not guarded",
        }
    }
}

/// What the Deployment says about its guarding, read from its annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guarding {
    /// Not opted in by annotation and no state written: not (or not yet) guarded.
    Off,
    /// Opted in, in this mode.
    On(Mode),
}

/// The status of one release of a Deployment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Status {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// Where the release stands.
    pub state: State,
    /// The release's Deployment revision number, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The release's ReplicaSet, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicaset: Option<String>,
    /// The release's `pod-template-hash`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The controller's stage for it (`analysing`, `baking`, `rolled_back`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The rule that acted, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// One line for people: what happened and why.
    pub why: String,
    /// What each rule that chooses its baseline (error rates, compare checks) compared the
    /// release's pods with at its latest verdict: the baseline's span and numbers, or its kind
    /// alone in state written before they were kept.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub compared_with: BTreeMap<String, String>,
    /// The exit code `state` maps to.
    pub exit_code: u8,
}

/// Which release to tell about: a revision number, or the latest (the one the Deployment runs,
/// or the one the controller rolled back from it).
pub(crate) fn assess(
    view: &RolloutView,
    guarding: Guarding,
    memory: Option<&Memory>,
    revision: Option<u64>,
) -> Status {
    let (state, target, stage, rule, why) = judge(view, guarding, memory, revision);
    let compared_with = match (&target, memory.and_then(|m| m.current.as_ref())) {
        (Some(t), Some(current)) if describes(current, t, state) => baselines(current),
        _ => BTreeMap::new(),
    };
    Status {
        namespace: view.namespace.clone(),
        deployment: view.name.clone(),
        state,
        revision: target.as_ref().map(|t| t.revision),
        replicaset: target
            .as_ref()
            .map(|t| t.name.clone())
            .filter(|n| !n.is_empty()),
        hash: target.map(|t| t.hash),
        stage,
        rule,
        why,
        compared_with,
        exit_code: state.exit_code(),
    }
}

/// Whether the analysis the memory holds is that of `target`, the release told about in
/// `state`: the same template, guarded, and not an attempt that was rolled back while its
/// template is being analysed again (deployed again, `Analysing`).
fn describes(current: &RevisionState, target: &Generation, state: State) -> bool {
    let rolled_back = matches!(current.stage, Stage::RolledBack { .. });
    current.hash == target.hash
        && state != State::NotGuarded
        && (state == State::RolledBack || !rolled_back)
}

/// Each rule's baseline at its latest verdict: its line, or its kind where no line was kept.
fn baselines(state: &RevisionState) -> BTreeMap<String, String> {
    state
        .baselines
        .iter()
        .map(|(rule, b)| {
            let line = state.baseline_lines.get(rule).cloned();
            (
                rule.clone(),
                line.unwrap_or_else(|| b.describe().to_string()),
            )
        })
        .collect()
}

type Judged = (
    State,
    Option<Generation>,
    Option<String>,
    Option<String>,
    String,
);

fn judge(
    view: &RolloutView,
    guarding: Guarding,
    memory: Option<&Memory>,
    revision: Option<u64>,
) -> Judged {
    let target = match revision {
        Some(n) => by_revision(view, memory, n),
        None => latest(view, memory),
    };
    let Some(target) = target else {
        let why = match revision {
            Some(n) => format!("no ReplicaSet has revision {n}, and the controller remembers none"),
            None => "the Deployment controller has not created the new ReplicaSet yet".into(),
        };
        let state = if revision.is_none() && guarding != Guarding::Off {
            State::Analysing
        } else {
            State::NotGuarded
        };
        return (state, None, None, None, why);
    };
    if let Guarding::On(Mode::Observe) = guarding {
        let why = "observe mode: the controller only records its decisions (see its records)";
        return (State::NotGuarded, Some(target), None, None, why.into());
    }
    let current = memory
        .and_then(|m| m.current.as_ref())
        .filter(|s| s.hash == target.hash);
    let is_latest = view.new.as_ref().is_some_and(|n| n.hash == target.hash);
    if let Some(state) = current
        && is_latest
        && matches!(state.stage, Stage::RolledBack { .. })
    {
        // Its template is the Deployment's again: deployed again, not yet held.
        let why = "rolled back before and deployed again; the controller has not held it yet";
        return (
            State::Analysing,
            Some(target),
            Some(state.stage.name().into()),
            None,
            why.into(),
        );
    }
    if let Some(state) = current {
        let (s, rule, why) = from_stage(&state.stage, state.last.as_ref().map(|l| &l.reason));
        let rule = rule.or_else(|| {
            memory
                .and_then(|m| m.rolled_back(&target.hash))
                .filter(|_| s == State::RolledBack)
                .map(|k| k.rule)
        });
        return (s, Some(target), Some(state.stage.name().into()), rule, why);
    }
    if let Some(bad) = memory.and_then(|m| m.held(&target.hash)) {
        let why = format!("rolled back at {} on rule {}", bad.at, bad.rule);
        return (State::RolledBack, Some(target), None, Some(bad.rule), why);
    }
    if guarding == Guarding::Off {
        let why = format!(
            "the Deployment does not opt in ({}: \"true\") and the controller wrote no state",
            crate::policy::annotations::ENABLED
        );
        return (State::NotGuarded, Some(target), None, None, why);
    }
    if is_latest && view.is_rolling() {
        let why = "rolling out; the controller has not picked it up yet".to_string();
        return (State::Analysing, Some(target), None, None, why);
    }
    let why = "the controller remembers no analysis of it (it rolled out before the controller watched, or a later release replaced it)".to_string();
    (State::NotGuarded, Some(target), None, None, why)
}

/// The generation with revision `n` now, or the one the controller knew by that number.
fn by_revision(view: &RolloutView, memory: Option<&Memory>, n: u64) -> Option<Generation> {
    let all = || view.new.iter().chain(&view.old);
    if let Some(g) = all().find(|g| g.revision == n) {
        return Some(g.clone());
    }
    let m = memory?;
    let hash = m
        .current
        .iter()
        .filter(|s| s.revision == n)
        .map(|s| s.hash.clone())
        .chain(
            m.known_bad
                .iter()
                .filter(|k| k.revision == n)
                .map(|k| k.hash.clone()),
        )
        .next()?;
    all()
        .find(|g| g.hash == hash)
        .cloned()
        .or_else(|| Some(unnamed(&hash, n)))
}

/// The release the Deployment runs, unless the controller rolled back from it to what runs now:
/// then the rolled-back one (what the pipeline deployed).
fn latest(view: &RolloutView, memory: Option<&Memory>) -> Option<Generation> {
    let new = view.new.as_ref()?;
    if let Some(state) = memory.and_then(|m| m.current.as_ref())
        && let Stage::RolledBack { to_hash, .. } = &state.stage
        && *to_hash == new.hash
    {
        return Some(
            view.old_by_hash(&state.hash)
                .cloned()
                .unwrap_or_else(|| unnamed(&state.hash, state.revision)),
        );
    }
    Some(new.clone())
}

/// A generation whose ReplicaSet is gone (revision history cleaned up).
fn unnamed(hash: &str, revision: u64) -> Generation {
    Generation {
        name: String::new(),
        revision,
        hash: hash.into(),
        desired: 0,
        pods: 0,
        ready: 0,
        available: 0,
        images: Default::default(),
        created: None,
    }
}

fn from_stage(stage: &Stage, last: Option<&String>) -> (State, Option<String>, String) {
    let last = last.map_or(String::new(), |r| format!("; latest: {r}"));
    match stage {
        Stage::Analysing
        | Stage::GateRolling { .. }
        | Stage::GateHold { .. }
        | Stage::Baking { .. } => (
            State::Analysing,
            None,
            format!("stage {}{last}", stage.name()),
        ),
        Stage::Passed { at } => (State::Passed, None, format!("passed at {at}{last}")),
        Stage::Inconclusive { at, rules, why } => (
            State::Inconclusive,
            None,
            format!(
                "no action, but not judged by {} (ended {at})",
                rules
                    .iter()
                    .map(|r| match why.get(r) {
                        Some(reason) => format!("{r} ({reason})"),
                        None => r.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Stage::Paused { at, rule } => (
            State::Paused,
            Some(rule.clone()),
            format!("paused at {at} on rule {rule}{last}"),
        ),
        Stage::RolledBack {
            at,
            to_revision,
            verified,
            ..
        } => {
            let done = match verified {
                Some(true) => "; the previous release is available again",
                Some(false) => "; the rollback has not taken: check the Deployment",
                None => "; the previous release is coming back",
            };
            (
                State::RolledBack,
                None,
                format!("rolled back to revision {to_revision} at {at}{done}{last}"),
            )
        }
        Stage::Held { at, rule, .. } => (
            State::Held,
            Some(rule.clone()),
            format!(
                "rolled back before on rule {rule}, deployed again and held paused since {at}; release it with {}",
                crate::policy::guard::ALLOW_REVISION_ANNOTATION
            ),
        ),
        Stage::Overridden { at, why } => (
            State::NotGuarded,
            None,
            format!("the controller let go at {at}: {why}"),
        ),
        Stage::Skipped { at, why } => (
            State::NotGuarded,
            None,
            format!("not analysed ({at}): {why}"),
        ),
    }
}

/// One line: `web/shop revision 7 (shop-7d4f9c8b6f): rolled back — ...`.
pub(crate) fn text(s: &Status) -> String {
    let what = match (&s.revision, &s.replicaset) {
        (Some(r), Some(rs)) => format!(" revision {r} ({rs})"),
        (Some(r), None) => format!(" revision {r}"),
        _ => String::new(),
    };
    let rule = s
        .rule
        .as_deref()
        .map_or(String::new(), |r| format!(" [{r}]"));
    format!(
        "{}/{}{what}: {}{rule}: {}",
        s.namespace,
        s.deployment,
        s.state.name(),
        s.why
    )
}

/// One indented line per rule's baseline, after [`text`]'s: `  cpu-per-request compared
/// with the old version's level 0.021 over …`.
pub(crate) fn compared_lines(s: &Status) -> Vec<String> {
    s.compared_with
        .iter()
        .map(|(rule, line)| format!("  {rule} compared with {line}"))
        .collect()
}

#[cfg(test)]
mod tests;
