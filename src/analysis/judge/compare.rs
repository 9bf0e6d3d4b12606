//! Compare checks: a continuous per-pod series (CPU per request, latency) of the new pods
//! against the old version's.
//!
//! Owns two comparisons and the choice between them. While both versions serve, the new pods'
//! samples are set against the old pods' median at the same moments (Mann-Whitney on the
//! ratios), so a load change moves both sides alike. When those moments are too few — the
//! new pods still warming up when the old ones left (a fast rollout, 25% batches), or a bake
//! after the rollout — the new pods are set against the old version's level in the window
//! before its pods left, and a regression must exceed the largest change the old version's
//! own level showed over the same gap within `history_span`: the metric's own drift (load,
//! request mix, time of day) is measured (assumed, as the rule's `unknown_drift`, only where
//! the old version served too briefly to measure it). Either way the pod is the unit that
//! must agree: more than half of the new pods must each be worse by the effect floor and
//! beyond every old pod's own level (against history: beyond the 95th percentile of the old
//! pods' own rises above the whole), so one pod on a noisy node never fails a release. Pure:
//! series in, a judgement out; no queries, no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Baseline, CompareEvidence, CompareHistory, Evidence, Judged, SampleSummary, Samples, Window,
    enough, fmt_num, fmt_p, medians_by_time, no_baseline, rate_ratio, restricted, samples, summary,
};
use crate::analysis::rules::{Compare, Direction};
use crate::analysis::source::Series;
use crate::analysis::stats::{self, Tail};
use crate::analysis::time;

/// The effect floor of a compare check on the median ratio (`None`: infinite): worse at all,
/// and by at least `min_ratio`.
pub(super) fn median_ratio_reached(ratio: Option<f64>, min_ratio: f64) -> bool {
    ratio.is_none_or(|r| r > 1.0 && r >= min_ratio)
}

/// New against old: at the same moments when there are enough of them, else (with `history`)
/// against the old version's level before its pods left.
pub(super) fn compare(
    rule: &Compare,
    w: &Window,
    new: &[Series],
    old: Option<&[Series]>,
) -> Judged {
    let Some(old) = old else { return no_baseline() };
    let n = samples(new, w, rule.direction);
    let o = samples(old, w, rule.direction);
    let baseline = medians_by_time(&o);
    let na = align(&n, &baseline);
    let oa = align(&o, &baseline);
    let concurrent = enough(na.ratio.len(), "new", rule.min_samples).and(enough(
        oa.ratio.len(),
        "old",
        rule.min_samples,
    ));
    // While both versions serve, the moments they share are the comparison (more of them are
    // coming). Once the old version stopped serving, its history is: the moments it shared
    // with the new pods before it left are their first minutes, against its last pods.
    let stopped = o.times.iter().max() < n.times.iter().max();
    if rule.history && stopped {
        // Both sides over the history span, read once for the comparisons below.
        let level = OldLevel::read(rule, w, old);
        let new_over_span = samples(new, &history_window(rule, w), rule.direction);
        let history = against_history(rule, w, &n, &new_over_span, &level);
        if !matches!(history, Ok(Judged::Decided { fail: true, .. }))
            && let Ok(level) = &level
            && let Some(side_by_side) = failed_while_both_served(rule, &new_over_span, level)
        {
            return side_by_side;
        }
        return history.unwrap_or_else(|why| {
            Judged::Missing(format!(
                "the old pods are gone; against the old version's history: {why}"
            ))
        });
    }
    match concurrent {
        Ok(()) => at_same_moments(rule, &n, &o, &na, &oa),
        Err(e) => Judged::Missing(e),
    }
}

