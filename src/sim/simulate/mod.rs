//! A simulated PHP service rolling out: per-pod request, error and CPU counters for an old and
//! a new ReplicaSet, with real noise from NAB traces and faults injected on purpose.
//!
//! Owns the scenario model and the generator. Used by the detection benchmark (through
//! [`SimSource`], which answers the default rules' queries from a [`History`]), by the
//! integration tests (which load the same history into a real Prometheus), and later by the
//! demo. Pure: the caller supplies the noise traces and a seed, and gets the same history back
//! every time.

mod generate;
pub mod live;
mod nab;
mod openmetrics;
mod promql;
mod schedule;
pub mod service;
mod source;

pub(crate) use generate::poisson;
pub use generate::{generate, throttle_fraction};
pub use nab::{Noise, Trace, TraceError, parse_windows};
pub use openmetrics::OpenMetrics;
pub use schedule::Timetable;
pub use source::SimSource;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
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
    /// A healthy release: the new pods behave as the old.
    None,
    /// This fraction of the new pods' requests fail to load a class.
    ClassErrors {
        /// The share of requests, from 0 to 1.
        fraction: f64,
    },
    /// The new pods' PHP error rate is this many times the old.
    ErrorRate {
        /// The factor on the old pods' error rate.
        multiplier: f64,
    },
    /// The new pods need this many times the CPU per request (saturating when demand passes the
    /// limit).
    Cpu {
        /// The factor on the CPU per request.
        multiplier: f64,
    },
}

/// A container restarting inside its pod (an OOM kill, a crash): the pod's counters start again
/// from zero at its first scrape `after` seconds past its own first; a restart past the pod's
/// last scrape does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    /// A new pod's restart, or an old pod's.
    pub new: bool,
    /// Which of that side's pods, in order of their start (wrapping around).
    pub pod: usize,
    /// Seconds after the pod's first scrape.
    pub after: f64,
}

/// New pods burning extra CPU while they warm up (opcache priming), and perhaps failing some
/// requests meanwhile (cold caches, connection pools still filling).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    /// How long it lasts from each new pod's start, in seconds.
    pub seconds: f64,
    /// The factor on the pod's CPU demand meanwhile: all of it for `seconds` when
    /// `decay_seconds` is 0, else at the pod's start, its excess falling by e every
    /// `decay_seconds` (caches filling ever more slowly).
    pub cpu_multiplier: f64,
    /// The time constant of the excess' fall, in seconds; 0 for one that holds until its end.
    #[serde(default)]
    pub decay_seconds: f64,
    /// Errors per request added meanwhile, of the ordinary kinds (warnings and errors, no
    /// class-loading ones): every release's pods do it, so it is no regression.
    #[serde(default)]
    pub error_rate: f64,
}

impl Warmup {
    /// The factor on a pod's CPU demand at `age` seconds.
    pub fn cpu_factor(&self, age: f64) -> f64 {
        if age >= self.seconds {
            1.0
        } else if self.decay_seconds > 0.0 {
            1.0 + (self.cpu_multiplier - 1.0) * (-age / self.decay_seconds).exp()
        } else {
            self.cpu_multiplier
        }
    }
}

/// Something that hits old and new pods alike (a database outage, a traffic surge).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Seconds after the rollout starts.
    pub starts_after: f64,
    /// How long it lasts, in seconds.
    pub seconds: f64,
    /// Errors per request added on every pod.
    pub extra_error_rate: f64,
    /// CPU demand multiplier on every pod.
    pub cpu_multiplier: f64,
    /// Seconds after `seconds` over which the incident fades, its added errors and CPU
    /// falling linearly to none (a connection pool refilling, a cache warming again); 0 for
    /// one that ends at once.
    #[serde(default)]
    pub recovery_seconds: f64,
}

impl Incident {
    /// How much of the incident is under way at `t`, for a rollout that started at `r0`: 1
    /// while it lasts, falling linearly to 0 over its recovery, 0 before and after.
    pub fn strength(&self, t: f64, r0: f64) -> f64 {
        let begin = r0 + self.starts_after;
        let end = begin + self.seconds;
        if t < begin || t >= end + self.recovery_seconds {
            0.0
        } else if t < end {
            1.0
        } else {
            1.0 - (t - end) / self.recovery_seconds
        }
    }

    /// The CPU demand multiplier at `strength`: the whole of it at full strength.
    pub fn cpu_multiplier_at(&self, strength: f64) -> f64 {
        if strength >= 1.0 {
            self.cpu_multiplier
        } else {
            1.0 + (self.cpu_multiplier - 1.0) * strength
        }
    }
}

/// A canary gate: the rollout stops after its first new pods for an analysis, then goes on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// New pods started before the pause.
    pub pods: usize,
    /// Length of the pause, in seconds.
    pub seconds: f64,
}

fn one() -> usize {
    1
}

