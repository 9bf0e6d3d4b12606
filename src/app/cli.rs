//! The command line: flags, their help, and one function per command.
//!
//! Owns argument parsing (`clap`), turning flags into the core's plain settings, printing, and
//! exit codes: 0 for success whatever a backtest decides, 1 when `rules lint` finds problems, 2
//! for usage, configuration or connection errors. Business logic lives in the modules it calls.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;

use crate::adapters::prometheus::{BasicAuth, PrometheusConfig};
use crate::analysis::duration::PromDuration;
use crate::analysis::rules::{DEFAULT_RULES, RuleSet};

mod backtest;
mod check;
#[cfg(feature = "sim")]
mod simulate;
mod status;

pub use backtest::BacktestArgs;

/// Watches Kubernetes rollouts of PHP services and pauses or rolls back a plain Deployment when
/// its new ReplicaSet does worse than the old one.
/// `--version`: the version and the commit built (`ROLLOUT_GUARD_COMMIT` at build time).
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let build = crate::adapters::telemetry::build();
    format!("{} (commit {})", build.version, build.commit)
});

/// A moment on the command line: RFC 3339 (`2026-11-20T10:00:00Z`), `now`, or `now-` a
/// duration (`now-1h`, `now-90m`).
fn moment(s: &str) -> std::result::Result<Timestamp, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("now") {
        let now = Timestamp::now();
        if rest.is_empty() {
            return Ok(now);
        }
        let ago = rest
            .strip_prefix('-')
            .ok_or_else(|| format!("{s:?}: write now or now-DURATION (e.g. now-1h)"))?;
        let d: PromDuration = ago.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let span = jiff::SignedDuration::try_from(d.as_std()).map_err(|e| e.to_string())?;
        return now.checked_sub(span).map_err(|e| e.to_string());
    }
    s.parse::<Timestamp>()
        .map_err(|e| format!("{s:?}: neither RFC 3339 nor now-DURATION: {e}"))
}

/// The whole command line: a command and the flags every command takes.
#[derive(Debug, Parser)]
#[command(name = "rollout-guard", version = VERSION.as_str(), about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay the rules on a past rollout and report the first moment they would have acted.
    ///
    /// Evaluates, every --step from --from to --to, exactly what the live controller would
    /// have evaluated at that moment, using only the data Prometheus had then, and stops at the
    /// first pause or rollback. With only -n and -d it replays the Deployment's latest rollout
    /// (or --revision's), reading which ReplicaSets and when from the cluster (read only, with
    /// your kubeconfig) and saying on stderr what it chose; flags given override what it finds.
    /// Exits 0 whatever the decision; 2 on usage or connection errors.
    Backtest(Box<BacktestArgs>),
    /// Check and show rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Write the metrics of a simulated PHP rollout as OpenMetrics, for a real Prometheus.
    ///
    /// Load the file with `promtool tsdb create-blocks-from openmetrics FILE DIR`, start
    /// Prometheus on DIR, and replay it with `backtest`: the arguments for that are printed as
    /// KEY=value lines. `scripts/example` does all of it. The simulation takes its noise from
    /// the real production traces in --nab.
    #[cfg(feature = "sim")]
    Simulate(simulate::SimulateArgs),
    /// Run the controller: watch Deployments that opted in and guard their rollouts.
    ///
    /// Reads the configuration file (YAML or TOML) and `ROLLOUT_GUARD__...` environment
    /// overrides, connects to Kubernetes (in-cluster, or the kubeconfig) and Prometheus, and
    /// serves /metrics, /healthz and /readyz. Stops cleanly on SIGTERM or Ctrl-C. Exits 2 when
    /// the configuration or the rules are invalid.
    Run(RunArgs),
    /// Turn the decision records into a post-incident report: Markdown, or one HTML page with plots.
    ///
    /// Reads the records file that `run` writes (`records.path`) after the files it was rotated
    /// to (`FILE.N` … `FILE.1`, oldest first), picks one Deployment and one revision of it, and
    /// writes what happened in a form a person would rather read than the raw lines: a summary
    /// paragraph (which rule acted, when, on what numbers), for each rule that failed the
    /// evidence of the deciding evaluation (counts, rates, ratio, p-value, every threshold and
    /// whether it was met, signature tables for log rules) with the queries as sent and its series
    /// over the evaluations, new pods against old (a plot in HTML, a table in Markdown) with the
    /// decision moments marked, then the timeline of evaluations, actions and Events. The HTML is
    /// self-contained (inline CSS and SVG, nothing fetched) and prints as it reads.
    ///
    /// Exits 2 when the file cannot be read, holds no records for the Deployment or revision
    /// asked for (the message lists what it does hold), or holds more unreadable lines than
    /// records. A few unreadable lines (a write cut short by a crash) are skipped and counted in
    /// the report's notes.
    Report(ReportArgs),
    /// Tell a CI pipeline what became of a release: passed, rolled back, held or paused, still
    /// analysing, inconclusive, or not guarded.
    ///
    /// Run it after `kubectl rollout status`, which goes green on a rolled-back Deployment too.
    /// Reads the Deployment, its ReplicaSets, the controller's state annotation and its latest
    /// Events (read access only), with your kubeconfig. The release is the latest one: the
    /// template the Deployment runs, or the one the controller rolled back from it; --revision
    /// picks another. With --wait, waits until the analysis ends (in guard mode that includes
    /// the bake time after the rollout completes).
    ///
    /// Exit codes: 0 passed, 2 usage or connection error, 3 rolled back, 4 held or paused,
    /// 5 still analysing (or --wait timed out), 6 inconclusive, 7 not guarded.
    Status(StatusArgs),
    /// Say, rule by rule, whether the rules can be evaluated for a Deployment as it runs now.
    ///
    /// Reads the Deployment and its ReplicaSets (read only, with your kubeconfig), takes the
    /// rules it would be analysed with (the loaded ones, narrowed by its
    /// `rollout-guard.io/rules` annotation), fills in each rule's queries for the ReplicaSet
    /// whose pods serve now, and asks Prometheus whether they have series. A rule whose series
    /// do not exist stays inconclusive through every analysis: a gate holds, a guard never
    /// acts. Exits 0 when every rule can be evaluated, 1 when some cannot, 2 on usage or
    /// connection errors.
    Check(Box<CheckArgs>),
    /// Print a shell completion script: `source <(rollout-guard completions bash)`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Play the whole story in about a minute, with nothing else installed.
    ///
    /// An embedded simulated cluster (the fake API server the tests use, with its Deployment
    /// controller) runs a simulated PHP service, and the real controller loop watches three
    /// releases: one whose new pods still load a class a library upgrade removed (rolled back),
    /// one that saturates its CPU (rolled back), and a healthy one (passes). Prints the timeline
    /// as it goes and leaves the decision records in --output-dir.
    #[cfg(feature = "sim")]
    Demo(DemoArgs),
}

