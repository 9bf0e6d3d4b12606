//! `SimSource` against a real Prometheus: the detection benchmark's honesty rests on the
//! simulated metric source answering as Prometheus does.
//!
//! Each test generates one history, backfills it into a fresh Prometheus (`support::prometheus`)
//! and replays the default rules every 30 s from the first new pod to the end of the bake
//! through a source that asks both the real Prometheus and `SimSource` every query, comparing
//! the answers series by series and point by point; then the instant `increase()` queries the
//! benchmark's baselines send. Prometheus is required: the tests fail, never skip, when it is
//! missing.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;
use rollout_guard::adapters::prometheus::PrometheusSource;
use rollout_guard::analysis::duration::PromDuration;
use rollout_guard::analysis::evaluate::evaluate;
use rollout_guard::analysis::rules::RuleSet;
use rollout_guard::analysis::source::{MetricSource, Series, SourceError};
use rollout_guard::analysis::template::pods_regex;
use rollout_guard::sim::simulate::{Fault, History, Restart, Scenario, SimSource};
use support::prometheus::Prometheus;
use support::rollout::{history, openmetrics, source, ts};

/// Relative difference allowed between the two answers (both compute in binary64; only the
/// order of additions may differ).
const TOLERANCE: f64 = 1e-9;

/// Asks both sources, answers with Prometheus', and keeps every difference.
struct Both<'a> {
    real: PrometheusSource,
    sim: SimSource<'a>,
    /// The true counts, which must differ from Prometheus' `increase()` somewhere (or the test
    /// proves nothing about the extrapolation).
    exact: SimSource<'a>,
    compared: Mutex<usize>,
    differences: Mutex<Vec<String>>,
    /// Answers to `increase()` queries (the baselines'), and those where the true counts
    /// differ from Prometheus'.
    increases: Mutex<usize>,
    exact_differences: Mutex<usize>,
    /// Answers to the default error-rate rules' counts: a counter against itself an
    /// interval before (`offset`), which has nothing to extrapolate.
    offsets: Mutex<usize>,
    /// Points Prometheus answered to the CPU rules' queries (a minute's rate, or two
    /// minutes' at slow scrapes).
    cpu_points: Mutex<usize>,
}

impl Both<'_> {
    fn count_cpu(&self, query: &str, real: &Result<Vec<Series>, SourceError>) {
        if query.contains("container_cpu_usage_seconds_total")
            && let Ok(series) = real
        {
            *self.cpu_points.lock().unwrap() +=
                series.iter().map(|s| s.points.len()).sum::<usize>();
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= TOLERANCE * a.abs().max(b.abs())
}

/// Series by their labels.
fn by_labels(series: &[Series]) -> BTreeMap<String, &Series> {
    series
        .iter()
        .map(|s| (format!("{:?}", s.labels), s))
        .collect()
}

/// The differences between two answers.
fn differences(
    real: &Result<Vec<Series>, SourceError>,
    sim: &Result<Vec<Series>, SourceError>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    match (real, sim) {
        (Ok(real), Ok(sim)) => {
            let (real, sim) = (by_labels(real), by_labels(sim));
            for key in real.keys().chain(sim.keys()) {
                match (real.get(key), sim.get(key)) {
                    (Some(r), Some(s)) => diffs.extend(points(r, s)),
                    (r, _) => diffs.push(format!(
                        "series {key} only in {}",
                        if r.is_some() {
                            "Prometheus"
                        } else {
                            "SimSource"
                        }
                    )),
                }
            }
        }
        (real, sim) => diffs.push(format!("Prometheus {real:?}, SimSource {sim:?}")),
    }
    diffs
}

impl Both<'_> {
    fn compare(
        &self,
        query: &str,
        real: &Result<Vec<Series>, SourceError>,
        sim: &Result<Vec<Series>, SourceError>,
        exact: &Result<Vec<Series>, SourceError>,
    ) {
        let diffs = differences(real, sim);
        *self.compared.lock().unwrap() += 1;
        if query.contains("increase(") {
            *self.increases.lock().unwrap() += 1;
            *self.exact_differences.lock().unwrap() +=
                usize::from(!differences(real, exact).is_empty());
        }
        *self.offsets.lock().unwrap() += usize::from(query.contains(" offset "));
        let mut all = self.differences.lock().unwrap();
        all.extend(diffs.into_iter().map(|d| format!("{query}: {d}")));
    }
}

