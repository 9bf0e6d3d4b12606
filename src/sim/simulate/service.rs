//! The simulated PHP service as Kubernetes objects: its Deployment, a release (a template
//! change that may carry a fault for [`super::live`] to act out), and how to read its state back.
//! Shared by the end-to-end tests and `rollout-guard demo`, so both drive a cluster the same way.
//!
//! Owns the manifests and the predicates over them; talks to the cluster only through the
//! `kube` client it is given.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::live::FAULT_ANNOTATION;
use crate::policy::annotations;
use crate::policy::guard::{Act, Memory};

/// A Deployment of the simulated PHP service at `v1`, rolled out one pod at a time (maxSurge 1,
/// maxUnavailable 0), with the given annotations.
pub fn manifest(namespace: &str, name: &str, replicas: i32, ann: &[(&str, &str)]) -> Deployment {
    let annotations: BTreeMap<&str, &str> = ann.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "php",
                    "image": "registry.k8s.io/pause:3.10",
                    "env": [{"name": "VERSION", "value": "v1"}]
                }]}
            }
        }
    }))
    .expect("a valid Deployment")
}

/// Releases `version`, whose pods have `fault` (`class-errors`, `cpu-saturation`) or none.
pub async fn release(
    api: &Api<Deployment>,
    name: &str,
    version: &str,
    fault: Option<&str>,
) -> Result<Deployment, kube::Error> {
    let ann = match fault {
        Some(f) => json!({ FAULT_ANNOTATION: f }),
        None => json!({ FAULT_ANNOTATION: null }),
    };
    let patch = json!({"spec": {"template": {
        "metadata": {"annotations": ann},
        "spec": {"containers": [{"name": "php", "env": [{"name": "VERSION", "value": version}]}]}
    }}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
}

/// The `VERSION` the Deployment's template runs.
pub fn version(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.as_ref())
        .and_then(|e| e.iter().find(|v| v.name == "VERSION"))
        .and_then(|v| v.value.clone())
        .unwrap_or_default()
}

/// The controller's memory on the Deployment, if it wrote one and it can be read.
pub fn memory(d: &Deployment) -> Option<Memory> {
    annotations::state(d.annotations())?.ok()
}

/// The stage name of the revision under analysis.
pub fn stage(d: &Deployment) -> Option<String> {
    memory(d)?.current.map(|s| s.stage.name().to_string())
}

/// Executed rollbacks in the controller's memory.
pub fn rollbacks(d: &Deployment) -> usize {
    memory(d).map_or(0, |m| {
        m.history
            .iter()
            .filter(|r| r.executed && matches!(r.act, Act::Rollback { .. }))
            .count()
    })
}
