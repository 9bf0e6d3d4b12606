//! PromQL syntax and shape of a rule's queries, checked when rules are loaded (lint, start-up,
//! reload), so that a query Prometheus would refuse is not first found as `inconclusive`.
//!
//! Owns the sample values a query is rendered with and the call into `promql-parser`. The query
//! is rendered by [`Template::render`] itself, so the check sees the escaping that production
//! sends. It must not decide where placeholders may stand ([`crate::analysis::template`] does) or check
//! anything but PromQL (the other rule checks are in [`super`]); it sends nothing anywhere.

use promql_parser::parser::{self, value::ValueType};

use super::Rule;
use crate::analysis::template::{Bindings, Template};

/// A namespace and a Deployment as Kubernetes names them.
const SAMPLE_NAMESPACE: &str = "shop";
const SAMPLE_DEPLOYMENT: &str = "web";
/// Two ReplicaSets, as the old side of a rollout can have, one with a dot in its name: the
/// regexes are rendered with alternatives and escapes, as they are in production.
const SAMPLE_REPLICASETS: [&str; 2] = ["web-7d4b9c8f6", "web.v2-5c6d7e8f9"];

/// Why a query, its placeholders filled in, would be refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum QueryError {
    /// `promql-parser` refused it; its message.
    #[error("is not valid PromQL: {0}")]
    Syntax(String),
    /// A range without a unit, which older Prometheus refuses and newer reads as seconds:
    /// `rate(x[5])` is a typo for `[5m]`, not a five-second rate.
    #[error(
        "has a range without a unit, {0}: Prometheus reads a bare number as seconds (older versions refuse it); write the unit, e.g. [5m]"
    )]
    UnitlessRange(String),
    /// It parses, but is not an instant vector.
    #[error(
        "is a {} expression, but it is sent as a range query and must be an instant vector (e.g. rate(x[1m]), not x[1m])",
        shown(*.0)
    )]
    NotInstantVector(ValueType),
}

/// A value type as Prometheus's messages name it.
fn shown(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
    }
}

/// Renders `query` as it would be for `rule` (its window and interval, sample names) and parses
/// the result.
pub(super) fn check(query: &Template, rule: &Rule) -> Result<(), QueryError> {
    let replicasets = SAMPLE_REPLICASETS.map(String::from);
    let bindings = Bindings {
        namespace: SAMPLE_NAMESPACE,
        deployment: SAMPLE_DEPLOYMENT,
        replicasets: &replicasets,
        window: rule.window,
        interval: rule.interval(),
    };
    let rendered = query.render(&bindings);
    let expr = parser::parse(&rendered).map_err(QueryError::Syntax)?;
    if let Some(range) = unitless_range(&rendered) {
        return Err(QueryError::UnitlessRange(range.to_string()));
    }
    match expr.value_type() {
        ValueType::Vector => Ok(()),
        other => Err(QueryError::NotInstantVector(other)),
    }
}

/// The first range of a query that parses (`[5]`, `[5m:30]`) with a bare number in it, outside
/// strings and comments. `promql-parser`, like newer Prometheus, takes such a number as seconds.
fn unitless_range(query: &str) -> Option<&str> {
    let mut quote = None;
    let mut escaped = false;
    let mut comment = false;
    let mut open = None;
    for (i, c) in query.char_indices() {
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' | '`' => quote = Some(c),
                '#' => comment = true,
                '[' => open = Some(i),
                ']' => {
                    if let Some(start) = open.take() {
                        let range = &query[start..=i];
                        if range[1..range.len() - 1].split(':').any(is_bare_number) {
                            return Some(range);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// True for `5` or `1.5` (a duration's number without its unit).
fn is_bare_number(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::unitless_range;

    #[test]
    fn ranges_without_units_are_found_outside_strings_and_comments() {
        assert_eq!(unitless_range("rate(x[5])"), Some("[5]"));
        assert_eq!(unitless_range("max_over_time(x[5m:30])"), Some("[5m:30]"));
        assert_eq!(unitless_range("rate(x[1.5])"), Some("[1.5]"));
        for fine in [
            "rate(x[5m])",
            "max_over_time(x[5m:])",
            "max_over_time(x[1h:30s])",
            r#"x{a="[5]", b='[5]', c=`[5]`, d="\"[5]"}"#,
            "x # [5]\n+ rate(y[1m])",
        ] {
            assert_eq!(unitless_range(fine), None, "{fine}");
        }
    }
}
