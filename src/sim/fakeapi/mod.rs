//! An in-process fake Kubernetes API server, spoken to over real HTTP by the real `kube`
//! client, with a simulated Deployment controller, ReplicaSet controller and kubelet behind
//! it.
//!
//! It exists because there is no kube-apiserver on the machines that run rollout-guard's
//! end-to-end tests, its cost benchmark and `rollout-guard demo`: with it, the controller's
//! own code (watchers, reflectors, patches, the leader lease, event recording, log reading)
//! runs unchanged against something that answers like a cluster. It is a simulation adapter:
//! nothing in the judgement core may depend on it, and it must never be pointed at by
//! production configuration.
//!
//! This module owns the [`FakeApiServer`] handle (start, client, kubeconfig, fault injection,
//! request statistics, pod logs, shutdown) and [`FakeOptions`]. The parts:
//! - `store`: objects, the global resourceVersion, the watch history, logs;
//! - `strategy`: per-kind defaulting, validation, status-subresource and generation rules;
//! - `fields`: field ownership and server-side apply;
//! - `patch`: JSON, merge and strategic merge patches;
//! - `selectors`: label and field selectors;
//! - `http`, `handlers`, `watch`, `podlogs`: the HTTP API;
//! - `sim`, `deployments` (with `rollout_status` and `template_hash`), `replicasets`,
//!   `kubelet`: the simulated control plane;
//! - `faults`, `stats`: injected faults and request accounting.
//!
//! # What it serves
//!
//! Namespaced, and across all namespaces for list and watch: `apps/v1` `deployments` and
//! `replicasets` (each with `status`), core `v1` `pods` (with `status` and `log`) and
//! `events` and `configmaps`, `events.k8s.io/v1` `events`, `coordination.k8s.io/v1` `leases`;
//! plus `/version`,
//! `/api`, `/apis`, `/api/v1` and `/apis/<group>/v1` discovery documents. Verbs: list (label
//! and field selectors, `limit` and `continue`), watch, get, create (`generateName`), update,
//! patch (JSON, merge, strategic merge, server-side apply), delete (with preconditions),
//! deletecollection, `dryRun=All`. Errors are `metav1.Status` bodies with the real codes and
//! reasons.
//!
//! # Where it differs from a real API server
//!
//! Storage and API machinery:
//! - One process, in memory; no authentication, authorization, admission webhooks, RBAC,
//!   TLS, HTTP/2, protobuf or CBOR (JSON only; apply bodies may be YAML). Of the other
//!   representations, metadata only (`Accept: ...;as=PartialObjectMetadata[List]`, what kube's
//!   `Api<PartialObjectMeta<K>>` asks for) is served on get, list and watch; `as=Table` is not.
//! - Only the seven kinds above. Namespaces are not objects: any namespace name works and
//!   none can be listed or deleted. Core `v1` events and `events.k8s.io/v1` events are two
//!   separate collections, not two views of one.
//! - Defaulting covers the fields the simulation and the controller read (Deployment
//!   replicas, strategy 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600;
//!   ReplicaSet replicas; a few pod-spec fields such as `restartPolicy`, `imagePullPolicy`,
//!   port protocol). Validation covers names, selectors matching template labels, immutable
//!   selectors, containers with a name and an image, the Deployment deadline and
//!   rolling-update limits, and a ConfigMap's `data` keys and 1 MiB size (`binaryData` and
//!   `immutable` are not checked); everything else is accepted.
//! - A write through the `status` subresource keeps everything but `status` and
//!   `metadata.annotations` (the real strategies differ slightly per kind).
//! - `resourceVersion` and `resourceVersionMatch` on get and list are ignored: reads always
//!   return the current state (a real server may serve from its watch cache or answer 410 or
//!   504). A `continue` token resumes after the last key returned, showing the objects as they
//!   are now rather than a snapshot at the first page's resourceVersion; the pages keep
//!   that first page's resourceVersion, so a watch started from it still sees every change.
//! - The watch history is a fixed number of events (`history_size`) across all kinds, like
//!   etcd compaction; a watch from before it answers 410 `Expired` as an `ERROR` event in
//!   a 200 stream, and a `continue` from before it a 410 (the real server's reason is
//!   `Expired`, not `Gone`). `timeoutSeconds` is obeyed exactly (the real server adds
//!   jitter and a default timeout). Bookmarks come every `bookmark_interval`.
//! - Finalizers, `deletionTimestamp` and graceful deletion are not modelled: delete removes
//!   at once, pods included. Delete propagation policies are ignored; dependents are
//!   garbage-collected (background) only while the controller simulation runs. PUT does not
//!   create missing objects.
//! - Field ownership is a simplified model of structured-merge-diff (see the `fields`
//!   module): leaves are owned per (manager, operation, subresource); lists are atomic except
//!   those merged by key (containers, env, ports, volumes, volumeMounts, conditions,
//!   ownerReferences, ...), recognised by field name alone. `managedFields` are rendered in
//!   `FieldsV1` form but are not read back from request bodies. A write without
//!   `fieldManager` is owned by the User-Agent's product name, or `unknown`.
//! - Strategic merge patch knows the merge keys by field name (not from the OpenAPI schema);
//!   `$setElementOrder` is ignored.
//! - Objects are schemaless JSON: unknown fields are kept as sent, neither dropped nor
//!   refused (a real server prunes them, or refuses them with `fieldValidation=Strict`);
//!   wrong types are caught only where the simulation or a validation rule reads the field.
//! - Field selectors: `metadata.name` and `metadata.namespace` on every kind, plus the
//!   per-kind fields the real server supports for pods and events.
//! - Events are never expired (a real server drops them after an hour by default).
//! - Pod logs: a container the kubelet has not started answers an empty log, not 400
//!   "waiting to start"; `limitBytes` never cuts inside a UTF-8 character; `sinceSeconds`
//!   counts from the server's clock.
//! - Injected faults (`inject_conflicts`, `inject_failures`) are, of course, not real.
//!
//! The simulated control plane (when `simulate_controllers` is on):
//! - Controllers poll every `tick` instead of reacting to watch events; a step takes up to
//!   a few ticks to show.
//! - The pod-template hash is FNV-1a of the template's canonical JSON, so the names differ
//!   from a real cluster's for the same template (same alphabet, same length rules).
//! - Proportional scaling of several active ReplicaSets (a Deployment resized mid-rollout or
//!   while paused) is not simulated: the rolling update simply continues towards the new
//!   size. `spec.paused` stops all progress. Recreate waits for the old ReplicaSets'
//!   `status.replicas` to reach zero rather than looking at pods.
//! - ReplicaSets do not adopt or release pods by selector; only pods whose controller owner
//!   reference names them count. Surplus pods are deleted unscheduled first, then unready,
//!   then newest; all at once, with no slow start.
//! - No Events are emitted by the simulated controllers; no `ReplicaFailure` conditions; no
//!   `terminatingReplicas`.
//! - The kubelet schedules pending pods onto three fake nodes round-robin, starts them
//!   `Running` at once, and makes each container ready `ready_after` after it started,
//!   unless the pod carries [`NEVER_READY_ANNOTATION`]. It owns the status of pods it placed:
//!   a test that writes such a pod's readiness will see it made ready again. Pods created
//!   with another `nodeName` are never touched. Containers never crash on their own;
//!   [`FakeApiServer::restart_container`] restarts one.
//! - Logs exist only as appended by [`FakeApiServer::append_log`]; `follow=true` streams new
//!   lines until the pod is deleted, the container restarts or the server stops.

