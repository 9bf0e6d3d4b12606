//! The `run` loop: watch Deployments through kube's runtime, and for each one that opted in,
//! read its rollout, evaluate the rules when the guard asks, plan, and hand the plan to the
//! actuator.
//!
//! Owns the wiring between the adapters (Kubernetes watches, the metric source, the actuator,
//! telemetry, leader election) and the pure core (`rollout`, `guard`, `evaluate`). Decides
//! nothing itself. Costs: it keeps a store of the watched Deployments (whole, without
//! `managedFields`, for those that opted in; only name and opt-in for the others), watches ReplicaSets only as metadata to wake up their owners (nothing is
//! stored), and lists the ReplicaSets of a Deployment only while that Deployment is being
//! analysed; Pods are never watched (the pod regex of a ReplicaSet is all the queries need),
//! so memory and queries grow with the rollouts under analysis, not with the cluster. A
//! rollout under analysis is evaluated once per interval, however often its watch events wake
//! the controller (see [`guard::until_due`]).

pub mod actions;
mod after_write;
pub mod kept_logs;
pub(crate) mod leader;
pub(crate) mod preflight;
mod store;
mod tell;

use after_write::AfterWrite;

pub use store::{MAX_SETTING_BYTES, opted_in, slim};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::adapters::kubernetes;
use crate::adapters::notify::Notifier;
use crate::adapters::telemetry::{ActionResult, Metrics, RuleLabels};
use crate::analysis::evaluate::{Target, evaluate};
use crate::analysis::judge::Verdict;
use crate::analysis::rules::RuleSet;
use crate::analysis::source::MetricSource;
use crate::controller::actions::{ActError, Actuator};
use crate::policy::annotations::{self, Resolved};
use crate::policy::guard::{self, Memory, Plan, Settings};
use crate::policy::rollout::RolloutView;
use crate::records::{Kind, Recorder, WriteResult};
use tell::{Recording, count, log_step, notify, say};

/// What every reconciliation shares.
pub struct Context<S> {
    /// The Kubernetes client reads go through.
    pub client: Client,
    /// Carries out plans and publishes Events.
    pub actuator: Actuator,
    /// What answers the rules' queries: Prometheus (and pod logs for `logs` rules) in `run`, a
    /// simulation in tests and the demo.
    pub source: S,
    /// The loaded rules; replaced when the files change and still load.
    pub rules: watch::Receiver<Arc<RuleSet>>,
    /// The settings before annotations (the kill switch can change while running).
    pub base: watch::Receiver<Settings>,
    /// Whether a label selector (rather than the annotation) opts Deployments in.
    pub selector: Option<String>,
    /// True while this replica may act.
    pub leader: watch::Receiver<bool>,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// The time; the system clock in `run`, a simulated one in tests and the demo.
    pub clock: Clock,
    /// Simulated seconds per wall-clock second (1 in `run`).
    speed: f64,
    /// The decision log.
    records: Recorder,
    /// Webhooks told of what the Events say (none by default).
    notifier: Notifier,
    /// What this process remembers per Deployment, between reconciliations.
    memories: Mutex<HashMap<ObjectRef<Deployment>, Kept>>,
    /// Permits for evaluations running at once (`limits.max_concurrent_evaluations`): a
    /// controller that starts with 50 rollouts under way would otherwise send all their
    /// queries to Prometheus at the same moment, and hold all their responses in memory.
    evaluations: tokio::sync::Semaphore,
}

/// Where the controller reads the time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The memory of one Deployment, with what was last written to it.
#[derive(Clone, Default)]
struct Kept {
    /// The Deployment's uid: a Deployment deleted and created again under the same name starts
    /// with nothing kept.
    uid: Option<String>,
    memory: Memory,
    written: Option<Written>,
    /// The annotation problems last reported, to report each once.
    problems: Vec<String>,
    /// An evaluation whose plan met a conflict: the next reconciliation re-reads the
    /// Deployment and decides again on these verdicts rather than querying again (the
    /// metrics did not change because someone wrote to the Deployment).
    unwritten: Option<Unwritten>,
    /// What this process knows of the ConfigMap keeping the old pods' log counts.
    logs: kept_logs::LogsKept,
}

