//! The outside world the analysis reads from and the daemon answers on: Prometheus over HTTP
//! ([`prometheus`]), `apps/v1` objects read into the policy's view of a rollout
//! ([`kubernetes`]), pod logs through the Kubernetes API for `logs` rules ([`podlogs`]), and
//! the daemon's own metrics and health endpoints ([`telemetry`]); and [`errors`], a transport
//! error's causes said once each.
//!
//! Owns transport, limits and the translation of answers into the analysis' samples. Must not
//! judge anything nor decide what to do with a Deployment.

pub(crate) mod errors;
pub mod kubernetes;
pub mod notify;
pub mod podlogs;
pub mod prometheus;
pub mod telemetry;
