//! Real noise: CPU and request-count traces from the Numenta Anomaly Benchmark.
//!
//! Parses NAB's `timestamp,value` CSVs and its anomaly-window list, and cuts segments of
//! "healthy" behaviour (outside the labelled anomalies) as relative fluctuation around 1. Takes
//! text, never opens files: callers read `tests/data/nab/` or embed what they need.

use std::collections::BTreeMap;

use rand::RngExt;

/// One trace: 5-minute samples, with the indices inside NAB's anomaly windows marked.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Its file name (`ec2_cpu_utilization_24ae8d.csv`).
    pub name: String,
    /// Its samples' values, in time order.
    pub values: Vec<f64>,
    anomalous: Vec<bool>,
}

/// Why a trace did not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name}: line {line}: {reason}")]
pub struct TraceError {
    /// The trace's name.
    pub name: String,
    /// The line of the CSV, from 1 (the header).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Resolution of NAB traces, in seconds.
pub(super) const TRACE_STEP: f64 = 300.0;

impl Trace {
    /// Parses a NAB CSV (`timestamp,value`, header first). `windows` are the anomaly windows
    /// for this file (`[start, end]` timestamps as NAB writes them); samples inside are never
    /// used as healthy noise.
    pub fn parse(name: &str, csv: &str, windows: &[(String, String)]) -> Result<Trace, TraceError> {
        let mut values = Vec::new();
        let mut anomalous = Vec::new();
        for (i, line) in csv.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason: &str| TraceError {
                name: name.to_string(),
                line: i + 1,
                reason: reason.to_string(),
            };
            let (ts, v) = line
                .split_once(',')
                .ok_or_else(|| err("expected timestamp,value"))?;
            let v: f64 = v.trim().parse().map_err(|_| err("value is not a number"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(err("value must be a finite, non-negative number"));
            }
            // NAB writes "2014-02-14 14:30:00" here and "2014-02-26 13:45:00.000000" in windows:
            // comparing the first 19 characters orders them correctly.
            let ts = ts.get(..19).unwrap_or(ts);
            let inside = windows
                .iter()
                .any(|(a, b)| ts >= &a[..19.min(a.len())] && ts <= &b[..19.min(b.len())]);
            values.push(v);
            anomalous.push(inside);
        }
        if values.len() < 2 {
            return Err(TraceError {
                name: name.to_string(),
                line: 1,
                reason: "fewer than two samples".into(),
            });
        }
        Ok(Trace {
            name: name.to_string(),
            values,
            anomalous,
        })
    }

    /// True for a machine under steady load: over two-hour stretches, 80% of its samples stay
    /// within 25% of the stretch's mean (p10 ≥ 0.75, p90 ≤ 1.25). Idle-or-busy batch machines
    /// are not; their traces make good deployment-wide load patterns but not pod-to-pod noise,
    /// since the pods behind one Service share their load.
    pub fn is_steady(&self) -> bool {
        let len = 24;
        let mut rel = Vec::new();
        for seg in self.values.chunks(len).filter(|c| c.len() == len) {
            let mean = seg.iter().sum::<f64>() / len as f64;
            if mean > 0.0 {
                rel.extend(seg.iter().map(|v| v / mean));
            }
        }
        let (Ok(p10), Ok(p90)) = (
            crate::analysis::stats::quantile(&rel, 0.1),
            crate::analysis::stats::quantile(&rel, 0.9),
        ) else {
            return false;
        };
        p10 >= 0.75 && p90 <= 1.25
    }

