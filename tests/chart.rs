//! The Helm chart (`charts/rollout-guard`) and the Dockerfile, checked three ways:
//!
//! - Helm's own lint, through Helm's Go library (`helm-sdkpy`, in the venv that
//!   `scripts/chart-venv` makes), on the chart and on broken copies of it, so that the lint is
//!   seen to fail;
//! - the chart rendered with several sets of values (`tests/chart/helm.py render`: a real
//!   `helm install` against a fake API server), whose configuration the binary must load and
//!   whose rules must load;
//! - the blocks the templates keep literal (RBAC rules, security contexts, probes, command),
//!   read straight from the template files, and the Dockerfile's stages, user and command.
//!
//! A missing venv fails these tests; it never skips them.

#[path = "chart/dashboard.rs"]
mod dashboard;
#[path = "chart/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::*;
use rollout_guard::analysis::duration::PromDuration;
use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::app::config::{Config, ConfigError, Defaults, Limits, LogFormat, Records};
use rollout_guard::policy::guard::Mode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helm's lint.

#[test]
fn chart_lints_without_errors_or_warnings() {
    let messages = lint(&[&chart()]).remove(0);
    let problems: Vec<String> = messages
        .iter()
        .filter(|m| m.severity >= WARNING)
        .map(|m| format!("severity {} on {}: {}", m.severity, m.path, m.error))
        .collect();
    assert!(problems.is_empty(), "Helm's lint: {problems:#?}");
}

#[test]
fn lint_fails_on_broken_copies_of_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    // (copy, the path Helm must blame, with what severity)
    let broken = [
        // A template that does not parse.
        (
            broken_copy(
                dir.path(),
                "templates/deployment.yaml",
                "{{ .Values.replicaCount }}",
                "{{ .Values.replicaCount }",
            ),
            "templates/",
            ERROR,
        ),
        // A template whose output is not YAML.
        (
            broken_copy(
                dir.path(),
                "templates/configmap.yaml",
                "\ndata:\n",
                "\ndata:\n  broken: [\n",
            ),
            "templates/configmap.yaml",
            ERROR,
        ),
        // A deprecated API is a warning, which the clean lint above would catch too.
        (
            broken_copy(
                dir.path(),
                "templates/pdb.yaml",
                "apiVersion: policy/v1\n",
                "apiVersion: policy/v1beta1\n",
            ),
            "templates/pdb.yaml",
            WARNING,
        ),
    ];
    let charts: Vec<&Path> = broken.iter().map(|(c, _, _)| c.as_path()).collect();
    for ((copy, path, severity), messages) in broken.iter().zip(lint(&charts)) {
        assert!(
            messages
                .iter()
                .any(|m| m.severity == *severity && m.path == *path),
            "{}: Helm's lint must report severity {severity} on {path}: {messages:#?}",
            copy.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The literal blocks of the templates.

/// The rules of the ClusterRole (or per-namespace Role), exactly: anything more must be argued
/// for in the README's RBAC table first.
fn workload_rules() -> Value {
    json!([
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

/// Asserts that `docs` hold the ClusterRole `name` with `rules`, bound by the ClusterRoleBinding
/// of the same name to the controller's service account.
fn cluster_role_bound(docs: &[Value], name: &str, rules: Value) {
    assert_eq!(find(docs, "ClusterRole", name)["rules"], rules);
    let binding = find(docs, "ClusterRoleBinding", name);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );
}

/// The rules of the pod-logs ClusterRole (or Roles), granted with `rbac.podLogs` only.
fn pod_logs_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ])
}

/// The rules of the pod-log-counts ClusterRole (or Roles): the ConfigMaps where the old pods'
/// counts are kept over a restart, with `rbac.podLogs` unless `rbac.podLogCounts` is false.
fn pod_log_counts_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch", "delete"]},
    ])
}

/// The rules of the status-reader ClusterRole, for pipelines running `rollout-guard status`.
fn status_reader_rules() -> Value {
    json!([
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["list"]},
    ])
}

/// The leader-election Role's rules, with the release's full name for the Lease.
fn lease_rules(fullname: &str) -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [fullname], "verbs": ["get", "patch"]},
    ])
}

const FULLNAME_EXPR: &str = r#"{{ include "rollout-guard.fullname" . | quote }}"#;

#[test]
fn rbac_rules_are_exactly_the_documented_ones() {
    let workload = literal_block("rbac.yaml", "rules");
    assert_eq!(workload, workload_rules());
    let pod_logs = literal_block("pod-logs-rbac.yaml", "rules");
    assert_eq!(pod_logs, pod_logs_rules());
    let pod_log_counts = literal_block("pod-log-counts-rbac.yaml", "rules");
    assert_eq!(pod_log_counts, pod_log_counts_rules());
    let status_reader = literal_block("status-reader-rbac.yaml", "rules");
    assert_eq!(status_reader, status_reader_rules());
    let lease = literal_blocks(
        "leader-election-rbac.yaml",
        "rules",
        &[(FULLNAME_EXPR, "\"FULLNAME\"")],
    );
    assert_eq!(lease.len(), 1);
    assert_eq!(lease[0].1, lease_rules("FULLNAME"));
    for rules in [
        &workload,
        &pod_logs,
        &pod_log_counts,
        &status_reader,
        &lease[0].1,
    ] {
        let text = rules.to_string().to_lowercase();
        assert!(!text.contains('*'), "no wildcards: {rules}");
        assert!(!text.contains("secret"), "no access to Secrets: {rules}");
    }
    // No other template grants anything.
    for entry in std::fs::read_dir(chart().join("templates")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let text = read(Path::new("charts/rollout-guard/templates").join(&name));
        if !name.contains("rbac") {
            assert!(
                !text.contains("rbac.authorization.k8s.io/v1"),
                "{name} grants permissions"
            );
        }
    }
}

