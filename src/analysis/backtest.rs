//! `backtest`: replay the live controller's evaluations of one past rollout, step by step, and
//! report the first moment it would have acted.
//!
//! Owns the replay loop and its report (the JSON shape is a stable contract, see the README).
//! Each step evaluates at its own time through [`crate::analysis::evaluate`], so it sees only the data
//! that existed then, and folds the verdicts into the same [`Streaks`] the controller keeps.
//! It stops at the first pause or rollback, as the controller would, and past its end it goes on
//! as the controller goes on past the bake's end while evidence is under way
//! ([`Decision::extension_after`]), up to the moment the data ends. No I/O beyond the metric
//! source it is given; printing is the caller's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::analysis::decision::{Decision, Streaks, overall};
use crate::analysis::duration::PromDuration;
use crate::analysis::evaluate::{Target, evaluate};
use crate::analysis::judge::{Outcome, Verdict};
use crate::analysis::rules::{Action, RuleSet};
use crate::analysis::source::MetricSource;

/// What to replay.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The rollout to replay: its Deployment and the ReplicaSets on each side.
    pub target: Target,
    /// The first evaluation time.
    pub from: Timestamp,
    /// The last evaluation time (included when the steps land on it).
    pub to: Timestamp,
    /// The time between two evaluations.
    pub step: PromDuration,
    /// Past `to`, the replay goes on as the controller goes on past the bake's end while a
    /// streak is under way or a pass is not settled ([`Decision::extension_after`]), but not
    /// past this moment (where the data ends: now, for a replay of Prometheus' data). `None`:
    /// it ends at `to`.
    pub extend_until: Option<Timestamp>,
    /// When the old ReplicaSets had no replica left (the rollout's completion), if known: from
    /// then on they are `departed`, as the controller moves them once the Deployment is
    /// complete. `None`: they stay `old_replicasets` throughout (the judges then see from the
    /// data that their pods stopped).
    pub departed_at: Option<Timestamp>,
}

/// A replay that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// `--from` is not before `--to`.
    #[error("--from ({from}) must be before --to ({to})")]
    EmptyRange {
        /// The replay's `--from`.
        from: Timestamp,
        /// The replay's `--to`.
        to: Timestamp,
    },
    /// `--step` was zero.
    #[error("--step must be longer than 0s")]
    ZeroStep,
    /// The range at this step would take more than [`MAX_STEPS`] evaluations.
    #[error("{steps} steps is too many (at most {max}): use a longer --step or a shorter range")]
    TooManySteps {
        /// The evaluations the range would take.
        steps: u64,
        /// The most accepted ([`MAX_STEPS`]).
        max: u64,
    },
}

/// The longest replay accepted: a day at 10 s, or a month at 10 min.
pub const MAX_STEPS: u64 = 10_000;

/// The final answer of a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalDecision {
    /// A rule called for a rollback.
    Rollback,
    /// A rule called for a pause (and none for a rollback).
    Pause,
    /// No action, and every rule reached a conclusive verdict at least once.
    Pass,
    /// No action, and some rule never had the data for a conclusion.
    Inconclusive,
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The evaluation time of this step.
    pub at: Timestamp,
    /// Fail if any rule failed, else inconclusive if any was, else pass.
    pub outcome: Outcome,
    /// The action this step calls for, if any (`warn` included).
    pub action: Option<Action>,
    /// Why the step calls for its action, or for none, in one line.
    pub reason: String,
    /// Every rule's verdict at this step.
    pub verdicts: Vec<Verdict>,
}

/// The report, printed as one JSON object by `--output json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What the replay concluded.
    pub decision: FinalDecision,
    /// The evaluation time of the step that paused or rolled back; `None` when none did.
    pub decided_at: Option<Timestamp>,
    /// The rule that decided the pause or rollback; `None` when none did.
    pub rule: Option<String>,
    /// Every step evaluated, oldest first, up to and including the one that acted.
    pub timeline: Vec<Step>,
    /// Rules a replay cannot evaluate, and why; left out of the decision rather than making
    /// it inconclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_replayable: Vec<NotReplayable>,
    /// The evaluations made past `to`, as the controller's past the bake's end; absent when
    /// nothing was under way at `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
    /// What was still under way when a replay ended without acting (streaks failing toward
    /// their action, passes not settled), for people; empty when nothing was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub left_open: String,
    /// The rules that never reached a verdict in a replay that ended without acting, each with
    /// the reason it gave at its latest evaluation: what made the replay `inconclusive`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unjudged: BTreeMap<String, String>,
}

