use super::*;
use crate::analysis::duration::PromDuration;
use crate::analysis::source::{Series, SourceError};

/// A source that knows which metrics exist for which pods: a query has one series per pod
/// for each metric named in it that exists, none otherwise; `down` fails every query.
struct Known {
    metrics: Vec<&'static str>,
    down: bool,
}

impl MetricSource for Known {
    async fn instant(&self, query: &str, _: Timestamp) -> Result<Vec<Series>, SourceError> {
        if self.down {
            return Err(SourceError::Unreachable("connection refused".into()));
        }
        // Every metric the query names must exist for it to have series (a ratio of two).
        let named: Vec<&str> = query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.ends_with("_total") || w.starts_with("kube_"))
            .collect();
        let all = !named.is_empty() && named.iter().all(|n| self.metrics.contains(n));
        Ok(if all {
            vec![
                Series::for_pod("shop-7d4b9-a", [(0.0, 1.0)]),
                Series::for_pod("shop-7d4b9-b", [(0.0, 1.0)]),
            ]
        } else {
            Vec::new()
        })
    }

    async fn range(
        &self,
        _: &str,
        _: Timestamp,
        _: Timestamp,
        _: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        unreachable!("preflight asks instant queries only")
    }
}

fn subject() -> Subject {
    Subject {
        namespace: "web".into(),
        deployment: "shop".into(),
        replicaset: "shop-7d4b9".into(),
    }
}

fn by_rule(checks: &[RuleCheck]) -> std::collections::BTreeMap<&str, &Readiness> {
    checks
        .iter()
        .map(|c| (c.rule.as_str(), &c.readiness))
        .collect()
}

fn bundled() -> RuleSet {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    RuleSet::load(&[root.join("default.yaml"), root.join("php-logs.yaml")]).unwrap()
}

#[tokio::test]
async fn a_service_without_php_metrics_is_told_which_rules_will_never_judge() {
    // CPU is scraped (cAdvisor, kube-state-metrics), PHP counters are not.
    let source = Known {
        metrics: vec![
            "container_cpu_usage_seconds_total",
            "kube_pod_container_resource_limits",
            "container_cpu_cfs_throttled_periods_total",
            "container_cpu_cfs_periods_total",
        ],
        down: false,
    };
    let checks = check(&bundled(), &subject(), Timestamp::now(), &source).await;
    let r = by_rule(&checks);
    assert_eq!(r["cpu-saturation"], &Readiness::Ready);
    assert_eq!(r["cpu-throttling"], &Readiness::Ready);
    // CPU per request needs the request counter too.
    assert_eq!(r["cpu-per-request"], &Readiness::NoSeries(QueryName::Query));
    assert_eq!(
        r["php-error-rate"],
        &Readiness::NoSeries(QueryName::Requests)
    );
    assert_eq!(r["php-log-class-errors"], &Readiness::NotChecked);
    let said = checks
        .iter()
        .find(|c| c.rule == "php-error-rate")
        .unwrap()
        .describe(&subject());
    assert!(
        said.contains("no series for any pod of shop-7d4b9 from its requests query")
            && said.contains("will stay inconclusive")
            && said.contains(r#"pod=~"shop-7d4b9-"#),
        "{said}"
    );
    assert!(r["php-error-rate"].blocks() && !r["php-log-class-errors"].blocks());
}

#[tokio::test]
async fn error_counters_not_born_yet_do_not_block_a_rule() {
    let source = Known {
        metrics: vec!["php_requests_total"],
        down: false,
    };
    let checks = check(&bundled(), &subject(), Timestamp::now(), &source).await;
    let r = by_rule(&checks);
    // php_errors_total has no series until a pod's first error: read as none yet.
    assert_eq!(r["php-error-rate"], &Readiness::ErrorsNotYetSeen);
    assert!(!r["php-error-rate"].blocks());
}

#[tokio::test]
async fn a_source_that_fails_is_said_per_rule() {
    let source = Known {
        metrics: Vec::new(),
        down: true,
    };
    let checks = check(&bundled(), &subject(), Timestamp::now(), &source).await;
    let r = by_rule(&checks);
    assert!(
        matches!(r["cpu-saturation"], Readiness::Failed(QueryName::Query, why) if why.contains("connection refused"))
    );
}
