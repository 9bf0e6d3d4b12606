//! From verdicts to a decision: how many failing evaluations in a row each rule has seen, and
//! which action (if any) the latest evaluation calls for.
//!
//! Owns the streak half of the answer to repeated looks during one rollout (see the README,
//! "Repeated looks"; error-rate rules with `test: sequential` carry the other half in their
//! p-value, valid over every look): a rule acts only after `consecutive` failing evaluations in
//! a row; a clean pass resets its count; a pass on evidence still building (significant but
//! held back by the rule's other conditions, or nearly significant) and an inconclusive
//! evaluation (Prometheus down, too little data) neither add nor reset, so neither an outage
//! nor one new pod's thin evidence can wipe out evidence already seen. Also what an analysis
//! whose time is up still waits for: streaks under way and passes not settled yet. Pure state,
//! no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::analysis::judge::{Outcome, Verdict};
use crate::analysis::rules::Action;

/// The outcome of a whole evaluation: fail if any rule failed, else inconclusive if any was,
/// else pass.
pub fn overall(verdicts: &[Verdict]) -> Outcome {
    verdicts
        .iter()
        .map(|v| v.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive)
}

/// Failing evaluations in a row, per rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Streaks(pub BTreeMap<String, u32>);

/// What one evaluation calls for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The most severe action among the rules whose streak reached their `consecutive`;
    /// `None` when no rule has.
    pub action: Option<Action>,
    /// The rule that decided (the first in rule order among those of that severity).
    pub rule: Option<String>,
    /// Why, in one line.
    pub reason: String,
    /// Every rule's streak after this evaluation.
    pub streaks: BTreeMap<String, u32>,
    /// The rules failing toward a pause or rollback that have not reached it yet, when none
    /// acted: evidence still open, which an analysis should not end on (see
    /// [`Decision::open_for`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<OpenStreak>,
    /// The rules toward a pause or rollback whose pass the evidence cannot settle yet (see
    /// [`Verdict::settles_in`]), when none acted: an analysis should not end on them either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<Unsettled>,
}

/// A rule whose pass the evidence cannot settle yet, and how long until it can.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsettled {
    /// The rule.
    pub rule: String,
    /// Seconds until the evidence can settle it.
    pub seconds: u64,
    /// How many failing evaluations in a row the rule acts after (its `consecutive`).
    #[serde(default = "one")]
    pub consecutive: u32,
}

fn one() -> u32 {
    1
}

impl std::fmt::Display for Unsettled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (unsettled for {} s more)", self.rule, self.seconds)
    }
}

/// A rule failing toward its action, not there yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenStreak {
    /// The rule.
    pub rule: String,
    /// Its failing evaluations in a row so far.
    pub streak: u32,
    /// How many it acts after (the rule's `consecutive`).
    pub consecutive: u32,
    /// Its test holds its level over any number of looks, so an analysis may go on looking
    /// while the streak is under way (see [`Decision::open_for`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub valid_over_looks: bool,
}

impl std::fmt::Display for OpenStreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}/{})", self.rule, self.streak, self.consecutive)
    }
}

impl Decision {
    /// How many more evaluations, `every` apart, an analysis whose time is up goes on for, so
    /// that evidence under way settles rather than being dropped (0 when none is):
    /// - a streak: the largest `consecutive` among the open streaks of rules whose test is
    ///   valid over any number of looks. Other tests pay for every look in false alarms, and
    ///   their `consecutive` was set for the looks the analysis' time holds: measured with
    ///   them, the bake's extension paused three more healthy releases of 618 (BENCHMARKS.md,
    ///   detection);
    /// - an unsettled pass: the evaluations its time to settle spans (the last of them sees it
    ///   settled), and the rule's `consecutive` less one more, so that a failure first seen
    ///   then can still complete its streak.
    pub fn open_for(&self, every: Duration) -> u32 {
        let streaks = self.extending().map(|o| o.consecutive).max().unwrap_or(0);
        let every = every.as_secs().max(1);
        let settling = self
            .unsettled
            .iter()
            .map(|u| {
                let looks = u.seconds.div_ceil(every) + u64::from(u.consecutive.saturating_sub(1));
                u32::try_from(looks).unwrap_or(u32::MAX)
            })
            .max()
            .unwrap_or(0);
        streaks.max(settling)
    }

    /// The open streaks an analysis whose time is up goes on for.
    pub fn extending(&self) -> impl Iterator<Item = &OpenStreak> {
        self.open.iter().filter(|o| o.valid_over_looks)
    }

