//! What the controller's store keeps of each watched Deployment, and whether one opted in:
//! the bound on memory however many Deployments the cluster has and however large their
//! annotations are. Plain functions over the object; the watch applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;

use crate::adapters::kubernetes;
use crate::policy::annotations;

/// The longest value of a setting annotation (`rollout-guard.io/*` but the two the controller
/// writes) that the store keeps: a longer one is kept as a short note of its length, which no
/// setting reads, so the Deployment is only observed and says why.
pub const MAX_SETTING_BYTES: usize = 1024;

/// What the store keeps of a Deployment. Never `managedFields` (often half an object's
/// size). Of a Deployment that opted in, of its annotations only the controller's own and
/// `deployment.kubernetes.io/revision` (not `last-applied-configuration`, a second copy of the
/// object, nor a tenant's 200 KiB of anything else), each setting at most
/// [`MAX_SETTING_BYTES`]; the map stays present when emptied, so a write still patches
/// annotations key by key and never replaces the others. Of a Deployment that did not opt
/// in, only what tells whether it opted in and what names it: no spec, no status, no labels,
/// no annotation but `rollout-guard.io/enabled`. It is never analysed nor written, and opting
/// in is a change the watch delivers whole. Watching 2,000 Deployments, this is what keeps the
/// store at a few MiB rather than 40.
pub fn slim(d: &mut Deployment, by_selector: bool) {
    d.metadata.managed_fields = None;
    if opted_in(d, by_selector) {
        if let Some(a) = d.metadata.annotations.as_mut() {
            keep_what_is_read(a);
        }
        return;
    }
    d.spec = None;
    d.status = None;
    d.metadata.labels = None;
    d.metadata.owner_references = None;
    d.metadata.finalizers = None;
    if let Some(a) = d.metadata.annotations.as_mut() {
        a.retain(|k, _| k == annotations::ENABLED);
    }
}

/// An opted-in Deployment's annotations as the controller reads them (see [`slim`]).
fn keep_what_is_read(annotations: &mut BTreeMap<String, String>) {
    annotations.retain(|k, _| k.starts_with(annotations::PREFIX) || k == kubernetes::REVISION);
    for (k, v) in annotations.iter_mut() {
        let written_here = k == annotations::STATE || k == annotations::LAST_VERDICT;
        if !written_here && v.len() > MAX_SETTING_BYTES {
            *v = format!(
                "(not read: {} bytes, longer than the {MAX_SETTING_BYTES} a setting may have)",
                v.len()
            );
        }
    }
}

/// Whether the Deployment opted in. Under a config `selector` the watch sees only the
/// Deployments it selects, and each of them is in unless annotated `enabled: "false"`;
/// otherwise the annotation `enabled: "true"` opts in.
pub fn opted_in(d: &Deployment, by_selector: bool) -> bool {
    let empty = BTreeMap::new();
    let ann = d.metadata.annotations.as_ref().unwrap_or(&empty);
    if by_selector {
        !annotations::disabled(ann)
    } else {
        annotations::enabled(ann)
    }
}
