//! The report's model: what happened to one revision, built from its records. Everything a
//! renderer shows is decided here (the ending, the summary paragraph, the timeline, which
//! verdict's evidence each rule shows, the series to plot), so Markdown and HTML say the same.
//! The summary's wording is in [`super::summary`].

use std::collections::{BTreeSet, HashSet};

use jiff::Timestamp;

use super::select::{Selected, plural};
use super::series::{SeriesSet, series_of};
use crate::analysis::judge::{Evidence, Outcome, Verdict};
use crate::analysis::rules::Action;
use crate::policy::guard::{Act, EventReason, Mode, StageName};
use crate::policy::rollout::Phase;
use crate::records::{Kind, Record, Unreadable, WriteResult};

mod timeline;

use timeline::timeline;

/// A post-incident report of one revision of one Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The revision reported on (the new ReplicaSet's `deployment.kubernetes.io/revision`).
    pub revision: u64,
    /// The new ReplicaSet's name, when the records name it.
    pub new_replicaset: Option<String>,
    /// Every old ReplicaSet it was compared with, in order of appearance.
    pub old_replicasets: Vec<String>,
    /// The container images of the new ReplicaSet and the old one compared with.
    pub images: super::images::Images,
    /// The Deployment's mode at the deciding evaluation, else at the last record.
    pub mode: Mode,
    /// The time of the first record shown.
    pub first: Timestamp,
    /// The time of the last record shown.
    pub last: Timestamp,
    /// Records with verdicts.
    pub evaluations: usize,
    /// How the analysis ended, or stood at the last record.
    pub ending: Ending,
    /// What happened, in one paragraph.
    pub summary: String,
    /// Every rule evaluated, those that failed first (the deciding one before the others).
    pub rules: Vec<RuleReport>,
    /// Evaluations, actions and events, in time order.
    pub timeline: Vec<Entry>,
    /// The decision moments: the deciding evaluation and the actions written.
    pub marks: Vec<Mark>,
    /// About the input: unreadable lines, the other revisions in the file.
    pub notes: Vec<String>,
    /// Where the records came from.
    pub source: Source,
}

/// Where the records came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    /// The file, as named on the command line.
    pub name: String,
    /// Records read from it and its rotated files (all Deployments).
    pub records: usize,
    /// The lines that were not records, in the order read.
    pub unreadable: Vec<Unreadable>,
}

impl Source {
    /// The records read from `path` (named by its file name) and its unreadable lines.
    pub fn of(path: &std::path::Path, records: &[Record], unreadable: Vec<Unreadable>) -> Source {
        Source::named(crate::records::file_name(path), records, unreadable)
    }

    /// Records that did not come from a file (stdin, an endpoint), named for people.
    pub fn named(name: String, records: &[Record], unreadable: Vec<Unreadable>) -> Source {
        Source {
            name,
            records: records.len(),
            unreadable,
        }
    }
}

/// How the revision's analysis ended (or stood at the last record).
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// The controller rolled the Deployment back, and the write went through.
    RolledBack {
        /// When the deciding evaluation ran.
        at: Timestamp,
        /// The rule that decided, when the decision names one.
        rule: Option<String>,
        /// The revision it went back to.
        to_revision: u64,
        /// The ReplicaSet it went back to (its name when known, else its hash).
        to: String,
    },
    /// The controller paused the rollout, and the write went through.
    Paused {
        /// When the deciding evaluation ran.
        at: Timestamp,
        /// The rule that decided, when the decision names one.
        rule: Option<String>,
    },
    /// An action decided but only recorded (observe mode, kill switch, rate limit).
    Recorded {
        /// When the deciding evaluation ran.
        at: Timestamp,
        /// The rule that decided, when the decision names one.
        rule: Option<String>,
        /// The actions, in words (`pause`, `rollback to revision 3`).
        act: String,
        /// Why they were not taken: observe mode, or the reasons of that step's Events.
        why: String,
    },
    /// An action decided whose write never went through.
    ActionFailed {
        /// When the deciding evaluation ran.
        at: Timestamp,
        /// The rule that decided, when the decision names one.
        rule: Option<String>,
        /// The actions asked for, in words (`pause`, `rollback to revision 3`).
        act: String,
        /// The write's error, or `no result recorded`.
        error: String,
    },
    /// Analysed to the end with no action (`resumed`: a gate let it through).
    Passed {
        /// Whether a gate resumed the rollout.
        resumed: bool,
    },
    /// Analysed to the end with no action, but some rules never reached a verdict; `why`
    /// names them and their reasons (the `AnalysisInconclusive` note).
    Inconclusive {
        /// The `AnalysisInconclusive` note, when recorded.
        why: Option<String>,
    },
    /// A revision rolled back before, deployed again and held paused (not analysed); `why` is
    /// the `KnownBadRevision` note: which rule rolled it back, when, and how to release it.
    Held {
        /// The `KnownBadRevision` note, when recorded.
        why: Option<String>,
    },
    /// No action, and no end of analysis in the records.
    NoAction {
        /// The latest analysis stage recorded, if any.
        stage: Option<StageName>,
    },
}