/// A replay that went on past its end, as the controller goes on past the bake's end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    /// What was under way at the replay's end, in one line.
    pub because: String,
    /// The evaluations made past the end.
    pub evaluations: u32,
    /// It stopped where the data ends, before the controller would have: a later replay may
    /// decide otherwise.
    pub cut_short: bool,
}

/// A rule left out of a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotReplayable {
    /// The rule's name.
    pub rule: String,
    /// Why it cannot be replayed, in one line.
    pub why: String,
}

/// Why a rule cannot be replayed, if it cannot: `logs` rules read pod logs as they are printed,
/// and a past rollout's pods and their logs are gone (no log store is read).
fn not_replayable(rule: &crate::analysis::rules::Rule) -> Option<NotReplayable> {
    matches!(rule.check, crate::analysis::rules::Check::Logs(_)).then(|| NotReplayable {
        rule: rule.name.clone(),
        why: "a logs rule reads pod logs as they are printed; a past rollout's logs cannot be read back".into(),
    })
}

impl Replay {
    /// What the controller would have judged at `at`: the old ReplicaSets `departed` from
    /// [`Replay::departed_at`] on.
    pub fn target_at(&self, at: Timestamp) -> Target {
        match self.departed_at {
            Some(gone) if at >= gone => {
                let mut t = self.target.clone();
                let old = std::mem::take(&mut t.old_replicasets);
                t.departed.extend(old);
                t
            }
            _ => self.target.clone(),
        }
    }

    /// The evaluation times: `from`, `from + step`, … up to and including `to`.
    pub fn times(&self) -> Result<Vec<Timestamp>, ReplayError> {
        if self.step.is_zero() {
            return Err(ReplayError::ZeroStep);
        }
        if self.from >= self.to {
            return Err(ReplayError::EmptyRange {
                from: self.from,
                to: self.to,
            });
        }
        let span = self.to.duration_since(self.from).as_millis() as u64;
        let step = self.step.as_std().as_millis() as u64;
        let steps = span / step + 1;
        if steps > MAX_STEPS {
            return Err(ReplayError::TooManySteps {
                steps,
                max: MAX_STEPS,
            });
        }
        Ok((0..steps)
            .map(|i| self.from + SignedDuration::from_millis((i * step) as i64))
            .collect())
    }
}

