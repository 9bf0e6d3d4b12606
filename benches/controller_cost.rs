//! What the controller costs at scale: the real `rollout-guard run` binary against the fake
//! API server holding thousands of Deployments, with dozens of them rolling out at once. Not a
//! timed test: run it with `cargo bench --bench controller_cost` and copy the figures into
//! BENCHMARKS.md.
//!
//! For each fleet size (2,000 and 200 Deployments of 10 pods by default, 100 of them opted in
//! in `guard` mode) the benchmark fills the fake API server (with its simulated Deployment and
//! ReplicaSet controllers and kubelet) and waits until every pod is ready, starts the daemon
//! as a separate process, and measures it over a few evaluation intervals in three phases:
//! nothing rolling out, 10 opted-in Deployments rolling out, then 50. Each release changes the
//! pod template; the releases of a phase are spread over one interval, as a CI system would
//! send them, and each stays in flight for `replicas × ready_after` (maxSurge 1,
//! maxUnavailable 0), longer than the measurement. Prometheus is a stand-in answering every
//! query with an empty result (`prom`), so the controller never acts: the figures are the
//! price of watching and analysing.
//!
//! Per phase, over `cycles` intervals: Prometheus queries and evaluations (the daemon's own
//! `rollout_guard_evaluation_seconds_count`), API requests to the fake server by verb and
//! resource, CPU time of the daemon (`utime + stime`), its resident memory now and at its peak
//! (`VmHWM`). The daemon's log goes to a temporary folder, printed if it fails.
//!
//! Options (after `--`): `--deployments 2000,200`, `--rollouts 10,50`, `--opted-in 100`,
//! `--replicas 10`, `--cycles 6`, `--interval 10` (seconds), `--ready-after 40` (seconds),
//! `--tick-ms 1000`, `--mode guard`.

#[path = "controller_cost/cluster.rs"]
mod cluster;
#[path = "controller_cost/daemon.rs"]
mod daemon;
#[path = "controller_cost/heap.rs"]
mod heap;
#[path = "controller_cost/prom.rs"]
mod prom;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rollout_guard::fakeapi::{FakeApiServer, FakeOptions, FakeResource};

use cluster::{Fleet, Member};
use daemon::{Daemon, Proc};

/// What to run.
#[derive(Clone, Debug)]
struct Args {
    deployments: Vec<usize>,
    rollouts: Vec<usize>,
    opted_in: usize,
    replicas: i32,
    cycles: u32,
    interval: Duration,
    ready_after: Duration,
    tick: Duration,
    mode: String,
    /// Extra environment for the daemon (`--daemon-env MALLOC_ARENA_MAX=2`), for experiments.
    daemon_env: Vec<(String, String)>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            deployments: vec![2000, 200],
            rollouts: vec![10, 50],
            opted_in: 100,
            replicas: 10,
            cycles: 6,
            interval: Duration::from_secs(10),
            ready_after: Duration::from_secs(40),
            tick: Duration::from_millis(1000),
            mode: "guard".into(),
            daemon_env: Vec::new(),
        }
    }
}

impl Args {
    fn parse() -> Result<Args> {
        let mut a = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--bench" {
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let list = |v: &str| -> Result<Vec<usize>> {
                v.split(',')
                    .map(|n| n.trim().parse().context("a list of numbers"))
                    .collect()
            };
            match flag.as_str() {
                "--deployments" => a.deployments = list(&value)?,
                "--rollouts" => a.rollouts = list(&value)?,
                "--opted-in" => a.opted_in = value.parse()?,
                "--replicas" => a.replicas = value.parse()?,
                "--cycles" => a.cycles = value.parse()?,
                "--interval" => a.interval = Duration::from_secs(value.parse()?),
                "--ready-after" => a.ready_after = Duration::from_secs(value.parse()?),
                "--tick-ms" => a.tick = Duration::from_millis(value.parse()?),
                "--mode" => a.mode = value,
                "--daemon-env" => {
                    let (k, v) = value.split_once('=').context("--daemon-env NAME=VALUE")?;
                    a.daemon_env.push((k.into(), v.into()));
                }
                _ => bail!("unknown option {flag}"),
            }
        }
        a.rollouts.sort_unstable();
        if a.rollouts.last().is_some_and(|&r| r > a.opted_in) {
            bail!("more rollouts than opted-in Deployments");
        }
        if a.deployments.iter().any(|&d| d < a.opted_in) {
            bail!("fewer Deployments than opted-in ones");
        }
        Ok(a)
    }
}

