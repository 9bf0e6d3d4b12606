//! `rollout-guard demo`: the whole story in about a minute, on a machine with nothing else
//! installed. An embedded simulated cluster (the fake API server with its Deployment
//! controller) runs a simulated PHP service; the real controller loop (`daemon::run_with`, the
//! same code as `run`) watches three releases: one whose new pods still load a removed class,
//! one that saturates its CPU, and a healthy one. Only the cluster and the metric source are
//! simulated, on a clock 60 times faster than the wall clock.
//!
//! Owns the story and its printing; the decisions are the controller's. Leaves the decision
//! records (and the report, where the `report` module renders it) in the output folder.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::kubernetes;
use crate::analysis::source::MetricSource;
use crate::app::config::Config;
use crate::app::daemon::{Options, run_with};
use crate::policy::annotations;
use crate::policy::guard::Stage;
use crate::records::{self, Kind, Record};
use crate::report;
use crate::sim::fakeapi::{FakeApiServer, FakeOptions};
use crate::sim::simulate::live::{DilatedClock, KubePods, LiveSource, Profile};
use crate::sim::simulate::service;

/// Simulated seconds per wall-clock second.
pub(crate) const SPEED: f64 = 60.0;
const NAMESPACE: &str = "shop";

/// How the demo runs.
#[derive(Clone, Debug)]
pub(crate) struct DemoOptions {
    /// Where the decision records (and report) are written.
    pub output: PathBuf,
}

/// What the demo showed, for its test.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// (deployment, version it ended on, stage of the analysis) per act.
    pub acts: Vec<(String, String, String)>,
    /// The HTML report written per act (`report-<deployment>.html`).
    pub reports: Vec<PathBuf>,
}

struct Act {
    deployment: &'static str,
    title: &'static str,
    fault: Option<&'static str>,
    /// The stage the analysis should end in.
    expect: &'static str,
}

const ACTS: [Act; 3] = [
    Act {
        deployment: "billing",
        title: "A library upgrade removed App\\Billing\\LegacyTaxCalculator; code still loads it",
        fault: Some("class-errors"),
        expect: "rolled_back",
    },
    Act {
        deployment: "search",
        title: "A release that needs three times the CPU per request",
        fault: Some("cpu-saturation"),
        expect: "rolled_back",
    },
    Act {
        deployment: "cart",
        title: "A healthy release",
        fault: None,
        expect: "passed",
    },
];

/// Plays the story, printing its timeline to `out`.
pub(crate) async fn run(opts: &DemoOptions, out: &mut (dyn Write + Send)) -> Result<Outcome> {
    std::fs::create_dir_all(&opts.output)
        .with_context(|| format!("creating {}", opts.output.display()))?;
    let records_path = opts.output.join("records.jsonl");
    // A fresh log for a fresh story.
    let _ = std::fs::remove_file(&records_path);

    writeln!(
        out,
        "rollout-guard demo: a simulated cluster, a simulated PHP service, the real controller.\n\
         Time runs {SPEED}x faster than your clock; times below are the simulated ones.\n"
    )?;
    let fake = FakeApiServer::start(FakeOptions {
        ready_after: Duration::from_millis(2500),
        ..FakeOptions::fast()
    })
    .await
    .context("starting the simulated cluster")?;
    let client = fake.client();
    let clock = DilatedClock::new(SPEED);
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    start_services(&api, out).await?;

    let config = demo_config(&records_path)?;
    let source = LiveSource::new(
        KubePods::new(client.clone(), NAMESPACE),
        clock,
        Profile::default(),
    );
    let (stop, stop_rx) = watch::channel(false);
    let daemon = spawn_controller(client.clone(), config, source, clock, stop_rx);

    let mut outcome = Outcome::default();
    let mut story = Story {
        api: &api,
        clock,
        records: &records_path,
        printed: 0,
        stop: &stop,
    };
    for (i, act) in ACTS.iter().enumerate() {
        outcome.acts.push(story.play(i, act, out).await?);
    }
    stop.send_replace(true);
    daemon
        .await
        .context("the controller task")?
        .context("the controller")?;
    fake.shutdown().await;
    writeln!(
        out,
        "\nDecision records (one JSON line per evaluation and action): {}",
        records_path.display()
    )?;
    outcome.reports = write_reports(&opts.output, &records_path, out)?;
    Ok(outcome)
}

