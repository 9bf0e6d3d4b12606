//! The generator: a [`Scenario`] and the noise traces in, every pod's counters out.
//!
//! Owns the per-scrape model: requests from the shared NAB load pattern split over the pods
//! serving, PHP errors drawn per request with a Gamma-distributed burst factor, the fault's
//! extra errors on new pods, CPU from the requests with shared and per-pod NAB noise, CFS
//! throttling past the limit. Every random draw comes from the scenario's seed, in a fixed
//! order; draws for features a scenario does not use are never made, so adding a feature
//! leaves the histories of scenarios without it unchanged.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Poisson};

use super::{
    ERROR_TYPES, Fault, History, Incident, Noise, PodHistory, Restart, SCRAPE, Scenario, nab,
};
use super::{Trace, suffix};

/// One pod as planned before its samples are drawn.
struct Plan {
    name: String,
    new: bool,
    /// First scrape of the pod on the history's clock.
    start: f64,
    /// Last scrape of the pod on the history's clock.
    end: f64,
    /// Seconds its scrapes come after the history's clock.
    offset: f64,
    /// CPU-per-request level of the pod (its node).
    factor: f64,
    /// Its own CPU trace segment.
    noise: Vec<f64>,
}

/// What is shared by every pod of one history: the load and CPU patterns, the burst model.
struct World<'a> {
    s: &'a Scenario,
    load: Vec<f64>,
    shared_cpu: Vec<f64>,
    burst: Gamma<f64>,
}

/// One scrape interval's draws for one pod.
struct Draw {
    requests: f64,
    errors: [f64; ERROR_TYPES.len()],
    /// Errors the fault caused (class-loading faults only).
    fault_errors: f64,
    cpu_used: f64,
    throttled: f64,
}

/// CFS periods per scrape interval (100 ms each).
const PERIODS: f64 = 10.0 * SCRAPE;

/// Generates the history of a scenario. The same scenario and noise give the same history.
pub fn generate(scenario: &Scenario, noise: &Noise) -> History {
    let s = scenario;
    let mut rng = StdRng::seed_from_u64(s.seed);
    let (old_rs, new_rs) = s.replicasets();
    let end = s.end();
    let ticks_total = ((s.history_end() - s.start) / SCRAPE).floor() as usize + 1;
    // The segments as without a tail: they reach 5 minutes past the bake's end, and a longer
    // tail reads their last value (see `Scenario::tail`).
    let trace_len = ((end - s.start) / nab::TRACE_STEP).ceil() as usize + 2;

    // Shared load pattern from the request-count trace, shared CPU pattern from a CPU trace.
    let world = World {
        s,
        load: pick_segment(&noise.requests, &mut rng, trace_len, false),
        shared_cpu: pick_segment(&noise.cpu, &mut rng, trace_len, false),
        burst: Gamma::new(
            s.error_burstiness.max(0.05),
            1.0 / s.error_burstiness.max(0.05),
        )
        .expect("valid gamma"),
    };
    let plans = plans(s, noise, &mut rng, trace_len, (&old_rs, &new_rs));
    let mut pods: Vec<PodHistory> = plans
        .iter()
        .map(|p| PodHistory {
            name: p.name.clone(),
            replicaset: if p.new { &new_rs } else { &old_rs }.clone(),
            new: p.new,
            start: p.start + p.offset,
            requests: Vec::new(),
            errors: Vec::new(),
            cpu_seconds: Vec::new(),
            cfs_periods: Vec::new(),
            cfs_throttled: Vec::new(),
            cpu_limit: s.cpu_limit,
            restarts: Vec::new(),
        })
        .collect();

    let mut first_fault_error: Option<f64> = None;
    let mut faulty = vec![false; plans.len()];
    for k in 0..ticks_total {
        let t = s.start + k as f64 * SCRAPE;
        let live: Vec<usize> = (0..plans.len())
            .filter(|&i| t + 1e-6 >= plans[i].start && t <= plans[i].end + 1e-6)
            .collect();
        if live.is_empty() {
            continue;
        }
        let total_rps = s.replicas as f64
            * s.rps_per_pod
            * interpolate(&world.load, (t - s.start) / nab::TRACE_STEP);
        let rps = total_rps / live.len() as f64;
        for &i in &live {
            let d = world.draw(&mut rng, &plans[i], t, rps);
            push(&mut pods[i], &d);
            if d.fault_errors > 0.0 && !faulty[i] {
                // The first scrape that shows this pod's fault errors.
                faulty[i] = true;
                let stamp = t + plans[i].offset;
                first_fault_error = Some(first_fault_error.map_or(stamp, |f: f64| f.min(stamp)));
            }
        }
    }
    for r in &s.restarts {
        place(&mut pods, r);
    }
    for pod in &mut pods {
        restart(pod);
    }
    History {
        scenario: s.clone(),
        old_replicaset: old_rs,
        new_replicaset: new_rs,
        pods,
        first_fault_error,
    }
}

