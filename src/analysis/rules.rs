//! Rule files: the thresholds SREs tune, their model, loading, and lint.
//!
//! Owns the YAML format of `rules/*.yaml` (versioned, unknown keys refused), the checks that make
//! a rule well formed, and the errors that name the file, the rule and the line. It does not run
//! queries or judge anything: [`crate::analysis::judge`] gives a rule its meaning.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::duration::PromDuration;
use crate::analysis::phplog::ErrorKind;
use crate::analysis::template::Template;

mod problems;
mod promql;
mod unit;

pub use unit::Unit;

/// The rule-file format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// What a failing rule asks for. Ordered by severity: the verdict of an evaluation is the most
/// severe action among its failing rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Record and report only.
    Warn,
    /// Pause the rollout (`spec.paused`).
    Pause,
    /// Return the Deployment to the previous revision.
    Rollback,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Warn => "warn",
            Action::Pause => "pause",
            Action::Rollback => "rollback",
        })
    }
}

/// What a rule concludes when its data is missing (empty results, NaN, too few samples).
/// Query errors are always inconclusive, whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// No conclusion: the rule neither passes nor counts towards an action.
    #[default]
    Inconclusive,
    /// Absent data is fine (e.g. an optional metric).
    Pass,
    /// Absent data is itself a failure (e.g. the new pods stopped exporting metrics).
    Fail,
}

/// Which way is worse for a continuous metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger values are worse (CPU, latency, errors).
    #[default]
    HigherIsWorse,
    /// Smaller values are worse (throughput, cache hit ratio).
    LowerIsWorse,
}

impl Direction {
    /// How a value at or beyond a threshold compares with it: `≥` or `≤`.
    pub fn symbol(self) -> &'static str {
        match self {
            Direction::HigherIsWorse => "≥",
            Direction::LowerIsWorse => "≤",
        }
    }
}

/// The exact test used on error counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProportionTest {
    /// Binomial test on the new side's share of all errors, conditional on the total, with the
    /// request counts as exposures (Poisson counts). Works with the fractional counts that
    /// `increase()` returns.
    #[default]
    Binomial,
    /// Fisher's exact test on the 2×2 table errors / other requests, counts rounded.
    Fisher,
    /// The stratified binomial model as a sequential test: a mixture likelihood ratio (mSPRT)
    /// whose p-value is valid at every look at once, so `alpha` bounds the false alarms of a
    /// whole analysis rather than of one evaluation (see `stats::rate_ratio_log_evalue`). Needs
    /// a window that reaches back to the first new pod.
    Sequential,
}

/// One file: `version` and its `rules`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rule-file format version it is written in; only [`FORMAT_VERSION`] is read.
    pub version: u32,
    /// The rules it holds.
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique across the loaded set; used in decisions, metrics and annotations.
    pub name: String,
    /// What the rule watches for, for people reading the rule file and its verdicts.
    #[serde(default)]
    pub description: String,
    /// What to do when the rule fails.
    pub action: Action,
    /// How far back each evaluation looks (`{{ window }}`).
    #[serde(default = "defaults::window")]
    pub window: PromDuration,
    /// Failing evaluations in a row before acting.
    #[serde(default = "defaults::consecutive")]
    pub consecutive: u32,
    /// What the rule concludes when its data is missing (`inconclusive` by default).
    #[serde(default)]
    pub on_missing: OnMissing,
    /// What the rule compares, and how.
    pub check: Check,
}

/// The comparison a rule makes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// Errors per request of the new pods against the old pods' (`error_rate`).
    ErrorRate(ErrorRate),
    /// A continuous per-pod series of the new pods against the old pods' (`compare`).
    Compare(Compare),
    /// A per-pod series of the new pods against a fixed threshold (`absolute`).
    Absolute(Absolute),
    /// PHP errors in the pods' logs, new against old (`logs`).
    Logs(Logs),
}

