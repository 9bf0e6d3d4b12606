//! What the daemon tells about itself: Prometheus metrics, health and readiness, served over
//! HTTP (`/metrics`, `/healthz`, `/readyz`).
//!
//! Owns the metric families (with the `prometheus-client` crate) and the small HTTP server.
//! The controller only increments counters through [`Metrics`]; nothing here decides or
//! writes to the cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub rule: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
    /// `ok`, `recorded` (dry run or rate limit), or an error kind (`conflict`, `api`, ...).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    pub verdicts: Family<VerdictLabels, Counter>,
    pub actions: Family<ActionLabels, Counter>,
    pub evaluation_seconds: Histogram,
    pub query_errors: Family<RuleLabels, Counter>,
    pub reconcile_errors: Counter,
    pub rollouts_analysed: Gauge,
    pub deployments_opted_in: Gauge,
    pub leader: Gauge,
    pub rule_reloads: Family<ResultLabels, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rollout_guard");
        let verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "verdicts",
            "Rule verdicts by rule and outcome (pass, fail, inconclusive)",
            verdicts.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Actions on Deployments by kind and result",
            actions.clone(),
        );
        let evaluation_seconds =
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "evaluation_seconds",
            "Time to evaluate one rollout (all rules, queries included)",
            evaluation_seconds.clone(),
        );
        let query_errors = Family::<RuleLabels, Counter>::default();
        registry.register(
            "query_errors",
            "Evaluations of a rule whose metric query failed",
            query_errors.clone(),
        );
        let reconcile_errors = Counter::default();
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed (Kubernetes API errors); retried",
            reconcile_errors.clone(),
        );
        let rollouts_analysed = Gauge::default();
        registry.register(
            "rollouts_analysed",
            "Rollouts under analysis right now",
            rollouts_analysed.clone(),
        );
        let deployments_opted_in = Gauge::default();
        registry.register(
            "deployments_opted_in",
            "Watched Deployments that opted in",
            deployments_opted_in.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and may act",
            leader.clone(),
        );
        let rule_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "rule_reloads",
            "Rule file reloads by result (ok, kept_last_good)",
            rule_reloads.clone(),
        );
        Metrics {
            verdicts,
            actions,
            evaluation_seconds,
            query_errors,
            reconcile_errors,
            rollouts_analysed,
            deployments_opted_in,
            leader,
            rule_reloads,
            registry,
        }
    }

    pub fn action(&self, action: &str, result: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.into(),
                result: result.into(),
            })
            .inc();
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
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Health,
}

/// The HTTP routes.
pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, health })
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

/// Binds the server; returns the bound address and a future that serves until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(metrics, health);
    let fut = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((addr, fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_exported_with_the_prefix() {
        let m = Metrics::new();
        m.action("rollback", "ok");
        m.verdicts
            .get_or_create(&VerdictLabels {
                rule: "class-loading-errors".into(),
                outcome: "fail".into(),
            })
            .inc();
        m.leader.set(1);
        let text = m.encode();
        assert!(
            text.contains(r#"rollout_guard_actions_total{action="rollback",result="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"rollout_guard_verdicts_total{rule="class-loading-errors",outcome="fail"} 1"#
        ));
        assert!(text.contains("rollout_guard_leader 1"));
        assert!(text.contains("# TYPE rollout_guard_evaluation_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }
}
