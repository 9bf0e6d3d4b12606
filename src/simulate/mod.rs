//! A simulated PHP service rolling out: per-pod request, error and CPU counters for an old and
//! a new ReplicaSet, with real noise from NAB traces and faults injected on purpose.
//!
//! Owns the scenario model and the generator. Used by the detection benchmark (through
//! [`SimSource`], which answers the default rules' queries from a [`History`]), by the
//! integration tests (which load the same history into a real Prometheus), and later by the
//! demo. Pure: the caller supplies the noise traces and a seed, and gets the same history back
//! every time.

pub mod live;
mod nab;
mod openmetrics;
pub mod service;
mod source;

pub use nab::{Noise, Trace, TraceError, parse_windows};
pub use openmetrics::OpenMetrics;
pub use source::SimSource;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Poisson};
use serde::{Deserialize, Serialize};

/// Scrape interval of the simulated Prometheus, in seconds.
pub const SCRAPE: f64 = 15.0;

/// The `type` label values of `php_errors_total`.
pub const ERROR_TYPES: [&str; 6] = [
    "class_not_found",
    "interface_not_found",
    "trait_not_found",
    "failed_opening_required",
    "warning",
    "uncaught_exception",
];

/// What is wrong with the new release, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    None,
    /// This fraction of the new pods' requests fail to load a class.
    ClassErrors {
        fraction: f64,
    },
    /// The new pods' PHP error rate is this many times the old.
    ErrorRate {
        multiplier: f64,
    },
    /// The new pods need this many times the CPU per request (saturating when demand passes the
    /// limit).
    Cpu {
        multiplier: f64,
    },
}

/// New pods burning extra CPU while they warm up (opcache priming).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    pub seconds: f64,
    pub cpu_multiplier: f64,
}

/// Something that hits old and new pods alike (a database outage, a traffic surge).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Seconds after the rollout starts.
    pub starts_after: f64,
    pub seconds: f64,
    /// Errors per request added on every pod.
    pub extra_error_rate: f64,
    /// CPU demand multiplier on every pod.
    pub cpu_multiplier: f64,
}

/// A canary gate: the rollout stops after its first new pods for an analysis, then goes on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// New pods started before the pause.
    pub pods: usize,
    /// Length of the pause, in seconds.
    pub seconds: f64,
}

/// One simulated rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub namespace: String,
    pub deployment: String,
    /// Unix seconds where the history begins.
    pub start: f64,
    /// Seconds of history before the rollout starts.
    pub before: f64,
    /// Seconds of history after the last old pod is gone.
    pub bake: f64,
    pub replicas: usize,
    /// Seconds between successive new pods (maxSurge 1, maxUnavailable 0).
    pub pod_interval: f64,
    /// Mean requests per second per pod.
    pub rps_per_pod: f64,
    /// PHP errors per request on every pod (warnings, uncaught exceptions).
    pub base_error_rate: f64,
    /// Gamma shape of each pod's error-rate multiplier per scrape; smaller is burstier.
    pub error_burstiness: f64,
    /// CPU seconds per request.
    pub cpu_per_request: f64,
    /// CPU cores used by an idle pod.
    pub idle_cpu: f64,
    /// CPU limit per pod, in cores.
    pub cpu_limit: f64,
    /// Amplitude of the deployment-wide CPU pattern, one NAB CPU trace shared by every pod (what
    /// load and shared dependencies do to all of them): 0 = flat, 1 = the trace's own swings.
    pub cpu_noise: f64,
    /// Amplitude of each pod's own NAB CPU trace (noisy neighbours, uneven balancing), drawn
    /// from the traces of machines under steady load ([`Trace::is_steady`]).
    pub pod_cpu_noise: f64,
    pub fault: Fault,
    pub warmup: Option<Warmup>,
    pub incident: Option<Incident>,
    /// Pause after the first new pods (gate mode); `None` for a natural rollout (guard mode).
    pub gate: Option<Gate>,
}

impl Scenario {
    /// A healthy, mid-traffic rollout to start from.
    pub fn healthy(name: &str, seed: u64) -> Scenario {
        Scenario {
            name: name.to_string(),
            seed,
            namespace: "shop".into(),
            deployment: "web".into(),
            start: 1_795_168_800.0, // 2026-11-20T10:00:00Z
            before: 600.0,
            bake: 600.0,
            replicas: 6,
            pod_interval: 60.0,
            rps_per_pod: 20.0,
            base_error_rate: 0.002,
            error_burstiness: 2.0,
            cpu_per_request: 0.015,
            idle_cpu: 0.03,
            cpu_limit: 1.0,
            cpu_noise: 0.3,
            pod_cpu_noise: 1.0,
            fault: Fault::None,
            warmup: None,
            incident: None,
            gate: None,
        }
    }