#[test]
fn the_lease_manager_only_gets_creates_and_patches_leases() {
    // The leader-election Role allows get, create and patch on the Lease: the version of
    // kube-lease-manager in Cargo.lock calls nothing else on an Api outside its tests (no
    // update/replace, list, watch or delete). Cargo says where its sources are (a registry,
    // a vendor folder), rather than the test guessing. Only this machine's platform: without
    // the filter cargo resolves every target's dependencies (Windows-only crates among them),
    // which a fresh cargo home has never downloaded and `--offline` cannot fetch.
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "host-tuple"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "kube-lease-manager")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("kube-lease-manager in the dependency graph");
    let src = Path::new(manifest).with_file_name("src");
    let call = regex::Regex::new(r"\bapi\s*\.\s*([a-z_]+)\s*\(").unwrap();
    let mut verbs = Vec::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests") {
                continue; // `#[cfg(test)] mod tests;`
            }
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let library = source.split("#[cfg(test)]\nmod tests").next().unwrap();
        verbs.extend(call.captures_iter(library).map(|c| c[1].to_string()));
    }
    verbs.sort();
    verbs.dedup();
    assert_eq!(verbs, ["create", "get", "patch"], "{}", src.display());
}

#[test]
fn pods_run_restricted() {
    let contexts = literal_blocks("deployment.yaml", "securityContext", &[]);
    assert_eq!(contexts.len(), 2, "one for the pod, one for the container");
    let (pod_indent, pod) = &contexts[0];
    let (container_indent, container) = &contexts[1];
    assert!(pod_indent < container_indent);
    assert_eq!(
        *pod,
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        *container,
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "privileged": false, "capabilities": {"drop": ["ALL"]}})
    );
}

#[test]
fn probes_and_command_are_literal() {
    assert_eq!(
        literal_block("deployment.yaml", "ports"),
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    let liveness = literal_block("deployment.yaml", "livenessProbe");
    assert_eq!(
        liveness["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    let readiness = literal_block("deployment.yaml", "readinessProbe");
    assert_eq!(
        readiness["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    assert_eq!(
        literal_block("deployment.yaml", "command"),
        json!(["/rollout-guard"])
    );
    assert_eq!(
        literal_block("deployment.yaml", "args"),
        json!(["run", "--config", "/etc/rollout-guard/config.yaml"])
    );
}

async fn status(addr: std::net::SocketAddr, path: &str) -> u16 {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn the_probed_paths_are_served_by_the_binary() {
    use rollout_guard::adapters::telemetry::{Health, Metrics, ServerLimits, serve};
    let probe = |key| {
        let probe = literal_block("deployment.yaml", key);
        probe["httpGet"]["path"].as_str().unwrap().to_string()
    };
    let (live, ready) = (probe("livenessProbe"), probe("readinessProbe"));
    let health = Health::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve(
        "127.0.0.1:0".parse().unwrap(),
        std::sync::Arc::new(Metrics::new()),
        health.clone(),
        None,
        ServerLimits::default(),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    let server = tokio::spawn(server);
    assert_eq!(status(addr, &live).await, 200);
    assert_eq!(
        status(addr, &ready).await,
        503,
        "not ready before the watches sync"
    );
    health.set_ready(true);
    assert_eq!(status(addr, &ready).await, 200);
    assert_eq!(
        status(addr, "/metrics").await,
        200,
        "the ServiceMonitor's path"
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn two_replicas_with_leader_election_by_default() {
    let values: Value = serde_saphyr::from_str(&read("charts/rollout-guard/values.yaml")).unwrap();
    assert_eq!(values["replicaCount"], 2);
    assert_eq!(values["leaderElection"]["enabled"], true);
    let deployment = find(rendered("defaults"), "Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], 2);
}

#[test]
fn the_charts_rules_are_the_repositorys() {
    for file in ["default.yaml", "php-logs.yaml"] {
        assert!(
            read(format!("charts/rollout-guard/rules/{file}")) == read(format!("rules/{file}")),
            "charts/rollout-guard/rules/{file} differs from rules/{file}: \
             cp rules/{file} charts/rollout-guard/rules/{file}"
        );
    }
}

/// Issue 16: the log rules ship with the chart when asked, with the permission they need.
#[test]
fn the_log_rules_ship_when_asked() {
    let docs = rendered("php-logs");
    let (rules, files) = load_rules(docs, FULLNAME);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["default.yaml", "php-logs.yaml"]
    );
    assert_eq!(files["php-logs.yaml"], read("rules/php-logs.yaml"));
    let logs = rules
        .rules
        .iter()
        .filter(|r| matches!(r.check, rollout_guard::analysis::rules::Check::Logs(_)))
        .count();
    assert!(logs >= 2, "{logs} logs rules");
}

#[test]
fn the_chart_runs_the_crates_version() {
    let chart: Value = serde_saphyr::from_str(&read("charts/rollout-guard/Chart.yaml")).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

// ---------------------------------------------------------------------------------------------
// The chart rendered.

#[test]
fn default_values_configure_the_binarys_defaults() {
    let docs = rendered("defaults");
    let config = load_config(docs, FULLNAME);
    assert_eq!(
        config.prometheus.url,
        "http://prometheus-operated.monitoring.svc:9090"
    );
    assert_eq!(config.prometheus.timeout, "10s".parse().unwrap());
    assert_eq!(config.prometheus.bearer_token_file, None);
    assert_eq!(config.rules, [PathBuf::from("/etc/rollout-guard/rules")]);
    assert!(config.namespaces.is_empty());
    assert_eq!(config.selector, None);
    assert!(!config.kill_switch);
    assert_eq!(config.defaults, Defaults::default());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.server.listen, "0.0.0.0:8080");
    assert!(config.leader_election.enabled);
    assert_eq!(config.leader_election.namespace, NAMESPACE);
    assert_eq!(config.leader_election.lease_name, FULLNAME);
    assert_eq!(
        config.leader_election.identity, "",
        "the pod name, from HOSTNAME"
    );
    assert_eq!(
        config.leader_election.lease_duration,
        PromDuration::from_secs(15)
    );
    assert_eq!(
        config.records,
        Records {
            path: Some(PathBuf::from("/var/lib/rollout-guard/records.jsonl")),
            ..Records::default()
        }
    );
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "info");

    let (rules, files) = load_rules(docs, FULLNAME);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["default.yaml"]);
    assert_eq!(files["default.yaml"], read("rules/default.yaml"));
    assert_eq!(rules.rules.len(), RuleSet::defaults().rules.len());
}

#[test]
fn the_deployment_mounts_what_the_configuration_names() {
    let docs = rendered("defaults");
    let deployment = find(docs, "Deployment", FULLNAME);
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(c["image"], "rollout-guard:0.1.0");

    // The configuration: its ConfigMap as the folder holding the file that --config names.
    let config_file = c["args"][2].as_str().unwrap();
    let (volume, mount) = volume_at(deployment, "/etc/rollout-guard");
    assert_eq!(volume["configMap"]["name"], format!("{FULLNAME}-config"));
    assert_eq!(mount["readOnly"], true);
    let key = config_file.strip_prefix("/etc/rollout-guard/").unwrap();
    assert!(find(docs, "ConfigMap", &format!("{FULLNAME}-config"))["data"][key].is_string());

    // The rules: their ConfigMap as the folder the configuration lists.
    let config = load_config(docs, FULLNAME);
    let (volume, _) = volume_at(deployment, config.rules[0].to_str().unwrap());
    assert_eq!(volume["configMap"]["name"], format!("{FULLNAME}-rules"));

    // Decision records: a writable emptyDir around the file.
    let records = config.records.path.unwrap();
    let (volume, mount) = volume_at(deployment, records.parent().unwrap().to_str().unwrap());
    assert_eq!(volume["emptyDir"], json!({"sizeLimit": "400Mi"}));
    assert!(mount.get("readOnly").is_none_or(|r| r == false));

    // The Lease's namespace and this replica's identity, from the downward API.
    let env: BTreeMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                &e["valueFrom"]["fieldRef"]["fieldPath"],
            )
        })
        .collect();
    assert_eq!(*env["POD_NAMESPACE"], "metadata.namespace");
    assert_eq!(*env["HOSTNAME"], "metadata.name");

    // Requests and a memory limit.
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}})
    );
    // The container port is the one the configuration listens on.
    let port = config.server.listen.rsplit(':').next().unwrap();
    assert_eq!(c["ports"][0]["containerPort"].to_string(), port);
}