/// Once the old pods are gone: the comparison at the moments both versions served (after the
/// new pods' warm-up, inside `history_span`; the old pods' spread around their median over
/// the whole span), when it fails. What the two showed side by side
/// is the strongest baseline there is (a shared incident or a load change moves both), and it
/// does not stop counting because the old pods left; a fast rollout may not give the history
/// comparison enough of the new level to judge before the bake ends. `None` when it passes or
/// has too few samples on either side.
fn failed_while_both_served(
    rule: &Compare,
    new_over_span: &Samples,
    level: &OldLevel,
) -> Option<Judged> {
    let o = &level.samples;
    let old_times: BTreeSet<i64> = o.times.iter().copied().collect();
    let n = restricted(new_over_span, &old_times);
    let (na, oa) = (align(&n, &level.by_time), align(o, &level.by_time));
    if na.ratio.len() < rule.min_samples || oa.ratio.len() < rule.min_samples {
        return None;
    }
    let judged = at_same_moments(rule, &n, o, &na, &oa);
    matches!(judged, Judged::Decided { fail: true, .. }).then(|| {
        judged.map_reason(|reason| {
            format!(
                "the old pods are gone; at the moments both served (inside the last {}): {reason}",
                rule.history_span
            )
        })
    })
}

/// The rule's window widened back to `history_span`.
fn history_window(rule: &Compare, w: &Window) -> Window {
    w.widened_to(rule.history_span.as_std())
}

/// Samples expressed against the old pods' median at the same moment, both as a ratio and as a
/// difference, with the pod of each; moments where the old side has no positive median are
/// left out.
struct Aligned {
    ratio: Vec<f64>,
    diff: Vec<f64>,
    pod: Vec<usize>,
    time: Vec<i64>,
}

impl Aligned {
    /// Each pod's median ratio over the moments in `at` only.
    fn pod_levels_at(&self, at: &BTreeSet<i64>) -> Vec<f64> {
        let (ratio, pod): (Vec<f64>, Vec<usize>) = self
            .ratio
            .iter()
            .zip(&self.pod)
            .zip(&self.time)
            .filter(|(_, t)| at.contains(t))
            .map(|((r, p), _)| (*r, *p))
            .unzip();
        pod_medians(&ratio, &pod)
    }
}

fn align(s: &Samples, old_median: &BTreeMap<i64, f64>) -> Aligned {
    let mut a = Aligned {
        ratio: Vec::with_capacity(s.values.len()),
        diff: Vec::with_capacity(s.values.len()),
        pod: Vec::with_capacity(s.values.len()),
        time: Vec::with_capacity(s.values.len()),
    };
    for ((v, t), pod) in s.values.iter().zip(&s.times).zip(&s.pod) {
        if let Some(m) = old_median.get(t).filter(|m| **m > 0.0) {
            a.ratio.push(v / m);
            a.diff.push(v - m);
            a.pod.push(*pod);
            a.time.push(*t);
        }
    }
    a
}

/// Each pod's median of `values` (indexed by `pod`), for the pods that have any.
fn pod_medians(values: &[f64], pod: &[usize]) -> Vec<f64> {
    let mut by: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (v, p) in values.iter().zip(pod) {
        by.entry(*p).or_default().push(*v);
    }
    by.values()
        .filter_map(|vs| stats::median(vs).ok())
        .collect()
}

/// `v` turned so that larger is worse.
fn worse_ward(v: f64, direction: Direction) -> f64 {
    match direction {
        Direction::HigherIsWorse => v,
        Direction::LowerIsWorse => 1.0 / v,
    }
}

/// How many of the new pods' levels are worse than `floor` and than every old pod's level
/// (all as ratios, larger is worse after [`worse_ward`]).
fn pods_worse(new_levels: &[f64], old_levels: &[f64], floor: f64) -> usize {
    let old_top = old_levels
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    new_levels
        .iter()
        .filter(|v| **v >= floor && **v > old_top)
        .count()
}

/// How far the new pods' levels stand out from the old pods' own spread: the one-sided p of a
/// t-test of the new levels' mean against the old pods' population, on logarithms (larger is
/// worse; see [`stats::stands_out_greater`]); `None` with fewer than two old pods, or levels
/// that are not positive.
fn pods_stand_out(new_levels: &[f64], old_levels: &[f64]) -> Option<f64> {
    let logs = |v: &[f64]| -> Option<Vec<f64>> {
        v.iter()
            .map(|l| (l.is_finite() && *l > 0.0).then(|| l.ln()))
            .collect()
    };
    let (n, o) = (logs(new_levels)?, logs(old_levels)?);
    stats::stands_out_greater(&n, &o).ok().map(|(_, p)| p)
}

