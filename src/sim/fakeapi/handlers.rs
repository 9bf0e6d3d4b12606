//! The verbs on a resource path: list, watch, get, create, update, patch, delete and
//! deletecollection.
//!
//! Owns reading each verb's parameters and body (selectors, `limit`/`continue`,
//! `resourceVersion`, `fieldManager`, `force`, `dryRun`, delete preconditions, the patch
//! content type), consuming injected conflicts, and shaping the reply (lists without per-item
//! `kind`, 201 on create). The store does the write itself; pod logs are in
//! [`super::podlogs`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures::StreamExt;
use serde_json::{Value, json};

use super::http::{Reply, Req, Target};
use super::patch::{self, PatchKind};
use super::podlogs;
use super::resources::FakeResource;
use super::selectors::{FieldSelector, Filter, LabelSelector};
use super::status::ApiError;
use super::store::{ObjKey, Proposed, WriteOpts};
use super::strategy::Sub;
use super::watch::{self, WatchEnv, WatchSpec};

/// Serves one request on a resource path.
pub(crate) async fn handle(req: &Req<'_>, t: Target) -> Result<Reply, ApiError> {
    let name = t.name.clone();
    match (req.method.as_str(), name.as_deref(), t.sub.as_deref()) {
        ("GET", None, None) if req.query.flag("watch") => watch(req, &t),
        ("GET", None, None) => list(req, &t),
        ("GET", Some(name), Some("log")) => podlogs::get(req, namespace(&t)?, name),
        ("GET", Some(name), _) => get(req, &key(&t, name)?),
        ("POST", None, None) => create(req, &t),
        ("PUT", Some(name), None | Some("status")) => update(req, &t, &key(&t, name)?),
        ("PATCH", Some(name), None | Some("status")) => patch(req, &t, &key(&t, name)?),
        ("DELETE", Some(name), None) => delete(req, &key(&t, name)?),
        ("DELETE", None, None) => delete_collection(req, &t),
        (method, _, _) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on this path"
        ))),
    }
}

fn namespace(t: &Target) -> Result<&str, ApiError> {
    t.namespace
        .as_deref()
        .ok_or_else(|| ApiError::method_not_allowed("this verb needs a namespaced path"))
}

fn key(t: &Target, name: &str) -> Result<ObjKey, ApiError> {
    Ok(ObjKey::new(t.resource, namespace(t)?, name))
}

fn sub(t: &Target) -> Sub {
    if t.sub.as_deref() == Some("status") {
        Sub::Status
    } else {
        Sub::Main
    }
}

fn opts(req: &Req<'_>, t: &Target) -> WriteOpts {
    WriteOpts {
        manager: req.field_manager(),
        sub: sub(t),
        dry_run: req.dry_run(),
    }
}

fn filter(req: &Req<'_>, t: &Target) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace: t.namespace.clone(),
        labels: LabelSelector::parse(req.query.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(
            req.query.get("fieldSelector").unwrap_or_default(),
            t.resource,
        )?,
    })
}

fn ok(v: &Value) -> Reply {
    Reply::Json(StatusCode::OK, v.clone())
}

/// A write body: a JSON object whose `apiVersion` and `kind`, when given, are the path's.
fn parse_body(body: &[u8], resource: FakeResource) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body is not a JSON object"));
    }
    check_type(&v, resource)?;
    Ok(v)
}

fn check_type(v: &Value, resource: FakeResource) -> Result<(), ApiError> {
    if let Some(av) = v.get("apiVersion").and_then(Value::as_str)
        && av != resource.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != resource.kind()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind()
        )));
    }
    Ok(())
}

fn injected_conflict(req: &Req<'_>, key: &ObjKey) -> Result<(), ApiError> {
    if req.app.faults.take_conflict(key) {
        Err(ApiError::conflict(key.resource, &key.name))
    } else {
        Ok(())
    }
}

/// Whether the client asked for metadata only (kube's `Api<PartialObjectMeta<K>>`, `kubectl
/// get -o name`): `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`.
fn metadata_only(req: &Req<'_>) -> bool {
    req.headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=PartialObjectMetadata"))
}

