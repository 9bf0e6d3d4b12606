//! Which container's log a `logs` rule reads in a pod.
//!
//! Owns the choice only: the rule's `container` when it names one; else the container the
//! pod names with `kubectl.kubernetes.io/default-container` (what `kubectl logs` reads); else
//! the first container that is not a known sidecar (a service mesh's proxy is injected first
//! when the application must wait for it, and its log holds no PHP errors); else the first
//! container. Reading the log is the adapter's.

use k8s_openapi::api::core::v1::Pod;

/// The annotation with which a pod names its main container (`kubectl logs`, `kubectl exec`).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Containers injected beside the application whose logs are not the application's: service
/// mesh proxies (Istio, Linkerd, Kuma, Consul, Open Service Mesh, App Mesh), secret and
/// database proxies, log and metric agents.
pub const KNOWN_SIDECARS: [&str; 14] = [
    "istio-proxy",
    "linkerd-proxy",
    "kuma-sidecar",
    "consul-dataplane",
    "envoy-sidecar",
    "envoy",
    "vault-agent",
    "cloud-sql-proxy",
    "cloudsql-proxy",
    "fluent-bit",
    "fluentd",
    "datadog-agent",
    "otel-collector",
    "opentelemetry-collector",
];

/// The container whose log is read in `pod`, with the rule's `chosen` name first; `None`
/// when the pod has no containers.
pub(super) fn log_container(pod: &Pod, chosen: Option<&str>) -> Option<String> {
    if let Some(name) = chosen {
        return Some(name.to_string());
    }
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let named = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .map(|n| n.trim())
        .filter(|n| names.contains(n));
    named
        .or_else(|| names.iter().copied().find(|n| !KNOWN_SIDECARS.contains(n)))
        .or_else(|| names.first().copied())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn pod(containers: &[&str], default: Option<&str>) -> Pod {
        let mut p = Pod {
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|n| Container {
                        name: n.to_string(),
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        if let Some(d) = default {
            p.metadata.annotations =
                Some([(DEFAULT_CONTAINER_ANNOTATION.to_string(), d.to_string())].into());
        }
        p
    }

    #[test]
    fn the_rules_container_wins() {
        let p = pod(&["istio-proxy", "php-fpm"], Some("php-fpm"));
        assert_eq!(log_container(&p, Some("nginx")).as_deref(), Some("nginx"));
    }

    #[test]
    fn the_pods_default_container_annotation_is_followed() {
        let p = pod(&["nginx", "php-fpm"], Some("php-fpm"));
        assert_eq!(log_container(&p, None).as_deref(), Some("php-fpm"));
        // An annotation naming no container of the pod is ignored, as kubectl warns and does.
        let p = pod(&["istio-proxy", "php-fpm"], Some("app"));
        assert_eq!(log_container(&p, None).as_deref(), Some("php-fpm"));
    }

    #[test]
    fn a_mesh_proxy_injected_first_is_skipped() {
        for proxy in ["istio-proxy", "linkerd-proxy", "vault-agent"] {
            let p = pod(&[proxy, "php-fpm"], None);
            assert_eq!(log_container(&p, None).as_deref(), Some("php-fpm"));
        }
        assert_eq!(
            log_container(&pod(&["php-fpm", "istio-proxy"], None), None).as_deref(),
            Some("php-fpm")
        );
    }

    #[test]
    fn a_pod_of_sidecars_only_is_read_in_its_first_and_a_pod_without_containers_not_at_all() {
        assert_eq!(
            log_container(&pod(&["envoy", "fluent-bit"], None), None).as_deref(),
            Some("envoy")
        );
        assert_eq!(log_container(&pod(&[], None), None), None);
        assert_eq!(log_container(&Pod::default(), None), None);
    }
}
