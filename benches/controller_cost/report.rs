//! The benchmark's figures and how they are printed: a line per phase while it runs, then
//! Markdown tables ready for BENCHMARKS.md.

use std::collections::BTreeMap;
use std::time::Duration;

use super::daemon::Proc;
use super::heap::Heap;
use super::prom;

/// One phase's figures, over `cycles` intervals.
pub struct Phase {
    /// Deployments the daemon watches.
    pub watched: usize,
    /// Opted-in Deployments released and rolling out.
    pub rollouts: usize,
    /// Deployments not opted in that are rolling out too.
    pub others: usize,
    pub cycles: u32,
    /// `rollout_guard_rollouts_analysed` at the end.
    pub analysed: f64,
    /// Released opted-in Deployments still rolling out at the end.
    pub in_flight: usize,
    pub evaluations: f64,
    pub queries: prom::Snapshot,
    /// Distinct pod selectors queried (one per ReplicaSet side).
    pub selectors: usize,
    /// The most Prometheus queries in flight at once.
    pub max_in_flight: u64,
    pub api: BTreeMap<(String, String), u64>,
    /// Bytes the fake server sent on watch streams.
    pub watch_bytes: u64,
    /// Writes to the fake cluster (all kinds, by anyone: its resourceVersion went up by this).
    pub cluster_writes: u64,
    pub cpu_seconds: f64,
    /// CPU time of the benchmark process (the fake API server and its simulation).
    pub fake_cpu_seconds: f64,
    /// Per cycle: queries, CPU milliseconds, API requests.
    pub per_cycle: Vec<(u64, f64, u64)>,
    pub end: Proc,
    /// Reconcile errors and query errors counted by the daemon.
    pub errors: f64,
}

impl Phase {
    pub fn per_cycle(&self, x: f64) -> f64 {
        x / f64::from(self.cycles)
    }

    pub fn api_total(&self) -> u64 {
        self.api.values().sum()
    }

    fn label(&self) -> String {
        if self.others > 0 {
            format!("{} (+{} not opted in)", self.rollouts, self.others)
        } else {
            self.rollouts.to_string()
        }
    }
}

/// What starting the daemon cost.
pub struct Startup {
    pub watched: usize,
    /// From the start of the process until both watches run (the initial lists are done).
    pub synced: Duration,
    /// Bytes of the initial lists.
    pub list_bytes: u64,
    /// Whether `/readyz` answered 200 when the daemon was stopped.
    pub ready: bool,
    pub cpu_seconds: f64,
    pub at_sync: Proc,
    /// Seconds between consecutive evaluations of the same rollout, over the daemon's life.
    pub gaps: Vec<f64>,
}

/// Facts about the fake cluster.
pub struct Cluster {
    pub deployments: usize,
    pub pods: usize,
    pub fill: Duration,
    /// Mean JSON size of a Deployment, with and without `managedFields`.
    pub bytes: (usize, usize),
    /// Heap of the Deployment store, by the number watched.
    pub heap: Vec<StoreHeap>,
    /// Heap of one list page (`controller::LIST_PAGE` Deployments at a time) as deserialized,
    /// `managedFields` included: (Deployments, heap).
    pub page: (usize, Heap),
}

