//! `rollout-guard backtest`: its flags, finding the rollout to replay, and running the replay.
//!
//! With only `-n NS -d NAME` it reads the Deployment and its ReplicaSets (read only, with the
//! user's kubeconfig) and replays its latest rollout, or the one `--revision` names: which
//! ReplicaSets is [`crate::adapters::kubernetes::revisions::choose`]'s business, the window
//! ([`window`]) starts one `--step` before the new ReplicaSet was created and ends where the
//! controller's analysis ended, at the rollout's completion by kube-state-metrics plus the bake
//! ([`completed`]; an hour, or until now, without those series). When the old ReplicaSet is
//! gone from the API, kube-state-metrics in Prometheus may still say which ReplicaSets had pods
//! then. Flags given by hand override what is found; with all of them the cluster is not read
//! at all. It says on stderr what it chose.
//!
//! Owns the command's flags, its messages and the order of its reads. Must not judge anything
//! (that is [`crate::analysis::backtest`]'s), nor write to the cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use jiff::{SignedDuration, Timestamp};

use super::{Output, PrometheusArgs, load_rules, moment, print_stdout};
use crate::adapters::kubernetes::revisions::{self, Before, Rollout, Start};
use crate::adapters::prometheus::PrometheusSource;
use crate::analysis::backtest::{Replay, replay};
use crate::analysis::duration::PromDuration;
use crate::analysis::evaluate::Target;
use crate::analysis::source::{MetricSource, SourceError};
use crate::app::cluster::client;

/// How long a replay lasts when `--to` is not given (unless it would end after now).
pub(super) const DEFAULT_SPAN: SignedDuration = SignedDuration::from_secs(3600);

/// The flags of `backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Namespace of the Deployment (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Name of the Deployment.
    #[arg(short, long)]
    pub deployment: String,
    /// Replay the rollout that introduced this revision (`deployment.kubernetes.io/revision`)
    /// instead of the latest one.
    #[arg(long)]
    pub revision: Option<u64>,
    /// The ReplicaSet of the previous version (repeat for several). Default: the one that
    /// held the revision before, read from the cluster (or, when it is gone, the Deployment's
    /// ReplicaSets that had pods at --from by kube-state-metrics in Prometheus).
    #[arg(long = "old-replicaset")]
    pub old_replicasets: Vec<String>,
    /// The ReplicaSet of the new version. Default: the one of the revision replayed.
    #[arg(long = "new-replicaset")]
    pub new_replicaset: Option<String>,
    /// Start of the replay: RFC 3339 (e.g. 2026-11-20T10:00:00Z), or now-DURATION (now-1h).
    /// Default: one --step before the new ReplicaSet was created.
    #[arg(long, value_parser = moment)]
    pub from: Option<Timestamp>,
    /// End of the replay: RFC 3339, now, or now-DURATION. Default: an hour after --from, or
    /// now if that is earlier.
    #[arg(long, value_parser = moment)]
    pub to: Option<Timestamp>,
    /// Time between evaluations; match the controller's interval.
    #[arg(long, default_value = "30s")]
    pub step: PromDuration,
    /// The bake after the rollout's completion, when --to is not given: the replay ends where
    /// the controller's analysis ended, at the completion (the old ReplicaSets' last replica
    /// gone, by kube-state-metrics) plus this. Default: the Deployment's
    /// `rollout-guard.io/bake-time` as it is now, else the controller's built-in default
    /// (10m; give --bake if its configuration sets another).
    #[arg(long, conflicts_with = "to")]
    pub bake: Option<PromDuration>,
    /// End at --to even when a rule's streak is under way or its pass is not settled there.
    /// By default the replay goes on past --to as the controller goes on past the bake's end
    /// (give --to at the bake's end to replay what the controller did), up to now.
    #[arg(long)]
    pub no_extension: bool,
    /// Rule files or folders; the bundled default rules when left out.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// `text`: a readable timeline; `json`: one JSON object (see the README for its fields).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// How to reach Prometheus.
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

impl BacktestArgs {
    /// The flags that, given, spare reading the cluster, and are not given.
    fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.namespace.is_none() {
            m.push("--namespace");
        }
        if self.old_replicasets.is_empty() {
            m.push("--old-replicaset");
        }
        if self.new_replicaset.is_none() {
            m.push("--new-replicaset");
        }
        if self.from.is_none() {
            m.push("--from");
        }
        if self.to.is_none() {
            m.push("--to");
        }
        m
    }
}

