//! `rollout-guard status`: reads a Deployment, its ReplicaSets, the controller's state
//! annotation and its latest Events through the Kubernetes API (read only, with the user's
//! kubeconfig), asks [`crate::policy::status`] what became of the release, prints it, and exits with
//! its code; with `--wait`, reads again every few seconds until the analysis has ended.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use super::{StatusArgs, StatusFormat};
use crate::controller::actions::FIELD_MANAGER;
use crate::policy::annotations;
use crate::policy::guard::Mode;
use crate::policy::rollout::RolloutView;
use crate::policy::status::{Guarding, Status, assess, compared_lines, text};

/// Time between reads while waiting.
const POLL: Duration = Duration::from_secs(2);
/// The controller's Events shown with a status, newest last.
const EVENTS_SHOWN: usize = 5;

/// What is printed: the status and the controller's latest Events on the Deployment.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    status: Status,
    /// Empty when there are none, or they cannot be read (`events_error` says why).
    events: Vec<EventLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events_error: Option<String>,
}

#[derive(Serialize)]
struct EventLine {
    reason: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    count: i32,
}

pub(super) fn run(args: &StatusArgs) -> Result<ExitCode> {
    block_on(async {
        let (client, default_ns) =
            client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
        let ns = args.namespace.clone().unwrap_or(default_ns);
        let deadline = Instant::now() + args.timeout.as_std();
        loop {
            let status = read(&client, &ns, &args.deployment, args.revision).await?;
            let done = status.state.is_settled() || !args.wait || Instant::now() >= deadline;
            if done {
                let code = status.exit_code;
                let (events, events_error) = match events(&client, &ns, &args.deployment).await {
                    Ok(e) => (e, None),
                    Err(e) => (Vec::new(), Some(crate::adapters::errors::chain(e.as_ref()))),
                };
                print(
                    &Shown {
                        status,
                        events,
                        events_error,
                    },
                    args.output,
                )?;
                return Ok(ExitCode::from(code));
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    })
}

pub(super) use crate::app::cluster::client;

/// The Deployment `ns`/`name` and the view of its rollout, read once.
pub(super) async fn deployment(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(Deployment, RolloutView)> {
    let (d, replicasets) = read_deployment(client, ns, name)
        .await?
        .ok_or_else(|| anyhow!("there is no Deployment {name} in namespace {ns}"))?;
    let view = crate::adapters::kubernetes::view(&d, &replicasets);
    Ok((d, view))
}

/// The Deployment `ns`/`name` and the ReplicaSets of its selector; `None` when there is no
/// such Deployment.
pub(super) async fn read_deployment(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(Deployment, Vec<ReplicaSet>)>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let Some(d) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading Deployment {ns}/{name}"))?
    else {
        return Ok(None);
    };
    let replicasets = crate::controller::list_replicasets(client, &d)
        .await
        .with_context(|| format!("listing the ReplicaSets of {ns}/{name}"))?;
    Ok(Some((d, replicasets)))
}

/// Runs `f` on a runtime of its own (the read-only commands are short and sequential).
pub(super) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

async fn read(client: &Client, ns: &str, name: &str, revision: Option<u64>) -> Result<Status> {
    let (d, view) = deployment(client, ns, name).await?;
    let ann = d.annotations();
    let memory = match annotations::state(ann) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            return Err(anyhow!(
                "the {} annotation of {ns}/{name} cannot be read: {e}",
                annotations::STATE
            ));
        }
    };
    let guarding = if annotations::enabled(ann) || memory.is_some() {
        let mode = ann
            .get(annotations::MODE)
            .and_then(|m| m.parse::<Mode>().ok())
            .unwrap_or_default();
        Guarding::On(mode)
    } else {
        Guarding::Off
    };
    Ok(assess(&view, guarding, memory.as_ref(), revision))
}

/// The controller's latest Events on the Deployment, oldest first.
async fn events(client: &Client, ns: &str, name: &str) -> Result<Vec<EventLine>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    // Selected by the API server: a namespace's Events are many, the controller's on one
    // Deployment few.
    let only_ours = ListParams::default().fields(&format!(
        "regarding.kind=Deployment,regarding.name={name},reportingController={FIELD_MANAGER}"
    ));
    let mut ours: Vec<Event> = api.list(&only_ours).await.context("listing Events")?.items;
    let when = |e: &Event| {
        e.series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    ours.sort_by_key(|e| when(e));
    let skip = ours.len().saturating_sub(EVENTS_SHOWN);
    Ok(ours
        .into_iter()
        .skip(skip)
        .map(|e| EventLine {
            at: when(&e).map(|t| t.to_string()),
            count: e.series.as_ref().map_or(1, |s| s.count),
            reason: e.reason.unwrap_or_default(),
            message: e.note.unwrap_or_default(),
        })
        .collect())
}

fn print(shown: &Shown, format: StatusFormat) -> Result<()> {
    match format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(shown)?),
        StatusFormat::Text => {
            println!("{}", text(&shown.status));
            for line in compared_lines(&shown.status) {
                println!("{line}");
            }
            for e in &shown.events {
                let times = if e.count > 1 {
                    format!(" (×{})", e.count)
                } else {
                    String::new()
                };
                println!(
                    "  {} {}{times}: {}",
                    e.at.as_deref().unwrap_or("-"),
                    e.reason,
                    e.message
                );
            }
            if let Some(err) = &shown.events_error {
                println!("  (Events not shown: {err})");
            }
        }
    }
    Ok(())
}
