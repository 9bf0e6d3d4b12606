//! The fake cluster the benchmark measures the daemon against: many Deployments of PHP
//! services spread over a few namespaces, a few of them opted in, and releases of some of
//! those.
//!
//! Every Deployment runs `replicas` pods and rolls out one pod at a time (maxSurge 1,
//! maxUnavailable 0), so with the fake kubelet's `ready_after` a release stays in flight for
//! about `replicas × ready_after`. The objects are shaped like a real service's (two
//! containers, probes, resources, env, a volume), which matters because the daemon keeps every
//! watched Deployment in memory. Reads for the benchmark's own bookkeeping go to the store
//! directly ([`FakeApiServer::objects`]), so the request counts are the daemon's alone.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rollout_guard::policy::annotations;
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeResource};
use serde_json::{Value, json};

/// The shape of the fleet: `deployments` spread evenly over `namespaces` (`team-0`, ...),
/// of which `opted_in`, all in `team-0`, opted in.
#[derive(Clone, Debug)]
pub struct Fleet {
    pub deployments: usize,
    pub opted_in: usize,
    pub replicas: i32,
    pub namespaces: usize,
    pub mode: String,
}

/// The namespace that holds every opted-in Deployment.
pub const FIRST: &str = "team-0";

/// One Deployment of the fleet.
#[derive(Clone, Debug)]
pub struct Member {
    pub namespace: String,
    pub name: String,
    pub opted_in: bool,
}

impl Fleet {
    /// Deployments per namespace.
    pub fn per_namespace(&self) -> usize {
        self.deployments.div_ceil(self.namespaces)
    }

    /// Every Deployment, namespace by namespace; the opted-in ones evenly spread over the first.
    pub fn members(&self) -> Vec<Member> {
        let per_ns = self.per_namespace();
        let every = (per_ns / self.opted_in.max(1)).max(1);
        (0..self.deployments)
            .map(|i| Member {
                namespace: format!("team-{}", i / per_ns),
                name: format!("svc-{i:04}"),
                opted_in: i < per_ns && i % every == 0 && i / every < self.opted_in,
            })
            .collect()
    }

    /// Creates every Deployment through the API, `concurrency` at a time.
    pub async fn create(&self, fake: &FakeApiServer, concurrency: usize) -> Result<()> {
        let client = fake.client();
        futures::stream::iter(self.members())
            .map(|m| {
                let client = client.clone();
                let obj = self.deployment(&m);
                async move {
                    let api: Api<Deployment> = Api::namespaced(client, &m.namespace);
                    api.create(&PostParams::default(), &obj)
                        .await
                        .with_context(|| format!("creating {}/{}", m.namespace, m.name))
                }
            })
            .buffer_unordered(concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    fn deployment(&self, m: &Member) -> Deployment {
        let mut ann = serde_json::Map::new();
        ann.insert("app.example.com/owner".into(), json!(m.namespace));
        if m.opted_in {
            ann.insert(annotations::ENABLED.into(), json!("true"));
            ann.insert(annotations::MODE.into(), json!(self.mode));
        }
        let labels = json!({
            "app": m.name,
            "app.kubernetes.io/name": m.name,
            "app.kubernetes.io/part-of": m.namespace,
            "app.kubernetes.io/managed-by": "helm",
        });
        serde_json::from_value(json!({
            "metadata": {"name": m.name, "namespace": m.namespace, "labels": labels, "annotations": ann},
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": m.name}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {
                        "labels": {"app": m.name, "app.kubernetes.io/name": m.name},
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9253"}
                    },
                    "spec": {
                        "containers": [php(&m.name, "v1"), nginx()],
                        "volumes": [{"name": "php-config", "configMap": {"name": format!("{}-php", m.name)}}],
                        "terminationGracePeriodSeconds": 30
                    }
                }
            }
        }))
        .expect("a valid Deployment")
    }

    /// Releases `version` of one Deployment (a new image and `VERSION`).
    pub async fn release(fake: &FakeApiServer, m: &Member, version: &str) -> Result<()> {
        let api: Api<Deployment> = Api::namespaced(fake.client(), &m.namespace);
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "php",
            "image": format!("registry.example.com/shop/{}:{version}", m.name),
            "env": [{"name": "VERSION", "value": version}]
        }]}}}});
        api.patch(&m.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .with_context(|| format!("releasing {}/{}", m.namespace, m.name))?;
        Ok(())
    }
}

