//! Acting on a decision: rolling back (to the generation that served before, within the
//! rate limit), pausing, warning, recording what was done and verifying that a rollback took;
//! and keeping hands off once a person changed the Deployment after the controller acted.

use super::*;

impl Planner<'_> {
    /// Pauses or rolls back when the decision says so. Returns whether it did (or recorded).
    pub(super) fn act_on_decision(&mut self, new: &Generation) -> bool {
        let Some((action, rule)) = self.decided() else {
            return false;
        };
        let reason = self
            .decision
            .as_ref()
            .map(|d| d.reason.clone())
            .unwrap_or_default();
        match action {
            Action::Rollback => self.rollback(new, &rule, &reason),
            Action::Pause => {
                if self.settings.dry_run() {
                    if self.already_recorded(&Act::Pause) {
                        return false;
                    }
                } else if !self.view.paused {
                    self.acts.push(Act::Pause);
                }
                self.record(Act::Pause, Some(rule.clone()));
                self.note(EventReason::RolloutPaused, reason, true);
                if !self.settings.dry_run() {
                    self.state().stage = Stage::Paused { at: self.now, rule };
                }
                self.write = true;
                true
            }
            Action::Warn => false,
        }
    }

    /// Rolls back to the generation that served before (pauses when none is left); in a dry
    /// run or past the rate limit, records the rollback instead. Returns whether it did (or
    /// recorded).
    pub(super) fn rollback(&mut self, new: &Generation, rule: &str, reason: &str) -> bool {
        let Some(target) = self.rollback_target() else {
            return self.pause_instead(rule, reason);
        };
        let act = Act::Rollback {
            to_hash: target.hash.clone(),
            to_revision: target.revision,
        };
        if self.settings.dry_run() {
            return self.rollback_recorded(act, &target, rule, reason);
        }
        let hour_ago = self.now - SignedDuration::from_hours(1);
        let recent = self
            .memory
            .history
            .iter()
            .filter(|r| r.executed && matches!(r.act, Act::Rollback { .. }) && r.at > hour_ago)
            .count();
        if recent >= self.settings.max_rollbacks_per_hour as usize {
            return self.rollback_rate_limited(act, recent, rule, reason);
        }
        self.acts.push(act.clone());
        self.record(act, Some(rule.into()));
        let (hash, revision) = (new.hash.clone(), new.revision);
        self.memory.remember(KnownBad {
            hash,
            revision,
            at: self.now,
            rule: rule.into(),
            reason: one_line(reason, KNOWN_BAD_REASON),
            released: None,
        });
        self.note(
            EventReason::RolledBack,
            format!(
                "{reason}; rolling back from revision {} ({}) to revision {} ({})",
                new.revision, new.name, target.revision, target.name
            ),
            true,
        );
        self.state().stage = Stage::RolledBack {
            at: self.now,
            to_hash: target.hash.clone(),
            to_revision: target.revision,
            verified: None,
        };
        self.write = true;
        true
    }

    /// What to roll back to: the analysis's baseline if it is still there and not held, else
    /// the generation that served before.
    fn rollback_target(&mut self) -> Option<Generation> {
        let baseline = self.state().baseline.clone();
        baseline
            .as_deref()
            .and_then(|h| self.view.old_by_hash(h))
            .filter(|g| self.memory.held(&g.hash).is_none())
            .or_else(|| serving_before(self.view, &self.memory))
            .cloned()
    }

    /// Nothing to go back to (revision history cleaned up): pausing is the safe part.
    fn pause_instead(&mut self, rule: &str, reason: &str) -> bool {
        if self.settings.dry_run() && self.already_recorded(&Act::Pause) {
            return false;
        }
        if !self.view.paused && !self.settings.dry_run() {
            self.acts.push(Act::Pause);
        }
        self.record(Act::Pause, Some(rule.into()));
        self.note(
            EventReason::RollbackImpossible,
            format!("{reason}; no earlier ReplicaSet is left to roll back to, so the rollout is paused instead"),
            true,
        );
        if !self.settings.dry_run() {
            self.state().stage = Stage::Paused {
                at: self.now,
                rule: rule.into(),
            };
        }
        self.write = true;
        true
    }

    /// A dry run: records the rollback to `target` that actions being off prevented (once).
    fn rollback_recorded(
        &mut self,
        act: Act,
        target: &Generation,
        rule: &str,
        reason: &str,
    ) -> bool {
        if self.already_recorded(&act) {
            return false;
        }
        self.record(act.clone(), Some(rule.into()));
        self.suppressed.push(act);
        self.note(
            EventReason::RollbackRecorded,
            format!(
                "{reason}; would roll back to revision {} ({}) but actions are off ({})",
                target.revision,
                target.name,
                if self.settings.kill_switch {
                    "kill switch"
                } else {
                    "observe mode"
                }
            ),
            true,
        );
        true
    }

    /// `recent` rollbacks in the last hour reached the limit: records the rollback not made
    /// (once).
    fn rollback_rate_limited(&mut self, act: Act, recent: usize, rule: &str, reason: &str) -> bool {
        if self.already_recorded(&act) {
            return false;
        }
        self.record_as(act.clone(), Some(rule.into()), false);
        self.suppressed.push(act);
        self.note(
            EventReason::RollbackRateLimited,
            format!(
                "{reason}; not rolling back: {recent} rollback(s) in the last hour reached the limit of {}",
                self.settings.max_rollbacks_per_hour
            ),
            true,
        );
        self.write = true;
        true
    }

    /// Whether the controller's latest pause-or-resume of this revision was a pause it made.
    /// Only the current analysis of `hash` counts (its records since it began): a pause from
    /// an earlier analysis of the same template was lifted by the rollback that ended it
    /// (a rollback clears `spec.paused`), whatever the history says after it.
    pub(super) fn paused_by_us(&self, hash: &str) -> bool {
        let since = self
            .memory
            .current
            .as_ref()
            .filter(|s| s.hash == hash)
            .map(|s| s.since);
        self.memory
            .history
            .iter()
            .rev()
            .take_while(|r| since.is_none_or(|t| r.at >= t))
            .find(|r| r.hash == hash && r.executed)
            .is_some_and(|r| r.act == Act::Pause)
    }

    /// Whether this revision already has a record of the same action not carried out (dry
    /// runs and rate limits keep evaluating after deciding, and say so once).
    pub(super) fn already_recorded(&self, act: &Act) -> bool {
        let hash = self.memory.current.as_ref().map(|s| s.hash.as_str());
        self.memory
            .history
            .iter()
            .any(|r| !r.executed && Some(r.hash.as_str()) == hash && r.act.same_kind(act))
    }

    pub(super) fn warn_on_decision(&mut self) {
        if let Some(d) = &self.decision
            && d.action == Some(Action::Warn)
        {
            let reason = d.reason.clone();
            self.note(EventReason::RuleWarning, reason, true);
        }
    }

    pub(super) fn record(&mut self, act: Act, rule: Option<String>) {
        let executed = !self.settings.dry_run();
        self.record_as(act, rule, executed);
    }

    pub(super) fn record_as(&mut self, act: Act, rule: Option<String>, executed: bool) {
        let (hash, revision) = {
            let s = self.state();
            (s.hash.clone(), s.revision)
        };
        self.memory.history.push(ActionRecord {
            at: self.now,
            act,
            hash,
            revision,
            rule,
            executed,
        });
        let excess = self.memory.history.len().saturating_sub(HISTORY_LEN);
        self.memory.history.drain(..excess);
    }

    pub(super) fn override_by_human(&mut self, what: &str) {
        let revision = self.state().revision;
        self.state().stage = Stage::Overridden {
            at: self.now,
            why: format!("someone {what}"),
        };
        self.write = true;
        self.note(
            EventReason::AnalysisOverridden,
            format!("revision {revision} was {what}; the controller keeps its hands off it"),
            false,
        );
    }

    pub(super) fn verify_rollback(&mut self, new: &Generation) -> Duration {
        let Some(Stage::RolledBack { at, verified, .. }) =
            self.memory.current.as_ref().map(|s| s.stage.clone())
        else {
            return IDLE_REQUEUE;
        };
        if verified.is_some() {
            return IDLE_REQUEUE;
        }
        let bad = self.state().hash.clone();
        let bad_pods: i32 = self
            .view
            .old
            .iter()
            .filter(|g| g.hash == bad)
            .map(|g| g.pods)
            .sum();
        let back = new.available >= self.view.desired && bad_pods == 0;
        let result = if back {
            self.note(
                EventReason::RollbackComplete,
                format!(
                    "the previous release ({}) is available again on all {} pod(s), as revision {} (a rollback gives the restored template the next revision number)",
                    new.name, self.view.desired, new.revision
                ),
                false,
            );
            Some(true)
        } else if self.now >= after(at, self.settings.verify_timeout) {
            self.note(
                EventReason::RollbackNotTaking,
                format!(
                    "{} after the rollback, revision {} ({}) has {} of {} pod(s) available and the bad revision still has {bad_pods}: check the Deployment",
                    human(self.settings.verify_timeout),
                    new.revision,
                    new.name,
                    new.available,
                    self.view.desired
                ),
                true,
            );
            Some(false)
        } else {
            None
        };
        if let Some(ok) = result
            && let Stage::RolledBack { verified, .. } = &mut self.state().stage
        {
            *verified = Some(ok);
            self.write = true;
            return IDLE_REQUEUE;
        }
        self.settings.interval
    }
}
