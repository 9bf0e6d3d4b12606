//! Durations as Prometheus writes them (`30s`, `5m`, `1h30m`).
//!
//! Owns parsing, formatting and serde for the durations that appear in rule files, the
//! configuration and the command line, so that what a person writes is exactly what goes into
//! PromQL (`[{{ window }}]`). It knows nothing of rules or queries.
//!
//! Written here rather than taken from `humantime`: PromQL needs the exact Prometheus syntax
//! back out (no spaces, no `min`/`sec` spellings), and the grammar is ten lines.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of milliseconds, written the Prometheus way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(Duration);

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write it as Prometheus does, e.g. 30s, 5m, 1h30m)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl PromDuration {
    /// From a std duration, truncated to whole milliseconds.
    pub fn new(d: Duration) -> Self {
        PromDuration(Duration::from_millis(d.as_millis() as u64))
    }

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        PromDuration(Duration::from_secs(s))
    }

    /// The std duration.
    pub fn as_std(self) -> Duration {
        self.0
    }

    /// Whole seconds, rounded down.
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Seconds as a float (for step parameters).
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// True for a zero duration.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let mut rest = s;
        let mut total: u64 = 0;
        let mut last_rank = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            // "ms" must be tried before "m".
            let (rank, unit, millis) = UNITS
                .iter()
                .enumerate()
                .rev()
                .find(|(_, (u, _))| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
                .map(|(i, (u, m))| (i, *u, *m))
                .ok_or_else(|| err("expected a unit: ms, s, m, h, d, w or y"))?;
            if last_rank != usize::MAX && rank <= last_rank {
                return Err(err("units must go from largest to smallest, each once"));
            }
            last_rank = rank;
            rest = &rest[unit.len()..];
            total = n
                .checked_mul(millis)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("too large"))?;
        }
        Ok(PromDuration(Duration::from_millis(total)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl From<Duration> for PromDuration {
    fn from(d: Duration) -> Self {
        PromDuration::new(d)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("1h30m", 5400),
            ("2d", 172_800),
            ("1w", 604_800),
        ] {
            let d: PromDuration = text.parse().unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(d.to_string(), text);
        }
        let d: PromDuration = "1m500ms".parse().unwrap();
        assert_eq!(d.as_std(), Duration::from_millis(60_500));
        assert_eq!(d.to_string(), "1m500ms");
        assert_eq!(PromDuration::from_secs(90).to_string(), "1m30s");
        assert_eq!(PromDuration::default().to_string(), "0s");
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "1.5m",
            "5min",
            "30s1m",
            "5m5m",
            "-5m",
            "99999999999999999999s",
        ] {
            assert!(
                bad.parse::<PromDuration>().is_err(),
                "{bad:?} should not parse"
            );
        }
        let e = "5min".parse::<PromDuration>().unwrap_err().to_string();
        assert!(e.contains("5min") && e.contains("30s"), "{e}");
    }
}
