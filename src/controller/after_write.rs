//! What follows a reconciliation's write: telling of it and keeping its memory when it went
//! through, re-reading and deciding again after a conflict, counting a failure. Part of the
//! controller's loop; the order of its API calls, records and Events is the loop's.

use super::*;

/// A step whose plan the actuator was asked to write: what follows depends on the write's
/// outcome.
pub(super) struct AfterWrite<S> {
    pub(super) ctx: Arc<Context<S>>,
    pub(super) d: Arc<Deployment>,
    pub(super) key: ObjectRef<Deployment>,
    pub(super) name: String,
    pub(super) view: RolloutView,
    pub(super) now: Timestamp,
    pub(super) kept: Kept,
    pub(super) resolved: Resolved,
    pub(super) decided: Decided,
}

impl<S: MetricSource + Send + Sync + 'static> AfterWrite<S> {
    /// The plan was written (or needed no write): tells of it, keeps its memory, and looks
    /// again after `requeue` (sooner after a write, for the watch to catch up).
    pub(super) async fn succeeded(self, written: Option<Deployment>, requeue: Duration) -> Action {
        let AfterWrite {
            ctx,
            d,
            key,
            view,
            now,
            mut kept,
            resolved,
            decided,
            ..
        } = self;
        let plan = &decided.plan;
        notify(&ctx.notifier, &view, &plan.notes, now);
        count(&ctx.metrics, &view, &plan.acts, ActionResult::Ok);
        count(
            &ctx.metrics,
            &view,
            &plan.suppressed,
            ActionResult::Recorded,
        );
        if let Some(w) = &written {
            kept.written = Some(Written {
                seq: plan.memory.seq,
                over: d.metadata.resource_version.clone(),
                generation: w.metadata.generation,
            });
        }
        say(
            &ctx,
            &d,
            &view,
            plan,
            Arc::clone(decided.rules(&resolved.rules)),
            now,
            !resolved.settings.dry_run(),
        )
        .await;
        kept.memory = decided.plan.memory;
        ctx.keep(key, kept);
        ctx.metrics.rollouts_analysed.set(ctx.analysing());
        if written.is_some() {
            Action::requeue(AFTER_WRITE.max(Duration::from_millis(1)).min(requeue))
        } else {
            Action::requeue(requeue)
        }
    }

    /// Someone else wrote first: keeps the verdicts to decide on again, never overwrites, and
    /// decides again now on the Deployment read afresh (a few times), or after a backoff.
    pub(super) async fn conflict(self, attempt: u32) -> Result<Action, ReconcileError> {
        let AfterWrite {
            ctx,
            d,
            key,
            name,
            view,
            now,
            mut kept,
            resolved,
            decided,
        } = self;
        count(
            &ctx.metrics,
            &view,
            &decided.plan.acts,
            ActionResult::Conflict,
        );
        tracing::info!(deployment = %name, "conflict writing the plan; re-reading");
        // Reused verdicts keep their freshness: conflict after conflict never makes them
        // new. Fresh ones stay usable for an interval from now, however long evaluating
        // took: a slow evaluation must not be thrown away for a status update it overlapped.
        let after_conflict = (ctx.clock)();
        if let Some(mut u) = decided.reused {
            u.conflicts += 1;
            kept.unwritten = Some(u);
        } else if let (Some(target), Some(verdicts)) = (decided.wanted, decided.evaluated) {
            kept.unwritten = Some(Unwritten {
                at: now,
                fresh_until: guard::after(after_conflict, resolved.settings.interval),
                conflicts: 1,
                target,
                rules: resolved.rules,
                verdicts,
            });
        }
        let backoff = conflict_backoff(kept.unwritten.as_ref().map_or(1, |u| u.conflicts));
        ctx.keep(key, kept);
        // The watch may lag behind the change that beat us (a status update during the
        // rollout, every few seconds): read it afresh and decide again now, a few times.
        if attempt < CONFLICT_RETRIES
            && let Some(fresh) = read_afresh(&ctx, &d).await
        {
            tracing::debug!(deployment = %name, attempt, "deciding again on the Deployment read afresh");
            return Box::pin(reconcile_at(Arc::new(fresh), ctx, attempt + 1)).await;
        }
        Ok(Action::requeue(ctx.wall(backoff)))
    }

    /// The write failed otherwise: counts it, keeps what is known, and returns the error.
    pub(super) fn failed(self, e: ActError) -> ReconcileError {
        count(
            &self.ctx.metrics,
            &self.view,
            &self.decided.plan.acts,
            e.result(),
        );
        self.ctx.keep(self.key, self.kept);
        ReconcileError::Write(self.name, e)
    }
}
