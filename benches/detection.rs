//! Detection quality of the default rules against two baselines, on a labelled corpus of
//! simulated rollouts with real noise (NAB traces). Not a timed test: run it with
//! `cargo bench --bench detection` and copy the table into BENCHMARKS.md.
//!
//! Every rollout is replayed every 30 s from the first new pod to the end of a 10-minute bake,
//! as the controller would, and stops at the first pause or rollback. The three judges see the
//! same simulated metrics through the same [`SimSource`]:
//! - rollout-guard: the bundled default rules through `evaluate` and `Streaks`;
//! - threshold (Argo Rollouts style `successCondition`): new pods' error rate < 1% and mean CPU
//!   utilisation < 80%, measured every 30 s, aborting when more than one measurement failed
//!   (`failureLimit: 1`);
//! - Mann-Whitney (Kayenta style): per metric, the new and old ReplicaSets' per-minute series
//!   over the window compared with a two-sided Mann-Whitney U at 98% confidence, failing the
//!   metric when significant and the Hodges-Lehmann shift points the bad way; the canary fails
//!   when any metric fails (score < 95 with four metrics), acting after two failing
//!   evaluations in a row, like our defaults.
//!
//! Both baselines also run "strict" (error rate < 3%, CPU < 95%, `failureLimit: 3`; 99.9%
//! confidence, three failing evaluations in a row), to compare them at a like false-action rate.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rollout_guard::decision::Streaks;
use rollout_guard::duration::PromDuration;
use rollout_guard::evaluate::{Target, evaluate};
use rollout_guard::rules::{Action, RuleSet};
use rollout_guard::simulate::{
    Fault, Gate, Incident, Noise, Scenario, SimSource, Warmup, generate,
};
use rollout_guard::source::{MetricSource, Series};
use rollout_guard::stats::{self, Tail};
use rollout_guard::template::pods_regex;

const STEP: f64 = 30.0;

#[derive(Clone, Debug)]
struct Case {
    scenario: Scenario,
    bad: bool,
    category: String,
}

/// How the Deployment rolls out while it is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// `gate`: the rollout pauses after its first new pod (10% of the pods from 10 replicas
    /// up) for a 10-minute analysis, then goes on.
    Gate,
    /// `guard`: the natural rolling update, judged while it runs and for a 10-minute bake.
    Guard,
}

impl Mode {
    fn apply(self, s: &Scenario) -> Scenario {
        let mut s = s.clone();
        s.gate = match self {
            Mode::Gate => Some(Gate {
                pods: (s.replicas / 10).max(1),
                seconds: 600.0,
            }),
            Mode::Guard => None,
        };
        s
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Gate => "gate (canary pause of 10 min after the first new pods)",
            Mode::Guard => "guard (natural rolling update, then a 10-min bake)",
        }
    }
}

fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// A random service: size, traffic, error background, CPU headroom.
fn base(rng: &mut StdRng, name: String, seed: u64, traffic: (f64, f64)) -> Scenario {
    let mut s = Scenario::healthy(&name, seed);
    s.replicas = [3, 4, 6, 8, 10, 15, 20][rng.random_range(0..7)];
    s.pod_interval = rng.random_range(30.0..90.0_f64).round();
    s.rps_per_pod = log_uniform(rng, traffic.0, traffic.1);
    s.base_error_rate = log_uniform(rng, 0.0005, 0.01);
    s.error_burstiness = rng.random_range(0.5..4.0);
    let utilisation = rng.random_range(0.15..0.45);
    s.idle_cpu = 0.02;
    s.cpu_per_request = ((utilisation - s.idle_cpu) * s.cpu_limit / s.rps_per_pod).max(1e-5);
    s.cpu_noise = rng.random_range(0.2..0.6);
    s.pod_cpu_noise = rng.random_range(0.5..1.0);
    if rng.random::<f64>() < 0.3 {
        s.warmup = Some(Warmup {
            seconds: rng.random_range(30.0..90.0),
            cpu_multiplier: rng.random_range(1.5..2.5),
        });
    }
    s
}