/// Our last write to a Deployment: the memory's sequence number, the resourceVersion it was
/// decided on, and the generation it produced. The store has our write (or something after
/// it) once it holds another version at that generation or later; another version below it is
/// a status update that came between our read and our write, and deciding on it would be
/// deciding on the spec our write replaced.
#[derive(Clone)]
struct Written {
    seq: u64,
    over: Option<String>,
    /// The generation the write gave the Deployment: a store still below it has not seen the
    /// write (a status update between our read and our write has another resourceVersion,
    /// but not this generation).
    generation: Option<i64>,
}

#[derive(Clone)]
struct Unwritten {
    /// When the evaluation was made (the records' `verdicts_of`).
    at: Timestamp,
    /// Until when its verdicts may stand in for a new evaluation: one interval after the first
    /// conflict. Conflict after conflict never extends it, however long evaluating took.
    fresh_until: Timestamp,
    /// Conflicts met in a row with these verdicts: the retry waits twice as long after each.
    conflicts: u32,
    target: Target,
    rules: Arc<RuleSet>,
    verdicts: Vec<Verdict>,
}

/// A reconciliation that failed; retried with a delay.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Listing the ReplicaSets of the Deployment (`namespace/name`) failed.
    #[error("listing ReplicaSets of {0}: {1}")]
    List(String, kube::Error),
    /// Writing a plan to the Deployment (`namespace/name`) failed.
    #[error("writing to {0}: {1}")]
    Write(String, ActError),
}

impl<S> Context<S> {
    /// A context on the system clock, with records to the log only and no notifier; at most
    /// `max_evaluations` evaluations run at once (at least one).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        actuator: Actuator,
        source: S,
        rules: watch::Receiver<Arc<RuleSet>>,
        base: watch::Receiver<Settings>,
        selector: Option<String>,
        leader: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
        max_evaluations: usize,
    ) -> Self {
        Context {
            client,
            actuator,
            source,
            rules,
            base,
            selector,
            leader,
            metrics,
            clock: Arc::new(Timestamp::now),
            speed: 1.0,
            records: Recorder::log_only(),
            notifier: Notifier::none(),
            memories: Mutex::new(HashMap::new()),
            // At most this many evaluations at once (at least one).
            evaluations: tokio::sync::Semaphore::new(max_evaluations.max(1)),
        }
    }

    /// Replaces the clock (tests and the demo run on simulated time): `speed` simulated
    /// seconds pass per wall-clock second, and waits shrink by as much.
    pub fn with_clock(mut self, clock: Clock, speed: f64) -> Self {
        self.clock = clock;
        self.speed = speed.max(1e-3);
        self
    }

    /// Posts notices of the controller's Events through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Writes decision records to `records` (the log only by default).
    pub fn with_records(mut self, records: Recorder) -> Self {
        self.records = records;
        self
    }

    /// A wait in simulated time as a wall-clock wait.
    fn wall(&self, d: Duration) -> Duration {
        d.div_f64(self.speed)
    }

    /// A time the API server stamped (on the wall clock), on the controller's clock: as long
    /// before its now, in simulated time, as it is before the wall clock's now. The same time
    /// in `run`, where the two clocks are one.
    fn on_clock(&self, t: Timestamp) -> Timestamp {
        if self.speed == 1.0 {
            return t;
        }
        let ago = Timestamp::now().duration_since(t).mul_f64(self.speed);
        (self.clock)().checked_sub(ago).unwrap_or(t)
    }

    /// `view` with its API times on the controller's clock (see [`Context::on_clock`]).
    fn view_on_clock(&self, mut view: RolloutView) -> RolloutView {
        view.completed_at = view.completed_at.map(|t| self.on_clock(t));
        for g in view.new.iter_mut().chain(view.old.iter_mut()) {
            g.created = g.created.map(|t| self.on_clock(t));
        }
        view
    }

    fn kept(&self, key: &ObjectRef<Deployment>) -> Option<Kept> {
        self.memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn keep(&self, key: ObjectRef<Deployment>, kept: Kept) {
        self.memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, kept);
    }

    fn forget_all(&self) {
        self.memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn analysing(&self) -> i64 {
        self.memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|k| {
                k.memory
                    .current
                    .as_ref()
                    .is_some_and(|s| !s.stage.is_final())
            })
            .count() as i64
    }
}

