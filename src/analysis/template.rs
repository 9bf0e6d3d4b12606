//! PromQL templates: the `{{ variable }}` placeholders of a rule's query, checked when rules are
//! loaded and filled in, escaped, when a query is built.
//!
//! Owns the variable names, where each may stand in a query, the regexes that select exactly one
//! ReplicaSet's pods, and the escaping that keeps a substituted value from ever ending its string
//! and injecting PromQL. It knows nothing of Prometheus itself or of rule semantics.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analysis::duration::PromDuration;

/// The variables a template may use.
pub const VARIABLES: [&str; 6] = [
    "namespace",
    "deployment",
    "replicaset",
    "pods",
    "window",
    "interval",
];

/// A checked query template. Only constructible through [`Template::parse`], so every template
/// in a loaded rule is known to be well formed.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Var(Var),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Var {
    Namespace,
    Deployment,
    ReplicaSet,
    Pods,
    Window,
    Interval,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it, at this byte offset of the query.
    #[error("unclosed `{{{{` at byte {0}")]
    Unclosed(usize),
    /// A placeholder that is not one of the known variables.
    #[error(
        "unknown variable `{{{{ {0} }}}}` (known: namespace, deployment, replicaset, pods, window, interval)"
    )]
    Unknown(String),
    /// A name or regex placeholder outside a double-quoted string, where its value could not
    /// be escaped.
    #[error(
        "`{{{{ {0} }}}}` must stand inside a double-quoted string, e.g. namespace=\"{{{{ namespace }}}}\", so that its value can be escaped"
    )]
    NotInString(&'static str),
    /// A regex placeholder (`replicaset`, `pods`) in a string not matched with `=~` or `!~`.
    #[error(
        "`{{{{ {0} }}}}` is a regular expression: match it with =~, e.g. pod=~\"{{{{ pods }}}}\""
    )]
    NeedsRegexMatch(&'static str),
    /// A duration placeholder (`window`, `interval`) inside quotes.
    #[error("`{{{{ {0} }}}}` is a duration and must stand outside quotes, e.g. [{{{{ {0} }}}}]")]
    WindowInString(&'static str),
    /// A name placeholder (`namespace`, `deployment`) in a string matched as a regex (`=~`,
    /// `!~`).
    #[error(
        "`{{{{ {0} }}}}` is a name, not a regular expression: match it with =, e.g. namespace=\"{{{{ namespace }}}}\""
    )]
    NameInRegex(&'static str),
    /// The query is empty.
    #[error("the query is empty")]
    Empty,
}

/// The values for one ReplicaSet (or one group of ReplicaSets, for the old side).
#[derive(Clone, Debug)]
pub struct Bindings<'a> {
    /// The Deployment's namespace (`{{ namespace }}`).
    pub namespace: &'a str,
    /// The Deployment's name (`{{ deployment }}`).
    pub deployment: &'a str,
    /// The ReplicaSet names whose pods are selected; several for the old side of a rollout.
    pub replicasets: &'a [String],
    /// The rule's window (`{{ window }}`).
    pub window: PromDuration,
    /// The stretch of time each point of a stratified (error-rate) query covers.
    pub interval: PromDuration,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Namespace => "namespace",
            Var::Deployment => "deployment",
            Var::ReplicaSet => "replicaset",
            Var::Pods => "pods",
            Var::Window => "window",
            Var::Interval => "interval",
        }
    }

    fn from_name(s: &str) -> Option<Var> {
        Some(match s {
            "namespace" => Var::Namespace,
            "deployment" => Var::Deployment,
            "replicaset" => Var::ReplicaSet,
            "pods" => Var::Pods,
            "window" => Var::Window,
            "interval" => Var::Interval,
            _ => return None,
        })
    }
}