/// The flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Deployment.
    #[arg(short, long)]
    pub deployment: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The revision (`deployment.kubernetes.io/revision`) to tell about (default: the latest).
    #[arg(long)]
    pub revision: Option<u64>,
    /// Wait until the analysis has ended, or --timeout has passed.
    #[arg(short, long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 15m.
    #[arg(long, default_value = "15m")]
    pub timeout: PromDuration,
    /// `text` (one line, then the latest Events) or `json`.
    #[arg(short, long, value_enum, default_value_t = StatusFormat::Text)]
    pub output: StatusFormat,
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// The flags of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The Deployment.
    #[arg(short, long)]
    pub deployment: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// How to reach Prometheus.
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// Rule files or folders (default: the bundled rules).
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// How `status` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// One line, then the latest Events.
    Text,
    /// One JSON object.
    Json,
}

/// The flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to leave the decision records and the report.
    #[arg(long, default_value = "rollout-guard-demo")]
    pub output_dir: PathBuf,
}

/// The flags of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The decision-record file (JSON lines, as `run` writes them); its rotated files
    /// (`FILE.N` … `FILE.1`) are read before it, oldest first. A rotated file named here is
    /// read alone. `-` reads them from stdin; an http(s) URL from a daemon's `/records`
    /// endpoint (`records.endpoint`), e.g. `http://localhost:8080/records?deployment=shop`.
    #[arg(long)]
    pub records: PathBuf,
    /// The Deployment to report on; may be left out when the file holds only one.
    #[arg(short, long)]
    pub deployment: Option<String>,
    /// Its namespace; needed only when Deployments of that name are in several namespaces.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The revision to report on (the new ReplicaSet's `deployment.kubernetes.io/revision`).
    ///
    /// Default: the latest revision that had an action (taken or only recorded), else the latest
    /// analysed.
    #[arg(long)]
    pub revision: Option<u64>,
    /// `markdown`, or `html` (one self-contained page with SVG plots). Default: html when
    /// --output ends in .html or .htm, else markdown.
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Write the report to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// HTML: leave the plots out and list each failing rule's series as a table instead.
    #[arg(long)]
    pub no_plots: bool,
}

/// The form of a post-incident report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown, with the series as tables.
    Markdown,
    /// One self-contained HTML page with SVG plots.
    Html,
}