/// How long to wait before looking again after our own write, for the watch to catch up.
const AFTER_WRITE: Duration = Duration::from_millis(500);
/// The first wait after a write met a conflict, in the controller's time; it doubles with each
/// conflict in a row, up to [`AFTER_CONFLICT_MAX`].
const AFTER_CONFLICT: Duration = Duration::from_millis(500);
const AFTER_CONFLICT_MAX: Duration = Duration::from_secs(15);
/// How long to wait after a failed reconciliation.
const AFTER_ERROR: Duration = Duration::from_secs(10);
/// How often a replica that does not lead checks again.
const NOT_LEADER: Duration = Duration::from_secs(5);

/// Objects per page of a watch's initial list. kube's default (500) deserializes 500 whole
/// Deployments, `managedFields` included, before any is slimmed: about 29 MiB of heap for a
/// PHP service's Deployments, which the allocator then keeps. 50 keeps that under 3 MiB for
/// 10 times as many list requests, at start and after a watch expires.
pub const LIST_PAGE: u32 = 50;

/// Reconciles one Deployment.
pub async fn reconcile<S: MetricSource + Send + Sync + 'static>(
    d: Arc<Deployment>,
    ctx: Arc<Context<S>>,
) -> Result<Action, ReconcileError> {
    reconcile_at(d, ctx, 0).await
}

/// Times a write that met a conflict is decided again at once on the Deployment read afresh
/// from the API server, with the same verdicts, before waiting for the watch.
const CONFLICT_RETRIES: u32 = 3;

/// The Deployment as the API server has it now, slimmed as the store keeps it.
async fn read_afresh<S: MetricSource>(ctx: &Context<S>, d: &Deployment) -> Option<Deployment> {
    let ns = d.metadata.namespace.as_deref()?;
    let name = d.metadata.name.as_deref()?;
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let mut fresh = api.get(name).await.ok()?;
    slim(&mut fresh, ctx.selector.is_some());
    Some(fresh)
}

/// One reconciliation; `attempt` counts the conflicts met in this one so far.
async fn reconcile_at<S: MetricSource + Send + Sync + 'static>(
    d: Arc<Deployment>,
    ctx: Arc<Context<S>>,
    attempt: u32,
) -> Result<Action, ReconcileError> {
    let Started {
        key,
        name,
        mut kept,
        resolved,
    } = match start(&ctx, &d) {
        Ok(started) => started,
        Err(action) => return Ok(action),
    };
    let replicasets = list_replicasets(&ctx.client, &d)
        .await
        .map_err(|e| ReconcileError::List(name.clone(), e))?;
    let view = ctx.view_on_clock(kubernetes::view(&d, &replicasets));
    let now = (ctx.clock)();
    let began = Instant::now();
    let was_analysing = analysing(&kept.memory);
    kept_logs::take_back(&ctx, &d, &view, &mut kept.logs, was_analysing, now).await;
    let decided = decide(&ctx, &view, &mut kept, &resolved, attempt, now).await;
    let plan = &decided.plan;
    log_step(
        &name,
        &view,
        &resolved.settings,
        decided.evaluated.as_deref(),
        plan,
    );
    let recording = Recording {
        at: now,
        view: &view,
        mode: resolved.settings.mode,
        plan,
        reused_at: decided.reused.as_ref().map(|u| u.at),
    };
    // The evaluation and what it asks for, before anything is written; what was said and done
    // (notes, the write's result) after, so a plan that met a conflict leaves no false news.
    record_evaluation(&ctx.records, &recording, decided.evaluated.as_deref());

    // Leadership may have moved while evaluating.
    if !*ctx.leader.borrow() {
        return Ok(Action::requeue(NOT_LEADER));
    }
    let requeue = next_look(&ctx, plan, &kept, now, began);
    let outcome = ctx.actuator.write(&d, &replicasets, plan).await;
    record_write(&ctx.records, &recording, &outcome);
    let evaluated = decided.evaluated.as_ref().and(decided.wanted.as_ref());
    if outcome.is_ok()
        && let Some(change) = kept_logs::change(
            &ctx,
            analysing(&plan.memory),
            evaluated,
            &kept.logs,
            resolved.settings.dry_run(),
            now,
        )
    {
        kept_logs::apply(&ctx, &d, &mut kept.logs, change, now).await;
    }
    let after = AfterWrite {
        ctx,
        d,
        key,
        name,
        view,
        now,
        kept,
        resolved,
        decided,
    };
    match outcome {
        Ok(written) => Ok(after.succeeded(written, requeue).await),
        Err(ActError::Conflict(_)) => after.conflict(attempt).await,
        Err(ActError::Gone) => Ok(Action::await_change()),
        Err(e) => Err(after.failed(e)),
    }
}