/// Errors per request, new ReplicaSet against old, with an exact test.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRate {
    /// Errors of one ReplicaSet in each `interval`, e.g.
    /// `sum(increase(php_errors_total{...}[{{ interval }}]))`; evaluated as a range query over
    /// the window, one point per interval (series are summed).
    pub errors: Template,
    /// Requests of one ReplicaSet in each `interval`, likewise.
    pub requests: Template,
    /// The stretch of time the two sides are compared over, minute by minute by default: see
    /// `stats::poisson_rate_greater_stratified` for why not the whole window at once.
    #[serde(default = "defaults::interval")]
    pub interval: PromDuration,
    /// An empty errors result means zero errors (error counters often do not exist until the
    /// first error). Requests are never assumed.
    #[serde(default = "defaults::yes")]
    pub absent_errors_are_zero: bool,
    /// Which exact test judges the counts (`binomial` by default).
    #[serde(default)]
    pub test: ProportionTest,
    /// Per-evaluation significance level, one-sided.
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
    /// Null hypothesis: new rate ≤ tolerance × old rate.
    #[serde(default = "defaults::one")]
    pub tolerance: f64,
    /// Effect floor: the observed new/old rate ratio must reach this.
    #[serde(default = "defaults::error_ratio")]
    pub min_ratio: f64,
    /// Effect floor: new rate − old rate must reach this (a fraction of requests).
    #[serde(default)]
    pub min_rate_increase: f64,
    /// The new side must show at least this many errors to fail.
    #[serde(default = "defaults::min_errors")]
    pub min_errors: f64,
    /// Each side needs at least this many requests for a conclusion.
    #[serde(default = "defaults::min_requests")]
    pub min_requests: f64,
    /// With `test: sequential`: once the old pods are gone, go on judging the new pods against
    /// the old version's own rate over the window (before the rollout and while it served),
    /// taken at the upper end of its 1 − alpha confidence interval, so that the new version's
    /// errors after the mixed window still count. `false`: only intervals in which both
    /// versions served are compared.
    #[serde(default = "defaults::yes")]
    pub history: bool,
    /// The longest shared incident (a database outage during the bake) that the comparison
    /// with history must not blame on the release: evidence that hangs on one stretch of this
    /// length after the old pods left does not fail the rule (the stretch takes one interval
    /// more, as an incident need not begin on an interval's edge).
    #[serde(default = "defaults::incident_span")]
    pub incident_span: PromDuration,
    /// After the old pods left, each interval is set against its own stretch of the old
    /// version's history holding this many times its requests (walking back, no stretch used
    /// twice): more narrows the comparison, fewer pairs more intervals within `window`.
    #[serde(default = "defaults::history_pairing")]
    pub history_pairing: f64,
    /// A significant excess is held back as one pod's burst (a bad pod, a retry storm) when
    /// one pod's interval carries at least this share of it and the rest is not significant.
    #[serde(default = "defaults::burst_share")]
    pub burst_share: f64,
    /// Each pod's first stretch of this length, from its first interval, left out on both
    /// sides, its errors and requests alike, for pods that began inside the window (pods that
    /// served from before it are long past it): start-up errors (cold caches, connection
    /// pools still filling) are every release's, and the old pods' are an hour and more
    /// behind them. `0s` (the default) keeps every interval.
    #[serde(default)]
    pub warmup: PromDuration,
    /// How long after a pod's counter reset (its request count negative: its container
    /// restarted) its error count may still read values from before the restart, once its
    /// error counter is back: that pod's intervals are left out that long at least. Errors
    /// summed by pod and then differenced read another error type's value from before the
    /// restart back for the query's look back, so by default 5 minutes and the `interval`;
    /// errors differenced series by series (`sum by (pod) ((a - b) >= 0 or a)`, as the
    /// bundled rules count them) read none back, `0s`, provided the requests counter is one
    /// series per pod (one split by a label and created lazily would read an old series back).
    #[serde(default)]
    pub reset_linger: Option<PromDuration>,
}