    /// A random healthy segment of `len` samples as fluctuation around 1 (each value over the
    /// segment's mean). `None` if the trace has no such segment.
    pub fn healthy_segment(&self, rng: &mut impl RngExt, len: usize) -> Option<Vec<f64>> {
        let len = len.max(2);
        if self.values.len() < len {
            return None;
        }
        for _ in 0..64 {
            let start = rng.random_range(0..=self.values.len() - len);
            if self.anomalous[start..start + len].iter().any(|a| *a) {
                continue;
            }
            let seg = &self.values[start..start + len];
            let mean = seg.iter().sum::<f64>() / len as f64;
            if mean <= 0.0 {
                continue;
            }
            return Some(seg.iter().map(|v| v / mean).collect());
        }
        None
    }
}

impl Trace {
    /// A random segment of `len` samples anywhere in the trace, NAB's labelled anomalies
    /// included, as fluctuation around 1. `None` if the trace is too short or the segment
    /// drawn is all zeros.
    pub fn any_segment(&self, rng: &mut impl RngExt, len: usize) -> Option<Vec<f64>> {
        let len = len.max(2);
        if self.values.len() < len {
            return None;
        }
        let start = rng.random_range(0..=self.values.len() - len);
        let seg = &self.values[start..start + len];
        let mean = seg.iter().sum::<f64>() / len as f64;
        (mean > 0.0).then(|| seg.iter().map(|v| v / mean).collect())
    }
}

/// Parses NAB's `combined_windows.json` into file name → windows. Keys are NAB paths such as
/// `realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv`; the returned keys are the file names.
pub fn parse_windows(
    json: &str,
) -> Result<BTreeMap<String, Vec<(String, String)>>, serde_json::Error> {
    let raw: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k.rsplit('/').next().unwrap_or(&k).to_string(), v))
        .collect())
}

/// The traces a simulation draws its noise from.
#[derive(Clone, Debug, Default)]
pub struct Noise {
    /// CPU utilisation traces.
    pub cpu: Vec<Trace>,
    /// Request-count traces.
    pub requests: Vec<Trace>,
}

impl Noise {
    /// Loads the NAB files bundled in a folder (`tests/data/nab` in this repository).
    pub fn load_dir(dir: &std::path::Path) -> Result<Noise, String> {
        let windows_text = std::fs::read_to_string(dir.join("combined_windows.json"))
            .map_err(|e| format!("{}: {e}", dir.join("combined_windows.json").display()))?;
        let windows =
            parse_windows(&windows_text).map_err(|e| format!("combined_windows.json: {e}"))?;
        let mut noise = Noise::default();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let trace = Trace::parse(
                &name,
                &text,
                windows.get(&name).map_or(&[][..], Vec::as_slice),
            )
            .map_err(|e| e.to_string())?;
            if name.contains("cpu_utilization") {
                noise.cpu.push(trace);
            } else if name.contains("request_count") {
                noise.requests.push(trace);
            }
        }
        if noise.cpu.is_empty() || noise.requests.is_empty() {
            return Err(format!(
                "{}: no CPU or no request-count traces",
                dir.display()
            ));
        }
        Ok(noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const CSV: &str = "timestamp,value\n2014-02-14 14:30:00,1\n2014-02-14 14:35:00,3\n2014-02-14 14:40:00,100\n2014-02-14 14:45:00,2\n";

    #[test]
    fn segments_avoid_anomaly_windows_and_centre_on_one() {
        let windows = vec![(
            "2014-02-14 14:40:00.000000".to_string(),
            "2014-02-14 14:40:00.000000".to_string(),
        )];
        let t = Trace::parse("x.csv", CSV, &windows).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let s = t.healthy_segment(&mut rng, 2).unwrap();
            assert!(s == vec![0.5, 1.5], "{s:?}");
        }
        assert!(t.healthy_segment(&mut rng, 3).is_none());
    }

    #[test]
    fn bad_csv_names_the_line() {
        let e =
            Trace::parse("x.csv", "timestamp,value\n2014-02-14 14:30:00,abc\n", &[]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("x.csv: line 2"), "{e}");
    }

    #[test]
    fn the_bundled_traces_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab");
        let noise = Noise::load_dir(&dir).unwrap();
        assert_eq!(noise.cpu.len(), 10);
        assert_eq!(noise.requests.len(), 1);
        assert!(noise.cpu.iter().all(|t| t.values.len() > 3000));
        let steady: Vec<&str> = noise
            .cpu
            .iter()
            .filter(|t| t.is_steady())
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(steady.len(), 6, "{steady:?}");
        assert!(!steady.contains(&"ec2_cpu_utilization_77c1ca.csv"));
    }
}