/// The heap of a daemon's Deployment store, rebuilt in the benchmark process.
pub struct StoreHeap {
    pub watched: usize,
    /// Whole but for `managedFields` (as before `slim`).
    pub whole: Heap,
    /// As the daemon keeps them (`controller::slim`).
    pub store: Heap,
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn phase_line(p: &Phase, interval: Duration) {
    eprintln!(
        "  {} watched, {} rollouts ({} analysed, {} still rolling out): per {}-s cycle {:.1} evaluations, {:.1} queries, {:.1} API requests, {:.1} CPU ms (the fake cluster {:.0} ms, {:.0} writes); RSS {:.1} MiB, peak {:.1} MiB",
        p.watched,
        p.label(),
        p.analysed,
        p.in_flight,
        interval.as_secs(),
        p.per_cycle(p.evaluations),
        p.per_cycle(p.queries.queries() as f64),
        p.per_cycle(p.api_total() as f64),
        p.per_cycle(p.cpu_seconds * 1000.0),
        p.per_cycle(p.fake_cpu_seconds * 1000.0),
        p.per_cycle(p.cluster_writes as f64),
        mib(p.end.rss_kib),
        mib(p.end.hwm_kib)
    );
    let cycles: Vec<String> = p
        .per_cycle
        .iter()
        .map(|(q, cpu, api)| format!("{q} q/{cpu:.0} ms/{api} req"))
        .collect();
    eprintln!("    cycles: {}", cycles.join(", "));
}

/// Prints the Markdown tables.
pub fn print(
    heading: &str,
    interval: Duration,
    cluster: &Cluster,
    startups: &[Startup],
    phases: &[Phase],
) {
    println!("\n{heading}\n");
    println!(
        "| watched Deployments | rollouts | analysed | cluster writes / cycle | evaluations / cycle | Prometheus queries / cycle (fewest–most) | queries / evaluation | ReplicaSets queried | API requests / cycle | daemon CPU / cycle | RSS | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in phases {
        let fewest = p.per_cycle.iter().map(|c| c.0).min().unwrap_or(0);
        let most = p.per_cycle.iter().map(|c| c.0).max().unwrap_or(0);
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} ({fewest}–{most}) | {} | {} | {:.1} | {:.0} ms | {:.1} MiB | {:.1} MiB |",
            p.watched,
            p.label(),
            p.analysed,
            p.per_cycle(p.cluster_writes as f64),
            p.per_cycle(p.evaluations),
            p.per_cycle(p.queries.queries() as f64),
            if p.evaluations > 0.0 {
                format!("{:.1}", p.queries.queries() as f64 / p.evaluations)
            } else {
                "–".into()
            },
            p.selectors,
            p.per_cycle(p.api_total() as f64),
            p.per_cycle(p.cpu_seconds * 1000.0),
            mib(p.end.rss_kib),
            mib(p.end.hwm_kib),
        );
    }
    println!("\nAPI requests per cycle, by verb and resource:\n");
    for p in phases {
        let parts: Vec<String> = p
            .api
            .iter()
            .map(|((verb, res), n)| format!("{verb} {res} {:.1}", p.per_cycle(*n as f64)))
            .collect();
        println!(
            "- {} watched, {} rollouts: {}; watch streams {:.0} KiB; at most {} Prometheus queries at once; {} rollouts still in flight at the end; errors {}, other Prometheus paths {}",
            p.watched,
            p.label(),
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            },
            p.per_cycle(p.watch_bytes as f64) / 1024.0,
            p.max_in_flight,
            p.in_flight,
            p.errors,
            p.queries.other
        );
    }
    println!(
        "\nThe fake cluster: {} Deployments and {} pods, filled and ready in {:.0} s; a Deployment is {} bytes of JSON as served, {} without managedFields.\n",
        cluster.deployments,
        cluster.pods,
        cluster.fill.as_secs_f64(),
        cluster.bytes.0,
        cluster.bytes.1
    );
    for s in startups {
        println!(
            "- start-up watching {}: initial lists {:.1} MiB, synced after {:.1} s, {:.2} CPU s, RSS {:.1} MiB (anonymous {:.1}, file-backed {:.1}), peak {:.1} MiB, {} threads; /readyz {}",
            s.watched,
            s.list_bytes as f64 / 1048576.0,
            s.synced.as_secs_f64(),
            s.cpu_seconds,
            mib(s.at_sync.rss_kib),
            mib(s.at_sync.anon_kib),
            mib(s.at_sync.file_kib),
            mib(s.at_sync.hwm_kib),
            s.at_sync.threads,
            if s.ready {
                "answered ready"
            } else {
                "never answered ready"
            }
        );
        if !s.gaps.is_empty() {
            let mut g = s.gaps.clone();
            g.sort_by(f64::total_cmp);
            let under = g
                .iter()
                .filter(|&&x| x < interval.as_secs_f64() / 2.0)
                .count();
            println!(
                "  evaluations of the same rollout ({} pairs): {:.0}% less than half an interval apart; shortest {:.3} s, median {:.1} s, longest {:.1} s",
                g.len(),
                100.0 * under as f64 / g.len() as f64,
                g[0],
                g[g.len() / 2],
                g[g.len() - 1]
            );
        }
    }
    for h in &cluster.heap {
        println!(
            "- the store of {} Deployments, rebuilt in the benchmark process, whole but for `managedFields`: {:.1} MiB of heap in {} allocations ({:.1} KiB per Deployment); as the daemon keeps them (only name and opt-in of those that did not opt in): {:.1} MiB in {} allocations",
            h.watched,
            h.whole.bytes as f64 / 1048576.0,
            h.whole.allocations,
            h.whole.bytes as f64 / 1024.0 / h.watched as f64,
            h.store.bytes as f64 / 1048576.0,
            h.store.allocations
        );
    }
    println!(
        "- one page of the initial list ({} Deployments) as deserialized, before `managedFields` are dropped: {:.1} MiB of heap in {} allocations",
        cluster.page.0,
        cluster.page.1.bytes as f64 / 1048576.0,
        cluster.page.1.allocations
    );
}