/// The old pods, then the new ones, with their names, times, levels and noise.
fn plans(
    s: &Scenario,
    noise: &Noise,
    rng: &mut StdRng,
    trace_len: usize,
    (old_rs, new_rs): (&str, &str),
) -> Vec<Plan> {
    let timetable = s.timetable();
    let end = s.history_end();
    let pod_factor = LogNormal::new(0.0, s.pod_level_sigma).expect("valid lognormal");
    let steady: Vec<Trace> = noise
        .cpu
        .iter()
        .filter(|t| t.is_steady())
        .cloned()
        .collect();
    // Offsets from a stream of their own, so that turning them on moves no other draw.
    let mut offsets = StdRng::seed_from_u64(s.seed ^ 0x0ff5_e75e_ed00);
    let mut offset = || {
        if s.scrape_offsets {
            offsets.random_range(1..SCRAPE as u32) as f64
        } else {
            0.0
        }
    };
    let mut plans = Vec::with_capacity(2 * s.replicas);
    for (new, rs) in [(false, old_rs), (true, new_rs)] {
        for i in 0..s.replicas {
            let (start, last) = if new {
                (align(timetable.new_starts[i], s.start), end)
            } else {
                (s.start, timetable.old_ends[i] - SCRAPE)
            };
            plans.push(Plan {
                name: format!("{rs}-{}", suffix(rng, 5)),
                new,
                start,
                end: last,
                offset: offset(),
                factor: pod_factor.sample(rng),
                noise: pick_segment(&steady, rng, trace_len, s.pod_cpu_anomalies),
            });
        }
    }
    plans
}

impl World<'_> {
    /// The incident under way at `t`, if any, and how much of it (see [`Incident::strength`]).
    fn incident(&self, t: f64) -> Option<(Incident, f64)> {
        let i = self.s.incident?;
        let strength = i.strength(t, self.s.rollout_start());
        (strength > 0.0).then_some((i, strength))
    }

    /// One pod's requests, errors and CPU over the scrape interval ending at `t`.
    fn draw(&self, rng: &mut StdRng, plan: &Plan, t: f64, rps: f64) -> Draw {
        let s = self.s;
        let incident = self.incident(t);
        let requests = poisson(rng, rps * SCRAPE);
        let (errors, fault_errors) = self.errors(rng, plan, t, requests, incident);
        let demand = self.demand(plan, t, rps, incident);
        Draw {
            requests,
            errors,
            fault_errors,
            cpu_used: demand.min(s.cpu_limit),
            throttled: (PERIODS * throttle_fraction(demand / s.cpu_limit)).round(),
        }
    }

    fn errors(
        &self,
        rng: &mut StdRng,
        plan: &Plan,
        t: f64,
        requests: f64,
        incident: Option<(Incident, f64)>,
    ) -> ([f64; ERROR_TYPES.len()], f64) {
        let s = self.s;
        let mut rate = s.base_error_rate;
        if plan.new
            && let Fault::ErrorRate { multiplier } = s.fault
        {
            rate *= multiplier;
        }
        rate *= self.burst.sample(rng);
        if let Some((inc, strength)) = incident {
            rate += inc.extra_error_rate * strength;
        }
        // Start-up errors: added only where a warm-up asks for them, so no other draw moves.
        if plan.new
            && let Some(w) = s.warmup
            && w.error_rate > 0.0
            && t - plan.start < w.seconds
        {
            rate += w.error_rate;
        }
        let mut errs = [0.0; ERROR_TYPES.len()];
        let base = poisson(rng, requests * rate.min(1.0));
        let warnings = (base * 0.6).round();
        errs[4] = warnings;
        errs[5] = base - warnings;
        let mut fault_errors = 0.0;
        if plan.new
            && let Fault::ClassErrors { fraction } = s.fault
        {
            let n = poisson(rng, requests * fraction);
            // Mostly classes, some interfaces and traits, as a removed library shows.
            let interfaces = (n * 0.1).floor();
            let traits = (n * 0.1).floor();
            errs[0] = n - interfaces - traits;
            errs[1] = interfaces;
            errs[2] = traits;
            fault_errors = n;
        }
        if s.background_class_rate > 0.0 {
            errs[0] += poisson(rng, requests * s.background_class_rate);
        }
        (errs, fault_errors)
    }

    /// CPU cores the pod would use at `t`, before the limit.
    fn demand(&self, plan: &Plan, t: f64, rps: f64, incident: Option<(Incident, f64)>) -> f64 {
        let s = self.s;
        let age = t - plan.start;
        let x = (t - s.start) / nab::TRACE_STEP;
        let mut demand = rps * s.cpu_per_request * plan.factor;
        // A healthy service keeps headroom: its own load pattern moves it within ×0.5-×1.6
        // (shared overloads are modelled as incidents).
        demand *= (1.0 + s.cpu_noise * (interpolate(&self.shared_cpu, x) - 1.0)).clamp(0.5, 1.6);
        demand *= 1.0 + s.pod_cpu_noise * (interpolate(&plan.noise, x) - 1.0);
        demand = demand.max(0.0) + s.idle_cpu;
        if plan.new {
            if let Fault::Cpu { multiplier } = s.fault {
                demand *= multiplier;
            }
            if let Some(w) = s.warmup {
                demand *= w.cpu_factor(age);
            }
        }
        if let Some((inc, strength)) = incident {
            demand *= inc.cpu_multiplier_at(strength);
        }
        demand
    }
}