fn default_level_sigma() -> f64 {
    0.05
}

/// One simulated rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Names it in benchmark tables and test messages.
    pub name: String,
    /// Seeds every random draw, and the ReplicaSet names: the same seed gives the same history.
    pub seed: u64,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name, the prefix of its ReplicaSets'.
    pub deployment: String,
    /// Unix seconds where the history begins.
    pub start: f64,
    /// Seconds of history before the rollout starts.
    pub before: f64,
    /// Seconds of history after the last old pod is gone.
    pub bake: f64,
    /// Seconds of history generated after the bake, for a judge that goes on looking while a
    /// rule's streak is under way or its pass not settled at the bake's end (the controller's
    /// bake extension): the new pods, the fault and the noise carry on. The NAB segments are
    /// drawn as without it (they reach 5 minutes past the bake's end and hold their last value
    /// after that: load and CPU flat for the rest of a longer tail), and the tail's scrapes are
    /// drawn after all others, so a tail changes no other draw. Everything measured "at the
    /// end of the bake" ends before it.
    #[serde(default)]
    pub tail: f64,
    /// Containers restarting inside their pods: each starts its counters again from zero, and
    /// an error counter created at its first error is absent until the pod's next error (see
    /// [`Restart`]). Applied after every draw, so restarts change no other sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<Restart>,
    /// The Deployment's replicas: the old pods before the rollout, the new ones after.
    pub replicas: usize,
    /// Seconds from a new pod's start to its readiness: the time between the rolling update's
    /// steps (one pod a step with maxSurge 1 and maxUnavailable 0).
    pub pod_interval: f64,
    /// The Deployment's `maxSurge`, in pods (1 when left out; see [`Timetable`]).
    #[serde(default = "one")]
    pub max_surge: usize,
    /// The Deployment's `maxUnavailable`, in pods (0 when left out).
    #[serde(default)]
    pub max_unavailable: usize,
    /// Each pod is scraped at its own offset of 1 to 14 s into the 15-s scrape interval, as
    /// Prometheus spreads its targets, rather than on the history's clock: queries at whole
    /// steps then never find a sample on a range's edge.
    #[serde(default)]
    pub scrape_offsets: bool,
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
    /// Whether a pod's own CPU trace may include NAB's labelled anomaly windows (a neighbour
    /// gone wild) rather than only the healthy stretches.
    #[serde(default)]
    pub pod_cpu_anomalies: bool,
    /// σ of each pod's CPU-per-request level, a LogNormal(0, σ) factor (the node it landed on).
    #[serde(default = "default_level_sigma")]
    pub pod_level_sigma: f64,
    /// `class_not_found` errors per request on every pod, old and new, from the start of the
    /// history (a class some rarely used path still references, in both versions).
    #[serde(default)]
    pub background_class_rate: f64,
    /// What is wrong with the new release.
    pub fault: Fault,
    /// Extra CPU on new pods while they warm up; `None` for none.
    pub warmup: Option<Warmup>,
    /// Trouble hitting old and new pods alike during the rollout; `None` for none.
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
            tail: 0.0,
            restarts: Vec::new(),
            replicas: 6,
            pod_interval: 60.0,
            max_surge: 1,
            max_unavailable: 0,
            scrape_offsets: false,
            rps_per_pod: 20.0,
            base_error_rate: 0.002,
            error_burstiness: 2.0,
            cpu_per_request: 0.015,
            idle_cpu: 0.03,
            cpu_limit: 1.0,
            cpu_noise: 0.3,
            pod_cpu_noise: 1.0,
            pod_cpu_anomalies: false,
            pod_level_sigma: default_level_sigma(),
            background_class_rate: 0.0,
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

    /// When each pod starts and goes ([`Timetable`]).
    pub fn timetable(&self) -> Timetable {
        schedule::timetable(self)
    }

    /// Unix seconds when the `i`-th new pod starts (0-based); `i = replicas` is when the last
    /// old pod is gone.
    pub fn new_pod_start(&self, i: usize) -> f64 {
        let t = self.timetable();
        t.new_starts
            .get(i)
            .copied()
            .unwrap_or_else(|| t.rollout_end())
    }

    /// Unix seconds when the gate's hold ends (the rollout start without a gate).
    pub fn gate_end(&self) -> f64 {
        self.timetable().gate_end
    }

    /// Unix seconds when the last old pod is gone.
    pub fn rollout_end(&self) -> f64 {
        self.timetable().rollout_end()
    }

    /// Unix seconds where the bake ends.
    pub fn end(&self) -> f64 {
        self.rollout_end() + self.bake
    }

    /// Unix seconds where the history ends: the bake's end and the [`Scenario::tail`].
    pub fn history_end(&self) -> f64 {
        self.end() + self.tail
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

/// One pod's counters, one sample per [`SCRAPE`] from `start` (`NaN` at the scrapes a slower
/// scrape skips, see [`History::scraped_every`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PodHistory {
    /// The pod's name.
    pub name: String,
    /// Its ReplicaSet's name.
    pub replicaset: String,
    /// Whether it belongs to the new ReplicaSet.
    pub new: bool,
    /// Unix seconds of the first sample.
    pub start: f64,
    /// Cumulative requests.
    pub requests: Vec<f64>,
    /// Cumulative errors by [`ERROR_TYPES`] index.
    pub errors: Vec<[f64; ERROR_TYPES.len()]>,
    /// Cumulative CPU seconds.
    pub cpu_seconds: Vec<f64>,
    /// Cumulative CFS periods (`container_cpu_cfs_periods_total`).
    pub cfs_periods: Vec<f64>,
    /// Cumulative throttled CFS periods (`container_cpu_cfs_throttled_periods_total`).
    pub cfs_throttled: Vec<f64>,
    /// The pod's CPU limit, in cores.
    pub cpu_limit: f64,
    /// The samples at which its container had restarted, its counters counting from zero
    /// again (see [`Restart`]), in order.
    pub restarts: Vec<usize>,
}