    /// Unix seconds when the first new pod starts (and the fault, if any, begins).
    pub fn rollout_start(&self) -> f64 {
        self.start + self.before
    }

    /// Unix seconds when the `i`-th new pod starts (0-based); `i = replicas` is when the last
    /// old pod is gone.
    pub fn new_pod_start(&self, i: usize) -> f64 {
        let pause = match self.gate {
            Some(g) if i >= g.pods.max(1) => g.seconds,
            _ => 0.0,
        };
        self.rollout_start() + i as f64 * self.pod_interval + pause
    }

    /// Unix seconds when the gate's pause ends (the rollout start without a gate).
    pub fn gate_end(&self) -> f64 {
        match self.gate {
            Some(g) => self.rollout_start() + g.pods.max(1) as f64 * self.pod_interval + g.seconds,
            None => self.rollout_start(),
        }
    }

    /// Unix seconds when the last old pod is gone.
    pub fn rollout_end(&self) -> f64 {
        self.new_pod_start(self.replicas)
    }

    /// Unix seconds where the history ends.
    pub fn end(&self) -> f64 {
        self.rollout_end() + self.bake
    }

    /// The old and new ReplicaSet names (derived from the seed, like a pod-template-hash).
    pub fn replicasets(&self) -> (String, String) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5eed);
        (
            format!("{}-{}", self.deployment, suffix(&mut rng, 10)),
            format!("{}-{}", self.deployment, suffix(&mut rng, 10)),
        )
    }
}

/// The characters Kubernetes uses for generated name suffixes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn suffix(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// One pod's counters, one sample per [`SCRAPE`] from `start`.
#[derive(Clone, Debug, PartialEq)]
pub struct PodHistory {
    pub name: String,
    pub replicaset: String,
    pub new: bool,
    /// Unix seconds of the first sample.
    pub start: f64,
    /// Cumulative requests.
    pub requests: Vec<f64>,
    /// Cumulative errors by [`ERROR_TYPES`] index.
    pub errors: Vec<[f64; ERROR_TYPES.len()]>,
    /// Cumulative CPU seconds.
    pub cpu_seconds: Vec<f64>,
    pub cfs_periods: Vec<f64>,
    pub cfs_throttled: Vec<f64>,
    pub cpu_limit: f64,
}

impl PodHistory {
    /// Unix seconds of the last sample.
    pub fn end(&self) -> f64 {
        self.start + (self.requests.len().saturating_sub(1)) as f64 * SCRAPE
    }

    /// Index of the last sample at or before `t`, if the pod was there.
    pub fn index_at(&self, t: f64) -> Option<usize> {
        if t + 1e-6 < self.start || self.requests.is_empty() {
            return None;
        }
        let i = ((t - self.start) / SCRAPE + 1e-6).floor() as usize;
        (i < self.requests.len()).then_some(i)
    }
}

/// The generated history of one scenario.
#[derive(Clone, Debug)]
pub struct History {
    pub scenario: Scenario,
    pub old_replicaset: String,
    pub new_replicaset: String,
    pub pods: Vec<PodHistory>,
}

