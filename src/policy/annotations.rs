//! The `rollout-guard.io/*` annotations: the ones people set on a Deployment to opt in and
//! tune it, and the ones the controller writes back.
//!
//! Owns the annotation names (listed in the README) and the reading of a Deployment's
//! overrides into its [`Settings`] and rule subset. An annotation that cannot be read never
//! falls back to a default that might act: the Deployment is then only observed, and the
//! problem is reported. Pure; no client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::analysis::duration::PromDuration;
use crate::analysis::rules::RuleSet;
use crate::policy::guard::{Memory, Mode, Settings, gate_steps_ok};

/// What every annotation of the controller's starts with.
pub const PREFIX: &str = "rollout-guard.io/";
/// `"true"` opts a Deployment in.
pub const ENABLED: &str = "rollout-guard.io/enabled";
/// `observe`, `guard` or `gate`.
pub const MODE: &str = "rollout-guard.io/mode";
/// Comma-separated rule names: only these of the loaded rules apply.
pub const RULES: &str = "rollout-guard.io/rules";
/// Time between evaluations, e.g. `30s`.
pub const INTERVAL: &str = "rollout-guard.io/interval";
/// Gate step analysis time and post-rollout check time, e.g. `10m`.
pub const BAKE_TIME: &str = "rollout-guard.io/bake-time";
/// Gate steps in percent, e.g. `25,50,100`.
pub const GATE_STEPS: &str = "rollout-guard.io/gate-steps";
/// `"true"` turns every action on this Deployment into a record.
pub const KILL_SWITCH: &str = "rollout-guard.io/kill-switch";
/// The pod-template hash of a revision the controller rolled back that a person releases for a
/// fresh analysis (removed by the controller once taken).
pub const ALLOW_REVISION: &str = crate::policy::guard::ALLOW_REVISION_ANNOTATION;
/// Written by the controller: what it decided and did (JSON, see `guard::Memory`).
pub const STATE: &str = "rollout-guard.io/state";
/// Written by the controller: the latest verdict in one line.
pub const LAST_VERDICT: &str = "rollout-guard.io/last-verdict";

/// Every annotation a person may set, for `--help` and the README.
pub const USER_SET: [(&str, &str); 8] = [
    (ENABLED, "\"true\" opts the Deployment in"),
    (MODE, "observe | guard | gate (default from the config)"),
    (
        RULES,
        "comma-separated names of the loaded rules to apply (default: all)",
    ),
    (INTERVAL, "time between evaluations, 5s to 10m, e.g. 30s"),
    (
        BAKE_TIME,
        "gate step analysis time and post-rollout check time, at most 24h, e.g. 10m",
    ),
    (GATE_STEPS, "gate pauses at these percentages, e.g. 25,50"),
    (
        KILL_SWITCH,
        "\"true\" records actions instead of taking them",
    ),
    (
        ALLOW_REVISION,
        "pod-template hash of a rolled-back revision to analyse again instead of holding it",
    ),
];

/// The range a Deployment's own interval may take: a tenant's `1ms` would have the shared
/// controller query Prometheus and write records hundreds of times a second.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The longest time between evaluations a Deployment may ask for (see [`MIN_INTERVAL`]).
pub const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// The longest bake time a Deployment may ask for.
pub const MAX_BAKE: Duration = Duration::from_secs(24 * 3600);

/// A Deployment's settings and rules after its annotations.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The config's settings with the Deployment's annotations applied (mode `observe` if any could
    /// not be read).
    pub settings: Settings,
    /// The loaded rules, shared; a copy only when `rollout-guard.io/rules` picks a subset.
    pub rules: Arc<RuleSet>,
    /// Annotations that could not be read; when any, the mode is `observe`.
    pub problems: Vec<String>,
}

/// The controller's memory in the state annotation: `None` without one, an error when it cannot
/// be read (each caller decides what that means).
pub fn state(annotations: &BTreeMap<String, String>) -> Option<Result<Memory, serde_json::Error>> {
    annotations.get(STATE).map(|raw| serde_json::from_str(raw))
}

/// Whether a Deployment opted in by annotation.
pub fn enabled(annotations: &BTreeMap<String, String>) -> bool {
    enabled_says(annotations, "true")
}

