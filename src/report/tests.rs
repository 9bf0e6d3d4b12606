//! Unit tests of the report: selection, the model and its summary, and both renderings, on
//! hand-made records.

use crate::policy::guard::{EventReason, StageName};
use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::analysis::decision::Decision;
use crate::analysis::judge::{
    AbsoluteEvidence, Baseline, CompareEvidence, CompareHistory, ErrorRateEvidence, Evidence,
    HistoryEvidence, LogsEvidence, Outcome, SampleSummary, SentQuery, SideCounts, SignatureRow,
    Verdict,
};
use crate::analysis::phplog::ErrorKind;
use crate::analysis::rules::{Action, Direction, ProportionTest, Unit};
use crate::policy::guard::{Act, Mode, Note};
use crate::policy::rollout::Phase;
use crate::records::{Kind, Record, SCHEMA, Unreadable};

/// 2027-01-15 10:13:00 UTC plus `s` seconds.
fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_007_980 + s).unwrap()
}

const NEW_RS: &str = "shop-7d4f9c8b6f";
const OLD_RS: &str = "shop-5c6d7e8f90";
const CLASS: &str = "class-loading-errors";

fn record(kind: Kind, secs: i64, deployment: &str, revision: u64) -> Record {
    Record {
        schema: SCHEMA,
        kind,
        at: at(secs),
        namespace: "web".into(),
        deployment: deployment.into(),
        mode: Mode::Guard,
        phase: Phase::Progressing,
        revision: Some(revision),
        new_replicaset: Some(if deployment == "shop" {
            NEW_RS.to_string()
        } else {
            format!("{deployment}-{revision}abcde")
        }),
        old_replicasets: vec![OLD_RS.into()],
        stage: Some(StageName::Analysing),
        verdicts: Vec::new(),
        verdicts_of: None,
        decision: None,
        acts: Vec::new(),
        suppressed: Vec::new(),
        notes: Vec::new(),
        result: None,
        progress: None,
        images: Default::default(),
    }
}

fn error_rate(new: (f64, f64), old: (f64, f64)) -> Evidence {
    let side = |(errors, requests): (f64, f64)| SideCounts {
        errors,
        requests,
        rate: errors / requests,
    };
    let expected = old.0 / old.1 * new.1;
    Evidence::ErrorRate(ErrorRateEvidence {
        new: side(new),
        old: side(old),
        strata: 10,
        observed_errors: new.0,
        expected_errors: expected,
        ratio: (expected > 0.0).then(|| new.0 / expected),
        rate_increase: (new.0 - expected) / new.1,
        dispersion: 1.0,
        test: ProportionTest::Binomial,
        p_value: 1.5e-8,
        alpha: 0.001,
        tolerance: 1.0,
        min_ratio: 2.0,
        min_rate_increase: 0.0001,
        min_errors: 3.0,
        intervals_left_out: 0,
        pod_intervals_left_out: 0,
        pod_intervals_warming: 0,
        pod_intervals_unpaired: 0,
        baseline: Baseline::Concurrent,
        window_bound: None,
        history: None,
        intervals: Vec::new(),
    })
}

fn verdict(rule: &str, outcome: Outcome, evidence: Option<Evidence>) -> Verdict {
    Verdict {
        rule: rule.into(),
        outcome,
        action: Action::Rollback,
        reason: format!("{rule} is {outcome}"),
        evidence,
        queries: vec![SentQuery {
            side: crate::analysis::judge::QuerySide::New,
            name: crate::analysis::judge::QueryName::Errors,
            promql: r#"sum by (pod) (increase(php_errors_total{type=~"class_not_found|trait_not_found"}[1m]))"#.into(),
        }],
        error: None,
        error_kind: None,
        building: false,
        settles_in: None,
        warn_only: false,
        consecutive: 1,
        valid_over_looks: false,
    }
}

fn decision(action: Option<Action>, rule: Option<&str>, streaks: &[(&str, u32)]) -> Decision {
    Decision {
        action,
        rule: rule.map(String::from),
        reason: "r".into(),
        streaks: streaks
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
        open: Vec::new(),
        unsettled: Vec::new(),
    }
}

/// An evaluation of shop revision 7 in which `class-loading-errors` has `new`/`old` counts.
fn evaluation(secs: i64, outcome: Outcome, new: (f64, f64), streak: u32) -> Record {
    let mut r = record(Kind::Evaluation, secs, "shop", 7);
    r.verdicts = vec![
        verdict(CLASS, outcome, Some(error_rate(new, (0.0, 9000.0)))),
        verdict("cpu-saturation", Outcome::Inconclusive, None),
    ];
    r.decision = Some(decision(None, None, &[(CLASS, streak)]));
    r
}

/// shop revision 7, recorded as the controller does: a failing evaluation, the deciding one, its
/// rollback written (with the Event it published), and the rollback confirmed against the
/// ReplicaSet it went back to (renumbered 8).
fn rollback_story() -> Vec<Record> {
    let e1 = evaluation(33, Outcome::Fail, (8.0, 700.0), 1);
    let mut e2 = evaluation(63, Outcome::Fail, (13.0, 1000.0), 2);
    let rollback = Act::Rollback {
        to_hash: "5c6d7e8f90".into(),
        to_revision: 6,
    };
    e2.decision = Some(decision(Some(Action::Rollback), Some(CLASS), &[(CLASS, 2)]));
    e2.acts = vec![rollback.clone()];
    e2.stage = Some(StageName::RolledBack);
    let mut action = e2.clone();
    action.kind = Kind::Action;
    action.verdicts.clear();
    action.result = Some("ok".into());
    action.notes = vec![Note {
        reason: EventReason::RolledBack,
        message: "class-loading-errors failed".into(),
        warning: true,
    }];
    let mut done = record(Kind::Evaluation, 95, "shop", 8);
    done.new_replicaset = Some(OLD_RS.into());
    done.old_replicasets.clear();
    done.stage = Some(StageName::RolledBack);
    done.phase = Phase::Complete;
    let mut done_written = done.clone();
    done_written.kind = Kind::Action;
    done_written.result = Some("ok".into());
    done_written.notes = vec![Note {
        reason: EventReason::RollbackComplete,
        message: "revision 8 (shop-5c6d7e8f90) is available again on all 4 pod(s)".into(),
        warning: false,
    }];
    vec![e1, e2, action, done, done_written]
}