impl Ending {
    /// A few words for a title or a badge.
    pub fn headline(&self) -> &'static str {
        match self {
            Ending::RolledBack { .. } => "rolled back",
            Ending::Paused { .. } => "paused",
            Ending::Recorded { .. } => "action recorded, not taken",
            Ending::ActionFailed { .. } => "action failed",
            Ending::Passed { .. } => "passed",
            Ending::Inconclusive { .. } => "inconclusive",
            Ending::Held { .. } => "held: rolled back before",
            Ending::NoAction { .. } => "no action",
        }
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Ending::RolledBack { rule, .. }
            | Ending::Paused { rule, .. }
            | Ending::Recorded { rule, .. }
            | Ending::ActionFailed { rule, .. } => rule.as_deref(),
            Ending::Passed { .. }
            | Ending::Inconclusive { .. }
            | Ending::Held { .. }
            | Ending::NoAction { .. } => None,
        }
    }
}

/// One rule over the revision's evaluations.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleReport {
    /// The rule's name.
    pub name: String,
    /// What a failure asks for.
    pub action: Action,
    /// `error_rate`, `compare`, `absolute` or `logs`, when any verdict had evidence.
    pub check: Option<&'static str>,
    /// Evaluations in which it passed.
    pub pass: usize,
    /// Evaluations in which it could not conclude.
    pub inconclusive: usize,
    /// Evaluations in which it failed.
    pub fail: usize,
    /// The longest streak of failing evaluations the decisions counted.
    pub longest_streak: u32,
    /// This rule decided the action.
    pub decided: bool,
    /// The verdict whose evidence is shown: the deciding evaluation's, else the latest
    /// failing one's (failing rules only).
    pub shown: Option<Shown>,
    /// Its numbers: over the shown (else the latest) evaluation's window when the verdict kept
    /// them, else one point per evaluation.
    pub series: Option<SeriesSet>,
    /// The reason of its latest verdict.
    pub last_reason: String,
}

/// A verdict and the evaluation it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Shown {
    /// When the evaluation ran.
    pub at: Timestamp,
    /// The evaluation's number in the revision (from 1).
    pub evaluation: usize,
    /// Whether it is the evaluation that decided the action.
    pub deciding: bool,
    /// The rule's verdict in it, with its evidence.
    pub verdict: Verdict,
}

impl Shown {
    /// Why this evaluation's evidence is the one shown.
    pub fn label(&self) -> &'static str {
        if self.deciding {
            "the deciding evaluation"
        } else {
            "its latest failure"
        }
    }
}

/// What a rule's cell in the timeline says, under the timeline.
pub(super) const TIMELINE_LEGEND: &str =
    "A rule's cell is its outcome and, in brackets, its failing evaluations in a row after it.";

