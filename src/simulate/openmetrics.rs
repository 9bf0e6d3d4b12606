//! Writes a simulated history as OpenMetrics text, the input of
//! `promtool tsdb create-blocks-from openmetrics`, so that a real Prometheus can serve it.
//!
//! promtool silently drops samples out of order and reads timestamps as seconds: samples are
//! grouped by metric family and by series, in time order, each family typed `gauge` (promtool
//! accepts `_total` names as gauges, and queries treat them alike).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::History;

/// Escapes a label value for the exposition format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl History {
    /// The whole history as OpenMetrics text, ending in `# EOF`.
    pub fn to_openmetrics(&self) -> String {
        // family → series (rendered labels) → samples.
        let mut families: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
        self.for_each_sample(|metric, labels, t, v| {
            let rendered = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect::<Vec<_>>()
                .join(",");
            families
                .entry(metric.to_string())
                .or_default()
                .entry(rendered)
                .or_default()
                .push((t, v));
        });
        let mut out = String::new();
        for (family, series) in families {
            let _ = writeln!(out, "# TYPE {family} gauge");
            for (labels, mut samples) in series {
                samples.sort_by(|a, b| a.0.total_cmp(&b.0));
                samples.dedup_by(|a, b| a.0 == b.0);
                for (t, v) in samples {
                    let _ = writeln!(out, "{family}{{{labels}}} {v} {}", t.round() as i64);
                }
            }
        }
        out.push_str("# EOF\n");
        out
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
        let text = h.to_openmetrics();
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
