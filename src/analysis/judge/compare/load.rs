//! A compare check's series at the old version's load: a cost per unit of load (CPU seconds
//! per request) measured against what the old version's own cost model predicts at the load
//! each sample carried.
//!
//! Owns the model and the rescaling. A pod's CPU is a fixed part (the runtime, idle workers,
//! background work) and a part per request (the utilisation law, U = U₀ + D·X), so CPU per
//! request falls as the load rises and climbs when it falls: at 0.5 requests/s the fixed part
//! is most of it, and a load that doubles after the old pods left reads as a release that
//! halved its cost. Fitted on the old version's samples (the baseline, never the new pods'), the
//! model says what the old version would have cost at each sample's load; the ratio of the
//! actual cost to it, times the old version's cost per request at its median load, is the
//! series the compare check judges: in the metric's unit, the old version's samples near its
//! level whatever the load did, a release's per-request or fixed regression as its factor.
//! Pure: series in, a judgement out; it never queries, and the judgement itself is the compare
//! check's, unchanged (this module only rescales what it is given and says so). The robust
//! line (Theil-Sen through the medians of tenths of the load), with both coefficients held at
//! or above zero, is written here: the crates in the tree (statrs) fit no regression.

use std::collections::BTreeMap;

use super::{Evidence, Judged, Window, compare, fmt_num};
use crate::analysis::judge::AtLoad;
use crate::analysis::rules::Compare;
use crate::analysis::source::{Point, Series};
use crate::analysis::stats;
use crate::analysis::time;

/// The fewest old samples with their load the model is fitted on; with fewer, the series are
/// judged as they were measured.
const MIN_FIT: usize = 10;

/// A compare check with loads: both sides at the old version's load when its samples fit a
/// model, as measured otherwise; the reason and the evidence say which, and the model.
pub(in crate::analysis::judge) fn compare_at_load(
    rule: &Compare,
    w: &Window,
    (new, new_load): (&[Series], &[Series]),
    old: Option<(&[Series], &[Series])>,
) -> Judged {
    let Some((old, old_load)) = old else {
        return compare(rule, w, new, None);
    };
    let (new_load, old_load) = (Loads::of(new_load), Loads::of(old_load));
    let Some(model) = LoadModel::fit(&old_load.pairs(old), MIN_FIT) else {
        return compare(rule, w, new, Some(old)).map_reason(|r| {
            format!("{r} (as measured: too few old samples with a load, at least {MIN_FIT} and not all of no cost, to model the old version's cost on)")
        });
    };
    let (new_at, old_at) = (model.rescale(new, &new_load), model.rescale(old, &old_load));
    let without_load = (points(new) - points(&new_at)) + (points(old) - points(&old_at));
    if points(&new_at) == 0 && points(new) > 0 {
        return Judged::Missing(format!(
            "the new pods' samples have no load at their moments (the load query answered none for them): nothing to judge at the old version's load ({})",
            model.describe()
        ));
    }
    let left_out = match without_load {
        0 => String::new(),
        n => format!("; {n} samples without a load at their moment left out"),
    };
    compare(rule, w, &new_at, Some(&old_at))
        // The verdict's own reason first: cut to a line (an Event, a state annotation), what
        // decided is kept, the model is what goes.
        .map_reason(|r| {
            format!(
                "{r}; both sides at the old version's load ({}{left_out})",
                model.describe()
            )
        })
        .with_evidence(|e| {
            if let Evidence::Compare(c) = e {
                c.at_load = Some(model.evidence(without_load));
            }
        })
}

/// The samples of a side.
fn points(series: &[Series]) -> usize {
    series.iter().map(|s| s.points.len()).sum()
}