/// Whether `m` says a revision is under analysis.
fn analysing(m: &Memory) -> bool {
    m.current.as_ref().is_some_and(|s| !s.stage.is_final())
}

/// A reconciliation started: the Deployment's key and name, what this process knows of it, and
/// its settings and rules after its annotations.
struct Started {
    key: ObjectRef<Deployment>,
    name: String,
    kept: Kept,
    resolved: Resolved,
}

/// Starts reconciling `d`, or says what to do instead (`Err`): nothing for a Deployment that
/// did not opt in; look again later on a replica that does not lead, while our last write is
/// not in the store yet, or for a Deployment at rest with nothing pending.
fn start<S>(ctx: &Context<S>, d: &Deployment) -> Result<Started, Action> {
    if !opted_in(d, ctx.selector.is_some()) {
        // Never written to, never analysed.
        return Err(Action::await_change());
    }
    if !*ctx.leader.borrow() {
        return Err(Action::requeue(NOT_LEADER));
    }
    let key = ObjectRef::from_obj(d);
    let name = format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any());
    let mut kept = match recall(ctx, d, &key, &name) {
        Ok(kept) => kept,
        Err(wait) => return Err(Action::requeue(wait)),
    };
    let resolved = match resolve_annotations(ctx, d, &name, &mut kept) {
        Ok(resolved) => resolved,
        Err(wait) => return Err(Action::requeue(wait)),
    };

    // Quick exit for Deployments at rest that the controller has nothing pending on.
    let at_rest = kubernetes::rolled_out(d);
    // An evaluation whose plan met a conflict is pending too: a rollout that finished while
    // its first plan could not be written is still analysed.
    if at_rest
        && !pending(&kept)
        && !completed_unseen(ctx, d, &kept, &resolved)
        && !kept
            .logs
            .to_delete(analysing(&kept.memory), resolved.settings.dry_run())
    {
        ctx.keep(key, kept);
        return Err(Action::requeue(ctx.wall(guard::IDLE_REQUEUE)));
    }
    Ok(Started {
        key,
        name,
        kept,
        resolved,
    })
}

/// The Deployment's settings and rules after its annotations, each new set of annotation
/// problems logged once (and kept in `kept`). `Err(wait)` if problems did not force observe.
fn resolve_annotations<S>(
    ctx: &Context<S>,
    d: &Deployment,
    name: &str,
    kept: &mut Kept,
) -> Result<Resolved, Duration> {
    let empty = BTreeMap::new();
    let ann = d.metadata.annotations.as_ref().unwrap_or(&empty);
    let rules = ctx.rules.borrow().clone();
    let base = ctx.base.borrow().clone();
    let resolved = annotations::resolve(ann, &base, &rules);
    if resolved.problems != kept.problems {
        for p in &resolved.problems {
            tracing::warn!(deployment = %name, problem = %p, "annotation ignored; observing only");
        }
        if !resolved.problems.is_empty() && !resolved.settings.dry_run() {
            // Unreachable: problems force observe. Kept as a guard against future edits.
            return Err(AFTER_ERROR);
        }
        kept.problems = resolved.problems.clone();
    }
    Ok(resolved)
}

/// What a step decided on: the target the policy wanted evaluated, the verdicts (reused or
/// new), and the plan made on them.
struct Decided {
    wanted: Option<Target>,
    /// An earlier evaluation whose plan met a conflict, decided on again.
    reused: Option<Unwritten>,
    /// The verdicts of an evaluation made in this step.
    evaluated: Option<Vec<Verdict>>,
    plan: Plan,
}