/// Replays the rollout. `progress(done, total)` is called after every step up to `to` (not
/// for the extension's, whose number is not known in advance).
pub async fn replay<S: MetricSource>(
    rules: &RuleSet,
    replay: &Replay,
    source: &S,
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, ReplayError> {
    let times = replay.times()?;
    let left_out: Vec<NotReplayable> = rules.rules.iter().filter_map(not_replayable).collect();
    let replayable = RuleSet {
        rules: rules
            .rules
            .iter()
            .filter(|r| !left_out.iter().any(|n| n.rule == r.name))
            .cloned()
            .collect(),
        ..rules.clone()
    };
    let rules = &replayable;
    let mut run = Run {
        streaks: Streaks::default(),
        timeline: Vec::with_capacity(times.len()),
        conclusive: BTreeSet::new(),
    };
    let every = replay.step.as_std();
    let total = times.len();
    let mut extension: Option<Extension> = None;
    // The evaluations the extension has left, once it began.
    let mut left: Option<u32> = None;
    let mut at = times[0];
    loop {
        let decision = run.step(rules, &replay.target_at(at), at, source).await;
        if run.timeline.len() <= total {
            progress(run.timeline.len(), total);
        }
        if matches!(decision.action, Some(Action::Pause | Action::Rollback)) {
            return Ok(run.acted(decision, left_out, extension));
        }
        if let Some(next) = times.get(run.timeline.len()) {
            at = *next;
            continue;
        }
        // Past the end: on, as the controller past the bake's end, while evidence is under way.
        let Some(until) = replay.extend_until else {
            return Ok(run.ended(rules, &decision, left_out, extension));
        };
        let Some(n) = decision.extension_after(left, every) else {
            return Ok(run.ended(rules, &decision, left_out, extension));
        };
        let ext = extension.get_or_insert_with(|| Extension {
            because: decision.under_way(),
            evaluations: 0,
            cut_short: false,
        });
        // A step past the last representable moment is past the data's end too.
        let next = SignedDuration::try_from(every)
            .ok()
            .and_then(|step| at.checked_add(step).ok())
            .filter(|next| *next <= until);
        let Some(next) = next else {
            ext.cut_short = true;
            return Ok(run.ended(rules, &decision, left_out, extension));
        };
        ext.evaluations += 1;
        left = Some(n);
        at = next;
    }
}

/// A replay under way: the streaks, the timeline so far, and the rules that reached a verdict.
struct Run {
    streaks: Streaks,
    timeline: Vec<Step>,
    conclusive: BTreeSet<String>,
}

impl Run {
    /// Evaluates at `at` and folds the verdicts in.
    async fn step<S: MetricSource>(
        &mut self,
        rules: &RuleSet,
        target: &Target,
        at: Timestamp,
        source: &S,
    ) -> Decision {
        let evaluation = evaluate(rules, target, at, source).await;
        let decision = self.streaks.update(&evaluation.verdicts);
        for v in &evaluation.verdicts {
            if v.outcome != Outcome::Inconclusive {
                self.conclusive.insert(v.rule.clone());
            }
        }
        self.timeline.push(Step {
            at,
            outcome: overall(&evaluation.verdicts),
            action: decision.action,
            reason: decision.reason.clone(),
            verdicts: evaluation.verdicts,
        });
        decision
    }

    /// The report of a replay whose last step paused or rolled back.
    fn acted(
        self,
        decision: Decision,
        not_replayable: Vec<NotReplayable>,
        extension: Option<Extension>,
    ) -> Report {
        Report {
            decision: match decision.action {
                Some(Action::Rollback) => FinalDecision::Rollback,
                _ => FinalDecision::Pause,
            },
            decided_at: self.timeline.last().map(|s| s.at),
            rule: decision.rule,
            timeline: self.timeline,
            not_replayable,
            extension,
            left_open: String::new(),
            unjudged: BTreeMap::new(),
        }
    }

    /// The report of a replay that ended without acting, `last` its last decision.
    fn ended(
        self,
        rules: &RuleSet,
        last: &Decision,
        not_replayable: Vec<NotReplayable>,
        extension: Option<Extension>,
    ) -> Report {
        let all_conclusive = !rules.rules.is_empty()
            && rules
                .rules
                .iter()
                .all(|r| self.conclusive.contains(&r.name));
        let left_open = last.left_open("when the replay ended");
        let unjudged = self.unjudged(rules);
        Report {
            decision: if all_conclusive {
                FinalDecision::Pass
            } else {
                FinalDecision::Inconclusive
            },
            decided_at: None,
            rule: None,
            timeline: self.timeline,
            not_replayable,
            extension,
            left_open,
            unjudged,
        }
    }

    /// The rules that never reached a verdict, with their latest reason.
    fn unjudged(&self, rules: &RuleSet) -> BTreeMap<String, String> {
        rules
            .rules
            .iter()
            .filter(|r| !self.conclusive.contains(&r.name))
            .map(|r| {
                let latest = self
                    .timeline
                    .iter()
                    .rev()
                    .find_map(|s| s.verdicts.iter().find(|v| v.rule == r.name))
                    .map_or("never evaluated".to_string(), |v| v.reason.clone());
                (r.name.clone(), latest)
            })
            .collect()
    }
}

impl Report {
    /// The readable timeline: one line per step with each rule's outcome, the reasons of rules
    /// that failed or could not conclude, and the decision.
    pub fn to_text(&self, replay: &Replay, rules: &RuleSet) -> String {
        let t = &replay.target;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "backtest {}/{}: new {} vs old {}, {} to {} every {}, {} rule(s)",
            t.namespace,
            t.deployment,
            t.new_replicaset,
            if t.old_replicasets.is_empty() {
                "(none)".to_string()
            } else {
                t.old_replicasets.join(", ")
            },
            replay.from,
            replay.to,
            replay.step,
            rules.rules.len()
        );
        let width = rules.rules.iter().map(|r| r.name.len()).max().unwrap_or(4);
        let mut last_detail: Vec<String> = Vec::new();
        for step in &self.timeline {
            let marks: Vec<String> = step
                .verdicts
                .iter()
                .map(|v| {
                    let m = match v.outcome {
                        Outcome::Pass => "ok",
                        Outcome::Fail => "FAIL",
                        Outcome::Inconclusive => "?",
                    };
                    format!("{}={m}", v.rule)
                })
                .collect();
            let action = step.action.map_or(String::new(), |a| {
                format!("  → {}", a.to_string().to_uppercase())
            });
            let _ = writeln!(out, "\n{}  {}{}", step.at, marks.join("  "), action);
            // Reasons for anything not passing, printed when they change, to keep long replays short.
            let detail: Vec<String> = step
                .verdicts
                .iter()
                .filter(|v| v.outcome != Outcome::Pass)
                .map(|v| format!("    {:width$}  {}", v.rule, v.reason))
                .collect();
            if detail != last_detail {
                for d in &detail {
                    let _ = writeln!(out, "{d}");
                }
                last_detail = detail;
            }
        }
        let _ = writeln!(out);
        for n in &self.not_replayable {
            let _ = writeln!(out, "not replayed: {} ({})", n.rule, n.why);
        }
        if let Some(e) = &self.extension {
            let _ = writeln!(
                out,
                "went on for {} evaluation(s) past {} while {} (as the controller goes on past the bake's end, when {} is the bake's end){}",
                e.evaluations,
                replay.to,
                e.because,
                replay.to,
                if e.cut_short {
                    "; stopped where the data ends (now), before the controller would have: a later replay may decide otherwise"
                } else {
                    ""
                }
            );
        }
        match (&self.decided_at, &self.rule) {
            (Some(at), Some(rule)) => {
                let reason = self
                    .timeline
                    .last()
                    .map(|s| s.reason.as_str())
                    .unwrap_or("");
                let _ = writeln!(
                    out,
                    "decision: {} at {at} (rule {rule})\n  {reason}",
                    decision_word(self.decision)
                );
            }
            _ => {
                let open = if self.left_open.is_empty() {
                    String::new()
                } else {
                    format!("\n  {}", self.left_open)
                };
                let _ = writeln!(
                    out,
                    "decision: {} (no action in {} evaluations){open}",
                    decision_word(self.decision),
                    self.timeline.len()
                );
                for (rule, why) in &self.unjudged {
                    let _ = writeln!(out, "  never judged: {rule}: {why}");
                }
            }
        }
        out
    }
}