fn points(real: &Series, sim: &Series) -> Vec<String> {
    let (r, s) = (&real.points, &sim.points);
    let mut diffs = Vec::new();
    if r.len() != s.len() {
        let times = |p: &[rollout_guard::analysis::source::Point]| -> Vec<f64> {
            p.iter().map(|p| p.t).collect()
        };
        diffs.push(format!(
            "{}: {} points in Prometheus at {:?}, {} in SimSource at {:?}",
            real.name(),
            r.len(),
            times(r),
            s.len(),
            times(s)
        ));
    }
    for (a, b) in r.iter().zip(s) {
        if a.t != b.t || !close(a.v, b.v) {
            diffs.push(format!(
                "{}: Prometheus {} at {}, SimSource {} at {}",
                real.name(),
                a.v,
                a.t,
                b.v,
                b.t
            ));
        }
    }
    diffs
}

impl MetricSource for Both<'_> {
    async fn instant(&self, query: &str, at: Timestamp) -> Result<Vec<Series>, SourceError> {
        let real = self.real.instant(query, at).await;
        let sim = self.sim.instant(query, at).await;
        let exact = self.exact.instant(query, at).await;
        self.compare(&format!("{query} at {at}"), &real, &sim, &exact);
        self.count_cpu(query, &real);
        real
    }

    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        let real = self.real.range(query, start, end, step).await;
        let sim = self.sim.range(query, start, end, step).await;
        let exact = self.exact.range(query, start, end, step).await;
        let what = format!("{query} from {start} to {end}");
        self.compare(&what, &real, &sim, &exact);
        self.count_cpu(query, &real);
        real
    }
}

