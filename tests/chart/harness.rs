//! The chart tests' harness: the repository's files, Helm from the venv (`helm.py`), the literal
//! blocks of templates, and the chart rendered with the cases' values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::app::config::Config;
use serde_json::{Value, json};

pub const RELEASE: &str = "rg";
pub const NAMESPACE: &str = "rollout-guard";
/// The full name Helm gives the release's resources (and the Lease).
pub const FULLNAME: &str = "rg-rollout-guard";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart() -> PathBuf {
    root().join("charts/rollout-guard")
}

pub fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The venv's Python, with Helm's Go library in it.
pub fn python() -> PathBuf {
    let python = root().join("target/chart-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/chart-venv (scripts/test does) to install Helm's Go library \
         (helm-sdkpy) for the chart tests",
        python.display()
    );
    python
}

/// Runs `tests/chart/helm.py` and parses what it prints.
pub fn helm(args: &[&str], stdin: &str) -> Value {
    let mut child = Command::new(python())
        .arg(root().join("tests/chart/helm.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python starts");
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().expect("stdin is piped");
        input
            .write_all(stdin.as_bytes())
            .expect("helm.py reads its input");
    }
    let out = child.wait_with_output().expect("helm.py runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm.py {args:?} failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "helm.py {args:?} printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// One message of Helm's lint.
#[derive(Debug)]
pub struct LintMessage {
    pub severity: u64,
    pub path: String,
    pub error: String,
}

pub const WARNING: u64 = 2;
pub const ERROR: u64 = 3;

/// Lints each chart; the messages of each.
pub fn lint(charts: &[&Path]) -> Vec<Vec<LintMessage>> {
    let args: Vec<String> = std::iter::once("lint".to_string())
        .chain(charts.iter().map(|c| c.display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = helm(&args, "");
    let results = out.as_array().expect("a list, one per chart");
    assert_eq!(results.len(), charts.len());
    results
        .iter()
        .map(|r| {
            assert_eq!(r["linted"], 1, "Helm linted no chart: {r}");
            r["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| LintMessage {
                    severity: m["severity"].as_u64().expect("a severity"),
                    path: m["path"].as_str().unwrap_or_default().to_string(),
                    error: m["error"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .collect()
}

/// The literal YAML block under each `key:` line of a template (that line and the lines
/// indented deeper below it), parsed, with the key's indentation. `substitute` replaces known
/// template expressions first; any other `{{` in a block fails: these blocks stay literal.
pub fn literal_blocks(
    template: &str,
    key: &str,
    substitute: &[(&str, &str)],
) -> Vec<(usize, Value)> {
    let mut text = read(Path::new("charts/rollout-guard/templates").join(template));
    for (from, to) in substitute {
        assert!(text.contains(from), "{template}: no {from}");
        text = text.replace(from, to);
    }
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != format!("{key}:") {
            continue;
        }
        let indent = indent_of(line);
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent_of(l) > indent)
            .map(|l| l.get(indent..).unwrap_or(""))
            .collect();
        let block = format!("{key}:\n{}\n", body.join("\n"));
        assert!(
            !block.contains("{{"),
            "{template}:{}: the `{key}:` block must be literal YAML:\n{block}",
            i + 1
        );
        let value: Value = serde_saphyr::from_str(&block)
            .unwrap_or_else(|e| panic!("{template}:{}: {e}\n{block}", i + 1));
        blocks.push((indent, value[key].clone()));
    }
    assert!(!blocks.is_empty(), "{template}: no `{key}:` block");
    blocks
}

/// The only `key:` block of a template.
pub fn literal_block(template: &str, key: &str) -> Value {
    let blocks = literal_blocks(template, key, &[]);
    assert_eq!(blocks.len(), 1, "{template}: more than one `{key}:` block");
    blocks.into_iter().next().unwrap().1
}

/// A minimal extra rule file; it starts with an indented comment, which a YAML block scalar
/// in the ConfigMap could not hold.
pub const EXTRA_RULES: &str = r#"  # shop's own rule
version: 1
rules:
  - name: shop-latency
    description: Median latency of the new pods against a fixed limit.
    action: warn
    window: 5m
    check:
      absolute:
        query: 'histogram_quantile(0.5, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="{{ namespace }}", pod=~"{{ pods }}"}[1m])))'
        threshold: 0.5
"#;

/// The sets of values the chart is rendered with, by name.
pub fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults", json!({})),
        (
            "custom",
            json!({
                "fullnameOverride": "guard",
                "prometheus": {
                    "url": "https://mimir.example/prometheus",
                    "timeout": "20s",
                    "headers": {"X-Scope-OrgID": "shop"},
                    "bearerToken": {"secretName": "prometheus-token", "key": "bearer"},
                },
                "selector": "tier in (web,api)",
                "defaults": {"mode": "gate", "interval": "1m", "bakeTime": "15m",
                             "gateSteps": [25, 50], "verifyTimeout": "5m"},
                "limits": {"maxRollbacksPerHour": 1, "maxConcurrentEvaluations": 2},
                "killSwitch": true,
                "leaderElection": {"leaseDuration": "20s"},
                "log": {"format": "text", "level": "rollout_guard=debug,kube=warn"},
                "records": {"path": "/data/records/decisions.jsonl", "sizeLimit": "",
                            "maxBytes": 1048576, "keep": 9},
                "rules": {"extra": {"shop.yaml": EXTRA_RULES}},
                "extraEnv": [{"name": "RUST_LOG", "value": "debug"}],
            }),
        ),
        (
            "ca-file",
            json!({
                "prometheus": {"caFile": "/etc/ssl/extra/ca.pem"},
                "extraVolumes": [{"name": "ca", "configMap": {"name": "prometheus-ca"}}],
                "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/extra", "readOnly": true}],
            }),
        ),
        (
            "namespaced",
            json!({"watchNamespaces": ["shop", "billing"]}),
        ),
        (
            "single",
            json!({"replicaCount": 1, "leaderElection": {"enabled": false},
                   "records": {"enabled": false}}),
        ),
        (
            "records-rotated",
            json!({"records": {"maxBytes": 10485760, "keep": 19}}),
        ),
        ("records-sized", json!({"records": {"sizeLimit": "1Gi"}})),
        (
            "php-logs",
            json!({"rules": {"phpLogs": true}, "rbac": {"podLogs": true}}),
        ),
        (
            "php-logs-without-pod-logs",
            json!({"rules": {"phpLogs": true}}),
        ),
        (
            "alerts",
            json!({"prometheusRule": {"enabled": true, "labels": {"release": "kps"}}}),
        ),
        (
            "notify",
            json!({"notify": {"webhooks": [
                {"name": "oncall", "secret": {"name": "hooks", "key": "slack-oncall"},
                 "format": "slack", "on": ["rolled_back", "held"]},
                {"name": "audit", "secret": {"name": "hooks", "key": "audit"}}
            ]}}),
        ),
        (
            "notify-bad-name",
            json!({"notify": {"webhooks": [
                {"name": "On Call", "secret": {"name": "hooks", "key": "k"}}
            ]}}),
        ),
        (
            "own-rules-only",
            json!({"rules": {"defaults": false, "extra": {"shop.yml": EXTRA_RULES}}}),
        ),
        ("pod-logs", json!({"rbac": {"podLogs": true}})),
        (
            "pod-logs-without-counts",
            json!({"rbac": {"podLogs": true, "podLogCounts": false}}),
        ),
        ("status-reader", json!({"rbac": {"statusReader": true}})),
        (
            "namespaced-pod-logs",
            json!({"watchNamespaces": ["shop", "billing"], "rbac": {"podLogs": true}}),
        ),
        (
            "network-policy",
            json!({"networkPolicy": {"enabled": true, "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ]}}),
        ),
        (
            "network-policy-open",
            json!({"networkPolicy": {"enabled": true}}),
        ),
        (
            "monitored",
            json!({"serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus"}}}),
        ),
        (
            "dashboard",
            json!({"grafanaDashboard": {"enabled": true, "namespace": "monitoring",
                                        "label": "dashboards", "labelValue": "rollout-guard",
                                        "annotations": {"grafana_folder": "Platform"}}}),
        ),
        (
            "dashboard-defaults",
            json!({"grafanaDashboard": {"enabled": true}}),
        ),
        // The maps handed to Kubernetes as they are take any keys (the schema leaves them open).
        (
            "free-form",
            json!({
                "global": {"imageRegistry": "registry.example"},
                "podAnnotations": {"example.com/team": "platform"},
                "podLabels": {"team": "platform"},
                "resources": {"requests": {"cpu": "50m", "ephemeral-storage": "1Gi"},
                              "limits": {"memory": "256Mi", "hugepages-2Mi": "0"}},
                "nodeSelector": {"kubernetes.io/arch": "amd64"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops",
                                 "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
                "extraVolumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
                "extraVolumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
                "prometheus": {"headers": {"X-Scope-OrgID": "shop"}},
            }),
        ),
        // Values that cannot give a working controller.
        ("two-leaders", json!({"leaderElection": {"enabled": false}})),
        ("no-rules", json!({"rules": {"defaults": false}})),
        (
            "rule-file-not-yaml",
            json!({"rules": {"extra": {"shop.txt": EXTRA_RULES}}}),
        ),
        (
            "rule-file-shadows-defaults",
            json!({"rules": {"extra": {"default.yaml": EXTRA_RULES}}}),
        ),
        (
            "records-at-root",
            json!({"records": {"path": "/records.jsonl"}}),
        ),
        (
            "records-max-bytes-not-bytes",
            json!({"records": {"maxBytes": "64Mi"}}),
        ),
        ("records-keep-none", json!({"records": {"keep": 0}})),
        ("no-prometheus", json!({"prometheus": {"url": ""}})),
        // Values values.schema.json refuses.
        ("schema-unknown-key", json!({"replicaCont": 3})),
        (
            "schema-unknown-key-in-section",
            json!({"grafanaDashboard": {"enabled": true, "labelvalue": "1"}}),
        ),
        (
            "schema-unknown-webhook-key",
            json!({"notify": {"webhooks": [
                {"name": "oncall", "secret": {"name": "hooks", "key": "k"}, "fromat": "slack"}
            ]}}),
        ),
        (
            "schema-string-for-number",
            json!({"limits": {"maxConcurrentEvaluations": "8"}}),
        ),
        ("schema-mode", json!({"defaults": {"mode": "dry-run"}})),
        ("schema-log-format", json!({"log": {"format": "logfmt"}})),
        ("schema-negative-count", json!({"replicaCount": -1})),
        (
            "schema-zero-evaluations",
            json!({"limits": {"maxConcurrentEvaluations": 0}}),
        ),
        (
            "schema-duration",
            json!({"defaults": {"interval": "30 seconds"}}),
        ),
        (
            "schema-label-value-not-string",
            json!({"grafanaDashboard": {"labelValue": 1}}),
        ),
    ]
}

/// A case rendered: its resources and the release notes (NOTES.txt).
pub struct Render {
    pub docs: Vec<Value>,
    pub notes: String,
}

pub type Rendered = BTreeMap<String, Result<Render, String>>;

/// Every case rendered once (one Helm process for the whole test binary).
pub fn rendered_all() -> &'static Rendered {
    static RENDERED: OnceLock<Rendered> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let input: Vec<Value> = cases()
            .into_iter()
            .map(|(name, values)| {
                json!({"name": name, "release": RELEASE, "namespace": NAMESPACE, "values": values})
            })
            .collect();
        let chart = chart().display().to_string();
        let out = helm(&["render", &chart], &Value::from(input).to_string());
        out.as_array()
            .expect("a list, one per case")
            .iter()
            .map(|r| {
                let name = r["name"].as_str().expect("a name").to_string();
                let result = match (r["manifest"].as_str(), r["error"].as_str()) {
                    (Some(manifest), _) => Ok(Render {
                        docs: parse_manifest(&name, manifest),
                        notes: r["notes"].as_str().unwrap_or_default().to_string(),
                    }),
                    (None, Some(error)) => Err(error.to_string()),
                    _ => panic!("neither manifest nor error: {r}"),
                };
                (name, result)
            })
            .collect()
    })
}

pub fn parse_manifest(name: &str, manifest: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(manifest)
        .unwrap_or_else(|e| panic!("case {name}: the rendered manifest is not YAML: {e}"))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The resources a case renders to; fails if Helm refused the values.
pub fn rendered(case: &str) -> &'static [Value] {
    &render(case).docs
}

/// A case rendered; fails if Helm refused the values.
pub fn render(case: &str) -> &'static Render {
    match rendered_all().get(case) {
        Some(Ok(render)) => render,
        Some(Err(e)) => panic!("case {case}: Helm refused the values: {e}"),
        None => panic!("no case {case}"),
    }
}

