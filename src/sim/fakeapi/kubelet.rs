//! The simulated scheduler and kubelet: bind pending pods to a fake node, run them, and mark
//! their containers ready after a delay; restart a container on request.
//!
//! Owns the status of every pod it placed on one of its nodes (`fakeapi-node-0..2`): phase
//! `Running`, `startTime`, IPs, conditions (`PodScheduled`, `Initialized`,
//! `ContainersReady`, `Ready`) and `containerStatuses` (`ready`, `started`, `restartCount`,
//! `state`, `lastState`). A pod annotated [`NEVER_READY_ANNOTATION`] stays unready, which is
//! how tests make a rollout stall. Pods created with a `nodeName` of another node are left
//! alone, so a test can write their status itself. It does not create or delete pods.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::resources::FakeResource;
use super::sim::{read_all, write};
use super::status::ApiError;
use super::store::{ObjKey, Store, WriteOpts};

/// A pod (or pod-template) annotation: `"true"` keeps the pod's containers unready forever.
pub const NEVER_READY_ANNOTATION: &str = "fakeapi.rollout-guard.io/never-ready";

const NODE_PREFIX: &str = "fakeapi-node-";
const NODES: usize = 3;

/// The kubelet's memory of when each container instance started, to the millisecond
/// (status times have only second precision).
pub(crate) struct Kubelet {
    ready_after: Duration,
    /// (pod uid, container, restartCount) → when this kubelet first saw it running.
    started: HashMap<(String, String, i32), Instant>,
    placed: usize,
}

impl Kubelet {
    pub(super) fn new(ready_after: Duration) -> Kubelet {
        Kubelet {
            ready_after,
            started: HashMap::new(),
            placed: 0,
        }
    }

    pub(super) fn tick(&mut self, store: &Store) {
        let pods: Vec<Pod> = read_all(store, FakeResource::Pods);
        let mut live = HashSet::new();
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            live.insert(uid);
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let result = match node {
                None => self.schedule_and_start(store, pod),
                Some(n) if n.starts_with(NODE_PREFIX) => self.maybe_ready(store, pod),
                Some(_) => Ok(()),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "fakeapi kubelet");
            }
        }
        self.started.retain(|(uid, _, _), _| live.contains(uid));
    }

    fn schedule_and_start(&mut self, store: &Store, mut pod: Pod) -> Result<(), ApiError> {
        let n = self.placed;
        self.placed += 1;
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.node_name = Some(format!("{NODE_PREFIX}{}", n % NODES));
        let bound = write(
            store,
            FakeResource::Pods,
            &pod,
            &WriteOpts::main("kube-scheduler"),
        )?;
        let mut pod: Pod =
            serde_json::from_value(bound).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let now = Time(Timestamp::now());
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let statuses = containers
            .iter()
            .map(|c| {
                self.started
                    .insert((uid.clone(), c.name.clone(), 0), Instant::now());
                running_status(
                    &c.name,
                    c.image.as_deref().unwrap_or_default(),
                    0,
                    now.clone(),
                    None,
                )
            })
            .collect::<Vec<_>>();
        let pod_ip = format!("10.244.{}.{}", n % NODES, 2 + n % 250);
        let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            host_ip: Some(format!("10.0.0.{}", 10 + n % NODES)),
            pod_ip: Some(pod_ip.clone()),
            pod_ips: Some(vec![PodIP { ip: pod_ip }]),
            start_time: Some(now.clone()),
            qos_class: Some("BestEffort".into()),
            conditions: Some(vec![
                condition("PodReadyToStartContainers", true, &now, None),
                condition("Initialized", true, &now, None),
                condition("Ready", false, &now, Some(&names)),
                condition("ContainersReady", false, &now, Some(&names)),
                condition("PodScheduled", true, &now, None),
            ]),
            container_statuses: Some(statuses),
            ..PodStatus::default()
        });
        write(
            store,
            FakeResource::Pods,
            &pod,
            &WriteOpts::status("kubelet"),
        )?;
        Ok(())
    }

    fn maybe_ready(&mut self, store: &Store, mut pod: Pod) -> Result<(), ApiError> {
        let never = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NEVER_READY_ANNOTATION))
            .is_some_and(|v| v == "true");
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(status) = pod.status.as_mut() else {
            return Ok(());
        };
        let Some(statuses) = status.container_statuses.as_mut() else {
            return Ok(());
        };
        let mut changed = false;
        for cs in statuses.iter_mut() {
            let since = *self
                .started
                .entry((uid.clone(), cs.name.clone(), cs.restart_count))
                .or_insert_with(Instant::now);
            if !cs.ready && !never && since.elapsed() >= self.ready_after {
                cs.ready = true;
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let unready: Vec<String> = statuses
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.clone())
            .collect();
        set_readiness(status, &unready, &Time(Timestamp::now()));
        write(
            store,
            FakeResource::Pods,
            &pod,
            &WriteOpts::status("kubelet"),
        )?;
        Ok(())
    }
}

