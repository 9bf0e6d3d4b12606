//! The labelled corpus: every category of simulated rollout, healthy and bad, drawn from fixed
//! seeds so that the figures are reproducible to the digit.
//!
//! Owns the categories and the ranges their parameters are drawn from, each with the reason
//! for its range. The first set is the corpus as it was (one pod at a time, healthy noise
//! only); the second adds what users meet (issue 12): 25% batches, low traffic, per-pod CPU
//! levels, shared incidents in the bake, background class errors, fast rollouts, damaged
//! answers; the third, drawn last so that the others stay as they were, where the judge's own
//! mechanisms are weakest (shared incidents in the bake too mild to stand far above the rest),
//! then container restarts, new pods' start-up errors, shared incidents in the bake that fade
//! slowly and points lost without a warning, warm-ups, and releases that follow a short-lived
//! version, each drawn after the rest.
//! Every rollout but those has an hour of history before it (the old version's own baseline),
//! and every pod is scraped at its own offset, as Prometheus spreads its targets.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rollout_guard::sim::simulate::{Fault, Incident, Restart, Scenario, Warmup};

use crate::damage::Damage;

/// One labelled rollout.
#[derive(Clone, Debug)]
pub struct Case {
    pub scenario: Scenario,
    pub bad: bool,
    pub category: String,
    /// A shared incident during the bake: `starts_after` counts from the last old pod's
    /// deletion, which depends on the mode, so [`crate::Mode::apply`] places it.
    pub bake_incident: Option<Incident>,
    /// How the metric source damages its answers, if it does.
    pub damage: Option<Damage>,
    /// Prometheus scrapes every `scrape_every`-th of the simulation's 15-s samples (1: all;
    /// 2: every 30 s).
    pub scrape_every: usize,
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
            error_rate: 0.0,
            decay_seconds: 0.0,
        });
    }
    // An hour of the old version before the rollout, as a judge with a history baseline
    // would look back on; every pod scraped at its own offset (no sample on a range's edge).
    s.before = 3600.0;
    s.scrape_offsets = true;
    // Room for the controller's bake extension: a streak under way at the bake's end goes on
    // for up to its rule's `consecutive` evaluations (2 of 30 s in the defaults), a pass not
    // settled for up to twice `incident_span` and the rule's `consecutive` less one (630 s in
    // the defaults). Past 5 minutes the NAB segments hold their last value (`Scenario::tail`).
    s.tail = 630.0;
    s
}

/// Kubernetes' default RollingUpdate: maxSurge 25% (rounded up), maxUnavailable 25%
/// (rounded down).
fn quarter_batches(s: &mut Scenario) {
    s.max_surge = s.replicas.div_ceil(4);
    s.max_unavailable = s.replicas / 4;
}

/// What a category changes on top of [`base`].
type Shape = dyn Fn(&mut StdRng, &mut Case);

/// Builds the corpus, category by category, from one seeded stream.
struct Builder {
    rng: StdRng,
    seed: u64,
    cases: Vec<Case>,
}

impl Builder {
    fn add(&mut self, category: &str, bad: bool, n: usize, traffic: (f64, f64), f: &Shape) {
        for i in 0..n {
            self.seed += 1;
            let s = base(
                &mut self.rng,
                format!("{category} #{i}"),
                self.seed,
                traffic,
            );
            let mut case = Case {
                scenario: s,
                bad,
                category: category.to_string(),
                bake_incident: None,
                damage: None,
                scrape_every: 1,
            };
            f(&mut self.rng, &mut case);
            self.cases.push(case);
        }
    }
}

/// Normal traffic: 5 to 100 requests/s per pod.
const TRAFFIC: (f64, f64) = (5.0, 100.0);