/// A timeline cell's streak, ` (n)`, when the rule is failing.
pub(super) fn streak_suffix(streak: Option<u32>) -> String {
    match streak {
        Some(s) if s > 0 => format!(" ({s})"),
        _ => String::new(),
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// When it happened: the time of its record.
    pub at: Timestamp,
    /// What happened.
    pub kind: EntryKind,
}

/// What a line of the timeline tells.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryKind {
    /// An evaluation with verdicts.
    Evaluation {
        /// Its number in the revision (from 1).
        number: usize,
        /// The rollout's phase at it.
        phase: Phase,
        /// The analysis stage after it.
        stage: Option<StageName>,
        /// Per rule of [`Report::rules`], in that order: the outcome and the streak after it.
        outcomes: Vec<Option<(Outcome, Option<u32>)>>,
        /// What the evaluation concluded.
        what: String,
        /// Whether it is the evaluation that decided the action.
        deciding: bool,
    },
    /// A write to the Deployment.
    Action {
        /// What it asked for and whether it was written (`pause: written`).
        what: String,
        /// Whether the write went through.
        ok: bool,
    },
    /// An Event published (each reason and message once).
    Event {
        /// The Event's reason.
        reason: EventReason,
        /// The Event's message.
        message: String,
        /// Whether it is a `Warning` Event rather than a `Normal` one.
        warning: bool,
    },
}

/// A decision moment to mark on the plots.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// When it happened.
    pub at: Timestamp,
    /// What happened then (`rollback decided and written`).
    pub label: String,
}

/// The evaluation that decided the revision's action, and how it ended.
struct Decided<'a> {
    record: &'a Record,
    ending: Ending,
}

/// Builds the report of the selected records.
pub(super) fn build(selected: &Selected<'_>, source: Source) -> Report {
    let records = &selected.records;
    let evaluations: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| r.kind == Kind::Evaluation && !r.verdicts.is_empty())
        .collect();
    let decided = decided(records);
    let deciding = decided
        .as_ref()
        .map(|d| d.record.verdicts_source(records.iter().copied()));
    let rules = rules(&evaluations, deciding);
    let rule_order: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let timeline = timeline(records, &selected.aftermath, &rule_order, deciding);
    let marks = marks(records, decided.as_ref());
    let ending = match &decided {
        Some(d) => d.ending.clone(),
        None => undecided_ending(records),
    };
    let old_replicasets = old_replicasets(records);
    let all = || records.iter().chain(&selected.aftermath);
    let first = all().map(|r| r.at).min().unwrap_or_default();
    let last = all().map(|r| r.at).max().unwrap_or_default();
    let mode = decided
        .as_ref()
        .map(|d| d.record.mode)
        .or(records.last().map(|r| r.mode))
        .unwrap_or_default();
    let new_replicaset = records.iter().find_map(|r| r.new_replicaset.clone());
    let images = super::images::Images::of(
        records.iter().copied(),
        new_replicaset.as_deref(),
        &old_replicasets,
    );
    let mut report = Report {
        namespace: selected.namespace.clone(),
        deployment: selected.deployment.clone(),
        revision: selected.revision,
        new_replicaset,
        old_replicasets,
        images,
        mode,
        first,
        last,
        evaluations: evaluations.len(),
        ending,
        summary: String::new(),
        rules,
        timeline,
        marks,
        notes: notes(selected, &source),
        source,
    };
    report.summary = super::summary::summary(&report, deciding, &evaluations);
    report
}

/// How the analysis ended when no evaluation decided an action: by the latest stage recorded.
fn undecided_ending(records: &[&Record]) -> Ending {
    let note = |reason: EventReason| {
        records
            .iter()
            .rev()
            .flat_map(|r| &r.notes)
            .find(|n| n.reason == reason)
            .map(|n| n.message.clone())
    };
    match records.iter().rev().find_map(|r| r.stage) {
        Some(StageName::Passed) => Ending::Passed {
            resumed: records
                .iter()
                .any(|r| r.acts.iter().any(|a| matches!(a, Act::Resume))),
        },
        Some(StageName::Inconclusive) => Ending::Inconclusive {
            why: note(EventReason::AnalysisInconclusive),
        },
        Some(StageName::Held) => Ending::Held {
            why: note(EventReason::KnownBadRevision),
        },
        stage => Ending::NoAction { stage },
    }
}

