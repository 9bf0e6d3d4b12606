//! What the daemon tells about itself: Prometheus metrics, health and readiness, served over
//! HTTP (`/metrics`, `/healthz`, `/readyz`).
//!
//! Owns the metric families (with the `prometheus-client` crate) and the small HTTP server,
//! whose connections are bounded ([`ServerLimits`]): a client gets a fixed time to send a
//! request header of a bounded size, and shutdown waits a bounded time for open connections.
//! The controller only increments counters through [`Metrics`]; nothing here decides or
//! writes to the cluster.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The labels of a rule verdict counted across all Deployments.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// The rule's name.
    pub rule: String,
    /// `pass`, `fail` or `inconclusive`.
    pub outcome: String,
}

/// The labels of an action counted across all Deployments.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `pause`, `resume` or `rollback`.
    pub action: String,
    /// `ok`, `recorded` (dry run or rate limit), or an error kind (`conflict`, `api`, ...).
    pub result: String,
}

/// One opted-in Deployment's actions: the series exist only for Deployments the controller
/// analyses, so their number is bounded by those, not by the cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentActionLabels {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// `pause`, `resume` or `rollback`.
    pub action: String,
    /// What became of it, as in [`ActionLabels::result`].
    pub result: String,
}

/// One opted-in Deployment's verdicts by outcome (not by rule, to keep them few).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentVerdictLabels {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// `pass`, `fail` or `inconclusive`.
    pub outcome: String,
}

/// One opted-in Deployment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
}

/// The labels of `build_info`: what this binary was built from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The commit built, from `ROLLOUT_GUARD_COMMIT` at build time (`unknown` without).
    pub commit: String,
}

/// The version and commit this binary was built from.
pub fn build() -> BuildLabels {
    BuildLabels {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: option_env!("ROLLOUT_GUARD_COMMIT")
            .unwrap_or("unknown")
            .into(),
    }
}

/// The labels of a count per rule.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule's name.
    pub rule: String,
}

/// The labels of rule file reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, or `kept_last_good` when the changed files did not load.
    pub result: String,
}

/// What became of an action, as the action counters label it (`result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionResult {
    /// Written.
    Ok,
    /// Decided but only recorded (observe mode, the kill switch, the rollback rate limit).
    Recorded,
    /// Someone else wrote first; re-read and decided again.
    Conflict,
    /// The Deployment is gone.
    Gone,
    /// The ReplicaSet to roll back to vanished.
    TargetGone,
    /// The Deployment had no generation to write against.
    NoGeneration,
    /// The controller's memory could not be encoded.
    Encode,
    /// Another Kubernetes API error.
    Api,
}

impl ActionResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Ok => "ok",
            ActionResult::Recorded => "recorded",
            ActionResult::Conflict => "conflict",
            ActionResult::Gone => "gone",
            ActionResult::TargetGone => "target_gone",
            ActionResult::NoGeneration => "no_generation",
            ActionResult::Encode => "encode",
            ActionResult::Api => "api",
        }
    }
}