pub(super) fn run(args: BacktestArgs) -> Result<ExitCode> {
    let rules = load_rules(&args.rules)?;
    let source =
        PrometheusSource::new(&args.prometheus.config()).context("invalid Prometheus settings")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (spec, report) = runtime.block_on(async {
        let spec = find(&args, &source).await?;
        let total = spec.times()?.len();
        source
            .check()
            .await
            .with_context(|| format!("cannot query Prometheus at {}", source.url()))?;
        let show_progress = total >= 20;
        let mut last_shown = 0;
        // Series that vanish between steps are a partial answer, not zero.
        let source = crate::analysis::source::Consistent::new(source);
        let report = replay(&rules, &spec, &source, |done, total| {
            // Every tenth of the way, and at the end.
            if show_progress && (done * 10 / total > last_shown || done == total) {
                last_shown = done * 10 / total;
                eprintln!("backtest: {done}/{total} evaluations");
            }
        })
        .await?;
        anyhow::Ok((spec, report))
    })?;
    let text = match args.output {
        Output::Json => {
            serde_json::to_string(&report).context("cannot serialise the report")? + "\n"
        }
        Output::Text => report.to_text(&spec, &rules),
    };
    print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Why the rollout to replay cannot be found.
#[derive(Debug, thiserror::Error)]
enum FindError {
    #[error(
        "--revision picks the rollout to find, but --old-replicaset, --new-replicaset, --from \
         and --to are all given: leave it out, or some of them"
    )]
    RevisionUnused,
    #[error("there is no Deployment {name} in namespace {ns}")]
    NoDeployment { ns: String, name: String },
    #[error(
        "{rs} is not a ReplicaSet of {ns}/{name} in the API (deleted?): give {} with it",
        and_list(.missing)
    )]
    NewNotFound {
        ns: String,
        name: String,
        rs: String,
        missing: Vec<&'static str>,
    },
    #[error(
        "revision {revision} of {ns}/{name} re-used ReplicaSet {rs}{}, so its creation time does \
         not say when that rollout began: give --from (the rollback's time){}",
        created_for.map(|r| format!(" (created for revision {r}: a rollback)")).unwrap_or_default(),
        replaced.map(|r| format!(", or --revision {r} to replay the release it replaced")).unwrap_or_default()
    )]
    Reused {
        ns: String,
        name: String,
        revision: u64,
        rs: String,
        created_for: Option<u64>,
        replaced: Option<u64>,
    },
    #[error("ReplicaSet {rs} has no creationTimestamp: give --from")]
    NoCreationTime { rs: String },
    #[error(
        "revision {revision} is the first of {ns}/{name}: it replaced no older ReplicaSet to \
         compare it with (give --old-replicaset to compare it with another)"
    )]
    First {
        ns: String,
        name: String,
        revision: u64,
    },
    #[error(
        "the ReplicaSet of revision {gone}, which revision {revision} ({new}) replaced, is gone \
         from the API (deleted beyond the Deployment's revisionHistoryLimit?), and {why}: give \
         --old-replicaset (and --new-replicaset, --from, --to to replay without the cluster)"
    )]
    OldGone {
        revision: u64,
        new: String,
        gone: u64,
        why: String,
    },
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The replay the flags ask for: given outright, or found in the cluster (and, for an old
/// ReplicaSet that is gone, in kube-state-metrics). Says on stderr what it found.
async fn find(args: &BacktestArgs, source: &impl MetricSource) -> Result<Replay> {
    if let Some(replay) = given(args).await? {
        return Ok(replay);
    }
    let name = &args.deployment;
    let (client, default_ns) = client(args.kubeconfig.as_deref(), args.context.as_deref())
        .await
        .with_context(|| no_cluster(args, args.namespace.as_deref()))?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let (d, replicasets) = super::status::read_deployment(&client, &ns, name)
        .await
        .with_context(|| no_cluster(args, Some(&ns)))?
        .ok_or_else(|| FindError::NoDeployment {
            ns: ns.clone(),
            name: name.clone(),
        })?;
    let history = revisions::history(&d, &replicasets);
    let revision = revision(args, &history, &ns)?;
    let rollout = revisions::choose(&history, revision).with_context(|| {
        format!(
            "cannot find the rollout of {ns}/{name} to replay (give --old-replicaset, \
             --new-replicaset, --from and --to to name it)"
        )
    })?;
    let new = args
        .new_replicaset
        .clone()
        .unwrap_or_else(|| rollout.new.name.clone());
    let window = window(
        started(&rollout, &ns, name),
        args.from,
        args.to,
        args.step,
        Timestamp::now(),
    )?;
    let (old, old_why) = if args.old_replicasets.is_empty() {
        old(&rollout, &ns, name, &new, window.from, source).await?
    } else {
        (args.old_replicasets.clone(), "given".to_string())
    };
    eprintln!(
        "backtest: {ns}/{name} revision {}: new ReplicaSet {new} ({}), old {} ({old_why})",
        rollout.revision,
        new_why(args, &rollout),
        old.join(", ")
    );
    // When the old ReplicaSets had no replica left: the controller's view of the rollout's
    // completion, from which they are departed and its bake runs.
    let done = match completed(source, &ns, &old, &window, args.step).await {
        Ok(Some(done)) => Some(done),
        Ok(None) => {
            eprintln!(
                "backtest: kube-state-metrics in Prometheus does not show {} going from some replicas to 0 between {} and {} (no such series, a series that vanished, or a rollout not complete by then){}",
                old.join(", "),
                window.from,
                window.to,
                if args.to.is_none() {
                    "; give --to (the rollout's completion plus the bake) to replay what the controller did"
                } else {
                    ""
                }
            );
            None
        }
        Err(e) => {
            eprintln!(
                "backtest: asking kube-state-metrics in Prometheus when the rollout completed failed ({e})"
            );
            None
        }
    };
    let window = match done {
        Some(done) if args.to.is_none() => {
            window.ending_at_bake(done, bake(args, &d), args.step, Timestamp::now())
        }
        _ => window,
    };
    eprintln!("backtest: {}", window.describe(&rollout.new.name));
    Ok(Replay {
        target: target(ns, name, new, old),
        from: window.from,
        to: window.to,
        step: args.step,
        extend_until: extend_until(args),
        departed_at: done,
    })
}

/// The replay when the flags name it all (the ReplicaSets, `--from` and `--to`), without
/// asking the cluster anything; `None` when some are missing.
async fn given(args: &BacktestArgs) -> Result<Option<Replay>> {
    let (false, Some(new), Some(from), Some(to)) = (
        args.old_replicasets.is_empty(),
        &args.new_replicaset,
        args.from,
        args.to,
    ) else {
        return Ok(None);
    };
    if args.revision.is_some() {
        return Err(FindError::RevisionUnused.into());
    }
    let ns = match &args.namespace {
        Some(ns) => ns.clone(),
        // Only the kubeconfig's namespace is read; the cluster is not asked anything.
        None => {
            client(args.kubeconfig.as_deref(), args.context.as_deref())
                .await
                .with_context(|| no_cluster(args, None))?
                .1
        }
    };
    Ok(Some(Replay {
        target: target(
            ns,
            &args.deployment,
            new.clone(),
            args.old_replicasets.clone(),
        ),
        from,
        to,
        step: args.step,
        extend_until: extend_until(args),
        departed_at: None,
    }))
}

/// How far past `--to` a replay may go on: up to now, where the data ends.
fn extend_until(args: &BacktestArgs) -> Option<Timestamp> {
    (!args.no_extension).then(Timestamp::now)
}

/// What to say when the Deployment (in `ns`, when known) cannot be read from the cluster: the
/// flags to give instead.
fn no_cluster(args: &BacktestArgs, ns: Option<&str>) -> String {
    let name = &args.deployment;
    let what = match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => format!("Deployment {name}"),
    };
    format!(
        "cannot read {what} from the cluster to find the rollout to replay; without cluster \
         access give {}",
        and_list(&args.missing())
    )
}

