//! The simulated Deployment controller: rolling updates, pause, rollback, a stalled rollout,
//! Recreate and garbage collection, observed through the kube client.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use regex::Regex;
use rollout_guard::sim::fakeapi::{
    FakeApiServer, FakeResource, NEVER_READY_ANNOTATION, POD_TEMPLATE_HASH, REVISION,
};
use serde_json::{Value, json};

use crate::common::{
    condition, deployment, eventually, progressing, rolled_out, sim_server, wait_deployment,
};

struct Apis {
    deployments: Api<Deployment>,
    replicasets: Api<ReplicaSet>,
    pods: Api<Pod>,
}

fn apis(client: Client) -> Apis {
    Apis {
        deployments: Api::default_namespaced(client.clone()),
        replicasets: Api::default_namespaced(client.clone()),
        pods: Api::default_namespaced(client),
    }
}

impl Apis {
    async fn replicasets(&self, app: &str) -> Vec<ReplicaSet> {
        let mut rss = self
            .replicasets
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items;
        rss.sort_by_key(revision);
        rss
    }

    async fn pods(&self, app: &str) -> Vec<Pod> {
        self.pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
    }

    async fn set_image(&self, name: &str, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "php", "image": image}]}}}});
        self.deployments
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }

    async fn create_and_roll_out(&self, d: Deployment) -> Deployment {
        let name = d.name_any();
        self.deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        wait_deployment(&self.deployments, &name, "the first rollout", rolled_out).await
    }
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
}

fn image(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

fn owner(pod: &Pod) -> String {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.name.clone())
        .unwrap_or_default()
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Samples the stored pods (no API traffic) until `done`, recording the most pods and the
/// fewest ready pods seen at once, and the most distinct pod-template hashes at once.
async fn sample_pods(server: &FakeApiServer, done: &AtomicBool) -> (usize, usize, usize) {
    let (mut most, mut fewest_ready, mut most_hashes) = (0, usize::MAX, 0);
    while !done.load(Ordering::SeqCst) {
        let pods = server.objects(FakeResource::Pods);
        let hashes: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| {
                p.pointer(&format!("/metadata/labels/{POD_TEMPLATE_HASH}"))
                    .and_then(Value::as_str)
            })
            .collect();
        most = most.max(pods.len());
        fewest_ready = fewest_ready.min(pods.iter().filter(|p| pod_ready(p)).count());
        most_hashes = most_hashes.max(hashes.len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (most, fewest_ready, most_hashes)
}

#[tokio::test]
async fn rolling_update_replaces_every_pod_within_surge_and_unavailability() {
    let server = sim_server().await;
    let api = apis(server.client());
    let d = api
        .create_and_roll_out(deployment("web", "php:8.3-fpm", 4))
        .await;
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(condition(&d, "Available").unwrap().status, "True");
    let rss = api.replicasets("web").await;
    assert_eq!(rss.len(), 1);
    let first = rss[0].name_any();
    let hash = rss[0].labels()[POD_TEMPLATE_HASH].clone();
    assert_eq!(first, format!("web-{hash}"));
    assert!(!hash.is_empty() && hash.len() <= 10);
    let pod_name = Regex::new(&format!("^{first}-[a-z0-9]{{5}}$")).unwrap();
    let pods = api.pods("web").await;
    assert_eq!(pods.len(), 4);
    for p in &pods {
        assert!(pod_name.is_match(&p.name_any()), "{}", p.name_any());
        assert_eq!(owner(p), first);
        assert_eq!(p.labels()[POD_TEMPLATE_HASH], hash);
        assert!(p.spec.as_ref().unwrap().node_name.is_some());
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.start_time.is_some());
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready && cs.restart_count == 0);
    }

    // 4 replicas at 25%/25%: at most 5 pods, at least 3 ready, at every moment.
    let done = AtomicBool::new(false);
    let rollout = async {
        api.set_image("web", "php:8.4-fpm").await;
        let d = wait_deployment(&api.deployments, "web", "the second rollout", |d| {
            d.metadata.generation == Some(2) && rolled_out(d)
        })
        .await;
        done.store(true, Ordering::SeqCst);
        d
    };
    let (d, (most, fewest_ready, _)) = tokio::join!(rollout, sample_pods(&server, &done));
    assert!(most <= 5, "{most} pods at once");
    assert!(
        fewest_ready >= 3,
        "only {fewest_ready} ready pods at one point"
    );
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("2"));

    let rss = api.replicasets("web").await;
    assert_eq!(rss.len(), 2);
    assert_eq!(
        (rss[0].name_any(), revision(&rss[0]), spec_replicas(&rss[0])),
        (first.clone(), 1, 0)
    );
    assert_eq!(
        (revision(&rss[1]), spec_replicas(&rss[1]), image(&rss[1])),
        (2, 4, "php:8.4-fpm".into())
    );
    assert_eq!(
        rss[1].annotations()["deployment.kubernetes.io/desired-replicas"],
        "4"
    );
    assert_eq!(
        rss[1].annotations()["deployment.kubernetes.io/max-replicas"],
        "5"
    );
    let new_owner = rss[1].name_any();
    let pods = api.pods("web").await;
    assert_eq!(pods.len(), 4);
    assert!(pods.iter().all(|p| owner(p) == new_owner));
    let status = d.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(4), Some(4), Some(4), Some(4))
    );
    assert_eq!(status.unavailable_replicas, None);
}