mod deployments;
mod faults;
mod fields;
mod handlers;
mod http;
mod kubelet;
mod logs;
mod patch;
mod podlogs;
mod replicasets;
mod resources;
mod rollout_status;
mod selectors;
mod sim;
mod stats;
mod status;
mod store;
mod strategy;
mod template_hash;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::watch as channel;
use tokio::task::JoinHandle;

pub use deployments::{POD_TEMPLATE_HASH, REVISION};
pub use kubelet::NEVER_READY_ANNOTATION;
pub use resources::FakeResource;
pub use stats::{Counter, MAX_LOGGED, RequestRecord, RequestStats};

use faults::Faults;
use logs::LogLine;
use stats::Stats;
use store::{ObjKey, Store};

/// How the fake server behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeOptions {
    /// How often the simulated controllers and kubelet run.
    pub tick: Duration,
    /// How long after a container starts it becomes ready.
    pub ready_after: Duration,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How many write events (all kinds together) a watch can replay; older resourceVersions
    /// answer 410.
    pub history_size: usize,
    /// Whether the Deployment and ReplicaSet controllers, the garbage collector and the
    /// kubelet run. Off, the server is a plain API store.
    pub simulate_controllers: bool,
}

impl Default for FakeOptions {
    /// Paced for a demo: containers ready after two seconds.
    fn default() -> Self {
        FakeOptions {
            tick: Duration::from_millis(100),
            ready_after: Duration::from_secs(2),
            bookmark_interval: Duration::from_secs(5),
            history_size: 10_000,
            simulate_controllers: true,
        }
    }
}