/// The revision to replay: `--revision`, else the one of `--new-replicaset` in `history`, else
/// `None` (the latest).
fn revision(
    args: &BacktestArgs,
    history: &[revisions::Revisioned],
    ns: &str,
) -> Result<Option<u64>, FindError> {
    match (args.revision, &args.new_replicaset) {
        (Some(n), _) => Ok(Some(n)),
        (None, Some(rs)) => match history.iter().find(|r| &r.name == rs) {
            Some(r) => Ok(Some(r.revision)),
            None => Err(FindError::NewNotFound {
                ns: ns.to_string(),
                name: args.deployment.clone(),
                rs: rs.clone(),
                missing: args
                    .missing()
                    .into_iter()
                    .filter(|f| !matches!(*f, "--namespace" | "--new-replicaset"))
                    .collect(),
            }),
        },
        (None, None) => Ok(None),
    }
}

/// How the new ReplicaSet was found: given, created when the rollout began, or re-used.
fn new_why(args: &BacktestArgs, rollout: &Rollout) -> String {
    match (&args.new_replicaset, &rollout.start) {
        (Some(_), _) => "given".to_string(),
        (None, Start::Created(t)) => format!("created {t}"),
        (None, _) => "re-used".to_string(),
    }
}

fn target(ns: String, name: &str, new: String, old: Vec<String>) -> Target {
    Target {
        namespace: ns,
        deployment: name.to_string(),
        new_replicaset: new,
        old_replicasets: old,
        departed: Vec::new(),
    }
}

