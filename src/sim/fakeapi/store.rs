//! The fake API server's storage: objects, the resourceVersion counter, the event history
//! watches replay, and container logs.
//!
//! Owns every write's bookkeeping, done atomically under one lock: a single global
//! resourceVersion bumped by every write, `uid` and `creationTimestamp` on create,
//! resourceVersion preconditions (409 Conflict), field ownership, and the ADDED / MODIFIED /
//! DELETED history, bounded like an etcd compaction window. It calls [`super::strategy`] for
//! per-kind rules and wakes watchers; it does not parse HTTP or run controllers.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::fields::{self, Applied, ManagedFields};
use super::logs::Logs;
use super::resources::FakeResource;
use super::status::ApiError;
use super::strategy::{self, Sub};

/// Where an object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub resource: FakeResource,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub(super) fn new(resource: FakeResource, namespace: &str, name: &str) -> ObjKey {
        ObjKey {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as kept in the history.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub key: ObjKey,
    pub kind: ChangeType,
    pub object: Arc<Value>,
    /// For MODIFIED: the object before, so a filtered watch can turn a change that leaves
    /// (or enters) its selector into DELETED (or ADDED), as the real server does.
    pub previous: Option<Arc<Value>>,
}

struct Stored {
    object: Arc<Value>,
    fields: ManagedFields,
}

/// Who writes, through which endpoint, and whether to commit.
#[derive(Clone, Debug)]
pub(crate) struct WriteOpts {
    pub manager: String,
    pub sub: Sub,
    pub dry_run: bool,
}

impl WriteOpts {
    pub(super) fn main(manager: &str) -> WriteOpts {
        WriteOpts {
            manager: manager.to_string(),
            sub: Sub::Main,
            dry_run: false,
        }
    }

    pub(super) fn status(manager: &str) -> WriteOpts {
        WriteOpts {
            sub: Sub::Status,
            ..WriteOpts::main(manager)
        }
    }
}

/// What an update closure proposes: a new object (ownership follows from the diff), or the
/// result of a server-side apply (ownership already computed).
pub(crate) enum Proposed {
    Object(Value),
    Applied(Applied),
}

/// The state behind the lock.
pub(crate) struct Inner {
    rv: u64,
    objects: BTreeMap<ObjKey, Stored>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Every change with a resourceVersion above this is still in `history`.
    oldest: u64,
    pub logs: Logs,
}

/// Shared storage; cheap to clone through an `Arc`.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    /// The latest resourceVersion, for watchers to wait on.
    written: watch::Sender<u64>,
    /// Bumped on every appended log line or restart, for followers of a log.
    logs_changed: watch::Sender<u64>,
}

/// The first resourceVersion; an empty store lists at this version.
const FIRST_RV: u64 = 1;

impl Store {
    pub(super) fn new(history_limit: usize) -> Store {
        Store {
            inner: Mutex::new(Inner {
                rv: FIRST_RV,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                oldest: FIRST_RV,
                logs: Logs::default(),
            }),
            written: watch::channel(FIRST_RV).0,
            logs_changed: watch::channel(0).0,
        }
    }

    /// The lock. Never held across an `.await`.
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes up whenever something is written.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Wakes up whenever a log changes.
    pub(super) fn subscribe_logs(&self) -> watch::Receiver<u64> {
        self.logs_changed.subscribe()
    }

    /// Tells log followers that a log changed.
    pub(super) fn logs_touched(&self) {
        self.logs_changed.send_modify(|n| *n += 1);
    }