/// One phase's figures, over `cycles` intervals.
struct Phase {
    deployments: usize,
    rollouts: usize,
    cycles: u32,
    /// `rollout_guard_rollouts_analysed` at the end.
    analysed: f64,
    /// Released Deployments still rolling out at the end.
    in_flight: usize,
    evaluations: f64,
    queries: prom::Snapshot,
    /// Distinct pod selectors queried (one per ReplicaSet side).
    selectors: usize,
    api: BTreeMap<(String, String), u64>,
    /// Bytes the fake server sent on watch streams.
    watch_bytes: u64,
    /// Writes to the fake cluster (all kinds, by anyone: its resourceVersion went up by this).
    cluster_writes: u64,
    cpu_seconds: f64,
    /// Per cycle: queries, CPU milliseconds, API requests.
    per_cycle: Vec<(u64, f64, u64)>,
    end: Proc,
    errors: f64,
}

impl Phase {
    fn per_cycle(&self, x: f64) -> f64 {
        x / f64::from(self.cycles)
    }
    fn api_total(&self) -> u64 {
        self.api.values().sum()
    }
}

/// What starting the daemon cost.
struct Startup {
    deployments: usize,
    /// From the start of the process until both watches run (the initial lists are done).
    synced: Duration,
    /// Bytes of the initial lists.
    list_bytes: u64,
    /// Whether `/readyz` answered 200 at the end.
    ready: bool,
    cpu_seconds: f64,
    at_ready: Proc,
    fill: Duration,
    bytes: (usize, usize),
    /// Heap of the Deployment store (bytes requested, allocations), measured in this process.
    store_heap: (usize, usize),
}

