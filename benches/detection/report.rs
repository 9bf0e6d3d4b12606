//! What the benchmark counts and prints: recall, false actions and delays per judge, overall
//! and per category; the oracle's bound; the delays issue 12 sets goals for.
//!
//! Owns the tallies and the Markdown tables (copied into BENCHMARKS.md as printed).

use std::collections::BTreeMap;

use rollout_guard::analysis::stats;

use crate::judges::{Outcome, STEP};
use crate::oracle::ORACLE_ALPHA;

pub const JUDGES: [&str; 5] = [
    "rollout-guard defaults",
    "threshold (Argo-style)",
    "Mann-Whitney (Kayenta-style)",
    "threshold, strict",
    "Mann-Whitney, strict",
];

/// Acted / rollouts, and when, for one judge over a set of rollouts.
#[derive(Default)]
pub struct Tally {
    pub bad: usize,
    pub caught: usize,
    pub healthy: usize,
    pub false_actions: usize,
    pub delays: Vec<f64>,
}

impl Tally {
    pub fn add(&mut self, bad: bool, outcome: Outcome) {
        if bad {
            self.bad += 1;
            if let Some(d) = outcome {
                self.caught += 1;
                self.delays.push(d);
            }
        } else {
            self.healthy += 1;
            if outcome.is_some() {
                self.false_actions += 1;
            }
        }
    }

    fn recall(&self) -> f64 {
        100.0 * self.caught as f64 / self.bad.max(1) as f64
    }

    fn false_rate(&self) -> f64 {
        100.0 * self.false_actions as f64 / self.healthy.max(1) as f64
    }

    fn median_delay(&self) -> String {
        stats::median(&self.delays).map_or("-".into(), |d| format!("{d:.0} s"))
    }
}

/// Delays in evaluation intervals, for one judge, over the rollouts a goal is about.
#[derive(Default)]
pub struct Delays {
    pub rollouts: usize,
    pub intervals: Vec<f64>,
}

impl Delays {
    /// Counts a rollout; `delay` seconds from the reference moment to the action, if acted.
    pub fn add(&mut self, delay: Option<f64>) {
        self.rollouts += 1;
        self.intervals.extend(delay.map(|d| d / STEP));
    }

    fn cell(&self) -> String {
        let q = |p: f64| stats::quantile(&self.intervals, p).ok();
        match (q(0.5), q(0.9)) {
            (Some(m), Some(p90)) => format!(
                "{}/{}: median {m:.1}, 90th pct {p90:.1}",
                self.intervals.len(),
                self.rollouts
            ),
            _ => format!("0/{}", self.rollouts),
        }
    }
}

/// The oracle's expected catches in a category, at the two looks.
#[derive(Default)]
pub struct Oracle {
    pub at_last_old_pod: f64,
    pub at_end_of_bake: f64,
    pub rollouts: usize,
}

/// Everything one mode's run counted.
pub struct Results {
    pub totals: Vec<Tally>,
    /// The bad rollouts the oracle detects on their own errors by the end of the bake, and
    /// every CPU fault.
    pub detectable: Vec<Tally>,
    pub by_category: BTreeMap<String, Vec<Tally>>,
    pub deciding_rules: BTreeMap<String, usize>,
    pub false_alarms: Vec<String>,
    pub missed: Vec<String>,
    pub oracle: BTreeMap<String, Oracle>,
    /// Goal (a): from the first bad errors visible to the action, class-loading faults ≥ 0.5%.
    pub class_delays: Vec<Delays>,
    /// Goal (b): from the end of the warm-up to the action, CPU regressions of +50% or more.
    pub cpu_delays: Vec<Delays>,
}

impl Results {
    pub fn new() -> Results {
        fn per_judge<T: Default>() -> Vec<T> {
            JUDGES.iter().map(|_| T::default()).collect()
        }
        Results {
            totals: per_judge(),
            detectable: per_judge(),
            by_category: BTreeMap::new(),
            deciding_rules: BTreeMap::new(),
            false_alarms: Vec::new(),
            missed: Vec::new(),
            oracle: BTreeMap::new(),
            class_delays: per_judge(),
            cpu_delays: per_judge(),
        }
    }

