//! Container logs: the lines tests append, and the `pods/{name}/log` query over them.
//!
//! Owns, per (namespace, pod, container), the current instance's lines and the previous
//! instance's, and the kubelet's rules for `sinceTime`, `sinceSeconds`, `tailLines`,
//! `timestamps` and `limitBytes`. It does not know about HTTP, pods' status or how lines get
//! there (the handle appends them; a restart moves current to previous).

use std::collections::HashMap;

use jiff::Timestamp;

/// One log line as the container wrote it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LogLine {
    pub time: Timestamp,
    pub text: String,
}

#[derive(Clone, Debug, Default)]
struct ContainerLog {
    current: Vec<LogLine>,
    previous: Option<Vec<LogLine>>,
}

/// Key: (namespace, pod, container).
type LogKey = (String, String, String);

/// All containers' logs.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    by_container: HashMap<LogKey, ContainerLog>,
}

/// The query parameters of a log request that select and shape lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LogQuery {
    pub previous: bool,
    /// Only lines at or after this time (`sinceTime`, or now minus `sinceSeconds`).
    pub since: Option<Timestamp>,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

impl Logs {
    fn key(ns: &str, pod: &str, container: &str) -> LogKey {
        (ns.to_string(), pod.to_string(), container.to_string())
    }

    /// Appends a line to the current instance's log.
    pub(super) fn append(&mut self, ns: &str, pod: &str, container: &str, line: LogLine) {
        self.by_container
            .entry(Logs::key(ns, pod, container))
            .or_default()
            .current
            .push(line);
    }

    /// A container restart: the current log becomes the previous one and a new, empty log
    /// starts.
    pub(super) fn restart(&mut self, ns: &str, pod: &str, container: &str) {
        let log = self
            .by_container
            .entry(Logs::key(ns, pod, container))
            .or_default();
        log.previous = Some(std::mem::take(&mut log.current));
    }

    /// Forgets a deleted pod's logs.
    pub(super) fn forget_pod(&mut self, ns: &str, pod: &str) {
        self.by_container
            .retain(|(n, p, _), _| !(n == ns && p == pod));
    }

    /// Whether the container has a previous (terminated) instance.
    pub(super) fn has_previous(&self, ns: &str, pod: &str, container: &str) -> bool {
        self.by_container
            .get(&Logs::key(ns, pod, container))
            .is_some_and(|l| l.previous.is_some())
    }

    /// Number of lines in the current instance's log (a cursor for following).
    pub(super) fn current_len(&self, ns: &str, pod: &str, container: &str) -> usize {
        self.by_container
            .get(&Logs::key(ns, pod, container))
            .map_or(0, |l| l.current.len())
    }

    /// The current instance's lines from index `from` on (for following).
    pub(super) fn current_from(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        from: usize,
    ) -> Vec<LogLine> {
        self.by_container
            .get(&Logs::key(ns, pod, container))
            .map(|l| l.current.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// The selected lines of one instance, before rendering.
    pub(super) fn select(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        q: &LogQuery,
    ) -> Vec<LogLine> {
        let log = self.by_container.get(&Logs::key(ns, pod, container));
        let lines: &[LogLine] = match (log, q.previous) {
            (Some(l), false) => &l.current,
            (Some(l), true) => l.previous.as_deref().unwrap_or_default(),
            (None, _) => &[],
        };
        let mut picked: Vec<LogLine> = lines
            .iter()
            .filter(|l| q.since.is_none_or(|s| l.time >= s))
            .cloned()
            .collect();
        if let Some(n) = q.tail_lines {
            let skip = picked.len().saturating_sub(n);
            picked.drain(..skip);
        }
        picked
    }
}

/// Renders lines as the kubelet does: one per line, optionally prefixed with the RFC 3339
/// timestamp with nanoseconds (trailing zeros trimmed, like Go's `RFC3339Nano`) and a space.
pub(crate) fn render(lines: &[LogLine], timestamps: bool) -> String {
    let mut out = String::new();
    for l in lines {
        if timestamps {
            out.push_str(&rfc3339_nano(l.time));
            out.push(' ');
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    out
}

/// Go's `time.RFC3339Nano` in UTC: `2024-05-01T10:00:00.5Z`, `2024-05-01T10:00:00Z`.
pub(crate) fn rfc3339_nano(t: Timestamp) -> String {
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Cuts `text` to at most `limit` bytes, as `limitBytes` does (possibly mid-line; never
/// mid-character here, where the kubelet would cut mid-character).
pub(crate) fn truncate(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn logs() -> Logs {
        let mut logs = Logs::default();
        for (t, text) in [
            ("2025-01-01T00:00:00Z", "boot"),
            ("2025-01-01T00:00:01.25Z", "ready"),
            ("2025-01-01T00:00:02.000000001Z", "request"),
        ] {
            logs.append(
                "ns",
                "p",
                "php",
                LogLine {
                    time: at(t),
                    text: text.into(),
                },
            );
        }
        logs
    }

    #[test]
    fn since_tail_and_timestamps() {
        let logs = logs();
        let q = LogQuery {
            since: Some(at("2025-01-01T00:00:01Z")),
            ..LogQuery::default()
        };
        assert_eq!(
            render(&logs.select("ns", "p", "php", &q), false),
            "ready\nrequest\n"
        );
        let q = LogQuery {
            tail_lines: Some(1),
            ..LogQuery::default()
        };
        assert_eq!(
            render(&logs.select("ns", "p", "php", &q), true),
            "2025-01-01T00:00:02.000000001Z request\n"
        );
        assert_eq!(
            rfc3339_nano(at("2025-01-01T00:00:01.25Z")),
            "2025-01-01T00:00:01.25Z"
        );
        assert_eq!(
            rfc3339_nano(at("2025-01-01T00:00:00Z")),
            "2025-01-01T00:00:00Z"
        );
    }

    #[test]
    fn restart_moves_current_to_previous() {
        let mut logs = logs();
        assert!(!logs.has_previous("ns", "p", "php"));
        logs.restart("ns", "p", "php");
        assert!(logs.has_previous("ns", "p", "php"));
        let prev = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        assert_eq!(logs.select("ns", "p", "php", &prev).len(), 3);
        assert!(
            logs.select("ns", "p", "php", &LogQuery::default())
                .is_empty()
        );
        let mut text = "héllo".to_string();
        truncate(&mut text, 2);
        assert_eq!(text, "h");
    }
}
