//! rollout-guard watches Kubernetes rollouts of PHP services and pauses or rolls back a plain
//! Deployment when the pods of its new ReplicaSet are worse than those of the old ones.
//!
//! The crate is a pure core with thin adapters around it:
//! - core (no Kubernetes, no HTTP): [`duration`], [`template`], [`rules`], [`stats`],
//!   [`source`] (the metric-source trait), [`judge`], [`decision`], [`evaluate`], [`backtest`],
//!   [`phplog`] (PHP errors parsed from container logs);
//! - the controller's core (plain functions over Kubernetes objects, no client): [`rollout`]
//!   (new and old ReplicaSets, phase), [`guard`] (the per-revision policy), [`annotations`],
//!   [`config`], [`status`] (what became of a release, for `rollout-guard status`);
//! - adapters: [`prometheus`] (the metric source over HTTP), [`podlogs`] (pod logs read through
//!   the Kubernetes API, for `logs` rules), [`controller`] (kube watches and reconcile),
//!   [`actions`] (writes to Deployments, Events), [`leader`] (the Lease), [`telemetry`] (metrics
//!   and health over HTTP), [`records`] (the decision log);
//! - assemblies: [`daemon`] (`run`), [`demo`] (`demo`: the daemon against the fake API server);
//! - simulation adapters: [`simulate`] (simulated rollouts' metrics and logs, and the example
//!   service's manifests and releases through kube), [`fakeapi`] (an in-process fake Kubernetes
//!   API server with a simulated Deployment controller, for the end-to-end tests, the cost
//!   benchmark and the demo);
//! - the post-incident report: [`report`] (decision records in, Markdown or HTML out; pure);
//! - the command line: [`cli`], used by the thin `main.rs`; [`errors`]: error messages for
//!   people, each cause said once.

pub mod actions;
pub mod annotations;
pub mod backtest;
pub mod cli;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod decision;
pub mod demo;
pub mod duration;
pub mod errors;
pub mod evaluate;
pub mod fakeapi;
pub mod guard;
pub mod judge;
pub mod leader;
pub mod phplog;
pub mod podlogs;
pub mod prometheus;
pub mod records;
pub mod report;
pub mod rollout;
pub mod rules;
pub mod simulate;
pub mod source;
pub mod stats;
pub mod status;
pub mod telemetry;
pub mod template;