/// Restarts a container: the running instance terminates with exit code 1, a new one starts
/// unready (and becomes ready after the usual delay), `restartCount` goes up by one.
pub(crate) fn restart_container(
    store: &Store,
    ns: &str,
    pod_name: &str,
    container: &str,
) -> Result<(), ApiError> {
    let key = ObjKey::new(FakeResource::Pods, ns, pod_name);
    let value = store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(FakeResource::Pods, pod_name))?;
    let mut pod: Pod = serde_json::from_value((*value).clone())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = Time(Timestamp::now());
    let status = pod.status.get_or_insert_with(Default::default);
    let statuses = status.container_statuses.get_or_insert_with(Vec::new);
    let Some(cs) = statuses.iter_mut().find(|c| c.name == container) else {
        return Err(ApiError::bad_request(format!(
            "container {container} has no status in pod {pod_name} (not started yet?)"
        )));
    };
    let started_at = cs
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone());
    *cs = running_status(
        &cs.name,
        &cs.image,
        cs.restart_count + 1,
        now.clone(),
        Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                reason: Some("Error".into()),
                started_at,
                finished_at: Some(now.clone()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
    );
    let unready: Vec<String> = statuses
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.clone())
        .collect();
    set_readiness(status, &unready, &now);
    write(
        store,
        FakeResource::Pods,
        &pod,
        &WriteOpts::status("kubelet"),
    )?;
    store.lock().logs.restart(ns, pod_name, container);
    store.logs_touched();
    Ok(())
}

fn running_status(
    name: &str,
    image: &str,
    restarts: i32,
    now: Time,
    last: Option<ContainerState>,
) -> ContainerStatus {
    ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        image_id: format!("fakeapi.local/{image}"),
        container_id: Some(format!(
            "containerd://{}{}",
            super::store::random_suffix(12),
            restarts
        )),
        ready: false,
        started: Some(true),
        restart_count: restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now),
            }),
            ..ContainerState::default()
        }),
        last_state: last,
        ..ContainerStatus::default()
    }
}

fn condition(type_: &str, ok: bool, now: &Time, unready: Option<&[String]>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(now.clone()),
        reason: (!ok).then(|| "ContainersNotReady".to_string()),
        message: match (ok, unready) {
            (false, Some(names)) => Some(format!(
                "containers with unready status: [{}]",
                names.join(" ")
            )),
            _ => None,
        },
        ..PodCondition::default()
    }
}

/// Sets `Ready` and `ContainersReady` from the unready containers, moving
/// `lastTransitionTime` only when the status flips.
fn set_readiness(status: &mut PodStatus, unready: &[String], now: &Time) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for type_ in ["Ready", "ContainersReady"] {
        let fresh = condition(type_, unready.is_empty(), now, Some(unready));
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == fresh.status => {}
            Some(c) => *c = fresh,
            None => conditions.push(fresh),
        }
    }
}