/// When the rollout began, if its new ReplicaSet says; why not, as the error to give when
/// `--from` is not given either.
fn started(rollout: &Rollout, ns: &str, name: &str) -> Started {
    match &rollout.start {
        Start::Created(t) => Started::At(*t),
        Start::Reused { created_for } => Started::Unknown(FindError::Reused {
            ns: ns.to_string(),
            name: name.to_string(),
            revision: rollout.revision,
            rs: rollout.new.name.clone(),
            created_for: *created_for,
            replaced: match &rollout.before {
                Before::Found { revision, .. } => Some(*revision),
                _ => None,
            },
        }),
        Start::Unknown => Started::Unknown(FindError::NoCreationTime {
            rs: rollout.new.name.clone(),
        }),
    }
}

/// When the rollout began: the new ReplicaSet's creation, or why that does not tell.
#[derive(Debug)]
enum Started {
    At(Timestamp),
    Unknown(FindError),
}

/// The old ReplicaSets, and how they were found.
async fn old(
    rollout: &Rollout,
    ns: &str,
    name: &str,
    new: &str,
    at: Timestamp,
    source: &impl MetricSource,
) -> Result<(Vec<String>, String), FindError> {
    match &rollout.before {
        Before::Found {
            replicaset,
            revision,
        } => Ok((
            vec![replicaset.name.clone()],
            format!("revision {revision}"),
        )),
        Before::Nothing => Err(FindError::First {
            ns: ns.to_string(),
            name: name.to_string(),
            revision: rollout.revision,
        }),
        Before::Gone { revision } => {
            let gone = |why: String| FindError::OldGone {
                revision: rollout.revision,
                new: new.to_string(),
                gone: *revision,
                why,
            };
            match with_pods(source, ns, name, new, at).await {
                Ok(found) if !found.is_empty() => Ok((
                    found,
                    format!(
                        "revision {revision}: gone from the API, found by kube-state-metrics \
                         with pods at {at}"
                    ),
                )),
                Ok(_) => Err(gone(format!(
                    "kube-state-metrics in Prometheus shows no other ReplicaSet of it with pods at {at}"
                ))),
                Err(e) => Err(gone(format!(
                    "asking kube-state-metrics in Prometheus failed: {e}"
                ))),
            }
        }
    }
}

