//! rollout-guard watches Kubernetes rollouts of PHP services and pauses or rolls back a plain
//! Deployment when the pods of its new ReplicaSet are worse than those of the old ones.
//!
//! The crate is a pure core with thin adapters around it:
//! - core (no Kubernetes, no HTTP): [`duration`], [`template`], [`rules`], [`stats`],
//!   [`source`] (the metric-source trait), [`judge`], [`decision`], [`evaluate`], [`backtest`],
//!   [`phplog`] (PHP errors parsed from container logs);
//! - adapters: [`prometheus`] (the metric source over HTTP);
//! - the command line: [`cli`], used by the thin `main.rs`.

pub mod backtest;
pub mod cli;
pub mod decision;
pub mod duration;
pub mod evaluate;
pub mod judge;
pub mod phplog;
pub mod prometheus;
pub mod rules;
pub mod simulate;
pub mod source;
pub mod stats;
pub mod template;
