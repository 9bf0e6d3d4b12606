//! The HTTP face of the fake API server: path routing, query parameters, replies, request
//! accounting, injected failures and the discovery documents.
//!
//! Owns the mapping from `/api/v1/...` and `/apis/<group>/<version>/...` paths to a kind, a
//! namespace, a name and a subresource, and from (method, path) to the Kubernetes verb. Every
//! request passes through [`dispatch`], which counts it and serves injected failures before
//! handing it to [`super::handlers`]. It does not implement any verb itself.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::faults::Faults;
use super::handlers;
use super::resources::FakeResource;
use super::stats::{RequestRecord, Stats};
use super::status::ApiError;
use super::store::Store;

/// Shared state of the HTTP server.
pub(crate) struct App {
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
    pub bookmark_interval: Duration,
    pub shutdown: watch::Receiver<bool>,
    pub close_watches: watch::Receiver<u64>,
}

/// The router: everything goes through [`dispatch`], because Kubernetes paths are easier to
/// parse by hand than to spell as routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

/// A resource path, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub resource: FakeResource,
    /// `None` for the all-namespaces collection (`/apis/apps/v1/deployments`).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status` or `log`.
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Version,
    CoreVersions,
    Groups,
    Resources { group: String },
    Resource(Target),
    Unknown,
}

fn parse_path(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["api", "v1"] => {
            return Route::Resources {
                group: String::new(),
            };
        }
        ["apis", g, "v1"] => {
            return Route::Resources {
                group: (*g).to_string(),
            };
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::Unknown,
    };
    let (namespace, plural, name, sub) = match rest {
        [plural] => (None, *plural, None, None),
        ["namespaces", ns, plural] => (Some(*ns), *plural, None, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name), None),
        ["namespaces", ns, plural, name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
        _ => return Route::Unknown,
    };
    let Some(resource) = FakeResource::from_path(group, version, plural) else {
        return Route::Unknown;
    };
    let sub_ok = match sub {
        None => true,
        Some("status") => resource.has_status_subresource(),
        Some("log") => resource == FakeResource::Pods,
        Some(_) => false,
    };
    if !sub_ok {
        return Route::Unknown;
    }
    Route::Resource(Target {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
    })
}

/// Query parameters (last value wins).
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    fn parse(uri: &Uri) -> Query {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|p| p.0)
            .unwrap_or_default();
        Query(pairs.into_iter().collect())
    }

    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// `true`/`1` (Kubernetes accepts both for boolean parameters).
    pub(super) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// A non-negative integer parameter; a malformed one is 400.
    pub(super) fn number(&self, k: &str) -> Result<Option<u64>, ApiError> {
        self.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    }
}

/// A handler's answer, before accounting.
pub(crate) enum Reply {
    Json(StatusCode, Value),
    Text(StatusCode, String),
    Stream(&'static str, BoxStream<'static, Result<Bytes, Infallible>>),
}

impl Reply {
    pub(super) fn error(err: ApiError) -> Reply {
        let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Reply::Json(code, err.to_status())
    }

    fn status(&self) -> u16 {
        match self {
            Reply::Json(c, _) | Reply::Text(c, _) => c.as_u16(),
            Reply::Stream(..) => 200,
        }
    }
}

impl From<Result<Reply, ApiError>> for Reply {
    fn from(r: Result<Reply, ApiError>) -> Reply {
        r.unwrap_or_else(Reply::error)
    }
}

/// Everything a handler needs to know about the request.
pub(crate) struct Req<'a> {
    pub app: &'a Arc<App>,
    pub path: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub query: &'a Query,
    pub body: &'a Bytes,
}

impl Req<'_> {
    /// `fieldManager`, else the User-Agent's product name, as the real server defaults it.
    pub(super) fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match ua.split('/').next() {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => "unknown".to_string(),
        }
    }

    /// `dryRun=All` in the query.
    pub(super) fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }
}

/// The Kubernetes verb and the resource label of a request, for accounting.
fn classify(method: &Method, route: &Route, query: &Query, path: &str) -> (String, String) {
    let Route::Resource(t) = route else {
        return ("get".into(), path.to_string());
    };
    let mut resource = t.resource.qualified();
    if let Some(sub) = &t.sub {
        resource = format!("{resource}/{sub}");
    }
    let verb = match (method.as_str(), t.name.is_some()) {
        ("GET", false) if query.flag("watch") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => return (other.to_lowercase(), resource),
    };
    (verb.to_string(), resource)
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return Reply::error(ApiError::bad_request(format!("reading the body: {e}")))
                .into_response_counted(&app, None);
        }
    };
    let path = parts.uri.path().to_string();
    let query = Query::parse(&parts.uri);
    let route = parse_path(&path);
    let (verb, resource) = classify(&parts.method, &route, &query, &path);
    let reply = match app.faults.take_failure(&path) {
        Some(code) => Reply::error(ApiError::injected(code)),
        None => {
            let req = Req {
                app: &app,
                path: &path,
                method: &parts.method,
                headers: &parts.headers,
                query: &query,
                body: &body,
            };
            route_request(&req, route).await
        }
    };
    app.stats.request(
        RequestRecord {
            method: parts.method.to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or(path),
            verb: verb.clone(),
            resource: resource.clone(),
            status: reply.status(),
        },
        body.len() as u64,
    );
    reply.into_response_counted(&app, Some((verb, resource)))
}