fn get(req: &Req<'_>, key: &ObjKey) -> Result<Reply, ApiError> {
    match req.app.store.get(key) {
        Some(obj) if metadata_only(req) => Ok(ok(&watch::partial(&obj))),
        Some(obj) => Ok(ok(&obj)),
        None => Err(ApiError::not_found(key.resource, &key.name)),
    }
}

/// The position a `continue` token resumes after, and the resourceVersion of the list's
/// first page.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    namespace: String,
    name: String,
}

fn list(req: &Req<'_>, t: &Target) -> Result<Reply, ApiError> {
    let filter = filter(req, t)?;
    let limit = req
        .query
        .number("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let token = continue_token(req)?;
    let inner = req.app.store.lock();
    let list_rv = match &token {
        Some(tok) if tok.rv < inner.oldest() => return Err(continue_expired()),
        Some(tok) => tok.rv,
        None => inner.current_rv(),
    };
    let items: Vec<Arc<Value>> = inner
        .list(t.resource, t.namespace.as_deref())
        .into_iter()
        .filter(|o| filter.matches(o))
        .filter(|o| {
            token
                .as_ref()
                .is_none_or(|tok| position(o) > (tok.namespace.clone(), tok.name.clone()))
        })
        .collect();
    drop(inner);
    let take = limit.unwrap_or(items.len()).min(items.len());
    let remaining = items.len() - take;
    let meta_only = metadata_only(req);
    let page: Vec<Value> = items[..take]
        .iter()
        .map(|o| list_item(o, meta_only))
        .collect();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0 && take > 0 {
        let (namespace, name) = position(&items[take - 1]);
        let tok = ContinueToken {
            rv: list_rv,
            namespace,
            name,
        };
        metadata["continue"] = json!(B64.encode(serde_json::to_vec(&tok).expect("serializable")));
        metadata["remainingItemCount"] = json!(remaining);
    }
    let (kind, api_version) = if meta_only {
        ("PartialObjectMetadataList".to_string(), "meta.k8s.io/v1")
    } else {
        (
            format!("{}List", t.resource.kind()),
            t.resource.api_version(),
        )
    };
    Ok(ok(&json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "items": page,
    })))
}

/// The request's `continue` token, if it has one; 400 when it cannot be read.
fn continue_token(req: &Req<'_>) -> Result<Option<ContinueToken>, ApiError> {
    match req.query.get("continue") {
        None => Ok(None),
        Some(s) => Some(
            B64.decode(s)
                .ok()
                .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
                .ok_or_else(|| ApiError::bad_request("invalid continue token")),
        )
        .transpose(),
    }
}

/// 410 for a `continue` token older than the kept history, as the real server answers.
fn continue_expired() -> ApiError {
    ApiError {
        code: 410,
        reason: "Expired",
        message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
        details: None,
    }
}

/// An object's position in a list: (namespace, name).
fn position(o: &Value) -> (String, String) {
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/metadata/namespace"), s("/metadata/name"))
}

/// An item of a list page: its metadata only when asked, else the object without
/// `apiVersion` and `kind` (items of a typed list carry none, as on the real server).
fn list_item(o: &Value, meta_only: bool) -> Value {
    if meta_only {
        return watch::partial(o);
    }
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

fn watch(req: &Req<'_>, t: &Target) -> Result<Reply, ApiError> {
    let initial_events = req.query.flag("sendInitialEvents");
    let since = match req.query.get("resourceVersion") {
        None | Some("0") => None,
        Some(_) if initial_events => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
        ),
    };
    let spec = WatchSpec {
        resource: t.resource,
        filter: filter(req, t)?,
        since,
        bookmarks: req.query.flag("allowWatchBookmarks"),
        initial_events,
        timeout: req
            .query
            .number("timeoutSeconds")?
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        metadata_only: metadata_only(req),
    };
    let env = WatchEnv {
        store: req.app.store.clone(),
        bookmark_interval: req.app.bookmark_interval,
        shutdown: req.app.shutdown.clone(),
        close_all: req.app.close_watches.clone(),
    };
    Ok(Reply::Stream(
        "application/json",
        watch::stream(env, spec).boxed(),
    ))
}