/// The same records as an older controller wrote them: the Events on the evaluation that
/// planned them (and on the action record), no record for a step that only published Events.
fn as_older_files_have_it(recs: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in recs {
        if r.kind == Kind::Action {
            if let Some(e) = out
                .iter_mut()
                .rev()
                .find(|e| e.kind == Kind::Evaluation && e.at == r.at)
            {
                e.notes = r.notes.clone();
            }
            if r.acts.is_empty() {
                continue;
            }
        }
        out.push(r);
    }
    out
}

fn source() -> Source {
    Source {
        name: "records.jsonl".into(),
        records: 4,
        unreadable: Vec::new(),
    }
}

fn report_of(records: &[Record], selection: &Selection) -> Report {
    build(records, selection, source()).unwrap()
}

#[test]
fn the_summary_of_a_rollback_names_the_rule_the_revisions_and_the_numbers() {
    let r = report_of(&rollback_story(), &Selection::default());
    assert_eq!(r.revision, 7);
    assert!(matches!(
        r.ending,
        Ending::RolledBack { to_revision: 6, .. }
    ));
    let want = "Revision 7 (shop-7d4f9c8b6f) of web/shop was rolled back to revision 6 (shop-5c6d7e8f90) at 10:14:03 UTC by class-loading-errors after 2 failing evaluations in a row: new 1.3% (13/1000) vs old 0% (0/9000), 13 errors where the old rate predicts 0 (×∞), p=1.5e-8 < α=0.001; against the old pods in the same intervals.";
    // First in words, then in numbers.
    let lead = "The release of web/shop was rolled back at 10:14:03 UTC (30s after its analysis began): its new pods did worse than the previous release's on class-loading-errors. ";
    assert!(r.summary.starts_with(lead), "{}", r.summary);
    assert!(r.summary[lead.len()..].starts_with(want), "{}", r.summary);
    assert!(
        r.summary
            .contains("At 10:14:35 UTC the rollback was confirmed: revision 8"),
        "the aftermath, recorded against the renumbered ReplicaSet: {}",
        r.summary
    );
    assert!(
        r.summary
            .contains("2 evaluations from 10:13:33 to 10:14:03 UTC"),
        "{}",
        r.summary
    );
    // The deciding rule first, with the deciding evaluation's evidence.
    assert_eq!(r.rules[0].name, CLASS);
    assert!(r.rules[0].decided);
    let shown = r.rules[0].shown.as_ref().unwrap();
    assert!(shown.deciding);
    assert_eq!(shown.evaluation, 2);
    assert_eq!(r.rules[0].fail, 2);
    assert_eq!(r.rules[0].longest_streak, 2);
    assert_eq!(r.rules[1].name, "cpu-saturation");
    assert!(r.rules[1].series.is_none(), "never failed: no plot");
}

#[test]
fn the_timeline_interleaves_evaluations_actions_and_events() {
    let r = report_of(&rollback_story(), &Selection::default());
    let steps: Vec<String> = r
        .timeline
        .iter()
        .map(|e| match &e.kind {
            EntryKind::Evaluation {
                number, deciding, ..
            } => format!("evaluation {number}{}", if *deciding { "*" } else { "" }),
            EntryKind::Action { what, ok } => format!("action {what} {ok}"),
            EntryKind::Event { reason, .. } => format!("event {reason}"),
        })
        .collect();
    assert_eq!(
        steps,
        [
            "evaluation 1",
            "evaluation 2*",
            "action rollback to revision 6: written true",
            "event RolledBack",
            "event RollbackComplete",
        ]
    );
    let EntryKind::Evaluation { outcomes, .. } = &r.timeline[1].kind else {
        panic!()
    };
    assert_eq!(outcomes[0], Some((Outcome::Fail, Some(2))));
    assert_eq!(outcomes[1], Some((Outcome::Inconclusive, None)));
    // Decided and written at the same moment: one mark.
    assert_eq!(r.marks.len(), 1);
    assert_eq!(r.marks[0].at, at(63));
    assert_eq!(r.marks[0].label, "rollback decided and written");
}

#[test]
fn older_files_with_the_events_on_the_evaluation_tell_the_same_story() {
    let new = report_of(&rollback_story(), &Selection::default());
    let old = report_of(
        &as_older_files_have_it(rollback_story()),
        &Selection::default(),
    );
    assert_eq!(old.summary, new.summary);
    assert_eq!(old.marks, new.marks);
    let events = |r: &Report| -> Vec<String> {
        r.timeline
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Event { reason, .. } => Some(format!("{} {reason}", hms(e.at))),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        events(&old),
        ["10:14:03 RolledBack", "10:14:35 RollbackComplete"]
    );
    assert_eq!(events(&old), events(&new));
}

#[test]
fn a_conflicting_write_is_not_the_decision_the_retry_is() {
    // As older files have it: the Events on the evaluations, so both tries carry RolledBack.
    let mut recs = as_older_files_have_it(rollback_story());
    // The first try of the rollback met a conflict; the controller re-read and decided again.
    let mut first = recs[1].clone();
    first.at = at(60);
    assert_eq!(first.notes.len(), 1);
    let mut refused = first.clone();
    refused.kind = Kind::Action;
    refused.verdicts.clear();
    refused.result = Some("conflict: the Deployment changed".into());
    recs.insert(1, refused);
    recs.insert(1, first);
    let r = report_of(&recs, &Selection::default());
    assert!(matches!(r.ending, Ending::RolledBack { at: t, .. } if t == at(63)));
    let failed: Vec<&Entry> = r
        .timeline
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Action { ok: false, .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].at, at(60));
    // The Event planned twice appears once, with the try that went through.
    let rolled_back: Vec<Timestamp> = r
        .timeline
        .iter()
        .filter(|e| matches!(&e.kind, EntryKind::Event { reason, .. } if *reason == EventReason::RolledBack))
        .map(|e| e.at)
        .collect();
    assert_eq!(rolled_back, [at(63)]);
    assert_eq!(r.marks.len(), 2, "{:?}", r.marks);
    assert_eq!(r.marks[0].label, "rollback not written");
    assert!(
        r.summary.contains(
            " An earlier try at 10:14:00 UTC was not written (conflict: the Deployment changed); the controller read the Deployment again and decided again."
        ),
        "{}",
        r.summary
    );
}

