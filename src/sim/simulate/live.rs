//! A metric source for a live simulated cluster: the pods that exist (in the fake API server,
//! or any cluster) produce the series the default rules query, on a clock that may run faster
//! than the wall clock, so a test or the demo plays a half-hour rollout in seconds.
//!
//! Owns the per-pod generator (Poisson requests and errors, CPU with saturation and CFS
//! throttling) and the time dilation. Which pods misbehave is read from their
//! `sim.rollout-guard.io/fault` annotation (`class-errors`, `cpu-saturation`, `cpu-regression`), which they
//! inherit from the Deployment's pod template, so "releasing a bad version" is a template
//! change like any other. Queries are answered by [`SimSource`] over the histories built so
//! far; a pod that disappears keeps its past samples, as in Prometheus. Needs a pod lister and
//! nothing else; it never writes anywhere.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{
    ERROR_TYPES, History, PodHistory, SCRAPE, Scenario, SimSource, poisson, throttle_fraction,
};
use crate::analysis::duration::PromDuration;
use crate::analysis::source::{MetricSource, Series, SourceError, unix_seconds};

/// The pod annotation that selects a pod's fault.
pub const FAULT_ANNOTATION: &str = "sim.rollout-guard.io/fault";

/// What a simulated pod does wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LiveFault {
    /// Behaves like every other pod.
    #[default]
    None,
    /// A removed class still referenced: `class_not_found` errors on a share of requests.
    ClassErrors,
    /// Three times the CPU per request, up against the limit.
    CpuSaturation,
    /// Twice the CPU per request, still under the limit (0.85 of it by default): only the cost
    /// per request shows it.
    CpuRegression,
}

impl LiveFault {
    /// Reads the annotation value; unknown values are no fault.
    pub fn parse(v: Option<&str>) -> LiveFault {
        match v.map(str::trim) {
            Some("class-errors") => LiveFault::ClassErrors,
            Some("cpu-saturation") => LiveFault::CpuSaturation,
            Some("cpu-regression") => LiveFault::CpuRegression,
            _ => LiveFault::None,
        }
    }
}

/// A pod as the source needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePod {
    /// The pod's name.
    pub name: String,
    /// The ReplicaSet that owns it.
    pub replicaset: String,
    /// Wall-clock start (dilated by the source's clock).
    pub started: Timestamp,
    /// What it does wrong, from its `sim.rollout-guard.io/fault` annotation.
    pub fault: LiveFault,
}

/// Lists the pods that exist now.
pub trait PodLister: Send + Sync {
    /// The pods that exist now, each with the ReplicaSet that owns it.
    fn pods(&self) -> impl Future<Output = Result<Vec<LivePod>, SourceError>> + Send;
}

/// Simulated time: `speed` simulated seconds per wall-clock second from `origin` on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DilatedClock {
    /// The wall-clock time at which simulated and wall-clock time agree.
    pub origin: Timestamp,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
}

impl DilatedClock {
    /// A clock that starts at the current time and runs `speed` times as fast.
    pub fn new(speed: f64) -> Self {
        DilatedClock {
            origin: Timestamp::now(),
            speed,
        }
    }

    /// The simulated time of a wall-clock time.
    pub fn sim(&self, wall: Timestamp) -> Timestamp {
        let real = wall.duration_since(self.origin).as_secs_f64();
        self.origin
            .checked_add(SignedDuration::from_secs_f64(real * self.speed))
            .unwrap_or(wall)
    }

    /// The simulated time now.
    pub fn now(&self) -> Timestamp {
        self.sim(Timestamp::now())
    }
}

/// How the simulated service behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// Requests per second on each pod (Poisson).
    pub rps_per_pod: f64,
    /// PHP errors per request on every pod.
    pub base_error_rate: f64,
    /// `class_not_found` errors per request on a pod with [`LiveFault::ClassErrors`].
    pub class_error_rate: f64,
    /// CPU seconds one request takes (three times as many with [`LiveFault::CpuSaturation`],
    /// twice with [`LiveFault::CpuRegression`]).
    pub cpu_per_request: f64,
    /// CPU cores a pod uses with no requests.
    pub idle_cpu: f64,
    /// The pod's CPU limit, in cores; demand beyond it is throttled.
    pub cpu_limit: f64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            rps_per_pod: 20.0,
            base_error_rate: 0.002,
            class_error_rate: 0.01,
            cpu_per_request: 0.02,
            idle_cpu: 0.05,
            cpu_limit: 1.0,
        }
    }
}

/// A pod seen, with the simulated time it was found gone.
type Seen = (LivePod, Option<f64>);