impl PodHistory {
    /// Unix seconds of the last sample.
    pub fn end(&self) -> f64 {
        self.start + (self.requests.len().saturating_sub(1)) as f64 * SCRAPE
    }

    /// How many times its container had restarted by sample `i` (kube-state-metrics'
    /// `kube_pod_container_status_restarts_total`).
    pub fn restarts_until(&self, i: usize) -> usize {
        self.restarts.partition_point(|&k| k <= i)
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
    /// The scenario it was generated from.
    pub scenario: Scenario,
    /// The old ReplicaSet's name.
    pub old_replicaset: String,
    /// The new ReplicaSet's name.
    pub new_replicaset: String,
    /// Every pod's counters, old and new, including pods that left.
    pub pods: Vec<PodHistory>,
    /// The first scrape at which a new pod's fault-caused errors show (class-loading faults),
    /// in unix seconds: when the first bad errors become visible in the metric store.
    pub first_fault_error: Option<f64>,
}

impl History {
    /// The rollout as the controller sees it at unix second `t`: the old ReplicaSet with pods
    /// while it serves, then, once its pods are gone, as the generation that served before
    /// (`departed`).
    pub fn target_at(&self, t: f64) -> crate::analysis::evaluate::Target {
        let s = &self.scenario;
        let serving = t < s.rollout_end();
        let old = vec![self.old_replicaset.clone()];
        crate::analysis::evaluate::Target {
            namespace: s.namespace.clone(),
            deployment: s.deployment.clone(),
            new_replicaset: self.new_replicaset.clone(),
            old_replicasets: if serving { old.clone() } else { vec![] },
            departed: if serving { vec![] } else { old },
        }
    }

    /// The same history scraped every `n`-th [`SCRAPE`] only (`n` = 2: every 30 s, the
    /// Prometheus Operator's default; 4: every minute, Prometheus' own): each pod keeps every
    /// `n`-th sample from a phase of its own (a hash of its name), so a new pod's first sample
    /// comes up to `n` − 1 scrapes after it began, as a target's first scrape falls anywhere in
    /// its first interval; the scrapes between hold no sample (`NaN`, which the PromQL
    /// functions skip as Prometheus' ranges skip what is not there). The counters themselves
    /// are unchanged, so what happened (the oracle's counts) is the same.
    pub fn scraped_every(&self, n: usize) -> History {
        let mut h = self.clone();
        if n <= 1 {
            return h;
        }
        for pod in &mut h.pods {
            let phase = pod.name.bytes().fold(0usize, |a, b| {
                a.wrapping_mul(31).wrapping_add(usize::from(b))
            }) % n;
            let skipped = |i: usize| !(i + phase).is_multiple_of(n);
            for series in [
                &mut pod.requests,
                &mut pod.cpu_seconds,
                &mut pod.cfs_periods,
                &mut pod.cfs_throttled,
            ] {
                for (i, v) in series.iter_mut().enumerate() {
                    if skipped(i) {
                        *v = f64::NAN;
                    }
                }
            }
            for (i, e) in pod.errors.iter_mut().enumerate() {
                if skipped(i) {
                    *e = [f64::NAN; ERROR_TYPES.len()];
                }
            }
        }
        h
    }

    /// Every sample as Prometheus would scrape it: metric name, labels, unix seconds, value.
    /// An error counter of a type appears from its pod's first error of that type on, as real
    /// counters with a `type` label do. A scrape that did not happen ([`History::scraped_every`])
    /// has no sample of any series.
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
                if pod.requests[i].is_nan() {
                    continue;
                }
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
                f(
                    "kube_pod_container_status_restarts_total",
                    &container,
                    t,
                    pod.restarts_until(i) as f64,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