#[test]
fn default_resources_and_their_rbac() {
    let docs = rendered("defaults");
    let mut found = kinds(docs);
    found.sort();
    let name = |kind: &str, name: &str| (kind.to_string(), name.to_string());
    let lease_role = format!("{FULLNAME}-leader-election");
    let mut expected = vec![
        name("ClusterRole", FULLNAME),
        name("ClusterRoleBinding", FULLNAME),
        name("ConfigMap", &format!("{FULLNAME}-config")),
        name("ConfigMap", &format!("{FULLNAME}-rules")),
        name("Deployment", FULLNAME),
        name("PodDisruptionBudget", FULLNAME),
        name("Role", &lease_role),
        name("RoleBinding", &lease_role),
        name("Service", FULLNAME),
        name("ServiceAccount", FULLNAME),
    ];
    expected.sort();
    assert_eq!(found, expected);
    for doc in docs {
        let cluster_wide =
            ["ClusterRole", "ClusterRoleBinding"].contains(&doc["kind"].as_str().unwrap());
        let namespace = &doc["metadata"]["namespace"];
        assert_eq!(namespace.is_null(), cluster_wide, "{}", doc["kind"]);
        if !cluster_wide {
            assert_eq!(*namespace, NAMESPACE, "{}", doc["kind"]);
        }
    }
    cluster_role_bound(docs, FULLNAME, workload_rules());
    assert_eq!(
        find(docs, "Role", &lease_role)["rules"],
        lease_rules(FULLNAME)
    );
    let subject = json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]);
    assert_eq!(find(docs, "RoleBinding", &lease_role)["subjects"], subject);
    assert_eq!(
        find(docs, "PodDisruptionBudget", FULLNAME)["spec"]["minAvailable"],
        1
    );
    assert_eq!(
        find(docs, "Service", FULLNAME)["spec"]["ports"][0]["targetPort"],
        "http"
    );
}

#[test]
fn watched_namespaces_get_roles_and_nothing_cluster_wide() {
    let docs = rendered("namespaced");
    assert!(of_kind(docs, "ClusterRole").is_empty());
    assert!(of_kind(docs, "ClusterRoleBinding").is_empty());
    for namespace in ["shop", "billing"] {
        let in_namespace = |kind: &str| {
            of_kind(docs, kind)
                .into_iter()
                .find(|d| {
                    d["metadata"]["name"] == FULLNAME && d["metadata"]["namespace"] == namespace
                })
                .unwrap_or_else(|| panic!("no {kind} {FULLNAME} in {namespace}"))
        };
        assert_eq!(in_namespace("Role")["rules"], workload_rules());
        let binding = in_namespace("RoleBinding");
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
        );
    }
    assert_eq!(load_config(docs, FULLNAME).namespaces, ["shop", "billing"]);
}

#[test]
fn pods_and_their_logs_are_granted_only_for_logs_rules() {
    let pod_logs = format!("{FULLNAME}-pod-logs");
    let defaults = rendered("defaults");
    assert!(
        !defaults
            .iter()
            .any(|d| d["metadata"]["name"] == pod_logs.as_str()),
        "granted without rbac.podLogs"
    );
    cluster_role_bound(rendered("pod-logs"), &pod_logs, pod_logs_rules());
    // With watched namespaces: a Role in each, nothing cluster-wide.
    let docs = rendered("namespaced-pod-logs");
    assert!(of_kind(docs, "ClusterRole").is_empty());
    for namespace in ["shop", "billing"] {
        let role = of_kind(docs, "Role")
            .into_iter()
            .find(|d| {
                d["metadata"]["name"] == pod_logs.as_str()
                    && d["metadata"]["namespace"] == namespace
            })
            .unwrap_or_else(|| panic!("no Role {pod_logs} in {namespace}"));
        assert_eq!(role["rules"], pod_logs_rules());
    }
}

#[test]
fn the_config_maps_of_the_old_pods_counts_are_granted_with_pod_logs_unless_refused() {
    let counts = format!("{FULLNAME}-pod-log-counts");
    let named = |docs: &[Value]| {
        docs.iter()
            .filter(|d| d["metadata"]["name"] == counts.as_str())
            .count()
    };
    assert_eq!(
        named(rendered("defaults")),
        0,
        "granted without rbac.podLogs"
    );
    assert_eq!(named(rendered("pod-logs-without-counts")), 0);
    cluster_role_bound(rendered("pod-logs"), &counts, pod_log_counts_rules());
    // With watched namespaces: a Role and its binding in each, nothing cluster-wide.
    let docs = rendered("namespaced-pod-logs");
    for namespace in ["shop", "billing"] {
        for kind in ["Role", "RoleBinding"] {
            let found = of_kind(docs, kind).into_iter().any(|d| {
                d["metadata"]["name"] == counts.as_str() && d["metadata"]["namespace"] == namespace
            });
            assert!(found, "no {kind} {counts} in {namespace}");
        }
    }
}