    pub(super) fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.lock().objects.get(key).map(|s| s.object.clone())
    }

    /// All objects of a kind (in one namespace, or all), ordered by namespace and name, with
    /// the resourceVersion they are current at.
    pub(super) fn list(
        &self,
        resource: FakeResource,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        (inner.list(resource, namespace), inner.rv)
    }

    /// The current resourceVersion.
    pub(super) fn rv(&self) -> u64 {
        self.lock().rv
    }

    /// Creates an object (name from `metadata.name` or `generateName`).
    pub(super) fn create(
        &self,
        resource: FakeResource,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let name = match obj.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                let prefix = obj
                    .pointer("/metadata/generateName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if prefix.is_empty() {
                    return Err(ApiError::invalid(
                        resource,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
                inner.generate_name(resource, namespace, &prefix)
            }
        };
        obj["metadata"]["name"] = json!(name);
        let key = ObjKey::new(resource, namespace, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource, &name));
        }
        strategy::prepare_create(resource, &mut obj);
        let mut fields = ManagedFields::default();
        fields.record_update(
            &json!({}),
            &obj,
            &opts.manager,
            opts.sub.name(),
            Timestamp::now(),
        );
        let out = inner.insert_new(key, obj, fields, opts.dry_run)?;
        drop(inner);
        self.wake();
        Ok(out)
    }

    /// Read-modify-write of one object. The closure sees the stored object and its ownership
    /// and proposes the new object; a `metadata.resourceVersion` it leaves that differs from
    /// the stored one fails with 409 Conflict (the optimistic-concurrency precondition of PUT
    /// and of patches carrying a resourceVersion). A write that changes nothing is not
    /// committed and keeps the resourceVersion, as on the real server.
    pub(super) fn update<F>(
        &self,
        key: &ObjKey,
        opts: &WriteOpts,
        propose: F,
    ) -> Result<Arc<Value>, ApiError>
    where
        F: FnOnce(&Value, &ManagedFields) -> Result<Proposed, ApiError>,
    {
        let mut inner = self.lock();
        let Some(stored) = inner.objects.get(key) else {
            return Err(ApiError::not_found(key.resource, &key.name));
        };
        let (old, old_fields) = (stored.object.clone(), stored.fields.clone());
        let (mut new, fields) = match propose(&old, &old_fields)? {
            Proposed::Object(v) => (v, None),
            Proposed::Applied(a) => (a.object, Some(a.fields)),
        };
        check_proposed(key, &old, &new)?;
        // Server-set identity is kept whatever the body says.
        keep_identity(key, &old, &mut new);
        strategy::prepare_update(key.resource, opts.sub, &old, &mut new);
        strategy::validate(key.resource, &new, Some(&old))?;
        let now = Timestamp::now();
        let mut fields = match fields {
            Some(f) => f,
            None => {
                let mut f = old_fields.clone();
                f.record_update(&old, &new, &opts.manager, opts.sub.name(), now);
                f
            }
        };
        fields.prune_to(&new);
        if same_object(&old, &new) && fields.same_owners(&old_fields) {
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(Arc::new(new));
        }
        let new = inner.replace(key, new, fields, old);
        drop(inner);
        self.wake();
        Ok(new)
    }

    /// Server-side apply, creating the object when it does not exist.
    pub(super) fn apply(
        &self,
        key: &ObjKey,
        config: &Value,
        force: bool,
        opts: &WriteOpts,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let exists = self.lock().objects.contains_key(key);
        if exists {
            let out = self.update(key, opts, |current, owned| {
                fields::apply(
                    current,
                    owned,
                    config,
                    &opts.manager,
                    opts.sub.name(),
                    force,
                    Timestamp::now(),
                )
                .map(Proposed::Applied)
                .map_err(|c| ApiError::apply_conflict(key.resource, &key.name, &c))
            })?;
            return Ok((out, false));
        }
        let mut inner = self.lock();
        if inner.objects.contains_key(key) {
            drop(inner);
            return self.apply(key, config, force, opts);
        }
        let applied = fields::apply(
            &json!({}),
            &ManagedFields::default(),
            config,
            &opts.manager,
            opts.sub.name(),
            force,
            Timestamp::now(),
        )
        .map_err(|c| ApiError::apply_conflict(key.resource, &key.name, &c))?;
        let (mut obj, mut fields) = (applied.object, applied.fields);
        obj["metadata"]["name"] = json!(key.name);
        strategy::prepare_create(key.resource, &mut obj);
        fields.prune_to(&obj);
        let out = inner.insert_new(key.clone(), obj, fields, opts.dry_run)?;
        drop(inner);
        self.wake();
        Ok((out, true))
    }

    /// Deletes an object, checking the `preconditions` of the delete options (uid and
    /// resourceVersion), and forgets a pod's logs.
    pub(super) fn delete(
        &self,
        key: &ObjKey,
        uid: Option<&str>,
        rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let Some(stored) = inner.objects.get(key) else {
            return Err(ApiError::not_found(key.resource, &key.name));
        };
        let meta = &stored.object["metadata"];
        let mismatch = |want: Option<&str>, field: &str| {
            want.is_some_and(|w| meta.get(field).and_then(Value::as_str) != Some(w))
        };
        if mismatch(uid, "uid") || mismatch(rv, "resourceVersion") {
            return Err(ApiError::conflict(key.resource, &key.name));
        }
        if dry_run {
            return Ok(stored.object.clone());
        }
        let old = inner.objects.remove(key).expect("checked above").object;
        let rv = inner.next_rv();
        let mut gone = (*old).clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        let gone = Arc::new(gone);
        inner.record(rv, key.clone(), ChangeType::Deleted, gone.clone(), None);
        if key.resource == FakeResource::Pods {
            inner.logs.forget_pod(&key.namespace, &key.name);
        }
        drop(inner);
        self.wake();
        Ok(gone)
    }

    /// Drops the whole history, like an etcd compaction: a watch from any resourceVersion
    /// before now answers 410.
    pub(super) fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest = inner.rv;
    }

    fn wake(&self) {
        let rv = self.lock().rv;
        self.written.send_replace(rv);
    }
}