fn main() -> Result<()> {
    let args = Args::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let ticks = daemon::clock_ticks();
    let (prom_addr, prom) = prom::start().await?;
    eprintln!(
        "controller cost: {} on {} cores, {args:?}",
        env!("CARGO_BIN_EXE_rollout-guard"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut phases = Vec::new();
    let mut startups = Vec::new();
    for &n in &args.deployments {
        let (s, p) = fleet(&args, n, prom_addr, &prom, ticks).await?;
        startups.push(s);
        phases.extend(p);
    }
    print_report(&args, &startups, &phases);
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One fleet size: fill, start the daemon, measure each phase, stop.
async fn fleet(
    args: &Args,
    deployments: usize,
    prom_addr: std::net::SocketAddr,
    prom: &Arc<prom::Counts>,
    ticks: f64,
) -> Result<(Startup, Vec<Phase>)> {
    let fleet = Fleet {
        deployments,
        opted_in: args.opted_in,
        replicas: args.replicas,
        namespaces: 10,
        mode: args.mode.clone(),
    };
    eprintln!(
        "\n== {deployments} Deployments × {} replicas, {} opted in ({})",
        args.replicas, args.opted_in, args.mode
    );
    let fake = FakeApiServer::start(FakeOptions {
        tick: args.tick,
        ready_after: args.ready_after,
        bookmark_interval: Duration::from_secs(60),
        history_size: 200_000,
        simulate_controllers: true,
    })
    .await?;
    let t = Instant::now();
    fleet.create(&fake, 16).await?;
    eprintln!(
        "  created {deployments} Deployments in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    cluster::wait_rolled_out(&fake, Duration::from_secs(1200)).await?;
    let fill = t.elapsed();
    let pods = cluster::count(&fake, FakeResource::Pods);
    let bytes = cluster::mean_deployment_bytes(&fake);
    let store_heap = heap::store_of(&fake.objects(FakeResource::Deployments));
    eprintln!(
        "  {deployments} Deployments and {pods} pods ready after {:.0} s; a Deployment is {} bytes of JSON ({} without managedFields)",
        fill.as_secs_f64(),
        bytes.0,
        bytes.1
    );

    let dir = tempfile::Builder::new()
        .prefix("controller-cost-")
        .tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    let settings = daemon::Settings {
        prometheus: prom_addr,
        interval: args.interval,
        mode: args.mode.clone(),
        env: args.daemon_env.clone(),
    };
    fake.reset_requests();
    let mut d = Daemon::start(dir.path(), &kubeconfig, &settings).await?;
    let synced = match wait_synced(&fake, &mut d, Duration::from_secs(120)).await {
        Ok(t) => t,
        Err(e) => {
            let stats = fake.requests();
            eprintln!(
                "  the fake API server's requests: {:?}",
                stats.by_verb_resource
            );
            return Err(e);
        }
    };
    let at_ready = d.proc()?;
    d.wait_metric("rollout_guard_leader", 1.0, Duration::from_secs(60))
        .await?;
    let initial = fake.requests();
    let mut startup = Startup {
        deployments,
        ready: false,
        synced,
        list_bytes: initial
            .by_verb_resource
            .iter()
            .filter(|((verb, _), _)| verb == "list")
            .map(|(_, c)| c.bytes_sent)
            .sum(),
        cpu_seconds: at_ready.cpu_ticks as f64 / ticks,
        at_ready,
        fill,
        bytes,
        store_heap,
    };
    eprintln!(
        "  daemon synced after {:.1} s: {:.2} CPU s, RSS {:.1} MiB, peak {:.1} MiB",
        synced.as_secs_f64(),
        startup.cpu_seconds,
        mib(at_ready.rss_kib),
        mib(at_ready.hwm_kib)
    );

    let members = fleet.members();
    let candidates: Vec<&Member> = members.iter().filter(|m| m.opted_in).collect();
    let mut released: Vec<Member> = Vec::new();
    let mut phases = Vec::new();
    let result: Result<()> = async {
        let mut targets = args.rollouts.clone();
        targets.push(0);
        targets.sort_unstable();
        targets.dedup();
        for target in targets {
            let new: Vec<Member> = candidates[released.len()..target]
                .iter()
                .map(|m| (*m).clone())
                .collect();
            if !new.is_empty() {
                // Spread over one interval, as a CI system would send them.
                let gap = args.interval / new.len() as u32;
                for m in &new {
                    Fleet::release(&fake, m, "v2").await?;
                    tokio::time::sleep(gap).await;
                }
                released.extend(new);
                d.wait_metric(
                    "rollout_guard_rollouts_analysed",
                    target as f64,
                    args.interval * 3,
                )
                .await?;
            }
            // Let the first evaluations and writes of the new analyses pass.
            tokio::time::sleep(args.interval).await;
            let p = measure(args, &fake, prom, &d, ticks, deployments, &released).await?;
            report_phase(&p, args.interval);
            phases.push(p);
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("daemon log (last lines):\n{}", d.log_tail());
        return Err(e);
    }
    startup.ready = d.ready().await;
    let warnings = d.log_warnings();
    if warnings > 0 {
        eprintln!(
            "  the daemon logged {warnings} warnings or errors; last lines:\n{}",
            d.log_tail()
        );
    }
    d.stop().await?;
    fake.shutdown().await;
    Ok((startup, phases))
}

/// Waits until the daemon watches both Deployments and ReplicaSets, which kube's watcher does
/// once the initial list is complete and the store filled (or until `/readyz` says so).
async fn wait_synced(fake: &FakeApiServer, d: &mut Daemon, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        d.check_running()?;
        let stats = fake.requests();
        if (stats.count("watch", "apps/deployments") > 0
            && stats.count("watch", "apps/replicasets") > 0)
            || d.ready().await
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!(
                "the daemon had not synced after {timeout:?}; its log:\n{}",
                d.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Measures `args.cycles` intervals from now.
async fn measure(
    args: &Args,
    fake: &FakeApiServer,
    prom: &prom::Counts,
    d: &Daemon,
    ticks: f64,
    deployments: usize,
    released: &[Member],
) -> Result<Phase> {
    let evaluations = "rollout_guard_evaluation_seconds_count";
    let errors = |text: &str| {
        daemon::metric_sum(text, "rollout_guard_reconcile_errors_total")
            + daemon::metric_sum(text, "rollout_guard_query_errors_total")
    };
    let text = metrics_text(d).await?;
    let (evals0, errors0) = (daemon::metric_value(&text, evaluations), errors(&text));
    fake.reset_requests();
    prom.take_selectors();
    let q0 = prom.snapshot();
    let p0 = d.proc()?;
    let rv0 = fake.resource_version();
    let start = tokio::time::Instant::now();
    let (mut q_prev, mut p_prev, mut api_prev) = (q0.clone(), p0, 0u64);
    let mut per_cycle = Vec::new();
    for c in 1..=args.cycles {
        tokio::time::sleep_until(start + args.interval * c).await;
        let q = prom.snapshot();
        let p = d.proc()?;
        let api = fake.requests().total.requests;
        per_cycle.push((
            q.since(&q_prev).queries(),
            (p.cpu_ticks - p_prev.cpu_ticks) as f64 / ticks * 1000.0,
            api - api_prev,
        ));
        (q_prev, p_prev, api_prev) = (q, p, api);
    }
    let stats = fake.requests();
    let text = metrics_text(d).await?;
    Ok(Phase {
        deployments,
        rollouts: released.len(),
        cycles: args.cycles,
        analysed: daemon::metric_value(&text, "rollout_guard_rollouts_analysed"),
        in_flight: cluster::in_flight(fake, released),
        evaluations: daemon::metric_value(&text, evaluations) - evals0,
        queries: q_prev.since(&q0),
        selectors: prom.take_selectors(),
        api: stats
            .by_verb_resource
            .iter()
            .filter(|(_, c)| c.requests > 0)
            .map(|(k, c)| (k.clone(), c.requests))
            .collect(),
        watch_bytes: stats
            .by_verb_resource
            .iter()
            .filter(|((verb, _), _)| verb == "watch")
            .map(|(_, c)| c.bytes_sent)
            .sum(),
        cluster_writes: fake.resource_version() - rv0,
        cpu_seconds: (p_prev.cpu_ticks - p0.cpu_ticks) as f64 / ticks,
        per_cycle,
        end: p_prev,
        errors: errors(&text) - errors0,
    })
}

async fn metrics_text(d: &Daemon) -> Result<String> {
    Ok(reqwest::get(format!("http://{}/metrics", d.metrics))
        .await?
        .text()
        .await?)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report_phase(p: &Phase, interval: Duration) {
    eprintln!(
        "  {} rollouts ({} analysed, {} still rolling out): per {}-s cycle {:.1} evaluations, {:.1} queries, {:.1} API requests, {:.1} CPU ms; RSS {:.1} MiB, peak {:.1} MiB",
        p.rollouts,
        p.analysed,
        p.in_flight,
        interval.as_secs(),
        p.per_cycle(p.evaluations),
        p.per_cycle(p.queries.queries() as f64),
        p.per_cycle(p.api_total() as f64),
        p.per_cycle(p.cpu_seconds * 1000.0),
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

fn print_report(args: &Args, startups: &[Startup], phases: &[Phase]) {
    println!(
        "\nController cost: `rollout-guard run` ({} mode, default rules, interval {} s), {} opted in, {} replicas each; per cycle = mean over {} intervals\n",
        args.mode,
        args.interval.as_secs(),
        args.opted_in,
        args.replicas,
        args.cycles
    );
    println!(
        "| watched Deployments | rollouts | analysed | evaluations / cycle | Prometheus queries / cycle | queries / evaluation | ReplicaSets queried | API requests / cycle | CPU / cycle | RSS | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in phases {
        let evals = p.per_cycle(p.evaluations);
        let queries = p.per_cycle(p.queries.queries() as f64);
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {:.1} | {:.0} ms | {:.1} MiB | {:.1} MiB |",
            p.deployments,
            p.rollouts,
            p.analysed,
            evals,
            queries,
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
            "- {} Deployments, {} rollouts: {}; watch streams sent {:.0} KiB / cycle; the cluster saw {:.0} writes / cycle; errors {}; other Prometheus paths {}",
            p.deployments,
            p.rollouts,
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            },
            p.per_cycle(p.watch_bytes as f64) / 1024.0,
            p.per_cycle(p.cluster_writes as f64),
            p.errors,
            p.queries.other
        );
    }
    println!("\nStart-up:\n");
    for s in startups {
        println!(
            "- {} Deployments (fake cluster filled and ready in {:.0} s; a Deployment is {} bytes of JSON, {} without managedFields): initial lists {:.1} MiB, synced after {:.1} s, {:.2} CPU s, RSS {:.1} MiB (anon {:.1}, file {:.1}), peak {:.1} MiB, {} threads; /readyz {}",
            s.deployments,
            s.fill.as_secs_f64(),
            s.bytes.0,
            s.bytes.1,
            s.list_bytes as f64 / 1048576.0,
            s.synced.as_secs_f64(),
            s.cpu_seconds,
            mib(s.at_ready.rss_kib),
            mib(s.at_ready.anon_kib),
            mib(s.at_ready.file_kib),
            mib(s.at_ready.hwm_kib),
            s.at_ready.threads,
            if s.ready {
                "ready"
            } else {
                "never answered ready"
            }
        );
        println!(
            "  the Deployment store alone: {:.1} MiB of heap in {} allocations ({:.1} KiB per Deployment; about {:.1} MiB with malloc's 16 bytes per allocation)",
            s.store_heap.0 as f64 / 1048576.0,
            s.store_heap.1,
            s.store_heap.0 as f64 / 1024.0 / s.deployments as f64,
            (s.store_heap.0 + 16 * s.store_heap.1) as f64 / 1048576.0
        );
    }
}
