//! The program: the command line ([`cli`]), the configuration ([`config`]), how it reaches the
//! cluster ([`cluster`]), the daemon's
//! wiring of the layers for `run` ([`daemon`]), the demo against the simulated cluster
//! ([`demo`], with the `sim` feature).
//!
//! Owns start-up, reloading, shutdown and what is printed. Must not hold judgement or policy
//! of its own: it composes the other layers.

pub mod cli;
pub(crate) mod cluster;
pub mod config;
pub mod daemon;
#[cfg(feature = "sim")]
pub(crate) mod demo;