/// Appends one scrape's draws to a pod's counters.
fn push(pod: &mut PodHistory, d: &Draw) {
    let last = |v: &Vec<f64>| v.last().copied().unwrap_or(0.0);
    pod.requests.push(last(&pod.requests) + d.requests);
    let mut cum = pod
        .errors
        .last()
        .copied()
        .unwrap_or([0.0; ERROR_TYPES.len()]);
    for (c, e) in cum.iter_mut().zip(d.errors) {
        *c += e;
    }
    pod.errors.push(cum);
    pod.cpu_seconds
        .push(last(&pod.cpu_seconds) + d.cpu_used * SCRAPE);
    pod.cfs_periods.push(last(&pod.cfs_periods) + PERIODS);
    pod.cfs_throttled
        .push(last(&pod.cfs_throttled) + d.throttled);
}

/// Notes a container restart (see [`Restart`]) on its pod: the first scrape at or after it
/// (not the first, nor past the pod's last), each scrape once, in order.
fn place(pods: &mut [PodHistory], r: &Restart) {
    let side: Vec<usize> = (0..pods.len()).filter(|&i| pods[i].new == r.new).collect();
    let Some(&i) = side.get(r.pod % side.len().max(1)) else {
        return;
    };
    let pod = &mut pods[i];
    let k = (r.after / SCRAPE).ceil().max(1.0) as usize;
    if k < pod.requests.len() && !pod.restarts.contains(&k) {
        pod.restarts.push(k);
        pod.restarts.sort_unstable();
    }
}

/// Every counter of the pod from each of its restarts on (see [`place`]), less its value at the
/// scrape before that restart, so that it counts from zero again until the next.
fn restart(pod: &mut PodHistory) {
    if pod.restarts.is_empty() {
        return;
    }
    let ks = pod.restarts.clone();
    let stretches: Vec<(usize, usize)> = ks
        .iter()
        .enumerate()
        .map(|(m, &k)| (k, ks.get(m + 1).copied().unwrap_or(pod.requests.len())))
        .collect();
    let from_zero = |v: &mut Vec<f64>| {
        let o = v.clone();
        for &(k, end) in &stretches {
            for j in k..end {
                v[j] = o[j] - o[k - 1];
            }
        }
    };
    from_zero(&mut pod.requests);
    from_zero(&mut pod.cpu_seconds);
    from_zero(&mut pod.cfs_periods);
    from_zero(&mut pod.cfs_throttled);
    let o = pod.errors.clone();
    for &(k, end) in &stretches {
        for j in k..end {
            for ((e, now), before) in pod.errors[j].iter_mut().zip(o[j]).zip(o[k - 1]) {
                *e = now - before;
            }
        }
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

/// A segment of a random trace: a healthy one (outside NAB's anomaly windows), or any one
/// when `anomalies` is set; a flat one if no trace has such a segment.
fn pick_segment(traces: &[Trace], rng: &mut StdRng, len: usize, anomalies: bool) -> Vec<f64> {
    if traces.is_empty() {
        return vec![1.0; len];
    }
    for _ in 0..8 {
        let trace = &traces[rng.random_range(0..traces.len())];
        let seg = if anomalies {
            trace.any_segment(rng, len)
        } else {
            trace.healthy_segment(rng, len)
        };
        if let Some(seg) = seg {
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