fn php(name: &str, version: &str) -> Value {
    let env: Vec<Value> = [
        ("VERSION", version),
        ("APP_ENV", "production"),
        ("APP_DEBUG", "0"),
        ("PHP_MEMORY_LIMIT", "256M"),
        ("PHP_FPM_PM", "static"),
        ("PHP_FPM_MAX_CHILDREN", "16"),
        ("DATABASE_HOST", "mysql.databases.svc"),
        ("REDIS_HOST", "redis.databases.svc"),
        ("OPCACHE_VALIDATE_TIMESTAMPS", "0"),
    ]
    .iter()
    .map(|(k, v)| json!({"name": k, "value": v}))
    .collect();
    json!({
        "name": "php",
        "image": format!("registry.example.com/shop/{name}:{version}"),
        "ports": [{"name": "fpm", "containerPort": 9000}, {"name": "metrics", "containerPort": 9253}],
        "env": env,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [{"name": "php-config", "mountPath": "/usr/local/etc/php/conf.d/zz-app.ini", "subPath": "app.ini"}]
    })
}

fn nginx() -> Value {
    json!({
        "name": "nginx",
        "image": "nginx:1.27-alpine",
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}
    })
}

/// How far the fleet's rollouts have got, read from the store (no API request).
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub deployments: usize,
    /// Fully rolled out: every replica updated and available, none old.
    pub complete: usize,
}

pub fn progress(fake: &FakeApiServer) -> Progress {
    let deployments = fake.objects(FakeResource::Deployments);
    let complete = deployments.iter().filter(|d| rolled_out(d)).count();
    Progress {
        deployments: deployments.len(),
        complete,
    }
}

/// How many objects of a kind the store holds (copies them all: not for tight loops).
pub fn count(fake: &FakeApiServer, resource: FakeResource) -> usize {
    fake.objects(resource).len()
}

fn rolled_out(d: &Value) -> bool {
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let want = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    int("/status/observedGeneration") >= int("/metadata/generation")
        && int("/status/updatedReplicas") == want
        && int("/status/replicas") == want
        && int("/status/availableReplicas") == want
}

/// Waits until every Deployment is rolled out, printing progress.
pub async fn wait_rolled_out(fake: &FakeApiServer, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let p = progress(fake);
        if p.complete == p.deployments {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            anyhow::bail!("after {timeout:?}: {p:?}");
        }
        if last_print.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "  … {}/{} Deployments rolled out, {} pods ({:.0} s)",
                p.complete,
                p.deployments,
                count(fake, FakeResource::Pods),
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How many of `released` are still rolling out (read from the store).
pub fn in_flight(fake: &FakeApiServer, released: &[Member]) -> usize {
    let names: std::collections::HashSet<(&str, &str)> = released
        .iter()
        .map(|m| (m.namespace.as_str(), m.name.as_str()))
        .collect();
    fake.objects(FakeResource::Deployments)
        .iter()
        .filter(|d| {
            let s = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or_default();
            names.contains(&(s("/metadata/namespace"), s("/metadata/name"))) && !rolled_out(d)
        })
        .count()
}

/// The mean size of a Deployment as JSON: as served (`managedFields` included), and as the
/// daemon keeps it (without them).
pub fn mean_deployment_bytes(fake: &FakeApiServer) -> (usize, usize) {
    let mut all = fake.objects(FakeResource::Deployments);
    let n = all.len().max(1);
    let size = |all: &[Value]| -> usize {
        all.iter()
            .map(|d| serde_json::to_vec(d).map_or(0, |v| v.len()))
            .sum()
    };
    let served = size(&all);
    for d in &mut all {
        if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    (served / n, size(&all) / n)
}