#[test]
fn a_decision_taken_again_on_kept_verdicts_shows_the_numbers_that_decided() {
    // As the controller writes it now: the retry after a conflict runs no evaluation; it
    // decides again on the verdicts recorded at 60 s and says so.
    let mut recs = rollback_story();
    let mut first = recs[1].clone();
    first.at = at(60);
    let mut refused = recs[2].clone();
    refused.at = at(60);
    refused.notes.clear();
    refused.result = Some("conflict: the Deployment changed".into());
    recs[1].verdicts.clear();
    recs[1].verdicts_of = Some(at(60));
    recs.insert(1, refused);
    recs.insert(1, first);
    let r = report_of(&recs, &Selection::default());
    assert!(matches!(r.ending, Ending::RolledBack { at: t, .. } if t == at(63)));
    assert!(
        r.summary.contains(
            "after 2 failing evaluations in a row: new 1.3% (13/1000) vs old 0% (0/9000)"
        ),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("2 evaluations from 10:13:33 to 10:14:00 UTC")
    );
    let steps: Vec<String> = r
        .timeline
        .iter()
        .map(|e| match &e.kind {
            EntryKind::Evaluation {
                number, deciding, ..
            } => format!(
                "{} evaluation {number}{}",
                hms(e.at),
                if *deciding { "*" } else { "" }
            ),
            EntryKind::Action { ok, .. } => format!("{} action {ok}", hms(e.at)),
            EntryKind::Event { reason, .. } => format!("{} event {reason}", hms(e.at)),
        })
        .collect();
    assert_eq!(
        steps,
        [
            "10:13:33 evaluation 1",
            "10:14:00 evaluation 2*",
            "10:14:00 action false",
            "10:14:03 action true",
            "10:14:03 event RolledBack",
            "10:14:35 event RollbackComplete",
        ]
    );
    let shown = r.rules[0].shown.as_ref().unwrap();
    assert!(shown.deciding);
    assert_eq!(shown.evaluation, 2);
}

#[test]
fn a_write_that_never_went_through_is_reported_as_failed() {
    let mut recs = rollback_story();
    recs[2].result = Some("timed out".into());
    recs.truncate(3);
    let r = report_of(&recs, &Selection::default());
    assert!(
        matches!(r.ending, Ending::ActionFailed { .. }),
        "{:?}",
        r.ending
    );
    assert!(
        r.summary
            .contains("class-loading-errors called for rollback to revision 6 of revision 7"),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("the write did not go through: timed out."),
        "{}",
        r.summary
    );
}

#[test]
fn observe_mode_reports_the_action_as_only_recorded() {
    let mut recs = rollback_story();
    recs.truncate(2);
    for r in &mut recs {
        r.mode = Mode::Observe;
    }
    recs[1].suppressed = std::mem::take(&mut recs[1].acts);
    let r = report_of(&recs, &Selection::default());
    let Ending::Recorded { why, act, .. } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    assert_eq!(why, "observe mode");
    assert_eq!(act, "rollback to revision 6");
    assert!(
        r.summary
            .contains("the action was only recorded (observe mode)"),
        "{}",
        r.summary
    );
    assert_eq!(r.marks[0].label, "rollback recorded");
}

#[test]
fn a_pause_and_a_pass_have_their_own_summaries() {
    let mut recs = rollback_story();
    recs.truncate(3);
    recs[1].acts = vec![Act::Pause];
    recs[1].decision.as_mut().unwrap().action = Some(Action::Pause);
    recs[2].acts = vec![Act::Pause];
    let r = report_of(&recs, &Selection::default());
    assert!(matches!(r.ending, Ending::Paused { .. }));
    assert!(
        r.summary.starts_with("The release of web/shop was paused at 10:14:03 UTC (30s after its analysis began) for a person to decide: its new pods did worse than the previous release's on class-loading-errors. Revision 7 (shop-7d4f9c8b6f) of web/shop was paused at 10:14:03 UTC by class-loading-errors after 2 failing evaluations in a row"),
        "{}",
        r.summary
    );

    let mut passing = vec![
        evaluation(30, Outcome::Pass, (0.0, 700.0), 0),
        evaluation(60, Outcome::Fail, (5.0, 1000.0), 1),
        evaluation(90, Outcome::Pass, (0.0, 1300.0), 0),
    ];
    passing[2].stage = Some(StageName::Passed);
    let r = report_of(&passing, &Selection::default());
    assert_eq!(r.ending, Ending::Passed { resumed: false });
    assert!(
        r.summary.starts_with(
            "The release of web/shop passed its analysis: no rule found its new pods worse than the previous release's for long enough to act. Revision 7 (shop-7d4f9c8b6f) of web/shop passed its analysis in guard mode: 3 evaluations from 10:13:30 to 10:14:30 UTC, and no rule acted."
        ),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains(
            "Failing, but never for long enough to act: class-loading-errors (failed 1 of 3 evaluations, at most 1 in a row)."
        ),
        "{}",
        r.summary
    );
    let shown = r.rules[0].shown.as_ref().unwrap();
    assert!(
        !shown.deciding,
        "no deciding evaluation: its latest failure"
    );
    assert_eq!(shown.evaluation, 2);
}

#[test]
fn a_rule_that_acts_on_its_first_failure_says_so() {
    let mut recs = rollback_story();
    recs.remove(0);
    for r in &mut recs {
        if let Some(d) = r.decision.as_mut() {
            d.streaks.insert(CLASS.into(), 1);
        }
    }
    let r = report_of(&recs, &Selection::default());
    assert!(
        r.summary
            .contains("by class-loading-errors on its first failing evaluation: new 1.3%"),
        "{}",
        r.summary
    );
}

