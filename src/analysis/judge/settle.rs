//! Where a new pod's start-up excess ends: its fixed `warmup`, and past it, for as long again,
//! the points that stand above what the same pod does later.
//!
//! A pod that has just started does more work per request (opcache and APCu filling,
//! connection pools opening), for a time no rule can know in advance. A fixed warm-up long
//! enough for the slowest start blinds a CPU rule for the whole of a fast rollout; one as short
//! as most starts lets the slow ones through as a regression. So the fixed warm-up is the
//! least, and each pod's own points say where its excess ended: in the reach (from `warmup`
//! to twice it), the pod's points count from the first that its later points confirm (it is
//! at most [`SETTLED`] times their median). A regression, which does not fall, is confirmed by
//! the pod's next point; a start-up excess is not, until it has passed.
//!
//! Owns only that choice, over one pod's points; which points are in the window, which pod
//! started inside it and how far the reach goes (`rules::WARMUP_REACH`) are the caller's.

use crate::analysis::stats;
use crate::analysis::time::Millis;

/// A point counts once it is at most this much above the median of the same pod's later
/// points.
pub(super) const SETTLED: f64 = 1.25;

/// The number of leading points of `points` (one pod's, in time order, none before its fixed
/// warm-up's end) that are still its start-up excess: those before `reach_end` up to the first
/// confirmed one, all of them when none is.
pub(super) fn unsettled(points: &[(Millis, f64)], reach_end: Millis) -> usize {
    let in_reach = points.iter().take_while(|(t, _)| *t < reach_end).count();
    (0..in_reach)
        .find(|&i| confirmed(points[i].1, &points[i + 1..]))
        .unwrap_or(in_reach)
}

/// Whether `v` is no more than [`SETTLED`] above the median of the `later` points.
fn confirmed(v: f64, later: &[(Millis, f64)]) -> bool {
    let values: Vec<f64> = later.iter().map(|(_, v)| *v).collect();
    stats::median(&values).is_ok_and(|m| v <= m * SETTLED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[f64]) -> Vec<(Millis, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 60_000, *v))
            .collect()
    }

    #[test]
    fn an_excess_that_falls_is_left_out_until_it_has_fallen() {
        // Points at 0, 1, 2, 3 min; the reach ends at 2 min.
        assert_eq!(unsettled(&points(&[3.0, 1.0, 1.1, 0.9]), 120_000), 1);
        assert_eq!(unsettled(&points(&[3.0, 2.0, 1.1, 0.9]), 120_000), 2);
    }

    #[test]
    fn a_level_that_holds_counts_from_its_first_point() {
        assert_eq!(unsettled(&points(&[1.5, 1.4, 1.6, 1.5]), 120_000), 0);
        // A noisy first point within SETTLED of the rest.
        assert_eq!(unsettled(&points(&[1.8, 1.5, 1.5]), 120_000), 0);
    }

    #[test]
    fn a_point_in_the_reach_waits_for_a_later_one() {
        assert_eq!(unsettled(&points(&[1.5]), 120_000), 1);
        assert_eq!(unsettled(&points(&[1.5, 1.5]), 120_000), 0);
    }

    #[test]
    fn past_the_reach_every_point_counts() {
        // Still falling at the reach's end: what is past it counts all the same.
        assert_eq!(unsettled(&points(&[4.0, 3.0, 2.0, 1.0]), 120_000), 2);
        assert_eq!(unsettled(&points(&[4.0, 3.0]), 0), 0);
        assert_eq!(unsettled(&[], 120_000), 0);
    }
}