#[test]
fn a_read_only_role_for_pipelines_is_created_only_when_asked_for_and_bound_to_nobody() {
    let reader = format!("{FULLNAME}-status-reader");
    assert!(
        !rendered("defaults")
            .iter()
            .any(|d| d["metadata"]["name"] == reader.as_str())
    );
    let docs = rendered("status-reader");
    let role = find(docs, "ClusterRole", &reader);
    assert_eq!(role["rules"], status_reader_rules());
    let verbs = role["rules"].to_string();
    for write in ["create", "patch", "update", "delete", "watch"] {
        assert!(!verbs.contains(write), "read only: {verbs}");
    }
    assert!(
        !docs.iter().any(|d| d["roleRef"]["name"] == reader.as_str()),
        "no binding: the platform binds it to its pipeline"
    );
}

#[test]
fn a_network_policy_opens_only_the_controllers_port_to_whom_the_values_say() {
    assert!(of_kind(rendered("defaults"), "NetworkPolicy").is_empty());
    let docs = rendered("network-policy");
    let policy = find(docs, "NetworkPolicy", FULLNAME);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        find(docs, "Deployment", FULLNAME)["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    let ingress = &policy["spec"]["ingress"];
    assert_eq!(ingress.as_array().unwrap().len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": "http", "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
    // The named port is the container's.
    let container =
        &find(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["name"], "http");
    // Any source when none is listed: the rule has no `from`.
    let open = find(rendered("network-policy-open"), "NetworkPolicy", FULLNAME);
    assert!(open["spec"]["ingress"][0].get("from").is_none(), "{open}");
}

#[test]
fn custom_values_reach_the_configuration() {
    let docs = rendered("custom");
    // Loading checks that the token file can be read, which only the pod can: parse the file
    // as the binary's schema, and check that the token is the only problem.
    let text = config_text(docs, "guard");
    let config: Config = serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    match config.validate() {
        Err(ConfigError::Invalid(problems)) => assert!(
            problems.len() == 1
                && problems[0]
                    .contains("cannot read bearer token file /var/run/secrets/prometheus/bearer"),
            "{problems:?}"
        ),
        other => panic!("the token file cannot be read here: {other:?}"),
    }
    let p = &config.prometheus;
    assert_eq!(p.url, "https://mimir.example/prometheus");
    assert_eq!(p.timeout, "20s".parse().unwrap());
    assert_eq!(
        p.headers,
        BTreeMap::from([("X-Scope-OrgID".into(), "shop".into())])
    );
    let token = p.bearer_token_file.as_deref().expect("a bearer token file");
    assert_eq!(token, Path::new("/var/run/secrets/prometheus/bearer"));
    assert_eq!(config.selector.as_deref(), Some("tier in (web,api)"));
    assert!(config.kill_switch);
    assert_eq!(
        config.defaults,
        Defaults {
            mode: Mode::Gate,
            interval: "1m".parse().unwrap(),
            bake_time: "15m".parse().unwrap(),
            gate_steps: vec![25, 50],
            verify_timeout: "5m".parse().unwrap(),
        }
    );
    assert_eq!(
        config.limits,
        Limits {
            max_rollbacks_per_hour: 1,
            max_concurrent_evaluations: 2
        }
    );
    assert_eq!(config.leader_election.lease_name, "guard");
    assert_eq!(
        config.leader_election.lease_duration,
        "20s".parse().unwrap()
    );
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "rollout_guard=debug,kube=warn");
    let records = config.records.path.expect("records");
    assert_eq!(records, Path::new("/data/records/decisions.jsonl"));
    assert_eq!(
        (config.records.max_bytes, config.records.keep),
        (1 << 20, 9)
    );

    let deployment = find(docs, "Deployment", "guard");
    // The token's Secret as a folder, so a rotated token reaches the pod.
    let (volume, mount) = volume_at(deployment, token.parent().unwrap().to_str().unwrap());
    assert_eq!(volume["secret"]["secretName"], "prometheus-token");
    assert_eq!(mount["readOnly"], true);
    let (volume, _) = volume_at(deployment, "/data/records");
    assert_eq!(volume["emptyDir"], json!({}));
    let env = container(deployment)["env"].as_array().unwrap();
    assert!(
        env.contains(&json!({"name": "RUST_LOG", "value": "debug"})),
        "{env:?}"
    );
    assert_eq!(
        find(docs, "Role", "guard-leader-election")["rules"],
        lease_rules("guard")
    );

    let (rules, files) = load_rules(docs, "guard");
    assert_eq!(files["shop.yaml"], EXTRA_RULES);
    assert_eq!(rules.rules.len(), RuleSet::defaults().rules.len() + 1);
    assert!(rules.get("shop-latency").is_some());
}

#[test]
fn a_ca_file_is_configured_and_mounted_by_extra_volumes() {
    let docs = rendered("ca-file");
    let config: Value = serde_saphyr::from_str(config_text(docs, FULLNAME)).unwrap();
    assert_eq!(config["prometheus"]["ca_file"], "/etc/ssl/extra/ca.pem");
    let (volume, _) = volume_at(find(docs, "Deployment", FULLNAME), "/etc/ssl/extra");
    assert_eq!(volume["configMap"]["name"], "prometheus-ca");
}

#[test]
fn optional_resources_follow_the_values() {
    assert!(of_kind(rendered("defaults"), "ServiceMonitor").is_empty());
    let monitored = rendered("monitored");
    let sm = find(monitored, "ServiceMonitor", FULLNAME);
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        find(monitored, "Service", FULLNAME)["spec"]["selector"]
    );

    let single = rendered("single");
    assert!(
        of_kind(single, "PodDisruptionBudget").is_empty(),
        "one replica: no PDB"
    );
    assert!(!load_config(single, FULLNAME).leader_election.enabled);
    assert!(
        !of_kind(single, "Role")
            .iter()
            .any(|r| r["metadata"]["name"] == format!("{FULLNAME}-leader-election")),
        "no Lease, no Role for it"
    );
    let deployment = find(single, "Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(load_config(single, FULLNAME).records.path, None);
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        volumes.iter().all(|v| v.get("emptyDir").is_none()),
        "{volumes:?}"
    );

    let (rules, files) = load_rules(rendered("own-rules-only"), FULLNAME);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["shop.yml"]);
    assert_eq!(rules.rules.len(), 1);
}