impl Decided {
    /// The rules the verdicts decided on were evaluated with: the reused evaluation's, or
    /// `resolved` (this step's).
    fn rules<'a>(&'a self, resolved: &'a Arc<RuleSet>) -> &'a Arc<RuleSet> {
        self.reused.as_ref().map_or(resolved, |u| &u.rules)
    }
}

/// One pass through the policy at `now`: what it wants evaluated, evaluated now (or the
/// verdicts of an evaluation whose plan met a conflict, reused), then the plan on the verdicts.
async fn decide<S: MetricSource>(
    ctx: &Context<S>,
    view: &RolloutView,
    kept: &mut Kept,
    resolved: &Resolved,
    attempt: u32,
    now: Timestamp,
) -> Decided {
    // The verdicts to decide on: new ones, or those of an evaluation whose plan met a conflict
    // less than an interval ago (already recorded, and they count for the pacing: if the
    // rollout moved on since, to another target, the next evaluation waits until it is due).
    // A retry after a conflict, within this reconciliation, always reuses them: the time the
    // API round trips took must not throw the evaluation away.
    let unwritten = kept
        .unwritten
        .take()
        .filter(|u| attempt > 0 || now < u.fresh_until);
    // One pass through the policy: what it wants evaluated now, then the plan on the verdicts.
    let step = guard::begin(view, &kept.memory, &resolved.settings, now);
    let wanted = step.target().cloned();
    // Verdicts about the same new ReplicaSet still stand when only the old side moved on (an
    // old pod left while they were written): the next evaluation compares with what is left.
    let (reused, evaluated) = match (&wanted, unwritten) {
        (Some(target), Some(u)) if u.target.new_replicaset == target.new_replicaset => {
            (Some(u), None)
        }
        (Some(_), Some(u)) => {
            kept.unwritten = Some(u);
            (None, None)
        }
        (Some(target), None) => (
            None,
            Some(evaluate_now(ctx, &resolved.rules, target, now).await),
        ),
        (None, _) => (None, None),
    };
    let verdicts = match &reused {
        Some(u) => Some(u.verdicts.as_slice()),
        None => evaluated.as_deref(),
    };
    let plan = step.finish(verdicts);
    Decided {
        wanted,
        reused,
        evaluated,
        plan,
    }
}

/// Records the evaluation and what it asks for, when there was one or the plan has news.
fn record_evaluation(records: &Recorder, recording: &Recording<'_>, evaluated: Option<&[Verdict]>) {
    let plan = recording.plan;
    let has_news = !plan.acts.is_empty() || !plan.suppressed.is_empty() || !plan.notes.is_empty();
    if evaluated.is_some() || has_news {
        records.write(&recording.record(
            Kind::Evaluation,
            evaluated.map(<[Verdict]>::to_vec).unwrap_or_default(),
            None,
            Vec::new(),
        ));
    }
}

/// Records what the plan did and said, with the write's result, when it acts or notes.
fn record_write(
    records: &Recorder,
    recording: &Recording<'_>,
    outcome: &Result<Option<Deployment>, ActError>,
) {
    let plan = recording.plan;
    if !plan.acts.is_empty() || !plan.notes.is_empty() {
        let (result, notes) = match outcome {
            Ok(_) => (WriteResult::Ok, plan.notes.clone()),
            Err(e) => (WriteResult::Failed(e.to_string()), Vec::new()),
        };
        records.write(&recording.record(Kind::Action, Vec::new(), Some(result), notes));
    }
}

/// How long until the next look, as a wall-clock wait: the plan's requeue, no later than a
/// pending unwritten evaluation goes stale.
fn next_look<S>(
    ctx: &Context<S>,
    plan: &Plan,
    kept: &Kept,
    now: Timestamp,
    began: Instant,
) -> Duration {
    let mut requeue = plan.requeue;
    if let Some(u) = &kept.unwritten {
        let left = Duration::try_from(u.fresh_until.duration_since(now)).unwrap_or_default();
        requeue = requeue.min(left);
    }
    // The plan counts from `now`, taken before evaluating: count the time that took (and
    // the write), so that evaluations stay one interval apart rather than drift later every cycle.
    ctx.wall(requeue).saturating_sub(began.elapsed())
}

