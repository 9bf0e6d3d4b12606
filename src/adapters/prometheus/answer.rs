//! Prometheus' query answers, read from the HTTP body here rather than by
//! `prometheus-http-query`, which drops the `warnings` a partial answer carries (Thanos, Mimir
//! and Prometheus' own query annotations) and accepts any result type for any query.
//!
//! Owns: bounding what is read (bytes and series), telling a success from an error answer,
//! checking the result type against the query's kind, and turning warnings into
//! [`SourceError::Partial`]. It builds no request and judges nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::analysis::duration::PromDuration;
use crate::analysis::source::{Point, Series, SourceError};

/// Which API the answer came from: a range query must answer a matrix, an instant query a
/// vector or a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Instant,
    Range,
}

/// How much of an answer is read before it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    pub max_bytes: usize,
    pub max_series: usize,
}

/// Prefix of the query annotations that Prometheus calls informational ("metric might not be
/// a counter"): they say nothing about missing data, so they do not make an answer partial.
const INFO_PREFIX: &str = "PromQL info:";

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Matrix(Vec<RangeSeries>),
    Vector(Vec<InstantSeries>),
    Scalar(Sample),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct RangeSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Sample>,
    /// Native histograms: not numbers a rule can judge.
    #[serde(default)]
    histograms: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct InstantSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<Sample>,
    #[serde(default)]
    histogram: Option<serde::de::IgnoredAny>,
}

/// `[unix seconds, "value"]`; the value is a string so that NaN and ±Inf survive JSON.
#[derive(Deserialize)]
struct Sample(f64, String);

impl Sample {
    fn point(&self) -> Point {
        Point {
            t: self.0,
            v: parse_value(&self.1),
        }
    }
}

/// A sample value as Prometheus writes it ("1.5", "NaN", "+Inf", "-Inf"); anything else is NaN,
/// which the judge treats as a damaged point.
fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

/// Reads an answer body: the series, or why there are none to trust.
pub(super) fn read(
    status: u16,
    body: &[u8],
    kind: Kind,
    limits: Limits,
    timeout: PromDuration,
) -> Result<Vec<Series>, SourceError> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(_) if status >= 400 => {
            return Err(SourceError::Server(format!(
                "HTTP {status}: {}",
                excerpt(body)
            )));
        }
        Err(e) => {
            return Err(SourceError::Malformed(format!(
                "the answer is not Prometheus' JSON ({e}): {}",
                excerpt(body)
            )));
        }
    };
    if envelope.status != "success" {
        return Err(error_answer(status, &envelope, timeout));
    }
    let partial: Vec<&String> = envelope
        .warnings
        .iter()
        .filter(|w| !w.starts_with(INFO_PREFIX))
        .collect();
    if !partial.is_empty() {
        let joined: Vec<&str> = partial.iter().map(|w| w.as_str()).collect();
        return Err(SourceError::Partial(joined.join("; ")));
    }
    let data = envelope
        .data
        .ok_or_else(|| SourceError::Malformed("a success answer without data".into()))?;
    let series = series(data, kind)?;
    if series.len() > limits.max_series {
        return Err(SourceError::TooLarge(format!(
            "{} series, more than the {} allowed (prometheus.max_series)",
            series.len(),
            limits.max_series
        )));
    }
    Ok(series)
}

/// The series of an answer whose result type fits the query.
fn series(data: Data, kind: Kind) -> Result<Vec<Series>, SourceError> {
    let wrong = |got: &str| {
        let want = match kind {
            Kind::Range => "a matrix",
            Kind::Instant => "a vector or a scalar",
        };
        Err(SourceError::Malformed(format!(
            "the answer is {got} where the query asks for {want}"
        )))
    };
    match (data, kind) {
        (Data::Matrix(m), Kind::Range) => m
            .into_iter()
            .map(|s| {
                if s.histograms.is_some() && s.values.is_empty() {
                    return Err(histograms(&s.metric));
                }
                Ok(Series {
                    labels: s.metric,
                    points: s.values.iter().map(Sample::point).collect(),
                })
            })
            .collect(),
        (Data::Vector(v), Kind::Instant) => v
            .into_iter()
            .map(|s| match s.value {
                Some(sample) => Ok(Series {
                    labels: s.metric,
                    points: vec![sample.point()],
                }),
                None if s.histogram.is_some() => Err(histograms(&s.metric)),
                None => Err(SourceError::Malformed(
                    "a vector sample without a value".into(),
                )),
            })
            .collect(),
        (Data::Scalar(s), Kind::Instant) => Ok(vec![Series {
            labels: BTreeMap::new(),
            points: vec![s.point()],
        }]),
        (Data::Matrix(_), _) => wrong("a matrix"),
        (Data::Vector(_), _) => wrong("a vector"),
        (Data::Scalar(_), _) => wrong("a scalar"),
        (Data::String(_), _) => wrong("a string"),
    }
}

fn histograms(labels: &BTreeMap<String, String>) -> SourceError {
    SourceError::Malformed(format!(
        "series {labels:?} holds native histograms, not numbers: wrap the query in histogram_quantile() or histogram_count()"
    ))
}

/// An answer with `"status": "error"`, by its `errorType`.
fn error_answer(status: u16, e: &Envelope, timeout: PromDuration) -> SourceError {
    let message = e.error.clone().unwrap_or_default();
    match e.error_type.as_deref() {
        Some("bad_data") => SourceError::BadQuery(message),
        Some("timeout" | "canceled") => SourceError::Timeout(timeout),
        Some(kind) => SourceError::Server(format!("{kind}: {message}")),
        None => SourceError::Server(format!("HTTP {status}: {message}")),
    }
}

/// The start of a body, for a message: at most 200 characters, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
