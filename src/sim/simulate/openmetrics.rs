//! OpenMetrics text of historical samples, the input of
//! `promtool tsdb create-blocks-from openmetrics`, so that a real Prometheus can serve a
//! simulated history (`simulate`, `scripts/example`, the integration tests).
//!
//! promtool silently drops samples out of order and reads timestamps as seconds: samples are
//! grouped by metric family and by series, in time order, each family typed `gauge` (promtool
//! accepts `_total` names as gauges, and queries treat them alike).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::History;

/// Label pairs of one series, sorted by name.
type LabelSet = Vec<(String, String)>;

/// Builds an OpenMetrics text exposition of historical samples, in the form
/// `promtool tsdb create-blocks-from openmetrics` needs.
///
/// Every metric is written as a gauge (including `_total` names, see the
/// module docs). Families, series and samples are written in sorted order,
/// whatever order [`sample`](Self::sample) was called in.
#[derive(Debug, Clone, Default)]
pub struct OpenMetrics {
    /// metric name → label set → unix seconds → value
    families: BTreeMap<String, BTreeMap<LabelSet, BTreeMap<i64, f64>>>,
}

impl OpenMetrics {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample of the series `metric{labels}` at `unix_seconds`.
    ///
    /// Label order doesn't matter. Adding the same series and timestamp twice
    /// keeps the last value. `value` may be `NaN` or infinite. As in
    /// Prometheus, a label with an empty value means the label is absent.
    ///
    /// # Panics
    ///
    /// If the metric name or a label name is invalid, or a label name is repeated
    /// or reserved (starts with `__`).
    pub fn sample(
        &mut self,
        metric: &str,
        labels: &[(&str, &str)],
        unix_seconds: i64,
        value: f64,
    ) -> &mut Self {
        assert!(
            is_valid_name(metric, true),
            "invalid metric name {metric:?}"
        );
        let mut set: LabelSet = labels
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        set.sort();
        for (name, _) in &set {
            assert!(
                is_valid_name(name, false) && !name.starts_with("__"),
                "invalid label name {name:?} on {metric}"
            );
        }
        for pair in set.windows(2) {
            assert!(
                pair[0].0 != pair[1].0,
                "label {:?} given twice on {metric}",
                pair[0].0
            );
        }
        self.families
            .entry(metric.to_owned())
            .or_default()
            .entry(set)
            .or_default()
            .insert(unix_seconds, value);
        self
    }

    /// Renders the exposition: one `# TYPE <name> gauge` per metric, each
    /// series in increasing time order, timestamps in seconds, `# EOF` at the end.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, series) in &self.families {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, samples) in series {
                let labels = render_labels(labels);
                for (time, value) in samples {
                    let _ = writeln!(out, "{name}{labels} {} {time}", render_value(*value));
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, without `:` for label names.
fn is_valid_name(name: &str, colon_allowed: bool) -> bool {
    let allowed = |c: char| c == '_' || c.is_ascii_alphanumeric() || (colon_allowed && c == ':');
    name.chars().next().is_some_and(|c| !c.is_ascii_digit()) && name.chars().all(allowed)
}

fn render_labels(labels: &LabelSet) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn render_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // `Display` prints the shortest exact representation, without exponent.
        value.to_string()
    }
}

impl History {
    /// Every sample of the history, as Prometheus would have scraped it.
    pub fn to_openmetrics(&self) -> OpenMetrics {
        let mut om = OpenMetrics::new();
        self.for_each_sample(|metric, labels, t, v| {
            om.sample(metric, labels, t.round() as i64, v);
        });
        om
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_sample_is_written_grouped_and_in_order() {
        let noise = Noise::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab"),
        )
        .unwrap();
        let mut s = Scenario::healthy("om", 2);
        s.replicas = 2;
        s.before = 60.0;
        s.bake = 60.0;
        let h = generate(&s, &noise);
        let text = h.to_openmetrics().render();
        let mut count = 0;
        h.for_each_sample(|_, _, _, _| count += 1);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"));
        let types = lines.iter().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(lines.len() - types - 1, count);
        // Families appear once each, and each series' timestamps increase.
        let mut seen = std::collections::BTreeSet::new();
        for l in lines.iter().filter(|l| l.starts_with("# TYPE ")) {
            assert!(seen.insert(*l), "{l} twice");
        }
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for l in lines.iter().filter(|l| !l.starts_with('#')) {
            let (series, rest) = l.rsplit_once("} ").unwrap();
            let t: i64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
            if let Some(prev) = last.insert(series, t) {
                assert!(t > prev, "{l}");
            }
        }
    }
}
