//! Absolute checks: a per-pod series of the new pods against a fixed threshold (CPU against
//! its limit, throttling), sparing a breach the old pods share at the same moments, and only
//! warning once no old pods are left to rule out a shared cause. Pure: series in, a judgement
//! out.

use std::fmt::Write as _;

use super::*;

/// The new pods against a fixed threshold. When the old pods are there to compare with, both
/// sides are looked at over the same moments only: the old pods leave as the new ones arrive, so
/// over a whole window the old side's samples are older, and a load that rose meanwhile would
/// look like the release's doing.
pub(super) fn absolute(
    rule: &Absolute,
    w: &Window,
    new: &[Series],
    old: Option<&[Series]>,
) -> Judged {
    let all_new = samples(new, w, rule.direction);
    if let Err(e) = enough(all_new.values.len(), "new", rule.min_samples) {
        return Judged::Missing(e);
    }
    let near = near_threshold(rule);
    // Old pods not measured at the new pods' latest moment have left (a replay's fixed target
    // still names their ReplicaSet): nothing rules out a shared cause then, as when the
    // controller no longer lists them. Their earlier moments would judge the new pods by the
    // minutes both served only, and act on a breach the old pods might have shared since.
    let old_samples = old
        .filter(|_| rule.unless_old_too)
        .map(|o| samples(o, w, rule.direction))
        .filter(|o| o.times.iter().max() >= all_new.times.iter().max());
    let Aligned {
        new: n,
        old: old_aligned,
        shared_moments,
    } = aligned(rule, all_new, old_samples.as_ref(), near);
    if n.values.is_empty() {
        return Judged::Missing("no finite samples".into());
    }
    let Ok(value) = stats::quantile(&n.values, rule.quantile) else {
        return Judged::Missing("no finite samples".into());
    };
    let breach = breaches(value, rule.threshold, rule.direction);
    let old_summary = old_aligned
        .as_ref()
        .filter(|o| !o.values.is_empty())
        .map(summary);
    let old_value = old_aligned
        .as_ref()
        .and_then(|o| stats::quantile(&o.values, rule.quantile).ok());
    // Shared when the moments left to judge by were all under shared pressure.
    let shared = breach && old_value.is_some_and(|v| breaches(v, near, rule.direction));
    let fail = breach && !shared;
    // Nothing to rule out a shared cause with: warn, unless told to act anyway.
    let warn_only =
        fail && rule.unless_old_too && old_value.is_none() && !rule.act_without_baseline;
    let new_summary = summary(&n);
    let mut reason = headline(rule, value, &new_summary, breach);
    explain(
        &mut reason,
        rule,
        old_value,
        shared_moments,
        shared,
        warn_only,
    );
    Judged::Decided {
        fail,
        reason,
        building: false,
        unsettled: None,
        warn_only,
        evidence: Evidence::Absolute(AbsoluteEvidence {
            new: new_summary,
            old: old_summary,
            quantile: rule.quantile,
            value,
            old_value,
            threshold: rule.threshold,
            direction: rule.direction,
            unit: rule.unit,
        }),
    }
}

/// The samples an absolute check judges by: the new pods', the old pods' at the same moments
/// (if any), and how many new samples were left out as under shared pressure.
struct Aligned {
    new: Samples,
    old: Option<Samples>,
    shared_moments: usize,
}

/// Aligns the new pods' samples with the old pods' `old` (if they are compared with), moment
/// by moment: where the old pods' median was itself `near` the threshold, the pressure was
/// shared, and only the new pods' samples from the other moments can blame the release.
fn aligned(rule: &Absolute, all_new: Samples, old: Option<&Samples>, near: f64) -> Aligned {
    let Some(o) = old else {
        return Aligned {
            new: all_new,
            old: None,
            shared_moments: 0,
        };
    };
    let old_median = medians_by_time(o);
    let calm: std::collections::BTreeSet<i64> = old_median
        .iter()
        .filter(|(_, m)| !breaches(**m, near, rule.direction))
        .map(|(t, _)| *t)
        .collect();
    let shared_moments = all_new
        .times
        .iter()
        .filter(|t| old_median.contains_key(t) && !calm.contains(t))
        .count();
    let n = restricted(&all_new, &calm);
    let (new, old) = if n.values.len() >= rule.min_samples {
        let o = restricted(o, &calm);
        (n, Some(o))
    } else if shared_moments > 0 {
        // Too few calm moments: judge by the moments both sides were measured, which had
        // the old pods under pressure too.
        let both: std::collections::BTreeSet<i64> = all_new
            .times
            .iter()
            .copied()
            .filter(|t| old_median.contains_key(t))
            .collect();
        (restricted(&all_new, &both), Some(restricted(o, &both)))
    } else {
        (all_new, None)
    };
    Aligned {
        new,
        old,
        shared_moments,
    }
}

/// The level at which the old pods count as under the same pressure: `old_too_at` of the
/// threshold, on its bad side.
fn near_threshold(rule: &Absolute) -> f64 {
    match rule.direction {
        Direction::HigherIsWorse => rule.threshold * rule.old_too_at,
        Direction::LowerIsWorse => rule.threshold / rule.old_too_at,
    }
}

/// The reason's first part: the new pods' quantile `value` against the threshold.
fn headline(rule: &Absolute, value: f64, new: &SampleSummary, breach: bool) -> String {
    let cmp = rule.direction.symbol();
    format!(
        "new pods' p{} {} ({} samples from {} pods) {} threshold {}",
        (rule.quantile * 100.0).round(),
        fmt_num(value),
        new.samples,
        new.pods,
        if breach { cmp } else { "within" },
        fmt_num(rule.threshold)
    )
}

/// Adds to `reason` what the old pods say: their value at the same moments, the new samples
/// left out, a shared cause, or that nothing rules one out (`warn_only`).
fn explain(
    reason: &mut String,
    rule: &Absolute,
    old_value: Option<f64>,
    shared_moments: usize,
    shared: bool,
    warn_only: bool,
) {
    if let Some(ov) = old_value {
        let _ = write!(reason, "; old pods {} at the same moments", fmt_num(ov));
    }
    if shared_moments > 0 && !shared {
        let _ = write!(
            reason,
            " ({shared_moments} new samples left out: the old pods were at {} of the threshold or more then too)",
            rule.old_too_at
        );
    }
    if shared {
        let _ = write!(
            reason,
            ": the old pods are under the same pressure (at least {} of the threshold), so the cause is shared, not the release",
            rule.old_too_at
        );
    }
    if warn_only {
        reason.push_str("; no old pods to rule out a shared cause (load, a dependency), so this only warns (act_without_baseline: false)");
    }
}
