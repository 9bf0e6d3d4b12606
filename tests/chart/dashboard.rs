//! The Grafana dashboard's checks: its PromQL (panels' targets and the label_values queries of
//! its variables) parses once Grafana's variables are replaced with sample values, and names
//! only metrics, and matchers only labels, that the binary exports. What the binary exports is
//! read from its own metrics text (`Metrics::encode`), never from a second list.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{self, Expr, value::ValueType};
use promql_parser::util::{ExprVisitor, walk_expr};
use rollout_guard::adapters::telemetry::{Metrics, ResultLabels, RuleLabels};
use serde_json::Value;

/// Grafana's variables as the dashboard uses them, with a sample value each. Any other `$` left
/// in an expression is an unknown (or misspelt) variable.
pub const SAMPLE_VARIABLES: [(&str, &str); 5] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "30s"),
    ("$__range", "6h"),
    ("$namespace", "shop"),
    ("$deployment", "web"),
];

/// The metric names the binary exports, as Prometheus stores them (a counter with `_total`, a
/// histogram as `_bucket`, `_sum` and `_count`), each with the label names of its series.
pub struct Exported {
    pub samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    /// Parses OpenMetrics text: the families from `# TYPE` lines, named by type, and the label
    /// names from the sample lines.
    pub fn parse(text: &str) -> Exported {
        let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*""#).unwrap();
        let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    "info" => &["_info"],
                    _ => &[""],
                };
                for suffix in suffixes {
                    samples.entry(format!("{family}{suffix}")).or_default();
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                let labels = match line[name_end..].strip_prefix('{') {
                    Some(rest) => &rest[..rest.rfind('}').expect("a closing brace")],
                    None => "",
                };
                samples
                    .entry(line[..name_end].to_string())
                    .or_default()
                    .extend(label.captures_iter(labels).map(|c| c[1].to_string()));
            }
        }
        Exported { samples }
    }

    /// The daemon's metrics with a series in every family, so that each shows its labels.
    pub fn daemon() -> Exported {
        let m = Metrics::new();
        m.action(
            "shop",
            "web",
            "rollback",
            rollout_guard::adapters::telemetry::ActionResult::Ok,
        );
        m.verdict("shop", "web", "php-error-rate", "fail");
        m.rules_unevaluable("shop", "web", 1);
        m.query_errors
            .get_or_create(&RuleLabels {
                rule: "php-error-rate".into(),
            })
            .inc();
        m.rule_reloads
            .get_or_create(&ResultLabels {
                result: "ok".into(),
            })
            .inc();
        m.evaluation_seconds.observe(0.2);
        m.leader.set(1);
        Exported::parse(&m.encode())
    }
}

/// Replaces the sample variables; fails on any other `$`.
pub fn substitute(expr: &str) -> Result<String, String> {
    let mut out = expr.to_string();
    for (name, value) in SAMPLE_VARIABLES {
        out = out.replace(name, value);
    }
    match out.find('$') {
        Some(at) => Err(format!(
            "unknown variable {}",
            out[at..]
                .split(|c: char| !(c == '$' || c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        )),
        None => Ok(out),
    }
}

/// Every selector of an expression: (metric name, matcher label names).
struct Selectors(Vec<(Option<String>, Vec<String>)>);

impl ExprVisitor for Selectors {
    type Error = ();

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let labels = vs
            .matchers
            .matchers
            .iter()
            .map(|m| m.name.clone())
            .collect();
        self.0.push((vs.name.clone(), labels));
        Ok(true)
    }
}

/// The dashboard's queries checked: every problem, and the metric names they use.
#[derive(Default)]
pub struct Checked {
    pub problems: Vec<String>,
    pub metrics: BTreeSet<String>,
}

impl Checked {
    /// Checks one PromQL expression of the dashboard (`at` says where): it parses once the
    /// variables are replaced, is an instant vector (what a panel plots), and its selectors
    /// name exported metrics and match only their labels. True when it had no problem.
    fn expr(&mut self, at: &str, expr: &str, exported: &Exported) -> bool {
        let before = self.problems.len();
        let rendered = match substitute(expr) {
            Ok(r) => r,
            Err(e) => {
                self.problems.push(format!("{at}: {e} in {expr}"));
                return false;
            }
        };
        let parsed = match parser::parse(&rendered) {
            Ok(p) => p,
            Err(e) => {
                self.problems
                    .push(format!("{at}: not valid PromQL ({e}): {rendered}"));
                return false;
            }
        };
        if parsed.value_type() != ValueType::Vector {
            self.problems
                .push(format!("{at}: not an instant vector: {rendered}"));
        }
        let mut selectors = Selectors(Vec::new());
        walk_expr(&mut selectors, &parsed).unwrap();
        for (name, labels) in selectors.0 {
            let Some(name) = name else {
                self.problems.push(format!(
                    "{at}: a selector without a metric name: {rendered}"
                ));
                continue;
            };
            self.metrics.insert(name.clone());
            let Some(known) = exported.samples.get(&name) else {
                self.problems
                    .push(format!("{at}: {name} is not exported by the binary"));
                continue;
            };
            for label in labels.iter().filter(|l| *l != "__name__") {
                if !known.contains(label) {
                    self.problems.push(format!(
                        "{at}: {name} has no label {label} (it has {known:?})"
                    ));
                }
            }
        }
        self.problems.len() == before
    }
}

/// Checks the dashboard's queries: the panels' targets, and the variables'
/// `label_values(selector, label)` queries (the selector is PromQL; the label must be one of
/// its metric's).
pub fn check(dashboard: &Value, exported: &Exported) -> Checked {
    let mut checked = Checked::default();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let at = format!("panel {} target {}", panel["title"], target["refId"]);
            checked.expr(&at, target["expr"].as_str().unwrap_or_default(), exported);
            exprs += 1;
        }
    }
    assert!(exprs > 0, "no panel has a query");
    let label_values =
        regex::Regex::new(r"^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$").unwrap();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let at = format!("variable {}", variable["name"]);
        let query = variable["query"]["query"].as_str().unwrap_or_default();
        if variable["definition"] != query {
            checked
                .problems
                .push(format!("{at}: definition and query differ"));
        }
        let Some(c) = label_values.captures(query) else {
            checked
                .problems
                .push(format!("{at}: not label_values(selector, label): {query}"));
            continue;
        };
        let (selector, label) = (&c[1], &c[2]);
        if checked.expr(&at, selector, exported) {
            let name = selector.split('{').next().unwrap().trim();
            if !exported.samples[name].contains(label) {
                checked
                    .problems
                    .push(format!("{at}: {name} has no label {label}"));
            }
        }
    }
    checked
}