    /// At an evaluation once an analysis' time is up: the evaluations its extension has left
    /// after this one, or `None` when it ends here. `left` is what it had before this one
    /// (`None` at the first evaluation past the end, when it may begin with
    /// [`Decision::open_for`]); `every` is the time between evaluations. Counted in
    /// evaluations, not time, so that a late evaluation (a restart, a new leader) costs none,
    /// and bounded by the first count, so that a streak held by missing data, or one
    /// unsettled pass after another, cannot keep an analysis going for ever.
    pub fn extension_after(&self, left: Option<u32>, every: Duration) -> Option<u32> {
        let looks = self.open_for(every);
        let left = left.unwrap_or(looks);
        (looks > 0 && left > 0).then(|| left - 1)
    }
    /// What keeps an analysis whose time is up going, for people: the streaks failing toward
    /// their action, and the passes not settled yet.
    pub fn under_way(&self) -> String {
        let mut parts = Vec::new();
        if self.extending().next().is_some() {
            parts.push(format!(
                "{} fails toward its action",
                list(self.extending())
            ));
        }
        if !self.unsettled.is_empty() {
            parts.push(format!(
                "the pass of {} is not settled: its excess hangs on a stretch that ended too recently to tell a shared incident from a lasting regression",
                list(&self.unsettled)
            ));
        }
        parts.join("; and ")
    }

    /// What was still under way when an analysis ended without acting, `when` it ended
    /// ("when the bake ended"), the streaks then the passes not settled, `; `-separated ("" when
    /// nothing was).
    pub fn left_open(&self, when: &str) -> String {
        let mut parts = Vec::new();
        if !self.open.is_empty() {
            parts.push(format!("still failing {when}: {}", list(&self.open)));
        }
        if !self.unsettled.is_empty() {
            parts.push(format!("still unsettled {when}: {}", list(&self.unsettled)));
        }
        parts.join("; ")
    }
}

/// Open streaks or unsettled passes for people: `cpu-per-request (1/3), php-error-rate (1/2)`.
fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Streaks {
    /// Folds one evaluation's verdicts in and says what they call for.
    pub fn update(&mut self, verdicts: &[Verdict]) -> Decision {
        for v in verdicts {
            // A failure the judge let only warn (no baseline to rule out a shared cause) is not
            // evidence for the rule's own action: it holds the streak like an inconclusive one.
            let full = !v.warn_only;
            let streak = self.0.entry(v.rule.clone()).or_insert(0);
            match v.outcome {
                Outcome::Fail if full => *streak += 1,
                // Evidence building (significant but held back, or nearly): kept, not reset.
                Outcome::Pass if v.building => {}
                Outcome::Pass => *streak = 0,
                Outcome::Fail | Outcome::Inconclusive => {}
            }
        }
        let mut best: Option<(Action, &Verdict, u32)> = None;
        // In the order of the rules (the verdicts'), the first of the strongest actions.
        for v in verdicts {
            let streak = self.0.get(&v.rule).copied().unwrap_or(0);
            // The verdict's action: the rule's, unless the judge allowed only a warning.
            if v.outcome == Outcome::Fail
                && streak >= v.consecutive
                && best.is_none_or(|(a, _, _)| v.action > a)
            {
                best = Some((v.action, v, streak));
            }
        }
        let streaks = self.0.clone();
        // A warning takes nothing away from the streaks under way toward a pause or rollback.
        let (open, unsettled) = match best {
            Some((Action::Pause | Action::Rollback, _, _)) => (Vec::new(), Vec::new()),
            _ => (self.open(verdicts), unsettled(verdicts)),
        };
        match best {
            Some((action, v, streak)) => Decision {
                action: Some(action),
                rule: Some(v.rule.clone()),
                reason: format!(
                    "{}: failed {streak} evaluation(s) in a row: {}",
                    v.rule, v.reason
                ),
                streaks,
                open,
                unsettled,
            },
            None => {
                let failing: Vec<String> = verdicts
                    .iter()
                    .filter(|v| v.outcome == Outcome::Fail)
                    .map(|v| {
                        format!(
                            "{} ({}/{})",
                            v.rule,
                            self.0.get(&v.rule).copied().unwrap_or(0),
                            v.consecutive
                        )
                    })
                    .collect();
                let reason = if failing.is_empty() {
                    format!("no rule failing; evaluation {}", overall(verdicts))
                } else {
                    format!("failing, not yet acting: {}", failing.join(", "))
                };
                Decision {
                    action: None,
                    rule: None,
                    reason,
                    streaks,
                    open,
                    unsettled,
                }
            }
        }
    }

    /// The rules of `verdicts` with a pause or rollback whose streak has begun and not reached
    /// their `consecutive`.
    fn open(&self, verdicts: &[Verdict]) -> Vec<OpenStreak> {
        verdicts
            .iter()
            .filter(|v| matches!(v.action, Action::Pause | Action::Rollback) && !v.warn_only)
            .filter_map(|v| {
                let streak = self.0.get(&v.rule).copied().unwrap_or(0);
                (streak > 0 && streak < v.consecutive).then(|| OpenStreak {
                    rule: v.rule.clone(),
                    streak,
                    consecutive: v.consecutive,
                    valid_over_looks: v.valid_over_looks,
                })
            })
            .collect()
    }
}