#[tokio::test]
async fn paused_deployment_does_not_progress_until_resumed() {
    let server = sim_server().await;
    let api = apis(server.client());
    api.create_and_roll_out(deployment("web", "php:1", 2)).await;
    let before: BTreeSet<String> = api
        .pods("web")
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();

    let pause = |p: bool| Patch::Merge(json!({"spec": {"paused": p}}));
    api.deployments
        .patch("web", &PatchParams::default(), &pause(true))
        .await
        .unwrap();
    api.set_image("web", "php:2").await;
    // Once the controller has seen the new template (observedGeneration), it has decided not
    // to act on it.
    let d = wait_deployment(
        &api.deployments,
        "web",
        "the paused deployment to be observed",
        |d| {
            d.metadata.generation == Some(3)
                && d.status.as_ref().unwrap().observed_generation == Some(3)
        },
    )
    .await;
    let c = condition(&d, "Progressing").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("Unknown", Some("DeploymentPaused"))
    );
    assert_eq!(
        api.replicasets("web").await.len(),
        1,
        "no new ReplicaSet while paused"
    );
    let during: BTreeSet<String> = api
        .pods("web")
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(during, before);
    assert_eq!(
        d.status.unwrap().updated_replicas,
        None,
        "no pod runs the new template"
    );

    api.deployments
        .patch("web", &PatchParams::default(), &pause(false))
        .await
        .unwrap();
    let d = wait_deployment(&api.deployments, "web", "the resumed rollout", |d| {
        d.metadata.generation == Some(4) && rolled_out(d)
    })
    .await;
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("2"));
    let rss = api.replicasets("web").await;
    assert_eq!(rss.len(), 2);
    assert_eq!(image(&rss[1]), "php:2");
}

#[tokio::test]
async fn rollback_reuses_the_old_replicaset_with_revision_3() {
    let server = sim_server().await;
    let api = apis(server.client());
    api.create_and_roll_out(deployment("web", "php:1", 2)).await;
    let first = api.replicasets("web").await[0].name_any();
    api.set_image("web", "php:2").await;
    wait_deployment(&api.deployments, "web", "revision 2", |d| {
        d.metadata.generation == Some(2) && rolled_out(d)
    })
    .await;
    let second = api.replicasets("web").await[1].name_any();

    // Back to revision 1's template.
    api.set_image("web", "php:1").await;
    let d = wait_deployment(&api.deployments, "web", "the rollback", |d| {
        d.metadata.generation == Some(3) && rolled_out(d)
    })
    .await;
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("3"));
    let rss = api.replicasets("web").await;
    assert_eq!(
        rss.len(),
        2,
        "the old ReplicaSet is re-used, not a third created"
    );
    assert_eq!(
        (rss[0].name_any(), revision(&rss[0]), spec_replicas(&rss[0])),
        (second, 2, 0)
    );
    assert_eq!(
        (rss[1].name_any(), revision(&rss[1]), spec_replicas(&rss[1])),
        (first.clone(), 3, 2)
    );
    assert_eq!(
        rss[1]
            .annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
    assert!(api.pods("web").await.iter().all(|p| owner(p) == first));
}