/// Every metric the daemon exports.
pub struct Metrics {
    /// `verdicts`: rule verdicts by rule and outcome.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// `actions`: actions on Deployments by kind and result.
    pub actions: Family<ActionLabels, Counter>,
    /// `deployment_actions`: actions by opted-in Deployment, kind and result.
    pub deployment_actions: Family<DeploymentActionLabels, Counter>,
    /// `deployment_verdicts`: rule verdicts by opted-in Deployment and outcome.
    pub deployment_verdicts: Family<DeploymentVerdictLabels, Counter>,
    /// `rules_unevaluable`: rules the preflight of the latest analysis could not evaluate, by
    /// Deployment.
    pub rules_unevaluable: Family<DeploymentLabels, Gauge>,
    /// `evaluation_seconds`: time to evaluate one rollout, queries included, in seconds.
    pub evaluation_seconds: Histogram,
    /// `query_errors`: evaluations of a rule whose metric query failed, by rule.
    pub query_errors: Family<RuleLabels, Counter>,
    /// `reconcile_errors`: reconciliations that failed on a Kubernetes API error.
    pub reconcile_errors: Counter,
    /// `rollouts_analysed`: rollouts under analysis right now.
    pub rollouts_analysed: Gauge,
    /// `deployments_opted_in`: watched Deployments that opted in.
    pub deployments_opted_in: Gauge,
    /// `leader`: 1 while this replica holds the leader Lease and may act, else 0.
    pub leader: Gauge,
    /// `rule_reloads`: rule file reloads by result.
    pub rule_reloads: Family<ResultLabels, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The metric families, registered in the order `/metrics` lists them.
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            verdicts: Family::default(),
            actions: Family::default(),
            deployment_actions: Family::default(),
            deployment_verdicts: Family::default(),
            rules_unevaluable: Family::default(),
            evaluation_seconds: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            query_errors: Family::default(),
            reconcile_errors: Counter::default(),
            rollouts_analysed: Gauge::default(),
            deployments_opted_in: Gauge::default(),
            leader: Gauge::default(),
            rule_reloads: Family::default(),
            registry: Registry::with_prefix("rollout_guard"),
        };
        metrics.register_decisions();
        metrics.register_process();
        metrics
    }

    /// Registers what the controller decided and did, by rule and by opted-in Deployment.
    fn register_decisions(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "verdicts",
            "Rule verdicts by rule and outcome (pass, fail, inconclusive)",
            self.verdicts.clone(),
        );
        registry.register(
            "actions",
            "Actions on Deployments by kind and result",
            self.actions.clone(),
        );
        registry.register(
            "deployment_actions",
            "Actions by opted-in Deployment, kind and result",
            self.deployment_actions.clone(),
        );
        registry.register(
            "deployment_verdicts",
            "Rule verdicts by opted-in Deployment and outcome",
            self.deployment_verdicts.clone(),
        );
        registry.register(
            "rules_unevaluable",
            "Rules the preflight at the start of the latest analysis found unable to evaluate (no series, a failing query), by opted-in Deployment",
            self.rules_unevaluable.clone(),
        );
    }

    /// Registers what the process tells of itself: its build, its evaluations and errors, what
    /// it watches, and whether it leads.
    fn register_process(&mut self) {
        let registry = &mut self.registry;
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&build()).set(1);
        registry.register(
            "build_info",
            "1, with the version and commit of this binary",
            build_info,
        );
        registry.register(
            "evaluation_seconds",
            "Time to evaluate one rollout (all rules, queries included)",
            self.evaluation_seconds.clone(),
        );
        registry.register(
            "query_errors",
            "Evaluations of a rule whose metric query failed",
            self.query_errors.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed (Kubernetes API errors); retried",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "rollouts_analysed",
            "Rollouts under analysis right now",
            self.rollouts_analysed.clone(),
        );
        registry.register(
            "deployments_opted_in",
            "Watched Deployments that opted in",
            self.deployments_opted_in.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and may act",
            self.leader.clone(),
        );
        registry.register(
            "rule_reloads",
            "Rule file reloads by result (ok, kept_last_good)",
            self.rule_reloads.clone(),
        );
    }

    /// Counts an action on the Deployment `namespace`/`deployment`.
    pub fn action(&self, namespace: &str, deployment: &str, action: &str, result: ActionResult) {
        let result = result.as_str();
        self.actions
            .get_or_create(&ActionLabels {
                action: action.into(),
                result: result.into(),
            })
            .inc();
        self.deployment_actions
            .get_or_create(&DeploymentActionLabels {
                namespace: namespace.into(),
                deployment: deployment.into(),
                action: action.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts a verdict of `rule` on the Deployment `namespace`/`deployment`.
    pub fn verdict(&self, namespace: &str, deployment: &str, rule: &str, outcome: &str) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                rule: rule.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.deployment_verdicts
            .get_or_create(&DeploymentVerdictLabels {
                namespace: namespace.into(),
                deployment: deployment.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// What the preflight at the start of an analysis of `namespace`/`deployment` found: the
    /// rules that cannot be evaluated (0 when all can).
    pub fn rules_unevaluable(&self, namespace: &str, deployment: &str, rules: usize) {
        self.rules_unevaluable
            .get_or_create(&DeploymentLabels {
                namespace: namespace.into(),
                deployment: deployment.into(),
            })
            .set(i64::try_from(rules).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Readiness: set once the controller has synced its watches and loaded rules.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Marks the daemon ready (`/readyz` answers 200) or not (503).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    /// Whether the daemon is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Health,
    records: Option<RecordsReader>,
}

/// Which decision records a `GET /records` asks for (`?namespace=&deployment=&revision=`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct RecordsQuery {
    /// Only records of Deployments in this namespace.
    pub namespace: Option<String>,
    /// Only records of Deployments of this name.
    pub deployment: Option<String>,
    /// Only records of this revision (the new ReplicaSet's).
    pub revision: Option<u64>,
}

/// Answers a records query with JSON lines, or why it cannot (the daemon reads its file; this
/// module only serves what it is given). Called on a blocking thread.
pub type RecordsReader = Arc<dyn Fn(RecordsQuery) -> Result<String, String> + Send + Sync>;

/// The HTTP routes; `/records` only with a reader.
pub fn router(metrics: Arc<Metrics>, health: Health, records: Option<RecordsReader>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/records", get(records_handler))
        .with_state(AppState {
            metrics,
            health,
            records,
        })
}

async fn records_handler(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<RecordsQuery>,
) -> axum::response::Response {
    let Some(read) = s.records else {
        return (
            StatusCode::NOT_FOUND,
            "decision records are not served here (records.endpoint is off)\n",
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || read(q)).await {
        Ok(Ok(lines)) => (
            [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
            lines,
        )
            .into_response(),
        Ok(Err(why)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the decision records: {why}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the decision records\n",
        )
            .into_response(),
    }
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn ready_handler(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: watches not synced yet\n",
        )
    }
}

/// Bounds on the server's connections.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// How long a client may take to send a whole request header.
    pub header_read_timeout: Duration,
    /// The largest request header taken (a larger one is answered 431).
    pub max_header_bytes: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Binds the server; returns the bound address and a future that serves until `shutdown`,
/// then ends within `limits.shutdown_grace`.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    records: Option<RecordsReader>,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(metrics, health, records);
    Ok((addr, run_server(listener, app, limits, shutdown)))
}

/// Accepts connections until `shutdown`; then asks the open ones to finish, waits for them at
/// most `limits.shutdown_grace` and drops the rest (a client holding a half-sent header would
/// otherwise hold the process until the kubelet's SIGKILL).
async fn run_server(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    // Dropping the set aborts the connections still in it.
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => {
                    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
                    connections.spawn(serve_connection(conn, closing_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: let some connections end.
                    tracing::warn!(error = %e, "metrics server: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    closing.send_replace(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace = ?limits.shutdown_grace,
            "metrics server: dropping the connections still open after the shutdown grace"
        );
    }
    Ok(())
}

type Connection = http1::Connection<TokioIo<tokio::net::TcpStream>, TowerToHyperService<Router>>;

/// Serves one connection until it ends; once `closing` turns true, finishes the request in
/// flight and closes.
async fn serve_connection(conn: Connection, mut closing: tokio::sync::watch::Receiver<bool>) {
    let mut conn = pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = closing.wait_for(|c| *c) => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "metrics server connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A guard against hanging for ever, not a measurement: what it guards takes milliseconds.
    const HANG: Duration = Duration::from_secs(30);

    /// A server on a free loopback port; stopped by sending on the returned channel.
    type Started = (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    );

    async fn start(limits: ServerLimits) -> Started {
        start_with(limits, None).await
    }

    async fn start_with(limits: ServerLimits, records: Option<RecordsReader>) -> Started {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, server) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Metrics::new()),
            Health::default(),
            records,
            limits,
            async move {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
        (addr, stop, tokio::spawn(server))
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(HANG, conn.read_to_end(&mut answer)).await;
        read.expect("the server never closed the connection").ok();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Issue 14, bug 5: a client holding a half-sent request header does not hold shutdown
    /// beyond the grace.
    #[tokio::test]
    async fn shutdown_ends_while_a_client_holds_a_half_sent_header() {
        let (addr, stop, server) = start(ServerLimits {
            header_read_timeout: Duration::from_secs(3600),
            shutdown_grace: Duration::from_millis(100),
            ..ServerLimits::default()
        })
        .await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Connections are accepted in order: once a later one is answered, the slow one is held.
        let answer = exchange(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        stop.send(()).unwrap();
        tokio::time::timeout(HANG, server)
            .await
            .expect("shutdown did not end")
            .unwrap()
            .unwrap();
        drop(slow);
    }

    /// The risk beside it: a header not sent in time, or too large, closes the connection.
    #[tokio::test]
    async fn slow_or_huge_headers_are_cut_off() {
        let (addr, stop, server) = start(ServerLimits {
            header_read_timeout: Duration::from_millis(200),
            max_header_bytes: 8192,
            ..ServerLimits::default()
        })
        .await;
        exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        let answer = exchange(addr, huge.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        stop.send(()).unwrap();
        tokio::time::timeout(HANG, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn families_are_exported_with_the_prefix() {
        let m = Metrics::new();
        m.action("shop", "billing", "rollback", ActionResult::Ok);
        m.verdict("shop", "billing", "class-loading-errors", "fail");
        m.leader.set(1);
        let text = m.encode();
        assert!(
            text.contains(r#"rollout_guard_actions_total{action="rollback",result="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"rollout_guard_verdicts_total{rule="class-loading-errors",outcome="fail"} 1"#
        ));
        assert!(text.contains(
            r#"rollout_guard_deployment_actions_total{namespace="shop",deployment="billing",action="rollback",result="ok"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"rollout_guard_deployment_verdicts_total{namespace="shop",deployment="billing",outcome="fail"} 1"#
        ), "{text}");
        assert!(
            text.contains(&format!(
                r#"rollout_guard_build_info{{version="{}",commit="#,
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("rollout_guard_leader 1"));
        assert!(text.contains("# TYPE rollout_guard_evaluation_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn records_are_served_only_with_a_reader_and_as_it_answers() {
        let get = |q: &str| {
            format!("GET /records{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
        };
        let (addr, stop, server) = start(ServerLimits::default()).await;
        let answer = exchange(addr, &get("")).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(answer.contains("records.endpoint is off"), "{answer}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();

        // The reader sees the query as asked; its answer is the body, its failure a 500.
        let reader: RecordsReader = Arc::new(|q: RecordsQuery| match q.deployment.as_deref() {
            Some("shop") => Ok(format!("{{\"revision\":{}}}\n", q.revision.unwrap_or(0))),
            _ => Err("no such file".into()),
        });
        let (addr, stop, server) = start_with(ServerLimits::default(), Some(reader)).await;
        let answer = exchange(addr, &get("?namespace=web&deployment=shop&revision=7")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("application/x-ndjson"), "{answer}");
        assert!(answer.ends_with("{\"revision\":7}\n"), "{answer}");
        let answer = exchange(addr, &get("?deployment=other")).await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(answer.contains("no such file"), "{answer}");
        let answer = exchange(addr, &get("?revision=seven")).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
