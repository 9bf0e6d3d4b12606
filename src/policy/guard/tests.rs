use super::*;
use crate::policy::rollout::Generation;

const T0: i64 = 1_790_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn gen_(hash: &str, revision: u64, desired: i32, available: i32) -> Generation {
    Generation {
        name: format!("shop-{hash}"),
        revision,
        hash: hash.into(),
        desired,
        pods: desired,
        ready: available,
        available,
        images: Default::default(),
        created: None,
    }
}

/// Revision 2 (`new22`) rolling out over revision 1 (`old11`), `new_pods` of 4 available.
fn rolling(new_pods: i32) -> RolloutView {
    RolloutView {
        namespace: "web".into(),
        name: "shop".into(),
        desired: 4,
        paused: false,
        phase: Phase::Progressing,
        new: Some(gen_("new22", 2, new_pods.max(1), new_pods)),
        old: vec![gen_("old11", 1, 4 - new_pods, 4 - new_pods)],
        completed_at: None,
    }
}

fn complete() -> RolloutView {
    RolloutView {
        phase: Phase::Complete,
        new: Some(gen_("new22", 2, 4, 4)),
        old: vec![gen_("old11", 1, 0, 0)],
        ..rolling(4)
    }
}

/// A verdict of one of the default rules (its `consecutive`; a warning where it asks for more
/// is warn-only).
fn verdict(rule: &str, outcome: Outcome, action: Action) -> Verdict {
    let r = rules().get(rule).cloned();
    Verdict {
        rule: rule.into(),
        outcome,
        action,
        reason: format!("{rule} {outcome}"),
        evidence: None,
        queries: Vec::new(),
        error: None,
        error_kind: None,
        building: false,
        settles_in: None,
        warn_only: r.as_ref().is_some_and(|r| r.action != action),
        consecutive: r.as_ref().map_or(1, |r| r.consecutive),
        valid_over_looks: r.is_some_and(|r| r.check.valid_over_looks()),
    }
}

fn rules() -> crate::analysis::rules::RuleSet {
    crate::analysis::rules::RuleSet::defaults()
}

/// Every default rule with the given outcome, except `failing`, which fails.
fn verdicts(outcome: Outcome, failing: Option<&str>) -> Vec<Verdict> {
    rules()
        .rules
        .iter()
        .map(|r| {
            let o = if Some(r.name.as_str()) == failing {
                Outcome::Fail
            } else {
                outcome
            };
            verdict(&r.name, o, r.action)
        })
        .collect()
}

/// Runs one controller step: evaluate when the policy asks, with the given verdicts. The two
/// halves taken apart (`wants_evaluation`, `plan`) and the one pass (`begin`, `finish`) must
/// agree, on every step of every test that runs one.
fn step(view: &RolloutView, memory: &Memory, settings: &Settings, v: &[Verdict], t: i64) -> Plan {
    let wants = wants_evaluation(view, memory, settings, at(t));
    let evaluation = wants.as_ref().map(|_| v);
    let apart = plan(view, memory, settings, evaluation, at(t));
    let one = begin(view, memory, settings, at(t));
    assert_eq!(one.target(), wants.as_ref());
    let evaluation = one.target().map(|_| v);
    assert_eq!(one.finish(evaluation), apart);
    apart
}

fn reasons(p: &Plan) -> Vec<&str> {
    p.notes.iter().map(|n| n.reason.as_str()).collect()
}

fn stage(p: &Plan) -> &Stage {
    &p.memory.current.as_ref().unwrap().stage
}

#[test]
fn a_deployment_at_rest_is_neither_evaluated_nor_written() {
    let m = Memory::default();
    let s = Settings::default();
    assert_eq!(wants_evaluation(&complete(), &m, &s, at(0)), None);
    let p = plan(&complete(), &m, &s, None, at(0));
    assert!(p.acts.is_empty() && p.notes.is_empty() && !p.write);
    assert_eq!(p.memory, m);
    assert_eq!(p.requeue, IDLE_REQUEUE);
}

#[test]
fn a_rollout_is_evaluated_against_the_old_pods_and_started_once() {
    let s = Settings::default();
    let view = rolling(1);
    let target = wants_evaluation(&view, &Memory::default(), &s, at(0)).unwrap();
    assert_eq!(target.new_replicaset, "shop-new22");
    assert_eq!(target.old_replicasets, ["shop-old11"]);
    let p = step(
        &view,
        &Memory::default(),
        &s,
        &verdicts(Outcome::Pass, None),
        0,
    );
    assert_eq!(reasons(&p), ["AnalysisStarted"]);
    assert!(p.acts.is_empty() && p.write);
    assert_eq!(stage(&p), &Stage::Analysing);
    assert_eq!(p.requeue, s.interval);
    let state = p.memory.current.as_ref().unwrap();
    assert_eq!(
        (state.hash.as_str(), state.baseline.as_deref()),
        ("new22", Some("old11"))
    );
    // The next pass changes nothing worth writing.
    let p2 = step(&view, &p.memory, &s, &verdicts(Outcome::Pass, None), 30);
    assert!(p2.notes.is_empty() && !p2.write, "{:?}", p2.notes);
    assert_eq!(p2.memory.current.as_ref().unwrap().evaluations, 2);
}

#[test]
fn evaluations_are_paced_by_the_interval_whatever_wakes_the_controller() {
    let s = Settings::default(); // 30 s
    let view = rolling(1);
    let v = verdicts(Outcome::Pass, Some("php-error-rate"));
    let p = step(&view, &Memory::default(), &s, &v, 0);
    assert_eq!(p.memory.current.as_ref().unwrap().evaluations, 1);
    // A watch event 5 s later (the rollout stepped): no evaluation, and the next look is when
    // the next one is due, not a whole interval later.
    assert_eq!(wants_evaluation(&view, &p.memory, &s, at(5)), None);
    let early = step(&view, &p.memory, &s, &v, 5);
    assert!(early.decision.is_none());
    assert_eq!(early.memory.current.as_ref().unwrap().evaluations, 1);
    assert_eq!(early.requeue, Duration::from_secs(25));
    // A timer that fires a little early (within a twentieth of the interval) is on time.
    assert!(wants_evaluation(&view, &p.memory, &s, at(29)).is_some());
    let on_time = step(&view, &early.memory, &s, &v, 29);
    let state = on_time.memory.current.as_ref().unwrap();
    assert_eq!(state.evaluations, 2);
    // So a streak of `consecutive` failures spans at least that many intervals, however many
    // events arrive in between.
    let mut memory = Memory::default();
    let mut acted_at = None;
    for t in (0..600).step_by(3) {
        let p = step(&view, &memory, &s, &v, t);
        if !p.acts.is_empty() {
            acted_at = Some(t);
            break;
        }
        memory = p.memory;
    }
    let streak = rules()
        .rules
        .iter()
        .find(|r| r.name == "php-error-rate")
        .unwrap()
        .consecutive as i64;
    let acted_at = acted_at.expect("the failing rule acts in the end");
    assert!(acted_at >= (streak - 1) * 30 - 2, "acted at {acted_at} s");
}

