//! Field ownership: which field manager owns which leaf of an object, and server-side apply.
//!
//! Owns a simplified model of Kubernetes' managed fields: each object keeps, per
//! (manager, operation, subresource), the set of leaf paths that manager last set. An apply by
//! manager M that would change a leaf another manager owns with a different value is a
//! conflict unless forced; an apply also removes the leaves M applied before and no longer
//! applies (when nobody else owns them); a non-apply write takes ownership of the leaves it
//! changes. This is what lets two `kube-lease-manager` contenders race for an orphaned Lease
//! with apply patches and have exactly one win. It does not store objects or talk HTTP.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::patch::{apply_merge, merge_key};

/// One step of a path into an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Seg {
    /// A field of an object.
    Field(String),
    /// The element of a keyed list whose `field` is the JSON `value` (compact form).
    Key { field: String, value: String },
}

/// A path from the object's root to a leaf: a scalar, an atomic list, or an empty object.
pub(crate) type FieldPath = Vec<Seg>;

/// Whether an entry comes from a server-side apply or from any other write (create, update,
/// non-apply patch), as in `managedFields[].operation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    /// `""` for the main resource, `"status"` for the status subresource.
    subresource: String,
    time: Timestamp,
    fields: BTreeSet<FieldPath>,
}

/// The ownership record of one stored object.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ManagedFields {
    entries: Vec<Entry>,
}

/// Fields the server itself sets; nobody owns them.
fn is_server_field(path: &[&str]) -> bool {
    match path {
        ["apiVersion"] | ["kind"] => true,
        ["metadata", f] => matches!(
            *f,
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Every owned leaf of `obj` with its value.
pub(crate) fn leaves(obj: &Value) -> BTreeMap<FieldPath, Value> {
    let mut out = BTreeMap::new();
    let mut path = Vec::new();
    let mut names = Vec::new();
    walk(obj, &mut path, &mut names, &mut out);
    out
}

fn walk<'a>(
    v: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, Value>,
) {
    match v {
        Value::Object(m) if !m.is_empty() || path.is_empty() => {
            for (k, child) in m {
                names.push(k);
                if !is_server_field(names) && !child.is_null() {
                    path.push(Seg::Field(k.clone()));
                    walk(child, path, names, out);
                    path.pop();
                }
                names.pop();
            }
        }
        Value::Array(items) => {
            let keyed = names.last().and_then(|f| merge_key(f)).filter(|mk| {
                !items.is_empty()
                    && items
                        .iter()
                        .all(|i| i.get(*mk).is_some_and(|k| !k.is_null()))
            });
            match keyed {
                Some(mk) => {
                    for item in items {
                        path.push(Seg::Key {
                            field: mk.to_string(),
                            value: item[mk].to_string(),
                        });
                        // Elements are not named fields; an empty name keeps `names` aligned.
                        names.push("");
                        walk(item, path, names, out);
                        names.pop();
                        path.pop();
                    }
                }
                None => {
                    out.insert(path.clone(), v.clone());
                }
            }
        }
        _ => {
            out.insert(path.clone(), v.clone());
        }
    }
}

/// The value at `path`, if present.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| match seg {
        Seg::Field(f) => v.get(f),
        Seg::Key { field, value } => v.as_array()?.iter().find(|e| key_matches(e, field, value)),
    })
}

/// Removes the value at `path`, then removes the objects and list elements that this left
/// empty (never the root).
fn remove_at(obj: &mut Value, path: &[Seg]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let Some(parent) = value_at_mut(obj, parent_path) else {
        return;
    };
    match (last, parent) {
        (Seg::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (Seg::Key { field, value }, Value::Array(items)) => {
            items.retain(|e| !key_matches(e, field, value));
        }
        _ => return,
    }
    let now_empty = value_at(obj, parent_path).is_some_and(|p| match p {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    });
    if now_empty && !parent_path.is_empty() {
        remove_at(obj, parent_path);
    }
}

fn value_at_mut<'a>(obj: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(obj, |v, seg| match seg {
        Seg::Field(f) => v.get_mut(f),
        Seg::Key { field, value } => v
            .as_array_mut()?
            .iter_mut()
            .find(|e| key_matches(e, field, value)),
    })
}

/// Whether a list element has `field` equal to the JSON text `value`.
fn key_matches(elem: &Value, field: &str, value: &str) -> bool {
    serde_json::from_str::<Value>(value).is_ok_and(|want| elem.get(field) == Some(&want))
}

/// `.spec.containers[name="php"].image`: how a path appears in conflict messages.
pub(crate) fn dotted(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Field(f) => format!(".{f}"),
            Seg::Key { field, value } => format!("[{field}={value}]"),
        })
        .collect()
}

