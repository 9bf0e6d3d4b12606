//! What the number a compare or absolute check's query returns is, for people: the unit the
//! report's axes, tables and sentences use. Judging never looks at it.

use serde::{Deserialize, Serialize};

/// The unit of a compare or absolute check's query (`unit:` in the rule, `number` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A number in the query's own unit.
    #[default]
    Number,
    /// A share between 0 and 1 (of the CPU limit, of CFS periods): shown as a percentage.
    Fraction,
    /// Seconds (a latency).
    Seconds,
    /// CPU seconds per request.
    CpuSecondsPerRequest,
}

impl Unit {
    /// The default, which records leave out.
    pub fn is_number(&self) -> bool {
        *self == Unit::Number
    }

    /// What a shown value is in (after [`Unit::shown`]).
    pub fn label(self) -> &'static str {
        match self {
            Unit::Number => "value, in the query's unit",
            Unit::Fraction => "%",
            Unit::Seconds => "seconds",
            Unit::CpuSecondsPerRequest => "CPU seconds per request",
        }
    }

    /// A value of the query as shown to people (a fraction as a percentage).
    pub fn shown(self, v: f64) -> f64 {
        match self {
            Unit::Fraction => 100.0 * v,
            _ => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_is_shown_as_a_percentage_and_the_rest_as_they_are() {
        assert_eq!(Unit::Fraction.shown(0.9), 90.0);
        assert_eq!(Unit::Fraction.label(), "%");
        assert_eq!(Unit::CpuSecondsPerRequest.shown(0.012), 0.012);
        assert_eq!(Unit::default(), Unit::Number);
        let parsed: Unit = serde_json::from_str("\"cpu_seconds_per_request\"").unwrap();
        assert_eq!(parsed, Unit::CpuSecondsPerRequest);
    }
}
