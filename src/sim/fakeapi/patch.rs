//! The patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
//! patch, and the merge half of server-side apply.
//!
//! Owns turning (current object, patch body) into the patched object, and the table of list
//! merge keys that strategic merge patch and server-side apply share. It does not check
//! preconditions or field ownership (the store and [`super::fields`] do), and never touches
//! stored state.

use serde_json::{Map, Value};

use super::status::ApiError;

/// The four patch content types the real API server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    /// Maps a `Content-Type` header (parameters such as `charset` ignored).
    pub(super) fn from_content_type(ct: &str) -> Result<PatchKind, ApiError> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// The merge key of a list field, for the lists whose Kubernetes Go type declares
/// `patchStrategy: merge` (strategic merge patch) or `listType: map` (server-side apply).
///
/// Keyed by field name alone, not by the field's full path: every served kind uses these names
/// only for the lists below, so the shortcut is exact for them. `ports` means container ports
/// (the only `ports` lists in a Pod template); `volumeMounts` merge by `mountPath`, as in
/// Kubernetes.
pub(crate) fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

/// Lists of scalars that strategic merge patch merges as sets instead of replacing.
fn is_merged_scalar_list(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a JSON patch, JSON merge patch or strategic merge patch to a copy of `current`.
/// (Apply goes through [`super::fields::apply`] instead, which needs ownership.)
pub(crate) fn patch(current: &Value, kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                // A failed `test` op or a missing path: the real server answers 422.
                ApiError {
                    code: 422,
                    reason: "Invalid",
                    message: format!(
                        "the server rejected our request due to an error in our request: {e}"
                    ),
                    details: None,
                }
            })?;
        }
        PatchKind::Merge => {
            let p = parse_object(body)?;
            json_patch::merge(&mut doc, &p);
        }
        PatchKind::Strategic => {
            let p = parse_object(body)?;
            strategic_merge(&mut doc, &p);
        }
        PatchKind::Apply => {
            return Err(ApiError::bad_request(
                "internal error: apply patches are handled with field ownership",
            ));
        }
    }
    Ok(doc)
}

/// Parses a patch body that must be a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::bad_request("patch body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("invalid patch body: {e}"))),
    }
}

/// Strategic merge patch of `patch` into `target`, in place.
///
/// Like RFC 7386 (objects merge, `null` deletes, scalars replace), except that the lists
/// [`merge_key`] names merge element by element on their key, elements with
/// `"$patch": "delete"` are removed, `"$patch": "replace"` replaces the enclosing object or
/// list, `$retainKeys` keeps only the listed keys, `$deleteFromPrimitiveList/<field>` removes
/// values from a scalar list, and `$setElementOrder/<field>` (ordering only) is ignored.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(pmap) = patch else {
        *target = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = Value::Object(strip_directives(pmap));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tmap) = target else {
        return;
    };
    for (key, pval) in pmap {
        if key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if key == "$retainKeys" {
            if let Value::Array(keep) = pval {
                let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
                tmap.retain(|k, _| keep.contains(&k.as_str()) || pmap.contains_key(k));
            }
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(gone)) = (tmap.get_mut(field), pval) {
                list.retain(|v| !gone.contains(v));
            }
            continue;
        }
        match pval {
            Value::Null => {
                tmap.remove(key);
            }
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                tmap.remove(key);
            }
            Value::Object(_) => {
                let slot = tmap.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, pval);
            }
            Value::Array(items) => {
                let merged = match (merge_key(key), tmap.get(key)) {
                    (Some(mk), Some(Value::Array(existing))) => {
                        merge_keyed_list(existing, items, mk)
                    }
                    (Some(_), _) => keyed_list_fresh(items),
                    (None, Some(Value::Array(existing))) if is_merged_scalar_list(key) => {
                        let mut out = existing.clone();
                        for v in items {
                            if !out.contains(v) {
                                out.push(v.clone());
                            }
                        }
                        out
                    }
                    (None, _) => items.clone(),
                };
                tmap.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                tmap.insert(key.clone(), scalar.clone());
            }
        }
    }
}

/// A keyed list patched onto nothing: directives stripped, deletions dropped.
fn keyed_list_fresh(items: &[Value]) -> Vec<Value> {
    if items.iter().any(is_replace_directive) {
        return items
            .iter()
            .filter(|i| !is_replace_directive(i))
            .cloned()
            .collect();
    }
    items
        .iter()
        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
        .map(|i| match i {
            Value::Object(m) => Value::Object(strip_directives(m)),
            other => other.clone(),
        })
        .collect()
}

fn is_replace_directive(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.len() == 1 && m.get("$patch").and_then(Value::as_str) == Some("replace"))
}