fn starts_with(path: &[Seg], prefix: &[Seg]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

impl ManagedFields {
    fn entry_mut(&mut self, manager: &str, op: Operation, sub: &str, now: Timestamp) -> &mut Entry {
        let pos = self
            .entries
            .iter()
            .position(|e| e.manager == manager && e.operation == op && e.subresource == sub);
        let i = match pos {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    manager: manager.to_string(),
                    operation: op,
                    subresource: sub.to_string(),
                    time: now,
                    fields: BTreeSet::new(),
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[i]
    }

    /// Records a non-apply write (create, update, patch) by `manager`: it takes every leaf it
    /// added or changed from whoever owned it, and removed leaves leave every owner.
    pub(super) fn record_update(
        &mut self,
        old: &Value,
        new: &Value,
        manager: &str,
        sub: &str,
        now: Timestamp,
    ) {
        let (before, after) = (leaves(old), leaves(new));
        let changed: Vec<FieldPath> = after
            .iter()
            .filter(|(p, v)| before.get(*p) != Some(*v))
            .map(|(p, _)| p.clone())
            .collect();
        if !changed.is_empty() {
            for e in &mut self.entries {
                let had = e.fields.len();
                e.fields.retain(|p| !changed.contains(p));
                if e.fields.len() != had {
                    e.time = now;
                }
            }
            let mine = self.entry_mut(manager, Operation::Update, sub, now);
            mine.fields.extend(changed);
            mine.time = now;
        }
        self.prune(&after);
    }

    /// Drops ownership of paths that are not leaves of `obj` (after defaulting or a status
    /// reset changed what the write proposed).
    pub(super) fn prune_to(&mut self, obj: &Value) {
        self.prune(&leaves(obj));
    }

    /// Drops ownership of paths that are no longer leaves of the object, and empty entries.
    fn prune(&mut self, leaves: &BTreeMap<FieldPath, Value>) {
        for e in &mut self.entries {
            e.fields.retain(|p| leaves.contains_key(p));
        }
        self.entries.retain(|e| !e.fields.is_empty());
    }

    /// Whether two records own the same fields (times aside): a write that changes neither
    /// the object nor its ownership is a no-op.
    pub(super) fn same_owners(&self, other: &ManagedFields) -> bool {
        let key = |m: &ManagedFields| {
            let mut v: Vec<_> = m
                .entries
                .iter()
                .map(|e| {
                    (
                        e.manager.clone(),
                        e.operation,
                        e.subresource.clone(),
                        e.fields.clone(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        key(self) == key(other)
    }

    /// The `metadata.managedFields` list, in the `FieldsV1` format.
    pub(super) fn render(&self, api_version: &str) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let mut tree = Map::new();
                for path in &e.fields {
                    let mut node = &mut tree;
                    for seg in path {
                        let key = match seg {
                            Seg::Field(f) => format!("f:{f}"),
                            Seg::Key { field, value } => format!("k:{{\"{field}\":{value}}}"),
                        };
                        let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
                        let Value::Object(m) = child else { unreachable!("nodes are objects") };
                        node = m;
                    }
                }
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": match e.operation { Operation::Apply => "Apply", Operation::Update => "Update" },
                    "apiVersion": api_version,
                    "time": e.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": Value::Object(tree),
                });
                if !e.subresource.is_empty() {
                    entry["subresource"] = Value::String(e.subresource.clone());
                }
                entry
            })
            .collect();
        Value::Array(entries)
    }
}

/// The result of a server-side apply that did not conflict.
pub(crate) struct Applied {
    pub object: Value,
    pub fields: ManagedFields,
}

/// Server-side apply of `config` by `manager` to `current` (an empty object for a create).
///
/// Returns the merged object and the new ownership, or the conflicts as
/// `(other manager, dotted path)`. With `force`, conflicting leaves change hands instead.
pub(crate) fn apply(
    current: &Value,
    fields: &ManagedFields,
    config: &Value,
    manager: &str,
    sub: &str,
    force: bool,
    now: Timestamp,
) -> Result<Applied, Vec<(String, String)>> {
    let applied = leaves(config);
    let mine =
        |e: &Entry| e.manager == manager && e.operation == Operation::Apply && e.subresource == sub;

    // Conflicts: a leaf we set to a new value that someone else owns (or owns below).
    let mut conflicts = Vec::new();
    let mut taken: Vec<FieldPath> = Vec::new();
    for (path, want) in &applied {
        if want.is_object() {
            continue; // an empty map sets nothing
        }
        let differs = value_at(current, path).is_some_and(|have| have != want);
        if !differs {
            continue;
        }
        for e in fields.entries.iter().filter(|e| !mine(e)) {
            if e.fields.iter().any(|p| starts_with(p, path)) {
                conflicts.push((e.manager.clone(), dotted(path)));
            }
        }
        taken.push(path.clone());
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort();
        conflicts.dedup();
        return Err(conflicts);
    }

    let mut object = current.clone();
    apply_merge(&mut object, config);

    let mut new_fields = fields.clone();
    // Leaves we applied before and not now are removed, unless someone else also owns them.
    let previously: BTreeSet<FieldPath> = fields
        .entries
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for path in previously.iter().filter(|p| !applied.contains_key(*p)) {
        let shared = fields
            .entries
            .iter()
            .any(|e| !mine(e) && e.fields.contains(path));
        if !shared {
            remove_at(&mut object, path);
        }
    }
    for e in new_fields.entries.iter_mut().filter(|e| !mine(e)) {
        let had = e.fields.len();
        e.fields
            .retain(|p| !taken.iter().any(|t| starts_with(p, t)));
        if e.fields.len() != had {
            e.time = now;
        }
    }
    let entry = new_fields.entry_mut(manager, Operation::Apply, sub, now);
    let owned: BTreeSet<FieldPath> = applied.keys().cloned().collect();
    if entry.fields != owned {
        entry.fields = owned;
        entry.time = now;
    }
    new_fields.prune(&leaves(&object));
    Ok(Applied {
        object,
        fields: new_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
    }

    #[test]
    fn leaves_skip_server_fields_and_key_lists() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "resourceVersion": "3", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "php", "image": "php:1", "args": ["a"]}]}});
        let l = leaves(&obj);
        let names: Vec<String> = l.keys().map(|p| dotted(p)).collect();
        assert_eq!(
            names,
            vec![
                ".metadata.labels.app",
                ".spec.containers[name=\"php\"].args",
                ".spec.containers[name=\"php\"].image",
                ".spec.containers[name=\"php\"].name",
            ]
        );
    }

    #[test]
    fn second_applier_with_another_value_conflicts() {
        let now = Timestamp::now();
        let a = apply(
            &json!({}),
            &ManagedFields::default(),
            &lease("a"),
            "mgr-a",
            "",
            false,
            now,
        )
        .unwrap();
        assert_eq!(a.object["spec"]["holderIdentity"], "a");
        let err = apply(&a.object, &a.fields, &lease("b"), "mgr-b", "", false, now)
            .err()
            .unwrap();
        assert_eq!(
            err,
            vec![("mgr-a".to_string(), ".spec.holderIdentity".to_string())]
        );
        // The same values are shared, not a conflict.
        let shared = apply(&a.object, &a.fields, &lease("a"), "mgr-b", "", false, now).unwrap();
        assert_eq!(shared.object, a.object);
        // Forcing takes the field.
        let forced = apply(&a.object, &a.fields, &lease("b"), "mgr-b", "", true, now).unwrap();
        assert_eq!(forced.object["spec"]["holderIdentity"], "b");
        let again = apply(
            &forced.object,
            &forced.fields,
            &lease("a"),
            "mgr-a",
            "",
            false,
            now,
        );
        assert!(again.is_err(), "mgr-b now owns the holder");
    }

    #[test]
    fn update_takes_ownership_and_removal_frees_the_field() {
        let now = Timestamp::now();
        let a = apply(
            &json!({}),
            &ManagedFields::default(),
            &lease("a"),
            "mgr-a",
            "",
            false,
            now,
        )
        .unwrap();
        // A strategic-merge release by mgr-b removes the holder: nobody owns it any more.
        let mut released = a.object.clone();
        released["spec"]
            .as_object_mut()
            .unwrap()
            .remove("holderIdentity");
        let mut fields = a.fields.clone();
        fields.record_update(&a.object, &released, "mgr-b", "", now);
        let b = apply(&released, &fields, &lease("b"), "mgr-b", "", false, now).unwrap();
        assert_eq!(b.object["spec"]["holderIdentity"], "b");
        // An update changing the duration takes it from both appliers.
        let mut renewed = b.object.clone();
        renewed["spec"]["leaseDurationSeconds"] = json!(20);
        let mut fields = b.fields.clone();
        fields.record_update(&b.object, &renewed, "mgr-c", "", now);
        let rendered = fields.render("coordination.k8s.io/v1");
        let c = rendered
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "mgr-c")
            .unwrap();
        assert_eq!(c["operation"], "Update");
        assert_eq!(
            c["fieldsV1"],
            json!({"f:spec": {"f:leaseDurationSeconds": {}}})
        );
    }

    #[test]
    fn apply_removes_fields_it_no_longer_sets() {
        let now = Timestamp::now();
        let first = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let a = apply(
            &json!({}),
            &ManagedFields::default(),
            &first,
            "m",
            "",
            false,
            now,
        )
        .unwrap();
        let second = json!({"metadata": {"labels": {"a": "1"}}});
        let b = apply(&a.object, &a.fields, &second, "m", "", false, now).unwrap();
        assert_eq!(b.object, json!({"metadata": {"labels": {"a": "1"}}}));
    }
}