/// The old version's cost model: cost = `fixed` + `per_unit` × load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct LoadModel {
    /// The cost at no load (CPU cores).
    pub(super) fixed: f64,
    /// The cost of one more unit of load (CPU seconds per request).
    pub(super) per_unit: f64,
    /// The old version's median load, where the series are expressed.
    pub(super) reference_load: f64,
    /// The range of loads the old version carried (its 5th to 95th percentile): the model is
    /// not extrapolated beyond it.
    pub(super) loads: (f64, f64),
    /// Samples it was fitted on.
    pub(super) samples: usize,
}

impl LoadModel {
    /// The cost predicted at `load`.
    fn predict(&self, load: f64) -> f64 {
        self.fixed + self.per_unit * load
    }

    /// The cost per unit predicted at `load`, held at the edge of the loads the old version
    /// carried beyond them (the model is not extrapolated).
    fn predict_per_unit(&self, load: f64) -> f64 {
        let load = load.clamp(self.loads.0, self.loads.1);
        self.predict(load) / load
    }

    /// The model for people: `0.03 + 0.012 × load, fitted on 240 samples at loads 3.1 to
    /// 5.2; each sample against it at its own load, shown at the median load 4.0`.
    pub(super) fn describe(&self) -> String {
        format!(
            "its cost modelled as {} + {} × load, fitted on {} samples at loads {} to {}; each sample against that at its own load, shown at its median load {}",
            fmt_num(self.fixed),
            fmt_num(self.per_unit),
            self.samples,
            fmt_num(self.loads.0),
            fmt_num(self.loads.1),
            fmt_num(self.reference_load)
        )
    }

    /// The model for the evidence, with the samples left out for want of a load.
    fn evidence(&self, without_load: usize) -> AtLoad {
        AtLoad {
            fixed: self.fixed,
            per_unit: self.per_unit,
            reference_load: self.reference_load,
            low: self.loads.0,
            high: self.loads.1,
            samples: self.samples,
            without_load,
        }
    }

    /// The cost per unit of load at the reference load.
    pub(super) fn reference_cost(&self) -> f64 {
        self.predict(self.reference_load) / self.reference_load
    }

    /// Fits the model on pairs of (load, cost per unit of load): a robust line through the
    /// total cost's medians by tenths of the loads; `None` with fewer than `min` usable pairs.
    /// A negative fixed part (noise, or a cost that grows faster than the load) is refitted
    /// through zero, a plain cost per unit; a load that never moved gives the same.
    pub(super) fn fit(pairs: &[(f64, f64)], min: usize) -> Option<LoadModel> {
        let pts: Vec<(f64, f64)> = pairs
            .iter()
            .filter(|(l, v)| l.is_finite() && v.is_finite() && *l > 0.0 && *v >= 0.0)
            .map(|(l, v)| (*l, l * v))
            .collect();
        if pts.len() < min.max(2) {
            return None;
        }
        // A line through the medians of equal tenths of the loads, its slope the median of
        // theirs two by two (Theil-Sen), not least squares on every sample: a few minutes of a
        // traffic spike, far from the other loads, whose cost was capped at the CPU limit or
        // happened to be low or high for other reasons (a busy node, the request mix), would
        // tilt a least-squares line and with it every sample's cost at another load.
        let fitted = tenths(&pts);
        let loads: Vec<f64> = pts.iter().map(|p| p.0).collect();
        let reference_load = stats::median(&loads).ok()?;
        let range = (
            stats::quantile(&loads, 0.05).ok()?,
            stats::quantile(&loads, 0.95).ok()?,
        );
        let median = |v: Vec<f64>| stats::median(&v).ok();
        let through_zero = || Some((0.0, median(fitted.iter().map(|p| p.1 / p.0).collect())?));
        // Within fixed ≥ 0 and per_unit ≥ 0: a negative fixed part (a cost that grows faster
        // than the load) is refitted through zero, a plain cost per unit; a negative slope (the
        // load explains none of the cost) leaves all of it fixed. A load that never moved says
        // nothing of the split: a cost per unit, as measured.
        let (fixed, per_unit) = match median_slope(&fitted) {
            None => through_zero()?,
            Some(b) if b <= 0.0 => (median(fitted.iter().map(|p| p.1).collect())?, 0.0),
            Some(b) => match median(fitted.iter().map(|p| p.1 - b * p.0).collect())? {
                a if a < 0.0 => through_zero()?,
                a => (a, b),
            },
        };
        let model = LoadModel {
            fixed,
            per_unit,
            reference_load,
            loads: range,
            samples: pts.len(),
        };
        (model.predict(reference_load) > 0.0 && model.reference_cost().is_finite()).then_some(model)
    }

