//! The report's timeline: every evaluation, action and Event of the revision in time order,
//! each evaluation with its rules' outcomes and streaks, and what followed the records of the
//! revision itself (a rollback's confirmation). Part of building the model.

use super::*;

/// The timeline of `records` and their `aftermath`, in time order; `rules` orders each
/// evaluation's outcomes and `deciding` is the evaluation that decided.
pub(super) fn timeline(
    records: &[&Record],
    aftermath: &[&Record],
    rules: &[&str],
    deciding: Option<&Record>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut number = 0;
    let mut seen_notes: HashSet<(EventReason, &str)> = HashSet::new();
    let failed =
        |a: &Record| a.kind == Kind::Action && !a.result.as_ref().is_some_and(|w| w.is_ok());
    // The times of writes that did not go through, looked up once per evaluation.
    let failed_at: BTreeSet<Timestamp> =
        records.iter().filter(|a| failed(a)).map(|a| a.at).collect();
    let mut all: Vec<&Record> = records.iter().chain(aftermath).copied().collect();
    all.sort_by_key(|r| r.at);
    for r in all {
        if r.kind == Kind::Evaluation && !r.verdicts.is_empty() {
            number += 1;
            let deciding = deciding.is_some_and(|d| std::ptr::eq(d, r));
            out.push(evaluation_entry(r, number, rules, deciding));
        }
        if r.kind == Kind::Action && !r.acts.is_empty() {
            out.push(action_entry(r));
        }
        // Events: on the record of the write that published them, or (older files) on the
        // evaluation that planned them, where an Event is published only if the write went
        // through, and a retried write plans the same Event again.
        let unpublished = failed(r) || (r.kind == Kind::Evaluation && failed_at.contains(&r.at));
        for n in r.notes.iter().filter(|_| !unpublished) {
            if !seen_notes.insert((n.reason, n.message.as_str())) {
                continue;
            }
            out.push(Entry {
                at: r.at,
                kind: EntryKind::Event {
                    reason: n.reason,
                    message: n.message.clone(),
                    warning: n.warning,
                },
            });
        }
    }
    out
}

/// The timeline entry of the evaluation `r`, the `number`th of the revision: each of `rules`'
/// outcome and streak, and what it concluded.
fn evaluation_entry(r: &Record, number: usize, rules: &[&str], deciding: bool) -> Entry {
    let outcomes = rules
        .iter()
        .map(|name| {
            r.verdicts.iter().find(|v| v.rule == *name).map(|v| {
                let streak = r
                    .decision
                    .as_ref()
                    .and_then(|d| d.streaks.get(*name).copied());
                (v.outcome, streak)
            })
        })
        .collect();
    Entry {
        at: r.at,
        kind: EntryKind::Evaluation {
            number,
            phase: r.phase,
            stage: r.stage,
            outcomes,
            what: evaluation_what(r),
            deciding,
        },
    }
}

/// The timeline entry of the write `r`: what it asked for, and whether it went through.
fn action_entry(r: &Record) -> Entry {
    let ok = r.result.as_ref().is_some_and(|w| w.is_ok());
    let result = r
        .result
        .as_ref()
        .map_or("no result recorded", |w| w.as_str());
    Entry {
        at: r.at,
        kind: EntryKind::Action {
            what: if ok {
                format!("{}: written", acts(&r.acts))
            } else {
                format!("{}: not written: {result}", acts(&r.acts))
            },
            ok,
        },
    }
}

fn evaluation_what(r: &Record) -> String {
    let Some(d) = &r.decision else {
        return String::new();
    };
    let mut what = match (&d.action, &d.rule) {
        (Some(a), Some(rule)) => format!("{rule} decides: {a}"),
        _ => d.reason.clone(),
    };
    if !r.acts.is_empty() {
        what.push_str(&format!("; asks for {}", acts(&r.acts)));
    }
    if !r.suppressed.is_empty() {
        what.push_str(&format!("; only recorded: {}", acts(&r.suppressed)));
    }
    what
}
