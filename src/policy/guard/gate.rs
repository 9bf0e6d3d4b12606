//! The gate: pausing the rollout at each configured step for an analysis, and resuming it
//! when the step passes (or holding it when its rules cannot judge). The planner's steps for
//! it.

use super::*;

impl Planner<'_> {
    pub(super) fn gate_rolling(&mut self, new: &Generation, step: usize) -> Duration {
        if self.act_on_decision(new) {
            return self.settings.interval;
        }
        self.warn_on_decision();
        let Some(&pct) = self.settings.gate_steps.get(step) else {
            self.state().stage = Stage::Analysing;
            self.write = true;
            return self.analysing(new);
        };
        let reached =
            i64::from(new.available) * 100 >= i64::from(pct) * i64::from(self.view.desired);
        if reached && self.view.phase != Phase::Complete {
            self.pause_for_gate(step, Some(self.now));
        } else if self.view.phase == Phase::Complete {
            self.state().stage = Stage::Analysing;
            return self.analysing(new);
        }
        self.settings.interval
    }

    pub(super) fn pause_for_gate(&mut self, step: usize, ready_since: Option<Timestamp>) {
        if !self.view.paused {
            self.acts.push(Act::Pause);
            let of = self.settings.gate_steps.len().max(1);
            self.note(
                EventReason::GatePaused,
                format!(
                    "gate step {} of {of}: paused to analyse for {}",
                    step + 1,
                    human(self.settings.bake)
                ),
                false,
            );
            self.record(Act::Pause, None);
        }
        self.state().stage = Stage::GateHold { step, ready_since };
        self.write = true;
    }

    /// A gate step: keeps the rollout paused for the bake time, acts on a decision, then
    /// resumes on a passing analysis (or holds when it cannot judge).
    pub(super) fn gate_hold(
        &mut self,
        new: &Generation,
        step: usize,
        ready_since: Option<Timestamp>,
    ) -> Duration {
        let paused_by_us = self.paused_by_us(&new.hash);
        if !self.view.paused {
            if paused_by_us && !self.settings.dry_run() {
                self.override_by_human("resumed during the gate's analysis");
                return IDLE_REQUEUE;
            }
            if !self.settings.dry_run() || !self.already_recorded(&Act::Pause) {
                self.pause_for_gate(step, ready_since);
            }
        }
        if self.act_on_decision(new) {
            return self.settings.interval;
        }
        self.warn_on_decision();
        if new.available == 0 {
            return self.settings.interval;
        }
        let Some(since) = ready_since else {
            self.state().stage = Stage::GateHold {
                step,
                ready_since: Some(self.now),
            };
            self.write = true;
            return self.settings.interval;
        };
        if self.now < after(since, self.settings.bake) {
            return self.settings.interval;
        }
        // Resume only on evidence: the latest evaluation passed with nothing failing. An
        // inconclusive gate (Prometheus down, too little traffic) holds, and says so once.
        let passed = self
            .state()
            .last
            .as_ref()
            .is_some_and(|l| l.outcome == Outcome::Pass);
        if !passed {
            self.hold_inconclusive(step);
            return self.settings.interval;
        }
        self.resume_gate(step);
        self.settings.interval
    }

    /// The bake time is over but the analysis has not passed: holds the rollout paused, and
    /// says so once per step (once there was an evaluation).
    fn hold_inconclusive(&mut self, step: usize) {
        let already = self.state().overdue_step == Some(step);
        if !already && self.decision.is_some() {
            self.state().overdue_step = Some(step);
            self.write = true;
            let last = self
                .state()
                .last
                .as_ref()
                .map_or("no evaluation".into(), |l| l.reason.clone());
            self.note(
                EventReason::GateInconclusive,
                format!(
                    "gate step {}: the bake time is over but the analysis has not passed ({}); holding the rollout paused",
                    step + 1,
                    last
                ),
                true,
            );
        }
    }

    /// The gate step passed: resumes the rollout, on to the next step or to the analysis.
    fn resume_gate(&mut self, step: usize) {
        self.acts.push(Act::Resume);
        self.record(Act::Resume, None);
        let next = step + 1;
        self.state().stage = if next < self.settings.gate_steps.len() {
            Stage::GateRolling { step: next }
        } else {
            Stage::Analysing
        };
        self.write = true;
        self.note(
            EventReason::GateResumed,
            format!(
                "gate step {} passed after {}: resuming the rollout",
                step + 1,
                human(self.settings.bake)
            ),
            false,
        );
    }
}