/// Creates the three services at v1, watched in guard mode, and waits until they run.
async fn start_services(api: &Api<Deployment>, out: &mut (dyn Write + Send)) -> Result<()> {
    for act in &ACTS {
        let ann = [
            (annotations::ENABLED, "true"),
            (annotations::MODE, "guard"),
            (annotations::INTERVAL, "30s"),
            (annotations::BAKE_TIME, "3m"),
        ];
        let d = service::manifest(NAMESPACE, act.deployment, 4, &ann);
        api.create(&PostParams::default(), &d).await?;
    }
    wait(api, "every service to run v1", |ds| {
        ds.iter().all(kubernetes::rolled_out)
    })
    .await?;
    writeln!(
        out,
        "The cluster runs billing, search and cart at v1 (4 pods each)."
    )?;
    Ok(())
}

/// The controller's configuration for the demo: the demo's namespace, a port of its own, and
/// the decision records in `records_path`.
fn demo_config(records_path: &Path) -> Result<Config> {
    let mut config = Config::load_with_env(
        None,
        [(
            "ROLLOUT_GUARD__PROMETHEUS__URL".to_string(),
            // Not used: the metric source is the simulation's.
            "http://127.0.0.1:9".to_string(),
        )],
    )?;
    config.namespaces = vec![NAMESPACE.into()];
    config.server.listen = "127.0.0.1:0".into();
    config.leader_election.namespace = NAMESPACE.into();
    config.leader_election.identity = "demo".into();
    config.records.path = Some(records_path.to_path_buf());
    Ok(config)
}

/// Starts the real controller loop on simulated time, until `stop` becomes true.
fn spawn_controller<S: MetricSource + Send + Sync + 'static>(
    client: Client,
    config: Config,
    source: S,
    clock: DilatedClock,
    stop: watch::Receiver<bool>,
) -> JoinHandle<Result<()>> {
    let options = Options {
        reload_every: Duration::from_secs(1),
        clock: Some((Arc::new(move || clock.now()), SPEED)),
    };
    tokio::spawn(async move { run_with(client, config, None, source, options, stop, |_| {}).await })
}

/// The story as it goes: the services, the simulated clock, and how far the records were
/// printed.
struct Story<'a> {
    api: &'a Api<Deployment>,
    clock: DilatedClock,
    records: &'a Path,
    /// The bytes of the records file printed so far.
    printed: u64,
    /// Stops the controller.
    stop: &'a watch::Sender<bool>,
}

