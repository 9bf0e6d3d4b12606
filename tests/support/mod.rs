//! Shared helpers for the integration tests (`mod support;` in each test file).
pub mod cluster;
pub mod hostile;
pub mod prometheus;
pub mod rollout;