/// A continuous per-pod series (CPU, latency), new against old, with Mann-Whitney U.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// Range query: one series per pod of one ReplicaSet.
    pub query: Template,
    /// Range query: the load each pod carried (requests per second), one series per pod, when
    /// `query` is a cost per unit of that load (CPU seconds per request). Both sides are then
    /// judged at the old version's load: each sample against what the old version's own cost
    /// (a fixed part and a part per request, fitted on the old samples the rule reads: over
    /// `history_span` with `history`) would have been at that sample's load, so a load that
    /// moves after the old pods left (and with it the share of the fixed part in each
    /// request) does not read as a regression or hide one. Without it, the series is judged
    /// as it is.
    #[serde(default)]
    pub load: Option<Template>,
    /// Resolution of the range query.
    #[serde(default = "defaults::step")]
    pub step: PromDuration,
    /// What the query's number is, for the report (`fraction`, `seconds`,
    /// `cpu_seconds_per_request`; `number` by default).
    #[serde(default)]
    pub unit: Unit,
    /// Samples of a pod younger than this are left out (opcache priming, JIT warm-up); up to
    /// [`WARMUP_REACH`] times this, where higher is worse, those before the pod's level has
    /// fallen too.
    #[serde(default)]
    pub warmup: PromDuration,
    /// Which way is worse (higher by default).
    #[serde(default)]
    pub direction: Direction,
    /// One-sided significance level of the Mann-Whitney test, per evaluation.
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
    /// Effect floor: median(new) / median(old) must reach this (its inverse for lower-is-worse).
    #[serde(default = "defaults::compare_ratio")]
    pub min_ratio: f64,
    /// Effect floor: the Hodges-Lehmann shift must reach this, in the series' unit.
    #[serde(default)]
    pub min_shift: f64,
    /// Samples needed on each side.
    #[serde(default = "defaults::min_samples")]
    pub min_samples: usize,
    /// The pod is the unit: at the moments both versions served, the new pods' levels (each
    /// pod's median against the old pods' median) must also stand out from the old pods' own
    /// spread, by a one-sided t-test of their mean against the old pods' levels, on logarithms,
    /// at this level (with one new pod, the prediction interval of the old pods' levels). Pods on different nodes differ by as much
    /// as a release does; how much, the old pods show. Applied with two old pods or more.
    #[serde(default = "defaults::pod_alpha")]
    pub pod_alpha: f64,
    /// When the minutes both versions served (after the new pods' warm-up) are too few — a
    /// fast rollout, 25% batches, a bake after the old pods left — judge the new pods against
    /// the old version's level in the `window` before its pods left, and count it a
    /// regression only beyond the largest drift the old version showed by itself over the
    /// same gap within `history_span`. `false`: only moments both versions served count.
    #[serde(default = "defaults::yes")]
    pub history: bool,
    /// How far back the old version's series is read for that comparison and its drift.
    #[serde(default = "defaults::history_span")]
    pub history_span: PromDuration,
    /// The fewest pairs of old-version stretches the drift is measured on; with fewer, the
    /// history says too little about how much the metric moves by itself: inconclusive, or
    /// held to `unknown_drift` when it is set.
    #[serde(default = "defaults::min_drift_pairs")]
    pub min_drift_pairs: usize,
    /// The ratio a regression must reach when the old version's history is too short to
    /// measure its own drift (fewer than `min_drift_pairs` pairs: a version that served less
    /// than about half an hour before the release, a hotfix after a release): the drift a
    /// healthy version may show, assumed rather than measured, and said so in the verdict.
    /// Unset: such a comparison stays inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_drift: Option<f64>,
    /// The longest shared incident the comparison with history must not blame on the
    /// release: the new level is judged once it spans longer than this, without its worst
    /// stretch of this length.
    #[serde(default = "defaults::incident_span")]
    pub incident_span: PromDuration,
}