async fn route_request(req: &Req<'_>, route: Route) -> Reply {
    match route {
        Route::Version => Reply::Json(StatusCode::OK, version()),
        Route::CoreVersions => Reply::Json(
            StatusCode::OK,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        ),
        Route::Groups => Reply::Json(StatusCode::OK, groups()),
        Route::Resources { group } => match resource_list(&group) {
            Some(v) => Reply::Json(StatusCode::OK, v),
            None => Reply::error(ApiError::no_route(&format!("/apis/{group}/v1"))),
        },
        Route::Resource(t) => handlers::handle(req, t).await.into(),
        Route::Unknown => Reply::error(ApiError::no_route(req.path)),
    }
}

impl Reply {
    /// The HTTP response, with its bytes counted under (verb, resource).
    fn into_response_counted(self, app: &Arc<App>, key: Option<(String, String)>) -> Response {
        let count = |n: usize| {
            if let Some((v, r)) = &key {
                app.stats.sent(v, r, n as u64);
            }
        };
        match self {
            Reply::Json(code, v) => {
                let bytes = serde_json::to_vec(&v).expect("JSON values serialize");
                count(bytes.len());
                (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
            }
            Reply::Text(code, text) => {
                count(text.len());
                (code, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
            }
            Reply::Stream(content_type, stream) => {
                let stats = app.stats.clone();
                let counted = stream.inspect(move |chunk| {
                    if let (Ok(b), Some((v, r))) = (chunk, &key) {
                        stats.sent(v, r, b.len() as u64);
                    }
                });
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, content_type)],
                    Body::from_stream(counted),
                )
                    .into_response()
            }
        }
    }
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-rollout-guard-fakeapi",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "none (Rust fake)", "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn groups() -> Value {
    let mut names: Vec<&str> = FakeResource::ALL
        .iter()
        .map(|r| r.group())
        .filter(|g| !g.is_empty())
        .collect();
    names.dedup();
    let groups: Vec<Value> = names
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in FakeResource::ALL.into_iter().filter(|r| r.group() == group) {
        resources.push(json!({
            "name": r.plural(), "singularName": r.kind().to_lowercase(), "namespaced": true,
            "kind": r.kind(),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }));
        if r.has_status_subresource() {
            resources.push(
                json!({"name": format!("{}/status", r.plural()), "singularName": "",
                "namespaced": true, "kind": r.kind(), "verbs": ["get", "patch", "update"]}),
            );
        }
        if r == FakeResource::Pods {
            resources.push(
                json!({"name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"]}),
            );
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/apis/apps/v1/namespaces/shop/deployments/web/status"),
            Route::Resource(Target {
                resource: FakeResource::Deployments,
                namespace: Some("shop".into()),
                name: Some("web".into()),
                sub: Some("status".into()),
            })
        );
        assert_eq!(
            parse_path("/apis/apps/v1/deployments"),
            Route::Resource(Target {
                resource: FakeResource::Deployments,
                namespace: None,
                name: None,
                sub: None,
            })
        );
        assert!(
            matches!(parse_path("/api/v1/namespaces/a/pods/p/log"), Route::Resource(t) if t.sub.as_deref() == Some("log"))
        );
        assert_eq!(
            parse_path("/apis/coordination.k8s.io/v1/namespaces/a/leases/l/status"),
            Route::Unknown
        );
        assert_eq!(parse_path("/api/v1/namespaces/a/secrets"), Route::Unknown);
        assert_eq!(
            parse_path("/apis/apps/v2/namespaces/a/deployments"),
            Route::Unknown
        );
        assert_eq!(parse_path("/version"), Route::Version);
    }

    #[test]
    fn verbs() {
        let q = Query::parse(&"/x?watch=true&resourceVersion=5".parse().unwrap());
        let r = parse_path("/apis/apps/v1/namespaces/a/deployments");
        assert_eq!(
            classify(&Method::GET, &r, &q, ""),
            ("watch".into(), "apps/deployments".into())
        );
        let r = parse_path("/api/v1/namespaces/a/pods/p/log");
        assert_eq!(
            classify(&Method::GET, &r, &Query::default(), ""),
            ("get".into(), "pods/log".into())
        );
        assert_eq!(q.number("resourceVersion").unwrap(), Some(5));
    }

    #[test]
    fn discovery_documents_parse() {
        let groups: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList =
            serde_json::from_value(groups()).unwrap();
        assert_eq!(groups.groups.len(), 3);
        let apps: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList =
            serde_json::from_value(resource_list("apps").unwrap()).unwrap();
        assert!(
            apps.resources
                .iter()
                .any(|r| r.name == "deployments/status")
        );
        let _: k8s_openapi::apimachinery::pkg::version::Info =
            serde_json::from_value(version()).unwrap();
    }
}
