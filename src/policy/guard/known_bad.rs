//! Revisions the controller rolled back, deployed again: held paused, released by the
//! allow annotation for one fresh analysis, let go when replaced or resumed too often. The
//! planner's steps for them; what is remembered of them is [`super::memory`]'s.

use super::*;

impl Planner<'_> {
    /// A revision the controller rolled back, deployed again (by a person, a pipeline re-run
    /// or a GitOps re-sync): held paused, released by the allow annotation, never analysed
    /// into a second rollback on its own. `None` when `new` is not such a revision, or when
    /// the controller already let go of it (released, or resumed past the re-pauses).
    pub(super) fn known_bad(&mut self, new: &Generation) -> Option<Duration> {
        let bad = self.memory.held(&new.hash)?;
        let stage = self
            .memory
            .current
            .as_ref()
            .filter(|s| s.hash == new.hash)
            .map(|s| s.stage.clone());
        let held_now = matches!(stage, Some(Stage::Held { .. }));
        match stage {
            None | Some(Stage::RolledBack { .. } | Stage::Held { .. }) => {}
            // An older version let it roll out (`RevisionSkipped`): it runs; pausing it now, at
            // some unrelated event, would only surprise.
            Some(_) => return None,
        }
        if self.settings.allowed_hash.as_deref() == Some(new.hash.as_str()) {
            // Setting the annotation bumped the generation: wait until the Deployment
            // controller has seen it, so that the rollout's phase is known (its status update
            // wakes the controller).
            if self.view.phase == Phase::Pending {
                return Some(self.settings.interval);
            }
            return Some(self.release(new, bad, held_now));
        }
        Some(if held_now {
            self.keep_holding(new, &bad)
        } else {
            self.hold(new, &bad)
        })
    }

    pub(super) fn hold(&mut self, new: &Generation, bad: &KnownBad) -> Duration {
        self.memory.current = start_state(self.view, &self.memory, self.settings, self.now);
        self.write = true;
        if self.view.phase == Phase::Complete {
            // Rolled out in full already (while no controller ran, or with actions off): a
            // pause would stop nothing. Said, and let go.
            let why = format!(
                "found fully rolled out; rolled back before on rule {}",
                bad.rule
            );
            self.state().stage = Stage::Overridden { at: self.now, why };
            let msg = format!(
                "{}; it is deployed again and already fully rolled out (while no controller ran, or with actions off), so it is not held: roll it back by hand if it is still bad",
                self.known_bad_story(new, bad)
            );
            self.note(EventReason::KnownBadRevision, msg, true);
            return IDLE_REQUEUE;
        }
        if !self.view.paused {
            self.acts.push(Act::Pause);
            self.record(Act::Pause, Some(bad.rule.clone()));
        }
        let what = if self.settings.dry_run() {
            "actions are off, so it is not held"
        } else {
            "it is held paused before it replaces more pods"
        };
        let msg = format!(
            "{}; deployed again, {what}. {}",
            self.known_bad_story(new, bad),
            self.release_hint(new)
        );
        self.note(EventReason::KnownBadRevision, msg, true);
        IDLE_REQUEUE
    }

    /// A held revision resumed without the allow annotation: paused again, up to
    /// [`MAX_REPAUSES`] times; then the controller lets go and says so.
    pub(super) fn keep_holding(&mut self, new: &Generation, bad: &KnownBad) -> Duration {
        if self.view.paused || self.settings.dry_run() {
            return IDLE_REQUEUE;
        }
        let Stage::Held { repauses, .. } = self.state().stage.clone() else {
            return IDLE_REQUEUE;
        };
        self.write = true;
        if repauses >= MAX_REPAUSES {
            let why = format!(
                "resumed the held revision {} times without {ALLOW_REVISION_ANNOTATION}",
                repauses + 1
            );
            self.state().stage = Stage::Overridden { at: self.now, why };
            let msg = format!(
                "{}; it was resumed {} times without the allow annotation (a GitOps tool with `paused: false` in Git?): the controller stops holding it, and it rolls out unanalysed",
                self.known_bad_story(new, bad),
                repauses + 1
            );
            self.note(EventReason::KnownBadRevisionUnheld, msg, true);
            return IDLE_REQUEUE;
        }
        self.acts.push(Act::Pause);
        self.record(Act::Pause, Some(bad.rule.clone()));
        if let Stage::Held { repauses, .. } = &mut self.state().stage {
            *repauses += 1;
        }
        let msg = format!(
            "{}; it was resumed, and is held paused again ({} of {MAX_REPAUSES}). {}",
            self.known_bad_story(new, bad),
            repauses + 1,
            self.release_hint(new)
        );
        self.note(EventReason::KnownBadRevision, msg, true);
        IDLE_REQUEUE
    }

    /// The allow annotation names a held revision: it is analysed from scratch like any
    /// release (resumed if the controller paused it, unless a gate holds it there anyway), and
    /// the annotation is removed, so that a second rollback holds it again.
    pub(super) fn release(
        &mut self,
        new: &Generation,
        mut bad: KnownBad,
        held_now: bool,
    ) -> Duration {
        bad.released = Some(self.now);
        self.memory.remember(bad);
        self.clear_allow = true;
        self.write = true;
        let resume = held_now && self.view.paused && self.paused_by_us(&new.hash);
        let state = start_state(self.view, &self.memory, self.settings, self.now);
        let what = match state {
            Some(state) => {
                let gate_hold = matches!(state.stage, Stage::GateHold { .. });
                self.memory.current = Some(state);
                if resume && !gate_hold {
                    self.acts.push(Act::Resume);
                    self.record(Act::Resume, None);
                }
                format!(
                    "analysing it from scratch against {} in {} mode",
                    names(self.view.old_with_pods()),
                    self.settings.mode
                )
            }
            None => {
                if held_now {
                    if resume {
                        self.acts.push(Act::Resume);
                        self.record(Act::Resume, None);
                    }
                    self.state().stage = Stage::Overridden {
                        at: self.now,
                        why: format!("released with {ALLOW_REVISION_ANNOTATION}"),
                    };
                }
                "it is not rolling out, so there is nothing to analyse".to_string()
            }
        };
        self.note(
            EventReason::KnownBadRevisionReleased,
            format!(
                "revision {} ({}) was released with {ALLOW_REVISION_ANNOTATION}; {what}",
                new.revision, new.name
            ),
            false,
        );
        self.settings.interval
    }

    /// A held revision whose template was replaced (Git reverted, another release): the pause
    /// the controller made for it is lifted (a paused Deployment does not roll out its new
    /// template), and the new template is analysed as any release.
    pub(super) fn held_replaced(&mut self) -> Option<Duration> {
        let state = self.memory.current.as_ref()?;
        if !matches!(state.stage, Stage::Held { .. })
            || self.view.new.as_ref().is_some_and(|n| n.hash == state.hash)
        {
            return None;
        }
        let (hash, revision) = (state.hash.clone(), state.revision);
        let resume = self.view.paused && self.paused_by_us(&hash) && !self.settings.dry_run();
        if resume {
            self.acts.push(Act::Resume);
            self.record(Act::Resume, None);
        }
        self.state().stage = Stage::Overridden {
            at: self.now,
            why: "replaced the held revision's pod template".into(),
        };
        self.write = true;
        let resumed = if resume {
            "; resuming the rollout the controller paused"
        } else {
            ""
        };
        self.note(
            EventReason::KnownBadRevisionReplaced,
            format!("the held revision {revision} ({hash}) was replaced by another pod template{resumed}"),
            false,
        );
        Some(self.settings.interval)
    }

    /// Which rule rolled `new` back, when, and with what numbers.
    pub(super) fn known_bad_story(&self, new: &Generation, bad: &KnownBad) -> String {
        let numbers = if bad.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", bad.reason)
        };
        format!(
            "revision {} ({}) is the pod template the controller rolled back at {} (as revision {}) on rule {}{numbers}",
            new.revision,
            new.name,
            bad.at,
            bad.revision,
            if bad.rule.is_empty() { "?" } else { &bad.rule },
        )
    }

    pub(super) fn release_hint(&self, new: &Generation) -> String {
        format!(
            "To analyse it again from scratch: kubectl -n {} annotate deployment {} {ALLOW_REVISION_ANNOTATION}={} --overwrite",
            self.view.namespace, self.view.name, new.hash
        )
    }
}