fn merge_keyed_list(existing: &[Value], items: &[Value], mk: &str) -> Vec<Value> {
    // `[..., {"$patch": "replace"}]` replaces the whole list with the other elements.
    if items.iter().any(is_replace_directive) {
        return keyed_list_fresh(items);
    }
    let mut out: Vec<Value> = existing.to_vec();
    for item in items {
        let Some(key) = item.get(mk) else {
            // An element without its merge key cannot be matched; keep it, as SMP does.
            out.push(item.clone());
            continue;
        };
        let pos = out.iter().position(|e| e.get(mk) == Some(key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut out[i], item),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item);
                out.push(fresh);
            }
        }
    }
    out
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Merges an apply configuration into `target`, in place: objects merge, the keyed lists of
/// [`merge_key`] merge by key (as server-side apply's `listType: map`), every other list and
/// every scalar is replaced (atomic), and `null` values are skipped (the applier has no
/// opinion on them).
pub(crate) fn apply_merge(target: &mut Value, config: &Value) {
    let Value::Object(cmap) = config else {
        if !config.is_null() {
            *target = config.clone();
        }
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tmap) = target else {
        return;
    };
    for (key, cval) in cmap {
        match cval {
            Value::Null => {}
            Value::Object(_) => apply_merge(tmap.entry(key.clone()).or_insert(Value::Null), cval),
            Value::Array(items) => match (merge_key(key), tmap.get_mut(key)) {
                (Some(mk), Some(Value::Array(existing))) => {
                    for item in items {
                        match existing
                            .iter()
                            .position(|e| item.get(mk).is_some() && e.get(mk) == item.get(mk))
                        {
                            Some(i) => apply_merge(&mut existing[i], item),
                            None => {
                                let mut fresh = Value::Null;
                                apply_merge(&mut fresh, item);
                                existing.push(fresh);
                            }
                        }
                    }
                }
                _ => {
                    tmap.insert(key.clone(), cval.clone());
                }
            },
            scalar => {
                tmap.insert(key.clone(), scalar.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        let mut t = target;
        strategic_merge(&mut t, &patch);
        t
    }

    #[test]
    fn containers_merge_by_name() {
        let deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "php", "image": "php:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "nginx", "image": "nginx:1"}
        ]}}}});
        let out = smp(
            deploy,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "php", "image": "php:2", "env": [{"name": "B", "value": "2"}]}
            ]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "php", "image": "php:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "nginx", "image": "nginx:1"}
            ])
        );
    }

    #[test]
    fn delete_directive_and_null() {
        let pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [
            {"name": "php", "image": "php:1"}, {"name": "sidecar", "image": "s:1"}
        ]}});
        let out = smp(
            pod,
            json!({"metadata": {"labels": {"a": null}}, "spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"}
            ]}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "php", "image": "php:1"}])
        );
    }

    #[test]
    fn ports_merge_by_container_port_and_other_lists_replace() {
        let c = json!({"ports": [{"containerPort": 80, "name": "http"}], "args": ["a", "b"]});
        let out = smp(
            c,
            json!({"ports": [{"containerPort": 9000, "name": "fpm"}], "args": ["c"]}),
        );
        assert_eq!(
            out["ports"],
            json!([{"containerPort": 80, "name": "http"}, {"containerPort": 9000, "name": "fpm"}])
        );
        assert_eq!(out["args"], json!(["c"]));
    }

    #[test]
    fn conditions_merge_by_type_and_list_replace_directive() {
        let s = json!({"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]});
        let out = smp(
            s.clone(),
            json!({"conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(
            out["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["conditions"].as_array().unwrap().len(), 2);
        let out = smp(
            s,
            json!({"conditions": [{"type": "X", "status": "True"}, {"$patch": "replace"}]}),
        );
        assert_eq!(out["conditions"], json!([{"type": "X", "status": "True"}]));
    }

    #[test]
    fn retain_keys_and_primitive_list_deletes() {
        let s = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "finalizers": ["a", "b"]});
        let out = smp(
            s,
            json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"}, "$deleteFromPrimitiveList/finalizers": ["a"]}),
        );
        assert_eq!(out["strategy"], json!({"type": "Recreate"}));
        assert_eq!(out["finalizers"], json!(["b"]));
    }

    #[test]
    fn json_and_merge_patches() {
        let obj = json!({"spec": {"replicas": 2, "paused": false}});
        let out = patch(
            &obj,
            PatchKind::Json,
            br#"[{"op": "replace", "path": "/spec/replicas", "value": 5}, {"op": "remove", "path": "/spec/paused"}]"#,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"replicas": 5}}));
        let err = patch(
            &obj,
            PatchKind::Json,
            br#"[{"op": "test", "path": "/spec/replicas", "value": 3}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        let out = patch(
            &obj,
            PatchKind::Merge,
            br#"{"spec": {"paused": true, "replicas": null}}"#,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"paused": true}}));
        assert_eq!(patch(&obj, PatchKind::Merge, b"[1]").unwrap_err().code, 400);
    }

    #[test]
    fn apply_merge_keeps_other_list_elements() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}], "args": ["x"]}});
        apply_merge(
            &mut obj,
            &json!({"spec": {"containers": [{"name": "b", "image": "2"}], "args": ["y"], "gone": null}}),
        );
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}], "args": ["y"]}})
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchKind::Merge
        );
        assert_eq!(
            PatchKind::from_content_type("text/plain").unwrap_err().code,
            415
        );
    }
}