impl Template {
    /// Parses and checks a template.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            let close = rest[open..]
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + open))?;
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let name = rest[open + 2..open + close].trim();
            let var =
                Var::from_name(name).ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
            parts.push(Part::Var(var));
            offset += open + close + 2;
            rest = &rest[open + close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        let template = Template {
            source: source.to_string(),
            parts,
        };
        template.check_contexts()?;
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables it uses.
    pub fn variables(&self) -> BTreeSet<&'static str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Var(v) => Some(v.name()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// Each variable must stand where its escaping is sound: names and regexes inside a
    /// double-quoted string (regexes after `=~`), the window outside any string.
    fn check_contexts(&self) -> Result<(), TemplateError> {
        let mut lexer = Lexer::default();
        let mut before = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => {
                    lexer.feed(t);
                    before.push_str(t);
                }
                Part::Var(v) => {
                    match (v, lexer.state) {
                        (Var::Window | Var::Interval, Quote::None) => {}
                        (Var::Window | Var::Interval, _) => {
                            return Err(TemplateError::WindowInString(v.name()));
                        }
                        (_, Quote::Double) => {}
                        (other, _) => return Err(TemplateError::NotInString(other.name())),
                    }
                    let head = before.trim_end_matches(|c: char| c != '"');
                    let head = head.strip_suffix('"').unwrap_or(head).trim_end();
                    let regex_match = head.ends_with("=~") || head.ends_with("!~");
                    if matches!(v, Var::Namespace | Var::Deployment) && regex_match {
                        return Err(TemplateError::NameInRegex(v.name()));
                    }
                    if matches!(v, Var::Pods | Var::ReplicaSet) {
                        let head = before.trim_end_matches(|c: char| c != '"');
                        let head = head.strip_suffix('"').unwrap_or(head).trim_end();
                        if !head.ends_with("=~") && !head.ends_with("!~") {
                            return Err(TemplateError::NeedsRegexMatch(v.name()));
                        }
                    }
                    // A placeholder stands for a value; it never changes the quoting state.
                    before.push('x');
                }
            }
        }
        Ok(())
    }

    /// Fills the template in. String values are escaped for a double-quoted PromQL string;
    /// regex values are escaped for RE2 first, then for the string.
    pub fn render(&self, b: &Bindings<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::Namespace) => out.push_str(&escape_string(b.namespace)),
                Part::Var(Var::Deployment) => out.push_str(&escape_string(b.deployment)),
                Part::Var(Var::ReplicaSet) => {
                    out.push_str(&escape_string(&replicaset_regex(b.replicasets)))
                }
                Part::Var(Var::Pods) => out.push_str(&escape_string(&pods_regex(b.replicasets))),
                Part::Var(Var::Window) => out.push_str(&b.window.to_string()),
                Part::Var(Var::Interval) => out.push_str(&b.interval.to_string()),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Quote {
    #[default]
    None,
    Double,
    Single,
    Backtick,
}

/// Just enough of PromQL's lexer to know whether a position is inside a string.
#[derive(Default)]
struct Lexer {
    state: Quote,
    escaped: bool,
    comment: bool,
}

impl Lexer {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            if self.comment {
                self.comment = c != '\n';
                continue;
            }
            if self.escaped {
                self.escaped = false;
                continue;
            }
            self.state = match (self.state, c) {
                (Quote::None, '"') => Quote::Double,
                (Quote::None, '\'') => Quote::Single,
                (Quote::None, '`') => Quote::Backtick,
                (Quote::None, '#') => {
                    self.comment = true;
                    Quote::None
                }
                (Quote::Double | Quote::Single, '\\') => {
                    self.escaped = true;
                    self.state
                }
                (Quote::Double, '"') | (Quote::Single, '\'') | (Quote::Backtick, '`') => {
                    Quote::None
                }
                (s, _) => s,
            };
        }
    }
}

/// Escapes a value for a double-quoted PromQL string: it can never end the string.
pub fn escape_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Longest `generateName` prefix the API server keeps: 63 characters less the 5 random ones.
const MAX_GENERATED_PREFIX: usize = 58;

/// A regex (RE2, implicitly anchored by Prometheus) matching exactly the pods that the
/// ReplicaSets create: `<name>-` as `generateName`, truncated as the API server truncates it,
/// then five random characters.
pub fn pods_regex(replicasets: &[String]) -> String {
    alternatives(replicasets, |rs| {
        let prefix: String = format!("{rs}-")
            .chars()
            .take(MAX_GENERATED_PREFIX)
            .collect();
        format!("{}[a-z0-9]{{5}}", escape_regex(&prefix))
    })
}

/// A regex matching exactly the named ReplicaSets.
pub fn replicaset_regex(replicasets: &[String]) -> String {
    alternatives(replicasets, escape_regex)
}

