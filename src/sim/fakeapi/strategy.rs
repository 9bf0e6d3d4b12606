//! What the real API server's per-kind registry strategies do to an object on the way in:
//! defaulting, validation, status-subresource rules and `metadata.generation`.
//!
//! Owns the rules for create (reset status, apply defaults, validate), update of the main
//! resource (keep status, bump generation when the spec changes, refuse a changed selector)
//! and update of the `status` subresource (keep everything but status and annotations). It is
//! pure: it never stores, and the store calls it under its lock.

use serde_json::{Map, Value, json};

use super::resources::FakeResource;
use super::selectors::LabelSelector;
use super::status::ApiError;

/// Which endpoint a write came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    /// The object itself.
    Main,
    /// `.../status`.
    Status,
}

impl Sub {
    /// The `subresource` of a managed-fields entry.
    pub(super) fn name(self) -> &'static str {
        match self {
            Sub::Main => "",
            Sub::Status => "status",
        }
    }
}

/// Create: the status a new object starts with, then defaults.
pub(crate) fn prepare_create(resource: FakeResource, obj: &mut Value) {
    if resource.has_status_subresource() {
        let fresh = match resource {
            FakeResource::Pods => json!({"phase": "Pending"}),
            _ => json!({}),
        };
        obj["status"] = fresh;
    }
    default(resource, obj);
}

/// Update: what the main resource or the status subresource may change, generation, defaults.
pub(crate) fn prepare_update(resource: FakeResource, sub: Sub, old: &Value, new: &mut Value) {
    match sub {
        Sub::Main if resource.has_status_subresource() => {
            new["status"] = old.get("status").cloned().unwrap_or_else(|| json!({}));
        }
        Sub::Main => {}
        Sub::Status => {
            // Only status and annotations (where the Deployment controller records revisions)
            // change through the status subresource.
            let mut kept = old.clone();
            kept["status"] = new.get("status").cloned().unwrap_or_else(|| json!({}));
            match new.pointer("/metadata/annotations") {
                Some(a) => kept["metadata"]["annotations"] = a.clone(),
                None => {
                    if let Some(m) = kept["metadata"].as_object_mut() {
                        m.remove("annotations");
                    }
                }
            }
            if let Some(rv) = new.pointer("/metadata/resourceVersion") {
                kept["metadata"]["resourceVersion"] = rv.clone();
            }
            *new = kept;
        }
    }
    default(resource, new);
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
    if resource.tracks_generation() {
        let spec_changed = old.get("spec") != new.get("spec");
        // Deployments also count annotation changes, because the controller copies them to
        // the ReplicaSets (k8s `deploymentStrategy.PrepareForUpdate`).
        let annotations_changed = resource == FakeResource::Deployments
            && sub == Sub::Main
            && old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations");
        let g = generation.unwrap_or(1);
        new["metadata"]["generation"] = json!(if sub == Sub::Main
            && (spec_changed || annotations_changed)
        {
            g + 1
        } else {
            g
        });
    }
}

/// Validation run on create and on every update.
pub(crate) fn validate(
    resource: FakeResource,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = |why: String| ApiError::invalid(resource, name, why);
    if !is_dns_subdomain(name) {
        return Err(invalid(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )));
    }
    match resource {
        FakeResource::Deployments | FakeResource::ReplicaSets => {
            let spec = obj.get("spec").unwrap_or(&Value::Null);
            let selector = spec.get("selector").filter(|s| {
                s.get("matchLabels")
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                    || s.get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_some_and(|m| !m.is_empty())
            });
            let Some(selector) = selector else {
                return Err(invalid("spec.selector: Required value".into()));
            };
            let labels = spec.pointer("/template/metadata/labels");
            if !LabelSelector::from_label_selector(selector).matches(labels) {
                return Err(invalid(
                    "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into(),
                ));
            }
            if let Some(old) = old
                && old.pointer("/spec/selector") != spec.get("selector")
            {
                return Err(invalid(
                    "spec.selector: Invalid value: field is immutable".into(),
                ));
            }
            validate_pod_spec(spec.pointer("/template/spec"))
                .map_err(|w| invalid(format!("spec.template.spec.{w}")))?;
            if spec
                .get("replicas")
                .and_then(Value::as_i64)
                .is_some_and(|r| r < 0)
            {
                return Err(invalid(
                    "spec.replicas: Invalid value: must be greater than or equal to 0".into(),
                ));
            }
            if resource == FakeResource::Deployments {
                validate_deployment_spec(spec).map_err(invalid)?;
            }
        }
        FakeResource::Pods => {
            validate_pod_spec(obj.get("spec")).map_err(|w| invalid(format!("spec.{w}")))?;
        }
        FakeResource::ConfigMaps => validate_config_map(obj).map_err(invalid)?,
        FakeResource::CoreEvents | FakeResource::Events | FakeResource::Leases => {}
    }
    Ok(())
}

/// The most a ConfigMap's data may hold, keys and values together (the real server's
/// `MaxSecretSize`, which ConfigMaps share).
const CONFIG_MAP_LIMIT: usize = 1024 * 1024;