/// The rules of `verdicts` with a pause or rollback whose pass is unsettled.
fn unsettled(verdicts: &[Verdict]) -> Vec<Unsettled> {
    verdicts
        .iter()
        .filter(|v| matches!(v.action, Action::Pause | Action::Rollback) && !v.warn_only)
        .filter_map(|v| {
            v.settles_in.map(|seconds| Unsettled {
                rule: v.rule.clone(),
                seconds,
                consecutive: v.consecutive,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::rules::RuleSet;

    /// The time between evaluations.
    const EVERY: Duration = Duration::from_secs(30);

    /// A verdict of one of the default rules (its `consecutive`; a warning where it asks for
    /// more is warn-only).
    fn v(rule: &str, outcome: Outcome, action: Action) -> Verdict {
        let r = rules().get(rule).cloned();
        Verdict {
            rule: rule.into(),
            outcome,
            action,
            reason: "r".into(),
            evidence: None,
            queries: vec![],
            error: None,
            error_kind: None,
            building: false,
            settles_in: None,
            warn_only: r.as_ref().is_some_and(|r| r.action != action),
            consecutive: r.as_ref().map_or(1, |r| r.consecutive),
            valid_over_looks: r.is_some_and(|r| r.check.valid_over_looks()),
        }
    }

    fn rules() -> RuleSet {
        // php-error-rate: rollback after 2; cpu-throttling: pause after 3.
        RuleSet::defaults()
    }

    #[test]
    fn acts_only_after_consecutive_failures() {
        let mut s = Streaks::default();
        let fail = v("php-error-rate", Outcome::Fail, Action::Rollback);
        assert_eq!(s.update(std::slice::from_ref(&fail)).action, None);
        let d = s.update(&[fail]);
        assert_eq!(d.action, Some(Action::Rollback));
        assert_eq!(d.rule.as_deref(), Some("php-error-rate"));
        assert!(
            d.reason.contains("2 evaluation(s) in a row"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn pass_resets_inconclusive_holds() {
        let mut s = Streaks::default();
        let name = "php-error-rate";
        s.update(&[v(name, Outcome::Fail, Action::Rollback)]);
        s.update(&[v(name, Outcome::Inconclusive, Action::Rollback)]);
        assert_eq!(s.0[name], 1);
        // An inconclusive evaluation never acts, even with a streak behind it.
        let d = s.update(&[v(name, Outcome::Inconclusive, Action::Rollback)]);
        assert_eq!(d.action, None);
        s.update(&[v(name, Outcome::Pass, Action::Rollback)]);
        assert_eq!(s.0[name], 0);
        let d = s.update(&[v(name, Outcome::Fail, Action::Rollback)]);
        assert_eq!(d.action, None, "a pass in between starts the count again");
    }

    #[test]
    fn a_pass_on_building_evidence_keeps_the_streak() {
        let mut s = Streaks::default();
        let name = "php-error-rate";
        s.update(&[v(name, Outcome::Fail, Action::Rollback)]);
        // One new pod's burst carried the excess this time: held back, but not clean.
        let mut held = v(name, Outcome::Pass, Action::Rollback);
        held.building = true;
        let d = s.update(&[held]);
        assert_eq!((d.action, s.0[name]), (None, 1));
        let d = s.update(&[v(name, Outcome::Fail, Action::Rollback)]);
        assert_eq!(d.action, Some(Action::Rollback), "{}", d.reason);
    }

    #[test]
    fn a_streak_under_way_is_open_until_it_acts_or_breaks() {
        let mut s = Streaks::default();
        let name = "php-error-rate"; // rollback after 2, a sequential test
        let fail = v(name, Outcome::Fail, Action::Rollback);
        let d = s.update(&[v(name, Outcome::Pass, Action::Rollback)]);
        assert_eq!((d.open.len(), d.open_for(EVERY)), (0, 0));
        let d = s.update(std::slice::from_ref(&fail));
        assert_eq!(d.open_for(EVERY), 2);
        assert_eq!(d.open[0].to_string(), "php-error-rate (1/2)");
        // Held by building evidence or a missing answer: still open.
        let mut held = v(name, Outcome::Pass, Action::Rollback);
        held.building = true;
        assert_eq!(s.update(&[held]).open[0].streak, 1);
        let d = s.update(&[v(name, Outcome::Inconclusive, Action::Rollback)]);
        assert_eq!(d.open_for(EVERY), 2);
        let d = s.update(std::slice::from_ref(&fail));
        assert_eq!(
            (d.action, d.open.len()),
            (Some(Action::Rollback), 0),
            "acted: closed"
        );
        let d = s.update(&[v(name, Outcome::Pass, Action::Rollback)]);
        assert!(d.open.is_empty(), "a clean pass breaks it");
        // A test that pays for every look is open, but does not extend an analysis.
        let d = s.update(&[v("cpu-per-request", Outcome::Fail, Action::Pause)]);
        assert_eq!(d.open[0].to_string(), "cpu-per-request (1/3)");
        assert_eq!((d.open_for(EVERY), d.extending().count()), (0, 0));
        // A failure that could only warn opens nothing: it builds no streak toward an action.
        let d = s.update(&[v("cpu-saturation", Outcome::Fail, Action::Warn)]);
        assert!(d.open.is_empty());
    }

    #[test]
    fn an_unsettled_pass_holds_an_analysis_for_the_evaluations_until_it_settles() {
        let mut s = Streaks::default();
        let mut unsettled = v("php-error-rate", Outcome::Pass, Action::Rollback);
        unsettled.settles_in = Some(70);
        let d = s.update(std::slice::from_ref(&unsettled));
        assert_eq!(
            d.unsettled[0].to_string(),
            "php-error-rate (unsettled for 70 s more)"
        );
        // 70 s at 30 s apart: the third evaluation is past it; at 10 s apart, the seventh. And
        // one more, for a failure first seen then to make the rule's streak of two.
        assert_eq!(
            (d.open_for(EVERY), d.open_for(Duration::from_secs(10))),
            (4, 8)
        );
        assert_eq!(d.extension_after(None, EVERY), Some(3));
        // It resets the streak like the clean pass it is (a shared incident is no evidence
        // against the release), and settled, it holds nothing.
        assert!(d.open.is_empty() && s.0["php-error-rate"] == 0);
        let d = s.update(&[v("php-error-rate", Outcome::Pass, Action::Rollback)]);
        assert_eq!(
            (d.open_for(EVERY), d.extension_after(Some(2), EVERY)),
            (0, None)
        );
        // Unsettled again later: the extension's first count bounds it.
        let d = s.update(&[unsettled.clone()]);
        assert_eq!(d.extension_after(Some(1), EVERY), Some(0));
        assert_eq!(d.extension_after(Some(0), EVERY), None);
        // A rule that could only warn holds nothing.
        let mut warn = unsettled;
        (warn.action, warn.warn_only) = (Action::Warn, true);
        assert!(s.update(&[warn]).unsettled.is_empty());
    }

    #[test]
    fn a_warning_leaves_the_streaks_under_way_open() {
        let mut s = Streaks::default();
        let rollback = v("php-error-rate", Outcome::Fail, Action::Rollback);
        let mut warn = v("php-error-rate", Outcome::Fail, Action::Warn);
        (warn.rule, warn.warn_only, warn.consecutive) = ("a-warning-rule".into(), false, 1);
        let d = s.update(&[warn, rollback]);
        assert_eq!(d.action, Some(Action::Warn));
        assert_eq!(d.open[0].to_string(), "php-error-rate (1/2)");
        assert_eq!(d.open_for(EVERY), 2);
    }

    #[test]
    fn warn_only_failures_do_not_build_a_rollback_streak() {
        let mut s = Streaks::default();
        let warn = v("cpu-saturation", Outcome::Fail, Action::Warn);
        let full = v("cpu-saturation", Outcome::Fail, Action::Rollback);
        s.update(std::slice::from_ref(&warn));
        s.update(std::slice::from_ref(&warn));
        let d = s.update(std::slice::from_ref(&full));
        assert_eq!(
            d.action, None,
            "one real failure after two warnings: {}",
            d.reason
        );
        assert_eq!(s.0["cpu-saturation"], 1);
    }

    #[test]
    fn most_severe_action_wins() {
        let mut s = Streaks::default();
        let both = [
            v("cpu-throttling", Outcome::Fail, Action::Pause),
            v("php-error-rate", Outcome::Fail, Action::Rollback),
        ];
        for _ in 0..2 {
            s.update(&both);
        }
        let d = s.update(&both);
        assert_eq!(d.action, Some(Action::Rollback));
        assert_eq!(overall(&both), Outcome::Fail);
        assert_eq!(overall(&[]), Outcome::Inconclusive);
        assert_eq!(
            overall(&[
                v("a", Outcome::Pass, Action::Warn),
                v("b", Outcome::Inconclusive, Action::Warn)
            ]),
            Outcome::Inconclusive
        );
    }
}