impl FakeOptions {
    /// Paced for tests: fast ticks, containers ready after 150 ms, bookmarks every 200 ms.
    pub fn fast() -> Self {
        FakeOptions {
            tick: Duration::from_millis(20),
            ready_after: Duration::from_millis(150),
            bookmark_interval: Duration::from_millis(200),
            ..FakeOptions::default()
        }
    }

    /// A plain API store: no simulated controllers or kubelet.
    pub fn api_only() -> Self {
        FakeOptions {
            simulate_controllers: false,
            ..FakeOptions::fast()
        }
    }
}

/// What can go wrong driving the fake server from the handle.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// No port on 127.0.0.1 could be bound.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// No kube client could be built for the server.
    #[error("cannot build a kube client for the fake server: {0}")]
    Client(#[source] kube::Error),
    /// The handle was asked about a kind the server does not serve (its plural).
    #[error("{0} is not a kind the fake API server serves")]
    UnsupportedResource(String),
    /// No such pod in the store.
    #[error("pod {namespace}/{pod} not found")]
    PodNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
    /// The pod has no container (or init container) of that name.
    #[error("pod {namespace}/{pod} has no container {container}")]
    ContainerNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// The store refused a change made through the handle (the text of its Status).
    #[error("the fake API server refused: {0}")]
    Refused(String),
}