/// The flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file; without one, the environment alone must set at least
    /// ROLLOUT_GUARD__PROMETHEUS__URL.
    #[arg(long, env = "ROLLOUT_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// The `rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files and folders without running anything; exits 1 on any problem.
    Lint {
        /// Rule files, or folders of *.yaml / *.yml files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the bundled default rules (a starting point for your own).
    Defaults,
}

/// How `backtest` prints its replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A readable timeline.
    Text,
    /// One JSON object.
    Json,
}

/// How to reach Prometheus, as flags.
#[derive(Debug, Args)]
pub struct PrometheusArgs {
    /// Prometheus base URL, with a path prefix if it has one.
    #[arg(long, env = "ROLLOUT_GUARD_PROMETHEUS_URL")]
    pub prometheus_url: String,
    /// Timeout of each query.
    #[arg(long, default_value = "10s")]
    pub prometheus_timeout: PromDuration,
    /// File with a bearer token sent with every query.
    #[arg(long)]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth user name (with --basic-auth-password-file).
    #[arg(long, requires = "basic_auth_password_file")]
    pub basic_auth_user: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long, requires = "basic_auth_user")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// Extra header NAME=VALUE on every query, e.g. X-Scope-OrgID=tenant-1 (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// PEM file of CA certificates to trust besides the system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    if k.trim().is_empty() {
        return Err(format!("empty header name in {s:?}"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

impl PrometheusArgs {
    /// The adapter's settings.
    pub fn config(&self) -> PrometheusConfig {
        let mut cfg = PrometheusConfig::new(&self.prometheus_url);
        cfg.timeout = self.prometheus_timeout;
        cfg.bearer_token_file = self.bearer_token_file.clone();
        cfg.basic_auth = self
            .basic_auth_user
            .clone()
            .zip(self.basic_auth_password_file.clone())
            .map(|(username, password_file)| BasicAuth {
                username,
                password_file,
            });
        cfg.headers = self.headers.iter().cloned().collect();
        cfg.ca_file = self.ca_file.clone();
        cfg
    }
}

/// Parses the arguments, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run(args) = &cli.command {
        return run_daemon(args, cli.log_format);
    }
    init_logging(cli.log_format, "warn");
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "rollout-guard: {}",
                crate::adapters::errors::chain(e.as_ref())
            );
            ExitCode::from(2)
        }
    }
}

