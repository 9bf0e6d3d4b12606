//! `increase()` and `rate()` over one simulated counter series, as Prometheus computes them.
//!
//! Owns the arithmetic of Prometheus' `extrapolatedRate` (promql/functions.go, as in the
//! Prometheus 2.x the integration tests run; see
//! <https://prometheus.io/docs/prometheus/latest/querying/functions/#increase>):
//!
//! - only the samples inside the range `[at − range, at]` count (both ends included, as
//!   Prometheus 2.x selects; 3.x leaves the start out, which differs only for a sample exactly
//!   on the start, and the simulation's per-pod scrape offsets keep samples off the edges);
//! - fewer than two samples give no value at all;
//! - the difference between the last and the first sample (plus the value before each counter
//!   reset) is extrapolated towards the range's edges: all the way when the first (last) sample
//!   is within 1.1 average sample intervals of its edge, by half an interval otherwise, and, for
//!   the start, never further back than where the counter would have been zero.
//!
//! So a series born inside the range (an error counter created at its first error) loses its
//! first count, as in real Prometheus, unless more follow inside the range (the zero-point
//! bound then brings part or all of it back). [`exact`] is the true count in the range, for
//! comparison. `tests/prometheus_sim.rs` checks the arithmetic against a real Prometheus.

use super::SCRAPE;

/// One stored counter series: a sample every [`SCRAPE`] seconds from `t0`; `NaN` where the
/// series had no sample (an error counter gone after its container restarted).
#[derive(Clone, Copy, Debug)]
pub(super) struct Samples<'a> {
    /// Unix seconds of the first sample.
    pub t0: f64,
    pub values: &'a [f64],
}

/// Milliseconds, the resolution Prometheus stores timestamps in.
fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

impl Samples<'_> {
    fn scrape_ms() -> i64 {
        ms(SCRAPE)
    }

    fn time_ms(&self, i: usize) -> i64 {
        ms(self.t0) + i as i64 * Self::scrape_ms()
    }

    /// Indices of the first and last samples inside `[from, to]`, if any.
    fn inside(&self, from_ms: i64, to_ms: i64) -> Option<(usize, usize)> {
        inside(self.t0, self.values.len(), from_ms, to_ms)
    }

    /// The counter at `t`: the last sample at or before it, 0 before the series began, the
    /// last sample after it ended.
    fn value_at(&self, t_ms: i64) -> f64 {
        match (t_ms - ms(self.t0)).div_euclid(Self::scrape_ms()) {
            i if i < 0 => 0.0,
            i => {
                let i = (i as usize).min(self.values.len() - 1);
                // Where the series has no sample, its last one before (none: zero).
                self.values[..=i]
                    .iter()
                    .rev()
                    .find(|v| !v.is_nan())
                    .copied()
                    .unwrap_or(0.0)
            }
        }
    }
}

/// Indices of the first and last of `len` samples every [`SCRAPE`] from `t0` inside
/// `[from, to]`, if any.
fn inside(t0: f64, len: usize, from_ms: i64, to_ms: i64) -> Option<(usize, usize)> {
    if len == 0 || to_ms < from_ms {
        return None;
    }
    let (t0, step) = (ms(t0), Samples::scrape_ms());
    let lo = ((from_ms - t0).max(0) as u64).div_ceil(step as u64) as usize;
    let hi = (to_ms - t0).div_euclid(step);
    if hi < 0 {
        return None;
    }
    let hi = (hi as usize).min(len - 1);
    (lo <= hi).then_some((lo, hi))
}