fn corpus() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut cases = Vec::new();
    let mut seed = 1000;
    let mut add = |cases: &mut Vec<Case>,
                   rng: &mut StdRng,
                   category: &str,
                   bad: bool,
                   n: usize,
                   f: &dyn Fn(&mut StdRng, &mut Scenario)| {
        for i in 0..n {
            seed += 1;
            let traffic = if category == "healthy: low traffic" {
                (0.2, 2.0)
            } else {
                (5.0, 100.0)
            };
            let mut s = base(rng, format!("{category} #{i}"), seed, traffic);
            f(rng, &mut s);
            cases.push(Case {
                scenario: s,
                bad,
                category: category.to_string(),
            });
        }
    };
    add(&mut cases, &mut rng, "healthy", false, 150, &|_, _| {});
    add(
        &mut cases,
        &mut rng,
        "healthy: low traffic",
        false,
        60,
        &|_, _| {},
    );
    add(
        &mut cases,
        &mut rng,
        "healthy: warm-up CPU spikes",
        false,
        60,
        &|rng, s| {
            s.warmup = Some(Warmup {
                seconds: rng.random_range(60.0..180.0),
                cpu_multiplier: rng.random_range(2.0..4.0),
            });
        },
    );
    add(
        &mut cases,
        &mut rng,
        "healthy: shared incident",
        false,
        60,
        &|rng, s| {
            let span = s.replicas as f64 * s.pod_interval;
            let errors = rng.random::<bool>();
            s.incident = Some(Incident {
                starts_after: rng.random_range(0.0..span),
                seconds: rng.random_range(120.0..300.0),
                extra_error_rate: if errors {
                    rng.random_range(0.005..0.05)
                } else {
                    0.0
                },
                cpu_multiplier: if errors {
                    1.0
                } else {
                    rng.random_range(1.5..2.5)
                },
            });
        },
    );
    for fraction in [0.0005, 0.001, 0.005, 0.01, 0.05] {
        add(
            &mut cases,
            &mut rng,
            &format!("bad: class errors {}%", fraction * 100.0),
            true,
            14,
            &move |_, s| {
                s.fault = Fault::ClassErrors { fraction };
            },
        );
    }
    for multiplier in [1.5, 2.0, 3.0, 5.0, 10.0] {
        add(
            &mut cases,
            &mut rng,
            &format!("bad: error rate ×{multiplier}"),
            true,
            14,
            &move |_, s| {
                s.fault = Fault::ErrorRate { multiplier };
            },
        );
    }
    for multiplier in [1.2, 1.5, 2.0, 3.0] {
        add(
            &mut cases,
            &mut rng,
            &format!("bad: CPU +{:.0}%", (multiplier - 1.0) * 100.0),
            true,
            14,
            &move |_, s| {
                s.fault = Fault::Cpu { multiplier };
            },
        );
    }
    add(
        &mut cases,
        &mut rng,
        "bad: CPU saturation",
        true,
        14,
        &|rng, s| {
            // Demand 1.2-2× the limit: the new pods peg their CPU.
            let utilisation = s.idle_cpu + s.cpu_per_request * s.rps_per_pod;
            s.fault = Fault::Cpu {
                multiplier: rng.random_range(1.2..2.0) / utilisation,
            };
        },
    );
    cases
}

/// When (seconds after the first new pod) a judge acted, if it did.
type Outcome = Option<f64>;

/// Level of the oracle test: the same as each of our rules' α.
const ORACLE_ALPHA: f64 = 0.001;