impl Story<'_> {
    /// Plays act `i`: releases v2, follows it until it settles and says how it ended; returns
    /// (deployment, version it ended on, stage of the analysis).
    async fn play(
        &mut self,
        i: usize,
        act: &Act,
        out: &mut (dyn Write + Send),
    ) -> Result<(String, String, String)> {
        writeln!(out, "\nAct {}: {}", i + 1, act.title)?;
        let version = "v2".to_string();
        service::release(self.api, act.deployment, &version, act.fault).await?;
        writeln!(
            out,
            "  {}  {:<8} released {version}",
            report::hms(self.clock.now()),
            act.deployment
        )?;
        let done = self.settle(i, act, out).await?;
        self.printed = print_new(self.records, self.printed, out)?;
        let ended = service::version(&done);
        let stage = service::stage(&done).unwrap_or_default();
        writeln!(
            out,
            "  → {} runs {ended}: {}",
            act.deployment,
            ending(&stage, &version)
        )?;
        Ok((act.deployment.to_string(), ended, stage))
    }

    /// Prints the new records until act `i`'s analysis settles as expected, and returns its
    /// Deployment then; stops the controller and fails when it takes over 90 seconds.
    async fn settle(
        &mut self,
        i: usize,
        act: &Act,
        out: &mut (dyn Write + Send),
    ) -> Result<Deployment> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            self.printed = print_new(self.records, self.printed, out)?;
            let d = self.api.get(act.deployment).await?;
            let current = service::memory(&d).and_then(|m| m.current).map(|s| s.stage);
            let stage = current.as_ref().map_or("", |s| s.name());
            let settled = match current {
                // A rollback settles once verified, either way.
                Some(Stage::RolledBack { verified, .. }) => {
                    act.expect == "rolled_back" && verified.is_some()
                }
                _ => stage == act.expect && kubernetes::rolled_out(&d),
            };
            if settled {
                return Ok(d);
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.stop.send(true);
                bail!(
                    "act {} did not settle in time (stage {stage:?}, running {})",
                    i + 1,
                    service::version(&d)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How an act ended, in words: the release `version`, whose analysis ended at `stage`.
fn ending(stage: &str, version: &str) -> String {
    match stage {
        "rolled_back" => format!("rolled back, the release {version} is off"),
        "passed" => format!("{version} passed its analysis and stays"),
        "inconclusive" => format!(
            "{version} stays, but not every rule could judge it (see its AnalysisInconclusive Event)"
        ),
        other => other.to_string(),
    }
}

/// Writes a post-incident report per act into `output`, as `rollout-guard report` writes it,
/// from the records in `records_path`; returns their paths.
fn write_reports(
    output: &Path,
    records_path: &Path,
    out: &mut (dyn Write + Send),
) -> Result<Vec<PathBuf>> {
    let (recs, unreadable) = records::load(records_path)?;
    let source = report::Source::of(records_path, &recs, unreadable);
    let mut reports = Vec::new();
    for act in &ACTS {
        let selection = report::Selection {
            namespace: Some(NAMESPACE.into()),
            deployment: Some(act.deployment.into()),
            revision: None,
        };
        let r = report::build(&recs, &selection, source.clone())
            .map_err(|e| anyhow::anyhow!("the report of {}: {e}", act.deployment))?;
        let path = output.join(format!("report-{}.html", act.deployment));
        std::fs::write(&path, report::html(&r, report::HtmlOptions::default()))
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "Report of {}: {}", act.deployment, path.display())?;
        reports.push(path);
    }
    Ok(reports)
}

/// Prints the notes and actions of the records appended after byte `seen` of the file; returns
/// how far it read. Only whole lines are read (a record being written is read the next time),
/// and never the file again from the start: the demo polls it five times a second.
fn print_new(path: &Path, seen: u64, out: &mut (dyn Write + Send)) -> Result<u64> {
    let mut appended = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(seen))?;
        f.read_to_end(&mut appended)
    });
    if read.is_err() {
        return Ok(seen);
    }
    let whole = appended
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let (recs, _) = records::parse(&appended[..whole]);
    for r in &recs {
        print_record(r, out)?;
    }
    Ok(seen + whole as u64)
}

fn print_record(r: &Record, out: &mut (dyn Write + Send)) -> Result<()> {
    let at = report::hms(r.at);
    match r.kind {
        Kind::Evaluation => {
            if let Some(d) = &r.decision
                && d.reason.starts_with("failing")
            {
                writeln!(out, "  {at}  {:<8} {}", r.deployment, d.reason)?;
            }
        }
        Kind::Action => {
            for n in &r.notes {
                writeln!(
                    out,
                    "  {at}  {:<8} {}: {}",
                    r.deployment, n.reason, n.message
                )?;
            }
            if !r.acts.is_empty() {
                let acts: Vec<&str> = r.acts.iter().map(|a| a.name()).collect();
                let result = r.result.as_ref().map_or("?", |w| w.as_str());
                writeln!(
                    out,
                    "  {at}  {:<8} {} written to the Deployment: {}",
                    r.deployment,
                    acts.join(" + "),
                    if result == "ok" {
                        "ok".to_string()
                    } else {
                        format!("{result}; the controller reads it again and decides again")
                    }
                )?;
            }
        }
    }
    Ok(())
}

async fn wait(
    api: &Api<Deployment>,
    what: &str,
    done: impl Fn(&[Deployment]) -> bool,
) -> Result<()> {
    for _ in 0..600 {
        let list = api.list(&Default::default()).await?.items;
        if done(&list) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting for {what}")
}