/// A per-pod series of the new ReplicaSet against a fixed threshold: saturation needs no
/// baseline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Absolute {
    /// Range query: one series per pod of one ReplicaSet.
    pub query: Template,
    /// Resolution of the range query.
    #[serde(default = "defaults::step")]
    pub step: PromDuration,
    /// What the query's number is, for the report (as for compare checks).
    #[serde(default)]
    pub unit: Unit,
    /// Samples of a pod younger than this are left out (opcache priming, JIT warm-up); up to
    /// twice this, where higher is worse, those before the pod's level has fallen too.
    #[serde(default)]
    pub warmup: PromDuration,
    /// Which quantile of the new side's samples is compared (0.5 = median).
    #[serde(default = "defaults::median")]
    pub quantile: f64,
    /// Fails when the quantile is at or above this (below, for lower-is-worse).
    pub threshold: f64,
    /// Which way is worse (higher by default): whether the threshold is a ceiling or a floor.
    #[serde(default)]
    pub direction: Direction,
    /// Samples of the new pods needed for a conclusion.
    #[serde(default = "defaults::min_samples")]
    pub min_samples: usize,
    /// When the old pods are under the same pressure, the cause is shared (load, a
    /// dependency), not the release: pass. With this set and no old pods left (after the
    /// rollout), a breach only warns, unless `act_without_baseline` is set.
    #[serde(default = "defaults::yes")]
    pub unless_old_too: bool,
    /// The old pods count as under the same pressure when their quantile reaches this fraction
    /// of the threshold (its inverse, for lower-is-worse).
    #[serde(default = "defaults::old_too_at")]
    pub old_too_at: f64,
    /// Act on a breach even when there are no old pods to rule out a shared cause.
    #[serde(default)]
    pub act_without_baseline: bool,
}

/// PHP errors read from the containers' logs (no metrics needed), new ReplicaSet against old,
/// signature by signature, per pod-minute of log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// The container whose log is read. Unset: the one the pod names with
    /// `kubectl.kubernetes.io/default-container`, else its first container that is not a known
    /// sidecar (a mesh proxy, a log agent), else its first.
    #[serde(default)]
    pub container: Option<String>,
    /// The error kinds that count (see `phplog::ErrorKind`); the class-loading ones by default.
    #[serde(default = "defaults::class_loading_kinds")]
    pub kinds: Vec<ErrorKind>,
    /// Per-evaluation significance level, one-sided, shared by the signatures tested
    /// (Bonferroni).
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
    /// Null hypothesis: new rate ≤ tolerance × old rate, per pod-minute.
    #[serde(default = "defaults::one")]
    pub tolerance: f64,
    /// Effect floor: the new/old rate ratio of the deciding signature must reach this.
    #[serde(default = "defaults::error_ratio")]
    pub min_ratio: f64,
    /// The new side must print at least this many errors of the deciding signature.
    #[serde(default = "defaults::min_errors")]
    pub min_errors: f64,
    /// Each side needs at least this many pod-minutes of log read for a conclusion.
    #[serde(default = "defaults::min_pod_minutes")]
    pub min_pod_minutes: f64,
}

mod defaults {
    use crate::analysis::phplog::ErrorKind;
    pub(super) fn class_loading_kinds() -> Vec<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_class_loading())
            .collect()
    }
    pub(super) fn min_pod_minutes() -> f64 {
        2.0
    }
    use crate::analysis::duration::PromDuration;
    pub(super) fn window() -> PromDuration {
        PromDuration::from_secs(300)
    }
    pub(super) fn step() -> PromDuration {
        PromDuration::from_secs(30)
    }
    pub(super) fn interval() -> PromDuration {
        PromDuration::from_secs(60)
    }
    pub(super) fn incident_span() -> PromDuration {
        PromDuration::from_secs(300)
    }
    pub(super) fn burst_share() -> f64 {
        0.5
    }
    pub(super) fn history_pairing() -> f64 {
        crate::analysis::stats::HISTORY_PAIRING
    }
    pub(super) fn min_drift_pairs() -> usize {
        10
    }
    pub(super) fn history_span() -> PromDuration {
        PromDuration::from_secs(3600)
    }
    pub(super) fn consecutive() -> u32 {
        2
    }
    pub(super) fn yes() -> bool {
        true
    }
    pub(super) fn alpha() -> f64 {
        0.001
    }
    pub(super) fn one() -> f64 {
        1.0
    }
    pub(super) fn error_ratio() -> f64 {
        2.0
    }
    pub(super) fn pod_alpha() -> f64 {
        0.01
    }
    pub(super) fn compare_ratio() -> f64 {
        1.2
    }
    pub(super) fn min_errors() -> f64 {
        3.0
    }
    pub(super) fn min_requests() -> f64 {
        100.0
    }
    pub(super) fn min_samples() -> usize {
        10
    }
    pub(super) fn median() -> f64 {
        0.5
    }
    pub(super) fn old_too_at() -> f64 {
        0.8
    }
}

