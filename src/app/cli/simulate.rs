//! `rollout-guard simulate` (the `sim` feature): a simulated PHP rollout's metrics written as
//! OpenMetrics for a real Prometheus, and the arguments to replay it with `backtest`.
//!
//! Owns the stories the command tells. The simulation itself is `sim::simulate`'s; this file
//! only chooses a scenario and writes its history.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use jiff::Timestamp;

use crate::sim::simulate::{Fault, Gate, Incident, Noise, Scenario, generate};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// What the new release does.
    #[arg(long, value_enum, default_value_t = Story::ClassErrors)]
    pub scenario: Story,
    /// Random seed; the same seed gives the same history.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder of NAB traces (CSV) and their anomaly windows (a source checkout has them in
    /// tests/data/nab).
    #[arg(long)]
    pub nab: PathBuf,
    /// Where to write the OpenMetrics text.
    #[arg(long)]
    pub openmetrics: PathBuf,
}

/// The stories `simulate` can tell: a canary paused for 10 minutes after its first new pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Story {
    /// Nothing wrong.
    Healthy,
    /// 1% of the new pods' requests hit `Class "..." not found`.
    ClassErrors,
    /// The new pods need three times the CPU per request and saturate.
    CpuSaturation,
    /// The new pods' PHP error rate is five times the old.
    ErrorRate,
    /// A database outage raises errors on old and new pods alike.
    SharedIncident,
    /// Half a request per second per pod.
    LowTraffic,
}

/// The scenario of a story.
pub(super) fn story(story: Story, seed: u64) -> Scenario {
    let mut s = Scenario::healthy(&format!("{story:?}"), seed);
    s.gate = Some(Gate {
        pods: 1,
        seconds: 600.0,
    });
    match story {
        Story::Healthy => {}
        Story::ClassErrors => s.fault = Fault::ClassErrors { fraction: 0.01 },
        Story::CpuSaturation => {
            s.cpu_per_request = 0.02;
            s.fault = Fault::Cpu { multiplier: 3.0 };
        }
        Story::ErrorRate => s.fault = Fault::ErrorRate { multiplier: 5.0 },
        Story::SharedIncident => {
            s.incident = Some(Incident {
                starts_after: 120.0,
                seconds: 240.0,
                extra_error_rate: 0.03,
                cpu_multiplier: 1.0,
                recovery_seconds: 0.0,
            })
        }
        Story::LowTraffic => s.rps_per_pod = 0.5,
    }
    s
}

/// Writes the story's metrics as OpenMetrics and prints the arguments of its backtest.
pub(super) fn run(args: &SimulateArgs) -> Result<ExitCode> {
    let noise = Noise::load_dir(&args.nab)
        .map_err(|e| anyhow::anyhow!("cannot load the NAB traces: {e}"))?;
    let scenario = story(args.scenario, args.seed);
    let history = generate(&scenario, &noise);
    std::fs::write(&args.openmetrics, history.to_openmetrics().render())
        .with_context(|| format!("cannot write {}", args.openmetrics.display()))?;
    let time = |t: f64| {
        Timestamp::from_second(t as i64)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    println!("NAMESPACE={}", scenario.namespace);
    println!("DEPLOYMENT={}", scenario.deployment);
    println!("OLD_REPLICASET={}", history.old_replicaset);
    println!("NEW_REPLICASET={}", history.new_replicaset);
    println!("FROM={}", time(scenario.rollout_start()));
    println!("TO={}", time(scenario.gate_end()));
    Ok(ExitCode::SUCCESS)
}