/// What this process knows of the Deployment `d`: its kept memory, or the one on the
/// Deployment when another replica (or an earlier life of this one) wrote a newer one.
/// `Err(wait)` while our last write is not in the store yet: decide on what was written, not
/// on older news.
fn recall<S>(
    ctx: &Context<S>,
    d: &Deployment,
    key: &ObjectRef<Deployment>,
    name: &str,
) -> Result<Kept, Duration> {
    let empty = BTreeMap::new();
    let stored = read_memory(d.metadata.annotations.as_ref().unwrap_or(&empty));
    let mut kept = ctx
        .kept(key)
        .filter(|k| k.uid == d.metadata.uid)
        .unwrap_or_else(|| Kept {
            uid: d.metadata.uid.clone(),
            ..Kept::default()
        });
    if let Some(w) = &kept.written
        && stored.as_ref().is_none_or(|m| m.seq < w.seq)
    {
        let behind = match (d.metadata.generation, w.generation) {
            (Some(seen), Some(wrote)) => seen < wrote,
            _ => false,
        };
        if d.metadata.resource_version == w.over || behind {
            return Err(AFTER_WRITE);
        }
        // The store is past our write, yet its memory is older than ours: someone rewrote or
        // removed the state annotation since (`kubectl rollout undo` copies a ReplicaSet's
        // annotations back; so may a GitOps tool). Go on with what this process knows.
        tracing::warn!(
            deployment = %name,
            ours = w.seq,
            stored = stored.as_ref().map(|m| m.seq),
            "the state annotation was changed by someone else since our last write; keeping ours"
        );
        kept.written = None;
    }
    // Ours runs ahead of what we wrote (streaks change every evaluation but are written only
    // with news), so an equal or older stored copy is ours, already known.
    if let Some(m) = stored
        && m.seq > kept.memory.seq
    {
        kept.memory = m;
    }
    Ok(kept)
}

/// Whether `d` completed a rollout of a revision the controller has not seen, inside the bake
/// time before now (see [`guard::completed_unseen`]).
fn completed_unseen<S>(ctx: &Context<S>, d: &Deployment, kept: &Kept, resolved: &Resolved) -> bool {
    kubernetes::progress_completed(d).is_some_and(|done| {
        guard::completed_unseen(
            &kept.memory,
            kubernetes::revision_of(&d.metadata),
            ctx.on_clock(done),
            &resolved.settings,
            (ctx.clock)(),
        )
    })
}

/// Whether the controller has something pending on a Deployment at rest: an analysis not
/// ended, a rollback not verified, or an evaluation whose plan met a conflict (a rollout that
/// finished while its first plan could not be written is still analysed).
fn pending(kept: &Kept) -> bool {
    kept.unwritten.is_some()
        || kept.memory.current.as_ref().is_some_and(|s| {
            !s.stage.is_final()
                || matches!(s.stage, guard::Stage::RolledBack { verified: None, .. })
        })
}

/// How long to wait after the `conflicts`-th conflict in a row: doubling, bounded.
fn conflict_backoff(conflicts: u32) -> Duration {
    AFTER_CONFLICT
        .saturating_mul(1 << conflicts.saturating_sub(1).min(10))
        .min(AFTER_CONFLICT_MAX)
}

/// Evaluates the rules for `target` now, within the limit of evaluations at once, and counts
/// the verdicts and query errors.
async fn evaluate_now<S: MetricSource>(
    ctx: &Context<S>,
    rules: &RuleSet,
    target: &Target,
    now: Timestamp,
) -> Vec<Verdict> {
    // Never closed, so acquiring fails only if it were; evaluate anyway then.
    let _permit = ctx.evaluations.acquire().await.ok();
    let started = Instant::now();
    let evaluation = evaluate(rules, target, now, &ctx.source).await;
    ctx.metrics
        .evaluation_seconds
        .observe(started.elapsed().as_secs_f64());
    for v in &evaluation.verdicts {
        ctx.metrics.verdict(
            &target.namespace,
            &target.deployment,
            &v.rule,
            &v.outcome.to_string(),
        );
        if v.error.is_some() {
            ctx.metrics
                .query_errors
                .get_or_create(&RuleLabels {
                    rule: v.rule.clone(),
                })
                .inc();
        }
    }
    evaluation.verdicts
}

