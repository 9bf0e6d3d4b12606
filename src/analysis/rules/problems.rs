//! What makes a loaded rule unusable beyond what its YAML schema refuses: values out of range,
//! steps and windows that do not divide, queries that do not parse or ask Prometheus for more
//! points than it serves. Start-up, reload and `rules lint` run the same checks. Owns the
//! checks only; loading and reporting them with file and line is the rule set's.

use super::*;

impl Rule {
    /// What is wrong with this rule beyond what the YAML schema already refuses.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.check_queries(&mut p);
        self.check_common(&mut p);
        match &self.check {
            Check::ErrorRate(c) => self.check_error_rate(&mut p, c),
            Check::Compare(c) => self.check_compare(&mut p, c),
            Check::Logs(c) => self.check_logs(&mut p, c),
            Check::Absolute(c) => self.check_absolute(&mut p, c),
        }
        p
    }

    /// The settings every rule has: its name, window and `consecutive`.
    fn check_common(&self, p: &mut Vec<String>) {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && self.name.as_bytes()[0].is_ascii_alphanumeric();
        if !valid_name {
            p.push("name must be 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit".into());
        }
        if self.window.is_zero() || self.window > MAX_WINDOW {
            p.push(format!(
                "window must be longer than 0s and at most {MAX_WINDOW}, got {}",
                self.window
            ));
        }
        if !(1..=MAX_CONSECUTIVE).contains(&self.consecutive) {
            p.push(format!(
                "consecutive must be 1 to {MAX_CONSECUTIVE}, got {}",
                self.consecutive
            ));
        }
    }

    /// The check's `alpha` must be in (0, 0.5].
    fn check_alpha(&self, p: &mut Vec<String>, alpha: f64) {
        level(p, &format!("{}.alpha", self.check.kind()), alpha);
    }

    /// An error-rate check's settings, its interval against the window included.
    fn check_error_rate(&self, p: &mut Vec<String>, c: &ErrorRate) {
        self.check_alpha(p, c.alpha);
        positive(p, "error_rate.tolerance", c.tolerance);
        at_least(p, "error_rate.min_ratio", c.min_ratio, 1.0);
        at_least(p, "error_rate.min_rate_increase", c.min_rate_increase, 0.0);
        at_least(p, "error_rate.min_errors", c.min_errors, 0.0);
        at_least(p, "error_rate.min_requests", c.min_requests, 0.0);
        at_least(p, "error_rate.history_pairing", c.history_pairing, 1.0);
        if !(c.burst_share > 0.0 && c.burst_share <= 1.0) {
            p.push(format!(
                "check.error_rate.burst_share must be above 0 and at most 1 (got {})",
                c.burst_share
            ));
        }
        if c.interval.is_zero()
            || c.interval > self.window
            || !divides(c.interval, self.window)
            || self.window.as_secs_f64() / c.interval.as_secs_f64() > 120.0
        {
            p.push(format!(
                "check.error_rate.interval must divide the window ({}) evenly into at most 120 intervals, got {}",
                self.window, c.interval
            ));
        }
        if c.warmup >= self.window || (!c.interval.is_zero() && !divides(c.interval, c.warmup)) {
            p.push(format!(
                "check.error_rate.warmup must be a multiple of the interval ({}) shorter than the window ({}), got {}",
                c.interval, self.window, c.warmup
            ));
        }
        if c.min_rate_increase > 1.0 {
            p.push("check.error_rate.min_rate_increase is a fraction of requests and must be at most 1".into());
        }
    }

    /// A compare check's settings, its step and history span against the window included.
    fn check_compare(&self, p: &mut Vec<String>, c: &Compare) {
        self.check_alpha(p, c.alpha);
        level(p, "compare.pod_alpha", c.pod_alpha);
        at_least(p, "compare.min_ratio", c.min_ratio, 1.0);
        at_least(p, "compare.min_shift", c.min_shift, 0.0);
        if c.min_drift_pairs < 2 {
            p.push("check.compare.min_drift_pairs must be at least 2".into());
        }
        if let Some(u) = c.unknown_drift {
            // Below min_ratio it would change nothing: an unmeasured drift held as low as the
            // floor, as if nothing could move by itself.
            at_least(p, "compare.unknown_drift", u, c.min_ratio.max(1.0));
            if !c.history {
                p.push("check.compare.unknown_drift applies to the comparison with the old version's history, which history: false turns off".into());
            }
        }
        self.check_step(p, c.step, c.warmup);
        if c.min_samples < 2 {
            p.push("check.compare.min_samples must be at least 2".into());
        }
        let three_windows = PromDuration::new(self.window.as_std().saturating_mul(3));
        if c.history && c.history_span < three_windows {
            p.push(format!(
                "check.compare.history_span must be at least three windows ({three_windows}) to show how the metric drifts by itself, got {}",
                c.history_span
            ));
        }
    }

    /// A logs check's settings: thresholds, the kinds counted and the container.
    fn check_logs(&self, p: &mut Vec<String>, c: &Logs) {
        self.check_alpha(p, c.alpha);
        positive(p, "logs.tolerance", c.tolerance);
        at_least(p, "logs.min_ratio", c.min_ratio, 1.0);
        at_least(p, "logs.min_errors", c.min_errors, 0.0);
        at_least(p, "logs.min_pod_minutes", c.min_pod_minutes, 0.0);
        if c.kinds.is_empty() {
            p.push("check.logs.kinds names no error kind: nothing would count".into());
        }
        if c.container.as_deref().is_some_and(|n| n.trim().is_empty()) {
            p.push("check.logs.container is empty; leave it out for the default container".into());
        }
    }

    /// An absolute check's settings, its step against the window included.
    fn check_absolute(&self, p: &mut Vec<String>, c: &Absolute) {
        if !(0.0..=1.0).contains(&c.quantile) {
            p.push(format!(
                "check.absolute.quantile must be in [0, 1], got {}",
                c.quantile
            ));
        }
        if !c.threshold.is_finite() {
            p.push("check.absolute.threshold must be a finite number".into());
        }
        self.check_step(p, c.step, c.warmup);
        if c.min_samples < 1 {
            p.push("check.absolute.min_samples must be at least 1".into());
        }
        if !(c.old_too_at > 0.0 && c.old_too_at <= 1.0) {
            p.push(format!(
                "check.absolute.old_too_at must be in (0, 1], got {}",
                c.old_too_at
            ));
        }
    }

    /// The step must divide the window without asking for more points than Prometheus serves,
    /// and the warmup must be whole steps.
    fn check_step(&self, p: &mut Vec<String>, step: PromDuration, warmup: PromDuration) {
        let kind = self.check.kind();
        if step.is_zero() || step > self.window || !divides(step, self.window) {
            p.push(format!(
                "check.{kind}.step must be longer than 0s and divide the window ({}) evenly, got {step}",
                self.window
            ));
        }
        // The longest range a range query of this rule spans: the window, or for a compare
        // check with history the old version's history, and before it the warm-up's reach
        // (twice `warmup`: a pod that began that long before still has its warm-up read).
        let span = match &self.check {
            Check::Compare(c) if c.history => c.history_span.max(self.window),
            _ => self.window,
        };
        let queried = span.as_secs_f64() + WARMUP_REACH as f64 * warmup.as_secs_f64();
        if !step.is_zero() && queried / step.as_secs_f64() > MAX_POINTS {
            p.push(format!(
                "check.{kind}.step {step} over {span} and twice the warmup ({warmup}) asks for more than {MAX_POINTS} points per series, which Prometheus refuses"
            ));
        }
        if warmup > MAX_WINDOW || !divides(step, warmup) {
            p.push(format!(
                "check.{kind}.warmup must be a multiple of the step ({step}) and at most {MAX_WINDOW}, got {warmup}"
            ));
        }
    }

    /// Every query must select one side's pods, error-rate queries must count per interval, and
    /// each must be PromQL that a range query accepts once its placeholders are filled in.
    fn check_queries(&self, p: &mut Vec<String>) {
        let queries: Vec<(&str, &Template)> = match &self.check {
            Check::ErrorRate(c) => vec![("errors", &c.errors), ("requests", &c.requests)],
            Check::Compare(c) => std::iter::once(("query", &c.query))
                .chain(c.load.as_ref().map(|l| ("load", l)))
                .collect(),
            Check::Absolute(c) => vec![("query", &c.query)],
            Check::Logs(_) => Vec::new(),
        };
        for (name, t) in queries {
            let vars = t.variables();
            if !vars.contains("pods") && !vars.contains("replicaset") {
                p.push(format!(
                    "check.{}.{name} selects neither {{{{ pods }}}} nor {{{{ replicaset }}}}: it would compare the same data on both sides",
                    self.check.kind()
                ));
            }
            if matches!(self.check, Check::ErrorRate(_)) && !vars.contains("interval") {
                p.push(format!(
                    "check.error_rate.{name} must count per {{{{ interval }}}} (e.g. increase(x[{{{{ interval }}}}])): it is evaluated once per interval"
                ));
            }
            if let Err(e) = promql::check(t, self) {
                p.push(format!("check.{}.{name} {e}", self.check.kind()));
            }
        }
    }
}

/// The most points per series Prometheus returns for a range query (it refuses more).
const MAX_POINTS: f64 = 11_000.0;

/// True when `part` divides `whole` into whole steps.
fn divides(part: PromDuration, whole: PromDuration) -> bool {
    let (part, whole) = (part.as_std().as_millis(), whole.as_std().as_millis());
    part > 0 && whole % part == 0
}

/// A test's level: in (0, 0.5].
fn level(p: &mut Vec<String>, what: &str, v: f64) {
    if !(v > 0.0 && v <= 0.5) {
        p.push(format!("check.{what} must be in (0, 0.5], got {v}"));
    }
}

fn positive(p: &mut Vec<String>, what: &str, v: f64) {
    if !(v.is_finite() && v > 0.0) {
        p.push(format!("check.{what} must be a positive number, got {v}"));
    }
}

fn at_least(p: &mut Vec<String>, what: &str, v: f64, min: f64) {
    if !(v.is_finite() && v >= min) {
        p.push(format!(
            "check.{what} must be a number of at least {min}, got {v}"
        ));
    }
}