/// How many pods have fewer than `min_samples` samples (each sample's pod in `pod`).
fn young_pods(pod: &[usize], min_samples: usize) -> usize {
    let mut by: BTreeMap<usize, usize> = BTreeMap::new();
    for p in pod {
        *by.entry(*p).or_default() += 1;
    }
    by.values().filter(|n| **n < min_samples).count()
}

/// More than half of `judged` pods.
fn most(worse: usize, judged: usize) -> bool {
    judged > 0 && 2 * worse > judged
}

/// The moments both versions served: Mann-Whitney on the ratios to the old pods' median.
fn at_same_moments(rule: &Compare, n: &Samples, o: &Samples, na: &Aligned, oa: &Aligned) -> Judged {
    // `worse` pairs the side that would be worse first.
    let (tail, worse) = match rule.direction {
        Direction::HigherIsWorse => (Tail::Greater, (na, oa)),
        Direction::LowerIsWorse => (Tail::Less, (oa, na)),
    };
    let (u, p_value) = match stats::mann_whitney(&na.ratio, &oa.ratio, tail) {
        Ok(r) => r,
        Err(e) => return Judged::Missing(format!("the test could not be computed: {e}")),
    };
    let (Ok(shift), Ok(m_worse), Ok(m_better)) = (
        stats::hodges_lehmann(&worse.0.diff, &worse.1.diff),
        stats::median(&worse.0.ratio),
        stats::median(&worse.1.ratio),
    ) else {
        return Judged::Missing("no finite samples".into());
    };
    let median_ratio = rate_ratio(m_worse, m_better);
    let turn = |v: Vec<f64>| -> Vec<f64> {
        v.into_iter()
            .map(|r| worse_ward(r, rule.direction))
            .collect()
    };
    let new_levels = turn(pod_medians(&na.ratio, &na.pod));
    // The old pods' levels over the moments the new pods were sampled at: a level read over
    // fewer moments varies more, and the new pods' few moments must not stand out from the old
    // pods' many only for that.
    let new_moments: BTreeSet<i64> = na.time.iter().copied().collect();
    let old_levels = match oa.pod_levels_at(&new_moments) {
        levels if levels.len() >= 2 => turn(levels),
        _ => turn(pod_medians(&oa.ratio, &oa.pod)),
    };
    let worse_pods = pods_worse(&new_levels, &old_levels, rule.min_ratio);
    let pod_p = pods_stand_out(&new_levels, &old_levels);
    let new_summary = summary(n);
    let old_summary = summary(o);
    let m = Moments {
        samples: (na.ratio.len(), oa.ratio.len()),
        medians: (new_summary.median, old_summary.median),
        pods: (new_summary.pods, old_summary.pods),
        median_ratio,
        shift,
        p_value,
        worse_pods,
        judged: new_levels.len(),
        young: young_pods(&na.pod, rule.min_samples),
        pod_p,
    };
    let fail = m.fails(rule);
    let reason = m.reason(rule);
    Judged::Decided {
        fail,
        reason,
        building: m.building(rule),
        unsettled: None,
        warn_only: false,
        evidence: Evidence::Compare(CompareEvidence {
            new: new_summary,
            old: old_summary,
            direction: rule.direction,
            median_ratio,
            shift,
            u_statistic: u,
            p_value,
            alpha: rule.alpha,
            min_ratio: rule.min_ratio,
            min_shift: rule.min_shift,
            unit: rule.unit,
            baseline: Baseline::Concurrent,
            pods_worse: worse_pods,
            pods_judged: new_levels.len(),
            history: None,
            at_load: None,
        }),
    }
}