/// The instant queries the benchmark's baselines send, for one ReplicaSet.
fn baseline_queries(rs: &str) -> Vec<String> {
    let pods = pods_regex(&[rs.to_string()]).replace('\\', "\\\\");
    vec![
        format!(r#"sum(increase(php_errors_total{{pod=~"{pods}"}}[1m]))"#),
        format!(r#"sum(increase(php_errors_total{{pod=~"{pods}",type=~"class_not_found"}}[1m]))"#),
        format!(r#"sum(increase(php_requests_total{{pod=~"{pods}"}}[1m]))"#),
        format!(
            r#"sum by (pod) (rate(container_cpu_usage_seconds_total{{pod=~"{pods}"}}[1m])) / sum by (pod) (kube_pod_container_resource_limits{{pod=~"{pods}",resource="cpu"}})"#
        ),
        format!(
            r#"sum by (pod) (rate(container_cpu_usage_seconds_total{{pod=~"{pods}"}}[1m])) / sum by (pod) (rate(php_requests_total{{pod=~"{pods}"}}[1m]))"#
        ),
    ]
}

/// Replays the default rules and the baselines' queries through both sources; panics listing
/// the differences, if any. Returns how many points Prometheus answered to the CPU queries.
async fn same_answers(h: &History) -> usize {
    let prometheus = Prometheus::start(&openmetrics(h)).expect("start Prometheus");
    let both = Both {
        real: source(&prometheus.url()),
        sim: SimSource::new(h),
        exact: SimSource::exact(h),
        compared: Mutex::new(0),
        differences: Mutex::new(Vec::new()),
        increases: Mutex::new(0),
        exact_differences: Mutex::new(0),
        offsets: Mutex::new(0),
        cpu_points: Mutex::new(0),
    };
    let rules = RuleSet::defaults();
    let s = &h.scenario;
    let mut t = s.rollout_start() + 30.0;
    while t <= s.end() {
        evaluate(&rules, &h.target_at(t), ts(t), &both).await;
        for rs in [&h.new_replicaset, &h.old_replicaset] {
            for q in baseline_queries(rs) {
                let _ = both.instant(&q, ts(t)).await;
            }
        }
        t += 30.0;
    }
    let compared = *both.compared.lock().unwrap();
    let (increases, offsets) = (
        *both.increases.lock().unwrap(),
        *both.offsets.lock().unwrap(),
    );
    let exact = *both.exact_differences.lock().unwrap();
    let diffs = both.differences.into_inner().unwrap();
    assert!(compared > 400, "only {compared} answers compared");
    assert!(
        diffs.is_empty(),
        "{} of {compared} answers differ; first ones:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
    assert!(offsets > 100, "only {offsets} answers to offset counts");
    assert!(
        exact * 4 > increases,
        "the true counts differ from Prometheus' increase() in only {exact} of {increases} answers"
    );
    both.cpu_points.into_inner().unwrap()
}

/// A rollout as the benchmark's new categories have them: 25% batches, pods scraped at their
/// own offsets, little traffic (error counters born late, some never), a background class
/// error on every pod and a class-loading fault on the new ones.
fn world_like() -> Scenario {
    let mut s = Scenario::healthy("prometheus-sim", 3);
    s.before = 900.0;
    s.replicas = 8;
    s.max_surge = 2;
    s.max_unavailable = 2;
    s.pod_interval = 45.0;
    s.rps_per_pod = 1.5;
    s.base_error_rate = 0.004;
    s.error_burstiness = 0.7;
    s.background_class_rate = 0.002;
    s.scrape_offsets = true;
    s.fault = Fault::ClassErrors { fraction: 0.005 };
    s
}

#[tokio::test]
async fn sim_source_answers_as_prometheus_with_offset_scrapes() {
    let h = history(&world_like());
    // Not vacuous: some error counters are born during the rollout.
    let born_late = h
        .pods
        .iter()
        .filter(|p| p.errors.first().is_some_and(|e| e[0] == 0.0))
        .filter(|p| p.errors.last().is_some_and(|e| e[0] > 0.0))
        .count();
    assert!(born_late > 0, "no class_not_found counter born late");
    same_answers(&h).await;
}

#[tokio::test]
async fn sim_source_answers_as_prometheus_across_container_restarts() {
    // Old and new pods restarting their containers (an old pod before the rollout, new pods
    // during it and in the bake): counters from zero again, error counters gone until their
    // next error, and the counter differences going negative.
    let mut s = world_like();
    s.restarts = [
        (false, 1, 300.0),
        (true, 0, 200.0),
        (true, 3, 400.0),
        (true, 0, 700.0),
    ]
    .map(|(new, pod, after)| Restart { new, pod, after })
    .to_vec();
    let h = history(&s);
    let gone = h
        .pods
        .iter()
        .filter(|p| p.errors.windows(2).any(|w| w[0][0] > 0.0 && w[1][0] == 0.0))
        .count();
    assert!(gone > 0, "no error counter gone after a restart");
    same_answers(&h).await;
}

#[tokio::test]
async fn sim_source_answers_as_prometheus_with_samples_on_the_range_edges() {
    // The integration tests' own histories: every pod scraped on the history's 15-s clock, so
    // samples fall on the edges of the ranges the rules ask for.
    let mut s = world_like();
    s.scrape_offsets = false;
    s.max_surge = 1;
    s.max_unavailable = 0;
    same_answers(&history(&s)).await;
}

#[tokio::test]
async fn sim_source_answers_as_prometheus_with_30_and_60_second_scrapes() {
    // The benchmark's slower scrapes: the Prometheus Operator's 30 s and Prometheus' own
    // default of a minute, where a one-minute rate() holds two samples or one (and then has
    // no answer), on samples at their own offsets and on the range edges.
    for (every, offsets) in [(2, true), (4, true), (4, false)] {
        let mut s = world_like();
        s.scrape_offsets = offsets;
        // Restarts too: `changes()` sees only the scrapes that happened.
        s.restarts = [(false, 1, 300.0), (true, 0, 200.0), (true, 3, 400.0)]
            .map(|(new, pod, after)| Restart { new, pod, after })
            .to_vec();
        let h = history(&s).scraped_every(every);
        let kept = h.pods[0].requests.iter().filter(|v| !v.is_nan()).count();
        assert!(
            kept * every <= h.pods[0].requests.len() + every,
            "one scrape in {every} kept: {kept} of {}",
            h.pods[0].requests.len()
        );
        let cpu = same_answers(&h).await;
        // Not vacuous: the CPU rules' queries have answers (a minute's rate alone has almost
        // none at a one-minute scrape).
        assert!(cpu > 1000, "{cpu} points of CPU at one scrape in {every}");
    }
}