/// The corpus as it was before issue 12 (its categories and counts, on the longer history).
fn original(b: &mut Builder) {
    b.add("healthy", false, 150, TRAFFIC, &|_, _| {});
    b.add("healthy: low traffic", false, 60, (0.2, 2.0), &|_, _| {});
    b.add(
        "healthy: warm-up CPU spikes",
        false,
        60,
        TRAFFIC,
        &|rng, c| c.scenario.warmup = Some(start_up_cpu(rng, false)),
    );
    b.add("healthy: shared incident", false, 60, TRAFFIC, &|rng, c| {
        let s = &mut c.scenario;
        let span = s.replicas as f64 * s.pod_interval;
        s.incident = Some(incident(rng, |rng| rng.random_range(0.0..span)));
    });
    for fraction in [0.0005, 0.001, 0.005, 0.01, 0.05] {
        let name = format!("bad: class errors {}%", fraction * 100.0);
        b.add(&name, true, 14, TRAFFIC, &move |_, c| {
            c.scenario.fault = Fault::ClassErrors { fraction };
        });
    }
    for multiplier in [1.5, 2.0, 3.0, 5.0, 10.0] {
        let name = format!("bad: error rate ×{multiplier}");
        b.add(&name, true, 14, TRAFFIC, &move |_, c| {
            c.scenario.fault = Fault::ErrorRate { multiplier };
        });
    }
    for multiplier in [1.2, 1.5, 2.0, 3.0] {
        let name = format!("bad: CPU +{:.0}%", (multiplier - 1.0) * 100.0);
        b.add(&name, true, 14, TRAFFIC, &move |_, c| {
            c.scenario.fault = Fault::Cpu { multiplier };
        });
    }
    b.add("bad: CPU saturation", true, 14, TRAFFIC, &|rng, c| {
        // Demand 1.2-2× the limit: the new pods peg their CPU.
        let s = &mut c.scenario;
        let utilisation = s.idle_cpu + s.cpu_per_request * s.rps_per_pod;
        s.fault = Fault::Cpu {
            multiplier: rng.random_range(1.2..2.0) / utilisation,
        };
    });
}

/// A shared incident starting when `starts` says: 2 to 5 minutes of +0.5% to +5% errors
/// per request (a dependency failing) or of CPU ×1.5 to ×2.5 (a traffic surge, a slow
/// database making workers spin), as the original corpus has them.
fn incident(rng: &mut StdRng, starts: impl FnOnce(&mut StdRng) -> f64) -> Incident {
    let errors = rng.random::<bool>();
    Incident {
        starts_after: starts(rng),
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
        recovery_seconds: 0.0,
    }
}

/// Low traffic as small internal services and quiet hours show it: 0.2 to 5 requests/s per
/// pod. CPU per request then comes from what a PHP request costs (10 to 100 ms), not from a
/// utilisation target: such pods are mostly idle.
const LOW: (f64, f64) = (0.2, 5.0);

fn low_traffic(rng: &mut StdRng, s: &mut Scenario) {
    s.cpu_per_request = log_uniform(rng, 0.01, 0.1);
}

/// Pods on nodes with different neighbours: a CPU-per-request level per pod with σ 0.1 to
/// 0.25 (two pods typically differ by 11% to 28%, as 10-30% is what such pods show), and each
/// pod's own NAB trace taken anywhere, anomaly windows included.
fn per_pod_levels(rng: &mut StdRng, s: &mut Scenario) {
    s.pod_level_sigma = rng.random_range(0.1..0.25);
    s.pod_cpu_anomalies = true;
}

/// A class some rarely used path still references, printed by both versions: 0.01% to 0.2%
/// of requests (a path one request in 10,000 to one in 500 takes).
fn background_class_errors(rng: &mut StdRng, s: &mut Scenario) {
    s.background_class_rate = log_uniform(rng, 0.0001, 0.002);
}

/// A fast rollout: 3 to 10 replicas in 25% batches, pods ready 10 to 30 s after they start
/// (a cached image, a readiness probe every 5-10 s), so the last old pod goes within 2
/// minutes.
fn fast_rollout(rng: &mut StdRng, s: &mut Scenario) {
    s.replicas = [3, 4, 6, 8, 10][rng.random_range(0..5)];
    s.pod_interval = rng.random_range(10.0..30.0_f64).round();
    quarter_batches(s);
    assert!(s.rollout_end() - s.rollout_start() < 120.0, "{s:?}");
}

/// What users meet (issue 12): each a category of its own.
fn world(b: &mut Builder) {
    world_healthy(b);
    world_bad(b);
}