    /// One side's series at the reference load: each sample's cost against the model's at the
    /// load the same pod carried at the same moment, times the reference cost. Samples without
    /// a positive load at their moment are left out.
    pub(super) fn rescale(&self, values: &[Series], loads: &Loads<'_>) -> Vec<Series> {
        let reference = self.reference_cost();
        values
            .iter()
            .map(|s| {
                let points = s
                    .points
                    .iter()
                    .filter_map(|p| {
                        let load = loads.at(s, p.t)?;
                        let predicted = self.predict_per_unit(load);
                        (load > 0.0 && predicted > 0.0).then(|| Point {
                            t: p.t,
                            v: p.v / predicted * reference,
                        })
                    })
                    .collect();
                Series {
                    labels: s.labels.clone(),
                    points,
                }
            })
            .collect()
    }
}

/// The median of the slopes between every two of `points` (sorted by load) at different
/// loads: Theil-Sen's; `None` when every load is the same.
fn median_slope(points: &[(f64, f64)]) -> Option<f64> {
    let slopes: Vec<f64> = points
        .iter()
        .enumerate()
        .flat_map(|(i, p)| points[i + 1..].iter().map(move |q| (p, q)))
        .filter(|(p, q)| q.0 > p.0)
        .map(|(p, q)| (q.1 - p.1) / (q.0 - p.0))
        .collect();
    stats::median(&slopes).ok()
}

/// The (median load, median cost) of each tenth of `pts` by load: as many parts as tens of
/// points, up to ten, as even as can be (each point alone under 20 points).
fn tenths(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = pts.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let parts = (sorted.len() / 10).min(10);
    if parts < 2 {
        return sorted;
    }
    let n = sorted.len();
    (0..parts)
        .filter_map(|i| {
            let part = &sorted[i * n / parts..(i + 1) * n / parts];
            let loads: Vec<f64> = part.iter().map(|p| p.0).collect();
            let costs: Vec<f64> = part.iter().map(|p| p.1).collect();
            Some((stats::median(&loads).ok()?, stats::median(&costs).ok()?))
        })
        .collect()
}

/// One side's loads, by pod and moment: read once per side, for the fit and the rescaling.
pub(super) struct Loads<'a>(BTreeMap<&'a str, BTreeMap<i64, f64>>);

impl<'a> Loads<'a> {
    pub(super) fn of(loads: &'a [Series]) -> Loads<'a> {
        let mut by_pod: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
        for s in loads {
            if let Some(pod) = s.labels.get("pod") {
                let m = by_pod.entry(pod.as_str()).or_default();
                for p in &s.points {
                    m.insert(time::from_seconds(p.t), p.v);
                }
            }
        }
        Loads(by_pod)
    }

    /// The load the pod of `series` carried at `t`, if it was measured then.
    fn at(&self, series: &Series, t: f64) -> Option<f64> {
        let pod = series.labels.get("pod")?;
        self.0
            .get(pod.as_str())?
            .get(&time::from_seconds(t))
            .copied()
    }

    /// Pairs of (load, value) of the same pod at the same moment.
    fn pairs(&self, values: &[Series]) -> Vec<(f64, f64)> {
        values
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .filter_map(|p| Some((self.at(s, p.t)?, p.v)))
            })
            .collect()
    }
}
