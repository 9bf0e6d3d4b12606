//! Detectability reference: the power of an oracle that knows the generating model.
//!
//! It knows the healthy error rate and its Gamma burstiness exactly (and the background class
//! error rate), tests the new pods' total count of the fault's errors once, at level
//! [`ORACLE_ALPHA`], and needs no baseline. Most powerful for the total count of the new pods'
//! errors; no judge estimating the baseline from data does better by much. Two looks: when the
//! last old pod leaves (the most a judge comparing with the old pods alone can use) and at the
//! end of the bake (what a judge with a history baseline could use). `None` for faults it does
//! not model (CPU).
//!
//! Given each scrape's requests `r`, the simulation draws errors as Poisson(r·b·G) with G ~
//! Gamma(k, 1/k): negative binomial with mean μ = r·b and variance μ + μ²/k. The sum over the
//! new pods' scrapes is taken as negative binomial with the same mean and variance.
//! Class-loading errors happen on healthy pods only at the background rate (Poisson), so the
//! oracle's test there is a Poisson count test, "any class error" when there is none.
//!
//! Its test applied to the errors the new pods actually made says whether a rollout was
//! detectable in principle (issue 12's goal counts recall among those, and every CPU fault).

use rollout_guard::sim::simulate::{ERROR_TYPES, Fault, History, SCRAPE, Scenario};
use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// Level of the oracle test: the same as each of our rules' α.
pub const ORACLE_ALPHA: f64 = 0.001;

/// What the new pods did after the first new pod up to `until`: requests per scrape, and
/// the class-loading and other errors in all.
struct NewPods {
    requests: Vec<f64>,
    class_errors: f64,
    other_errors: f64,
}

fn new_pods(h: &History, until: f64) -> NewPods {
    let from = h.scenario.rollout_start();
    let mut out = NewPods {
        requests: Vec::new(),
        class_errors: 0.0,
        other_errors: 0.0,
    };
    for pod in h.pods.iter().filter(|p| p.new) {
        for i in 0..pod.requests.len() {
            let t = pod.start + i as f64 * SCRAPE;
            if t > from && t <= until {
                let (r0, e0) = match i {
                    0 => (0.0, [0.0; ERROR_TYPES.len()]),
                    _ => (pod.requests[i - 1], pod.errors[i - 1]),
                };
                // At a container restart the counters started again from zero: their value
                // is what they counted since.
                let restarted = pod.restarts.contains(&i);
                let inc = |a: f64, b: f64| if restarted { a } else { a - b };
                out.requests.push(inc(pod.requests[i], r0));
                let e: Vec<f64> = pod.errors[i]
                    .iter()
                    .zip(e0)
                    .map(|(a, b)| inc(*a, b))
                    .collect();
                out.class_errors += e[..4].iter().sum::<f64>();
                out.other_errors += e[4..].iter().sum::<f64>();
            }
        }
    }
    out
}

/// Smallest count `c` with `P0(X ≥ c) ≤ α`, for a tail function `P(X ≥ c)`.
fn critical(tail0: impl Fn(u64) -> f64) -> u64 {
    let (mut lo, mut hi) = (0u64, 1u64);
    while tail0(hi) > ORACLE_ALPHA {
        hi *= 2;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if tail0(mid) > ORACLE_ALPHA {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// What the oracle concludes, looking once.
pub struct Look {
    /// The chance that its test rejects, over the draws of the errors.
    pub power: f64,
    /// Whether the errors the new pods actually made reject: "detectable in principle" for
    /// this rollout.
    pub detected: bool,
}

/// The oracle's look at this history at `until`; `None` for faults it does not model.
pub fn look(h: &History, until: f64) -> Option<Look> {
    let s = &h.scenario;
    let new = new_pods(h, until);
    match s.fault {
        Fault::ClassErrors { fraction } => {
            let total: f64 = new.requests.iter().sum();
            class_look(total, s.background_class_rate, fraction, new.class_errors)
        }
        Fault::ErrorRate { multiplier } => {
            error_look(s, &new.requests, multiplier, new.other_errors)
        }
        Fault::None | Fault::Cpu { .. } => None,
    }
}

/// P(X ≥ c) of a discrete distribution: `sf(c − 1)`.
fn at_least(sf: impl Fn(u64) -> f64, c: u64) -> f64 {
    if c == 0 { 1.0 } else { sf(c - 1) }
}

/// The base errors' negative binomial test of the rate against `multiplier` times it.
fn error_look(s: &Scenario, requests: &[f64], multiplier: f64, observed: f64) -> Option<Look> {
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
    let c = critical(|c| at_least(|x| h0.sf(x), c));
    Some(Look {
        power: at_least(|x| h1.sf(x), c),
        detected: observed >= c as f64,
    })
}

/// A Poisson count test of `background` against `background + fraction` class errors per
/// request over `requests` requests ("any class error" without a background).
fn class_look(requests: f64, background: f64, fraction: f64, observed: f64) -> Option<Look> {
    let bad = requests * (background + fraction);
    if background <= 0.0 {
        return Some(Look {
            power: 1.0 - (-bad).exp(),
            detected: observed >= 1.0,
        });
    }
    let (h0, h1) = (
        Poisson::new(requests * background).ok()?,
        Poisson::new(bad).ok()?,
    );
    let c = critical(|c| at_least(|x| h0.sf(x), c));
    Some(Look {
        power: at_least(|x| h1.sf(x), c),
        detected: observed >= c as f64,
    })
}
