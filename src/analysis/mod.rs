//! The judgement: rule files and their PromQL templates, the metric-source trait and its
//! samples, the statistics, one verdict per rule, the decision over verdicts, `backtest`, and
//! PHP errors parsed from container logs.
//!
//! Owns everything between a rule and a decision. Must not touch Kubernetes, HTTP or a clock of
//! its own: observations come in through [`source::MetricSource`] and the time is passed in.

pub mod backtest;
pub mod decision;
pub mod duration;
pub mod evaluate;
pub mod judge;
pub mod phplog;
pub(crate) mod preflight;
pub mod rules;
pub mod source;
pub mod stats;
pub mod template;
pub mod time;