/// Every old ReplicaSet the records compared with, once each, in order of appearance.
fn old_replicasets(records: &[&Record]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records {
        for o in &r.old_replicasets {
            if !out.contains(o) {
                out.push(o.clone());
            }
        }
    }
    out
}

/// The evaluation whose decision acted: the first whose write went through, else the latest
/// whose write failed, else the latest that only recorded its action.
fn decided<'a>(records: &[&'a Record]) -> Option<Decided<'a>> {
    let acting: Vec<&Record> = records
        .iter()
        .copied()
        .filter(decides_to_act)
        .filter(|r| !r.acts.is_empty())
        .collect();
    if let Some(r) = acting
        .iter()
        .find(|r| write_result(records, r).is_some_and(|w| w.is_ok()))
        .copied()
    {
        return Some(Decided {
            record: r,
            ending: written(r),
        });
    }
    if let Some(r) = acting.last().copied() {
        return Some(Decided {
            record: r,
            ending: Ending::ActionFailed {
                at: r.at,
                rule: decision_rule(r),
                act: acts(&r.acts),
                error: write_result(records, r)
                    .map_or_else(|| "no result recorded".into(), String::from),
            },
        });
    }
    only_recorded(records)
}

/// Whether `r` is an evaluation that decided to pause or roll back.
fn decides_to_act(r: &&Record) -> bool {
    r.kind == Kind::Evaluation
        && r.decision
            .as_ref()
            .is_some_and(|d| matches!(d.action, Some(Action::Pause | Action::Rollback)))
}

/// The result of the write that followed the evaluation `r`, if one is recorded.
fn write_result(records: &[&Record], r: &Record) -> Option<WriteResult> {
    records
        .iter()
        .find(|a| a.kind == Kind::Action && a.at == r.at && a.acts == r.acts)
        .and_then(|a| a.result.clone())
}

/// The rule whose failures decided `r`'s action.
fn decision_rule(r: &Record) -> Option<String> {
    r.decision.as_ref().and_then(|d| d.rule.clone())
}

/// The ending of the evaluation `r`, whose write went through: a rollback, else a pause.
fn written(r: &Record) -> Ending {
    match r.acts.iter().find(|a| !matches!(a, Act::Resume)) {
        Some(Act::Rollback {
            to_hash,
            to_revision,
        }) => Ending::RolledBack {
            at: r.at,
            rule: decision_rule(r),
            to_revision: *to_revision,
            to: r
                .old_replicasets
                .iter()
                .find(|o| o.ends_with(&format!("-{to_hash}")))
                .cloned()
                .unwrap_or_else(|| format!("pod-template-hash {to_hash}")),
        },
        _ => Ending::Paused {
            at: r.at,
            rule: decision_rule(r),
        },
    }
}

/// The latest deciding evaluation whose action was only recorded, with why it was not taken.
fn only_recorded<'a>(records: &[&'a Record]) -> Option<Decided<'a>> {
    let r = records
        .iter()
        .copied()
        .filter(decides_to_act)
        .rfind(|r| !r.suppressed.is_empty())?;
    // The Events of that step say why (older files put them on the evaluation, newer ones on
    // the record of the write that follows it).
    let reasons: Vec<&str> = records
        .iter()
        .filter(|x| x.at == r.at)
        .flat_map(|x| &x.notes)
        .map(|n| n.reason.as_str())
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    let why = if r.mode == Mode::Observe {
        "observe mode".to_string()
    } else if reasons.is_empty() {
        "the kill switch or the rollback rate limit".to_string()
    } else {
        reasons.join(", ")
    };
    Some(Decided {
        record: r,
        ending: Ending::Recorded {
            at: r.at,
            rule: decision_rule(r),
            act: acts(&r.suppressed),
            why,
        },
    })
}

