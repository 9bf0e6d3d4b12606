//! The test rig, compiled only with the `sim` feature (on by default, off in the image): an
//! in-process fake Kubernetes API server with a simulated Deployment controller
//! ([`fakeapi`]), and simulated PHP rollouts with NAB noise ([`simulate`]).
//!
//! Owns everything that pretends. Nothing outside `sim`, the demo and the tests may depend on
//! it; it may use every other layer.

pub mod fakeapi;
pub mod simulate;