impl Check {
    /// True for checks that need the old ReplicaSet as a baseline.
    pub fn needs_baseline(&self) -> bool {
        !matches!(self, Check::Absolute(_))
    }

    /// True for checks whose test holds its level over any number of looks (`error_rate` with
    /// `test: sequential`): looking longer costs them no false alarms.
    pub fn valid_over_looks(&self) -> bool {
        matches!(self, Check::ErrorRate(e) if e.test == ProportionTest::Sequential)
    }

    /// The check's kind as written in rule files.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::ErrorRate(_) => "error_rate",
            Check::Compare(_) => "compare",
            Check::Absolute(_) => "absolute",
            Check::Logs(_) => "logs",
        }
    }
}

/// A problem in a rule file. Names the file, and the rule and line where known.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct RuleError {
    /// The rule file the problem is in.
    pub file: PathBuf,
    /// The rule it concerns, when one can be named.
    pub rule: Option<String>,
    /// The line in the file, counted from 1, when known.
    pub line: Option<u64>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule `{rule}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems found in a set of rule files (lint reports every one, not just the first).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A loaded, checked set of rules, with the files they came from.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// Every rule of every file, in the order the files were read and the rules written.
    pub rules: Vec<Rule>,
    /// The files the rules were read from, in the order they were read.
    pub files: Vec<PathBuf>,
}

/// The default rules, compiled in so that the binary works with no files at hand.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.yaml");

impl RuleSet {
    /// Whether any rule reads pod logs (`logs` rules).
    pub fn reads_pod_logs(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.check, Check::Logs(_)))
    }

    /// The bundled default rules.
    pub fn defaults() -> RuleSet {
        RuleSet::from_sources(&[(
            PathBuf::from("rules/default.yaml"),
            DEFAULT_RULES.to_string(),
        )])
        .expect("the bundled default rules are checked by the test suite")
    }

    /// Loads the given files and folders, or the bundled defaults when none are given.
    pub fn load_or_defaults(paths: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
        if paths.is_empty() {
            Ok(RuleSet::defaults())
        } else {
            RuleSet::load(paths)
        }
    }

    /// Loads rule files and folders (their `*.yaml` / `*.yml` files, recursively, in name
    /// order, leaving out entries whose names start with `..`: the `..data` link and dated
    /// folders through which Kubernetes mounts a ConfigMap hold a second copy of every file; a
    /// folder that links lead to more than once, even in a loop, is read once).
    /// Every problem in every file is reported.
    pub fn load(paths: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            match collect_files(path) {
                Ok(files) => {
                    for file in files {
                        match std::fs::read_to_string(&file) {
                            Ok(text) => sources.push((file, text)),
                            Err(e) => errors.push(file_error(&file, format!("cannot read: {e}"))),
                        }
                    }
                }
                Err(e) => errors.push(file_error(path, e)),
            }
        }
        if sources.is_empty() && !errors.is_empty() {
            // Nothing was read: "no rules" would only repeat that, about no file.
            return Err(RuleErrors(errors));
        }
        if sources.is_empty() {
            let shown = paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>();
            errors.push(file_error(
                paths
                    .first()
                    .map(PathBuf::as_path)
                    .unwrap_or(Path::new(".")),
                format!(
                    "no rule files (*.yaml, *.yml) found in {}",
                    shown.join(", ")
                ),
            ));
        }
        match RuleSet::from_sources(&sources) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(RuleErrors(errors)),
            Err(RuleErrors(more)) => {
                errors.extend(more);
                Err(RuleErrors(errors))
            }
        }
    }

    /// Parses and checks rule texts, each with the path it is reported under.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<RuleSet, RuleErrors> {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for (path, text) in sources {
            let file: RuleFile = match serde_saphyr::from_str(text) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(RuleError {
                        file: path.clone(),
                        rule: rule_name_near(text, e.location().map(|l| l.line())),
                        line: e.location().map(|l| l.line()),
                        message: first_line(&e.to_string()),
                    });
                    continue;
                }
            };
            if file.version != FORMAT_VERSION {
                errors.push(file_error(
                    path,
                    format!(
                        "version {} is not supported (this build reads version {FORMAT_VERSION})",
                        file.version
                    ),
                ));
                continue;
            }
            let lines = lines_of_rules(text);
            for rule in file.rules {
                let line = lines.get(rule.name.as_str()).copied();
                for message in rule.problems() {
                    errors.push(RuleError {
                        file: path.clone(),
                        rule: Some(rule.name.clone()),
                        line,
                        message,
                    });
                }
                if !seen.insert(rule.name.clone()) {
                    errors.push(RuleError {
                        file: path.clone(),
                        rule: Some(rule.name.clone()),
                        line,
                        message: "a rule with this name is already loaded; names must be unique"
                            .into(),
                    });
                }
                set.rules.push(rule);
            }
            set.files.push(path.clone());
        }
        if errors.is_empty() && set.rules.is_empty() {
            let file = sources
                .first()
                .map_or_else(|| PathBuf::from("."), |(p, _)| p.clone());
            errors.push(file_error(
                &file,
                "no rules: a rule set needs at least one rule".into(),
            ));
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(RuleErrors(errors))
        }
    }

    /// A rule by name.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

impl Rule {
    /// The `{{ interval }}` of the rule's queries: its stratum for error rates, its step
    /// otherwise (the window for logs rules, which have no query).
    pub fn interval(&self) -> PromDuration {
        match &self.check {
            Check::ErrorRate(c) => c.interval,
            Check::Compare(c) => c.step,
            Check::Absolute(c) => c.step,
            Check::Logs(_) => self.window,
        }
    }
}

/// The longest window (and warm-up) a rule may have.
pub const MAX_WINDOW: PromDuration = PromDuration::from_secs(24 * 3600);
/// The most failing evaluations in a row a rule may wait for (at 30 s, 50 minutes).
pub const MAX_CONSECUTIVE: u32 = 100;
/// How far past a pod's first point a compare or absolute rule's warm-up may reach, as a
/// multiple of its `warmup`: the fixed part, and as long again for a start-up still settling.
/// Range queries reach back that far before the window.
pub const WARMUP_REACH: i64 = 2;

fn file_error(path: &Path, message: String) -> RuleError {
    RuleError {
        file: path.to_path_buf(),
        rule: None,
        line: None,
        message,
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// The rule files at `path`: itself, or the `*.yaml` / `*.yml` files under it (see
/// [`RuleSet::load`]).
fn collect_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    walk(path, &mut HashSet::new(), &mut out)?;
    Ok(out)
}

/// Adds the rule files at `path` to `out`. A folder is read once however many links lead to
/// it (`visited` holds the canonical paths of the folders read), so links that loop end.
fn walk(path: &Path, visited: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("cannot read: {e}"))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".."))
        {
            continue;
        }
        if entry.is_dir() {
            walk(&entry, visited, out)?;
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(entry);
        }
    }
    Ok(())
}

/// The rule name a line declares (`name: x` or `- name: "x"`), if it declares one.
fn declared_name(line: &str) -> Option<&str> {
    let l = line.trim_start().trim_start_matches("- ").trim_start();
    Some(
        l.strip_prefix("name:")?
            .trim()
            .trim_matches(|c| c == '"' || c == '\''),
    )
}

/// The line where each `name: <rule>` is first written, for messages about parsed rules: one
/// pass over the text for all of them (a pass per rule took 33 s for 20,000 rules).
fn lines_of_rules(text: &str) -> HashMap<&str, u64> {
    let mut lines = HashMap::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(name) = declared_name(l) {
            lines.entry(name).or_insert(i as u64 + 1);
        }
    }
    lines
}

/// The rule whose `name:` precedes a line, for syntax errors inside a rule.
fn rule_name_near(text: &str, line: Option<u64>) -> Option<String> {
    let line = line? as usize;
    text.lines()
        .take(line)
        .filter_map(declared_name)
        .last()
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