/// Escapes RE2's metacharacters (and nothing else, so that names stay readable in queries).
pub fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn alternatives(names: &[String], one: impl Fn(&str) -> String) -> String {
    match names {
        // Matches nothing: a ReplicaSet name is never empty, so no series is selected.
        [] => "(?:)".to_string() + "[^\\s\\S]",
        [single] => one(single),
        many => format!(
            "(?:{})",
            many.iter().map(|n| one(n)).collect::<Vec<_>>().join("|")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn bindings<'a>(ns: &'a str, rs: &'a [String]) -> Bindings<'a> {
        Bindings {
            namespace: ns,
            deployment: "web",
            replicasets: rs,
            window: "5m".parse().unwrap(),
            interval: "1m".parse().unwrap(),
        }
    }

    #[test]
    fn renders_every_variable() {
        let t = Template::parse(
            r#"sum(increase(php_errors_total{namespace="{{ namespace }}", deployment="{{deployment}}", replicaset=~"{{ replicaset }}", pod=~"{{ pods }}"}[{{ window }}])) / {{interval}}"#,
        )
        .unwrap();
        let rs = names(&["web-7d4b9c"]);
        assert_eq!(
            t.render(&bindings("shop", &rs)),
            r#"sum(increase(php_errors_total{namespace="shop", deployment="web", replicaset=~"web-7d4b9c", pod=~"web-7d4b9c-[a-z0-9]{5}"}[5m])) / 1m"#
        );
        assert_eq!(
            t.variables().into_iter().collect::<Vec<_>>(),
            [
                "deployment",
                "interval",
                "namespace",
                "pods",
                "replicaset",
                "window"
            ]
        );
    }

    #[test]
    fn several_old_replicasets_become_alternatives() {
        let rs = names(&["web-a1", "web.b2"]);
        assert_eq!(
            pods_regex(&rs),
            r"(?:web-a1-[a-z0-9]{5}|web\.b2-[a-z0-9]{5})"
        );
        let t = Template::parse(r#"up{pod=~"{{ pods }}"}"#).unwrap();
        // The regex escape's backslash is itself escaped for the PromQL string.
        assert_eq!(
            t.render(&bindings("ns", &rs)),
            r#"up{pod=~"(?:web-a1-[a-z0-9]{5}|web\\.b2-[a-z0-9]{5})"}"#
        );
    }

    #[test]
    fn regex_escape_keeps_names_literal() {
        let nasty = r"a.b*c+d?e(f)g|h[i]j{k}l^m$n\o-p";
        let re = regex::Regex::new(&format!("^{}$", escape_regex(nasty))).unwrap();
        assert!(re.is_match(nasty));
        assert!(!re.is_match("aXb*c+d?e(f)g|h[i]j{k}l^m$n\\o-p"));
    }

    #[test]
    fn no_replicasets_match_nothing() {
        let re = regex::Regex::new(&format!("^{}$", pods_regex(&[]))).unwrap();
        assert!(!re.is_match("web-abcde") && !re.is_match(""));
    }

    #[test]
    fn pod_regex_follows_generate_name_truncation() {
        let long = "a".repeat(60);
        let rs = vec![long.clone()];
        let re = regex::Regex::new(&format!("^{}$", pods_regex(&rs))).unwrap();
        let pod = format!("{}{}", &long[..58], "x7k2p");
        assert_eq!(pod.len(), 63);
        assert!(re.is_match(&pod));
        let short = names(&["web-6f9c"]);
        let re = regex::Regex::new(&format!("^{}$", pods_regex(&short))).unwrap();
        assert!(re.is_match("web-6f9c-x7k2p"));
        assert!(!re.is_match("web-6f9c-x7k2p-extra"));
        assert!(!re.is_match("web-6f9cd-x7k2p"));
        assert!(!re.is_match("other-web-6f9c-x7k2p"));
    }

    #[test]
    fn hostile_values_cannot_end_the_string() {
        let t = Template::parse(r#"up{namespace="{{ namespace }}"}"#).unwrap();
        let rs = names(&["x"]);
        let out = t.render(&bindings(r#"a"} or vector(1) or up{x="\"#, &rs));
        assert_eq!(out, r#"up{namespace="a\"} or vector(1) or up{x=\"\\"}"#);
        // Lex the output: exactly one string, closed right before the final brace.
        let mut lexer = Lexer::default();
        lexer.feed(&out[..out.len() - 1]);
        assert_eq!(lexer.state, Quote::None);
        lexer = Lexer::default();
        lexer.feed(&out[..out.len() - 2]);
        assert_eq!(lexer.state, Quote::Double);
    }

    #[test]
    fn refuses_misplaced_or_unknown_variables() {
        let cases = [
            (
                "up{namespace={{ namespace }}}",
                TemplateError::NotInString("namespace"),
            ),
            (
                "up{namespace='{{ namespace }}'}",
                TemplateError::NotInString("namespace"),
            ),
            (
                r#"up{pod="{{ pods }}"}"#,
                TemplateError::NeedsRegexMatch("pods"),
            ),
            (
                r#"up{replicaset = "{{ replicaset }}"}"#,
                TemplateError::NeedsRegexMatch("replicaset"),
            ),
            (
                r#"rate(up["{{ window }}"])"#,
                TemplateError::WindowInString("window"),
            ),
            (
                r#"rate(up['{{ interval }}'])"#,
                TemplateError::WindowInString("interval"),
            ),
            ("up{{ nope }}", TemplateError::Unknown("nope".into())),
            ("up{x=\"{{ pods\"}", TemplateError::Unclosed(6)),
            ("   ", TemplateError::Empty),
        ];
        for (src, want) in cases {
            assert_eq!(Template::parse(src), Err(want), "{src}");
        }
        // Spacing around =~ and a quote inside an earlier string are fine.
        Template::parse(r#"up{a="x\"y", pod =~ "{{ pods }}"}"#).unwrap();
        Template::parse(r#"up{pod!~"{{ pods }}"}"#).unwrap();
        assert_eq!(
            Template::parse(r#"up{namespace=~"{{ namespace }}"}"#),
            Err(TemplateError::NameInRegex("namespace"))
        );
    }
}
