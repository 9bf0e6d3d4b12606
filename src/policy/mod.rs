//! What the controller should do with one Deployment: the plain view of its rollout
//! ([`rollout`]), the per-revision state machine and its memory ([`guard`]), the annotations
//! people set and the controller writes ([`annotations`]), and what became of a release
//! ([`status`]).
//!
//! Owns the policy. Must not touch Kubernetes objects or clients (the controller reads those
//! into a [`rollout::RolloutView`]), HTTP or a clock: pure functions over plain data.

pub mod annotations;
pub mod guard;
pub(crate) mod rollout;
pub(crate) mod status;
