use jiff::Timestamp;

use super::*;
use crate::analysis::judge::Baseline;
use crate::policy::guard::{Act, ActionRecord, KnownBad, RevisionState};
use crate::policy::rollout::Phase;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_790_000_000 + secs).unwrap()
}

fn gen_(hash: &str, revision: u64, pods: i32) -> Generation {
    Generation {
        name: format!("shop-{hash}"),
        revision,
        hash: hash.into(),
        desired: pods,
        pods,
        ready: pods,
        available: pods,
        images: Default::default(),
        created: None,
    }
}

/// `new22` (revision 2) rolling out over `old11` (revision 1).
fn rolling() -> RolloutView {
    RolloutView {
        namespace: "web".into(),
        name: "shop".into(),
        desired: 4,
        paused: false,
        phase: Phase::Progressing,
        new: Some(gen_("new22", 2, 1)),
        old: vec![gen_("old11", 1, 3)],
        completed_at: None,
    }
}

/// Back on `old11` (renumbered 3) after a rollback of `new22`.
fn rolled_back_view() -> RolloutView {
    RolloutView {
        phase: Phase::Complete,
        new: Some(gen_("old11", 3, 4)),
        old: vec![gen_("new22", 2, 0)],
        ..rolling()
    }
}

fn memory(hash: &str, revision: u64, stage: Stage) -> Memory {
    Memory {
        version: 1,
        seq: 3,
        current: Some(RevisionState {
            hash: hash.into(),
            revision,
            replicaset: format!("shop-{hash}"),
            since: at(0),
            baseline: Some("old11".into()),
            stage,
            streaks: Default::default(),
            evaluations: 4,
            last: None,
            stalled: false,
            judged: Default::default(),
            unjudged: Default::default(),
            baselines: Default::default(),
            baseline_lines: Default::default(),
            overdue_step: None,
            bake_extension: None,
        }),
        history: Vec::new(),
        known_bad: Vec::new(),
    }
}

fn rolled_back_memory() -> Memory {
    let mut m = memory(
        "new22",
        2,
        Stage::RolledBack {
            at: at(90),
            to_hash: "old11".into(),
            to_revision: 3,
            verified: Some(true),
        },
    );
    m.history.push(ActionRecord {
        at: at(90),
        act: Act::Rollback {
            to_hash: "old11".into(),
            to_revision: 3,
        },
        hash: "new22".into(),
        revision: 2,
        rule: Some("class-loading-errors".into()),
        executed: true,
    });
    m.known_bad.push(KnownBad {
        hash: "new22".into(),
        revision: 2,
        at: at(90),
        rule: "class-loading-errors".into(),
        reason: "new 1% vs old 0%".into(),
        released: None,
    });
    m
}

const ON: Guarding = Guarding::On(Mode::Guard);

#[test]
fn a_rolled_back_release_is_what_the_latest_status_is_about() {
    let s = assess(&rolled_back_view(), ON, Some(&rolled_back_memory()), None);
    assert_eq!(s.state, State::RolledBack);
    assert_eq!(s.exit_code, 3);
    assert_eq!(
        (s.revision, s.replicaset.as_deref(), s.rule.as_deref()),
        (Some(2), Some("shop-new22"), Some("class-loading-errors"))
    );
    assert!(s.why.contains("rolled back to revision 3"), "{}", s.why);
    assert!(s.why.contains("available again"), "{}", s.why);
    let line = text(&s);
    assert!(
        line.starts_with("web/shop revision 2 (shop-new22): rolled back [class-loading-errors]: "),
        "{line}"
    );
    // Asked by revision: the same; the revision it went back to is another story.
    let by_number = assess(
        &rolled_back_view(),
        ON,
        Some(&rolled_back_memory()),
        Some(2),
    );
    assert_eq!(by_number.state, State::RolledBack);
    let back = assess(
        &rolled_back_view(),
        ON,
        Some(&rolled_back_memory()),
        Some(3),
    );
    assert_eq!(back.state, State::NotGuarded, "{}", back.why);
}

#[test]
fn a_rolled_back_release_deployed_again_is_analysing_until_held_not_rolled_back() {
    // new22's template is the Deployment's again; the controller has not held it yet.
    let s = assess(&rolling(), ON, Some(&rolled_back_memory()), None);
    assert_eq!((s.state, s.exit_code), (State::Analysing, 5), "{}", s.why);
    assert!(!s.state.is_settled());
}

#[test]
fn each_stage_has_its_state_and_exit_code() {
    let cases = [
        (Stage::Analysing, State::Analysing, 5),
        (Stage::Baking { since: at(60) }, State::Analysing, 5),
        (
            Stage::GateHold {
                step: 0,
                ready_since: None,
            },
            State::Analysing,
            5,
        ),
        (Stage::Passed { at: at(600) }, State::Passed, 0),
        (
            Stage::Inconclusive {
                at: at(600),
                rules: vec!["cpu-per-request".into()],
                why: Default::default(),
            },
            State::Inconclusive,
            6,
        ),
        (
            Stage::Paused {
                at: at(60),
                rule: "cpu-saturation".into(),
            },
            State::Paused,
            4,
        ),
        (
            Stage::Held {
                at: at(60),
                rule: "class-loading-errors".into(),
                repauses: 0,
            },
            State::Held,
            4,
        ),
        (
            Stage::Overridden {
                at: at(60),
                why: "someone resumed".into(),
            },
            State::NotGuarded,
            7,
        ),
    ];
    for (stage, want, code) in cases {
        let name = stage.name();
        let s = assess(&rolling(), ON, Some(&memory("new22", 2, stage)), None);
        assert_eq!((s.state, s.exit_code), (want, code), "{name}: {}", s.why);
        assert_eq!(s.stage.as_deref(), Some(name));
        assert!(s.state.is_settled() == (want != State::Analysing));
    }
    let s = assess(
        &rolling(),
        ON,
        Some(&memory(
            "new22",
            2,
            Stage::Inconclusive {
                at: at(600),
                rules: vec!["cpu-per-request".into()],
                why: [(
                    "cpu-per-request".to_string(),
                    "missing data: 1 usable samples from the new pods".to_string(),
                )]
                .into(),
            },
        )),
        None,
    );
    assert!(
        s.why
            .contains("cpu-per-request (missing data: 1 usable samples from the new pods)"),
        "{}",
        s.why
    );
}

