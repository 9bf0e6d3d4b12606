//! A compare check once the old pods are gone: the new pods against the old version's level
//! before its pods left, beyond the largest change that level made by itself over the same
//! gap (its drift), with a shared incident's stretch left out. Pure, like its parent.

use super::*;

/// The share of one more old pod's levels the spread bar leaves below it (see
/// [`OldBefore::spread_bar`]).
const SPREAD_QUANTILE: f64 = 0.95;

/// The fewest old pods whose spread sets the bar.
const MIN_SPREAD_PODS: usize = 3;

/// The old version's level over time, read over `history_span`, and where its last window is.
pub(super) struct OldLevel {
    /// The old version's median at each moment (ms → value).
    pub(super) by_time: BTreeMap<i64, f64>,
    /// Each old pod's samples by moment.
    pub(super) by_pod: Vec<BTreeMap<i64, f64>>,
    /// Its samples, for the summary of its last window.
    pub(super) samples: Samples,
    pub(super) first: i64,
    pub(super) last: i64,
}

/// What a new pod must beat to count as worse, of the old pods' rises above the whole old
/// version over the same gap (every old pod at every pair of stretches, pooled): their 95th
/// percentile, not their largest. The largest of those hundreds of heavily overlapping values
/// is one old pod's rarest minutes on its noisiest node, which a release's pods rarely beat
/// (BENCHMARKS.md, "One old pod's excursions"). Pooled, an old pod that sits high all hour
/// raises the bar only while it is more than about one in twenty of the old pods; one pod on
/// a noisy node is kept from failing a release by most new pods being required beyond the bar.
const POD_BAR_QUANTILE: f64 = 0.95;

/// How much the old version moved by itself over the gap: as a whole, and one pod against the
/// whole.
struct Drift {
    /// The largest worse-ward ratio of the level over a later stretch to that of an earlier
    /// one (1 when it never moved worse-ward).
    largest: f64,
    /// The [`POD_BAR_QUANTILE`] of the worse-ward ratios of an old pod's level over a later
    /// stretch to the whole version's over the earlier one, every pod at every pair pooled (at
    /// least 1): what one new pod must beat to count as worse.
    pod_bar: f64,
    pairs: usize,
}

impl OldLevel {
    pub(super) fn read(rule: &Compare, w: &Window, old: &[Series]) -> Result<OldLevel, String> {
        let samples = samples(old, &history_window(rule, w), rule.direction);
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
        let mut pod_excursions = Vec::new();
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
                    pod_excursions.push(worse_ward(level, direction));
                }
            }
        }
        if let Ok(bar) = stats::quantile(&pod_excursions, POD_BAR_QUANTILE) {
            d.pod_bar = bar.max(1.0);
        }
        d
    }
}

/// The drift a regression is held to when too few pairs of stretches measured it: the rule's
/// `unknown_drift`, where the old version's series began inside `history_span` (a version
/// that served less than the span: its own life, not a long gap since its pods left, is what
/// is short) and its level before its pods left rests on `min_samples` moments or more;
/// inconclusive otherwise.
fn assume_drift(
    rule: &Compare,
    w: &Window,
    level: &OldLevel,
    old: &OldBefore,
    drift: &Drift,
    gap: i64,
) -> Result<f64, String> {
    let too_few = format!(
        "its series over the last {} holds {} pairs of stretches {} apart, fewer than min_drift_pairs {}: too little to know how much the metric moves by itself",
        rule.history_span,
        drift.pairs,
        fmt_minutes(gap),
        rule.min_drift_pairs
    );
    let Some(u) = rule.unknown_drift else {
        return Err(too_few);
    };
    let span_start = w.at - time::span(rule.history_span.as_std());
    if level.first <= span_start + w.step {
        // The series covers the span: the gap since the old pods left has grown too long to
        // measure, not the version's life too short.
        return Err(too_few);
    }
    if old.times.len() < rule.min_samples {
        return Err(format!(
            "{too_few}; the old version's level before its pods left rests on {} moment(s), fewer than min_samples {}: too little to hold the new pods to an assumed drift",
            old.times.len(),
            rule.min_samples
        ));
    }
    Ok(u)
}