/// What to do after a failed reconciliation: count it, log it, retry later.
pub fn error_policy<S>(_d: Arc<Deployment>, e: &ReconcileError, ctx: Arc<Context<S>>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    tracing::warn!(error = %e, "reconcile failed; retrying");
    Action::requeue(AFTER_ERROR)
}

fn read_memory(ann: &BTreeMap<String, String>) -> Option<Memory> {
    match annotations::state(ann)? {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable {} annotation; ignoring it", annotations::STATE);
            None
        }
    }
}

/// The ReplicaSets matching the Deployment's selector (the Deployment controller's own query).
pub async fn list_replicasets(
    client: &Client,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, kube::Error> {
    let ns = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let mut lp = ListParams::default();
    if let Some(sel) = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
    {
        let s: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lp = lp.labels(&s.join(","));
    }
    Ok(api.list(&lp).await?.items)
}

/// Where to watch: every namespace, or the listed ones.
pub fn deployment_apis(
    client: &Client,
    namespaces: &[String],
) -> Vec<(Api<Deployment>, Api<PartialObjectMeta<ReplicaSet>>)> {
    if namespaces.is_empty() {
        vec![(Api::all(client.clone()), Api::all(client.clone()))]
    } else {
        namespaces
            .iter()
            .map(|ns| {
                (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                )
            })
            .collect()
    }
}

/// Runs the controller until `shutdown` resolves. One kube `Controller` per watched namespace
/// (or one for all), sharing the context.
pub async fn run_controller<S: MetricSource + Send + Sync + 'static>(
    ctx: Arc<Context<S>>,
    namespaces: &[String],
    stop: watch::Receiver<bool>,
    synced: impl Fn() + Send + Sync + 'static,
) {
    let mut leader = ctx.leader.clone();
    let forget = ctx.clone();
    // A replica that loses the lease forgets what it kept: the next leader's writes win.
    tokio::spawn(async move {
        while leader.changed().await.is_ok() {
            let is = *leader.borrow();
            forget.metrics.leader.set(i64::from(is));
            if !is {
                forget.forget_all();
            }
        }
    });
    ctx.metrics.leader.set(i64::from(*ctx.leader.borrow()));
    let synced = Arc::new(synced);
    let apis = deployment_apis(&ctx.client, namespaces);
    let mut readers = Vec::new();
    let mut runs = Vec::new();
    for (deployments, replicasets) in apis {
        let mut wc = watcher::Config::default().page_size(LIST_PAGE);
        if let Some(sel) = &ctx.selector {
            wc = wc.labels(sel);
        }
        let (reader, writer) = reflector::store();
        let by_selector = ctx.selector.is_some();
        let stream = watcher(deployments, wc.clone())
            .default_backoff()
            .modify(move |d: &mut Deployment| slim(d, by_selector))
            .reflect(writer)
            .touched_objects();
        let owners = watcher(replicasets, watcher::Config::default().page_size(LIST_PAGE))
            .default_backoff()
            .touched_objects();
        readers.push(reader.clone());
        let fut = Controller::for_stream(stream, reader)
            .owns_stream(owners)
            .graceful_shutdown_on(stopped(stop.clone()))
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|res| async move {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "controller event");
                }
            });
        runs.push(fut);
    }
    let counting = tokio::spawn(watch_stores(readers, ctx.clone(), synced));
    futures::future::join_all(runs).await;
    counting.abort();
}

/// Calls `synced` once every namespace's watch has listed, then keeps the opted-in gauge
/// up to date from the stores (no API calls).
async fn watch_stores<S>(
    readers: Vec<reflector::Store<Deployment>>,
    ctx: Arc<Context<S>>,
    synced: Arc<impl Fn() + Send + Sync + 'static>,
) {
    for reader in &readers {
        // kube's store readiness wakes only its latest waiter (the controller's own applier
        // also waits on it), so look again every 200 ms rather than wait once.
        loop {
            match tokio::time::timeout(Duration::from_millis(200), reader.wait_until_ready()).await
            {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
    }
    synced();
    let by_selector = ctx.selector.is_some();
    loop {
        let n: usize = readers
            .iter()
            .map(|r| {
                r.state()
                    .iter()
                    .filter(|d| opted_in(d, by_selector))
                    .count()
            })
            .sum();
        ctx.metrics.deployments_opted_in.set(n as i64);
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

/// A future that resolves once `stop` is true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests;