/// `increase(series[range])` (or `rate`, with `per_second`) evaluated at `at`, as Prometheus
/// computes it for a counter; `None` where Prometheus returns no sample.
pub(super) fn extrapolated(s: Samples<'_>, at: f64, range: f64, per_second: bool) -> Option<f64> {
    let (end_ms, range_ms) = (ms(at), ms(range));
    let start_ms = end_ms - range_ms;
    let (lo, hi) = s.inside(start_ms, end_ms)?;
    // The samples there are (a series with holes has none in them).
    let present: Vec<usize> = (lo..=hi).filter(|&i| !s.values[i].is_nan()).collect();
    let (&lo, &hi) = (present.first()?, present.last()?);
    if hi == lo {
        return None;
    }
    let v: Vec<f64> = present.iter().map(|&i| s.values[i]).collect();
    let mut result = v[v.len() - 1] - v[0];
    for w in v.windows(2) {
        if w[1] < w[0] {
            result += w[0];
        }
    }
    let (first_ms, last_ms) = (s.time_ms(lo), s.time_ms(hi));
    let mut to_start = (first_ms - start_ms) as f64 / 1000.0;
    let to_end = (end_ms - last_ms) as f64 / 1000.0;
    let sampled = (last_ms - first_ms) as f64 / 1000.0;
    let average = sampled / (v.len() - 1) as f64;
    if result > 0.0 && v[0] >= 0.0 {
        // Not back past the counter's zero point.
        to_start = to_start.min(sampled * (v[0] / result));
    }
    let threshold = average * 1.1;
    let edge = |d: f64| if d < threshold { d } else { average / 2.0 };
    let factor = (sampled + edge(to_start) + edge(to_end)) / sampled;
    let value = result * factor;
    Some(if per_second {
        value / (range_ms as f64 / 1000.0)
    } else {
        value
    })
}

/// `count_over_time(series[range])` at `at`: the samples inside `[at − range, at]`.
pub(super) fn count_over_time(s: Samples<'_>, at: f64, range: f64) -> usize {
    s.inside(ms(at) - ms(range), ms(at)).map_or(0, |(lo, hi)| {
        s.values[lo..=hi].iter().filter(|v| !v.is_nan()).count()
    })
}

/// `last_over_time(series[range])` at `at`: the latest sample inside `[at − range, at]` (both
/// ends included, as Prometheus 2.x selects a range), `None` if there is none. A range skips
/// the staleness markers a live Prometheus writes when a scrape fails or a target goes away,
/// so a failed scrape does not hide the sample before it.
pub(super) fn last_over_time(s: Samples<'_>, at: f64, range: f64) -> Option<f64> {
    let (lo, hi) = s.inside(ms(at) - ms(range), ms(at))?;
    s.values[lo..=hi]
        .iter()
        .rev()
        .find(|v| !v.is_nan())
        .copied()
}

/// `changes(series[range])` at `at` of a counter of `len` scrapes every [`SCRAPE`] from `t0`,
/// of which those with `scraped(i)` hold a sample, whose value at scrape `i` is `until(i)`, a
/// count that only steps up (a container's restarts): how many times its value changed from
/// one sample to the next inside `[at − range, at]`, `None` if there is no sample there.
pub(super) fn changes_of_steps(
    (t0, len): (f64, usize),
    scraped: impl Fn(usize) -> bool,
    until: impl Fn(usize) -> usize,
    at: f64,
    range: f64,
) -> Option<f64> {
    let (lo, hi) = inside(t0, len, ms(at) - ms(range), ms(at))?;
    let first = (lo..=hi).find(|&i| scraped(i))?;
    let last = (lo..=hi).rev().find(|&i| scraped(i))?;
    Some((until(last) - until(first)) as f64)
}

