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
//! request mix, time of day) is measured, not assumed. Either way the pod is the unit that
//! must agree: more than half of the new pods must each be worse by the effect floor and
//! beyond every old pod's own level, so one pod on a noisy node never fails a release. Pure:
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
    let n = samples(new, w);
    let o = samples(old, w);
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
        let new_over_span = samples(new, &history_window(rule, w));
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
    match at_same_moments(rule, &n, o, &na, &oa) {
        Judged::Decided {
            fail: true,
            reason,
            evidence,
            warn_only,
            building,
        } => Some(Judged::Decided {
            fail: true,
            reason: format!(
                "the old pods are gone; at the moments both served (inside the last {}): {reason}",
                rule.history_span
            ),
            evidence,
            warn_only,
            building,
        }),
        _ => None,
    }
}

/// The rule's window widened back to `history_span`.
fn history_window(rule: &Compare, w: &Window) -> Window {
    let span = time::span(rule.history_span.as_std());
    Window {
        start: w.at - span,
        query_start: w.at - span - w.warmup,
        ..*w
    }
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
        pod_p,
    };
    let fail = m.fails(rule);
    let reason = m.reason(rule);
    Judged::Decided {
        fail,
        reason,
        building: false,
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

/// The old version's level over time, read over `history_span`, and where its last window is.
struct OldLevel {
    /// The old version's median at each moment (ms → value).
    by_time: BTreeMap<i64, f64>,
    /// Each old pod's samples by moment.
    by_pod: Vec<BTreeMap<i64, f64>>,
    /// Its samples, for the summary of its last window.
    samples: Samples,
    first: i64,
    last: i64,
}

/// How much the old version moved by itself over the gap: as a whole, and one pod against the
/// whole.
struct Drift {
    /// The largest worse-ward ratio of the level over a later stretch to that of an earlier
    /// one (1 when it never moved worse-ward).
    largest: f64,
    /// The largest worse-ward ratio of one old pod's level over a later stretch to the whole
    /// version's over the earlier one: what one new pod must beat to count as worse.
    pod_bar: f64,
    pairs: usize,
}

impl OldLevel {
    fn read(rule: &Compare, w: &Window, old: &[Series]) -> Result<OldLevel, String> {
        let samples = samples(old, &history_window(rule, w));
        let by_time = medians_by_time(&samples);
        let mut by_pod: Vec<BTreeMap<i64, f64>> = vec![BTreeMap::new(); samples.pods];
        for ((v, t), pod) in samples.values.iter().zip(&samples.times).zip(&samples.pod) {
            if let Some(m) = by_pod.get_mut(*pod) {
                m.insert(*t, *v);
            }
        }
        let (Some((&first, _)), Some((&last, _))) =
            (by_time.first_key_value(), by_time.last_key_value())
        else {
            return Err(format!(
                "no samples of the old version in the last {}",
                rule.history_span
            ));
        };
        Ok(OldLevel {
            by_time,
            by_pod,
            samples,
            first,
            last,
        })
    }

    /// The old version's per-moment medians in (`to` − `len`, `to`].
    fn stretch(&self, to: i64, len: i64) -> Vec<f64> {
        self.by_time
            .range(to - len + 1..=to)
            .map(|(_, v)| *v)
            .collect()
    }

    /// The largest worse-ward change of the level between a stretch of `len_before` ending at
    /// some moment and one of `len_after` ending `gap` later, over every such pair inside the
    /// history, as a whole and one pod against the whole. Stretches with fewer than half the
    /// moments they should hold are skipped.
    fn drift(
        &self,
        len_before: i64,
        len_after: i64,
        gap: i64,
        need: (usize, usize),
        direction: Direction,
    ) -> Drift {
        let mut d = Drift {
            largest: 1.0,
            pod_bar: 1.0,
            pairs: 0,
        };
        for &end in self.by_time.keys() {
            if end + gap > self.last {
                break;
            }
            if end - len_before + 1 < self.first {
                continue;
            }
            let later = end + gap;
            let (before, after) = (
                self.stretch(end, len_before),
                self.stretch(later, len_after),
            );
            if before.len() < need.0 || after.len() < need.1 {
                continue;
            }
            let (Ok(b), Ok(a)) = (stats::median(&before), stats::median(&after)) else {
                continue;
            };
            if b <= 0.0 || a <= 0.0 {
                continue;
            }
            d.pairs += 1;
            d.largest = d.largest.max(worse_ward(a / b, direction));
            for pod in &self.by_pod {
                let values: Vec<f64> = pod
                    .range(later - len_after + 1..=later)
                    .map(|(_, v)| *v)
                    .collect();
                if values.len() < need.1 {
                    continue;
                }
                if let Ok(level) = stats::median(&values).map(|m| m / b)
                    && level > 0.0
                {
                    d.pod_bar = d.pod_bar.max(worse_ward(level, direction));
                }
            }
        }
        d
    }
}

/// The middle of a set of moments.
fn middle(times: &[i64]) -> i64 {
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The new pods (after warm-up, inside the window) against the old version's level in the
/// window before its last sample, beyond the old version's own drift over the same gap.
fn against_history(
    rule: &Compare,
    w: &Window,
    n: &Samples,
    new_over_span: &Samples,
    level: &Result<OldLevel, String>,
) -> Result<Judged, String> {
    enough(n.values.len(), "new", rule.min_samples)?;
    let level = level.as_ref().map_err(Clone::clone)?;
    let window_ms = w.at - w.start;
    let old = OldBefore::read(level, window_ms)?;
    let new = NewLevel::read(rule, w, n)?;
    if old.level <= 0.0 || new.level <= 0.0 {
        return Err(format!(
            "levels must be positive to be compared as a ratio (old {}, new {})",
            fmt_num(old.level),
            fmt_num(new.level)
        ));
    }
    new.longer_than_an_incident(rule)?;
    let after = new.without_an_incident(rule);
    let gap = (middle(&new.times) - middle(&old.times)).max(0);
    let drift = level.drift(
        window_ms,
        new.len,
        gap,
        (
            old.times.len().div_ceil(2).max(1),
            new.times.len().div_ceil(2).max(1),
        ),
        rule.direction,
    );
    if drift.pairs < rule.min_drift_pairs {
        return Err(format!(
            "its series over the last {} holds {} pairs of stretches {} apart, fewer than min_drift_pairs {}: too little to know how much the metric moves by itself",
            rule.history_span,
            drift.pairs,
            fmt_minutes(gap),
            rule.min_drift_pairs
        ));
    }
    // Beyond both the effect floor and the metric's own drift. Not their product: on top of
    // the largest of ~40 drifts that floor held back a third of the +50% regressions
    // (BENCHMARKS.md, detection).
    let needed = rule.min_ratio.max(drift.largest);
    // The pods: each new pod's level must beat the regression's bar and the most one old pod
    // rose above the whole old version over the same gap.
    let new_levels: Vec<f64> = pod_medians(&n.values, &n.pod)
        .into_iter()
        .map(|v| worse_ward(v / old.level, rule.direction))
        .collect();
    let pod_needed = needed.max(drift.pod_bar);
    let both = while_both_served(rule, new_over_span, level);
    let judged = HistoryJudged {
        before: old.level,
        after,
        ratio: worse_ward(after / old.level, rule.direction),
        shift: match rule.direction {
            Direction::HigherIsWorse => after - old.level,
            Direction::LowerIsWorse => old.level - after,
        },
        gap,
        needed,
        pod_needed,
        worse_pods: new_levels.iter().filter(|l| **l >= pod_needed).count(),
        pods_judged: new_levels.len(),
        // Where both versions served long enough to compare (after warm-up), a regression
        // shows there too; a rise only after the old pods left is the load's, not the release's.
        consistent: both.as_ref().is_none_or(|b| b.ratio >= rule.min_ratio),
        both,
        drift,
        window_ms,
    };
    let keep: BTreeSet<i64> = old.times.iter().copied().collect();
    let summaries = (summary(n), summary(&restricted(&level.samples, &keep)));
    Ok(judged.verdict(rule, level, &old.times, summaries))
}

/// The old version's level over the window before its last sample.
struct OldBefore {
    times: Vec<i64>,
    level: f64,
}

impl OldBefore {
    fn read(level: &OldLevel, window_ms: i64) -> Result<OldBefore, String> {
        let times: Vec<i64> = level
            .by_time
            .range(level.last - window_ms + 1..=level.last)
            .map(|(t, _)| *t)
            .collect();
        let values = level.stretch(level.last, window_ms);
        let level = stats::median(&values).map_err(|_| "no finite samples".to_string())?;
        Ok(OldBefore { times, level })
    }
}

/// The new pods' level after warm-up: their median at each moment, and its span.
struct NewLevel {
    by_time: BTreeMap<i64, f64>,
    times: Vec<i64>,
    level: f64,
    /// From the first moment to the last, plus a step.
    len: i64,
    incident_ms: i64,
}

impl NewLevel {
    fn read(rule: &Compare, w: &Window, n: &Samples) -> Result<NewLevel, String> {
        let by_time = medians_by_time(n);
        let times: Vec<i64> = by_time.keys().copied().collect();
        let values: Vec<f64> = by_time.values().copied().collect();
        let level = stats::median(&values).map_err(|_| "no finite samples".to_string())?;
        let step_ms = w.step.max(1);
        let len = (times.last().copied().unwrap_or_default()
            - times.first().copied().unwrap_or_default())
            + step_ms;
        Ok(NewLevel {
            by_time,
            times,
            level,
            len,
            incident_ms: time::span(rule.incident_span.as_std()),
        })
    }

    /// A shared incident (a slow database, a noisy neighbour) lifts the level for a while; a
    /// regression lasts. The new level is judged only once it spans longer than
    /// `incident_span`.
    fn longer_than_an_incident(&self, rule: &Compare) -> Result<(), String> {
        if self.len <= self.incident_ms {
            return Err(format!(
                "the new pods' level after warm-up spans {}, not longer than incident_span {}: too short to tell the release from a shared incident",
                fmt_minutes(self.len),
                rule.incident_span
            ));
        }
        Ok(())
    }

    /// The level without the stretch of `incident_span` that lifts it most.
    fn without_an_incident(&self, rule: &Compare) -> f64 {
        without_worst_stretch(&self.by_time, self.incident_ms, rule.direction).unwrap_or(self.level)
    }
}

/// A history comparison's numbers, for its verdict.
struct HistoryJudged {
    before: f64,
    after: f64,
    ratio: f64,
    shift: f64,
    gap: i64,
    needed: f64,
    pod_needed: f64,
    worse_pods: usize,
    pods_judged: usize,
    consistent: bool,
    both: Option<WhileBoth>,
    drift: Drift,
    window_ms: i64,
}

impl HistoryJudged {
    fn verdict(
        self,
        rule: &Compare,
        level: &OldLevel,
        before_times: &[i64],
        (new_summary, old_summary): (SampleSummary, SampleSummary),
    ) -> Judged {
        let fail = self.ratio >= self.needed
            && self.shift >= rule.min_shift
            && most(self.worse_pods, self.pods_judged)
            && self.consistent;
        let reason = self.reason(rule, &new_summary);
        let (largest, pairs) = (self.drift.largest, self.drift.pairs);
        Judged::Decided {
            fail,
            reason,
            building: false,
            warn_only: false,
            evidence: Evidence::Compare(CompareEvidence {
                new: new_summary,
                old: old_summary,
                direction: rule.direction,
                median_ratio: Some(self.ratio),
                shift: self.shift,
                u_statistic: 0.0,
                // The share of the old version's own drifts at least as large, counting this one.
                p_value: if self.ratio > largest {
                    1.0 / (pairs as f64 + 1.0)
                } else {
                    1.0
                },
                alpha: rule.alpha,
                min_ratio: rule.min_ratio,
                min_shift: rule.min_shift,
                unit: rule.unit,
                baseline: Baseline::History,
                pods_worse: self.worse_pods,
                pods_judged: self.pods_judged,
                history: Some(Box::new(CompareHistory {
                    before_from: time::to_timestamp(
                        before_times.first().copied().unwrap_or(level.last),
                    ),
                    before_to: time::to_timestamp(level.last),
                    before: self.before,
                    after: self.after,
                    ratio: self.ratio,
                    gap_seconds: time::to_seconds(self.gap),
                    largest_drift: largest,
                    drift_pairs: pairs,
                    needed: self.needed,
                    pod_bar: self.drift.pod_bar,
                    while_both: self.both.as_ref().map(|b| b.ratio),
                    history_from: time::to_timestamp(level.first),
                })),
            }),
        }
    }

    fn reason(&self, rule: &Compare, new_summary: &SampleSummary) -> String {
        let mut reason = format!(
            "the old pods are gone, so against the old version's history: median new {} ({} samples from {} pods) vs the old version's {} in the {} before its last sample: ratio {:.2}; over the last {} the old version's own level moved at most ×{:.2} between stretches {} apart ({} pairs), so a regression needs ×{:.2} (the larger of min_ratio {} and that drift); {} of {} new pods each beyond ×{:.2} (that, or the most one old pod rose above the whole)",
            fmt_num(self.after),
            new_summary.samples,
            new_summary.pods,
            fmt_num(self.before),
            fmt_minutes(self.window_ms),
            self.ratio,
            rule.history_span,
            self.drift.largest,
            fmt_minutes(self.gap),
            self.drift.pairs,
            self.needed,
            rule.min_ratio,
            self.worse_pods,
            self.pods_judged,
            self.pod_needed,
        );
        if let Some(b) = &self.both {
            reason.push_str(&format!(
                "; while both served: ratio {:.2} over {} new samples{}",
                b.ratio,
                b.samples,
                if self.consistent {
                    ""
                } else {
                    ", below min_ratio: the rise came after the old pods left (load), not with the release"
                }
            ));
        }
        reason
    }
}

/// The new pods against the old ones at the moments both served, over the history span.
struct WhileBoth {
    /// The median of the new pods' ratios to the old median at the same moments, over that
    /// of the old pods' (worse-ward).
    ratio: f64,
    samples: usize,
}

/// The comparison at the same moments over the whole history span, if both sides have
/// `min_samples` there.
fn while_both_served(rule: &Compare, n: &Samples, level: &OldLevel) -> Option<WhileBoth> {
    let na = align(n, &level.by_time);
    let shared: BTreeSet<i64> = n.times.iter().copied().collect();
    let old_shared: Vec<f64> = level
        .samples
        .values
        .iter()
        .zip(&level.samples.times)
        .filter(|(_, t)| shared.contains(t))
        .filter_map(|(v, t)| level.by_time.get(t).filter(|m| **m > 0.0).map(|m| v / m))
        .collect();
    if na.ratio.len() < rule.min_samples || old_shared.len() < rule.min_samples {
        return None;
    }
    let (Ok(new_m), Ok(old_m)) = (stats::median(&na.ratio), stats::median(&old_shared)) else {
        return None;
    };
    (old_m > 0.0 && new_m > 0.0).then(|| WhileBoth {
        ratio: worse_ward(new_m / old_m, rule.direction),
        samples: na.ratio.len(),
    })
}

/// The median of `by_time` without the stretch of `span` that moves it most worse-ward (the
/// least worse-ward of those medians), or `None` when every stretch leaves nothing.
fn without_worst_stretch(
    by_time: &BTreeMap<i64, f64>,
    span: i64,
    direction: Direction,
) -> Option<f64> {
    by_time
        .keys()
        .filter_map(|&from| {
            let rest: Vec<f64> = by_time
                .iter()
                .filter(|(t, _)| **t < from || **t >= from + span)
                .map(|(_, v)| *v)
                .collect();
            stats::median(&rest).ok()
        })
        .min_by(|a, b| worse_ward(*a, direction).total_cmp(&worse_ward(*b, direction)))
}

/// Milliseconds as minutes for people (`12m`, `2.5m`).
fn fmt_minutes(ms: i64) -> String {
    format!("{}m", fmt_num(ms as f64 / 60_000.0))
}

#[cfg(test)]
mod tests;
