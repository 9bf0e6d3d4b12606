//! Label and field selectors, parsed from the `labelSelector` and `fieldSelector` query
//! parameters and matched against stored objects.
//!
//! Owns the selector grammar the real API server accepts: for labels `k=v`, `k==v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, `k` and `!k`, comma-separated and all required; for fields
//! `path=v`, `path==v`, `path!=v` over the field labels each kind supports. It does not know
//! about storage or HTTP.

use std::collections::BTreeSet;

use serde_json::Value;

use super::resources::FakeResource;
use super::status::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    /// Parses the string form. Errors are 400 BadRequest, as on the real server.
    pub(super) fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let bad = |why: &str| {
            ApiError::bad_request(format!("unable to parse requirement: {why} (in {s:?})"))
        };
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some(key) = part.strip_prefix('!') {
                reqs.push(LabelReq::NotExists(
                    valid_key(key.trim()).map_err(|e| bad(&e))?,
                ));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(LabelReq::NotEq(
                    valid_key(k.trim()).map_err(|e| bad(&e))?,
                    v.trim().to_string(),
                ));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push(LabelReq::Eq(
                    valid_key(k.trim()).map_err(|e| bad(&e))?,
                    v.trim().to_string(),
                ));
            } else if let Some((k, set)) = split_set_op(part, " notin ") {
                reqs.push(LabelReq::NotIn(
                    valid_key(k).map_err(|e| bad(&e))?,
                    parse_set(set).map_err(|e| bad(&e))?,
                ));
            } else if let Some((k, set)) = split_set_op(part, " in ") {
                reqs.push(LabelReq::In(
                    valid_key(k).map_err(|e| bad(&e))?,
                    parse_set(set).map_err(|e| bad(&e))?,
                ));
            } else {
                reqs.push(LabelReq::Exists(valid_key(part).map_err(|e| bad(&e))?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds the selector a Deployment or ReplicaSet `spec.selector` describes
    /// (`matchLabels` and `matchExpressions`).
    pub(super) fn from_label_selector(sel: &Value) -> LabelSelector {
        let mut reqs = Vec::new();
        if let Some(Value::Object(ml)) = sel.get("matchLabels") {
            for (k, v) in ml {
                reqs.push(LabelReq::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().into(),
                ));
            }
        }
        if let Some(Value::Array(exprs)) = sel.get("matchExpressions") {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: BTreeSet<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                match e.get("operator").and_then(Value::as_str) {
                    Some("In") => reqs.push(LabelReq::In(key, values)),
                    Some("NotIn") => reqs.push(LabelReq::NotIn(key, values)),
                    Some("Exists") => reqs.push(LabelReq::Exists(key)),
                    Some("DoesNotExist") => reqs.push(LabelReq::NotExists(key)),
                    // An unknown operator selects nothing, which is the safe reading.
                    _ => reqs.push(LabelReq::In(key, BTreeSet::new())),
                }
            }
        }
        LabelSelector(reqs)
    }

    /// Whether an object with these `metadata.labels` is selected.
    pub(super) fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            // `!=` and `notin` also select objects without the label, as in Kubernetes.
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            LabelReq::NotIn(k, set) => get(k).is_none_or(|v| !set.contains(v)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits at commas that are not inside parentheses (`a in (x,y),b` is two requirements).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn split_set_op<'a>(part: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let (k, rest) = part.split_once(op)?;
    Some((k.trim(), rest.trim()))
}

fn parse_set(s: &str) -> Result<BTreeSet<String>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, got {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn valid_key(k: &str) -> Result<String, String> {
    let ok = !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key {k:?}"))
    }
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the string form, refusing field labels the kind does not support (400, like the
    /// real server's "field label not supported").
    pub(super) fn parse(s: &str, resource: FakeResource) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let key = key.trim();
            let supported = matches!(key, "metadata.name" | "metadata.namespace")
                || resource.extra_field_labels().contains(&key);
            if !supported {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
            reqs.push((key.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the object is selected. A missing field compares as the empty string, as the
    /// real server's field sets do.
    pub(super) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let have = path
                .split('.')
                .try_fold(obj, |v, seg| v.get(seg))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (have == *want) == *equal
        })
    }
}

/// What a list or watch selects: a namespace (or all), a label and a field selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub(super) fn matches(&self, obj: &Value) -> bool {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        self.namespace
            .as_deref()
            .is_none_or(|want| ns == Some(want))
            && self.labels.matches(obj.pointer("/metadata/labels"))
            && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn label_selector_operators() {
        let labels = json!({"app": "web", "tier": "front"});
        let l = Some(&labels);
        assert!(sel("app=web").matches(l));
        assert!(sel("app==web,tier=front").matches(l));
        assert!(!sel("app=web,tier=back").matches(l));
        assert!(sel("app!=api").matches(l));
        assert!(
            sel("missing!=x").matches(l),
            "!= selects objects without the label"
        );
        assert!(sel("app in (api, web)").matches(l));
        assert!(!sel("app notin (api,web)").matches(l));
        assert!(sel("missing notin (x)").matches(l));
        assert!(sel("app").matches(l));
        assert!(!sel("!app").matches(l));
        assert!(sel("!missing,tier in (front),app").matches(l));
        assert!(sel("").matches(None));
        assert!(!sel("app").matches(None));
    }

    #[test]
    fn label_selector_rejects_garbage() {
        assert!(LabelSelector::parse("app in x").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn spec_selector_with_expressions() {
        let s = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]
        }));
        assert!(s.matches(Some(&json!({"app": "web"}))));
        assert!(!s.matches(Some(&json!({"app": "web", "track": "canary"}))));
    }

    #[test]
    fn field_selector() {
        let obj =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}});
        let f = FieldSelector::parse("metadata.name=a,status.phase!=Pending", FakeResource::Pods)
            .unwrap();
        assert!(f.matches(&obj));
        let f = FieldSelector::parse("metadata.namespace==other", FakeResource::Pods).unwrap();
        assert!(!f.matches(&obj));
        let err = FieldSelector::parse("status.phase=Running", FakeResource::Leases).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