/// `run`: the configuration decides the log level and format (`--log-format json` or
/// `RUST_LOG` win), so logging starts once it is read.
fn run_daemon(args: &RunArgs, flag: LogFormat) -> ExitCode {
    let config = match crate::app::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rollout-guard: {e}");
            return ExitCode::from(2);
        }
    };
    let format = match (flag, config.log.format) {
        (LogFormat::Json, _) | (_, crate::app::config::LogFormat::Json) => LogFormat::Json,
        _ => LogFormat::Text,
    };
    init_logging(format, &config.log.level);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rollout-guard: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let cluster = crate::app::daemon::Cluster {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    match runtime.block_on(crate::app::daemon::run(
        args.config.clone(),
        config,
        cluster,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = crate::adapters::errors::chain(e.as_ref());
            tracing::error!("{message}");
            eprintln!("rollout-guard: {message}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only for a person at a terminal, never into a file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Backtest(args) => backtest::run(*args),
        Command::Rules(RulesCommand::Lint { paths }) => Ok(lint(&paths)),
        #[cfg(feature = "sim")]
        Command::Simulate(args) => simulate::run(&args),
        Command::Report(args) => report(&args),
        Command::Run(_) => bail!("`run` starts from `main`, which reads its configuration first"),
        #[cfg(feature = "sim")]
        Command::Demo(args) => demo(&args),
        Command::Status(args) => status::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rollout-guard", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(RulesCommand::Defaults) => {
            print!("{DEFAULT_RULES}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The runtime of the long-running commands (`run`, `demo`): two workers are plenty for a
/// controller whose work is waiting on the API server and Prometheus.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

#[cfg(feature = "sim")]
fn demo(args: &DemoArgs) -> Result<ExitCode> {
    let runtime = runtime().context("cannot start the async runtime")?;
    let opts = crate::app::demo::DemoOptions {
        output: args.output_dir.clone(),
    };
    let mut out = std::io::stdout();
    runtime.block_on(crate::app::demo::run(&opts, &mut out))?;
    Ok(ExitCode::SUCCESS)
}

fn lint(paths: &[PathBuf]) -> ExitCode {
    match RuleSet::load(paths) {
        Ok(set) => {
            println!(
                "{} rule(s) in {} file(s): ok",
                set.rules.len(),
                set.files.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} problem(s) found", errors.0.len());
            ExitCode::from(1)
        }
    }
}

/// Loads the rules named on the command line, or the bundled defaults.
pub fn load_rules(paths: &[PathBuf]) -> Result<RuleSet> {
    RuleSet::load_or_defaults(paths).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))
}

/// Where `report` reads its records.
enum RecordsFrom<'a> {
    /// A file, with its rotated files.
    File(&'a std::path::Path),
    /// `-`.
    Stdin,
    /// A daemon's `/records` endpoint (an http or https URL).
    Endpoint(&'a str),
}

impl<'a> RecordsFrom<'a> {
    fn of(arg: &'a std::path::Path) -> Self {
        match arg.to_str() {
            Some("-") => RecordsFrom::Stdin,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                RecordsFrom::Endpoint(url)
            }
            _ => RecordsFrom::File(arg),
        }
    }

    fn read(&self) -> Result<(Vec<crate::records::Record>, Vec<crate::records::Unreadable>)> {
        match self {
            RecordsFrom::Stdin => crate::records::load_from(std::io::stdin().lock(), "stdin")
                .context("cannot read the records from stdin"),
            RecordsFrom::Endpoint(url) => {
                let body = status::block_on(async {
                    let fetched =
                        async { reqwest::get(*url).await?.error_for_status()?.bytes().await };
                    fetched
                        .await
                        .map_err(|e| anyhow::anyhow!(crate::adapters::errors::chain(&e)))
                })
                .with_context(|| format!("cannot read the records from {url}"))?;
                crate::records::load_from(&body[..], "the records endpoint")
                    .context("cannot read the records endpoint's answer")
            }
            RecordsFrom::File(path) => crate::records::load(path)
                .with_context(|| format!("cannot read the records file {}", path.display())),
        }
    }

    /// How the report names its source.
    fn source(
        &self,
        records: &[crate::records::Record],
        unreadable: Vec<crate::records::Unreadable>,
    ) -> crate::report::Source {
        match self {
            RecordsFrom::Stdin => crate::report::Source::named("stdin".into(), records, unreadable),
            RecordsFrom::Endpoint(url) => crate::report::Source::named(
                format!("the records endpoint {url}"),
                records,
                unreadable,
            ),
            RecordsFrom::File(path) => crate::report::Source::of(path, records, unreadable),
        }
    }
}

fn report(args: &ReportArgs) -> Result<ExitCode> {
    let name = args.records.display().to_string();
    let from = RecordsFrom::of(&args.records);
    let (records, unreadable) = from.read()?;
    if records.is_empty() && unreadable.is_empty() {
        bail!("{name} is empty: no decision records to report on");
    }
    if unreadable.len() > records.len() {
        bail!(
            "{name} does not look like a decision-record file (schema {}): {} of its {} lines are not records",
            crate::records::SCHEMA,
            unreadable.len(),
            unreadable.len() + records.len()
        );
    }
    let selection = crate::report::Selection {
        namespace: args.namespace.clone(),
        deployment: args.deployment.clone(),
        revision: args.revision,
    };
    let source = from.source(&records, unreadable);
    let report = crate::report::build(&records, &selection, source)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let html_named = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
    };
    let format = args.format.unwrap_or(match &args.output {
        Some(p) if html_named(p) => ReportFormat::Html,
        _ => ReportFormat::Markdown,
    });
    let document = match format {
        ReportFormat::Markdown => crate::report::markdown(&report),
        ReportFormat::Html => crate::report::html(
            &report,
            crate::report::HtmlOptions {
                plots: !args.no_plots,
            },
        ),
    };
    match &args.output {
        Some(path) => std::fs::write(path, document)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => print_stdout(&document)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not a failure.
fn print_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            bail!("cannot write the report: {e}")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn moments_are_rfc3339_now_or_now_minus_a_duration() {
        let t = super::moment("2026-11-20T10:00:00Z").unwrap();
        assert_eq!(t.as_second(), 1_795_168_800);
        let before = jiff::Timestamp::now();
        let hour_ago = super::moment("now-1h").unwrap();
        let after = jiff::Timestamp::now();
        let lo = before.as_second() - 3600;
        let hi = after.as_second() - 3600;
        assert!((lo..=hi).contains(&hour_ago.as_second()), "{hour_ago}");
        assert!(super::moment("now").unwrap() >= before);
        for bad in [
            "now+1h",
            "now-",
            "now-1x",
            "yesterday",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(super::moment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_version_names_the_commit() {
        let v = super::VERSION.as_str();
        assert!(
            v.starts_with(env!("CARGO_PKG_VERSION")) && v.contains("(commit "),
            "{v}"
        );
    }

    /// Every command and every flag says what it is for in `--help`.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{here}: no about"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &here, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}
