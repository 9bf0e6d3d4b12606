//! Tests of the PHP log parser, with the helpers they share: `real_logs` on the real PHP-FPM
//! 8.2 logs in `tests/data/php-fpm-logs`, `formats` on hand-written lines for what those logs
//! do not show (PHP 5 and 7 wording, nginx, kubelet timestamps, interleaved workers, long
//! lines), `bounds` on hostile input and the parser's limits.

mod bounds;
mod formats;
mod real_logs;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::*;

/// Runs lines through one parser with the default limits, `finish` included.
pub(super) fn events(lines: &[&str]) -> Vec<PhpError> {
    events_with(ParserLimits::default(), lines).0
}

pub(super) fn events_with(limits: ParserLimits, lines: &[&str]) -> (Vec<PhpError>, ParserStats) {
    let mut parser = LogParser::new(limits);
    let mut out = Vec::new();
    for line in lines {
        parser.push_line(line, &mut out);
    }
    parser.finish(&mut out);
    assert_eq!(parser.pending(), 0, "finish leaves nothing pending");
    (out, *parser.stats())
}

/// The one event a line makes.
pub(super) fn one(line: &str) -> PhpError {
    let mut found = events(&[line]);
    assert_eq!(found.len(), 1, "{line:?} gave {found:#?}");
    found.remove(0)
}

pub(super) fn kind_and_signature(line: &str) -> (ErrorKind, String) {
    let e = one(line);
    (e.kind, e.signature)
}

pub(super) fn keys(errors: &[PhpError]) -> BTreeSet<(ErrorKind, String)> {
    errors
        .iter()
        .map(|e| (e.kind, e.signature.clone()))
        .collect()
}

pub(super) fn counts(errors: &[PhpError]) -> BTreeMap<ErrorKind, usize> {
    let mut counts = BTreeMap::new();
    for e in errors {
        *counts.entry(e.kind).or_default() += 1;
    }
    counts
}

pub(super) fn ts(s: &str) -> Option<Timestamp> {
    Some(s.parse().unwrap())
}

pub(super) fn decorated(pid: u32, payload: &str) -> String {
    format!(
        "[25-Nov-2026 16:00:05] WARNING: [pool www] child {pid} said into stderr: \"{payload}\""
    )
}

/// Small limits, so that boundaries are easy to reach.
pub(super) fn small() -> ParserLimits {
    ParserLimits {
        max_line_bytes: 256,
        max_message_bytes: 64,
        max_signature_bytes: 64,
        max_trace_lines: 5,
        max_pending_children: 4,
    }
}