fn world_healthy(b: &mut Builder) {
    b.add("healthy: 25% batches", false, 40, TRAFFIC, &|_, c| {
        quarter_batches(&mut c.scenario)
    });
    b.add("healthy: low traffic 0.2-5/s", false, 40, LOW, &|rng, c| {
        low_traffic(rng, &mut c.scenario)
    });
    b.add(
        "healthy: per-pod CPU levels",
        false,
        40,
        TRAFFIC,
        &|rng, c| per_pod_levels(rng, &mut c.scenario),
    );
    b.add(
        "healthy: shared incident in the bake",
        false,
        40,
        TRAFFIC,
        &|rng, c| {
            // Starts 0 to 5 minutes after the last old pod left; the bake is 10 minutes.
            c.bake_incident = Some(incident(rng, |rng| rng.random_range(0.0..300.0)));
        },
    );
    b.add(
        "healthy: background class errors",
        false,
        40,
        TRAFFIC,
        &|rng, c| background_class_errors(rng, &mut c.scenario),
    );
    b.add("healthy: damaged answers", false, 48, TRAFFIC, &|rng, c| {
        c.damage = Some(Damage::draw(rng, c.scenario.seed));
    });
}

fn world_bad(b: &mut Builder) {
    b.add(
        "bad: 25% batches, class errors 0.5%",
        true,
        14,
        TRAFFIC,
        &|_, c| {
            quarter_batches(&mut c.scenario);
            c.scenario.fault = Fault::ClassErrors { fraction: 0.005 };
        },
    );
    b.add(
        "bad: 25% batches, error rate ×3",
        true,
        14,
        TRAFFIC,
        &|_, c| {
            quarter_batches(&mut c.scenario);
            c.scenario.fault = Fault::ErrorRate { multiplier: 3.0 };
        },
    );
    b.add("bad: 25% batches, CPU +50%", true, 14, TRAFFIC, &|_, c| {
        quarter_batches(&mut c.scenario);
        c.scenario.fault = Fault::Cpu { multiplier: 1.5 };
    });
    b.add(
        "bad: low traffic, class errors 1%",
        true,
        14,
        LOW,
        &|rng, c| {
            low_traffic(rng, &mut c.scenario);
            c.scenario.fault = Fault::ClassErrors { fraction: 0.01 };
        },
    );
    b.add("bad: low traffic, CPU +100%", true, 14, LOW, &|rng, c| {
        low_traffic(rng, &mut c.scenario);
        c.scenario.fault = Fault::Cpu { multiplier: 2.0 };
    });
    b.add(
        "bad: per-pod CPU levels, CPU +50%",
        true,
        14,
        TRAFFIC,
        &|rng, c| {
            per_pod_levels(rng, &mut c.scenario);
            c.scenario.fault = Fault::Cpu { multiplier: 1.5 };
        },
    );
    b.add(
        "bad: class errors 0.5% over background class errors",
        true,
        14,
        TRAFFIC,
        &|rng, c| {
            background_class_errors(rng, &mut c.scenario);
            c.scenario.fault = Fault::ClassErrors { fraction: 0.005 };
        },
    );
    b.add(
        "bad: fast rollout, CPU +50-200%",
        true,
        20,
        TRAFFIC,
        &|rng, c| {
            fast_rollout(rng, &mut c.scenario);
            c.scenario.fault = cpu_50_to_200(rng);
        },
    );
}

/// The whole corpus. The original categories draw from the stream first, so their scenarios
/// are those they always were (but for the longer history and the scrape offsets).
///
/// `draw` 0 is the corpus every figure in BENCHMARKS.md is measured on, and the one the rules
/// were tuned on; any other draw is the same categories from other seeds (scenario seeds from
/// `1000 + 100000 × draw`), rollouts nobody has looked at: a check that the figures are not
/// the corpus's own.
pub fn corpus(draw: u64) -> Vec<Case> {
    let mut b = Builder {
        rng: StdRng::seed_from_u64(2026 + draw),
        seed: 1000 + 100_000 * draw,
        cases: Vec::new(),
    };
    original(&mut b);
    world(&mut b);
    harder(&mut b);
    slower_scrapes(&mut b);
    b.cases
}