impl Inner {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(super) fn list(&self, resource: FakeResource, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.objects
            .iter()
            .filter(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, s)| s.object.clone())
            .collect()
    }

    pub(super) fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The resourceVersion the kept history starts after.
    pub(super) fn oldest(&self) -> u64 {
        self.oldest
    }

    pub(super) fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(key).map(|s| s.object.clone())
    }

    /// The changes to `resource` after `since`, and the resourceVersion they bring a watcher
    /// up to; 410 when the history no longer reaches back to `since`.
    pub(super) fn changes_since(
        &self,
        since: u64,
        resource: FakeResource,
    ) -> Result<(Vec<Arc<Change>>, u64), ApiError> {
        if since < self.oldest {
            return Err(ApiError::expired(since, self.oldest));
        }
        let start = self.history.partition_point(|c| c.rv <= since);
        let changes = self
            .history
            .range(start..)
            .filter(|c| c.key.resource == resource)
            .cloned()
            .collect();
        Ok((changes, self.rv.max(since)))
    }

    fn generate_name(&self, resource: FakeResource, namespace: &str, prefix: &str) -> String {
        // Like the real server: the prefix is cut so that the name fits 63 characters.
        let base: String = prefix.chars().take(58).collect();
        loop {
            let name = format!("{base}{}", random_suffix(5));
            if !self
                .objects
                .contains_key(&ObjKey::new(resource, namespace, &name))
            {
                return name;
            }
        }
    }

    fn insert_new(
        &mut self,
        key: ObjKey,
        mut obj: Value,
        fields: ManagedFields,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
            && ns != key.namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        obj["apiVersion"] = json!(key.resource.api_version());
        obj["kind"] = json!(key.resource.kind());
        let meta = &mut obj["metadata"];
        meta["namespace"] = json!(key.namespace);
        meta["uid"] = json!(new_uid());
        meta["creationTimestamp"] =
            json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("managedFields");
        }
        if key.resource.tracks_generation() {
            obj["metadata"]["generation"] = json!(1);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("generation");
        }
        strategy::validate(key.resource, &obj, None)?;
        if dry_run {
            return Ok(Arc::new(obj));
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        obj["metadata"]["managedFields"] = fields.render(key.resource.api_version());
        let obj = Arc::new(obj);
        self.objects.insert(
            key.clone(),
            Stored {
                object: obj.clone(),
                fields,
            },
        );
        self.record(rv, key, ChangeType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Commits `new` with its `fields` in place of the stored `old`, at the next
    /// resourceVersion, and records the change.
    fn replace(
        &mut self,
        key: &ObjKey,
        mut new: Value,
        fields: ManagedFields,
        old: Arc<Value>,
    ) -> Arc<Value> {
        let rv = self.next_rv();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        new["metadata"]["managedFields"] = fields.render(key.resource.api_version());
        let new = Arc::new(new);
        self.objects.insert(
            key.clone(),
            Stored {
                object: new.clone(),
                fields,
            },
        );
        self.record(
            rv,
            key.clone(),
            ChangeType::Modified,
            new.clone(),
            Some(old),
        );
        new
    }

    fn record(
        &mut self,
        rv: u64,
        key: ObjKey,
        kind: ChangeType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        self.history.push_back(Arc::new(Change {
            rv,
            key,
            kind,
            object,
            previous,
        }));
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest = dropped.rv;
            }
        }
    }

    /// The uids of every stored object (for owner references).
    pub(super) fn uids(&self) -> HashSet<String> {
        self.objects
            .values()
            .filter_map(|s| s.object.pointer("/metadata/uid").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    }
}

