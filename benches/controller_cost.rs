//! What the controller costs at scale: the real `rollout-guard run` binary against the fake
//! API server holding thousands of Deployments, with dozens of them rolling out at once. Not a
//! timed test: run it with `cargo bench --bench controller_cost` and copy the figures into
//! BENCHMARKS.md.
//!
//! The fake API server (in this process, with its simulated Deployment and ReplicaSet
//! controllers and kubelet) is filled with 2,000 Deployments of 10 pods in 10 namespaces; the
//! 100 that opt in (`guard` mode) are all in the first namespace, `team-0`. The daemon runs as a
//! separate process, watching either every namespace (2,000 Deployments) or `team-0` only
//! (200), against the same cluster and the same rollouts, so that the two differ only in what
//! they watch. Each is measured with nothing rolling out, then with 10 and with 50 opted-in
//! Deployments rolling out, and finally (watching everything) with 50 Deployments that did not
//! opt in rolling out as well. A release changes the pod template; each rollout stays in flight
//! for about `replicas × ready_after` (maxSurge 1, maxUnavailable 0), longer than the whole
//! measurement, and the releases of a phase are spread over `ready_after` so that the rollouts
//! do not step in lockstep. Between phases the daemon watching the other view is stopped (SIGTERM) and
//! the next one started, which carries on the analyses from the state annotations.
//! Prometheus is a stand-in answering every query with an empty result (`prom`), so the
//! controller never acts: the figures are the price of watching and analysing.
//!
//! Per phase, over `cycles` intervals (two when nothing rolls out) after one interval to settle: Prometheus queries and
//! evaluations (the daemon's own `rollout_guard_evaluation_seconds_count`), API requests to the
//! fake server by verb and resource, CPU time of the daemon (`utime + stime` of
//! `/proc/<pid>/stat`), its resident memory now and at its peak (`VmRSS`, `VmHWM`). The
//! daemon's log goes to a temporary folder and is printed if it fails.
//!
//! Options (after `--`): `--deployments 2000`, `--namespaces 10`, `--opted-in 100`,
//! `--rollouts 10,50`, `--others 50`, `--replicas 10`, `--cycles 5`, `--interval 10`
//! (seconds), `--ready-after 45` (seconds), `--tick-ms 1000`, `--prom-latency-ms 20`,
//! `--mode guard`, and
//! `--daemon-env NAME=VALUE` (repeatable) for experiments such as `MALLOC_ARENA_MAX=1`.

#[path = "controller_cost/cluster.rs"]
mod cluster;
#[path = "controller_cost/daemon.rs"]
mod daemon;
#[path = "controller_cost/heap.rs"]
mod heap;
#[path = "controller_cost/prom.rs"]
mod prom;
#[path = "controller_cost/report.rs"]
mod report;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rollout_guard::controller::LIST_PAGE;
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeOptions, FakeResource};

use cluster::{FIRST, Fleet, Member};
use daemon::Daemon;
use heap::Keep;
use report::{Phase, Startup};

