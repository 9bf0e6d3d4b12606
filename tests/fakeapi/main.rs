//! The fake API server, driven through the real `kube` client over HTTP: the API's verbs and
//! errors, watches, events, leader election, the simulated rollouts and pod logs.

mod api;
mod common;
mod events;
mod lease;
mod logs;
mod rollout;
mod watch;