/// Whether the Deployment opted out in so many words (`rollout-guard.io/enabled: "false"`):
/// under a config `selector`, the one way to leave out a Deployment it selects.
pub fn disabled(annotations: &BTreeMap<String, String>) -> bool {
    enabled_says(annotations, "false")
}

fn enabled_says(annotations: &BTreeMap<String, String>, value: &str) -> bool {
    annotations.get(ENABLED).is_some_and(|v| v.trim() == value)
}

/// Applies a Deployment's annotations to the base settings and the loaded rules.
pub fn resolve(
    annotations: &BTreeMap<String, String>,
    base: &Settings,
    rules: &Arc<RuleSet>,
) -> Resolved {
    let mut s = base.clone();
    let mut problems = Vec::new();
    let mut chosen = rules.clone();
    if let Some(v) = annotations.get(MODE) {
        match v.parse::<Mode>() {
            Ok(m) => s.mode = m,
            Err(e) => problems.push(format!("{MODE}: {e}")),
        }
    }
    if let Some(v) = annotations.get(INTERVAL) {
        match interval(v) {
            Ok(d) => s.interval = d,
            Err(e) => problems.push(e),
        }
    }
    if let Some(v) = annotations.get(BAKE_TIME) {
        match bake_time(v) {
            Ok(d) => s.bake = d,
            Err(e) => problems.push(e),
        }
    }
    if let Some(v) = annotations.get(GATE_STEPS) {
        match gate_steps(v) {
            Ok(steps) => s.gate_steps = steps,
            Err(e) => problems.push(e),
        }
    }
    if let Some(v) = annotations.get(KILL_SWITCH) {
        match kill_switch(v) {
            Ok(true) => s.kill_switch = true,
            // `false` leaves the base setting as it is.
            Ok(false) => {}
            Err(e) => problems.push(e),
        }
    }
    if let Some(v) = annotations.get(ALLOW_REVISION) {
        let hash = v.trim();
        if !hash.is_empty() {
            s.allowed_hash = Some(hash.to_string());
        }
    }
    if let Some(v) = annotations.get(RULES) {
        match rule_subset(v, rules) {
            Ok(subset) => chosen = subset,
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        s.mode = Mode::Observe;
    }
    Resolved {
        settings: s,
        rules: chosen,
        problems,
    }
}

/// The interval annotation's value, within [`MIN_INTERVAL`] to [`MAX_INTERVAL`]; `Err` is the
/// problem to report.
fn interval(v: &str) -> Result<Duration, String> {
    match duration(v) {
        Ok(d) if (MIN_INTERVAL..=MAX_INTERVAL).contains(&d) => Ok(d),
        Ok(_) => Err(format!(
            "{INTERVAL}: {v:?} is outside 5s to 10m (a shorter interval loads Prometheus and the records for every tenant)"
        )),
        Err(e) => Err(format!("{INTERVAL}: {e}")),
    }
}

/// The bake a Deployment's `rollout-guard.io/bake-time` asks for, when it has a valid one.
pub fn bake_time_of(annotations: &BTreeMap<String, String>) -> Option<Duration> {
    annotations.get(BAKE_TIME).and_then(|v| bake_time(v).ok())
}

/// The bake-time annotation's value, at most [`MAX_BAKE`]; `Err` is the problem to report.
fn bake_time(v: &str) -> Result<Duration, String> {
    match duration(v) {
        Ok(d) if d <= MAX_BAKE => Ok(d),
        Ok(_) => Err(format!("{BAKE_TIME}: {v:?} is longer than 24h")),
        Err(e) => Err(format!("{BAKE_TIME}: {e}")),
    }
}

/// The gate-steps annotation's percentages (`25%, 50`); `Err` is the problem to report.
fn gate_steps(v: &str) -> Result<Vec<u32>, String> {
    let parsed: Result<Vec<u32>, _> = v
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('%').parse::<u32>())
        .collect();
    parsed
        .map_err(|e| e.to_string())
        .and_then(|steps| {
            gate_steps_ok(&steps)?;
            Ok(steps)
        })
        .map_err(|e| format!("{GATE_STEPS}: {v:?}: {e}"))
}