#[test]
fn a_release_the_controller_has_not_picked_up_yet_is_analysing_not_passed() {
    // The memory is about the previous release, which passed.
    let previous = memory("old11", 1, Stage::Passed { at: at(-600) });
    let s = assess(&rolling(), ON, Some(&previous), None);
    assert_eq!(s.state, State::Analysing, "{}", s.why);
    // No ReplicaSet yet for the new template.
    let mut pending = rolling();
    pending.new = None;
    pending.phase = Phase::Pending;
    assert_eq!(
        assess(&pending, ON, Some(&previous), None).state,
        State::Analysing
    );
    // At rest with a revision the controller never analysed: not guarded, said so.
    let mut at_rest = rolled_back_view();
    at_rest.new = Some(gen_("new33", 4, 4));
    let s = assess(&at_rest, ON, Some(&previous), None);
    assert_eq!(s.state, State::NotGuarded);
    assert!(s.why.contains("remembers no analysis"), "{}", s.why);
}

#[test]
fn not_opted_in_observe_mode_and_unknown_revisions_are_not_guarded() {
    let s = assess(&rolling(), Guarding::Off, None, None);
    assert_eq!((s.state, s.exit_code), (State::NotGuarded, 7));
    assert!(s.why.contains("rollout-guard.io/enabled"), "{}", s.why);
    let s = assess(&rolling(), Guarding::On(Mode::Observe), None, None);
    assert_eq!(s.state, State::NotGuarded);
    assert!(s.why.contains("observe mode"), "{}", s.why);
    let s = assess(&rolling(), ON, Some(&rolled_back_memory()), Some(99));
    assert_eq!(s.state, State::NotGuarded);
    assert!(s.why.contains("no ReplicaSet has revision 99"), "{}", s.why);
}

#[test]
fn a_known_bad_revision_whose_replicaset_is_gone_is_still_told_by_its_number() {
    let mut view = rolled_back_view();
    view.old.clear(); // revision history cleaned up
    let mut m = rolled_back_memory();
    m.current = None;
    let s = assess(&view, ON, Some(&m), Some(2));
    assert_eq!(s.state, State::RolledBack);
    assert_eq!((s.hash.as_deref(), s.replicaset), (Some("new22"), None));
}

#[test]
fn the_json_names_the_state_in_snake_case_with_its_exit_code() {
    let s = assess(&rolled_back_view(), ON, Some(&rolled_back_memory()), None);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["state"], "rolled_back");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["revision"], 2);
}

#[test]
fn a_passed_release_says_what_each_rule_compared_it_with() {
    let view = RolloutView {
        phase: Phase::Complete,
        new: Some(gen_("new22", 2, 4)),
        old: vec![gen_("old11", 1, 0)],
        ..rolling()
    };
    let mut m = memory("new22", 2, Stage::Passed { at: at(600) });
    let state = m.current.as_mut().unwrap();
    let cpu = "the old version's level 0.021 over 11:30:00–11:40:00 UTC (new 0.022, ×1.05)";
    state
        .baselines
        .insert("cpu-per-request".into(), Baseline::History);
    state
        .baseline_lines
        .insert("cpu-per-request".into(), cpu.into());
    // State written before the lines were kept: the kind alone.
    state
        .baselines
        .insert("php-error-rate".into(), Baseline::Concurrent);
    let s = assess(&view, ON, Some(&m), None);
    assert_eq!(s.state, State::Passed);
    assert_eq!(
        compared_lines(&s),
        vec![
            format!("  cpu-per-request compared with {cpu}"),
            "  php-error-rate compared with the old pods in the same intervals".to_string(),
        ]
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["compared_with"]["cpu-per-request"], cpu);
    // Another release's baselines are not this one's.
    let s = assess(&view, ON, Some(&m), Some(1));
    assert!(s.compared_with.is_empty(), "{:?}", s.compared_with);
    // Nor those of an attempt that was rolled back, once its template is deployed again.
    let state = m.current.as_mut().unwrap();
    state.stage = Stage::RolledBack {
        at: at(700),
        to_hash: "old11".into(),
        to_revision: 3,
        verified: Some(true),
    };
    let again = assess(&view, ON, Some(&m), None);
    assert_eq!(again.state, State::Analysing, "{}", again.why);
    assert!(again.compared_with.is_empty(), "{:?}", again.compared_with);
    // While it is what was rolled back, they are what it was judged on.
    let back = assess(&rolled_back_view(), ON, Some(&m), None);
    assert_eq!(back.state, State::RolledBack, "{}", back.why);
    assert_eq!(back.compared_with.len(), 2, "{:?}", back.compared_with);
}