/// What to run.
#[derive(Clone, Debug)]
struct Args {
    deployments: usize,
    namespaces: usize,
    opted_in: usize,
    rollouts: Vec<usize>,
    /// Deployments that did not opt in, released in the last phase.
    others: usize,
    replicas: i32,
    cycles: u32,
    interval: Duration,
    ready_after: Duration,
    tick: Duration,
    /// How long the fake Prometheus takes to answer a query.
    prom_latency: Duration,
    mode: String,
    /// Extra environment for the daemon.
    daemon_env: Vec<(String, String)>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            deployments: 2000,
            namespaces: 10,
            opted_in: 100,
            rollouts: vec![10, 50],
            others: 50,
            replicas: 10,
            cycles: 5,
            interval: Duration::from_secs(10),
            ready_after: Duration::from_secs(45),
            tick: Duration::from_millis(1000),
            prom_latency: Duration::from_millis(20),
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
            match flag.as_str() {
                "--deployments" => a.deployments = value.parse()?,
                "--namespaces" => a.namespaces = value.parse()?,
                "--opted-in" => a.opted_in = value.parse()?,
                "--rollouts" => {
                    a.rollouts = value
                        .split(',')
                        .map(|n| n.trim().parse().context("a list of numbers"))
                        .collect::<Result<_>>()?
                }
                "--others" => a.others = value.parse()?,
                "--replicas" => a.replicas = value.parse()?,
                "--cycles" => a.cycles = value.parse()?,
                "--interval" => a.interval = Duration::from_secs(value.parse()?),
                "--ready-after" => a.ready_after = Duration::from_secs(value.parse()?),
                "--tick-ms" => a.tick = Duration::from_millis(value.parse()?),
                "--prom-latency-ms" => a.prom_latency = Duration::from_millis(value.parse()?),
                "--mode" => a.mode = value,
                "--daemon-env" => {
                    let (k, v) = value.split_once('=').context("--daemon-env NAME=VALUE")?;
                    a.daemon_env.push((k.into(), v.into()));
                }
                _ => bail!("unknown option {flag}"),
            }
        }
        let per_ns = a.deployments.div_ceil(a.namespaces.max(1));
        if a.namespaces < 2 || a.cycles == 0 {
            bail!("--namespaces must be at least 2 and --cycles at least 1");
        }
        if a.opted_in > per_ns {
            bail!(
                "the {} opted-in Deployments must fit in one namespace of {per_ns}",
                a.opted_in
            );
        }
        if a.rollouts.iter().any(|&r| r > a.opted_in) {
            bail!("more rollouts than opted-in Deployments");
        }
        if a.others > a.deployments - per_ns {
            bail!("more rollouts of Deployments not opted in than there are outside {FIRST}");
        }
        Ok(a)
    }
}