/// Services scraped every 30 s, the Prometheus Operator's default, and every minute,
/// Prometheus' own (the rest of the corpus is scraped every 15 s): a one-minute `rate()` then
/// holds two samples, or one and has no answer, and an interval's counts one or two, or none.
/// Added last, so every scenario before them stays what it was.
fn slower_scrapes(b: &mut Builder) {
    for (every, scrape_every) in [("30-s", 2), ("1-min", 4)] {
        let name = |what: &str| format!("{what}: {every} scrapes");
        let scraped = move |c: &mut Case| c.scrape_every = scrape_every;
        b.add(&name("healthy"), false, 40, TRAFFIC, &move |_, c| {
            scraped(c)
        });
        let faults: [(&str, &Shape); 3] = [
            ("class errors 0.5%", &|_, c| {
                c.scenario.fault = Fault::ClassErrors { fraction: 0.005 }
            }),
            ("error rate ×3", &|_, c| {
                c.scenario.fault = Fault::ErrorRate { multiplier: 3.0 }
            }),
            ("CPU +50-200%", &|rng, c| {
                c.scenario.fault = cpu_50_to_200(rng)
            }),
        ];
        for (fault, shape) in faults {
            b.add(
                &format!("{}, {fault}", name("bad")),
                true,
                14,
                TRAFFIC,
                &move |rng, c| {
                    scraped(c);
                    shape(rng, c);
                },
            );
        }
    }
}

/// Added after the rest, so the scenarios before them stay what they were: where a judge's
/// own mechanisms are weakest.
fn harder(b: &mut Builder) {
    b.add(
        "healthy: mild shared incident in the bake",
        false,
        40,
        TRAFFIC,
        &|rng, c| {
            // An incident that only doubles to quadruples the error rate, for 2 to 5 minutes
            // starting 0 to 5 minutes after the last old pod left: too mild to stand far above
            // the rest of the bake, as a regression's excess would not either.
            let base = c.scenario.base_error_rate;
            let mut i = incident(rng, |rng| rng.random_range(0.0..300.0));
            i.extra_error_rate = base * rng.random_range(1.0..3.0);
            i.cpu_multiplier = 1.0;
            c.bake_incident = Some(i);
        },
    );
    b.add(
        "healthy: container restarts",
        false,
        40,
        TRAFFIC,
        &|rng, c| {
            // One to four containers restart inside their pods (an OOM kill, a crash): old
            // pods any time in their hour or during the rollout, new pods in their first 20
            // minutes. Each starts its counters again, its error counters gone until its next
            // error: what the judge must not read as the release's doing.
            let n = rng.random_range(1..=4);
            let replicas = c.scenario.replicas;
            c.scenario.restarts = (0..n)
                .map(|_| {
                    let new = rng.random::<bool>();
                    let last = if new { 1200.0 } else { 4000.0 };
                    Restart {
                        new,
                        pod: rng.random_range(0..replicas),
                        after: rng.random_range(60.0..last),
                    }
                })
                .collect();
        },
    );
    b.add(
        "bad: crashing release, error rate ×3",
        true,
        14,
        TRAFFIC,
        &|rng, c| {
            // A release that triples the errors and whose containers crash every 3 to 8
            // minutes: every new pod restarts again and again, its counters from zero each time.
            c.scenario.fault = Fault::ErrorRate { multiplier: 3.0 };
            let period = rng.random_range(180.0..480.0);
            let replicas = c.scenario.replicas;
            c.scenario.restarts = (0..replicas)
                .flat_map(|pod| {
                    let first = rng.random_range(60.0..period);
                    (0..8).map(move |n| Restart {
                        new: true,
                        pod,
                        after: first + n as f64 * period,
                    })
                })
                .collect();
        },
    );
    b.add("healthy: start-up errors", false, 40, TRAFFIC, &|rng, c| {
        // Every new pod fails 0.5% to 5% of its requests more in its first 30 to 90 s
        // (cold caches, connection pools still filling), as every release's pods do: the
        // old pods did too, more than an hour before. Ordinary errors, no class-loading ones.
        c.scenario.warmup = Some(Warmup {
            seconds: rng.random_range(30.0..90.0),
            cpu_multiplier: rng.random_range(1.0..2.0),
            error_rate: log_uniform(rng, 0.005, 0.05),
            decay_seconds: 0.0,
        });
    });
    b.add(
        "healthy: shared incident in the bake, slow recovery",
        false,
        40,
        TRAFFIC,
        &|rng, c| {
            // An incident that does not end at once: 1 to 3 minutes at full strength, then
            // fading over 2 to 5 minutes (a connection pool refilling, a cache warming again),
            // starting 0 to 5 minutes after the last old pod left. Half of them errors (the
            // rest CPU, as [`incident`] draws them), of those half strong and half mild as
            // above: the tail raises the rest of the bake a little, as a regression would.
            let base = c.scenario.base_error_rate;
            let mut i = incident(rng, |rng| rng.random_range(0.0..300.0));
            i.seconds = rng.random_range(60.0..180.0);
            i.recovery_seconds = rng.random_range(120.0..300.0);
            if rng.random::<bool>() && i.extra_error_rate > 0.0 {
                i.extra_error_rate = base * rng.random_range(1.0..3.0);
            }
            c.bake_incident = Some(i);
        },
    );
    b.add(
        "healthy: points lost without a warning",
        false,
        24,
        TRAFFIC,
        &|rng, c| {
            // A store that lost a block or a remote read that gave up quietly: about half of
            // the series of every answer, either side's requests, errors and CPU, without
            // points for 2 to 10 minutes in the first 10, with no warning to say so. Seen in a test against a
            // real Prometheus: a gap in the new pods' request series rolled back a healthy
            // release, its errors held against the other pods' requests.
            c.damage = Some(Damage::lost_points(rng, c.scenario.seed));
        },
    );
    b.add(
        "healthy: warm-up CPU falling slowly",
        false,
        40,
        TRAFFIC,
        &|rng, c| c.scenario.warmup = Some(start_up_cpu(rng, true)),
    );
    b.add(
        "bad: CPU +50% with a warm-up",
        true,
        14,
        TRAFFIC,
        &|rng, c| {
            // A regression whose pods warm up too, as every release's do: what a judge that
            // waits out the warm-up pays for it.
            c.scenario.fault = Fault::Cpu { multiplier: 1.5 };
            let falling = rng.random::<bool>();
            c.scenario.warmup = Some(start_up_cpu(rng, falling));
        },
    );
    b.add(
        "healthy: after a short-lived version",
        false,
        40,
        TRAFFIC,
        &|rng, c| short_lived(rng, &mut c.scenario),
    );
    b.add(
        "bad: after a short-lived version, CPU +50-200%",
        true,
        14,
        TRAFFIC,
        &|rng, c| {
            short_lived(rng, &mut c.scenario);
            c.scenario.fault = cpu_50_to_200(rng);
        },
    );
}

