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

/// The rules of the pod-logs ClusterRole (or Roles), granted with `rbac.podLogs` only.
fn pod_logs_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
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
    let status_reader = literal_block("status-reader-rbac.yaml", "rules");
    assert_eq!(status_reader, status_reader_rules());
    let lease = literal_blocks(
        "leader-election-rbac.yaml",
        "rules",
        &[(FULLNAME_EXPR, "\"FULLNAME\"")],
    );
    assert_eq!(lease.len(), 1);
    assert_eq!(lease[0].1, lease_rules("FULLNAME"));
    for rules in [&workload, &pod_logs, &status_reader, &lease[0].1] {
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
    assert_eq!(
        find(docs, "ClusterRole", FULLNAME)["rules"],
        workload_rules()
    );
    assert_eq!(
        find(docs, "Role", &lease_role)["rules"],
        lease_rules(FULLNAME)
    );
    let subject = json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]);
    assert_eq!(
        find(docs, "ClusterRoleBinding", FULLNAME)["subjects"],
        subject
    );
    assert_eq!(
        find(docs, "ClusterRoleBinding", FULLNAME)["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME})
    );
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
    let docs = rendered("pod-logs");
    assert_eq!(
        find(docs, "ClusterRole", &pod_logs)["rules"],
        pod_logs_rules()
    );
    let binding = find(docs, "ClusterRoleBinding", &pod_logs);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": pod_logs})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );
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
        "RolloutGuardQueryErrors",
        "RolloutGuardNoLeader",
    ] {
        assert!(alerts.contains(&name), "{name} in {alerts:?}");
    }
    // Every metric an alert names is one the daemon exports (a family shows once it has a
    // series).
    let metrics = rollout_guard::adapters::telemetry::Metrics::new();
    metrics.action("shop", "billing", "rollback", "ok");
    metrics.verdict("shop", "billing", "php-error-rate", "inconclusive");
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
            "records-max-bytes-not-bytes",
            "records.maxBytes must be a number of bytes, at least 16384",
        ),
        (
            "records-keep-none",
            "records.keep must be a number of rotated files from 1 to 100",
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