fn decision_word(d: FinalDecision) -> &'static str {
    match d {
        FinalDecision::Rollback => "rollback",
        FinalDecision::Pause => "pause",
        FinalDecision::Pass => "pass",
        FinalDecision::Inconclusive => "inconclusive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(from: &str, to: &str, step: u64) -> Replay {
        Replay {
            target: Target {
                namespace: "ns".into(),
                deployment: "d".into(),
                new_replicaset: "d-2".into(),
                old_replicasets: vec!["d-1".into()],
                departed: Vec::new(),
            },
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            step: PromDuration::from_secs(step),
            extend_until: None,
            departed_at: None,
        }
    }

    use crate::analysis::source::{Series, SourceError};

    /// A release ten times worse than the old one until `until`; after it, Prometheus is down.
    struct WorseUntil(Timestamp);

    impl MetricSource for WorseUntil {
        async fn instant(&self, _: &str, _: Timestamp) -> Result<Vec<Series>, SourceError> {
            Ok(Vec::new())
        }

        async fn range(
            &self,
            query: &str,
            start: Timestamp,
            end: Timestamp,
            step: PromDuration,
        ) -> Result<Vec<Series>, SourceError> {
            if end > self.0 {
                return Err(SourceError::Unreachable("down".into()));
            }
            let new = query.contains("d-2-");
            let per_interval = match (new, query.starts_with("increase(e")) {
                (true, true) => 20.0,
                (false, true) => 2.0,
                (_, false) => 1000.0,
            };
            let (from, to) = (start.as_second() as f64, end.as_second() as f64);
            let every = step.as_std().as_secs_f64();
            let points = (0..)
                .map(|i| from + every * f64::from(i))
                .take_while(|t| *t <= to)
                .map(|t| (t, per_interval));
            let pod = if new { "d-2-abcde" } else { "d-1-abcde" };
            Ok(vec![Series::for_pod(pod, points)])
        }
    }

    fn failing_rules() -> RuleSet {
        let text = "version: 1\nrules:\n  - name: errs\n    action: rollback\n    consecutive: 3\n    check:\n      error_rate:\n        errors: 'increase(e{pod=~\"{{ pods }}\"}[{{ interval }}])'\n        requests: 'increase(r{pod=~\"{{ pods }}\"}[{{ interval }}])'\n        test: sequential\n";
        RuleSet::from_sources(&[(std::path::PathBuf::from("t.yaml"), text.to_string())]).unwrap()
    }

    /// Ends after two failing looks of a rule that acts on three: its streak is under way.
    fn under_way(until: Timestamp) -> (Replay, WorseUntil) {
        let mut r = replay("2026-11-20T10:00:00Z", "2026-11-20T10:00:30Z", 30);
        r.extend_until = Some("2026-11-20T12:00:00Z".parse().unwrap());
        (r, WorseUntil(until))
    }

    #[tokio::test]
    async fn an_extension_lasts_the_controllers_count_and_says_what_it_left_open() {
        // Prometheus down from the first look past the end: the streak neither grows nor
        // breaks, and the extension runs its count (the rule's consecutive, 3), no more.
        let (r, source) = under_way("2026-11-20T10:00:30Z".parse().unwrap());
        let report = super::replay(&failing_rules(), &r, &source, |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.decision, FinalDecision::Pass, "{report:?}");
        assert_eq!(report.timeline.len(), 2 + 3);
        let ext = report.extension.as_ref().unwrap();
        assert_eq!((ext.evaluations, ext.cut_short), (3, false));
        assert!(ext.because.contains("errs (2/3)"), "{}", ext.because);
        assert_eq!(
            report.left_open,
            "still failing when the replay ended: errs (2/3)"
        );
        // Data one look past the end: the streak completes there, as the controller's would.
        let (r, source) = under_way("2026-11-20T10:01:00Z".parse().unwrap());
        let report = super::replay(&failing_rules(), &r, &source, |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.decision, FinalDecision::Rollback, "{report:?}");
        assert_eq!(
            report.decided_at,
            Some("2026-11-20T10:01:00Z".parse().unwrap())
        );
        assert_eq!(report.extension.as_ref().map(|e| e.evaluations), Some(1));
        // Without an extension: it ends at its end, and says what was left open.
        let (mut r, source) = under_way("2026-11-20T10:01:00Z".parse().unwrap());
        r.extend_until = None;
        let report = super::replay(&failing_rules(), &r, &source, |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.timeline.len(), 2);
        assert_eq!(report.extension, None);
        assert_eq!(
            report.left_open,
            "still failing when the replay ended: errs (2/3)"
        );
    }

    #[tokio::test]
    async fn an_extension_near_the_end_of_time_ends_where_the_data_ends() {
        let mut r = replay("2026-11-20T10:00:00Z", "2026-11-20T10:00:30Z", 30);
        r.from = Timestamp::MAX - SignedDuration::from_secs(60);
        r.to = Timestamp::MAX - SignedDuration::from_secs(30);
        r.extend_until = Some(Timestamp::MAX);
        // Down past the end, so the streak stays open until the calendar runs out.
        let source = WorseUntil(r.to);
        let report = super::replay(&failing_rules(), &r, &source, |_, _| {})
            .await
            .unwrap();
        let ext = report.extension.as_ref().unwrap();
        assert!(ext.cut_short, "{report:?}");
    }

    #[tokio::test]
    async fn a_replay_that_judged_nothing_names_the_rules_and_why() {
        // Prometheus down from the start: inconclusive, with the rule and its latest reason.
        let r = replay("2026-11-20T10:00:00Z", "2026-11-20T10:01:00Z", 30);
        let source = WorseUntil("2026-11-20T09:00:00Z".parse().unwrap());
        let report = super::replay(&failing_rules(), &r, &source, |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.decision, FinalDecision::Inconclusive, "{report:?}");
        let why = &report.unjudged["errs"];
        assert!(why.contains("down"), "{why}");
        let text = report.to_text(&r, &failing_rules());
        assert!(text.contains("never judged: errs: "), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["unjudged"]["errs"].is_string(), "{json}");
        // A replay that judged every rule lists none.
        let (r, source) = under_way("2026-11-20T10:00:30Z".parse().unwrap());
        let report = super::replay(&failing_rules(), &r, &source, |_, _| {})
            .await
            .unwrap();
        assert!(report.unjudged.is_empty(), "{report:?}");
    }

    #[test]
    fn steps_include_both_ends() {
        let r = replay("2026-11-20T10:00:00Z", "2026-11-20T10:02:00Z", 30);
        let times = r.times().unwrap();
        assert_eq!(times.len(), 5);
        assert_eq!(times[4].to_string(), "2026-11-20T10:02:00Z");
        let r = replay("2026-11-20T10:00:00Z", "2026-11-20T10:01:59Z", 30);
        assert_eq!(r.times().unwrap().len(), 4);
    }

    #[test]
    fn refuses_empty_or_huge_replays() {
        let r = replay("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z", 30);
        assert!(matches!(r.times(), Err(ReplayError::EmptyRange { .. })));
        let r = replay("2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", 0);
        assert_eq!(r.times(), Err(ReplayError::ZeroStep));
        let r = replay("2026-01-01T00:00:00Z", "2026-11-20T10:00:00Z", 10);
        assert!(matches!(r.times(), Err(ReplayError::TooManySteps { .. })));
    }
}