/// A ConfigMap's `data`: string values under keys of `[-._a-zA-Z0-9]+`, within
/// [`CONFIG_MAP_LIMIT`] in all.
fn validate_config_map(obj: &Value) -> Result<(), String> {
    let Some(data) = obj.get("data").filter(|d| !d.is_null()) else {
        return Ok(());
    };
    let Some(data) = data.as_object() else {
        return Err("data: Invalid value: must be a map of strings".into());
    };
    let mut size = 0;
    for (k, v) in data {
        let key_ok = !k.is_empty()
            && k.len() <= 253
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !key_ok {
            return Err(format!(
                "data[{k}]: Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            ));
        }
        let Some(v) = v.as_str() else {
            return Err(format!("data[{k}]: Invalid value: must be a string"));
        };
        size += k.len() + v.len();
    }
    if size > CONFIG_MAP_LIMIT {
        return Err(format!(
            "[]: Too long: must have at most {CONFIG_MAP_LIMIT} bytes"
        ));
    }
    Ok(())
}

fn validate_deployment_spec(spec: &Value) -> Result<(), String> {
    let min_ready = spec
        .get("minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64)
        && deadline <= min_ready
    {
        return Err(
            "spec.progressDeadlineSeconds: Invalid value: must be greater than minReadySeconds"
                .into(),
        );
    }
    if let Some(ru) = spec.pointer("/strategy/rollingUpdate") {
        let zero = |v: Option<&Value>| {
            matches!(v, Some(Value::Number(n)) if n.as_i64() == Some(0))
                || matches!(v, Some(Value::String(s)) if s == "0%")
        };
        if zero(ru.get("maxSurge")) && zero(ru.get("maxUnavailable")) {
            return Err("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: may not be 0 when `maxSurge` is 0".into());
        }
    }
    Ok(())
}

fn validate_pod_spec(spec: Option<&Value>) -> Result<(), String> {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => Err("containers: Required value".into()),
        Some(cs) if cs.is_empty() => Err("containers: Required value".into()),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(format!("containers[{i}].name: Required value"));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(format!("containers[{i}].image: Required value"));
                }
            }
            Ok(())
        }
    }
}

/// RFC 1123 subdomain: what most kinds require of `metadata.name`.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// The defaults the real API server fills in, for the fields the simulation and the
/// controller read. Idempotent, so a template sent back as it was first sent (a rollback)
/// compares equal to the stored, defaulted one.
fn default(resource: FakeResource, obj: &mut Value) {
    match resource {
        FakeResource::Deployments => {
            let spec = ensure_object(obj, "spec");
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("progressDeadlineSeconds").or_insert(json!(600));
            let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
            if let Value::Object(st) = strategy {
                st.entry("type").or_insert(json!("RollingUpdate"));
                if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Value::Object(ru) = ru {
                        ru.entry("maxUnavailable").or_insert(json!("25%"));
                        ru.entry("maxSurge").or_insert(json!("25%"));
                    }
                }
            }
            if let Some(pod) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(pod);
            }
        }
        FakeResource::ReplicaSets => {
            ensure_object(obj, "spec")
                .entry("replicas")
                .or_insert(json!(1));
            if let Some(pod) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(pod);
            }
        }
        FakeResource::Pods => {
            if let Some(pod) = obj.get_mut("spec") {
                default_pod_spec(pod);
            }
        }
        FakeResource::CoreEvents
        | FakeResource::Events
        | FakeResource::Leases
        | FakeResource::ConfigMaps => {}
    }
}

fn ensure_object<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !obj[key].is_object() {
        obj[key] = json!({});
    }
    obj[key].as_object_mut().expect("just made an object")
}

fn default_pod_spec(spec: &mut Value) {
    let Value::Object(s) = spec else { return };
    s.entry("restartPolicy").or_insert(json!("Always"));
    s.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    s.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    s.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    s.entry("securityContext").or_insert(json!({}));
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(cs)) = s.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let latest = !image.rsplit('/').next().unwrap_or(image).contains(':')
                || image.ends_with(":latest");
            let policy = if latest && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            };
            c.entry("imagePullPolicy").or_insert(json!(policy));
            if let Some(Value::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "generation": 1},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "php", "image": "php:8.3"}]}}}})
    }

    #[test]
    fn deployment_defaults_are_idempotent() {
        let mut d = deployment();
        prepare_create(FakeResource::Deployments, &mut d);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(d["status"], json!({}));
        let once = d.clone();
        default(FakeResource::Deployments, &mut d);
        assert_eq!(d, once);
        validate(FakeResource::Deployments, &d, None).unwrap();
    }

    #[test]
    fn generation_follows_spec_not_status() {
        let mut old = deployment();
        prepare_create(FakeResource::Deployments, &mut old);
        let mut new = old.clone();
        new["status"] = json!({"replicas": 3});
        prepare_update(FakeResource::Deployments, Sub::Main, &old, &mut new);
        assert_eq!(new["metadata"]["generation"], 1);
        assert_eq!(
            new["status"],
            json!({}),
            "main-resource writes keep the old status"
        );
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        prepare_update(FakeResource::Deployments, Sub::Main, &old, &mut new);
        assert_eq!(new["metadata"]["generation"], 2);
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["status"] = json!({"replicas": 3});
        prepare_update(FakeResource::Deployments, Sub::Status, &old, &mut new);
        assert_eq!(
            new["spec"]["replicas"], 1,
            "status writes keep the old spec"
        );
        assert_eq!(new["status"]["replicas"], 3);
        assert_eq!(new["metadata"]["generation"], 1);
    }

    #[test]
    fn validation() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "api"});
        assert_eq!(
            validate(FakeResource::Deployments, &d, None)
                .unwrap_err()
                .code,
            422
        );
        let mut d = deployment();
        d["metadata"]["name"] = json!("Web");
        assert!(validate(FakeResource::Deployments, &d, None).is_err());
        let d = deployment();
        let mut changed = d.clone();
        changed["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "y"}});
        changed["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        assert!(validate(FakeResource::Deployments, &changed, Some(&d)).is_err());
        assert!(is_dns_subdomain("web.17a2b"));
        assert!(!is_dns_subdomain("-web"));
    }
}