/// A running fake API server. Dropping it stops the server in the background;
/// [`FakeApiServer::shutdown`] also waits for it.
pub struct FakeApiServer {
    addr: SocketAddr,
    client: kube::Client,
    store: Arc<Store>,
    faults: Arc<Faults>,
    stats: Arc<Stats>,
    shutdown: channel::Sender<bool>,
    close_watches: channel::Sender<u64>,
    server: Option<JoinHandle<()>>,
    sim: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts the server on `127.0.0.1` with a free port, and the simulation if enabled.
    /// Must be called inside a Tokio runtime, which then runs the server.
    pub async fn start(opts: FakeOptions) -> Result<FakeApiServer, FakeError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeError::Bind)?;
        let addr = listener.local_addr().map_err(FakeError::Bind)?;
        let store = Arc::new(Store::new(opts.history_size));
        let faults = Arc::new(Faults::default());
        let stats = Arc::new(Stats::default());
        let (shutdown, shutdown_rx) = channel::channel(false);
        let (close_watches, close_rx) = channel::channel(0u64);
        let app = Arc::new(http::App {
            store: store.clone(),
            faults: faults.clone(),
            stats: stats.clone(),
            bookmark_interval: opts.bookmark_interval,
            shutdown: shutdown_rx.clone(),
            close_watches: close_rx,
        });
        let mut stop = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            let serve =
                axum::serve(listener, http::router(app)).with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|down| *down).await;
                });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "fake API server stopped");
            }
        });
        let sim = opts.simulate_controllers.then(|| {
            let sim_opts = sim::SimOptions {
                tick: opts.tick,
                ready_after: opts.ready_after,
            };
            tokio::spawn(sim::run(store.clone(), sim_opts, shutdown_rx))
        });
        let client = build_client(addr)?;
        Ok(FakeApiServer {
            addr,
            client,
            store,
            faults,
            stats,
            shutdown,
            close_watches,
            server: Some(server),
            sim,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `kube::Client` for the server, default namespace `default`, with kube's default
    /// configuration (including its retries of 429, 503 and 504). Clones share one
    /// connection pool; see [`FakeApiServer::new_client`] for an independent one.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A new `kube::Client` with its own connection pool (for instance one per leader
    /// election contender). Must be called inside a Tokio runtime.
    pub fn new_client(&self) -> Result<kube::Client, FakeError> {
        build_client(self.addr)
    }

    /// Writes a kubeconfig whose current context points at the server (namespace
    /// `default`, no credentials).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fakeapi\n  cluster:\n    server: {url}\n\
             users:\n- name: fakeapi\n  user: {{}}\ncontexts:\n- name: fakeapi\n  context:\n    cluster: fakeapi\n    \
             user: fakeapi\n    namespace: default\ncurrent-context: fakeapi\n",
            url = self.url()
        );
        std::fs::write(path, text)
    }

    /// Request counts and bytes so far, by verb and resource, and the request log.
    pub fn requests(&self) -> RequestStats {
        self.stats.snapshot()
    }

    /// Forgets the request statistics (to measure one phase of a test or benchmark).
    pub fn reset_requests(&self) {
        self.stats.reset();
    }

    /// The next `n` writes (create, update, patch, delete) through the API to the object
    /// answer 409 Conflict, as if someone else had just modified it.
    pub fn inject_conflicts<K: kube::Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        n: u32,
    ) -> Result<(), FakeError> {
        let resource = FakeResource::of::<K>()
            .ok_or_else(|| FakeError::UnsupportedResource(K::plural(&()).to_string()))?;
        self.faults
            .add_conflicts(ObjKey::new(resource, namespace, name), n);
        Ok(())
    }

    /// The next `n` requests whose path starts with `path_prefix` (e.g.
    /// `/apis/apps/v1/namespaces/shop/deployments`) answer a Status with code `status`
    /// (and the reason the real server uses for it). Note that kube's client retries 429, 503
    /// and 504 by itself, so each retry consumes one injection.
    pub fn inject_failures(&self, path_prefix: &str, status: u16, n: u32) {
        self.faults.add_failures(path_prefix, status, n);
    }

    /// Appends a line, written at `time`, to the current log of a pod's container.
    pub fn append_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        time: Timestamp,
        line: &str,
    ) -> Result<(), FakeError> {
        self.check_container(namespace, pod, container)?;
        self.store.lock().logs.append(
            namespace,
            pod,
            container,
            LogLine {
                time,
                text: line.to_string(),
            },
        );
        self.store.logs_touched();
        Ok(())
    }

    /// Restarts a container: its current log becomes the previous one (`previous=true`), its
    /// `restartCount` goes up, and it is unready until `ready_after` has passed again. The
    /// container must have a status, i.e. the simulated kubelet must have started the pod.
    pub fn restart_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(), FakeError> {
        self.check_container(namespace, pod, container)?;
        // The kubelet may write the pod between our read and write: retry a few times.
        let mut last = None;
        for _ in 0..5 {
            match kubelet::restart_container(&self.store, namespace, pod, container) {
                Ok(()) => return Ok(()),
                Err(e) if e.code == 409 => last = Some(e),
                Err(e) => return Err(FakeError::Refused(e.message)),
            }
        }
        Err(FakeError::Refused(
            last.map(|e| e.message).unwrap_or_default(),
        ))
    }

    fn check_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(), FakeError> {
        let obj = self
            .store
            .get(&ObjKey::new(FakeResource::Pods, namespace, pod))
            .ok_or_else(|| FakeError::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            })?;
        let has = ["containers", "initContainers"].iter().any(|list| {
            obj.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.get("name").and_then(Value::as_str) == Some(container))
                })
        });
        if has {
            Ok(())
        } else {
            Err(FakeError::ContainerNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
            })
        }
    }

    /// Every stored object of a kind, as JSON (for assertions that need no API call).
    pub fn objects(&self, resource: FakeResource) -> Vec<Value> {
        let (objects, _) = self.store.list(resource, None);
        objects.iter().map(|o| (**o).clone()).collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.rv()
    }

    /// Drops the whole watch history, like an etcd compaction: watches resuming from any
    /// earlier resourceVersion get 410.
    pub fn compact_history(&self) {
        self.store.compact();
    }

    /// Ends every open watch stream (as an API server restart would); clients re-watch from
    /// their last resourceVersion.
    pub fn close_watches(&self) {
        self.close_watches.send_modify(|n| *n += 1);
    }

    /// Stops the server and the simulation and waits (up to five seconds) for open
    /// connections to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(sim) = self.sim.take() {
            let _ = sim.await;
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for FakeApiServer {
    /// Signals shutdown and lets the server and the simulation wind down in the background
    /// (aborting the server task would leave its connection tasks serving).
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

fn build_client(addr: SocketAddr) -> Result<kube::Client, FakeError> {
    let url: axum::http::Uri = format!("http://{addr}")
        .parse()
        .expect("a socket address makes a valid URI");
    let config = kube::Config::new(url);
    kube::Client::try_from(config).map_err(FakeError::Client)
}