#[test]
fn a_held_revision_says_it_was_not_analysed_and_why() {
    let mut recs = rollback_story();
    let why = "revision 9 (shop-7d4f9c8b6f) is the pod template the controller rolled back at 2027-01-15T10:14:33Z (as revision 7) on rule class-loading-errors: new 1.2% vs old 0%; deployed again, it is held paused before it replaces more pods. To analyse it again from scratch: kubectl -n web annotate deployment shop rollout-guard.io/allow-revision=7d4f9c8b6f --overwrite";
    let mut evaluation = record(Kind::Evaluation, 900, "shop", 9);
    evaluation.stage = Some(StageName::Held);
    evaluation.acts = vec![Act::Pause];
    let mut action = evaluation.clone();
    action.kind = Kind::Action;
    action.result = Some("ok".into());
    action.notes = vec![Note {
        reason: EventReason::KnownBadRevision,
        message: why.into(),
        warning: true,
    }];
    recs.extend([evaluation, action]);
    let r = report_of(&recs, &Selection::default());
    assert_eq!(r.revision, 9, "a hold is an action: the default revision");
    assert_eq!(
        r.ending,
        Ending::Held {
            why: Some(why.into())
        }
    );
    assert_eq!(r.ending.headline(), "held: rolled back before");
    assert!(
        r.summary.starts_with("The release of web/shop was held paused without an analysis: it is a release rolled back before. Revision 9 (shop-7d4f9c8b6f) of web/shop was not analysed: revision 9"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("allow-revision=7d4f9c8b6f"),
        "{}",
        r.summary
    );
}

/// Two Deployments, shop with three revisions (7 rolled back; 9 analysed later, no action),
/// and the same name in another namespace.
fn crowded_file() -> Vec<Record> {
    let mut recs = rollback_story();
    recs.push(evaluation(300, Outcome::Pass, (0.0, 100.0), 0));
    recs.last_mut().unwrap().revision = Some(9);
    recs.push(record(Kind::Evaluation, 310, "cart", 2));
    recs.last_mut().unwrap().verdicts = vec![verdict(CLASS, Outcome::Pass, None)];
    recs
}

#[test]
fn the_default_revision_is_the_latest_that_acted_else_the_latest_analysed() {
    let recs = crowded_file();
    let shop = Selection {
        deployment: Some("shop".into()),
        ..Selection::default()
    };
    assert_eq!(
        report_of(&recs, &shop).revision,
        7,
        "9 came later, but did nothing"
    );
    let r = report_of(
        &recs,
        &Selection {
            revision: Some(9),
            ..shop.clone()
        },
    );
    assert_eq!(r.revision, 9);
    assert_eq!(
        r.ending,
        Ending::NoAction {
            stage: Some(StageName::Analysing)
        }
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n
                .contains("also holds revision 7 (2 evaluations; rollback), 8 (0 evaluations)")),
        "{:?}",
        r.notes
    );
    // Without any action, the latest analysed.
    let quiet: Vec<Record> = recs
        .into_iter()
        .filter(|r| r.acts.is_empty() && r.deployment == "shop")
        .collect();
    assert_eq!(report_of(&quiet, &Selection::default()).revision, 9);
}

#[test]
fn nothing_selected_lists_what_the_file_holds() {
    let mut recs = crowded_file();
    let e = build(&recs, &Selection::default(), source()).unwrap_err();
    assert!(matches!(e, SelectError::Ambiguous { .. }));
    let text = e.to_string();
    assert!(text.contains("choose one with --deployment"), "{text}");
    assert!(
        text.contains("  web/cart: revision 2 (1 evaluation, 10:18:10 to 10:18:10)"),
        "{text}"
    );
    assert!(
        text.contains("  web/shop: revision 7 (2 evaluations, rollback, 10:13:33 to 10:14:03); revision 8 (0 evaluations, 10:14:35 to 10:14:35); revision 9"),
        "{text}"
    );

    let named = |d: &str, rev: Option<u64>| Selection {
        deployment: Some(d.into()),
        revision: rev,
        ..Selection::default()
    };
    let e = build(&recs, &named("nope", None), source()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no records of Deployment nope; the file holds:\n  web/cart"),
        "{e}"
    );
    let e = build(&recs, &named("shop", Some(3)), source()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no records of revision 3 of web/shop; the file holds:\n"),
        "{e}"
    );

    // The same name in two namespaces needs --namespace.
    let mut other = recs[0].clone();
    other.namespace = "staging".into();
    recs.push(other);
    assert!(matches!(
        build(&recs, &named("shop", None), source()).unwrap_err(),
        SelectError::Ambiguous { .. }
    ));
    let r = build(
        &recs,
        &Selection {
            namespace: Some("staging".into()),
            ..named("shop", None)
        },
        source(),
    )
    .unwrap();
    assert_eq!(r.namespace, "staging");
    assert_eq!(r.evaluations, 1);
    assert!(matches!(
        build(&[], &Selection::default(), source()).unwrap_err(),
        SelectError::Empty
    ));
}

fn unreadable(at: &[(&str, usize)]) -> Vec<Unreadable> {
    at.iter()
        .map(|&(file, line)| Unreadable {
            file: file.into(),
            line,
        })
        .collect()
}

#[test]
fn unreadable_lines_are_counted_in_a_note() {
    let s = Source {
        unreadable: unreadable(&[("records.jsonl", 3), ("records.jsonl", 17)]),
        ..source()
    };
    let r = build(&rollback_story(), &Selection::default(), s).unwrap();
    assert_eq!(
        r.notes[0],
        "Skipped 2 lines of records.jsonl that could not be read as decision records of this version (line 3, 17)."
    );
}