/// The metric source of a live simulated cluster.
pub struct LiveSource<L> {
    lister: L,
    clock: DilatedClock,
    profile: Profile,
    /// Every pod seen, with the simulated time it was last seen while gone.
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl<L: PodLister> LiveSource<L> {
    /// A source of the pods `lister` lists, on `clock`, behaving as `profile` says.
    pub fn new(lister: L, clock: DilatedClock, profile: Profile) -> Self {
        LiveSource {
            lister,
            clock,
            profile,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The histories of every pod seen so far, up to `end` (simulated unix seconds).
    async fn histories(&self, end: f64) -> Result<History, SourceError> {
        let now_pods = self.lister.pods().await?;
        let now = unix_seconds(self.clock.now());
        let pods: Vec<(LivePod, Option<f64>)> = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for p in &now_pods {
                seen.insert(p.name.clone(), (p.clone(), None));
            }
            for (name, (_, gone)) in seen.iter_mut() {
                if gone.is_none() && !now_pods.iter().any(|p| &p.name == name) {
                    *gone = Some(now);
                }
            }
            seen.values().cloned().collect()
        };
        let histories = pods
            .iter()
            .map(|(p, gone)| self.pod_history(p, gone.unwrap_or(end).min(end)))
            .collect();
        Ok(History {
            scenario: Scenario::healthy("live", 0),
            old_replicaset: String::new(),
            new_replicaset: String::new(),
            pods: histories,
            first_fault_error: None,
        })
    }

    /// A pod's samples from its start to `end`; the same pod always gets the same samples.
    fn pod_history(&self, pod: &LivePod, end: f64) -> PodHistory {
        let start = unix_seconds(self.clock.sim(pod.started));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        pod.name.hash(&mut h);
        let mut rng = StdRng::seed_from_u64(h.finish());
        let p = &self.profile;
        let n = if end >= start {
            ((end - start) / SCRAPE).floor() as usize + 1
        } else {
            0
        };
        let mut out = PodHistory {
            name: pod.name.clone(),
            replicaset: pod.replicaset.clone(),
            new: false,
            start,
            requests: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            cpu_seconds: Vec::with_capacity(n),
            cfs_periods: Vec::with_capacity(n),
            cfs_throttled: Vec::with_capacity(n),
            cpu_limit: p.cpu_limit,
            restarts: Vec::new(),
        };
        let (mut req, mut errs, mut cpu, mut periods, mut throttled) =
            (0.0, [0.0; ERROR_TYPES.len()], 0.0, 0.0, 0.0);
        for i in 0..n {
            if i > 0 {
                let r = poisson(&mut rng, p.rps_per_pod * SCRAPE);
                req += r;
                // Ordinary PHP errors, shared by every version: warnings and exceptions.
                errs[4] += poisson(&mut rng, r * p.base_error_rate * 0.6);
                errs[5] += poisson(&mut rng, r * p.base_error_rate * 0.4);
                if pod.fault == LiveFault::ClassErrors {
                    errs[0] += poisson(&mut rng, r * p.class_error_rate);
                }
                let factor = match pod.fault {
                    LiveFault::CpuSaturation => 3.0,
                    LiveFault::CpuRegression => 2.0,
                    LiveFault::None | LiveFault::ClassErrors => 1.0,
                };
                let demand = p.idle_cpu + r / SCRAPE * p.cpu_per_request * factor;
                let used = demand.min(p.cpu_limit);
                cpu += used * SCRAPE;
                let step_periods = SCRAPE / 0.1;
                periods += step_periods;
                throttled += (step_periods * throttle_fraction(demand / p.cpu_limit)).round();
            }
            out.requests.push(req);
            out.errors.push(errs);
            out.cpu_seconds.push(cpu);
            out.cfs_periods.push(periods);
            out.cfs_throttled.push(throttled);
        }
        out
    }
}

impl<L: PodLister> MetricSource for LiveSource<L> {
    async fn instant(&self, query: &str, at: Timestamp) -> Result<Vec<Series>, SourceError> {
        let h = self.histories(unix_seconds(at)).await?;
        SimSource::new(&h).instant(query, at).await
    }

    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        let h = self.histories(unix_seconds(end)).await?;
        SimSource::new(&h).range(query, start, end, step).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::evaluate::{Target, evaluate};
    use crate::analysis::judge::Outcome;
    use crate::analysis::rules::RuleSet;

    struct Fixed(Vec<LivePod>);

    impl PodLister for Fixed {
        async fn pods(&self) -> Result<Vec<LivePod>, SourceError> {
            Ok(self.0.clone())
        }
    }

    fn pod(rs: &str, i: usize, started: Timestamp, fault: LiveFault) -> LivePod {
        LivePod {
            name: format!("{rs}-abcd{i}"),
            replicaset: rs.into(),
            started,
            fault,
        }
    }

    /// Four old pods running for an hour, two new ones for 20 minutes, then judged.
    async fn judge_with(fault: LiveFault) -> Vec<(String, Outcome)> {
        let now = Timestamp::now();
        let clock = DilatedClock {
            origin: now,
            speed: 1.0,
        };
        let hour_ago = now - SignedDuration::from_hours(1);
        let twenty = now - SignedDuration::from_mins(20);
        let mut pods: Vec<LivePod> = (0..4)
            .map(|i| pod("shop-old11", i, hour_ago, LiveFault::None))
            .collect();
        pods.extend((0..2).map(|i| pod("shop-new22", i, twenty, fault)));
        let source = LiveSource::new(Fixed(pods), clock, Profile::default());
        let target = Target {
            namespace: "web".into(),
            deployment: "shop".into(),
            new_replicaset: "shop-new22".into(),
            old_replicasets: vec!["shop-old11".into()],
            departed: Vec::new(),
        };
        let e = evaluate(&RuleSet::defaults(), &target, now, &source).await;
        e.verdicts
            .into_iter()
            .map(|v| (v.rule, v.outcome))
            .collect()
    }

    fn outcome(v: &[(String, Outcome)], rule: &str) -> Outcome {
        v.iter().find(|(r, _)| r == rule).unwrap().1
    }

    #[tokio::test]
    async fn healthy_pods_pass_and_faults_fail_their_rules() {
        let healthy = judge_with(LiveFault::None).await;
        for (rule, o) in &healthy {
            assert_ne!(
                *o,
                Outcome::Fail,
                "{rule} failed on healthy pods: {healthy:?}"
            );
        }
        assert_eq!(outcome(&healthy, "class-loading-errors"), Outcome::Pass);
        let class = judge_with(LiveFault::ClassErrors).await;
        assert_eq!(
            outcome(&class, "class-loading-errors"),
            Outcome::Fail,
            "{class:?}"
        );
        let cpu = judge_with(LiveFault::CpuSaturation).await;
        assert_eq!(outcome(&cpu, "cpu-saturation"), Outcome::Fail, "{cpu:?}");
        assert_eq!(
            outcome(&cpu, "class-loading-errors"),
            Outcome::Pass,
            "{cpu:?}"
        );
        // More CPU per request, under the limit: the cost per request shows it, saturation not.
        let costly = judge_with(LiveFault::CpuRegression).await;
        assert_eq!(
            outcome(&costly, "cpu-per-request"),
            Outcome::Fail,
            "{costly:?}"
        );
        assert_ne!(
            outcome(&costly, "cpu-saturation"),
            Outcome::Fail,
            "{costly:?}"
        );
    }

    #[test]
    fn the_clock_runs_at_its_speed() {
        let origin = Timestamp::from_second(1_800_000_000).unwrap();
        let c = DilatedClock {
            origin,
            speed: 60.0,
        };
        let later = origin + SignedDuration::from_secs(10);
        assert_eq!(c.sim(later), origin + SignedDuration::from_mins(10));
        assert_eq!(
            LiveFault::parse(Some("class-errors")),
            LiveFault::ClassErrors
        );
        assert_eq!(LiveFault::parse(Some("nonsense")), LiveFault::None);
    }
}

/// Lists the pods of a namespace through the Kubernetes API (the fake API server in tests and
/// the demo; a real cluster works the same).
#[derive(Clone)]
pub struct KubePods {
    /// The pods of the namespace.
    pub api: kube::Api<k8s_openapi::api::core::v1::Pod>,
}

impl KubePods {
    /// Lists the pods of `namespace` through `client`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        KubePods {
            api: kube::Api::namespaced(client, namespace),
        }
    }
}

impl PodLister for KubePods {
    async fn pods(&self) -> Result<Vec<LivePod>, SourceError> {
        let list = self
            .api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| SourceError::Unreachable(format!("listing pods: {e}")))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|p| {
                let replicaset = p
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|o| o.kind == "ReplicaSet")
                    .map(|o| o.name.clone())?;
                let started = p
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .or(p.metadata.creation_timestamp.as_ref())
                    .map(|t| t.0)?;
                let fault = LiveFault::parse(
                    p.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(FAULT_ANNOTATION))
                        .map(String::as_str),
                );
                Some(LivePod {
                    name: p.metadata.name?,
                    replicaset,
                    started,
                    fault,
                })
            })
            .collect())
    }
}