/// Generates the history of a scenario. The same scenario and noise give the same history.
pub fn generate(scenario: &Scenario, noise: &Noise) -> History {
    let s = scenario;
    let mut rng = StdRng::seed_from_u64(s.seed);
    let (old_rs, new_rs) = s.replicasets();
    let r0 = s.rollout_start();
    let end = s.end();
    let ticks_total = ((end - s.start) / SCRAPE).floor() as usize + 1;
    let trace_len = ((end - s.start) / nab::TRACE_STEP).ceil() as usize + 2;

    // Shared load pattern from the request-count trace, shared CPU pattern from a CPU trace.
    let load = pick_segment(&noise.requests, &mut rng, trace_len);
    let shared_cpu = pick_segment(&noise.cpu, &mut rng, trace_len);

    struct Plan {
        name: String,
        new: bool,
        start: f64,
        end: f64,
        factor: f64,
        noise: Vec<f64>,
    }
    let pod_factor = LogNormal::new(0.0, 0.05).expect("valid lognormal");
    let steady: Vec<Trace> = noise
        .cpu
        .iter()
        .filter(|t| t.is_steady())
        .cloned()
        .collect();
    let mut plans = Vec::new();
    for i in 0..s.replicas {
        plans.push(Plan {
            name: format!("{old_rs}-{}", suffix(&mut rng, 5)),
            new: false,
            start: s.start,
            end: s.new_pod_start(i + 1) - SCRAPE,
            factor: pod_factor.sample(&mut rng),
            noise: pick_segment(&steady, &mut rng, trace_len),
        });
    }
    for i in 0..s.replicas {
        plans.push(Plan {
            name: format!("{new_rs}-{}", suffix(&mut rng, 5)),
            new: true,
            start: s.new_pod_start(i),
            end,
            factor: pod_factor.sample(&mut rng),
            noise: pick_segment(&steady, &mut rng, trace_len),
        });
    }

    let mut pods: Vec<PodHistory> = plans
        .iter()
        .map(|p| PodHistory {
            name: p.name.clone(),
            replicaset: if p.new {
                new_rs.clone()
            } else {
                old_rs.clone()
            },
            new: p.new,
            start: align(p.start, s.start),
            requests: Vec::new(),
            errors: Vec::new(),
            cpu_seconds: Vec::new(),
            cfs_periods: Vec::new(),
            cfs_throttled: Vec::new(),
            cpu_limit: s.cpu_limit,
        })
        .collect();

    let burst = Gamma::new(
        s.error_burstiness.max(0.05),
        1.0 / s.error_burstiness.max(0.05),
    )
    .expect("valid gamma");
    for k in 0..ticks_total {
        let t = s.start + k as f64 * SCRAPE;
        let live: Vec<usize> = (0..plans.len())
            .filter(|&i| t + 1e-6 >= pods[i].start && t <= plans[i].end + 1e-6)
            .collect();
        if live.is_empty() {
            continue;
        }
        let total_rps =
            s.replicas as f64 * s.rps_per_pod * interpolate(&load, (t - s.start) / nab::TRACE_STEP);
        let rps = total_rps / live.len() as f64;
        let incident = s
            .incident
            .filter(|i| t >= r0 + i.starts_after && t < r0 + i.starts_after + i.seconds);
        for &i in &live {
            let plan = &plans[i];
            let pod = &mut pods[i];
            let requests = poisson(&mut rng, rps * SCRAPE);
            // Errors.
            let mut rate = s.base_error_rate;
            if plan.new
                && let Fault::ErrorRate { multiplier } = s.fault
            {
                rate *= multiplier;
            }
            rate *= burst.sample(&mut rng);
            if let Some(inc) = incident {
                rate += inc.extra_error_rate;
            }
            let mut errs = [0.0; ERROR_TYPES.len()];
            let base = poisson(&mut rng, requests * rate.min(1.0));
            let warnings = (base * 0.6).round();
            errs[4] = warnings;
            errs[5] = base - warnings;
            if plan.new
                && let Fault::ClassErrors { fraction } = s.fault
            {
                let n = poisson(&mut rng, requests * fraction);
                // Mostly classes, some interfaces and traits, as a removed library shows.
                let interfaces = (n * 0.1).floor();
                let traits = (n * 0.1).floor();
                errs[0] = n - interfaces - traits;
                errs[1] = interfaces;
                errs[2] = traits;
            }
            // CPU.
            let age = t - pod.start;
            let mut demand = rps * s.cpu_per_request * plan.factor;
            let x = (t - s.start) / nab::TRACE_STEP;
            // A healthy service keeps headroom: its own load pattern moves it within ×0.5-×1.6
            // (shared overloads are modelled as incidents).
            demand *= (1.0 + s.cpu_noise * (interpolate(&shared_cpu, x) - 1.0)).clamp(0.5, 1.6);
            demand *= 1.0 + s.pod_cpu_noise * (interpolate(&plan.noise, x) - 1.0);
            demand = demand.max(0.0) + s.idle_cpu;
            if plan.new {
                if let Fault::Cpu { multiplier } = s.fault {
                    demand *= multiplier;
                }
                if let Some(w) = s.warmup
                    && age < w.seconds
                {
                    demand *= w.cpu_multiplier;
                }
            }
            if let Some(inc) = incident {
                demand *= inc.cpu_multiplier;
            }
            let usage = demand.min(s.cpu_limit);
            let periods = 10.0 * SCRAPE;
            let throttled = (periods * throttle_fraction(demand / s.cpu_limit)).round();

            let last = |v: &Vec<f64>| v.last().copied().unwrap_or(0.0);
            pod.requests.push(last(&pod.requests) + requests);
            let prev = pod
                .errors
                .last()
                .copied()
                .unwrap_or([0.0; ERROR_TYPES.len()]);
            let mut cum = prev;
            for (c, e) in cum.iter_mut().zip(errs) {
                *c += e;
            }
            pod.errors.push(cum);
            pod.cpu_seconds
                .push(last(&pod.cpu_seconds) + usage * SCRAPE);
            pod.cfs_periods.push(last(&pod.cfs_periods) + periods);
            pod.cfs_throttled.push(last(&pod.cfs_throttled) + throttled);
        }
    }
    History {
        scenario: s.clone(),
        old_replicaset: old_rs,
        new_replicaset: new_rs,
        pods,
    }
}