/// Issue 14: lines of rotated files are named with their file.
#[test]
fn unreadable_lines_of_rotated_files_name_their_file() {
    let s = Source {
        unreadable: unreadable(&[
            ("records.jsonl.2", 4),
            ("records.jsonl.2", 9),
            ("records.jsonl", 17),
        ]),
        ..source()
    };
    let r = build(&rollback_story(), &Selection::default(), s).unwrap();
    assert_eq!(
        r.notes[0],
        "Skipped 3 lines of records.jsonl and its rotated files that could not be read as decision records of this version (records.jsonl.2 line 4, 9; records.jsonl line 17)."
    );
}

#[test]
fn error_rate_series_follow_each_evaluation_with_gaps_where_there_was_no_number() {
    let mut recs = rollback_story();
    recs[0].verdicts[0].evidence = None;
    let r = report_of(&recs, &Selection::default());
    let s = r.rules[0].series.as_ref().unwrap();
    assert_eq!(s.times, vec![at(33), at(63)]);
    assert_eq!(s.lines[0].side, Side::New);
    assert_eq!(s.lines[0].values, vec![None, Some(1.3)]);
    assert_eq!(s.lines[1].values, vec![None, Some(0.0)]);
    assert_eq!(s.y_label, "errors, % of requests");
}

#[test]
fn a_deciding_error_rate_verdict_is_plotted_interval_by_interval_over_its_window() {
    let mut recs = rollback_story();
    let intervals: Vec<crate::analysis::judge::IntervalCounts> = (0..5)
        .map(|i| crate::analysis::judge::IntervalCounts {
            t: (at(0).as_second() + 60 * i) as f64,
            new: (i >= 2).then_some([i as f64, 200.0]),
            old: Some([0.0, 1000.0]),
        })
        .collect();
    if let Some(Evidence::ErrorRate(x)) = recs[1].verdicts[0].evidence.as_mut() {
        x.intervals = intervals;
    }
    let r = report_of(&recs, &Selection::default());
    let s = r.rules[0].series.as_ref().unwrap();
    assert_eq!(s.times, (0..5).map(|i| at(60 * i)).collect::<Vec<_>>());
    assert_eq!(
        s.lines[0].values,
        vec![None, None, Some(1.0), Some(1.5), Some(2.0)],
        "the new pods' rate where they served"
    );
    assert_eq!(s.lines[1].values, vec![Some(0.0); 5]);
    assert!(s.title.contains("each interval"), "{}", s.title);
}

fn summary(median: f64, p90: f64) -> SampleSummary {
    SampleSummary {
        samples: 40,
        pods: 4,
        median,
        p90,
        max: p90 * 1.2,
        warmup_dropped: 0,
        steps: Vec::new(),
    }
}

