//! rollout-guard watches Kubernetes rollouts of PHP services and pauses or rolls back a plain
//! Deployment when the pods of its new ReplicaSet are worse than those of the old ones.
//!
//! A pure core and a thin shell, one folder per layer; each layer may use those above it in
//! this list, never those below:
//! - [`analysis`]: the judgement, rules → queries → samples → statistics → verdict → decision,
//!   plain functions over plain data (no Kubernetes, no HTTP, no clock of its own), shared by
//!   `run`, `backtest`, `demo` and the benchmarks;
//! - [`policy`]: the per-Deployment state machine over a plain view of the rollout (which
//!   ReplicaSet is new, which are old), its annotations and memory: pure;
//! - [`adapters`]: Prometheus over HTTP, pod logs through the Kubernetes API, the daemon's own
//!   metrics and health endpoints;
//! - [`controller`]: the kube runtime loop, the reading of `apps/v1` objects into the policy's
//!   view, the actuator (JSON patches, Events), leader election;
//! - [`records`] (the decision log) and [`report`] (records in, Markdown or HTML out; pure);
//! - [`app`]: the command line, the configuration, the daemon's wiring, the demo;
//! - [`sim`] (the `sim` feature, on by default): the fake Kubernetes API server and the
//!   simulated PHP service, for the tests, the benchmarks and the demo; left out of the image.
//!
//! `tests/layers.rs` fails when `analysis` or `policy` names Kubernetes, HTTP or I/O crates.
//! Every public item is documented and nothing is `pub` that the crate root cannot reach
//! (`deny(missing_docs, unreachable_pub)`).

#![deny(unreachable_pub, missing_docs)]
pub mod adapters;
pub mod analysis;
pub mod app;
pub mod controller;
pub mod policy;
pub mod records;
pub mod report;
#[cfg(feature = "sim")]
pub mod sim;
