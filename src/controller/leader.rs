//! Leader election: only the replica holding the `coordination.k8s.io` Lease acts.
//!
//! Owns the use of the `kube-lease-manager` crate (server-side apply on a Lease, so two
//! contenders cannot both take an orphaned lock). Exposes leadership as a `watch` channel; the
//! controller reads it before every write. Split-brain between two leaders is further bounded
//! by the actuator: every write carries the resourceVersion it was decided on, and the memory
//! travels with the action, so the second writer gets a 409, re-reads and sees the first's
//! action.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::analysis::duration::PromDuration;

/// Leader election on a `coordination.k8s.io` Lease: only the holder acts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderElection {
    /// Whether replicas contend for the Lease; when false, this one always acts.
    pub enabled: bool,
    /// The Lease's namespace; empty means the pod's own (`POD_NAMESPACE`), else `default`.
    pub namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// This replica's identity; empty means the pod name (`HOSTNAME`).
    pub identity: String,
    /// How long the Lease lasts without renewal (at least 2 s); the holder renews it when a
    /// third of that remains.
    pub lease_duration: PromDuration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            enabled: true,
            namespace: String::new(),
            lease_name: "rollout-guard".into(),
            identity: String::new(),
            lease_duration: PromDuration::from_secs(15),
        }
    }
}

/// Leadership, and the task that keeps the Lease.
pub(crate) struct Leadership {
    /// True while this replica holds the Lease and may act.
    pub is_leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Keeps the channel open when election is disabled.
    _always: Option<watch::Sender<bool>>,
}

/// Leader election could not start: the Lease manager failed.
#[derive(Debug, thiserror::Error)]
#[error("leader election on Lease {namespace}/{name}: {source}")]
pub(crate) struct LeaderError {
    namespace: String,
    name: String,
    source: kube_lease_manager::LeaseManagerError,
}

impl Leadership {
    /// Always the leader (a single replica, or election turned off).
    pub(crate) fn always() -> Leadership {
        let (tx, rx) = watch::channel(true);
        Leadership {
            is_leader: rx,
            stop: None,
            task: None,
            _always: Some(tx),
        }
    }

    /// Starts contending for the Lease.
    pub(crate) async fn elect(
        client: Client,
        cfg: &LeaderElection,
    ) -> Result<Leadership, LeaderError> {
        if !cfg.enabled {
            return Ok(Leadership::always());
        }
        let namespace = if cfg.namespace.is_empty() {
            std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into())
        } else {
            cfg.namespace.clone()
        };
        let identity = if cfg.identity.is_empty() {
            std::env::var("HOSTNAME")
                .unwrap_or_else(|_| format!("rollout-guard-{}", std::process::id()))
        } else {
            cfg.identity.clone()
        };
        let duration = cfg.lease_duration.as_secs().max(2);
        // Renew a third of the lease before it runs out, as client-go does by default.
        let grace = (duration / 3).max(1);
        let params = LeaseParams::new(identity.clone(), duration, grace);
        let manager = LeaseManagerBuilder::new(client, &cfg.lease_name)
            .with_namespace(&namespace)
            .with_parameters(params)
            .build()
            .await
            .map_err(|source| LeaderError {
                namespace: namespace.clone(),
                name: cfg.lease_name.clone(),
                source,
            })?;
        let (tx, rx) = watch::channel(false);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    changed = manager.changed() => match changed {
                        Ok(is) => {
                            if is != *tx.borrow() {
                                tracing::info!(identity = %identity, leader = is, "leadership changed");
                            }
                            tx.send_replace(is);
                        }
                        Err(e) => {
                            // Unknown means not leading: acting without the lease is the one
                            // thing that must not happen.
                            tx.send_replace(false);
                            tracing::warn!(error = %e, "leader election; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                }
            }
            tx.send_replace(false);
            if let Err(e) = manager.release().await {
                tracing::warn!(error = %e, "releasing the leader lease");
            } else {
                tracing::info!("leader lease released");
            }
        });
        Ok(Leadership {
            is_leader: rx,
            stop: Some(stop_tx),
            task: Some(task),
            _always: None,
        })
    }

    /// Stops leading and gives the Lease up, so another replica takes over at once rather
    /// than after it expires.
    pub(crate) async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::warn!("releasing the leader lease timed out");
        }
    }
}