/// Rounds a pod's start up to the next scrape of the history's clock.
fn align(t: f64, origin: f64) -> f64 {
    origin + ((t - origin) / SCRAPE - 1e-9).ceil() * SCRAPE
}

/// Share of CFS periods throttled at a given demand / limit: none at low load, a little as
/// bursts meet the quota, most of them once demand passes it.
pub fn throttle_fraction(x: f64) -> f64 {
    let below = ((x - 0.6) / 0.4).clamp(0.0, 1.0);
    let over = (x - 1.0).clamp(0.0, 0.5);
    (0.3 * below * below + over).min(0.95)
}

pub(crate) fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    if mean <= 0.0 || !mean.is_finite() {
        return 0.0;
    }
    Poisson::new(mean)
        .map(|p| p.sample(rng))
        .unwrap_or(mean.round())
}

/// A healthy segment of a random trace, or a flat one if none has such a segment.
fn pick_segment(traces: &[Trace], rng: &mut StdRng, len: usize) -> Vec<f64> {
    if traces.is_empty() {
        return vec![1.0; len];
    }
    for _ in 0..8 {
        let trace = &traces[rng.random_range(0..traces.len())];
        if let Some(seg) = trace.healthy_segment(rng, len) {
            return seg;
        }
    }
    vec![1.0; len]
}

/// Linear interpolation of a 5-minute trace at a fractional index.
fn interpolate(seg: &[f64], x: f64) -> f64 {
    if seg.is_empty() {
        return 1.0;
    }
    let x = x.clamp(0.0, (seg.len() - 1) as f64);
    let i = x.floor() as usize;
    let j = (i + 1).min(seg.len() - 1);
    seg[i] + (x - i as f64) * (seg[j] - seg[i])
}

impl History {
    /// Every sample as Prometheus would scrape it: metric name, labels, unix seconds, value.
    /// An error counter of a type appears from its pod's first error of that type on, as real
    /// counters with a `type` label do.
    pub fn for_each_sample(&self, mut f: impl FnMut(&str, &[(&str, &str)], f64, f64)) {
        let ns = self.scenario.namespace.as_str();
        for pod in &self.pods {
            let name = pod.name.as_str();
            let pod_labels = [("namespace", ns), ("pod", name)];
            let container = [("namespace", ns), ("pod", name), ("container", "php")];
            let limit = [
                ("namespace", ns),
                ("pod", name),
                ("container", "php"),
                ("resource", "cpu"),
                ("unit", "core"),
            ];
            for i in 0..pod.requests.len() {
                let t = pod.start + i as f64 * SCRAPE;
                f("php_requests_total", &pod_labels, t, pod.requests[i]);
                for (k, ty) in ERROR_TYPES.iter().enumerate() {
                    if pod.errors[i][k] > 0.0 {
                        f(
                            "php_errors_total",
                            &[("namespace", ns), ("pod", name), ("type", ty)],
                            t,
                            pod.errors[i][k],
                        );
                    }
                }
                f(
                    "container_cpu_usage_seconds_total",
                    &container,
                    t,
                    pod.cpu_seconds[i],
                );
                f(
                    "container_cpu_cfs_periods_total",
                    &container,
                    t,
                    pod.cfs_periods[i],
                );
                f(
                    "container_cpu_cfs_throttled_periods_total",
                    &container,
                    t,
                    pod.cfs_throttled[i],
                );
                f(
                    "kube_pod_container_resource_limits",
                    &limit,
                    t,
                    pod.cpu_limit,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