fn main() -> Result<()> {
    let args = Args::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// Which Deployments a daemon watches.
#[derive(Clone, Copy, Debug, PartialEq)]
enum View {
    /// Every namespace.
    All,
    /// The first namespace only, which holds every opted-in Deployment.
    First,
}

/// Everything a phase needs.
struct Bench<'a> {
    args: &'a Args,
    fleet: Fleet,
    fake: FakeApiServer,
    prom_addr: SocketAddr,
    prom: Arc<prom::Counts>,
    ticks: f64,
    dir: tempfile::TempDir,
    /// Opted-in Deployments released so far.
    released: Vec<Member>,
    /// Deployments that did not opt in, released in the last phase.
    others: Vec<Member>,
    startups: Vec<Startup>,
    phases: Vec<Phase>,
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let fleet = Fleet {
        deployments: args.deployments,
        opted_in: args.opted_in,
        replicas: args.replicas,
        namespaces: args.namespaces,
        mode: args.mode.clone(),
    };
    eprintln!(
        "controller cost: {} on {} cores, {args:?}",
        env!("CARGO_BIN_EXE_rollout-guard"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (prom_addr, prom) = prom::start(args.prom_latency).await?;
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
        "  created {} Deployments in {:.1} s",
        args.deployments,
        t.elapsed().as_secs_f64()
    );
    cluster::wait_rolled_out(&fake, Duration::from_secs(1200)).await?;
    let objects = fake.objects(FakeResource::Deployments);
    let first: Vec<_> = objects
        .iter()
        .filter(|d| d.pointer("/metadata/namespace").and_then(|n| n.as_str()) == Some(FIRST))
        .cloned()
        .collect();
    let facts = report::Cluster {
        deployments: objects.len(),
        pods: cluster::count(&fake, FakeResource::Pods),
        fill: t.elapsed(),
        bytes: cluster::mean_deployment_bytes(&fake),
        heap: [&objects, &first]
            .iter()
            .map(|o| report::StoreHeap {
                watched: o.len(),
                whole: heap::store_of(o, Keep::Whole),
                store: heap::store_of(o, Keep::Store),
            })
            .collect(),
        page: (
            objects.len().min(LIST_PAGE as usize),
            heap::store_of(
                &objects[..objects.len().min(LIST_PAGE as usize)],
                Keep::Page,
            ),
        ),
    };
    drop((objects, first));
    eprintln!(
        "  {} Deployments and {} pods ready after {:.0} s",
        facts.deployments,
        facts.pods,
        facts.fill.as_secs_f64()
    );
    let mut b = Bench {
        args: &args,
        fleet,
        fake,
        prom_addr,
        prom,
        ticks: daemon::clock_ticks(),
        dir: tempfile::Builder::new()
            .prefix("controller-cost-")
            .tempdir()?,
        released: Vec::new(),
        others: Vec::new(),
        startups: Vec::new(),
        phases: Vec::new(),
    };
    let result = b.phases_in_order().await;
    let Bench {
        fake,
        startups,
        phases,
        ..
    } = b;
    fake.shutdown().await;
    result?;
    report::print(
        &format!(
            "Controller cost: `rollout-guard run` in {} mode with the default rules, every {} s; {} opted in, {} replicas each; per cycle = mean over {} intervals (2 when nothing rolls out)",
            args.mode,
            args.interval.as_secs(),
            args.opted_in,
            args.replicas,
            args.cycles
        ),
        args.interval,
        &facts,
        &startups,
        &phases,
    );
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

impl Bench<'_> {
    /// Both views at every level of rollouts, alternating so that each level starts with the
    /// daemon that ended the previous one; then the Deployments that did not opt in roll out
    /// too, under the daemon that watches them.
    async fn phases_in_order(&mut self) -> Result<()> {
        let mut levels = self.args.rollouts.clone();
        levels.push(0);
        levels.sort_unstable();
        levels.dedup();
        let mut order = [View::First, View::All];
        let mut running: Option<(View, Daemon)> = None;
        for target in levels {
            self.release_to(target).await?;
            for view in order {
                let d = self.daemon_for(running.take(), view).await?;
                let d = self.phase(view, d).await?;
                running = Some((view, d));
            }
            order.reverse();
        }
        if self.args.others > 0 {
            let d = self.daemon_for(running.take(), View::All).await?;
            let others: Vec<Member> = self
                .fleet
                .members()
                .into_iter()
                .filter(|m| !m.opted_in && m.namespace != FIRST)
                .step_by(7)
                .take(self.args.others)
                .collect();
            self.spread(&others).await?;
            self.others = others;
            running = Some((View::All, self.phase(View::All, d).await?));
        }
        if let Some((_, d)) = running {
            self.stop(d).await?;
        }
        Ok(())
    }

    /// Releases opted-in Deployments until `target` are rolling out.
    async fn release_to(&mut self, target: usize) -> Result<()> {
        let new: Vec<Member> = self
            .fleet
            .members()
            .into_iter()
            .filter(|m| m.opted_in)
            .skip(self.released.len())
            .take(target.saturating_sub(self.released.len()))
            .collect();
        self.spread(&new).await?;
        self.released.extend(new);
        Ok(())
    }

    /// Releases `v2` of each, spread over `ready_after`, the time a rollout step takes, so that
    /// the rollouts do not step in lockstep (which would make the event rate come in bursts).
    async fn spread(&self, members: &[Member]) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let gap = self.args.ready_after / members.len() as u32;
        for m in members {
            Fleet::release(&self.fake, m, "v2").await?;
            tokio::time::sleep(gap).await;
        }
        Ok(())
    }

    fn watched(&self, view: View) -> usize {
        match view {
            View::All => self.args.deployments,
            View::First => self.fleet.per_namespace(),
        }
    }

    /// The running daemon if it watches `view`; otherwise it is stopped and one that does is
    /// started.
    async fn daemon_for(&mut self, running: Option<(View, Daemon)>, view: View) -> Result<Daemon> {
        match running {
            Some((v, d)) if v == view => Ok(d),
            other => {
                if let Some((_, d)) = other {
                    self.stop(d).await?;
                }
                self.start(view).await
            }
        }
    }

    /// Starts a daemon watching `view` and waits until its store is synced and it leads.
    async fn start(&mut self, view: View) -> Result<Daemon> {
        let kubeconfig = self.dir.path().join("kubeconfig");
        self.fake.write_kubeconfig(&kubeconfig)?;
        let settings = daemon::Settings {
            prometheus: self.prom_addr,
            interval: self.args.interval,
            mode: self.args.mode.clone(),
            namespaces: match view {
                View::All => Vec::new(),
                View::First => vec![FIRST.to_string()],
            },
            env: self.args.daemon_env.clone(),
        };
        self.fake.reset_requests();
        let mut d = Daemon::start(self.dir.path(), &kubeconfig, &settings).await?;
        let synced = wait_synced(&self.fake, &mut d, Duration::from_secs(120)).await?;
        let at_sync = d.proc()?;
        let initial = self.fake.requests();
        d.wait_metric("rollout_guard_leader", 1.0, Duration::from_secs(60))
            .await?;
        let s = Startup {
            watched: self.watched(view),
            synced,
            list_bytes: initial.bytes_sent_for("list"),
            ready: false,
            gaps: Vec::new(),
            cpu_seconds: at_sync.cpu_ticks as f64 / self.ticks,
            at_sync,
        };
        eprintln!(
            "  daemon watching {} synced after {:.1} s: {:.2} CPU s, RSS {:.1} MiB",
            s.watched,
            synced.as_secs_f64(),
            s.cpu_seconds,
            report::mib(at_sync.rss_kib),
        );
        self.startups.push(s);
        Ok(d)
    }

    async fn stop(&mut self, d: Daemon) -> Result<()> {
        let ready = d.ready().await;
        if let Some(s) = self.startups.last_mut() {
            s.ready = ready;
            s.gaps = d.evaluation_gaps();
        }
        let warnings = d.log_warnings();
        if warnings > 0 {
            eprintln!(
                "  the daemon logged {warnings} warnings or errors; last lines:\n{}",
                d.log_tail()
            );
        }
        d.stop().await
    }

    /// Waits until the daemon analyses every released rollout, lets one interval pass, and
    /// measures.
    async fn phase(&mut self, view: View, d: Daemon) -> Result<Daemon> {
        let target = self.released.len() as f64;
        let result = async {
            d.wait_metric(
                "rollout_guard_rollouts_analysed",
                target,
                self.args.interval * 3,
            )
            .await?;
            tokio::time::sleep(self.args.interval).await;
            // Nothing changes while nothing rolls out: two intervals tell the idle cost.
            let cycles = if self.released.is_empty() {
                self.args.cycles.min(2)
            } else {
                self.args.cycles
            };
            measure(self, &d, self.watched(view), cycles).await
        }
        .await;
        match result {
            Ok(p) => {
                report::phase_line(&p, self.args.interval);
                if p.in_flight < p.rollouts {
                    eprintln!(
                        "  warning: {} of the {} rollouts completed before the end of the phase; lengthen --ready-after",
                        p.rollouts - p.in_flight,
                        p.rollouts
                    );
                }
                self.phases.push(p);
                Ok(d)
            }
            Err(e) => {
                eprintln!("daemon log (last lines):\n{}", d.log_tail());
                Err(e)
            }
        }
    }
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

/// Measures `cycles` intervals from now.
async fn measure(b: &Bench<'_>, d: &Daemon, watched: usize, cycles: u32) -> Result<Phase> {
    let (args, fake, prom, ticks) = (b.args, &b.fake, &b.prom, b.ticks);
    let evaluations = "rollout_guard_evaluation_seconds_count";
    let errors = |text: &str| {
        daemon::metric_sum(text, "rollout_guard_reconcile_errors_total")
            + daemon::metric_sum(text, "rollout_guard_query_errors_total")
    };
    let text = metrics_text(d).await?;
    let (evals0, errors0) = (daemon::metric_value(&text, evaluations), errors(&text));
    fake.reset_requests();
    prom.take_selectors();
    prom.take_max_in_flight();
    let q0 = prom.snapshot();
    let p0 = d.proc()?;
    let rv0 = fake.resource_version();
    let own0 = daemon::read_proc(std::process::id())?.cpu_ticks;
    let start = tokio::time::Instant::now();
    let (mut q_prev, mut p_prev, mut api_prev) = (q0.clone(), p0, 0u64);
    let mut per_cycle = Vec::new();
    for c in 1..=cycles {
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
        watched,
        rollouts: b.released.len(),
        others: b.others.len(),
        cycles,
        analysed: daemon::metric_value(&text, "rollout_guard_rollouts_analysed"),
        in_flight: cluster::in_flight(fake, &b.released),
        evaluations: daemon::metric_value(&text, evaluations) - evals0,
        queries: q_prev.since(&q0),
        selectors: prom.take_selectors(),
        max_in_flight: prom.take_max_in_flight(),
        api: stats
            .by_verb_resource
            .iter()
            .filter(|(_, c)| c.requests > 0)
            .map(|(k, c)| (k.clone(), c.requests))
            .collect(),
        watch_bytes: stats.bytes_sent_for("watch"),
        cluster_writes: fake.resource_version() - rv0,
        fake_cpu_seconds: (daemon::read_proc(std::process::id())?.cpu_ticks - own0) as f64 / ticks,
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
