//! The summary paragraph: what happened to the revision, in the words a person would use in
//! a post-incident review, with the numbers that decided.

use super::evidence::numbers;
use super::hms;
use super::model::{Ending, EntryKind, Report};
use super::select::plural;
use crate::policy::guard::EventReason;
use crate::records::Record;

/// The text with its first letter in upper case.
pub(super) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// The first sentence, for a reader without statistics: which release, what it changed, what
/// became of it and why, in words.
fn lead(report: &Report, evaluations: &[&Record]) -> String {
    let mut subject = format!("The release of {}/{}", report.namespace, report.deployment);
    if let Some(changed) = report.images.phrase() {
        subject.push_str(&format!(" that {changed}"));
    }
    let since = |at: jiff::Timestamp| {
        evaluations
            .first()
            .and_then(|first| at.duration_since(first.at).try_into().ok())
            .filter(|d: &std::time::Duration| !d.is_zero())
            .map_or(String::new(), |d| {
                format!(
                    " ({} after its analysis began)",
                    crate::policy::guard::human(d)
                )
            })
    };
    let worse = |rule: Option<&str>| {
        format!(
            "its new pods did worse than the previous release's on {}",
            rule.unwrap_or("a rule")
        )
    };
    let what = match &report.ending {
        Ending::RolledBack { at, rule, .. } => format!(
            "was rolled back at {} UTC{}: {}",
            hms(*at),
            since(*at),
            worse(rule.as_deref())
        ),
        Ending::Paused { at, rule } => format!(
            "was paused at {} UTC{} for a person to decide: {}",
            hms(*at),
            since(*at),
            worse(rule.as_deref())
        ),
        Ending::Recorded { act, rule, .. } => format!(
            "was left running: {}, and {act} was called for but only recorded",
            worse(rule.as_deref())
        ),
        Ending::ActionFailed { act, rule, .. } => format!(
            "was left running: {}, but {act} could not be written",
            worse(rule.as_deref())
        ),
        Ending::Passed { .. } => {
            "passed its analysis: no rule found its new pods worse than the previous release's for long enough to act".to_string()
        }
        Ending::Inconclusive { .. } => "was not fully judged: some rules never had the data to compare its new pods with the previous release's".to_string(),
        Ending::Held { .. } => {
            "was held paused without an analysis: it is a release rolled back before".to_string()
        }
        Ending::NoAction { .. } => "was being analysed, and nothing had been done".to_string(),
    };
    format!("{subject} {what}.")
}

pub(super) fn summary(
    report: &Report,
    deciding: Option<&Record>,
    evaluations: &[&Record],
) -> String {
    format!(
        "{} {}",
        lead(report, evaluations),
        details(report, deciding, evaluations)
    )
}

/// What the sentences of [`details`] say about the revision and its deciding evaluation.
struct Facts<'a> {
    /// The revision, its ReplicaSet and its Deployment.
    subject: String,
    /// The rule that decided, or "a rule".
    rule_name: &'a str,
    /// How many failing evaluations in a row it took.
    after: String,
    /// The deciding verdict's numbers, after a colon; empty without them.
    evidence: String,
    /// The evaluations, how many and from when to when.
    span: String,
}

/// What happened, with the numbers that decided.
fn details(report: &Report, deciding: Option<&Record>, evaluations: &[&Record]) -> String {
    let facts = Facts {
        subject: subject(report),
        rule_name: report.ending.rule().unwrap_or("a rule"),
        after: after(deciding),
        evidence: deciding_numbers(report, deciding),
        span: span(evaluations),
    };
    let mut s = ending_sentence(report, &facts);
    s.push_str(&also_failing(report));
    if report.ending.rule().is_some() {
        s.push_str(&format!(
            " Analysed in {} mode: {}.",
            report.mode, facts.span
        ));
    }
    if matches!(
        report.ending,
        Ending::RolledBack { .. } | Ending::Paused { .. }
    ) {
        s.push_str(&failed_tries(report));
    }
    s.push_str(&events(report));
    if evaluations.is_empty() {
        s.push_str(" No evaluation of this revision is in the records.");
    }
    s
}

/// The revision, its ReplicaSet and its Deployment, in words.
fn subject(report: &Report) -> String {
    format!(
        "revision {} ({}) of {}/{}",
        report.revision,
        report
            .new_replicaset
            .as_deref()
            .unwrap_or("ReplicaSet unknown"),
        report.namespace,
        report.deployment
    )
}

/// How many failing evaluations in a row the deciding rule took.
fn after(deciding: Option<&Record>) -> String {
    let streak = deciding
        .and_then(|d| d.decision.as_ref())
        .and_then(|d| d.rule.as_ref().and_then(|r| d.streaks.get(r)))
        .copied()
        .unwrap_or(0);
    if streak == 1 {
        "on its first failing evaluation".to_string()
    } else {
        format!(
            "after {} in a row",
            plural(streak as usize, "failing evaluation")
        )
    }
}