/// The true increase of the counter over `(at − range, at]` (not across a restart: the value
/// difference, as the counter-difference queries read it): 0 before the series began, its
/// last value after it ended; `None` if the series has no sample inside the range (it ended
/// before, or begins after). Not what Prometheus answers: the reference the extrapolation is
/// measured against.
pub(super) fn exact(s: Samples<'_>, at: f64, range: f64) -> Option<f64> {
    let (end_ms, range_ms) = (ms(at), ms(range));
    s.inside(end_ms - range_ms + 1, end_ms)?;
    Some(s.value_at(end_ms) - s.value_at(end_ms - range_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(values: &[f64], t0: f64, t: f64, range: f64) -> Option<f64> {
        extrapolated(Samples { t0, values }, t, range, false)
    }

    fn truth(values: &[f64], t0: f64, t: f64, range: f64) -> Option<f64> {
        exact(Samples { t0, values }, t, range)
    }

    #[test]
    fn samples_on_both_edges_give_the_plain_difference() {
        // 0, 15, ..., 60 s: five samples, the range [0, 60] holds them all.
        let v = [10.0, 12.0, 15.0, 15.0, 19.0];
        assert_eq!(at(&v, 0.0, 60.0, 60.0), Some(9.0));
        assert_eq!(
            extrapolated(
                Samples {
                    t0: 0.0,
                    values: &v
                },
                60.0,
                60.0,
                true
            ),
            Some(9.0 / 60.0)
        );
    }

    #[test]
    fn offset_samples_are_extrapolated_to_the_edges() {
        // Samples at 5, 20, 35, 50 s; range [0, 60]: 5 s to the start and 10 s to the end are
        // both under 1.1 × 15 s, so the 45 s sampled stretch to 60 s.
        let v = [100.0, 103.0, 106.0, 109.0];
        let got = at(&v, 5.0, 60.0, 60.0).unwrap();
        assert!((got - 9.0 * 60.0 / 45.0).abs() < 1e-12, "{got}");
    }

    #[test]
    fn a_series_born_inside_the_range_loses_its_first_count() {
        // An error counter created at its first error (value 1 at 30 s), no error after:
        // Prometheus sees no increase at all.
        let v = [1.0, 1.0, 1.0];
        assert_eq!(at(&v, 30.0, 60.0, 60.0), Some(0.0));
        // One sample only: no value.
        assert_eq!(at(&v[..1], 30.0, 30.0, 60.0), None);
        // The true count in (0, 60] is 1.
        assert_eq!(truth(&v, 30.0, 60.0, 60.0), Some(1.0));
        // Born at 30 s with 1, 3 at 60 s: 2 over 30 s. The zero point (30 × 1/2 = 15 s back)
        // is nearer than the start (30 s back) and under 1.1 × 15 s, so 15 s are added: the
        // first count comes back. (Prometheus 3 compares the start with the threshold first,
        // adds half an interval, 7.5 s, and answers 2.5.)
        let v = [1.0, 2.0, 3.0];
        let got = at(&v, 30.0, 60.0, 60.0).unwrap();
        assert!((got - 3.0).abs() < 1e-12, "{got}");
        // Born with 1 and 1 more 15 s later, the range 45 s before: the zero point (15 s back)
        // again bounds the start.
        let v = [1.0, 2.0];
        let got = at(&v, 30.0, 45.0, 60.0).unwrap();
        assert!((got - 2.0).abs() < 1e-12, "{got}");
    }

    #[test]
    fn extrapolation_stops_at_the_counter_zero_point() {
        // A counter at 1 then 11 over 15 s would reach 0 1.5 s before its first sample: the
        // start is extrapolated 1.5 s, not 5 s.
        let v = [1.0, 11.0];
        let got = at(&v, 5.0, 20.0, 20.0).unwrap();
        assert!(
            (got - 10.0 * (15.0 + 1.5 + 0.0) / 15.0).abs() < 1e-12,
            "{got}"
        );
    }

    #[test]
    fn a_reset_adds_the_value_before_it() {
        let v = [5.0, 8.0, 2.0, 4.0, 6.0];
        assert_eq!(at(&v, 0.0, 60.0, 60.0), Some(6.0 - 5.0 + 8.0));
    }

    #[test]
    fn last_over_time_reads_the_latest_sample_inside_the_range() {
        let s = Samples {
            t0: 100.0,
            values: &[1.0, 2.0, 4.0],
        };
        let read = |t: f64, range: f64| last_over_time(s, t, range);
        assert_eq!(read(99.0, 60.0), None, "before the series began");
        assert_eq!(
            (read(100.0, 60.0), read(114.9, 60.0)),
            (Some(1.0), Some(1.0))
        );
        assert_eq!(read(115.0, 60.0), Some(2.0));
        // The last sample, at 130 s, is in ranges that reach back to it, the edge included.
        assert_eq!((read(190.0, 60.0), read(190.001, 60.0)), (Some(4.0), None));
        assert_eq!(read(430.0, 300.0), Some(4.0));
    }

    #[test]
    fn a_series_that_ended_before_the_range_has_no_value() {
        let v = [1.0, 2.0, 3.0];
        assert_eq!(at(&v, 0.0, 100.0, 60.0), None);
        assert_eq!(truth(&v, 0.0, 100.0, 60.0), None);
        // Ended inside it: the samples it has there count.
        assert_eq!(at(&v, 0.0, 60.0, 60.0).map(|x| x > 0.0), Some(true));
        assert_eq!(truth(&v, 0.0, 60.0, 60.0), Some(2.0));
    }
}