#[tokio::test]
async fn never_ready_pods_stall_the_rollout_past_its_deadline() {
    let server = sim_server().await;
    let api = apis(server.client());
    let mut d = deployment("web", "php:1", 2);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create_and_roll_out(d).await;

    let broken = json!({"spec": {"template": {
        "metadata": {"annotations": {NEVER_READY_ANNOTATION: "true"}},
        "spec": {"containers": [{"name": "php", "image": "php:broken"}]}
    }}});
    api.deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&broken))
        .await
        .unwrap();
    let d = wait_deployment(
        &api.deployments,
        "web",
        "the progress deadline to pass",
        |d| progressing(d).as_deref() == Some("ProgressDeadlineExceeded"),
    )
    .await;
    assert_eq!(condition(&d, "Progressing").unwrap().status, "False");
    assert_eq!(
        condition(&d, "Available").unwrap().status,
        "True",
        "the old pods still serve"
    );
    let rss = api.replicasets("web").await;
    // 2 replicas at 25%/25%: surge 1 (rounded up), unavailable 0 (rounded down).
    assert_eq!((spec_replicas(&rss[0]), spec_replicas(&rss[1])), (2, 1));
    let pods = api.pods("web").await;
    let new_pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| owner(p) == rss[1].name_any())
        .collect();
    assert_eq!(new_pods.len(), 1);
    let cs = &new_pods[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert!(!cs.ready);
    let status = d.status.unwrap();
    assert_eq!(
        (
            status.updated_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(1), Some(2), Some(1))
    );
}

#[tokio::test]
async fn recreate_never_runs_old_and_new_pods_together() {
    let server = sim_server().await;
    let api = apis(server.client());
    let mut d = deployment("web", "php:1", 3);
    d.spec.as_mut().unwrap().strategy =
        Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    api.create_and_roll_out(d).await;
    let done = AtomicBool::new(false);
    let rollout = async {
        api.set_image("web", "php:2").await;
        wait_deployment(&api.deployments, "web", "the recreate rollout", |d| {
            d.metadata.generation == Some(2) && rolled_out(d)
        })
        .await;
        done.store(true, Ordering::SeqCst);
    };
    let (_, (most, _, most_hashes)) = tokio::join!(rollout, sample_pods(&server, &done));
    assert_eq!(most_hashes, 1, "old and new pods at the same time");
    assert!(most <= 3);
}

#[tokio::test]
async fn deleting_a_deployment_collects_its_replicasets_and_pods() {
    let server = sim_server().await;
    let api = apis(server.client());
    api.create_and_roll_out(deployment("web", "php:1", 2)).await;
    // A ConfigMap the Deployment owns (as the controller's kept log counts) goes with it.
    let d = api.deployments.get("web").await.unwrap();
    let maps: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owned: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kept", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": d.metadata.uid.clone().unwrap(),
        }]},
        "data": {"k": "v"},
    }))
    .unwrap();
    maps.create(&PostParams::default(), &owned).await.unwrap();
    api.deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the ReplicaSet, pods and owned ConfigMap to be collected",
        || async {
            (api.replicasets("web").await.is_empty()
                && api.pods("web").await.is_empty()
                && maps.get_opt("kept").await.unwrap().is_none())
            .then_some(())
        },
    )
    .await;
}