/// Detectability reference: the power of an oracle that knows the generating model (the
/// healthy error rate and its Gamma burstiness exactly, and the fault), tests the new pods'
/// total count of the fault's errors once, at the last moment old pods exist (the most
/// favourable single look), at level [`ORACLE_ALPHA`], and needs no baseline. Most powerful for
/// the total count of the new pods' errors; no judge comparing the new pods with the old ones
/// over the same data does better by much. `None` for faults it does not model (CPU).
///
/// Given each scrape's requests `r`, the simulation draws errors as Poisson(r·b·G) with G ~
/// Gamma(k, 1/k): negative binomial with mean μ = r·b and variance μ + μ²/k. The sum over the
/// new pods' scrapes is taken as negative binomial with the same mean and variance. Class-loading
/// errors never happen on healthy pods, so the oracle's test is "any class error", and its power
/// the chance of at least one.
fn oracle_power(h: &rollout_guard::simulate::History) -> Option<f64> {
    use statrs::distribution::{DiscreteCDF, NegativeBinomial};
    let s = &h.scenario;
    let (from, to) = (s.rollout_start(), s.rollout_end().min(s.end()));
    let mut requests = Vec::new();
    for pod in h.pods.iter().filter(|p| p.new) {
        for i in 0..pod.requests.len() {
            let t = pod.start + i as f64 * rollout_guard::simulate::SCRAPE;
            if t > from && t <= to {
                let before = if i == 0 { 0.0 } else { pod.requests[i - 1] };
                requests.push(pod.requests[i] - before);
            }
        }
    }
    let total: f64 = requests.iter().sum();
    match s.fault {
        Fault::ClassErrors { fraction } => Some(1.0 - (-total * fraction).exp()),
        Fault::ErrorRate { multiplier } => {
            let k = s.error_burstiness.max(0.05);
            let nb = |m: f64| {
                let mean: f64 = requests.iter().map(|r| r * s.base_error_rate * m).sum();
                let var: f64 = requests
                    .iter()
                    .map(|r| {
                        let mu = r * s.base_error_rate * m;
                        mu + mu * mu / k
                    })
                    .sum();
                let shape = mean * mean / (var - mean).max(1e-12);
                NegativeBinomial::new(shape, shape / (shape + mean)).ok()
            };
            let (h0, h1) = (nb(1.0)?, nb(multiplier)?);
            // Smallest c with P0(X ≥ c) ≤ α; power P1(X ≥ c). P(X ≥ c) = sf(c − 1).
            let tail = |d: &NegativeBinomial, c: u64| if c == 0 { 1.0 } else { d.sf(c - 1) };
            let (mut lo, mut hi) = (0u64, 1u64);
            while tail(&h0, hi) > ORACLE_ALPHA {
                hi *= 2;
            }
            while lo < hi {
                let mid = (lo + hi) / 2;
                if tail(&h0, mid) > ORACLE_ALPHA {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            Some(tail(&h1, lo))
        }
        Fault::None | Fault::Cpu { .. } => None,
    }
}

fn times(s: &Scenario) -> Vec<f64> {
    let mut t = s.rollout_start() + STEP;
    let mut out = Vec::new();
    while t <= s.end() + 1e-6 {
        out.push(t);
        t += STEP;
    }
    out
}

fn ts(t: f64) -> Timestamp {
    Timestamp::from_second(t as i64).expect("valid time")
}

fn target(case: &Case, h: &rollout_guard::simulate::History, t: f64) -> Target {
    let s = &case.scenario;
    Target {
        namespace: s.namespace.clone(),
        deployment: s.deployment.clone(),
        new_replicaset: h.new_replicaset.clone(),
        old_replicasets: if t < s.rollout_end() {
            vec![h.old_replicaset.clone()]
        } else {
            vec![]
        },
        // As the controller does: the generation that served before, once its pods are gone.
        departed: if t < s.rollout_end() {
            vec![]
        } else {
            vec![h.old_replicaset.clone()]
        },
    }
}

async fn ours(
    rules: &RuleSet,
    case: &Case,
    h: &rollout_guard::simulate::History,
    trace: Option<Mode>,
) -> (Outcome, Option<String>) {
    let source = SimSource::new(h);
    let mut streaks = Streaks::default();
    for t in times(&case.scenario) {
        let eval = evaluate(rules, &target(case, h, t), ts(t), &source).await;
        let d = streaks.update(rules, &eval.verdicts);
        if let Some(mode) = trace {
            eprintln!(
                "{mode:?} t+{:.0}s {:?}",
                t - case.scenario.rollout_start(),
                d.action
            );
            for v in &eval.verdicts {
                eprintln!("{mode:?}     {} {}: {}", v.rule, v.outcome, v.reason);
            }
        }
        if matches!(d.action, Some(Action::Pause | Action::Rollback)) {
            return (Some(t - case.scenario.rollout_start()), d.rule);
        }
    }
    (None, None)
}

fn selector(rs: &str) -> String {
    pods_regex(&[rs.to_string()]).replace('\\', "\\\\")
}

async fn scalar(source: &SimSource<'_>, q: &str, t: f64) -> Option<f64> {
    source
        .instant(q, ts(t))
        .await
        .ok()?
        .first()
        .and_then(|s| s.points.last())
        .map(|p| p.v)
}

/// Error rate of a ReplicaSet over `window` seconds ending at `t`; absent errors are zero.
async fn error_rate(source: &SimSource<'_>, rs: &str, t: f64, window: &str) -> Option<f64> {
    let pods = selector(rs);
    let e = scalar(
        source,
        &format!(r#"sum(increase(php_errors_total{{pod=~"{pods}"}}[{window}]))"#),
        t,
    )
    .await;
    let r = scalar(
        source,
        &format!(r#"sum(increase(php_requests_total{{pod=~"{pods}"}}[{window}]))"#),
        t,
    )
    .await?;
    (r > 0.0).then(|| e.unwrap_or(0.0) / r)
}

async fn class_rate(source: &SimSource<'_>, rs: &str, t: f64, window: &str) -> Option<f64> {
    let pods = selector(rs);
    let q = format!(
        r#"sum(increase(php_errors_total{{pod=~"{pods}",type=~"class_not_found"}}[{window}]))"#
    );
    let e = scalar(source, &q, t).await;
    let r = scalar(
        source,
        &format!(r#"sum(increase(php_requests_total{{pod=~"{pods}"}}[{window}]))"#),
        t,
    )
    .await?;
    (r > 0.0).then(|| e.unwrap_or(0.0) / r)
}

async fn per_pod(
    source: &SimSource<'_>,
    query: &str,
    rs: &str,
    from: f64,
    to: f64,
    step: f64,
) -> Vec<Series> {
    let q = query.replace("PODS", &selector(rs));
    source
        .range(&q, ts(from), ts(to), PromDuration::from_secs(step as u64))
        .await
        .unwrap_or_default()
}

const UTILISATION: &str = r#"rate(container_cpu_usage_seconds_total{pod=~"PODS"}[1m]) / kube_pod_container_resource_limits{pod=~"PODS"}"#;
const CPU_PER_REQUEST: &str = r#"rate(container_cpu_usage_seconds_total{pod=~"PODS"}[1m]) / rate(php_requests_total{pod=~"PODS"}[1m])"#;

/// Mean over pods at each time: one aggregated series per ReplicaSet, as Kayenta fetches.
fn aggregate(series: &[Series]) -> Vec<f64> {
    let mut by_t: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for s in series {
        for p in &s.points {
            if p.v.is_finite() {
                let e = by_t.entry(p.t as i64).or_default();
                e.0 += p.v;
                e.1 += 1;
            }
        }
    }
    by_t.values().map(|(sum, n)| sum / *n as f64).collect()
}

/// Settings of the threshold baseline: error rate and CPU limits, and failed measurements
/// tolerated before aborting.
#[derive(Clone, Copy)]
struct Argo {
    max_error_rate: f64,
    max_cpu: f64,
    failure_limit: u32,
}

/// Settings of the Mann-Whitney baseline: two-sided level and failing evaluations in a row.
#[derive(Clone, Copy)]
struct Kayenta {
    alpha: f64,
    consecutive: u32,
}

async fn argo(case: &Case, h: &rollout_guard::simulate::History, cfg: Argo) -> Outcome {
    let source = SimSource::new(h);
    let mut failures = 0;
    for t in times(&case.scenario) {
        let rate = error_rate(&source, &h.new_replicaset, t, "1m").await;
        let cpu = per_pod(&source, UTILISATION, &h.new_replicaset, t, t, STEP).await;
        let cpu = aggregate(&cpu).first().copied();
        let failed =
            rate.is_some_and(|r| r >= cfg.max_error_rate) || cpu.is_some_and(|c| c >= cfg.max_cpu);
        if failed {
            failures += 1;
            if failures > cfg.failure_limit {
                return Some(t - case.scenario.rollout_start());
            }
        }
    }
    None
}

/// Kayenta-style classification of one metric: two-sided Mann-Whitney at 98% confidence, worse
/// when significant and shifted the bad way (higher).
fn kayenta_worse(new: &[f64], old: &[f64], alpha: f64) -> bool {
    if new.len() < 3 || old.len() < 3 {
        return false;
    }
    let (Ok((_, p_greater)), Ok((_, p_less))) = (
        stats::mann_whitney(new, old, Tail::Greater),
        stats::mann_whitney(new, old, Tail::Less),
    ) else {
        return false;
    };
    let p = (2.0 * p_greater.min(p_less)).min(1.0);
    let shift = stats::hodges_lehmann(new, old).unwrap_or(0.0);
    p < alpha && shift > 0.0
}

async fn kayenta(case: &Case, h: &rollout_guard::simulate::History, cfg: Kayenta) -> Outcome {
    let source = SimSource::new(h);
    let mut streak = 0;
    for t in times(&case.scenario) {
        if t >= case.scenario.rollout_end() {
            break; // no baseline left
        }
        // Per-minute series over the last 10 minutes (errors) and 5 minutes (CPU).
        let mut worse = false;
        for class in [false, true] {
            let mut new = Vec::new();
            let mut old = Vec::new();
            let mut u = t - 540.0;
            while u <= t {
                let (n, o) = if class {
                    (
                        class_rate(&source, &h.new_replicaset, u, "1m").await,
                        class_rate(&source, &h.old_replicaset, u, "1m").await,
                    )
                } else {
                    (
                        error_rate(&source, &h.new_replicaset, u, "1m").await,
                        error_rate(&source, &h.old_replicaset, u, "1m").await,
                    )
                };
                new.extend(n);
                old.extend(o);
                u += 60.0;
            }
            worse |= kayenta_worse(&new, &old, cfg.alpha);
        }
        for query in [UTILISATION, CPU_PER_REQUEST] {
            let new =
                aggregate(&per_pod(&source, query, &h.new_replicaset, t - 300.0, t, 60.0).await);
            let old =
                aggregate(&per_pod(&source, query, &h.old_replicaset, t - 300.0, t, 60.0).await);
            worse |= kayenta_worse(&new, &old, cfg.alpha);
        }
        streak = if worse { streak + 1 } else { 0 };
        if streak >= cfg.consecutive {
            return Some(t - case.scenario.rollout_start());
        }
    }
    None
}

#[derive(Default)]
struct Tally {
    bad: usize,
    caught: usize,
    healthy: usize,
    false_actions: usize,
    delays: Vec<f64>,
}

impl Tally {
    fn add(&mut self, bad: bool, outcome: Outcome) {
        if bad {
            self.bad += 1;
            if let Some(d) = outcome {
                self.caught += 1;
                self.delays.push(d);
            }
        } else {
            self.healthy += 1;
            if outcome.is_some() {
                self.false_actions += 1;
            }
        }
    }

    fn recall(&self) -> f64 {
        100.0 * self.caught as f64 / self.bad.max(1) as f64
    }

    fn false_rate(&self) -> f64 {
        100.0 * self.false_actions as f64 / self.healthy.max(1) as f64
    }

    fn median_delay(&self) -> String {
        stats::median(&self.delays).map_or("-".into(), |d| format!("{d:.0} s"))
    }
}

struct Results {
    totals: Vec<Tally>,
    by_category: BTreeMap<String, Vec<Tally>>,
    deciding_rules: BTreeMap<String, usize>,
    false_alarms: Vec<String>,
    missed: Vec<String>,
    /// Per category: the oracle's summed power (its expected catches) and the rollouts.
    oracle: BTreeMap<String, (f64, usize)>,
}

const JUDGES: [&str; 5] = [
    "rollout-guard defaults",
    "threshold (Argo-style)",
    "Mann-Whitney (Kayenta-style)",
    "threshold, strict",
    "Mann-Whitney, strict",
];

/// The baselines as the issue describes them.
const ARGO: Argo = Argo {
    max_error_rate: 0.01,
    max_cpu: 0.8,
    failure_limit: 1,
};
const KAYENTA: Kayenta = Kayenta {
    alpha: 0.02,
    consecutive: 2,
};
/// The same baselines tuned towards few false actions, to compare at a like operating point.
const ARGO_STRICT: Argo = Argo {
    max_error_rate: 0.03,
    max_cpu: 0.95,
    failure_limit: 3,
};
const KAYENTA_STRICT: Kayenta = Kayenta {
    alpha: 0.001,
    consecutive: 3,
};

/// Options for tuning runs, from the environment.
#[derive(Clone, Debug, Default)]
struct Options {
    /// `DETECTION_TRACE=<seed>`: print rollout-guard's evaluations of that rollout.
    trace: Option<u64>,
    /// `DETECTION_OURS_ONLY=1`: skip the baselines (their columns stay empty).
    ours_only: bool,
    /// `DETECTION_CATEGORY=<text>`: only the categories whose name contains it.
    category: Option<String>,
}

fn run(mode: Mode, cases: &[Case], noise: &Noise, rules: &RuleSet, opts: &Options) -> Results {
    let trace = opts.trace;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut r = Results {
        totals: JUDGES.iter().map(|_| Tally::default()).collect(),
        by_category: BTreeMap::new(),
        deciding_rules: BTreeMap::new(),
        false_alarms: Vec::new(),
        missed: Vec::new(),
        oracle: BTreeMap::new(),
    };
    for (i, case) in cases.iter().enumerate() {
        if trace.is_some_and(|seed| seed != case.scenario.seed)
            || opts
                .category
                .as_ref()
                .is_some_and(|c| !case.category.contains(c.as_str()))
        {
            continue;
        }
        let case = Case {
            scenario: mode.apply(&case.scenario),
            ..case.clone()
        };
        let h = generate(&case.scenario, noise);
        if trace.is_some() {
            eprintln!(
                "{mode:?} {}",
                serde_json::to_string(&case.scenario).unwrap_or_default()
            );
        }
        let (mine, rule) = runtime.block_on(ours(rules, &case, &h, trace.map(|_| mode)));
        let outcomes = if opts.ours_only {
            [mine, None, None, None, None]
        } else {
            [
                mine,
                runtime.block_on(argo(&case, &h, ARGO)),
                runtime.block_on(kayenta(&case, &h, KAYENTA)),
                runtime.block_on(argo(&case, &h, ARGO_STRICT)),
                runtime.block_on(kayenta(&case, &h, KAYENTA_STRICT)),
            ]
        };
        if let Some(rule) = &rule {
            *r.deciding_rules
                .entry(format!(
                    "{} ← {}",
                    rule,
                    if case.bad { "bad" } else { "healthy" }
                ))
                .or_default() += 1;
        }
        let name = format!("{} (seed {})", case.scenario.name, case.scenario.seed);
        let power = oracle_power(&h);
        if let Some(p) = power {
            let o = r.oracle.entry(case.category.clone()).or_default();
            o.0 += p;
            o.1 += 1;
        }
        if case.bad && mine.is_none() {
            let s = &case.scenario;
            r.missed.push(format!(
                "{name} [{} replicas, {:.0} s apart, {:.1} req/s/pod, errors {:.2}%, shape {:.1}; oracle power {}]",
                s.replicas,
                s.pod_interval,
                s.rps_per_pod,
                s.base_error_rate * 100.0,
                s.error_burstiness,
                power.map_or("-".into(), |p| format!("{:.0}%", p * 100.0))
            ));
        } else if !case.bad && mine.is_some() {
            r.false_alarms
                .push(format!("{name}, rule {}", rule.unwrap_or_default()));
        }
        let cat = r
            .by_category
            .entry(case.category.clone())
            .or_insert_with(|| JUDGES.iter().map(|_| Tally::default()).collect());
        for (j, o) in outcomes.iter().enumerate() {
            r.totals[j].add(case.bad, *o);
            cat[j].add(case.bad, *o);
        }
        if (i + 1) % 100 == 0 {
            eprintln!("{mode:?}: {} / {} rollouts", i + 1, cases.len());
        }
    }
    r
}

fn print(mode: Mode, r: &Results) {
    println!("\n### Mode {}\n", mode.name());
    println!(
        "| judge | recall on bad rollouts | false actions on healthy | median time to decision |"
    );
    println!("|---|---|---|---|");
    for (j, name) in JUDGES.iter().enumerate() {
        let t = &r.totals[j];
        println!(
            "| {name} | {:.1}% ({}/{}) | {:.2}% ({}/{}) | {} |",
            t.recall(),
            t.caught,
            t.bad,
            t.false_rate(),
            t.false_actions,
            t.healthy,
            t.median_delay()
        );
    }
    println!(
        "\nBy category (acted / rollouts; median time from the first new pod to the decision):\n"
    );
    println!("| category | {} |", JUDGES.join(" | "));
    println!("|---|{}", "---|".repeat(JUDGES.len()));
    for (cat, tallies) in &r.by_category {
        let cells: Vec<String> = tallies
            .iter()
            .map(|t| {
                if t.bad > 0 {
                    format!("{}/{} ({})", t.caught, t.bad, t.median_delay())
                } else {
                    format!("{}/{}", t.false_actions, t.healthy)
                }
            })
            .collect();
        println!("| {cat} | {} |", cells.join(" | "));
    }
    if !r.oracle.is_empty() {
        println!(
            "\nDetectability: the expected catches of an oracle that knows the healthy error rate and its burstiness, tests the new pods' errors once when the last old pod leaves, at α = {ORACLE_ALPHA} (error faults only):\n"
        );
        println!("| category | oracle (expected catches) | rollout-guard defaults |");
        println!("|---|---|---|");
        for (cat, (power, n)) in &r.oracle {
            let caught = r.by_category.get(cat).map_or(0, |t| t[0].caught);
            println!("| {cat} | {power:.1}/{n} | {caught}/{n} |");
        }
    }
    println!("\nRules behind rollout-guard's actions:");
    for (rule, n) in &r.deciding_rules {
        println!("- {rule}: {n}");
    }
    if !r.missed.is_empty() {
        println!(
            "\nBad rollouts rollout-guard let through:\n- {}",
            r.missed.join("\n- ")
        );
    }
    if !r.false_alarms.is_empty() {
        println!(
            "\nHealthy rollouts rollout-guard acted on: {}",
            r.false_alarms.join("; ")
        );
    }
}

fn main() {
    let noise = Noise::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab"))
        .expect("NAB traces");
    // DETECTION_RULES=<file or folder> measures other rules than the bundled defaults.
    let rules = match std::env::var_os("DETECTION_RULES") {
        Some(path) => RuleSet::load(&[path.into()]).expect("valid rules"),
        None => RuleSet::defaults(),
    };
    let cases = corpus();
    let opts = Options {
        trace: std::env::var("DETECTION_TRACE")
            .ok()
            .and_then(|s| s.parse().ok()),
        ours_only: std::env::var_os("DETECTION_OURS_ONLY").is_some(),
        category: std::env::var("DETECTION_CATEGORY").ok(),
    };
    let started = std::time::Instant::now();
    // One thread per mode (the machine has two cores).
    let results: Vec<(Mode, Results)> = std::thread::scope(|scope| {
        let handles: Vec<_> = [Mode::Gate, Mode::Guard]
            .into_iter()
            .map(|m| {
                let (cases, noise, rules, opts) = (&cases, &noise, &rules, &opts);
                scope.spawn(move || (m, run(m, cases, noise, rules, opts)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let bad = cases.iter().filter(|c| c.bad).count();
    println!(
        "Corpus: {} rollouts ({} bad, {} healthy), each replayed in both modes every {STEP} s; {:.1} s in all.",
        cases.len(),
        bad,
        cases.len() - bad,
        started.elapsed().as_secs_f64()
    );
    for (mode, r) in &results {
        print(*mode, r);
    }
}