#[test]
fn the_notes_tell_how_to_opt_a_deployment_in() {
    use rollout_guard::policy::annotations::{ENABLED, LAST_VERDICT, MODE};
    let notes = &render("defaults").notes;
    assert!(
        notes.contains(&format!(
            "kubectl annotate deployment/<app> -n <namespace> {ENABLED}=true"
        )),
        "{notes}"
    );
    for mode in [Mode::Observe, Mode::Guard, Mode::Gate] {
        let mode = serde_json::to_value(mode).unwrap();
        let line = format!("{MODE}={}", mode.as_str().unwrap());
        assert!(notes.contains(&line), "{line}: {notes}");
    }
    let jsonpath = LAST_VERDICT.replace('.', "\\.");
    assert!(notes.contains(&jsonpath), "{jsonpath}: {notes}");
    assert!(
        notes.contains(&format!("http://{FULLNAME}.{NAMESPACE}.svc:8080/metrics")),
        "{notes}"
    );
}

/// Issue 14: the records' emptyDir holds the file and its rotated files, maxBytes × (keep + 1),
/// with a quarter more (in MiB, rounded up), unless sizeLimit names a size.
#[test]
fn the_records_volume_holds_the_rotated_files() {
    for (case, size_limit) in [
        ("defaults", json!("400Mi")),
        ("records-rotated", json!("250Mi")),
        ("records-sized", json!("1Gi")),
    ] {
        let docs = rendered(case);
        let records = load_config(docs, FULLNAME).records;
        let path = records.path.as_deref().expect("records");
        let (volume, _) = volume_at(
            find(docs, "Deployment", FULLNAME),
            path.parent().unwrap().to_str().unwrap(),
        );
        assert_eq!(volume["emptyDir"]["sizeLimit"], size_limit, "case {case}");
        if case != "records-sized" {
            let most = records.max_bytes * (u64::from(records.keep) + 1);
            let mib = (most * 5 / 4).div_ceil(1 << 20);
            assert_eq!(size_limit, json!(format!("{mib}Mi")), "case {case}");
        }
    }
}

/// Issue 16: each webhook's URL is a key of a Secret, mounted as a file named after the
/// webhook, and the configuration points at that file (never at the URL).
#[test]
fn webhooks_read_their_urls_from_secrets() {
    use rollout_guard::adapters::notify::{Format, NoticeKind};
    let docs = rendered("notify");
    let notify = load_config(docs, FULLNAME).notify;
    let dir = "/var/run/secrets/rollout-guard/notify";
    assert_eq!(notify.webhooks.len(), 2);
    let (oncall, audit) = (&notify.webhooks[0], &notify.webhooks[1]);
    assert_eq!(oncall.url_file, Path::new(dir).join("oncall"));
    assert_eq!(oncall.format, Format::Slack);
    assert_eq!(oncall.on, [NoticeKind::RolledBack, NoticeKind::Held]);
    assert_eq!(audit.format, Format::Json);
    assert_eq!(audit.on, NoticeKind::ALL, "every kind when left out");
    let (volume, mount) = volume_at(find(docs, "Deployment", FULLNAME), dir);
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        volume["projected"]["sources"],
        json!([
            {"secret": {"name": "hooks", "items": [{"key": "slack-oncall", "path": "oncall"}]}},
            {"secret": {"name": "hooks", "items": [{"key": "audit", "path": "audit"}]}}
        ])
    );
    // Without webhooks, nothing is mounted and the section is left out.
    let docs = rendered("defaults");
    assert!(load_config(docs, FULLNAME).notify.webhooks.is_empty());
}

/// Issue 16: the PrometheusRule's alerts are valid Prometheus rules (checked by the real
/// `promtool`), on metrics the daemon exports, and off by default.
#[test]
fn the_alert_rules_pass_promtool_and_name_exported_metrics() {
    assert!(of_kind(rendered("defaults"), "PrometheusRule").is_empty());
    let rule = find(rendered("alerts"), "PrometheusRule", FULLNAME);
    assert_eq!(rule["metadata"]["labels"]["release"], "kps");
    let groups = &rule["spec"]["groups"];
    let alerts: Vec<&str> = groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for name in [
        "RolloutGuardRolledBack",
        "RolloutGuardPaused",
        "RolloutGuardActionFailed",
        "RolloutGuardAnalysisInconclusive",
        "RolloutGuardRulesCannotEvaluate",
        "RolloutGuardQueryErrors",
        "RolloutGuardNoLeader",
    ] {
        assert!(alerts.contains(&name), "{name} in {alerts:?}");
    }
    // Every metric an alert names is one the daemon exports (a family shows once it has a
    // series).
    let metrics = rollout_guard::adapters::telemetry::Metrics::new();
    metrics.action(
        "shop",
        "billing",
        "rollback",
        rollout_guard::adapters::telemetry::ActionResult::Ok,
    );
    metrics.verdict("shop", "billing", "php-error-rate", "inconclusive");
    metrics.rules_unevaluable("shop", "billing", 1);
    metrics
        .query_errors
        .get_or_create(&rollout_guard::adapters::telemetry::RuleLabels {
            rule: "php-error-rate".into(),
        })
        .inc();
    let exported = metrics.encode();
    for r in groups[0]["rules"].as_array().unwrap() {
        let expr = r["expr"].as_str().unwrap();
        for metric in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("rollout_guard_"))
        {
            let family = metric.trim_end_matches("_total");
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "{metric} in {expr} is not exported"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        serde_json::to_string(&json!({ "groups": groups })).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn values_that_cannot_work_are_refused() {
    for (case, message) in [
        (
            "two-leaders",
            "replicaCount > 1 needs leaderElection.enabled",
        ),
        ("no-rules", "the controller would have no rules"),
        (
            "rule-file-not-yaml",
            "rules.extra.shop.txt: rule file names must end in .yaml or .yml",
        ),
        (
            "rule-file-shadows-defaults",
            "rules.extra.default.yaml: the name of the bundled rules",
        ),
        (
            "records-at-root",
            "records.path must be a file in a folder below /",
        ),
        (
            "php-logs-without-pod-logs",
            "rules.phpLogs needs rbac.podLogs",
        ),
        (
            "notify-bad-name",
            "notify.webhooks[].name \"On Call\": lowercase letters, digits and '-'",
        ),
        ("no-prometheus", "prometheus.url is required"),
    ] {
        let error = refused(case);
        assert!(error.contains(message), "case {case}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// values.schema.json (issue 16).

fn schema() -> Value {
    serde_json::from_str(&read("charts/rollout-guard/values.schema.json"))
        .expect("values.schema.json is JSON")
}

/// A schema node with its `$ref` (to `#/definitions/...`) followed.
fn resolved<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/definitions/").expect("a local $ref");
            &schema["definitions"][name]
        }
        None => node,
    }
}

/// The schema of the value at `path`; Ok(None) when a map left open (no `properties`) holds it.
fn schema_at<'a>(schema: &'a Value, path: &[&str]) -> Result<Option<&'a Value>, String> {
    let mut node = schema;
    for (i, key) in path.iter().enumerate() {
        let Some(properties) = resolved(schema, node)["properties"].as_object() else {
            return Ok(None);
        };
        node = properties
            .get(*key)
            .ok_or_else(|| format!("{} is not in the schema", path[..=i].join(".")))?;
    }
    Ok(Some(resolved(schema, node)))
}