/// The deciding verdict's numbers (or its reason) after a colon; empty without a verdict.
fn deciding_numbers(report: &Report, deciding: Option<&Record>) -> String {
    deciding
        .and_then(|d| {
            d.verdicts
                .iter()
                .find(|v| Some(v.rule.as_str()) == report.ending.rule())
        })
        .map(|v| {
            v.evidence
                .as_ref()
                .map_or_else(|| v.reason.clone(), numbers)
        })
        .map_or(String::new(), |n| format!(": {n}"))
}

/// How many evaluations there were, from when to when.
fn span(evaluations: &[&Record]) -> String {
    match (evaluations.first(), evaluations.last()) {
        (Some(a), Some(b)) => format!(
            "{} from {} to {} UTC",
            plural(evaluations.len(), "evaluation"),
            hms(a.at),
            hms(b.at)
        ),
        _ => "no evaluation".to_string(),
    }
}

/// The sentence on how the revision's analysis ended.
fn ending_sentence(report: &Report, facts: &Facts<'_>) -> String {
    let Facts {
        subject,
        rule_name,
        after,
        evidence,
        span,
    } = facts;
    let first = capitalised(subject);
    match &report.ending {
        Ending::RolledBack {
            at,
            to_revision,
            to,
            ..
        } => format!(
            "{first} was rolled back to revision {to_revision} ({to}) at {} UTC by {rule_name} {after}{evidence}.",
            hms(*at)
        ),
        Ending::Paused { at, .. } => format!(
            "{first} was paused at {} UTC by {rule_name} {after}{evidence}. A person decides what comes next: resume it, or roll it back.",
            hms(*at)
        ),
        Ending::Recorded { at, act, why, .. } => format!(
            "{rule_name} called for {act} of {subject} at {} UTC {after}{evidence}; the action was only recorded ({why}).",
            hms(*at)
        ),
        Ending::ActionFailed { at, act, error, .. } => format!(
            "{rule_name} called for {act} of {subject} at {} UTC {after}{evidence}; the write did not go through: {error}.",
            hms(*at)
        ),
        Ending::Passed { resumed } => format!(
            "{first} passed its analysis in {} mode: {span}, and no rule acted{}.",
            report.mode,
            if *resumed {
                "; the gate resumed the rollout"
            } else {
                ""
            }
        ),
        Ending::Inconclusive { why } => format!(
            "{first} was analysed in {} mode ({span}) and no rule acted, but the analysis was inconclusive: {}.",
            report.mode,
            why.as_deref()
                .unwrap_or("some rules never reached a verdict")
                .trim_end_matches('.')
        ),
        Ending::Held { why } => format!(
            "{first} was not analysed: {}.",
            why.as_deref()
                .unwrap_or("it is a revision rolled back before, deployed again, and held paused")
                .trim_end_matches('.')
        ),
        Ending::NoAction { stage } => format!(
            "{first} was analysed in {} mode ({span}) and no rule acted; at the last record its analysis stood at stage {}.",
            report.mode,
            stage.map_or("unknown", |s| s.as_str())
        ),
    }
}

/// The other failing rules that did not decide, with how often they failed; empty without any.
fn also_failing(report: &Report) -> String {
    let others: Vec<String> = report
        .rules
        .iter()
        .filter(|r| r.fail > 0 && !r.decided)
        .map(|r| {
            format!(
                "{} (failed {} of {}, at most {} in a row)",
                r.name,
                r.fail,
                plural(r.pass + r.inconclusive + r.fail, "evaluation"),
                r.longest_streak
            )
        })
        .collect();
    if others.is_empty() {
        return String::new();
    }
    let also = if report.ending.rule().is_some() {
        "Also failing"
    } else {
        "Failing, but never for long enough to act"
    };
    format!(" {also}: {}.", others.join("; "))
}

/// A sentence per earlier try at the action that was not written.
fn failed_tries(report: &Report) -> String {
    let mut s = String::new();
    for e in &report.timeline {
        if let EntryKind::Action { what, ok: false } = &e.kind {
            s.push_str(&format!(
                " An earlier try at {} UTC was not written ({}); the controller read the Deployment again and decided again.",
                hms(e.at),
                what.rsplit_once(": not written: ").map_or(what.as_str(), |(_, why)| why)
            ));
        }
    }
    s
}

/// A sentence per event that tells what became of the action: the rollback confirmed or not
/// taking, or the Deployment changed by someone after the controller acted.
fn events(report: &Report) -> String {
    let mut s = String::new();
    for e in &report.timeline {
        if let EntryKind::Event {
            reason, message, ..
        } = &e.kind
        {
            let what = match reason {
                EventReason::RollbackComplete => "the rollback was confirmed",
                EventReason::RollbackNotTaking => "the rollback was not taking",
                EventReason::AnalysisOverridden => {
                    "someone changed the Deployment after the controller acted"
                }
                _ => continue,
            };
            s.push_str(&format!(" At {} UTC {what}: {message}", hms(e.at)));
            if !message.ends_with('.') {
                s.push('.');
            }
        }
    }
    s
}