fn create(req: &Req<'_>, t: &Target) -> Result<Reply, ApiError> {
    let ns = namespace(t)?;
    let body = parse_body(req.body, t.resource)?;
    if let Some(name) = body.pointer("/metadata/name").and_then(Value::as_str) {
        injected_conflict(req, &ObjKey::new(t.resource, ns, name))?;
    }
    let obj = req.app.store.create(t.resource, ns, body, &opts(req, t))?;
    Ok(Reply::Json(StatusCode::CREATED, (*obj).clone()))
}

fn update(req: &Req<'_>, t: &Target, key: &ObjKey) -> Result<Reply, ApiError> {
    let body = parse_body(req.body, t.resource)?;
    injected_conflict(req, key)?;
    let obj = req
        .app
        .store
        .update(key, &opts(req, t), |_, _| Ok(Proposed::Object(body)))?;
    Ok(ok(&obj))
}

fn patch(req: &Req<'_>, t: &Target, key: &ObjKey) -> Result<Reply, ApiError> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchKind::from_content_type(content_type)?;
    injected_conflict(req, key)?;
    let store = &req.app.store;
    if kind != PatchKind::Apply {
        let obj = store.update(key, &opts(req, t), |current, _| {
            patch::patch(current, kind, req.body).map(Proposed::Object)
        })?;
        return Ok(ok(&obj));
    }
    let mut config = apply_body(req.body)?;
    check_type(&config, t.resource)?;
    if config.get("apiVersion").is_none() || config.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply patch",
        ));
    }
    let Some(manager) = req.query.get("fieldManager") else {
        return Err(ApiError::bad_request(
            "PATCH, PUT, POST requests with apply must specify fieldManager",
        ));
    };
    let opts = WriteOpts {
        manager: manager.to_string(),
        ..opts(req, t)
    };
    let map = config.as_object_mut().expect("checked to be an object");
    match opts.sub {
        // Status is only written through the status subresource, and vice versa.
        Sub::Main => {
            map.remove("status");
        }
        Sub::Status => {
            map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if store.get(key).is_none() {
                return Err(ApiError::not_found(key.resource, &key.name));
            }
        }
    }
    let (obj, created) = store.apply(key, &config, req.query.flag("force"), &opts)?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Reply::Json(code, (*obj).clone()))
}

/// An apply body: YAML, of which JSON (what kube sends) is a subset.
fn apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let parsed = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(_) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?
        }
    };
    if parsed.is_object() {
        Ok(parsed)
    } else {
        Err(ApiError::bad_request("an apply patch must be an object"))
    }
}

fn delete(req: &Req<'_>, key: &ObjKey) -> Result<Reply, ApiError> {
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid delete options: {e}")))?
    };
    let pre = |f: &str| {
        options
            .pointer(&format!("/preconditions/{f}"))
            .and_then(Value::as_str)
    };
    let dry_run = req.dry_run()
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    injected_conflict(req, key)?;
    let obj = req
        .app
        .store
        .delete(key, pre("uid"), pre("resourceVersion"), dry_run)?;
    Ok(ok(&obj))
}

fn delete_collection(req: &Req<'_>, t: &Target) -> Result<Reply, ApiError> {
    let filter = filter(req, t)?;
    let store = &req.app.store;
    let (objects, _) = store.list(t.resource, t.namespace.as_deref());
    let mut deleted = Vec::new();
    for obj in objects.iter().filter(|o| filter.matches(o)) {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let key = ObjKey::new(t.resource, s("/metadata/namespace"), s("/metadata/name"));
        match store.delete(&key, None, None, req.dry_run()) {
            Ok(gone) => deleted.push((*gone).clone()),
            Err(e) if e.code == 404 => {} // deleted meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok(ok(&json!({
        "kind": format!("{}List", t.resource.kind()),
        "apiVersion": t.resource.api_version(),
        "metadata": {"resourceVersion": store.rv().to_string()},
        "items": deleted,
    })))
}
