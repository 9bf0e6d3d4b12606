//! Builders and waiting helpers shared by the fake API server tests.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeOptions};
use serde_json::json;

/// How long any awaited condition may take before the test fails. Generous: the machine that
/// runs the suite may be loaded.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A plain API store (no simulated controllers).
pub async fn api_server() -> FakeApiServer {
    FakeApiServer::start(FakeOptions::api_only())
        .await
        .expect("fake API server starts")
}

/// A server with the simulated control plane, at test pace.
pub async fn sim_server() -> FakeApiServer {
    FakeApiServer::start(FakeOptions::fast())
        .await
        .expect("fake API server starts")
}

/// Polls `probe` every 20 ms until it returns `Some`, failing the test with `what` after
/// [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Deployment of a PHP image, with labels `app=<name>`.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "php", "image": image, "ports": [{"containerPort": 9000}]}]}
            }
        }
    }))
    .expect("a valid Deployment")
}

/// A bare pod with the given labels and containers.
pub fn pod(name: &str, labels: serde_json::Value, containers: &[&str]) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "php:8.3-fpm"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": containers}
    }))
    .expect("a valid Pod")
}

/// The `Progressing` condition's reason.
pub fn progressing(d: &Deployment) -> Option<String> {
    condition(d, "Progressing").and_then(|c| c.reason.clone())
}

pub fn condition<'a>(
    d: &'a Deployment,
    type_: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the rollout is done: every replica updated and available, the controller has seen
/// the latest spec, and `Progressing` says `NewReplicaSetAvailable`.
pub fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation == d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && progressing(d).as_deref() == Some("NewReplicaSetAvailable")
}

/// Waits until the Deployment satisfies `pred`, and returns it.
pub async fn wait_deployment(
    api: &Api<Deployment>,
    name: &str,
    what: &str,
    pred: impl Fn(&Deployment) -> bool,
) -> Deployment {
    eventually(what, || async {
        let d = api.get(name).await.expect("get deployment");
        pred(&d).then_some(d)
    })
    .await
}