/// Runs the php-error-rate rule failing until the plan acts; returns the acting plan and how
/// many evaluations it took.
fn fail_until_act(view: &RolloutView, settings: &Settings, memory: Memory) -> (Plan, u32) {
    fail_until_act_from(view, settings, memory, 0)
}

/// [`fail_until_act`] with the first failing evaluation at `t0`, one interval after the last.
fn fail_until_act_from(
    view: &RolloutView,
    settings: &Settings,
    mut memory: Memory,
    t0: i64,
) -> (Plan, u32) {
    let v = verdicts(Outcome::Pass, Some("php-error-rate"));
    for i in 0..10 {
        let p = step(view, &memory, settings, &v, t0 + i * 30);
        if !p.acts.is_empty() || !p.suppressed.is_empty() {
            return (p, i as u32 + 1);
        }
        memory = p.memory;
    }
    panic!("never acted");
}

#[test]
fn a_failing_rule_rolls_back_to_the_serving_generation_after_its_streak() {
    let s = Settings::default();
    let (p, n) = fail_until_act(&rolling(1), &s, Memory::default());
    let consecutive = rules().get("php-error-rate").unwrap().consecutive;
    assert_eq!(n, consecutive);
    assert_eq!(
        p.acts,
        [Act::Rollback {
            to_hash: "old11".into(),
            to_revision: 1
        }]
    );
    assert!(p.write && reasons(&p).contains(&"RolledBack"));
    assert!(matches!(
        stage(&p),
        Stage::RolledBack { verified: None, .. }
    ));
    let rec = p.memory.history.last().unwrap();
    assert_eq!(
        (rec.hash.as_str(), rec.rule.as_deref(), rec.executed),
        ("new22", Some("php-error-rate"), true)
    );
    assert_eq!(p.decision.unwrap().action, Some(Action::Rollback));
}

#[test]
fn after_a_rollback_a_restarted_controller_verifies_and_never_acts_again() {
    let s = Settings::default();
    let (p, _) = fail_until_act(&rolling(1), &s, Memory::default());
    // As read back from the annotation by a new process.
    let json = serde_json::to_string(&p.memory).unwrap();
    let memory: Memory = serde_json::from_str(&json).unwrap();
    // The Deployment now runs revision 1's template again (renumbered 3 by the controller).
    let mut back = rolling(1);
    back.new = Some(gen_("old11", 3, 4, 2));
    back.old = vec![gen_("new22", 2, 2, 2)];
    assert_eq!(wants_evaluation(&back, &memory, &s, at(100)), None);
    let p1 = step(&back, &memory, &s, &[], 100);
    assert!(p1.acts.is_empty() && p1.notes.is_empty() && !p1.write);
    // Done: the old generation is back on every pod.
    back.new = Some(gen_("old11", 3, 4, 4));
    back.old = vec![gen_("new22", 2, 0, 0)];
    back.phase = Phase::Complete;
    let p2 = step(&back, &p1.memory, &s, &[], 130);
    assert_eq!(reasons(&p2), ["RollbackComplete"]);
    assert!(matches!(
        stage(&p2),
        Stage::RolledBack {
            verified: Some(true),
            ..
        }
    ));
    assert!(p2.acts.is_empty() && p2.write);
    let p3 = step(&back, &p2.memory, &s, &[], 160);
    assert!(p3.notes.is_empty() && !p3.write && p3.acts.is_empty());
}

#[test]
fn a_rollback_that_does_not_take_is_reported() {
    let s = Settings::default();
    let (p, _) = fail_until_act(&rolling(1), &s, Memory::default());
    let mut back = rolling(1);
    back.new = Some(gen_("old11", 3, 4, 1));
    back.old = vec![gen_("new22", 2, 3, 3)];
    let late = s.verify_timeout.as_secs() as i64 + 100;
    let p2 = step(&back, &p.memory, &s, &[], late);
    assert_eq!(reasons(&p2), ["RollbackNotTaking"]);
    assert!(p2.notes[0].warning && p2.acts.is_empty());
}

/// The memory after a rollback of `new22` (rolled out over `old11`) and its verification.
fn rolled_back_memory(s: &Settings) -> Memory {
    let (p, _) = fail_until_act(&rolling(1), s, Memory::default());
    let mut back = complete();
    back.new = Some(gen_("old11", 3, 4, 4));
    back.old = vec![gen_("new22", 2, 0, 0)];
    step(&back, &p.memory, s, &[], 200).memory
}

/// `view` paused (by whoever).
fn paused(mut view: RolloutView) -> RolloutView {
    view.paused = true;
    view.phase = Phase::Paused;
    view
}

/// `new22` deployed again over `old11` (renumbered 3), its first surge up.
fn redeployed() -> RolloutView {
    let mut view = rolling(1);
    view.new = Some(gen_("new22", 4, 1, 0));
    view.old = vec![gen_("old11", 3, 4, 4)];
    view
}