/// Helm's error for a case it must refuse.
pub fn refused(case: &str) -> &'static str {
    match rendered_all().get(case) {
        Some(Err(e)) => e,
        Some(Ok(_)) => panic!("case {case}: Helm accepted values it must refuse"),
        None => panic!("no case {case}"),
    }
}

pub fn kinds(docs: &[Value]) -> Vec<(String, String)> {
    docs.iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The one resource of that kind and name.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name} in {:?}", kinds(docs));
    found[0]
}

pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub fn config_text<'a>(docs: &'a [Value], fullname: &str) -> &'a str {
    let cm = find(docs, "ConfigMap", &format!("{fullname}-config"));
    cm["data"]["config.yaml"]
        .as_str()
        .expect("data.config.yaml")
}

/// The rendered configuration file, as the binary loads it.
pub fn load_config(docs: &[Value], fullname: &str) -> Config {
    let text = config_text(docs, fullname);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    Config::load_with_env(Some(&path), Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("the rendered configuration does not load: {e}\n{text}"))
}

/// The rendered rule files, written to a folder, as the controller loads them.
pub fn load_rules(docs: &[Value], fullname: &str) -> (RuleSet, BTreeMap<String, String>) {
    let cm = find(docs, "ConfigMap", &format!("{fullname}-rules"));
    let files: BTreeMap<String, String> =
        serde_json::from_value(cm["data"].clone()).expect("data: file name -> text");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let rules = RuleSet::load(&[dir.path().to_path_buf()])
        .unwrap_or_else(|e| panic!("the rendered rules do not load: {e}"));
    (rules, files)
}

pub fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// The volume mounted at `path` in the container, and the mount.
pub fn volume_at<'a>(deployment: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let mount = container(deployment)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    assert!(
        mount.get("subPath").is_none(),
        "subPath mounts never update: {mount}"
    );
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    (volume, mount)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the chart with one file edited; the edit must change something.
pub fn broken_copy(dir: &Path, file: &str, from: &str, to: &str) -> PathBuf {
    let copy = dir.join(file.replace('/', "_"));
    copy_dir(&chart(), &copy);
    let path = copy.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    copy
}
