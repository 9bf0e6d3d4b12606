//! Time inside the judgement: whole milliseconds since the Unix epoch ([`Millis`]), the one
//! representation of windows, interval grids and sample times.
//!
//! Owns the conversions at the core's edges: the moment of an evaluation and the times a
//! source is asked for are timestamps, sample times arrive as the unix seconds a source reports
//! (Prometheus' own form), and records keep unix seconds. Must not read a clock.

use jiff::{SignedDuration, Timestamp};

/// Milliseconds since the Unix epoch, or a span of them.
pub type Millis = i64;

/// A sample time in unix seconds, as a source reports it, to the millisecond.
pub fn from_seconds(t: f64) -> Millis {
    (t * 1000.0).round() as Millis
}

/// Unix seconds, as records and reports keep times.
pub fn to_seconds(t: Millis) -> f64 {
    t as f64 / 1000.0
}

/// A span in whole seconds, rounded up (a span of a part of a second is a second); a
/// negative span is none.
pub fn to_seconds_ceil(t: Millis) -> u64 {
    u64::try_from(t.max(0)).unwrap_or_default().div_ceil(1000)
}

/// A timestamp's milliseconds.
pub fn from_timestamp(t: Timestamp) -> Millis {
    t.as_millisecond()
}

/// A moment as a timestamp; moments outside jiff's range (a window reaching back past year
/// -9999) are clamped rather than panicking, and a query for them then finds nothing.
pub fn to_timestamp(t: Millis) -> Timestamp {
    Timestamp::UNIX_EPOCH
        .checked_add(SignedDuration::from_millis(t))
        .unwrap_or(if t < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

/// A duration in milliseconds (saturating: no rule's duration comes near).
pub fn span(d: std::time::Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_to_the_millisecond_and_back() {
        assert_eq!(from_seconds(1_700_000_000.123_4), 1_700_000_000_123);
        assert_eq!(to_seconds(1_700_000_000_123), 1_700_000_000.123);
        assert_eq!(from_seconds(-1.5), -1500);
        assert_eq!(
            (
                to_seconds_ceil(1),
                to_seconds_ceil(60_000),
                to_seconds_ceil(-5)
            ),
            (1, 60, 0)
        );
    }

    #[test]
    fn timestamps_convert_both_ways_and_clamp_outside_jiffs_range() {
        let t = to_timestamp(1_700_000_000_123);
        assert_eq!(from_timestamp(t), 1_700_000_000_123);
        assert_eq!(to_timestamp(Millis::MIN), Timestamp::MIN);
        assert_eq!(to_timestamp(Millis::MAX), Timestamp::MAX);
    }
}