/// The middle of a set of moments.
fn middle(times: &[i64]) -> i64 {
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The new pods (after warm-up, inside the window) against the old version's level in the
/// window before its last sample, beyond the old version's own drift over the same gap.
pub(super) fn against_history(
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
    let assumed = if drift.pairs >= rule.min_drift_pairs {
        None
    } else {
        Some(assume_drift(rule, w, level, &old, &drift, gap)?)
    };
    // Beyond both the effect floor and the metric's own drift (or the drift assumed, and
    // what little of it was measured). Not their product: on top of the largest of ~40 drifts
    // that floor held back a third of the +50% regressions (BENCHMARKS.md, detection).
    let needed = rule
        .min_ratio
        .max(drift.largest)
        .max(assumed.unwrap_or(1.0));
    // The pods: each new pod's level must beat the regression's bar and what one old pod rose
    // above the whole old version over the same gap (but for its rarest excursions).
    let new_levels: Vec<f64> = pod_medians(&n.values, &n.pod)
        .into_iter()
        .map(|v| worse_ward(v / old.level, rule.direction))
        .collect();
    let spread_bar = old.spread_bar(level, rule.direction);
    let pod_needed = super::super::evidence::pod_needed(needed, drift.pod_bar, spread_bar);
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
        assumed,
        served: level.last - level.first,
        pod_needed,
        spread_bar,
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

    /// How high a new pod's level may stand above the old version's by the spread of the old
    /// pods' own levels alone: the 95th percentile of where one more pod of the old version
    /// would fall (a prediction bound, on logarithms, from the old pods' levels over these
    /// moments). Pods of one version differ by their nodes, and a new pod is one more draw:
    /// with three old pods, the highest of them is beaten by a quarter of new pods, not 5%.
    /// `None` with fewer than three old pods there (from two, the t quantile alone is ×6: a
    /// bar no regression could clear).
    fn spread_bar(&self, level: &OldLevel, direction: Direction) -> Option<f64> {
        let logs: Vec<f64> = self
            .pod_levels(level, direction)
            .iter()
            .map(|l| l.ln())
            .collect();
        if logs.len() < MIN_SPREAD_PODS {
            return None;
        }
        stats::prediction_upper(&logs, SPREAD_QUANTILE)
            .ok()
            .map(f64::exp)
    }

    /// Each old pod's level over these moments, against the whole's (worse-ward), for the pods
    /// sampled at half of them or more (a pod that left early, or began late, is read on a few
    /// samples that may be its start or its end).
    fn pod_levels(&self, level: &OldLevel, direction: Direction) -> Vec<f64> {
        let (Some(&from), Some(&to)) = (self.times.first(), self.times.last()) else {
            return Vec::new();
        };
        let need = self.times.len().div_ceil(2).max(2);
        level
            .by_pod
            .iter()
            .filter_map(|pod| {
                let values: Vec<f64> = pod.range(from..=to).map(|(_, v)| *v).collect();
                (values.len() >= need)
                    .then(|| stats::median(&values).ok())
                    .flatten()
            })
            .filter(|m| *m > 0.0 && self.level > 0.0)
            .map(|m| worse_ward(m / self.level, direction))
            .collect()
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
    /// The rule's `unknown_drift`, where the history was too short to measure the drift.
    assumed: Option<f64>,
    /// From the old version's first sample in the span to its last.
    served: i64,
    pod_needed: f64,
    spread_bar: Option<f64>,
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
            unsettled: None,
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
                    unknown_drift: self.assumed,
                    pod_bar: self.drift.pod_bar,
                    spread_bar: self.spread_bar,
                    while_both: self.both.as_ref().map(|b| b.ratio),
                    history_from: time::to_timestamp(level.first),
                })),
                at_load: None,
            }),
        }
    }

    /// How much the old version moved by itself, and so what a regression needs.
    fn drift_clause(&self, rule: &Compare) -> String {
        match self.assumed {
            None => format!(
                "over the last {} the old version's own level moved at most ×{:.2} between stretches {} apart ({} pairs), so a regression needs ×{:.2} (the larger of min_ratio {} and that drift)",
                rule.history_span,
                self.drift.largest,
                fmt_minutes(self.gap),
                self.drift.pairs,
                self.needed,
                rule.min_ratio
            ),
            Some(u) => format!(
                "the old version served {} before its pods left: its series holds {} pairs of stretches {} apart, fewer than min_drift_pairs {}, too short a history to measure how much it moves by itself, so a regression needs ×{:.2} (the largest of min_ratio {}, the drift the rule assumes then, unknown_drift {}, and {})",
                fmt_minutes(self.served),
                self.drift.pairs,
                fmt_minutes(self.gap),
                rule.min_drift_pairs,
                self.needed,
                rule.min_ratio,
                u,
                match self.drift.pairs {
                    0 => "no drift measured".to_string(),
                    _ => format!("×{:.2} measured", self.drift.largest),
                }
            ),
        }
    }

    fn reason(&self, rule: &Compare, new_summary: &SampleSummary) -> String {
        let mut reason = format!(
            "the old pods are gone, so against the old version's history: median new {} ({} samples from {} pods) vs the old version's {} in the {} before its last sample: ratio {:.2}; {}; {} of {} new pods each beyond ×{:.2} (the largest of that, the 95th percentile of the old pods' rises above the whole, every old pod at every pair of stretches, and where one more old pod would fall by their spread{})",
            fmt_num(self.after),
            new_summary.samples,
            new_summary.pods,
            fmt_num(self.before),
            fmt_minutes(self.window_ms),
            self.ratio,
            self.drift_clause(rule),
            self.worse_pods,
            self.pods_judged,
            self.pod_needed,
            self.spread_bar
                .map_or(String::new(), |b| format!(", ×{b:.2}")),
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