    /// Counts one rollout's outcomes, one per judge.
    pub fn add(&mut self, category: &str, bad: bool, outcomes: &[Outcome]) {
        let cat = self
            .by_category
            .entry(category.to_string())
            .or_insert_with(|| JUDGES.iter().map(|_| Tally::default()).collect());
        for (j, o) in outcomes.iter().enumerate() {
            self.totals[j].add(bad, *o);
            cat[j].add(bad, *o);
        }
    }
}

pub fn print(mode_name: &str, r: &Results) {
    println!("\n#### Mode {mode_name}\n");
    print_totals(r);
    print_categories(r);
    print_delays(r);
    print_oracle(r);
    println!("\nRules behind rollout-guard's actions:");
    for (rule, n) in &r.deciding_rules {
        println!("- {rule}: {n}");
    }
    if !r.missed.is_empty() {
        println!(
            "\nBad rollouts rollout-guard let through:\n- {}",
            r.missed.join("\n- ")
        );
    }
    if !r.false_alarms.is_empty() {
        println!(
            "\nHealthy rollouts rollout-guard acted on:\n- {}",
            r.false_alarms.join("\n- ")
        );
    }
}

fn print_totals(r: &Results) {
    println!(
        "| judge | recall on bad rollouts | … on those an oracle detects | false actions on healthy | median time to decision |"
    );
    println!("|---|---|---|---|---|");
    for (j, name) in JUDGES.iter().enumerate() {
        let (t, d) = (&r.totals[j], &r.detectable[j]);
        println!(
            "| {name} | {:.1}% ({}/{}) | {:.1}% ({}/{}) | {:.2}% ({}/{}) | {} |",
            t.recall(),
            t.caught,
            t.bad,
            d.recall(),
            d.caught,
            d.bad,
            t.false_rate(),
            t.false_actions,
            t.healthy,
            t.median_delay()
        );
    }
    println!(
        "\n\"An oracle detects\": the errors the new pods actually made by the end of the bake are significant at α = {ORACLE_ALPHA} for an oracle that knows the healthy rates (see the detectability table); every CPU fault counts."
    );
}

fn print_categories(r: &Results) {
    println!(
        "\nBy category (acted / rollouts; median time from the first new pod to the decision):\n"
    );
    println!("| category | {} |", JUDGES.join(" | "));
    println!("|---|{}", "---|".repeat(JUDGES.len()));
    for (cat, tallies) in &r.by_category {
        let cells: Vec<String> = tallies
            .iter()
            .map(|t| {
                if t.bad > 0 {
                    format!("{}/{} ({})", t.caught, t.bad, t.median_delay())
                } else {
                    format!("{}/{}", t.false_actions, t.healthy)
                }
            })
            .collect();
        println!("| {cat} | {} |", cells.join(" | "));
    }
}

fn print_delays(r: &Results) {
    println!(
        "\nDelays in evaluation intervals ({STEP} s; acted / rollouts, median and 90th percentile of those acted on):\n"
    );
    println!(
        "| judge | (a) class-loading faults ≥ 0.5%: from the first bad errors visible to the action | (b) CPU +50% or more: from the end of the first new pod's warm-up to the action |"
    );
    println!("|---|---|---|");
    for (j, name) in JUDGES.iter().enumerate() {
        println!(
            "| {name} | {} | {} |",
            r.class_delays[j].cell(),
            r.cpu_delays[j].cell()
        );
    }
}

fn print_oracle(r: &Results) {
    if r.oracle.is_empty() {
        return;
    }
    println!(
        "\nDetectability: the expected catches of an oracle that knows the healthy error rates and their burstiness and tests the new pods' errors once, at α = {ORACLE_ALPHA}, when the last old pod leaves or at the end of the bake (error faults only):\n"
    );
    println!(
        "| category | oracle at the last old pod | oracle at the end of the bake | rollout-guard defaults |"
    );
    println!("|---|---|---|---|");
    for (cat, o) in &r.oracle {
        let caught = r.by_category.get(cat).map_or(0, |t| t[0].caught);
        let n = o.rollouts;
        println!(
            "| {cat} | {:.1}/{n} | {:.1}/{n} | {caught}/{n} |",
            o.at_last_old_pod, o.at_end_of_bake
        );
    }
}