#[test]
fn compare_absolute_and_logs_series() {
    let mut recs: Vec<Record> = (0..3)
        .map(|i| {
            let mut r = record(Kind::Evaluation, 30 * i, "shop", 7);
            let f = 1.0 + i as f64;
            r.verdicts = vec![
                verdict(
                    "cpu-per-request",
                    Outcome::Fail,
                    Some(Evidence::Compare(CompareEvidence {
                        new: summary(0.03 * f, 0.05 * f),
                        old: summary(0.02, 0.03),
                        direction: Direction::HigherIsWorse,
                        median_ratio: Some(1.5 * f),
                        shift: 0.01,
                        u_statistic: 1200.0,
                        p_value: 1e-5,
                        alpha: 0.001,
                        min_ratio: 1.15,
                        min_shift: 0.0,
                        unit: Default::default(),
                        baseline: Default::default(),
                        pods_worse: 2,
                        pods_judged: 2,
                        history: None,
                        at_load: None,
                    })),
                ),
                verdict(
                    "cpu-saturation",
                    Outcome::Fail,
                    Some(Evidence::Absolute(AbsoluteEvidence {
                        new: summary(0.95, 0.99),
                        old: (i < 2).then(|| summary(0.4, 0.5)),
                        quantile: 0.5,
                        value: 0.95,
                        old_value: (i < 2).then_some(0.4),
                        threshold: 0.9,
                        direction: Direction::HigherIsWorse,
                        unit: Unit::Fraction,
                    })),
                ),
                verdict("php-log-class-errors", Outcome::Fail, Some(logs(i))),
            ];
            r
        })
        .collect();
    recs[2].stage = Some(StageName::Passed);
    let r = report_of(&recs, &Selection::default());
    let series = |name: &str| {
        r.rules
            .iter()
            .find(|x| x.name == name)
            .and_then(|x| x.series.clone())
            .unwrap()
    };
    let c = series("cpu-per-request");
    let labels: Vec<&str> = c.lines.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(labels, ["new median", "old median", "new p90", "old p90"]);
    assert_eq!(c.lines[0].values, vec![Some(0.03), Some(0.06), Some(0.09)]);
    assert!(c.lines[2].dashed && !c.lines[0].dashed);
    assert_eq!(c.threshold, None);
    assert_eq!(c.y_label, "value, in the query's unit");
    // A fraction is shown as a percentage, its threshold too.
    let a = series("cpu-saturation");
    assert_eq!(a.threshold, Some(90.0));
    assert_eq!(a.y_label, "%");
    assert_eq!(
        a.lines[1].values,
        vec![Some(40.0), Some(40.0), None],
        "no old pods left"
    );
    let l = series("php-log-class-errors");
    // The signature that decided the verdict shown (the latest failure), per pod-minute: absent
    // at first (printed by no new pod: 0; the old pods' count is not recorded), then 1/4, 3/6.
    assert!(
        l.title.contains(r#"`Class "A|B<b>" not found`"#),
        "{}",
        l.title
    );
    assert_eq!(l.lines[0].values, vec![Some(0.0), Some(0.25), Some(0.5)]);
    assert_eq!(l.lines[1].values, vec![None, Some(0.0), Some(0.0)]);
    assert_eq!(l.y_label, "errors per pod-minute");
}

/// Issue 16: a compare verdict that kept its steps is plotted at the query's step, each side's
/// median across its pods (the old version's last window before its pods left, the new pods'
/// after), not one point per evaluation.
#[test]
fn a_verdict_with_its_steps_is_plotted_at_the_querys_step() {
    let stepped = |median: f64, from: f64, n: usize| SampleSummary {
        steps: (0..n)
            .map(|i| [from + 60.0 * i as f64, median * (1.0 + 0.01 * i as f64)])
            .collect(),
        ..summary(median, median)
    };
    let t0 = record(Kind::Evaluation, 0, "shop", 7).at.as_second() as f64;
    let mut r = record(Kind::Evaluation, 600, "shop", 7);
    r.verdicts = vec![verdict(
        "cpu-per-request",
        Outcome::Pass,
        Some(Evidence::Compare(CompareEvidence {
            new: stepped(0.03, t0 + 300.0, 5),
            old: stepped(0.02, t0, 5),
            direction: Direction::HigherIsWorse,
            median_ratio: Some(1.5),
            shift: 0.01,
            u_statistic: 0.0,
            p_value: 1.0,
            alpha: 0.001,
            min_ratio: 1.15,
            min_shift: 0.0,
            unit: Unit::CpuSecondsPerRequest,
            baseline: Default::default(),
            pods_worse: 0,
            pods_judged: 3,
            history: None,
            at_load: None,
        })),
    )];
    r.stage = Some(StageName::Passed);
    let report = report_of(&[r], &Selection::default());
    let s = report.rules[0]
        .series
        .clone()
        .expect("a series for a passing rule too");
    assert_eq!(s.times.len(), 10, "five steps of each side, none shared");
    assert_eq!(s.y_label, "CPU seconds per request");
    assert!(
        s.title
            .contains("each step of the latest evaluation's window"),
        "{}",
        s.title
    );
    assert_eq!(s.lines[0].values[..5], [None; 5]);
    assert_eq!(s.lines[0].values[5], Some(0.03));
    assert_eq!(s.lines[1].values[0], Some(0.02));
    assert_eq!(s.lines[1].values[9], None);
}

fn logs(i: i64) -> Evidence {
    let row = |signature: &str, new: u64, old: u64| SignatureRow {
        kind: ErrorKind::ClassNotFound,
        signature: signature.into(),
        new,
        old,
        ratio: None,
        p_value: 1e-6,
        example: format!(
            "PHP Fatal error:  Uncaught Error: {signature} in /app/src/Billing.php:12"
        ),
    };
    let minutes = 2.0 * (i + 1) as f64;
    let signatures = match i {
        0 => vec![row(r#"Class "App\Billing\Tax" not found"#, 4, 0)],
        1 => vec![
            row(r#"Class "App\Billing\Tax" not found"#, 8, 0),
            row("Class \"A|B<b>\" not found", 1, 0),
        ],
        _ => vec![row("Class \"A|B<b>\" not found", 3, 0)],
    };
    Evidence::Logs(LogsEvidence {
        new_pods_read: 2,
        new_pods_total: 2,
        new_pod_minutes: minutes,
        old_pods_read: 3,
        old_pods_total: 3,
        old_pods_departed: 0,
        old_pod_minutes: 3.0 * minutes,
        total: row("(all counted kinds)", 4, 0),
        signatures,
        alpha_per_test: 0.0005,
        min_ratio: 2.0,
        min_errors: 3.0,
        truncated: false,
    })
}

/// Issue 16: the report says what the release changed, from the images the records keep, in
/// its first sentence and in the facts; records without images say nothing of them.
#[test]
fn the_report_says_which_images_the_release_changed() {
    let images = |php: &str| {
        [
            ("php".to_string(), php.to_string()),
            ("istio-proxy".to_string(), "proxyv2:1.22".to_string()),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
    };
    let mut recs = rollback_story();
    // Only the first record names the old side (as after a fast rollout, later records have no
    // old pods), and the last names a third ReplicaSet the report is not about.
    recs[0].images = [
        (NEW_RS.to_string(), images("registry/shop:1.5")),
        (OLD_RS.to_string(), images("registry/shop:1.4")),
    ]
    .into();
    recs[1].images = [(NEW_RS.to_string(), images("registry/shop:1.5"))].into();
    let r = report_of(&recs, &Selection::default());
    assert!(
        r.summary.starts_with(
            "The release of web/shop that changed php from registry/shop:1.4 to registry/shop:1.5 was rolled back at"
        ),
        "{}",
        r.summary
    );
    let facts = r.facts();
    let fact = |label: &str| {
        facts
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        fact("New images").as_deref(),
        Some("istio-proxy: proxyv2:1.22, php: registry/shop:1.5")
    );
    assert_eq!(
        fact("Old images").as_deref(),
        Some("istio-proxy: proxyv2:1.22, php: registry/shop:1.4")
    );
    assert!(
        markdown(&r).contains("| New images | istio-proxy: proxyv2:1.22, php: registry/shop:1.5 |")
    );

    let plain = report_of(&rollback_story(), &Selection::default());
    assert!(
        plain
            .summary
            .starts_with("The release of web/shop was rolled back")
    );
    assert!(plain.facts().iter().all(|(l, _)| !l.ends_with("images")));
}

#[test]
fn markdown_keeps_queries_whole_and_escapes_table_cells() {
    let mut recs = rollback_story();
    recs[1].verdicts.push(verdict(
        "php-log-class-errors",
        Outcome::Fail,
        Some(logs(1)),
    ));
    let md = markdown(&report_of(&recs, &Selection::default()));
    assert!(
        md.starts_with("# Rollout report: web/shop revision 7: rolled back\n"),
        "{md}"
    );
    // A query with `|` in a fence, untouched.
    assert!(
        md.contains("```promql\nsum by (pod) (increase(php_errors_total{type=~\"class_not_found|trait_not_found\"}[1m]))\n```"),
        "{md}"
    );
    // A signature with `|` in a table cell, escaped so the table keeps its columns.
    assert!(
        md.contains(r#"| class_not_found | `Class "A\|B<b>" not found` | 1 | 0 |"#),
        "{md}"
    );
    assert!(
        md.contains(
            "| 10:14:03 | **evaluation 2** (decides) | **fail** (2) | **fail** | inconclusive |"
        ),
        "{md}"
    );
    assert!(md.contains("| time (UTC) | new pods | old pods |\n|---|---|---|\n| 10:13:33 | 1.143 | 0 |\n| 10:14:03 | 1.3 | 0 |"), "{md}");
    assert!(!md.contains("<svg"), "no plots in Markdown");
}

/// Issue 14: Markdown passes raw HTML through; text from records (reasons, log lines, notes,
/// names) must not become HTML in the report.
#[test]
fn markdown_writes_no_html_from_the_records() {
    let hostile = "<img src=x onerror=alert(1)> & <script>alert(2)</script>";
    let mut recs = rollback_story();
    for r in &mut recs {
        r.deployment = format!("shop{hostile}");
        for v in &mut r.verdicts {
            v.reason = hostile.into();
            v.error = Some(hostile.into());
        }
    }
    let mut logs = logs(1);
    if let Evidence::Logs(l) = &mut logs {
        l.signatures[0].example = hostile.into();
    }
    recs[1]
        .verdicts
        .push(verdict("php-log-class-errors", Outcome::Fail, Some(logs)));
    let mut report = report_of(&recs, &Selection::default());
    report.notes.push(hostile.into());
    report.source.name = hostile.into();
    let md = markdown(&report);
    // In a code span it is literal text.
    let outside_code = md.replace(&format!("`{hostile}`"), "");
    assert!(
        !outside_code.contains("<img") && !outside_code.contains("<script"),
        "{md}"
    );
    assert!(md.contains("&lt;script&gt;alert(2)&lt;/script&gt;"), "{md}");
}

#[test]
fn html_is_one_self_contained_page_with_a_plot_per_failing_rule() {
    let mut recs = rollback_story();
    recs[1].verdicts.push(verdict(
        "php-log-class-errors",
        Outcome::Fail,
        Some(logs(1)),
    ));
    let r = report_of(&recs, &Selection::default());
    let page = html(&r, HtmlOptions::default());
    assert!(page.starts_with("<!DOCTYPE html>"));
    for external in ["<script", "<link", " src=", " href=", "url(", "@import"] {
        assert!(!page.contains(external), "{external} in the page");
    }
    assert_eq!(
        page.matches("<svg ").count(),
        2,
        "class-loading-errors and the logs rule"
    );
    assert!(page.contains(r#"<svg class="plot" data-rule="class-loading-errors" role="img""#));
    // Text from the records is escaped, in the tables and in the plot's title.
    assert!(page.contains("<code>Class &quot;A|B&lt;b&gt;&quot; not found</code>"));
    assert!(!page.contains("<b>\""));
    assert!(page.contains(&html::esc(&r.summary)));

    let bare = html(&r, HtmlOptions { plots: false });
    assert!(!bare.contains("<svg"));
    assert!(
        bare.contains("<h4>Series as the judge saw it: error rate of the new and the old pods")
    );
}

#[test]
fn a_plot_draws_both_sides_in_their_colours_with_the_decision_marked() {
    let r = report_of(&rollback_story(), &Selection::default());
    let svg = plot::svg(r.rules[0].series.as_ref().unwrap(), &r.marks).unwrap();
    let hex = |c: plotters::style::RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
    for (colour, what) in [(plot::NEW, "new"), (plot::OLD, "old"), (plot::MARK, "mark")] {
        assert!(
            svg.contains(&format!(
                "<polyline fill=\"none\" opacity=\"1\" stroke=\"{}\"",
                hex(colour)
            )),
            "no {what} line in {svg}"
        );
    }
    for text in [
        "rollback decided and written",
        "time (UTC)",
        "errors, % of requests",
        "new pods",
        "old pods",
        "10:13:40",
    ] {
        assert!(svg.contains(text), "{text} missing: {svg}");
    }
    assert!(
        svg.starts_with("<svg width=\"720\" height=\"280\""),
        "{svg}"
    );
    // One evaluation alone still makes a plot.
    let one = report_of(&rollback_story()[..1], &Selection::default());
    assert!(plot::svg(one.rules[0].series.as_ref().unwrap(), &one.marks).is_ok());
}

/// Issue 16: with the rollout's progress in the records, a lane under the plot shows the new
/// pods as a share of the replicas, in grey (not a series colour), on the same time axis.
#[test]
fn a_plot_has_a_lane_with_the_rollouts_progress_when_the_records_have_it() {
    use crate::records::Progress;
    let mut recs = rollback_story();
    for (r, available) in recs.iter_mut().zip([1, 2, 2, 4, 4]) {
        r.progress = Some(Progress {
            new_available: available,
            desired: 4,
        });
    }
    let r = report_of(&recs, &Selection::default());
    let series = r.rules[0].series.as_ref().unwrap();
    let shares: Vec<f64> = series.progress.iter().map(|(_, p)| *p).collect();
    assert_eq!(shares, [25.0, 50.0], "one per evaluation with verdicts");
    let svg = plot::svg(series, &r.marks).unwrap();
    let height = plot::SIZE.1 + plot::LANE;
    assert!(
        svg.starts_with(&format!("<svg width=\"720\" height=\"{height}\"")),
        "{svg}"
    );
    assert!(svg.contains("new pods, %"), "{svg}");
    let grey = plot::PROGRESS;
    assert!(
        svg.contains(&format!("#{:02X}{:02X}{:02X}", grey.0, grey.1, grey.2)),
        "no progress lane in {svg}"
    );
}

/// Every cell of the tables, as text, one table per string (its title first).
fn tables_text(e: &Evidence) -> Vec<String> {
    super::evidence::tables(e)
        .iter()
        .map(|t| {
            let cells = t.rows.iter().flatten().map(|c| match c {
                super::evidence::Cell::Text(s) | super::evidence::Cell::Code(s) => s.as_str(),
            });
            std::iter::once(t.title.as_str())
                .chain(cells)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

#[test]
fn an_error_rate_verdict_names_its_baseline_with_the_historys_span_and_numbers() {
    let mut e = error_rate((60.0, 20_000.0), (500.0, 100_000.0));
    let Evidence::ErrorRate(x) = &mut e else {
        unreachable!()
    };
    x.baseline = Baseline::Both;
    x.history = Some(Box::new(HistoryEvidence {
        old_errors: 500.0,
        old_requests: 100_000.0,
        from: at(0),
        to: at(3000),
        rate_bound: 0.0055,
        intervals: 8,
        errors: 40.0,
        requests: 12_000.0,
        expected: 60.0,
    }));
    let line = super::evidence::numbers(&e);
    assert!(
        line.ends_with(&format!(
            "; against the old pods in the same intervals and the old version's history over the window (history {} to {}: 500 errors in 100000 requests, held to at most 0.55%)",
            hms(at(0)),
            hms(at(3000))
        )),
        "{line}"
    );
    let tables = tables_text(&e);
    let baseline = tables
        .iter()
        .find(|t| t.starts_with("The baseline"))
        .expect("a table of the baseline");
    for says in [
        "10 interval(s) in which both versions served",
        "500 errors in 100000 requests",
        "held to at most 0.55%",
        "8 interval(s): the new pods made 40 errors in 12000 requests, where the history's rate predicts 60",
    ] {
        assert!(baseline.contains(says), "no {says:?} in {baseline}");
    }
}

#[test]
fn a_compare_verdict_against_history_is_shown_as_such_not_as_a_mann_whitney_test() {
    let e = Evidence::Compare(CompareEvidence {
        new: summary(0.03, 0.05),
        old: summary(0.02, 0.03),
        direction: Direction::HigherIsWorse,
        median_ratio: Some(1.5),
        shift: 0.01,
        u_statistic: 0.0,
        p_value: 1.0 / 40.0,
        alpha: 0.001,
        min_ratio: 1.15,
        min_shift: 0.0,
        unit: Default::default(),
        baseline: Baseline::History,
        pods_worse: 3,
        pods_judged: 4,
        history: Some(Box::new(CompareHistory {
            before_from: at(2400),
            before_to: at(3000),
            before: 0.02,
            after: 0.03,
            ratio: 1.5,
            gap_seconds: 420.0,
            largest_drift: 1.3,
            drift_pairs: 39,
            needed: 1.3,
            unknown_drift: None,
            pod_bar: 1.4,
            spread_bar: Some(1.6),
            while_both: None,
            history_from: at(0),
        })),
        at_load: None,
    });
    let tables = tables_text(&e);
    assert!(
        tables.iter().all(|t| !t.contains("Mann-Whitney")),
        "{tables:#?}"
    );
    let history = tables
        .iter()
        .find(|t| t.starts_with("Against the old version's history"))
        .expect("a table of the history comparison");
    for says in [
        "×1.5 | ≥ ×1.3: the larger of min_ratio ×1.15 and the old version's own largest drift ×1.3 over 420 s (39 pairs",
        "3 of 4 | more than half, each beyond ×1.6: the largest of that, the 95th percentile of the old pods' own rises above the whole (×1.4) and where one more old pod would fall by their spread (×1.6)",
        &format!("{} to {}", hms(at(2400)), hms(at(3000))),
    ] {
        assert!(history.contains(says), "no {says:?} in {history}");
    }
    let line = super::evidence::numbers(&e);
    assert!(
        line.starts_with(
            "the old pods gone: new level 0.03 vs the old version's 0.02 before its pods left"
        ),
        "{line}"
    );
    assert!(
        line.contains("needs ×1.3 (its own largest drift ×1.3), 3 of 4 new pods beyond"),
        "{line}"
    );

    // After a short-lived version: no drift measured, the rule's assumed one, said as such.
    let mut short = e.clone();
    if let Evidence::Compare(c) = &mut short
        && let Some(h) = c.history.as_mut()
    {
        (h.largest_drift, h.drift_pairs, h.needed, h.unknown_drift) = (1.0, 0, 1.75, Some(1.75));
    }
    let tables = tables_text(&short);
    let history = tables
        .iter()
        .find(|t| t.starts_with("Against the old version's history"))
        .expect("a table of the history comparison");
    let says = "≥ ×1.75: the largest of min_ratio ×1.15, the drift the rule assumes where the old version's history (since";
    assert!(history.contains(says), "no {says:?} in {history}");
    assert!(
        history.contains("(unknown_drift ×1.75), and no drift measured (0 pairs of stretches)"),
        "{history}"
    );
    let line = super::evidence::numbers(&short);
    assert!(
        line.contains("needs ×1.75 (its history too short for its drift: ×1.75 assumed)"),
        "{line}"
    );
}

#[test]
fn an_analysis_in_which_a_rule_never_judged_is_reported_as_inconclusive_naming_it() {
    // Three evaluations, the class errors passing, CPU saturation never judged; the analysis
    // ended with the stage and the Event the controller writes for it, on an action record.
    let mut recs = vec![
        evaluation(30, Outcome::Pass, (0.0, 700.0), 0),
        evaluation(60, Outcome::Pass, (0.0, 1000.0), 0),
        evaluation(90, Outcome::Pass, (0.0, 1300.0), 0),
    ];
    let mut ended = recs[2].clone();
    ended.kind = Kind::Action;
    ended.verdicts.clear();
    ended.stage = Some(StageName::Inconclusive);
    ended.notes = vec![Note {
        reason: EventReason::AnalysisInconclusive,
        message: "revision 7: no action, but not everything was judged in 3 evaluation(s): cpu-saturation: 0 usable samples from the new pods, fewer than min_samples 3".into(),
        warning: true,
    }];
    recs.push(ended);
    let r = report_of(&recs, &Selection::default());
    assert!(
        matches!(&r.ending, Ending::Inconclusive { why: Some(w) } if w.contains("cpu-saturation")),
        "{:?}",
        r.ending
    );
    assert_eq!(r.ending.headline(), "inconclusive");
    assert!(
        r.summary.contains("was not fully judged"),
        "the lead says so: {}",
        r.summary
    );
    assert!(
        r.summary.contains(
            "and no rule acted, but the analysis was inconclusive: revision 7: no action, but not everything was judged in 3 evaluation(s): cpu-saturation: 0 usable samples from the new pods"
        ),
        "{}",
        r.summary
    );
    assert!(!r.summary.contains("passed its analysis"), "{}", r.summary);
}