#[test]
fn a_rolled_back_revision_deployed_again_is_held_paused_not_analysed_nor_rolled_back() {
    let s = Settings::default();
    let memory = rolled_back_memory(&s);
    let bad = memory.held("new22").expect("remembered as known-bad");
    assert_eq!(bad.rule, "php-error-rate");
    assert!(bad.reason.contains("php-error-rate"), "{}", bad.reason);
    // Deployed again straight after (a GitOps re-sync): held at once, nothing evaluated.
    let view = redeployed();
    assert_eq!(wants_evaluation(&view, &memory, &s, at(300)), None);
    let p = step(&view, &memory, &s, &[], 300);
    assert_eq!(p.acts, [Act::Pause]);
    assert_eq!(reasons(&p), ["KnownBadRevision"]);
    let msg = &p.notes[0].message;
    for want in [
        "php-error-rate",
        "rolled back at",
        "rollout-guard.io/allow-revision=new22",
        "kubectl -n web annotate deployment shop",
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
    assert!(matches!(stage(&p), Stage::Held { repauses: 0, .. }));
    assert!(p.write && !p.clear_allow);
    let rec = p.memory.history.last().unwrap();
    assert_eq!((rec.act.clone(), rec.executed), (Act::Pause, true));
    // Paused, it stays held quietly: no writes, no evaluations, whatever wakes the controller.
    let paused = paused(view.clone());
    let p2 = step(&paused, &p.memory, &s, &[], 400);
    assert!(p2.acts.is_empty() && p2.notes.is_empty() && !p2.write);
    assert_eq!(wants_evaluation(&paused, &p2.memory, &s, at(400)), None);
    // The same after a restart (the memory read back from the annotation).
    let json = serde_json::to_string(&p.memory).unwrap();
    let read: Memory = serde_json::from_str(&json).unwrap();
    let p3 = step(&paused, &read, &s, &[], 500);
    assert!(p3.acts.is_empty() && p3.notes.is_empty() && !p3.write);
}

#[test]
fn a_held_revision_is_held_also_after_other_releases_and_in_older_memories() {
    let s = Settings::default();
    let mut memory = rolled_back_memory(&s);
    // A later, different release came and went...
    let mut other = rolling(1);
    other.new = Some(gen_("new33", 4, 1, 1));
    memory = step(&other, &memory, &s, &verdicts(Outcome::Pass, None), 1000).memory;
    // ...then someone deploys the rolled-back template again.
    let p = step(&redeployed(), &memory, &s, &[], 2000);
    assert_eq!(p.acts, [Act::Pause]);
    assert_eq!(reasons(&p), ["KnownBadRevision"]);
    // A memory written before `known_bad` existed: the rollback in the history is enough.
    let mut old = rolled_back_memory(&s);
    old.known_bad.clear();
    let p = step(&redeployed(), &old, &s, &[], 300);
    assert_eq!(p.acts, [Act::Pause]);
    // A revision an older version had let roll out (`Skipped`) runs: it is not paused at some
    // later, unrelated event.
    if let Some(state) = old.current.as_mut() {
        state.stage = Stage::Skipped {
            at: at(250),
            why: "deployed again".into(),
        };
    }
    let p = step(&redeployed(), &old, &s, &[], 300);
    assert!(p.acts.is_empty(), "{:?}", p.acts);
}

#[test]
fn a_held_revision_resumed_without_the_annotation_is_paused_again_a_bounded_number_of_times() {
    let s = Settings::default();
    let mut memory = step(&redeployed(), &rolled_back_memory(&s), &s, &[], 300).memory;
    let resumed = redeployed(); // unpaused by someone
    for n in 1..=MAX_REPAUSES {
        let p = step(&resumed, &memory, &s, &[], 300 + i64::from(n) * 10);
        assert_eq!(p.acts, [Act::Pause], "re-pause {n}");
        assert!(
            p.notes[0]
                .message
                .contains(&format!("({n} of {MAX_REPAUSES})"))
        );
        memory = p.memory;
    }
    let p = step(&resumed, &memory, &s, &[], 400);
    assert!(p.acts.is_empty());
    assert_eq!(reasons(&p), ["KnownBadRevisionUnheld"]);
    assert!(matches!(stage(&p), Stage::Overridden { .. }));
    // And then it is left alone: no loop.
    let p2 = step(&resumed, &p.memory, &s, &[], 430);
    assert!(p2.acts.is_empty() && p2.notes.is_empty() && !p2.write);
}

#[test]
fn the_allow_annotation_releases_a_held_revision_for_one_fresh_analysis() {
    let s = Settings::default();
    let memory = step(&redeployed(), &rolled_back_memory(&s), &s, &[], 300).memory;
    let paused = paused(redeployed());
    let allowed = Settings {
        allowed_hash: Some("new22".into()),
        ..Settings::default()
    };
    // Naming another hash releases nothing.
    let other = Settings {
        allowed_hash: Some("new99".into()),
        ..Settings::default()
    };
    let p = step(&paused, &memory, &other, &[], 400);
    assert!(p.acts.is_empty() && !p.write && !p.clear_allow);
    // Just set, the annotation's generation not yet seen by the Deployment controller: the
    // phase is not known yet, so the release waits for it.
    let mut pending = paused.clone();
    pending.phase = Phase::Pending;
    let p = step(&pending, &memory, &allowed, &[], 400);
    assert!(p.acts.is_empty() && !p.write && p.notes.is_empty());
    let p = step(&paused, &memory, &allowed, &[], 400);
    assert_eq!(p.acts, [Act::Resume]);
    assert_eq!(reasons(&p), ["KnownBadRevisionReleased"]);
    assert!(p.clear_allow && p.write);
    assert_eq!(stage(&p), &Stage::Analysing);
    assert_eq!(p.memory.held("new22"), None);
    // Analysed like any release (the annotation is gone by now) ...
    let mut rolling_again = redeployed();
    rolling_again.new = Some(gen_("new22", 4, 1, 1));
    let v = verdicts(Outcome::Pass, None);
    let p2 = step(&rolling_again, &p.memory, &s, &v, 430);
    assert_eq!(p2.memory.current.as_ref().unwrap().evaluations, 1);
    // ... and rolled back again if it fails again, after which it is held again.
    let (p3, _) = fail_until_act_from(&rolling_again, &s, p2.memory, 460);
    assert!(matches!(p3.acts[..], [Act::Rollback { .. }]));
    assert!(p3.memory.held("new22").is_some());
}

#[test]
fn a_held_revision_whose_template_is_replaced_is_resumed_for_the_new_one() {
    let s = Settings::default();
    let memory = step(&redeployed(), &rolled_back_memory(&s), &s, &[], 300).memory;
    // Git reverted: the template is old11's again; paused, the Deployment does not roll it.
    let mut reverted = paused(redeployed());
    reverted.new = Some(gen_("old11", 5, 4, 4));
    reverted.old = vec![gen_("new22", 4, 1, 0)];
    assert_eq!(wants_evaluation(&reverted, &memory, &s, at(400)), None);
    let p = step(&reverted, &memory, &s, &[], 400);
    assert_eq!(p.acts, [Act::Resume]);
    assert_eq!(reasons(&p), ["KnownBadRevisionReplaced"]);
    // A new template whose ReplicaSet a paused Deployment has not created yet: the same.
    let mut pending = reverted.clone();
    pending.new = None;
    pending.phase = Phase::Pending;
    let p = step(&pending, &memory, &s, &[], 400);
    assert_eq!(p.acts, [Act::Resume]);
    // Paused by someone else, not by the controller: left paused.
    let mut by_someone = memory.clone();
    by_someone.history.retain(|r| r.act != Act::Pause);
    let p = step(&reverted, &by_someone, &s, &[], 400);
    assert!(p.acts.is_empty());
    assert_eq!(reasons(&p), ["KnownBadRevisionReplaced"]);
}

#[test]
fn a_released_revision_in_a_gate_is_paused_again_not_taken_for_a_human_resume() {
    let gate = Settings {
        mode: Mode::Gate,
        ..Settings::default()
    };
    // Rolled back from its gate hold: the history holds the gate's Pause of new22, then the
    // rollback (which cleared spec.paused).
    let mut view = rolling(1);
    let p = step(&view, &Memory::default(), &gate, &[], 0);
    assert_eq!(p.acts, [Act::Pause]);
    view.paused = true;
    view.phase = Phase::Paused;
    let (rolled, _) = fail_until_act_from(&view, &gate, p.memory, 30);
    assert!(matches!(rolled.acts[..], [Act::Rollback { .. }]));
    // Deployed again and held, then resumed and released before the controller looked.
    let held = step(&redeployed(), &rolled.memory, &gate, &[], 900).memory;
    let allowed = Settings {
        allowed_hash: Some("new22".into()),
        ..gate.clone()
    };
    let p = step(&redeployed(), &held, &allowed, &[], 1000);
    assert_eq!(reasons(&p), ["KnownBadRevisionReleased"]);
    assert!(matches!(stage(&p), Stage::GateHold { .. }));
    // The gate holds it for its analysis: the earlier analysis' Pause is not this one's.
    let p2 = step(&redeployed(), &p.memory, &gate, &[], 1010);
    assert_eq!(p2.acts, [Act::Pause], "{:?}", p2.notes);
    assert!(matches!(stage(&p2), Stage::GateHold { .. }));
}

#[test]
fn after_a_git_revert_the_held_revision_is_neither_baseline_nor_rollback_target() {
    let s = Settings::default();
    let memory = step(&redeployed(), &rolled_back_memory(&s), &s, &[], 300).memory;
    // Git reverted to old11's template while new22 was held with its surge pod.
    let mut reverted = paused(redeployed());
    reverted.new = Some(gen_("old11", 5, 4, 4));
    reverted.old = vec![gen_("new22", 4, 1, 1)];
    let p = step(&reverted, &memory, &s, &[], 400);
    assert_eq!(p.acts, [Act::Resume]);
    let mut rolling_back = reverted.clone();
    rolling_back.paused = false;
    rolling_back.phase = Phase::Progressing;
    let fail = verdicts(Outcome::Pass, Some("php-error-rate"));
    let first = step(&rolling_back, &p.memory, &s, &fail, 430);
    let state = first.memory.current.clone().unwrap();
    assert_eq!(state.hash, "old11");
    assert_ne!(state.baseline.as_deref(), Some("new22"), "not the held one");
    let (acted, _) = fail_until_act_from(&rolling_back, &s, first.memory, 460);
    assert!(
        !acted
            .acts
            .iter()
            .any(|a| matches!(a, Act::Rollback { to_hash, .. } if to_hash == "new22")),
        "never back to the held revision: {:?}",
        acted.acts
    );
    assert_eq!(reasons(&acted), ["RollbackImpossible"]);
}

#[test]
fn a_known_bad_revision_found_fully_rolled_out_is_said_not_paused() {
    let s = Settings::default();
    let memory = rolled_back_memory(&s);
    let mut out = complete();
    out.new = Some(gen_("new22", 4, 4, 4));
    out.old = vec![gen_("old11", 3, 0, 0)];
    let p = step(&out, &memory, &s, &[], 5000);
    assert!(p.acts.is_empty(), "{:?}", p.acts);
    assert_eq!(reasons(&p), ["KnownBadRevision"]);
    assert!(
        p.notes[0].message.contains("not held"),
        "{}",
        p.notes[0].message
    );
    assert!(matches!(stage(&p), Stage::Overridden { .. }));
    let p2 = step(&out, &p.memory, &s, &[], 5030);
    assert!(p2.acts.is_empty() && p2.notes.is_empty());
}

#[test]
fn observe_mode_only_says_a_known_bad_revision_is_back() {
    let s = Settings::default();
    let memory = rolled_back_memory(&s);
    let observe = Settings {
        mode: Mode::Observe,
        ..Settings::default()
    };
    let p = step(&redeployed(), &memory, &observe, &[], 300);
    assert!(p.acts.is_empty() && !p.write);
    assert_eq!(p.suppressed, [Act::Pause]);
    assert!(p.notes[0].message.contains("actions are off"));
}

#[test]
fn observe_mode_records_once_and_never_writes() {
    let s = Settings {
        mode: Mode::Observe,
        ..Settings::default()
    };
    let (p, _) = fail_until_act(&rolling(1), &s, Memory::default());
    assert!(p.acts.is_empty() && !p.write);
    assert!(matches!(p.suppressed[..], [Act::Rollback { .. }]));
    assert_eq!(reasons(&p), ["RollbackRecorded"]);
    assert!(!p.memory.history.last().unwrap().executed);
    // It keeps analysing (for tuning) without recording the same action again.
    assert_eq!(stage(&p), &Stage::Analysing);
    let v = verdicts(Outcome::Pass, Some("php-error-rate"));
    let p2 = step(&rolling(1), &p.memory, &s, &v, 500);
    assert!(p2.acts.is_empty() && p2.suppressed.is_empty() && p2.notes.is_empty());
}

#[test]
fn the_kill_switch_turns_actions_into_records() {
    let s = Settings {
        kill_switch: true,
        ..Settings::default()
    };
    let (p, _) = fail_until_act(&rolling(1), &s, Memory::default());
    assert!(p.acts.is_empty() && !p.write);
    assert!(p.notes[0].message.contains("kill switch"));
}

#[test]
fn rollbacks_beyond_the_hourly_limit_are_only_recorded() {
    let s = Settings {
        max_rollbacks_per_hour: 2,
        ..Settings::default()
    };
    let past = |secs: i64, hash: &str| ActionRecord {
        at: at(secs),
        act: Act::Rollback {
            to_hash: "x".into(),
            to_revision: 1,
        },
        hash: hash.into(),
        revision: 1,
        rule: None,
        executed: true,
    };
    // Two within the hour before the failing evaluations: limited.
    let memory = Memory {
        history: vec![past(-3000, "aaaaa"), past(-60, "bbbbb")],
        ..Memory::default()
    };
    let (p, _) = fail_until_act(&rolling(1), &s, memory);
    assert!(p.acts.is_empty());
    assert_eq!(reasons(&p), ["RollbackRateLimited"]);
    // And said only once.
    let v = verdicts(Outcome::Pass, Some("php-error-rate"));
    let p2 = step(&rolling(1), &p.memory, &s, &v, 60);
    assert!(p2.notes.is_empty() && p2.acts.is_empty(), "{:?}", p2.notes);
    // One of them older than an hour: allowed.
    let memory = Memory {
        history: vec![past(-4000, "aaaaa"), past(-60, "bbbbb")],
        ..Memory::default()
    };
    let (p, _) = fail_until_act(&rolling(1), &s, memory);
    assert!(matches!(p.acts[..], [Act::Rollback { .. }]));
}

#[test]
fn a_pause_rule_pauses_and_a_human_resume_is_respected() {
    let s = Settings::default();
    let v = verdicts(Outcome::Pass, Some("cpu-per-request"));
    let mut memory = Memory::default();
    let mut paused = None;
    for i in 0..10 {
        let p = step(&rolling(2), &memory, &s, &v, i * 30);
        memory = p.memory.clone();
        if !p.acts.is_empty() {
            paused = Some(p);
            break;
        }
    }
    let p = paused.expect("paused");
    assert_eq!(p.acts, [Act::Pause]);
    assert!(matches!(stage(&p), Stage::Paused { rule, .. } if rule == "cpu-per-request"));
    // Still paused: nothing more.
    let mut view = rolling(2);
    view.paused = true;
    view.phase = Phase::Paused;
    let p2 = step(&view, &memory, &s, &v, 1000);
    assert!(p2.acts.is_empty() && p2.notes.is_empty());
    // Someone resumed it: hands off, no second pause.
    let p3 = step(&rolling(2), &memory, &s, &v, 1100);
    assert!(p3.acts.is_empty());
    assert_eq!(reasons(&p3), ["AnalysisOverridden"]);
    let p4 = step(&rolling(3), &p3.memory, &s, &v, 1200);
    assert!(p4.acts.is_empty() && p4.notes.is_empty());
}

#[test]
fn a_completed_rollout_bakes_then_passes() {
    let s = Settings::default();
    let pass = verdicts(Outcome::Pass, None);
    let p = step(&rolling(3), &Memory::default(), &s, &pass, 0);
    let p = step(&complete(), &p.memory, &s, &pass, 30);
    assert_eq!(reasons(&p), ["RolloutComplete"]);
    assert!(matches!(stage(&p), Stage::Baking { .. }));
    // Baking evaluates the new pods alone, but for the error-rate checks' pairing with the
    // generation that served before, on the intervals both served.
    let t = wants_evaluation(&complete(), &p.memory, &s, at(60)).unwrap();
    assert!(t.old_replicasets.is_empty());
    assert_eq!(t.departed, ["shop-old11"]);
    let p = step(&complete(), &p.memory, &s, &pass, 60);
    assert!(p.notes.is_empty());
    let done = 30 + s.bake.as_secs() as i64;
    let p = step(&complete(), &p.memory, &s, &pass, done);
    assert_eq!(reasons(&p), ["AnalysisPassed"]);
    assert!(matches!(stage(&p), Stage::Passed { .. }));
    assert_eq!(
        wants_evaluation(&complete(), &p.memory, &s, at(done + 30)),
        None
    );
}

/// A rollout, with the default settings, that completed at 30 s and passed every evaluation
/// until its bake's last.
fn baked_to_the_end() -> (Settings, Memory, i64) {
    let pass = verdicts(Outcome::Pass, None);
    baked_with(&pass, &pass)
}

/// [`baked_to_the_end`] with `rolling`'s verdicts until the rollout completed and `baking`'s
/// after.
fn baked_with(rolling_: &[Verdict], baking: &[Verdict]) -> (Settings, Memory, i64) {
    let settings = Settings::default();
    let s = &settings;
    let p = step(&rolling(3), &Memory::default(), s, rolling_, 0);
    let mut memory = step(&complete(), &p.memory, s, rolling_, 30).memory;
    let done = 30 + s.bake.as_secs() as i64;
    let mut t = 60;
    while t < done {
        memory = step(&complete(), &memory, s, baking, t).memory;
        t += 30;
    }
    (settings, memory, done)
}

/// Every default rule passing but php-error-rate (a sequential test), which fails.
fn php_failing() -> Vec<Verdict> {
    verdicts(Outcome::Pass, Some("php-error-rate"))
}

/// The step passed the analysis, saying which streak was still under way.
fn passed_still_failing(p: &Plan, open: &str) {
    assert_eq!(reasons(p), ["AnalysisPassed"]);
    let message = &p.notes[0].message;
    let tail = format!("still failing when the bake ended: {open}");
    assert!(message.ends_with(&tail), "{message}");
}

#[test]
fn a_bake_that_ends_on_a_streak_under_way_goes_on_until_the_streak_acts() {
    let (s, memory, done) = baked_to_the_end();
    // php-error-rate rolls back after 2 failing evaluations; the first comes at the bake's end.
    let fail = php_failing();
    let p = step(&complete(), &memory, &s, &fail, done);
    assert_eq!(reasons(&p), ["BakeExtended"]);
    assert!(
        p.notes[0].message.contains("php-error-rate (1/2)"),
        "{}",
        p.notes[0].message
    );
    assert!(matches!(stage(&p), Stage::Baking { .. }) && p.acts.is_empty());
    // The annotation write wakes the controller half a second later, between evaluations:
    // that wake-up waits for the next evaluation, it does not end the bake.
    let p = step(&complete(), &p.memory, &s, &fail, done + 1);
    assert!(p.decision.is_none() && p.notes.is_empty(), "{:?}", p.notes);
    assert!(matches!(stage(&p), Stage::Baking { .. }));
    let p = step(&complete(), &p.memory, &s, &fail, done + 30);
    assert!(
        matches!(&p.acts[..], [Act::Rollback { to_hash, .. }] if to_hash == "old11"),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_bake_extension_is_bounded_and_its_pass_says_what_was_still_failing() {
    let (s, memory, done) = baked_to_the_end();
    let fail = php_failing();
    let mut held = verdicts(Outcome::Pass, None);
    for v in held.iter_mut().filter(|v| v.rule == "php-error-rate") {
        v.outcome = Outcome::Inconclusive; // Prometheus down: the streak holds
    }
    // The first evaluation past the bake's end comes late (a restart, a new leader): the
    // extension counts evaluations, not time, so none of it is lost.
    let late = done + 90;
    let p = step(&complete(), &memory, &s, &fail, late);
    assert_eq!(reasons(&p), ["BakeExtended"]);
    let p = step(&complete(), &p.memory, &s, &held, late + 30);
    assert!(p.notes.is_empty(), "said once: {:?}", p.notes);
    assert!(matches!(stage(&p), Stage::Baking { .. }));
    // At most the rule's 2 evaluations after that: then it passes, and says so.
    let p = step(&complete(), &p.memory, &s, &held, late + 60);
    passed_still_failing(&p, "php-error-rate (1/2)");
    assert!(matches!(stage(&p), Stage::Passed { .. }) && p.acts.is_empty());
}

/// Every default rule passing, php-error-rate's pass unsettled for `seconds` more.
fn php_unsettled(seconds: u64) -> Vec<Verdict> {
    let mut v = verdicts(Outcome::Pass, None);
    for v in v.iter_mut().filter(|v| v.rule == "php-error-rate") {
        v.settles_in = Some(seconds);
    }
    v
}

#[test]
fn a_bake_that_ends_on_an_unsettled_pass_goes_on_until_it_settles() {
    let (s, memory, done) = baked_to_the_end();
    // An excess set aside as a shared incident that ended too recently to tell: 70 s until
    // the minutes after it can show whether it lasts (the third evaluation of 30 s), and one
    // evaluation more for php-error-rate's streak of two.
    let p = step(&complete(), &memory, &s, &php_unsettled(70), done);
    assert_eq!(reasons(&p), ["BakeExtended"]);
    let message = &p.notes[0].message;
    assert!(
        message.contains("the pass of php-error-rate (unsettled for 70 s more) is not settled")
            && message.contains("up to 4 more evaluation(s)"),
        "{message}"
    );
    // Still unsettled at the next looks: it goes on, without saying it again.
    let mut p = p;
    for (left, at) in [(40, done + 30), (10, done + 60)] {
        p = step(&complete(), &p.memory, &s, &php_unsettled(left), at);
        assert!(p.notes.is_empty() && matches!(stage(&p), Stage::Baking { .. }));
    }
    // Settled, the excess lasted beyond the stretch: the rule fails, first at the look that
    // sees it settled, and its streak completes at the extension's last.
    let fail = php_failing();
    let p = step(&complete(), &p.memory, &s, &fail, done + 90);
    assert!(p.acts.is_empty() && matches!(stage(&p), Stage::Baking { .. }));
    let p = step(&complete(), &p.memory, &s, &fail, done + 120);
    assert!(
        matches!(&p.acts[..], [Act::Rollback { to_hash, .. }] if to_hash == "old11"),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_bake_extension_for_an_unsettled_pass_is_bounded_and_says_so_when_it_passes() {
    let (s, memory, done) = baked_to_the_end();
    // A pass that stays unsettled (one stretch after another) cannot hold the analysis past
    // the evaluations its first wait spans: 60 s, two of 30 s, and one for the streak.
    let p = step(&complete(), &memory, &s, &php_unsettled(60), done);
    assert_eq!(reasons(&p), ["BakeExtended"]);
    let mut p = p;
    for at in [done + 30, done + 60] {
        p = step(&complete(), &p.memory, &s, &php_unsettled(300), at);
        assert!(p.notes.is_empty() && matches!(stage(&p), Stage::Baking { .. }));
    }
    let p = step(&complete(), &p.memory, &s, &php_unsettled(300), done + 90);
    assert_eq!(reasons(&p), ["AnalysisPassed"]);
    let message = &p.notes[0].message;
    assert!(
        message.ends_with(
            "still unsettled when the bake ended: php-error-rate (unsettled for 300 s more)"
        ),
        "{message}"
    );
    // Settled at the first look past the end: nothing to wait for.
    let (s, memory, done) = baked_to_the_end();
    let p = step(
        &complete(),
        &memory,
        &s,
        &verdicts(Outcome::Pass, None),
        done,
    );
    assert_eq!(reasons(&p), ["AnalysisPassed"]);
}

#[test]
fn a_bake_that_ends_on_a_streak_of_a_test_paying_for_every_look_passes_and_says_so() {
    let (s, memory, done) = baked_to_the_end();
    let cpu = verdicts(Outcome::Pass, Some("cpu-per-request"));
    let p = step(&complete(), &memory, &s, &cpu, done);
    passed_still_failing(&p, "cpu-per-request (1/3)");
}

#[test]
fn a_bake_that_ends_on_a_clean_pass_is_not_extended() {
    let (s, memory, done) = baked_to_the_end();
    // A streak broken by a clean pass at the end is closed: nothing is under way.
    let fail = php_failing();
    let p = step(&complete(), &memory, &s, &fail, done - 30);
    let p = step(
        &complete(),
        &p.memory,
        &s,
        &verdicts(Outcome::Pass, None),
        done,
    );
    assert_eq!(reasons(&p), ["AnalysisPassed"]);
    assert!(!p.notes[0].message.contains("still failing"));
}

#[test]
fn an_analysis_in_which_a_rule_never_judged_ends_inconclusive_naming_it() {
    let s = Settings::default();
    // cpu-per-request never has a baseline; php-error-rate has none at first, then
    // judges: only the one that never judged is named.
    let mut first = verdicts(Outcome::Pass, None);
    for v in first
        .iter_mut()
        .filter(|v| v.rule == "cpu-per-request" || v.rule == "php-error-rate")
    {
        v.outcome = Outcome::Inconclusive;
        v.reason = format!("{}: too few moments both versions served", v.rule);
    }
    let mut later = first.clone();
    for v in later.iter_mut().filter(|v| v.rule == "php-error-rate") {
        v.outcome = Outcome::Pass;
    }
    let p = step(&rolling(3), &Memory::default(), &s, &first, 0);
    let p = step(&complete(), &p.memory, &s, &later, 30);
    let done = 30 + s.bake.as_secs() as i64;
    let p = step(&complete(), &p.memory, &s, &first, done);
    assert_eq!(reasons(&p), ["AnalysisInconclusive"]);
    assert!(p.notes[0].warning);
    assert!(
        p.notes[0]
            .message
            .contains("cpu-per-request: cpu-per-request: too few moments"),
        "{}",
        p.notes[0].message
    );
    // A reason as long as the judge's after a long-lived version's pods left long ago: what
    // was missing is kept whole, the cost model after it is what the line gives up.
    let why = "missing data: the old pods are gone; against the old version's history: its series over the last 1h holds 0 pairs of stretches 31m apart, fewer than min_drift_pairs 10: too little to know how much the metric moves by itself";
    let mut long = first.clone();
    for v in long.iter_mut().filter(|v| v.rule == "cpu-per-request") {
        v.reason = format!(
            "{why}; both sides at the old version's load (its cost modelled as 0.01102 + 0.01034 × load, fitted on 183 samples at loads 6.864 to 24.65; each sample against that at its own load, shown at its median load 15.16) → inconclusive"
        );
    }
    let q = step(&rolling(3), &Memory::default(), &s, &long, 0);
    let q = step(&complete(), &q.memory, &s, &long, 30);
    let q = step(&complete(), &q.memory, &s, &long, done);
    assert!(q.notes[0].message.contains(why), "{}", q.notes[0].message);
    assert!(!p.notes[0].message.contains("php-error-rate"));
    assert!(matches!(stage(&p), Stage::Inconclusive { rules, why, .. }
            if rules == &["cpu-per-request"] && why["cpu-per-request"].contains("too few moments")));
    assert!(p.acts.is_empty());
    assert_eq!(
        wants_evaluation(&complete(), &p.memory, &s, at(done + 30)),
        None,
        "final, like a pass"
    );
}

#[test]
fn a_saturation_found_while_baking_still_rolls_back() {
    let s = Settings::default();
    let pass = verdicts(Outcome::Pass, None);
    let p = step(&rolling(3), &Memory::default(), &s, &pass, 0);
    let (p, _) = fail_until_act(&complete(), &s, p.memory);
    assert!(matches!(&p.acts[..], [Act::Rollback { to_hash, .. }] if to_hash == "old11"));
}

#[test]
fn with_no_earlier_replicaset_left_a_rollback_becomes_a_pause() {
    let s = Settings::default();
    let mut view = rolling(1);
    let first = step(
        &view,
        &Memory::default(),
        &s,
        &verdicts(Outcome::Pass, None),
        0,
    );
    view.old.clear();
    view.old.push(gen_("other", 0, 0, 0));
    let mut m = first.memory;
    m.current.as_mut().unwrap().baseline = Some("gone1".into());
    view.old.clear();
    let (p, _) = fail_until_act(&view, &s, m);
    assert_eq!(p.acts, [Act::Pause]);
    assert_eq!(reasons(&p), ["RollbackImpossible"]);
}

#[test]
fn a_new_template_mid_analysis_starts_a_new_analysis() {
    let s = Settings::default();
    let v = verdicts(Outcome::Pass, Some("php-error-rate"));
    let p = step(&rolling(1), &Memory::default(), &s, &v, 0);
    assert_eq!(
        p.memory.current.as_ref().unwrap().streaks.0["php-error-rate"],
        1
    );
    let mut view = rolling(1);
    view.new = Some(gen_("new33", 3, 1, 1));
    view.old.push(gen_("new22", 2, 1, 1));
    let p2 = step(&view, &p.memory, &s, &v, 30);
    assert_eq!(reasons(&p2), ["AnalysisStarted"]);
    let state = p2.memory.current.as_ref().unwrap();
    assert_eq!(state.hash, "new33");
    assert_eq!(state.streaks.0["php-error-rate"], 1, "streaks restart");
    assert_eq!(
        state.baseline.as_deref(),
        Some("old11"),
        "the serving one, not new22"
    );
}

#[test]
fn the_gate_pauses_bakes_and_resumes_on_a_pass() {
    let s = Settings {
        mode: Mode::Gate,
        ..Settings::default()
    };
    let pass = verdicts(Outcome::Pass, None);
    // New ReplicaSet created, its pod not ready yet: pause at once, nothing to evaluate.
    let view = rolling(0);
    assert_eq!(wants_evaluation(&view, &Memory::default(), &s, at(0)), None);
    let p = step(&view, &Memory::default(), &s, &[], 0);
    assert_eq!(p.acts, [Act::Pause]);
    assert_eq!(reasons(&p), ["AnalysisStarted", "GatePaused"]);
    let mut view = rolling(1);
    view.paused = true;
    view.phase = Phase::Paused;
    // First ready pod: the bake starts.
    let p = step(&view, &p.memory, &s, &pass, 20);
    assert!(p.acts.is_empty());
    assert_eq!(
        stage(&p),
        &Stage::GateHold {
            step: 0,
            ready_since: Some(at(20))
        }
    );
    let p = step(&view, &p.memory, &s, &pass, 300);
    assert!(p.acts.is_empty());
    let end = 20 + s.bake.as_secs() as i64;
    let p = step(&view, &p.memory, &s, &pass, end);
    assert_eq!(p.acts, [Act::Resume]);
    assert_eq!(reasons(&p), ["GateResumed"]);
    assert_eq!(stage(&p), &Stage::Analysing);
}

#[test]
fn an_inconclusive_gate_holds_and_says_so() {
    let s = Settings {
        mode: Mode::Gate,
        ..Settings::default()
    };
    let unsure = verdicts(Outcome::Inconclusive, None);
    let mut view = rolling(1);
    let p = step(&view, &Memory::default(), &s, &unsure, 0);
    assert_eq!(p.acts, [Act::Pause]);
    view.paused = true;
    let end = s.bake.as_secs() as i64;
    let p = step(&view, &p.memory, &s, &unsure, end);
    assert!(p.acts.is_empty());
    assert_eq!(reasons(&p), ["GateInconclusive"]);
    assert!(p.write, "said with a write: the record of it matches one");
    assert!(matches!(stage(&p), Stage::GateHold { .. }));
    // Said once per hold, not at every evaluation while it holds.
    let mut memory = p.memory;
    for i in 1..=5 {
        let p = step(&view, &memory, &s, &unsure, end + i * 30);
        assert!(p.notes.is_empty() && p.acts.is_empty(), "{:?}", p.notes);
        assert!(matches!(stage(&p), Stage::GateHold { .. }));
        memory = p.memory;
    }
}

#[test]
fn the_gate_rolls_back_a_failing_canary() {
    let s = Settings {
        mode: Mode::Gate,
        ..Settings::default()
    };
    let p = step(&rolling(1), &Memory::default(), &s, &[], 0);
    let mut view = rolling(1);
    view.paused = true;
    let (p, _) = fail_until_act(&view, &s, p.memory);
    assert!(matches!(&p.acts[..], [Act::Rollback { to_hash, .. }] if to_hash == "old11"));
}

#[test]
fn gate_steps_pause_again_at_each_percentage() {
    let s = Settings {
        mode: Mode::Gate,
        gate_steps: vec![50, 75],
        ..Settings::default()
    };
    let pass = verdicts(Outcome::Pass, None);
    // The first new pod is 25%, below the first step: the rollout goes on, analysed.
    let p = step(&rolling(1), &Memory::default(), &s, &pass, 0);
    assert!(p.acts.is_empty(), "{:?}", p.acts);
    assert_eq!(stage(&p), &Stage::GateRolling { step: 0 });
    let p = step(&rolling(2), &p.memory, &s, &pass, 30);
    assert_eq!(p.acts, [Act::Pause]);
    assert!(matches!(stage(&p), Stage::GateHold { step: 0, .. }));
    let mut view = rolling(2);
    view.paused = true;
    let p = step(&view, &p.memory, &s, &pass, 40);
    let end = 40 + s.bake.as_secs() as i64;
    let p = step(&view, &p.memory, &s, &pass, end + 10);
    assert_eq!(p.acts, [Act::Resume]);
    assert_eq!(stage(&p), &Stage::GateRolling { step: 1 });
    // 2 of 4 is below 75%: keep rolling.
    let p = step(&rolling(2), &p.memory, &s, &pass, end + 40);
    assert!(p.acts.is_empty());
    let p = step(&rolling(3), &p.memory, &s, &pass, end + 70);
    assert_eq!(p.acts, [Act::Pause]);
    assert!(matches!(stage(&p), Stage::GateHold { step: 1, .. }));
    // A human resuming during the hold is respected.
    let p = step(&rolling(3), &p.memory, &s, &pass, end + 100);
    assert!(p.acts.is_empty());
    assert_eq!(reasons(&p), ["AnalysisOverridden"]);
}

#[test]
fn memory_survives_the_annotation_round_trip() {
    let s = Settings::default();
    let (p, _) = fail_until_act(&rolling(1), &s, Memory::default());
    let json = serde_json::to_string(&p.memory).unwrap();
    assert!(json.contains(r#""stage":"rolled_back""#), "{json}");
    let back: Memory = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p.memory);
    assert_eq!(back.version, MEMORY_VERSION);
    assert!(back.seq > 0);
}

#[test]
fn modes_parse_and_durations_print_for_people() {
    assert_eq!("gate".parse::<Mode>(), Ok(Mode::Gate));
    assert!(
        "canary"
            .parse::<Mode>()
            .unwrap_err()
            .contains("observe, guard or gate")
    );
    assert_eq!(human(Duration::from_secs(90)), "1m30s");
    assert_eq!(human(Duration::from_secs(600)), "10m");
    assert_eq!(human(Duration::from_secs(5400)), "1h30m");
}

#[test]
fn a_stalled_rollout_is_said_once() {
    let s = Settings::default();
    let pass = verdicts(Outcome::Pass, None);
    let p = step(&rolling(1), &Memory::default(), &s, &pass, 0);
    let mut stuck = rolling(1);
    stuck.phase = Phase::Stalled;
    let p = step(&stuck, &p.memory, &s, &pass, 30);
    assert_eq!(reasons(&p), ["RolloutStalled"]);
    assert!(p.write && p.acts.is_empty());
    let p = step(&stuck, &p.memory, &s, &pass, 60);
    assert!(p.notes.is_empty());
}

/// `v` carrying a compare check's evidence against `baseline`.
fn against(mut v: Verdict, baseline: crate::analysis::judge::Baseline) -> Verdict {
    use crate::analysis::judge::{CompareEvidence, Evidence, SampleSummary};
    let summary = SampleSummary {
        samples: 10,
        pods: 3,
        median: 0.01,
        p90: 0.02,
        max: 0.03,
        warmup_dropped: 0,
        steps: Vec::new(),
    };
    v.evidence = Some(Evidence::Compare(CompareEvidence {
        new: summary.clone(),
        old: summary,
        direction: crate::analysis::rules::Direction::HigherIsWorse,
        median_ratio: Some(1.0),
        shift: 0.0,
        u_statistic: 0.0,
        p_value: 1.0,
        alpha: 0.001,
        min_ratio: 1.15,
        min_shift: 0.0,
        unit: Default::default(),
        baseline,
        pods_worse: 0,
        pods_judged: 3,
        history: (baseline == crate::analysis::judge::Baseline::History).then(|| {
            Box::new(crate::analysis::judge::CompareHistory {
                before_from: "2026-01-01T11:30:00Z".parse().unwrap(),
                before_to: "2026-01-01T12:00:00Z".parse().unwrap(),
                before: 0.01,
                after: 0.0105,
                ratio: 1.05,
                gap_seconds: 600.0,
                largest_drift: 1.1,
                drift_pairs: 20,
                needed: 1.15,
                unknown_drift: None,
                pod_bar: 1.2,
                spread_bar: None,
                while_both: None,
                history_from: "2026-01-01T11:00:00Z".parse().unwrap(),
            })
        }),
        at_load: None,
    }));
    v
}

#[test]
fn the_end_of_an_analysis_says_what_each_rule_compared_the_new_pods_with() {
    use crate::analysis::judge::Baseline;
    // cpu-per-request beside the old pods while they serve, against the old version's history
    // once they are gone: the end says the latest.
    let with = |baseline| -> Vec<Verdict> {
        verdicts(Outcome::Pass, None)
            .into_iter()
            .map(|v| {
                if v.rule == "cpu-per-request" {
                    against(v, baseline)
                } else {
                    v
                }
            })
            .collect()
    };
    let (s, history, done) = baked_with(&with(Baseline::Concurrent), &with(Baseline::History));
    let p = step(&complete(), &history, &s, &with(Baseline::History), done);
    assert_eq!(reasons(&p), ["AnalysisPassed"]);
    assert!(
        p.notes[0].message.ends_with(
            "no action; compared with: cpu-per-request, the old version's level 0.01 over \
             11:30:00–12:00:00 UTC (new 0.0105, ×1.05; a regression needs ×1.15)"
        ),
        "{}",
        p.notes[0].message
    );
    // Beside the old pods: their pods, samples and level.
    let (s, memory, done) = baked_with(&with(Baseline::History), &with(Baseline::Concurrent));
    let p = step(&complete(), &memory, &s, &with(Baseline::Concurrent), done);
    assert!(
        p.notes[0].message.ends_with(
            "; compared with: cpu-per-request, the old pods at the same moments \
             (3 pod(s), 10 samples, median 0.01)"
        ),
        "{}",
        p.notes[0].message
    );
    // State written before the numbers were kept: the kind, named as before.
    let mut old_state = history;
    if let Some(r) = old_state.current.as_mut() {
        r.baseline_lines.clear();
    }
    let p = step(
        &complete(),
        &old_state,
        &s,
        &verdicts(Outcome::Pass, None),
        done,
    );
    assert!(
        p.notes[0]
            .message
            .ends_with("; compared with the old version's history: cpu-per-request"),
        "{}",
        p.notes[0].message
    );
}

/// [`complete`], its rollout completed at `done` s, its ReplicaSet created at `created` s.
fn completed_unseen(done: i64, created: i64) -> RolloutView {
    let mut view = complete();
    view.completed_at = Some(at(done));
    if let Some(new) = &mut view.new {
        new.created = Some(at(created));
    }
    view
}

#[test]
fn a_rollout_completed_unseen_is_baked_against_the_generation_before_for_the_rest_of_its_bake() {
    let s = Settings::default();
    let pass = verdicts(Outcome::Pass, None);
    // Released at -300 s, complete at -120 s, while the controller was down; revision 1
    // served for long before.
    let mut view = completed_unseen(-120, -300);
    view.old[0].created = Some(at(-86_400));
    let p = step(&view, &Memory::default(), &s, &pass, 0);
    assert_eq!(reasons(&p), ["AnalysisStarted"]);
    let message = &p.notes[0].message;
    assert!(
        message.contains("before the controller analysed it")
            && message.contains("against the history of revision 1 (shop-old11)"),
        "{message}"
    );
    assert!(matches!(stage(&p), Stage::Baking { since } if *since == at(-120)));
    let t = wants_evaluation(&view, &p.memory, &s, at(30)).unwrap();
    assert!(t.old_replicasets.is_empty());
    assert_eq!(t.departed, ["shop-old11"]);
    // The bake ends when it would have ended, had the controller seen the rollout.
    let done = -120 + s.bake.as_secs() as i64;
    let p = step(&view, &p.memory, &s, &pass, done - 30);
    assert!(p.notes.is_empty());
    let p = step(&view, &p.memory, &s, &pass, done);
    assert_eq!(reasons(&p), ["AnalysisPassed"]);
}

#[test]
fn a_bad_release_completed_unseen_is_rolled_back_to_the_generation_before() {
    let s = Settings::default();
    let (p, _) = fail_until_act(&completed_unseen(-60, -200), &s, Memory::default());
    assert_eq!(
        p.acts,
        [Act::Rollback {
            to_hash: "old11".into(),
            to_revision: 1
        }]
    );
}

#[test]
fn a_deployment_at_rest_is_not_taken_for_a_rollout_completed_unseen() {
    let s = Settings::default();
    let bake = s.bake.as_secs() as i64;
    let pass = verdicts(Outcome::Pass, None);
    let mut first_release = completed_unseen(-60, -200);
    first_release.old.clear();
    let mut unknown = complete();
    unknown.completed_at = Some(at(-60));
    // v2 interrupted by this one 3 minutes into its rollout, both complete unseen: v2 is the
    // newest old ReplicaSet, with minutes of history, and no baseline to hold this one to.
    let mut interrupted = completed_unseen(-60, -200);
    interrupted.old.insert(0, gen_("mid33", 2, 0, 0));
    interrupted.old[0].created = Some(at(-380));
    interrupted.new.as_mut().unwrap().revision = 3;
    let mut scaled_to_zero = completed_unseen(-60, -200);
    scaled_to_zero.desired = 0;
    for (why, view) in [
        ("a rollout interrupted by this one", interrupted),
        ("no pods asked for", scaled_to_zero),
        (
            "complete for longer than the bake",
            completed_unseen(-bake, -bake - 60),
        ),
        // `kubectl rollout undo` to a template of long ago, or a scale-up completed.
        (
            "a ReplicaSet of long ago",
            completed_unseen(-60, -60 - 3600),
        ),
        ("no generation before it", first_release),
        ("no creation time", unknown),
        ("no completion time", complete()),
    ] {
        let p = step(&view, &Memory::default(), &s, &pass, 0);
        assert!(
            p.notes.is_empty() && p.memory.current.is_none() && !p.write,
            "{why}: {:?}",
            reasons(&p)
        );
    }
}