fn acts(acts: &[Act]) -> String {
    acts.iter()
        .map(|a| match a {
            Act::Rollback { to_revision, .. } => format!("rollback to revision {to_revision}"),
            a => a.name().to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn rules(evaluations: &[&Record], deciding: Option<&Record>) -> Vec<RuleReport> {
    let mut out: Vec<RuleReport> = Vec::new();
    for (i, r) in evaluations.iter().enumerate() {
        let is_deciding = deciding.is_some_and(|d| std::ptr::eq(d, *r));
        for v in &r.verdicts {
            let rule = match out.iter_mut().position(|x| x.name == v.rule) {
                Some(p) => &mut out[p],
                None => {
                    out.push(RuleReport {
                        name: v.rule.clone(),
                        action: v.action,
                        check: None,
                        pass: 0,
                        inconclusive: 0,
                        fail: 0,
                        longest_streak: 0,
                        decided: false,
                        shown: None,
                        series: None,
                        last_reason: String::new(),
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            match v.outcome {
                Outcome::Pass => rule.pass += 1,
                Outcome::Inconclusive => rule.inconclusive += 1,
                Outcome::Fail => rule.fail += 1,
            }
            // A failure the judge let only warn is reported with the rule's own action.
            if v.action > rule.action {
                rule.action = v.action;
            }
            if rule.check.is_none() {
                rule.check = v.evidence.as_ref().map(Evidence::kind);
            }
            if let Some(s) = r.decision.as_ref().and_then(|d| d.streaks.get(&v.rule)) {
                rule.longest_streak = rule.longest_streak.max(*s);
            }
            rule.last_reason = v.reason.clone();
            if v.outcome == Outcome::Fail && rule.shown.as_ref().is_none_or(|s| !s.deciding) {
                rule.shown = Some(Shown {
                    at: r.at,
                    evaluation: i + 1,
                    deciding: is_deciding,
                    verdict: v.clone(),
                });
            }
        }
    }
    let decider = deciding
        .and_then(|d| d.decision.as_ref())
        .and_then(|d| d.rule.clone());
    for rule in &mut out {
        rule.decided = decider.as_deref() == Some(rule.name.as_str());
        rule.series = series_of(&rule.name, evaluations, rule.shown.as_ref());
    }
    // The deciding rule first, then the other failing ones, then the rest; stable otherwise.
    out.sort_by_key(|r| (!r.decided, r.fail == 0));
    out
}

fn marks(records: &[&Record], decided: Option<&Decided<'_>>) -> Vec<Mark> {
    let mut out: Vec<Mark> = Vec::new();
    let mut add = |at: Timestamp, label: String| match out.iter_mut().find(|m| m.at == at) {
        // The controller writes in the step that decides: one mark says both.
        Some(m) => match (
            m.label.strip_suffix(" decided"),
            label.strip_suffix(" written"),
        ) {
            (Some(a), Some(b)) if a == b => m.label.push_str(" and written"),
            _ => {
                m.label.push_str(", ");
                m.label.push_str(&label);
            }
        },
        None => out.push(Mark { at, label }),
    };
    if let Some(d) = decided {
        let act = d
            .record
            .decision
            .as_ref()
            .and_then(|x| x.action)
            .map_or("action".to_string(), |a| a.to_string());
        let verb = if matches!(d.ending, Ending::Recorded { .. }) {
            "recorded"
        } else {
            "decided"
        };
        add(d.record.at, format!("{act} {verb}"));
    }
    for r in records
        .iter()
        .filter(|r| r.kind == Kind::Action && !r.acts.is_empty())
    {
        let names: Vec<&str> = r.acts.iter().map(|a| a.name()).collect();
        let status = if r.result.as_ref().is_some_and(|w| w.is_ok()) {
            "written"
        } else {
            "not written"
        };
        add(r.at, format!("{} {status}", names.join("+")));
    }
    out.sort_by_key(|m| m.at);
    out
}

fn notes(selected: &Selected<'_>, source: &Source) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(unreadable_note(source));
    if !selected.others.is_empty() {
        let list: Vec<String> = selected
            .others
            .iter()
            .map(|r| {
                let acted = if r.actions.is_empty() {
                    String::new()
                } else {
                    format!("; {}", r.actions.join(", "))
                };
                format!(
                    "{} ({}{acted})",
                    r.revision,
                    plural(r.evaluations, "evaluation")
                )
            })
            .collect();
        out.push(format!(
            "The file also holds revision {} of this Deployment (see `--revision`).",
            list.join(", ")
        ));
    }
    out
}

/// The note on the lines that were not records, if any: their numbers, with their files' names
/// when some are in rotated files.
fn unreadable_note(source: &Source) -> Option<String> {
    let all = &source.unreadable;
    if all.is_empty() {
        return None;
    }
    let shown = &all[..all.len().min(10)];
    let numbers = |lines: &[Unreadable]| {
        let numbers: Vec<String> = lines.iter().map(|u| u.line.to_string()).collect();
        numbers.join(", ")
    };
    let (of, lines) = if all.iter().all(|u| u.file == source.name) {
        (source.name.clone(), format!("line {}", numbers(shown)))
    } else {
        let by_file: Vec<String> = shown
            .chunk_by(|a, b| a.file == b.file)
            .map(|same| format!("{} line {}", same[0].file, numbers(same)))
            .collect();
        (
            format!("{} and its rotated files", source.name),
            by_file.join("; "),
        )
    };
    let more = if all.len() > shown.len() { ", …" } else { "" };
    Some(format!(
        "Skipped {} of {of} that could not be read as decision records of this version ({lines}{more}).",
        plural(all.len(), "line"),
    ))
}

impl Report {
    /// The document's title: which revision of which Deployment, and how it ended.
    pub fn title(&self) -> String {
        format!(
            "Rollout report: {}/{} revision {}: {}",
            self.namespace,
            self.deployment,
            self.revision,
            self.ending.headline()
        )
    }

    /// The rules that failed at least once, the deciding one first.
    pub fn failing(&self) -> impl Iterator<Item = &RuleReport> {
        self.rules.iter().filter(|x| x.fail > 0)
    }

    /// The rules that never failed.
    pub fn quiet(&self) -> impl Iterator<Item = &RuleReport> {
        self.rules.iter().filter(|x| x.fail == 0)
    }

    /// The key facts, as (label, value) pairs, for the table under the summary.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (
                "Deployment",
                format!("{}/{}", self.namespace, self.deployment),
            ),
            (
                "New ReplicaSet",
                format!(
                    "{} (revision {})",
                    self.new_replicaset.as_deref().unwrap_or("unknown"),
                    self.revision
                ),
            ),
            (
                "Compared with",
                if self.old_replicasets.is_empty() {
                    "no old ReplicaSet with pods".to_string()
                } else {
                    self.old_replicasets.join(", ")
                },
            ),
            ("Mode", self.mode.to_string()),
            (
                "Records",
                format!(
                    "{} to {}, {}",
                    super::datetime(self.first),
                    super::datetime(self.last),
                    plural(self.evaluations, "evaluation")
                ),
            ),
            ("Outcome", self.ending.headline().to_string()),
        ];
        let images = [
            ("New images", &self.images.new),
            ("Old images", &self.images.old),
        ];
        for (at, (label, side)) in images.into_iter().enumerate() {
            if let Some(listed) = super::images::Images::listed(side) {
                out.insert(3 + at, (label, listed));
            }
        }
        if let Some(rule) = self.ending.rule() {
            out.push(("Decided by", rule.to_string()));
        }
        out
    }
}

impl RuleReport {
    /// The rule in a sentence: its check, action and record over the evaluations.
    pub fn line(&self) -> String {
        let evaluations = self.pass + self.inconclusive + self.fail;
        let mut s = format!(
            "{} check, action {}: failed {} of {} (passed {}, inconclusive {}), at most {} in a row as the decisions counted them.",
            self.check.unwrap_or("unknown"),
            self.action,
            self.fail,
            plural(evaluations, "evaluation"),
            self.pass,
            self.inconclusive,
            self.longest_streak
        );
        if self.decided {
            s.push_str(" It decided the action.");
        }
        s
    }
}