/// What the comparison at the same moments found, for its verdict.
struct Moments {
    /// New and old: samples, medians, pods.
    samples: (usize, usize),
    medians: (f64, f64),
    pods: (usize, usize),
    median_ratio: Option<f64>,
    shift: f64,
    p_value: f64,
    worse_pods: usize,
    judged: usize,
    /// New pods with fewer than `min_samples` samples at these moments: too young yet to
    /// agree with the others or not.
    young: usize,
    /// How far the new pods' levels stand out from the old pods' spread.
    pod_p: Option<f64>,
}

impl Moments {
    fn significant(&self, rule: &Compare) -> bool {
        self.p_value < rule.alpha
    }

    /// Large and material: beyond the effect floor on the ratio and on the shift.
    fn large(&self, rule: &Compare) -> bool {
        median_ratio_reached(self.median_ratio, rule.min_ratio)
            && self.shift >= rule.min_shift
            && self.shift > 0.0
    }

    fn apart(&self, rule: &Compare) -> bool {
        self.pod_p.is_none_or(|p| p < rule.pod_alpha)
    }

    /// Significant, large, and on most new pods, apart from the old pods' spread.
    fn fails(&self, rule: &Compare) -> bool {
        self.significant(rule)
            && self.large(rule)
            && most(self.worse_pods, self.judged)
            && self.apart(rule)
    }

    /// A pass on evidence building towards a failure: large, and significant or nearly (p <
    /// √α, as for error rates), but held back by the rule's other conditions (most new pods,
    /// apart from the old pods' spread) while some new pod is too young to count (fewer than
    /// `min_samples` samples): it neither adds to the streak nor resets it. Only while a pod is
    /// young, so that one pod on a busy node beside pods that disagree with it cannot hold a
    /// streak open for good. Measured (BENCHMARKS.md, detection): guard's CPU decisions a
    /// minute sooner, no other figure moved; the same for a history comparison held back cost
    /// a false action and was not kept.
    fn building(&self, rule: &Compare) -> bool {
        self.young > 0 && !self.fails(rule) && self.large(rule) && self.p_value < rule.alpha.sqrt()
    }

    fn reason(&self, rule: &Compare) -> String {
        let significant = self.significant(rule);
        let large = self.large(rule);
        let mut reason = format!(
            "median new {} vs old {} ({} vs {} samples from {} vs {} pods); against the old pods' median at the same moments: ratio {}, shift {}, p={} {} α={}; {} of {} new pods each worse by min_ratio {} and beyond every old pod",
            fmt_num(self.medians.0),
            fmt_num(self.medians.1),
            self.samples.0,
            self.samples.1,
            self.pods.0,
            self.pods.1,
            self.median_ratio
                .map_or("∞".to_string(), |r| format!("{r:.2}")),
            fmt_num(self.shift),
            fmt_p(self.p_value),
            if significant { "<" } else { "≥" },
            rule.alpha,
            self.worse_pods,
            self.judged,
            rule.min_ratio,
        );
        let agreed = most(self.worse_pods, self.judged) && self.apart(rule);
        if significant && !large {
            reason.push_str(&format!(
                "; significant but below min_ratio {} or min_shift {}",
                rule.min_ratio, rule.min_shift
            ));
        } else if significant && !agreed {
            reason.push_str(
                "; significant, but not on most new pods: one pod's node, not the release",
            );
        }
        if let Some(p) = self.pod_p {
            reason.push_str(&format!(
                "; pod levels against the old pods' spread: p={} {} pod_alpha={}",
                fmt_p(p),
                if p < rule.pod_alpha { "<" } else { "≥" },
                rule.pod_alpha
            ));
            if significant && large && most(self.worse_pods, self.judged) && !self.apart(rule) {
                reason.push_str(" (within how much the old pods differ from each other)");
            }
        }
        reason
    }
}

mod history;
use history::{OldLevel, against_history};
mod load;
pub(super) use load::compare_at_load;

#[cfg(test)]
mod tests;