/// Refuses a proposed object that is not an object, carries another resourceVersion than the
/// stored one (409 Conflict), or names another object than the URL.
fn check_proposed(key: &ObjKey, old: &Value, new: &Value) -> Result<(), ApiError> {
    if !new.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    let old_rv = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    let new_rv = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if let Some(rv) = new_rv
        && !rv.is_empty()
        && Some(rv) != old_rv
    {
        return Err(ApiError::conflict(key.resource, &key.name));
    }
    if let Some(name) = new.pointer("/metadata/name").and_then(Value::as_str)
        && name != key.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            key.name
        )));
    }
    Ok(())
}

/// Keeps the server-set identity of the stored object `old` in `new` (name, namespace, uid,
/// creation time, generation, apiVersion and kind), whatever the body says.
fn keep_identity(key: &ObjKey, old: &Value, new: &mut Value) {
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        match old["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    new["apiVersion"] = json!(key.resource.api_version());
    new["kind"] = json!(key.resource.kind());
}

/// Whether two versions of an object are the same apart from resourceVersion and ownership.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// The alphabet Kubernetes uses for generated names and pod-template hashes (no vowels, so no
/// words; no confusable characters).
pub(crate) const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` random characters from [`NAME_ALPHABET`].
pub(crate) fn random_suffix(n: usize) -> String {
    (0..n)
        .map(|_| NAME_ALPHABET[rand::random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// A random version-4 UUID.
fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"holderIdentity": "a"}})
    }

    #[test]
    fn writes_bump_one_counter_and_keep_history() {
        let store = Store::new(3);
        let opts = WriteOpts::main("test");
        let a = store
            .create(FakeResource::Leases, "ns", lease("a"), &opts)
            .unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(a["kind"], "Lease");
        assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
        let dup = store
            .create(FakeResource::Leases, "ns", lease("a"), &opts)
            .unwrap_err();
        assert_eq!(dup.reason, "AlreadyExists");
        let key = ObjKey::new(FakeResource::Leases, "ns", "a");
        let stale = store
            .update(&key, &opts, |cur, _| {
                let mut v = cur.clone();
                v["metadata"]["resourceVersion"] = json!("1");
                Ok(Proposed::Object(v))
            })
            .unwrap_err();
        assert_eq!(stale.code, 409);
        let same = store
            .update(&key, &opts, |cur, _| Ok(Proposed::Object(cur.clone())))
            .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"], "2",
            "no-op writes keep the version"
        );
        store
            .update(&key, &opts, |cur, _| {
                let mut v = cur.clone();
                v["spec"]["holderIdentity"] = json!("b");
                Ok(Proposed::Object(v))
            })
            .unwrap();
        store.delete(&key, None, None, false).unwrap();
        let inner = store.lock();
        let (changes, cursor) = inner.changes_since(1, FakeResource::Leases).unwrap();
        let kinds: Vec<ChangeType> = changes.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![ChangeType::Added, ChangeType::Modified, ChangeType::Deleted]
        );
        assert_eq!(cursor, 4);
        drop(inner);
        store
            .create(FakeResource::Leases, "ns", lease("b"), &opts)
            .unwrap();
        let err = store
            .lock()
            .changes_since(1, FakeResource::Leases)
            .unwrap_err();
        assert_eq!(err.code, 410);
    }

    #[test]
    fn generate_name_uses_the_kubernetes_alphabet() {
        let store = Store::new(10);
        let obj = json!({"metadata": {"generateName": "web-"}, "spec": {}});
        let made = store
            .create(FakeResource::Leases, "ns", obj, &WriteOpts::main("t"))
            .unwrap();
        let name = made["metadata"]["name"].as_str().unwrap();
        let suffix = name.strip_prefix("web-").unwrap();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }
}