/// The keys of `values` the schema does not describe, and the schema's keys `values` lacks
/// (at the levels the schema lists properties for).
fn schema_gaps(values: &Value, schema: &Value) -> Vec<String> {
    fn walk(values: &Value, node: &Value, schema: &Value, path: &str, gaps: &mut Vec<String>) {
        let node = resolved(schema, node);
        let (Some(values), Some(properties)) = (values.as_object(), node["properties"].as_object())
        else {
            return;
        };
        for (key, value) in values {
            match properties.get(key) {
                Some(child) => walk(value, child, schema, &format!("{path}{key}."), gaps),
                None => gaps.push(format!("{path}{key}: not in the schema")),
            }
        }
        for key in properties.keys() {
            if !values.contains_key(key) && format!("{path}{key}") != "global" {
                gaps.push(format!("{path}{key}: in the schema, not in values.yaml"));
            }
        }
    }
    let mut gaps = Vec::new();
    walk(values, schema, schema, "", &mut gaps);
    gaps.sort();
    gaps
}

#[test]
fn the_schema_describes_every_value_and_every_value_the_templates_read() {
    let schema = schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let values: Value = serde_saphyr::from_str(&read("charts/rollout-guard/values.yaml")).unwrap();
    assert_eq!(schema_gaps(&values, &schema), Vec::<String>::new());
    // The walk sees a key that is not described (and one that is missing).
    let mut typo = values.clone();
    typo["records"]["maxByte"] = json!(1);
    typo.as_object_mut().unwrap().remove("killSwitch");
    assert_eq!(
        schema_gaps(&typo, &schema),
        [
            "killSwitch: in the schema, not in values.yaml",
            "records.maxByte: not in the schema"
        ]
    );

    // Every .Values path of the templates is described, up to the maps left open.
    let reference = regex::Regex::new(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut paths = 0;
    for entry in std::fs::read_dir(chart().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for c in reference.captures_iter(&text) {
            let keys: Vec<&str> = c[1].trim_start_matches('.').split('.').collect();
            schema_at(&schema, &keys).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            paths += 1;
        }
    }
    assert!(paths > 50, "{paths} .Values references");

    // Unknown keys are refused at the top level and in every section the schema lists the
    // keys of; the maps handed to Kubernetes stay open.
    fn closed(node: &Value, schema: &Value, path: &str, sections: &mut usize) {
        let node = resolved(schema, node);
        if let Some(properties) = node["properties"].as_object() {
            assert_eq!(node["additionalProperties"], false, "{path} is open");
            *sections += 1;
            for (key, child) in properties {
                closed(child, schema, &format!("{path}.{key}"), sections);
            }
        }
        if node["items"].is_object() {
            closed(&node["items"], schema, &format!("{path}[]"), sections);
        }
    }
    let mut sections = 0;
    closed(&schema, &schema, "", &mut sections);
    assert!(sections > 20, "{sections} closed sections");
    for open in [
        "podAnnotations",
        "podLabels",
        "resources",
        "nodeSelector",
        "tolerations",
        "affinity",
        "extraEnv",
        "extraVolumes",
        "extraVolumeMounts",
        "prometheus.headers",
        "rules.extra",
        "networkPolicy.metricsFrom",
        "serviceMonitor.labels",
        "grafanaDashboard.annotations",
    ] {
        let keys: Vec<&str> = open.split('.').collect();
        let node = schema_at(&schema, &keys).unwrap().expect("described");
        for node in [node, &node["items"]] {
            assert!(node.get("properties").is_none(), "{open} lists its keys");
            assert_ne!(node["additionalProperties"], false, "{open} is closed");
        }
    }
    let docs = rendered("free-form");
    let deployment = find(docs, "Deployment", FULLNAME);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(
        container(deployment)["resources"]["requests"]["ephemeral-storage"],
        "1Gi"
    );
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
}

/// Issue 16: Helm refuses values against the schema, naming the key (a JSON pointer), before
/// any template runs.
#[test]
fn the_schema_refuses_wrong_values_naming_the_key() {
    for (case, at, reason) in [
        (
            "schema-unknown-key",
            "",
            "additional properties 'replicaCont' not allowed",
        ),
        (
            "schema-unknown-key-in-section",
            "/grafanaDashboard",
            "additional properties 'labelvalue' not allowed",
        ),
        (
            "schema-unknown-webhook-key",
            "/notify/webhooks/0",
            "additional properties 'fromat' not allowed",
        ),
        (
            "schema-string-for-number",
            "/limits/maxConcurrentEvaluations",
            "got string, want integer",
        ),
        (
            "records-max-bytes-not-bytes",
            "/records/maxBytes",
            "got string, want integer",
        ),
        (
            "schema-mode",
            "/defaults/mode",
            "value must be one of 'observe', 'guard', 'gate'",
        ),
        (
            "schema-log-format",
            "/log/format",
            "value must be one of 'json', 'text'",
        ),
        (
            "schema-negative-count",
            "/replicaCount",
            "minimum: got -1, want 0",
        ),
        (
            "schema-zero-evaluations",
            "/limits/maxConcurrentEvaluations",
            "minimum: got 0, want 1",
        ),
        (
            "records-keep-none",
            "/records/keep",
            "minimum: got 0, want 1",
        ),
        (
            "schema-duration",
            "/defaults/interval",
            "'30 seconds' does not match pattern",
        ),
        (
            "schema-label-value-not-string",
            "/grafanaDashboard/labelValue",
            "got number, want string",
        ),
    ] {
        let error = refused(case);
        assert!(
            error.contains("values don't meet the specifications of the schema"),
            "case {case}: not refused by the schema: {error}"
        );
        let line = format!("- at '{at}': {reason}");
        assert!(error.contains(&line), "case {case}: no {line:?} in {error}");
    }
}

/// The names a serde enum's variants are written as, sorted.
fn serialized<T: serde::Serialize>(variants: &[T]) -> Vec<String> {
    let mut names: Vec<String> = variants
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// The schema's enums and duration pattern accept what the binary accepts, and nothing else.
#[test]
fn the_schemas_enums_and_durations_are_the_binarys() {
    use rollout_guard::adapters::notify::{Format, NoticeKind};
    let schema = schema();
    // The enum of the value at a path (of a list's items for a list), sorted.
    let enumerated = |path: &str| -> Vec<String> {
        let keys: Vec<&str> = path.split('.').collect();
        let mut node = schema_at(&schema, &keys).unwrap().expect("described");
        if node["items"].is_object() {
            node = &node["items"];
        }
        let mut names: Vec<String> = node["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        enumerated("defaults.mode"),
        serialized(&[Mode::Observe, Mode::Guard, Mode::Gate])
    );
    assert_eq!(
        enumerated("log.format"),
        serialized(&[LogFormat::Json, LogFormat::Text])
    );
    let webhook = &schema_at(&schema, &["notify", "webhooks"])
        .unwrap()
        .unwrap()["items"];
    for (key, binary) in [
        ("format", serialized(&[Format::Json, Format::Slack])),
        ("on", serialized(&NoticeKind::ALL)),
    ] {
        let node = &webhook["properties"][key];
        let node = if node["items"].is_object() {
            &node["items"]
        } else {
            node
        };
        let mut schema_says: Vec<&str> = node["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        schema_says.sort();
        assert_eq!(schema_says, binary, "notify.webhooks[].{key}");
    }

    // Durations: the pattern (with the minimum length) takes what PromDuration parses.
    let duration = &schema["definitions"]["duration"];
    let pattern = regex::Regex::new(duration["pattern"].as_str().unwrap()).unwrap();
    let min = duration["minLength"].as_u64().unwrap() as usize;
    for sample in [
        "30s",
        "5m",
        "1h30m",
        "0s",
        "100ms",
        "1m5ms",
        "2w",
        "1y2w3d4h5m6s7ms",
        "",
        "30",
        "30 s",
        "5m1h",
        "1m1m",
        "s",
        "1.5h",
        "10min",
        "-1s",
        "1h 30m",
        "1S",
    ] {
        let schema_says = sample.len() >= min && pattern.is_match(sample);
        let binary_says = sample.parse::<PromDuration>().is_ok();
        assert_eq!(schema_says, binary_says, "{sample:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard (issue 16).

const DASHBOARD: &str = "charts/rollout-guard/dashboards/rollout-guard.json";

fn dashboard_map(docs: &[Value]) -> Option<&Value> {
    let name = format!("{FULLNAME}-dashboard");
    docs.iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name.as_str())
}

#[test]
fn the_grafana_dashboard_ships_only_when_enabled_where_and_as_the_values_say() {
    assert!(dashboard_map(rendered("defaults")).is_none());

    let map = dashboard_map(rendered("dashboard-defaults")).expect("the dashboard's ConfigMap");
    assert_eq!(map["metadata"]["namespace"], NAMESPACE);
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        map["metadata"]["labels"]["app.kubernetes.io/instance"],
        RELEASE
    );
    assert!(map["metadata"].get("annotations").is_none(), "{map}");

    let map = dashboard_map(rendered("dashboard")).expect("the dashboard's ConfigMap");
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    let labels = &map["metadata"]["labels"];
    assert_eq!(labels["dashboards"], "rollout-guard");
    assert!(labels.get("grafana_dashboard").is_none(), "{labels}");
    assert_eq!(
        map["metadata"]["annotations"],
        json!({"grafana_folder": "Platform"})
    );
}

#[test]
fn the_dashboards_configmap_holds_the_file_and_the_file_is_a_grafana_dashboard() {
    let file = read(DASHBOARD);
    let map = dashboard_map(rendered("dashboard")).expect("the dashboard's ConfigMap");
    let data = map["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["rollout-guard.json"]);
    assert!(data["rollout-guard.json"] == file.as_str(), "not the file");

    let dashboard: Value = serde_json::from_str(&file).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "rollout-guard");
    let version = dashboard["schemaVersion"].as_u64().unwrap();
    assert!((36..=41).contains(&version), "schemaVersion {version}");
    assert!(
        dashboard.get("__inputs").is_none(),
        "the sidecar fills no inputs"
    );

    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    let datasource = variable("datasource");
    assert_eq!(
        (&datasource["type"], &datasource["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let from_variable = json!({"type": "prometheus", "uid": "${datasource}"});
    for name in ["namespace", "deployment"] {
        let v = variable(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"], from_variable, "{name}");
        let query = v["query"]["query"].as_str().unwrap();
        assert!(
            query.starts_with("label_values(rollout_guard_deployment_")
                && query.ends_with(&format!(", {name})")),
            "{name}: {query}"
        );
    }

    // Every panel and query reads the chosen Prometheus; panel ids are unique.
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "id {}",
            panel["id"]
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"], from_variable, "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            assert_eq!(target["datasource"], from_variable, "{}", panel["title"]);
        }
    }
    // The panels the issue asks for.
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for title in [
        "Leader",
        "Version",
        "Analyses in progress",
        "Actions by Deployment and kind",
        "Verdicts by rule and outcome",
        "Inconclusive share by Deployment",
        "Query errors by rule",
        "Evaluation latency",
        "Rules that cannot be evaluated",
    ] {
        assert!(titles.contains(&title), "{title} in {titles:?}");
    }
}

/// Issue 16: the dashboard's PromQL parses (Grafana's variables replaced with sample values)
/// and names only metrics and labels the binary exports; broken copies are caught.
#[test]
fn the_dashboards_queries_parse_and_name_what_the_binary_exports() {
    let exported = dashboard::Exported::daemon();
    // The daemon's own text, parsed: a counter with _total, a histogram's series, labels.
    assert!(exported.samples.contains_key("rollout_guard_actions_total"));
    assert!(exported.samples["rollout_guard_evaluation_seconds_bucket"].contains("le"));
    assert!(
        exported
            .samples
            .contains_key("rollout_guard_evaluation_seconds_count")
    );
    assert!(!exported.samples.contains_key("rollout_guard_actions"));
    assert!(exported.samples["rollout_guard_deployment_verdicts_total"].contains("deployment"));

    let text = read(DASHBOARD);
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let checked = dashboard::check(&dashboard, &exported);
    assert_eq!(checked.problems, Vec::<String>::new());
    // The walk finds the metrics of the panels the issue asks for.
    for metric in [
        "rollout_guard_deployment_actions_total",
        "rollout_guard_verdicts_total",
        "rollout_guard_deployment_verdicts_total",
        "rollout_guard_query_errors_total",
        "rollout_guard_evaluation_seconds_bucket",
        "rollout_guard_leader",
        "rollout_guard_rules_unevaluable",
        "rollout_guard_build_info",
        "rollout_guard_rollouts_analysed",
    ] {
        assert!(checked.metrics.contains(metric), "{metric} not found");
    }

    // Broken copies, every `from` replaced: (from, to, the problem reported).
    for (from, to, problem) in [
        (
            "sum by (rule) (rate(rollout_guard_query_errors_total[$__rate_interval]))",
            "sum by (rule) (rate(rollout_guard_query_errors_total[$__rate_interval])",
            "not valid PromQL",
        ),
        (
            "rollout_guard_query_errors_total",
            "rollout_guard_query_failures_total",
            "rollout_guard_query_failures_total is not exported by the binary",
        ),
        (
            "rollout_guard_evaluation_seconds_bucket",
            "rollout_guard_evaluation_seconds",
            "rollout_guard_evaluation_seconds is not exported by the binary",
        ),
        (
            r#"deployment=~\"$deployment\""#,
            r#"deployment=~\"$deploymnet\""#,
            "unknown variable $deploymnet",
        ),
        (
            r#"outcome=\"inconclusive\""#,
            r#"result=\"inconclusive\""#,
            "rollout_guard_deployment_verdicts_total has no label result",
        ),
        (
            "rollout_guard_deployment_verdicts_total, namespace)",
            "rollout_guard_verdicts_total, namespace)",
            "variable \"namespace\": rollout_guard_verdicts_total has no label namespace",
        ),
        (
            "sum by (rule) (rate(rollout_guard_query_errors_total[$__rate_interval]))",
            "rollout_guard_query_errors_total[$__rate_interval]",
            "not an instant vector",
        ),
    ] {
        assert!(text.contains(from), "the dashboard has no {from}");
        let broken: Value = serde_json::from_str(&text.replace(from, to)).unwrap();
        let problems = dashboard::check(&broken, &exported).problems;
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "{from} -> {to}: no {problem:?} in {problems:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile.

/// The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (instruction, args) = l.split_once(' ').unwrap_or((l, ""));
            (instruction.to_uppercase(), args.trim().to_string())
        })
        .collect()
}

#[test]
fn the_image_is_built_in_two_stages_and_runs_the_charts_command_as_non_root() {
    let steps = dockerfile();
    let stages: Vec<&str> = steps
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        stages,
        [
            "rust:1.95-bookworm AS builder",
            "gcr.io/distroless/cc-debian12:nonroot"
        ]
    );
    let final_stage = steps.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let (build, run) = steps.split_at(final_stage);

    // The dependencies are built before the sources are copied in, in their own layer.
    let builds: Vec<usize> = build
        .iter()
        .enumerate()
        .filter(|(_, (i, a))| i == "RUN" && a.contains("cargo build --release --locked"))
        .map(|(n, _)| n)
        .collect();
    let sources = build
        .iter()
        .position(|(i, a)| i == "COPY" && a.starts_with("src "))
        .expect("COPY src");
    assert_eq!(builds.len(), 2, "{build:?}");
    assert!(builds[0] < sources && sources < builds[1], "{build:?}");
    // The image ships the product only: no simulation, no debug sections.
    for &n in &builds {
        assert!(
            build[n].1.contains("--no-default-features"),
            "{:?}",
            build[n]
        );
    }
    assert!(
        build[builds[1]]
            .1
            .contains("strip target/release/rollout-guard"),
        "{:?}",
        build[builds[1]]
    );

    let arg = |name: &str| {
        run.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.clone())
            .next_back()
            .unwrap_or_else(|| panic!("no {name} in the final stage"))
    };
    assert_eq!(arg("USER").split(':').next(), Some("65532"));
    let copy = arg("COPY");
    assert_eq!(
        copy,
        "--from=builder /src/target/release/rollout-guard /rollout-guard"
    );
    let entrypoint: Value = serde_json::from_str(&arg("ENTRYPOINT")).unwrap();
    let cmd: Value = serde_json::from_str(&arg("CMD")).unwrap();
    assert_eq!(entrypoint, literal_block("deployment.yaml", "command"));
    assert_eq!(cmd, literal_block("deployment.yaml", "args"));
    let user: u64 = arg("USER").split(':').next().unwrap().parse().unwrap();
    assert_eq!(
        literal_blocks("deployment.yaml", "securityContext", &[])[0].1["runAsUser"],
        user
    );

    let ignored: Vec<String> = read(".dockerignore").lines().map(str::to_string).collect();
    for entry in ["target/", ".git/"] {
        assert!(ignored.iter().any(|l| l == entry), ".dockerignore: {entry}");
    }
}