/// A CPU regression of +50% to +200%, log-uniform.
fn cpu_50_to_200(rng: &mut StdRng) -> Fault {
    Fault::Cpu {
        multiplier: log_uniform(rng, 1.5, 3.0),
    }
}

/// A release that follows the last one by 5 to 25 minutes (a hotfix, or a test that deploys
/// v1 and then v2): the old version's history is that short. Half of them roll out within two
/// minutes, as a hotfix is hurried.
fn short_lived(rng: &mut StdRng, s: &mut Scenario) {
    s.before = rng.random_range(300.0..1500.0_f64).round();
    if rng.random::<bool>() {
        fast_rollout(rng, s);
    }
}

/// New pods' start-up CPU: two to four times the demand, for 1 to 3 minutes at once, or
/// falling by e every 20 to 60 s (caches filling ever more slowly: up to ×1.4 two minutes in,
/// what no fixed warm-up fits).
fn start_up_cpu(rng: &mut StdRng, falling: bool) -> Warmup {
    if falling {
        let cpu_multiplier = rng.random_range(2.0..4.0);
        let decay_seconds = rng.random_range(20.0..60.0);
        Warmup {
            seconds: 6.0 * decay_seconds,
            cpu_multiplier,
            decay_seconds,
            error_rate: 0.0,
        }
    } else {
        Warmup {
            seconds: rng.random_range(60.0..180.0),
            cpu_multiplier: rng.random_range(2.0..4.0),
            decay_seconds: 0.0,
            error_rate: 0.0,
        }
    }
}
