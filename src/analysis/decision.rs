//! From verdicts to a decision: how many failing evaluations in a row each rule has seen, and
//! which action (if any) the latest evaluation calls for.
//!
//! Owns the streak half of the answer to repeated looks during one rollout (see the README,
//! "Repeated looks"; error-rate rules with `test: sequential` carry the other half in their
//! p-value, valid over every look): a rule acts only after `consecutive` failing evaluations in
//! a row; a clean pass resets its count; a pass on evidence still building (significant but
//! held back by the rule's other conditions, or nearly significant) and an inconclusive
//! evaluation (Prometheus down, too little data) neither add nor reset, so neither an outage
//! nor one new pod's thin evidence can wipe out evidence already seen. Pure state, no I/O.

use std::collections::BTreeMap;

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
    /// How many more evaluations an analysis whose time is up goes on for, so that a streak
    /// under way completes or breaks rather than being dropped: the largest `consecutive` among
    /// the open streaks of rules whose test is valid over any number of looks (0 when none).
    /// Other tests pay for every look in false alarms, and their `consecutive` was set for
    /// the looks the analysis' time holds: measured with them, the bake's extension paused
    /// three more healthy releases of 618 (BENCHMARKS.md, detection).
    pub fn open_for(&self) -> u32 {
        self.extending().map(|o| o.consecutive).max().unwrap_or(0)
    }

    /// The open streaks an analysis whose time is up goes on for.
    pub fn extending(&self) -> impl Iterator<Item = &OpenStreak> {
        self.open.iter().filter(|o| o.valid_over_looks)
    }

    /// At an evaluation once an analysis' time is up: the evaluations its extension has left
    /// after this one, or `None` when it ends here. `left` is what it had before this one
    /// (`None` at the first evaluation past the end, when it may begin with
    /// [`Decision::open_for`]). Counted in evaluations, not time, so that a late evaluation (a
    /// restart, a new leader) costs none, and bounded, so that a streak held by missing data
    /// cannot keep an analysis going for ever.
    pub fn extension_after(&self, left: Option<u32>) -> Option<u32> {
        let looks = self.open_for();
        let left = left.unwrap_or(looks);
        (looks > 0 && left > 0).then(|| left - 1)
    }
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
        let open = match best {
            Some((Action::Pause | Action::Rollback, _, _)) => Vec::new(),
            _ => self.open(verdicts),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::rules::RuleSet;

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
        assert_eq!((d.open.len(), d.open_for()), (0, 0));
        let d = s.update(std::slice::from_ref(&fail));
        assert_eq!(d.open_for(), 2);
        assert_eq!(d.open[0].to_string(), "php-error-rate (1/2)");
        // Held by building evidence or a missing answer: still open.
        let mut held = v(name, Outcome::Pass, Action::Rollback);
        held.building = true;
        assert_eq!(s.update(&[held]).open[0].streak, 1);
        let d = s.update(&[v(name, Outcome::Inconclusive, Action::Rollback)]);
        assert_eq!(d.open_for(), 2);
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
        assert_eq!((d.open_for(), d.extending().count()), (0, 0));
        // A failure that could only warn opens nothing: it builds no streak toward an action.
        let d = s.update(&[v("cpu-saturation", Outcome::Fail, Action::Warn)]);
        assert!(d.open.is_empty());
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
        assert_eq!(d.open_for(), 2);
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