/// Whether the kill-switch annotation turns the kill switch on (`true`) or says nothing
/// (`false`); `Err` is the problem to report.
fn kill_switch(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{KILL_SWITCH}: {other:?} is not true or false")),
    }
}

/// The loaded rules the rules annotation names (all of them must be loaded, and it must name
/// one); `Err` is the problem to report.
fn rule_subset(v: &str, rules: &Arc<RuleSet>) -> Result<Arc<RuleSet>, String> {
    let names: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| rules.get(n).is_none())
        .collect();
    if !unknown.is_empty() {
        Err(format!(
            "{RULES}: no loaded rule is named {}",
            unknown.join(", ")
        ))
    } else if names.is_empty() {
        Err(format!("{RULES}: names no rule"))
    } else {
        let mut subset = RuleSet::clone(rules);
        subset.rules.retain(|r| names.contains(&r.name.as_str()));
        Ok(Arc::new(subset))
    }
}

/// A duration annotation's value (`30s`, `5m`).
fn duration(v: &str) -> Result<Duration, String> {
    v.trim()
        .parse::<PromDuration>()
        .map(PromDuration::as_std)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_exact_true_opts_in() {
        assert!(enabled(&ann(&[(ENABLED, "true")])));
        assert!(!enabled(&ann(&[(ENABLED, "yes")])));
        assert!(!enabled(&ann(&[])));
    }

    #[test]
    fn annotations_override_the_base_settings_and_select_rules() {
        let rules = Arc::new(RuleSet::defaults());
        let r = resolve(
            &ann(&[
                (MODE, "gate"),
                (INTERVAL, "10s"),
                (BAKE_TIME, "2m"),
                (GATE_STEPS, "25%, 50"),
                (RULES, "class-loading-errors, cpu-saturation"),
            ]),
            &Settings::default(),
            &rules,
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.settings.mode, Mode::Gate);
        assert_eq!(r.settings.interval, Duration::from_secs(10));
        assert_eq!(r.settings.bake, Duration::from_secs(120));
        assert_eq!(r.settings.gate_steps, [25, 50]);
        let names: Vec<&str> = r.rules.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["class-loading-errors", "cpu-saturation"]);
    }

    #[test]
    fn an_unreadable_annotation_means_observe_and_says_why() {
        let rules = Arc::new(RuleSet::defaults());
        for (key, value, want) in [
            (MODE, "gaurd", "gaurd"),
            (INTERVAL, "soon", INTERVAL),
            (INTERVAL, "0s", "outside 5s to 10m"),
            (INTERVAL, "1ms", "outside 5s to 10m"),
            (INTERVAL, "1h", "outside 5s to 10m"),
            (BAKE_TIME, "1000y", BAKE_TIME),
            (BAKE_TIME, "25h", "longer than 24h"),
            (BAKE_TIME, "-1m", BAKE_TIME),
            (GATE_STEPS, "50,20", "increasing"),
            (GATE_STEPS, "half", GATE_STEPS),
            (KILL_SWITCH, "on", "not true or false"),
            (RULES, "class-loading-error", "class-loading-error"),
            (RULES, " , ", "names no rule"),
        ] {
            let r = resolve(&ann(&[(key, value)]), &Settings::default(), &rules);
            assert_eq!(r.settings.mode, Mode::Observe, "{key}={value}");
            assert!(
                r.problems.iter().any(|p| p.contains(want)),
                "{key}={value}: {:?}",
                r.problems
            );
            assert_eq!(r.rules.rules.len(), rules.rules.len());
        }
    }

    #[test]
    fn the_kill_switch_annotation_only_adds() {
        let base = Settings {
            kill_switch: true,
            ..Settings::default()
        };
        let r = resolve(
            &ann(&[(KILL_SWITCH, "false")]),
            &base,
            &Arc::new(RuleSet::defaults()),
        );
        assert!(
            r.settings.kill_switch,
            "an annotation cannot lift the global switch"
        );
        let r = resolve(
            &ann(&[(KILL_SWITCH, "true")]),
            &Settings::default(),
            &Arc::new(RuleSet::defaults()),
        );
        assert!(r.settings.kill_switch && r.settings.dry_run());
    }
}