/// The ReplicaSets of the Deployment, other than `new`, that kube-state-metrics saw with pods
/// at `at`, sorted.
async fn with_pods(
    source: &impl MetricSource,
    ns: &str,
    name: &str,
    new: &str,
    at: Timestamp,
) -> Result<Vec<String>, SourceError> {
    let series = source.instant(&with_pods_query(ns, name), at).await?;
    let mut names: Vec<String> = series
        .into_iter()
        .filter_map(|s| s.labels.get("replicaset").cloned())
        .filter(|rs| rs != new)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// kube-state-metrics' ReplicaSets of a Deployment that have pods.
fn with_pods_query(ns: &str, name: &str) -> String {
    let (ns, name) = (
        crate::analysis::template::escape_string(ns),
        crate::analysis::template::escape_string(name),
    );
    let replicas = format!("kube_replicaset_status_replicas{{namespace=\"{ns}\"}} > 0");
    let owner = format!(
        "kube_replicaset_owner{{namespace=\"{ns}\", owner_kind=\"Deployment\", owner_name=\"{name}\"}}"
    );
    format!("{replicas} and on(namespace, replicaset) {owner}")
}

/// The bake the controller would have kept after the rollout: `--bake`, else the Deployment's
/// `rollout-guard.io/bake-time` (when valid), else the controller's default.
fn bake(args: &BacktestArgs, d: &k8s_openapi::api::apps::v1::Deployment) -> PromDuration {
    args.bake.unwrap_or_else(|| {
        let annotations = d.metadata.annotations.clone().unwrap_or_default();
        crate::policy::annotations::bake_time_of(&annotations)
            .unwrap_or(crate::policy::guard::Settings::default().bake)
            .into()
    })
}

/// When the rollout completed: the first moment in the window, on the `step` grid, at which
/// kube-state-metrics counts no replica of the old ReplicaSets after counting some. `None`
/// when it never does in the window (or has no such series).
async fn completed(
    source: &impl MetricSource,
    ns: &str,
    old: &[String],
    window: &Window,
    step: PromDuration,
) -> Result<Option<Timestamp>, SourceError> {
    let query = format!(
        "sum(kube_replicaset_status_replicas{{namespace=\"{}\", replicaset=~\"{}\"}})",
        crate::analysis::template::escape_string(ns),
        crate::analysis::template::escape_string(&crate::analysis::template::replicaset_regex(old))
    );
    let series = source.range(&query, window.from, window.to, step).await?;
    let points = series
        .first()
        .map(|s| s.points.as_slice())
        .unwrap_or_default();
    let first_served = points.iter().position(|p| p.v > 0.0);
    Ok(first_served.and_then(|i| {
        points[i..]
            .iter()
            .find(|p| p.v == 0.0)
            .and_then(|p| Timestamp::from_millisecond((p.t * 1000.0).round() as i64).ok())
    }))
}

/// The span replayed and where each end came from.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    from: Timestamp,
    to: Timestamp,
    from_given: bool,
    /// How the end was chosen.
    to_why: ToWhy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ToWhy {
    Given,
    /// An hour after the start.
    Span,
    /// Now, which came before an hour after the start.
    Now,
    /// The rollout's completion plus the bake, as the controller's analysis ended (on the
    /// step grid: the controller's bake ends at its first evaluation at or past it).
    Bake {
        completed: Timestamp,
        bake: PromDuration,
    },
    /// Now, which came before the rollout's completion plus the bake.
    NowInBake {
        completed: Timestamp,
        bake: PromDuration,
    },
}

impl Window {
    fn describe(&self, new: &str) -> String {
        let from = if self.from_given {
            "given".to_string()
        } else {
            format!("one --step before {new} was created")
        };
        let to = match self.to_why {
            ToWhy::Given => "given".to_string(),
            ToWhy::Span => "an hour after --from".to_string(),
            ToWhy::Now => "now".to_string(),
            ToWhy::Bake { completed, bake } => format!(
                "the rollout completed at {completed} by kube-state-metrics, plus the bake of {bake}"
            ),
            ToWhy::NowInBake { completed, bake } => format!(
                "now: the rollout completed at {completed} by kube-state-metrics, and its bake of {bake} is not over"
            ),
        };
        format!("from {} ({from}) to {} ({to})", self.from, self.to)
    }

    /// Ends where the controller's analysis ended: at its first evaluation (on the `step` grid
    /// from `from`) at or past the rollout's completion plus the bake, or now if that is later.
    fn ending_at_bake(
        self,
        completed: Timestamp,
        bake: PromDuration,
        step: PromDuration,
        now: Timestamp,
    ) -> Window {
        let step_ms = (step.as_std().as_millis() as i64).max(1);
        let bake_span = SignedDuration::try_from(bake.as_std()).ok();
        let end = bake_span
            .and_then(|b| completed.checked_add(b).ok())
            .and_then(|end| {
                let after = end.duration_since(self.from).as_millis() as i64;
                let steps = after.div_euclid(step_ms) + i64::from(after.rem_euclid(step_ms) > 0);
                self.from
                    .checked_add(SignedDuration::from_millis(steps.checked_mul(step_ms)?))
                    .ok()
            });
        match end {
            Some(end) if end <= self.from => self,
            Some(end) if end <= now => Window {
                to: end,
                to_why: ToWhy::Bake { completed, bake },
                ..self
            },
            _ => Window {
                to: now,
                to_why: ToWhy::NowInBake { completed, bake },
                ..self
            },
        }
    }
}

/// Where the replay starts and ends: the flags when given; else from one `step` before the
/// rollout `started`, to an hour later or `now`, whichever comes first.
fn window(
    started: Started,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    step: PromDuration,
    now: Timestamp,
) -> Result<Window, anyhow::Error> {
    let (from, from_given) = match (from, started) {
        (Some(t), _) => (t, true),
        (None, Started::Unknown(e)) => return Err(e.into()),
        (None, Started::At(t)) => {
            let step = SignedDuration::try_from(step.as_std())
                .map_err(|e| anyhow!("--step {step}: {e}"))?;
            let from = t
                .checked_sub(step)
                .map_err(|e| anyhow!("--step {step} before {t}: {e}"))?;
            (from, false)
        }
    };
    let (to, to_why) = match to {
        Some(t) => (t, ToWhy::Given),
        None => match from.checked_add(DEFAULT_SPAN) {
            Ok(end) if end <= now => (end, ToWhy::Span),
            _ => (now, ToWhy::Now),
        },
    };
    if from >= to {
        bail!(
            "the replay would start at {from}{} and end at {to}{}: give --from before --to",
            if from_given { " (--from)" } else { "" },
            if to_why == ToWhy::Given {
                " (--to)"
            } else {
                ""
            }
        );
    }
    Ok(Window {
        from,
        to,
        from_given,
        to_why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const STEP: PromDuration = PromDuration::from_secs(30);

    #[test]
    fn the_window_starts_a_step_before_the_new_replicaset_and_lasts_an_hour_or_until_now() {
        let created = at("2026-11-20T10:00:00Z");
        let later = at("2026-11-21T00:00:00Z");
        let w = window(Started::At(created), None, None, STEP, later).unwrap();
        assert_eq!(w.from, at("2026-11-20T09:59:30Z"));
        assert_eq!((w.to, w.to_why), (at("2026-11-20T10:59:30Z"), ToWhy::Span));
        assert!(!w.from_given);
        // A rollout ten minutes old is replayed until now.
        let soon = at("2026-11-20T10:10:00Z");
        let w = window(Started::At(created), None, None, STEP, soon).unwrap();
        assert_eq!((w.to, w.to_why), (soon, ToWhy::Now));
        assert_eq!(
            w.describe("shop-b"),
            "from 2026-11-20T09:59:30Z (one --step before shop-b was created) to 2026-11-20T10:10:00Z (now)"
        );
    }

    #[test]
    fn the_end_is_the_completion_plus_the_bake_on_the_step_grid_or_now() {
        let created = at("2026-11-20T10:00:00Z");
        let later = at("2026-11-21T00:00:00Z");
        let w = || window(Started::At(created), None, None, STEP, later).unwrap();
        let bake = PromDuration::from_secs(600);
        let baked = w().ending_at_bake(at("2026-11-20T10:05:00Z"), bake, STEP, later);
        assert_eq!(baked.to, at("2026-11-20T10:15:00Z"));
        assert_eq!(
            baked.describe("shop-b"),
            "from 2026-11-20T09:59:30Z (one --step before shop-b was created) to 2026-11-20T10:15:00Z (the rollout completed at 2026-11-20T10:05:00Z by kube-state-metrics, plus the bake of 10m)"
        );
        // Off the grid: the controller's first evaluation at or past the bake's end.
        let off = w().ending_at_bake(at("2026-11-20T10:05:10Z"), bake, STEP, later);
        assert_eq!(off.to, at("2026-11-20T10:15:30Z"));
        // Past the hour: the controller's analysis, not the hour.
        let long = w().ending_at_bake(at("2026-11-20T10:55:00Z"), bake, STEP, later);
        assert_eq!(long.to, at("2026-11-20T11:05:00Z"));
        // Not over yet: now, and it says so.
        let soon = at("2026-11-20T10:12:00Z");
        let open = w().ending_at_bake(at("2026-11-20T10:05:00Z"), bake, STEP, soon);
        assert_eq!(open.to, soon);
        assert!(open.describe("shop-b").ends_with(
            "to 2026-11-20T10:12:00Z (now: the rollout completed at 2026-11-20T10:05:00Z by kube-state-metrics, and its bake of 10m is not over)"
        ));
        // A bake that overflows the calendar: now.
        let huge = w().ending_at_bake(created, PromDuration::from_secs(u64::MAX), STEP, later);
        assert_eq!(huge.to, later);
    }

    #[test]
    fn the_bake_is_the_flag_else_the_annotation_else_the_controllers_default() {
        let args = |bake: Option<&str>| {
            let mut v = vec![
                "rollout-guard",
                "backtest",
                "-d",
                "shop",
                "--prometheus-url",
                "http://127.0.0.1:9",
            ];
            if let Some(b) = bake {
                v.extend(["--bake", b]);
            }
            let cli = <crate::app::cli::Cli as clap::Parser>::try_parse_from(v).unwrap();
            match cli.command {
                crate::app::cli::Command::Backtest(a) => *a,
                _ => unreachable!(),
            }
        };
        let mut d = k8s_openapi::api::apps::v1::Deployment::default();
        assert_eq!(bake(&args(None), &d), PromDuration::from_secs(600));
        d.metadata.annotations =
            Some([("rollout-guard.io/bake-time".to_string(), "2m".to_string())].into());
        assert_eq!(bake(&args(None), &d), PromDuration::from_secs(120));
        assert_eq!(bake(&args(Some("3m")), &d), PromDuration::from_secs(180));
        // An annotation the controller would refuse is not taken.
        d.metadata.annotations =
            Some([("rollout-guard.io/bake-time".to_string(), "soon".to_string())].into());
        assert_eq!(bake(&args(None), &d), PromDuration::from_secs(600));
    }

    #[test]
    fn given_ends_win_and_an_unknown_start_needs_from() {
        let given = at("2026-11-20T08:00:00Z");
        let unknown = || {
            Started::Unknown(FindError::NoCreationTime {
                rs: "shop-a".into(),
            })
        };
        let now = at("2026-11-21T00:00:00Z");
        let w = window(unknown(), Some(given), None, STEP, now).unwrap();
        assert_eq!((w.from, w.to), (given, at("2026-11-20T09:00:00Z")));
        assert!(w.from_given);
        let w = window(unknown(), Some(given), Some(now), STEP, now).unwrap();
        assert_eq!((w.to, w.to_why), (now, ToWhy::Given));
        let err = window(unknown(), None, Some(now), STEP, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ReplicaSet shop-a has no creationTimestamp: give --from"
        );
        // A --to before the start found is a usage error, not an empty replay.
        let err = window(
            Started::At(at("2026-11-20T10:00:00Z")),
            None,
            Some(given),
            STEP,
            now,
        )
        .unwrap_err();
        assert!(err.to_string().contains("give --from before --to"), "{err}");
    }

    #[test]
    fn the_reused_error_says_which_replicaset_and_what_to_give() {
        let e = FindError::Reused {
            ns: "web".into(),
            name: "shop".into(),
            revision: 4,
            rs: "shop-a".into(),
            created_for: Some(1),
            replaced: Some(3),
        };
        assert_eq!(
            e.to_string(),
            "revision 4 of web/shop re-used ReplicaSet shop-a (created for revision 1: a rollback), \
             so its creation time does not say when that rollout began: give --from (the \
             rollback's time), or --revision 3 to replay the release it replaced"
        );
    }

    #[test]
    fn the_kube_state_metrics_query_quotes_its_labels() {
        assert_eq!(
            with_pods_query("web", "sh\"op"),
            "kube_replicaset_status_replicas{namespace=\"web\"} > 0 and on(namespace, replicaset) \
             kube_replicaset_owner{namespace=\"web\", owner_kind=\"Deployment\", owner_name=\"sh\\\"op\"}"
        );
        assert_eq!(and_list(&["--from"]), "--from");
        assert_eq!(
            and_list(&["--old-replicaset", "--from", "--to"]),
            "--old-replicaset, --from and --to"
        );
    }
}
