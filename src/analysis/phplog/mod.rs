//! PHP errors read from container logs: the parser that turns PHP-FPM's, PHP's and nginx's
//! stderr into [`PhpError`] events with a kind and a signature, so that the errors of a new
//! ReplicaSet's pods can be compared with the old pods'.
//!
//! Many PHP services have no error metric, but PHP-FPM writes every fatal error to stderr,
//! which Kubernetes keeps. This module is the pure core of reading it: text in, events out. It
//! does no I/O, knows nothing of Kubernetes or HTTP, and runs no async code; fetching the logs
//! (`pods/{pod}/log?timestamps=true&sinceTime=...`) and counting events per pod belong to the
//! adapter that calls it.
//!
//! - `parse`: one physical line, unwrapped from the kubelet's timestamp, PHP-FPM's decoration
//!   (`[date] WARNING: [pool www] child 12 said into stderr: "..."`), PHP's dated `error_log`,
//!   or nginx's `FastCGI sent in stderr: "PHP message: ...; PHP message: ..."`;
//! - `signature`: what a message is ([`ErrorKind`]) and what identifies it (a signature that
//!   PHP 7 and 8, old and new pods, share for the same bug);
//! - `events`: [`LogParser`], which regroups stack traces into the message they belong to, in
//!   bounded memory;
//! - `kind`: the kinds, under the names rules use;
//! - `monolog`: Laravel's and Symfony's JSON log lines (errors they caught and logged), read as
//!   the PHP message they stand for.
//!
//! PHP-FPM's own lines (`fpm is running`, `child 12 exited`, `server reached
//! pm.max_children`) and an application's `error_log()` lines are never PHP errors; they are
//! only counted in [`ParserStats`]. Nothing here can fail: a line is either recognised or
//! ignored, and no input makes the parser panic or grow.

mod events;
mod kind;
mod monolog;
mod parse;
mod signature;

#[cfg(test)]
mod tests;

pub use events::LogParser;
pub use kind::{ErrorKind, UnknownErrorKind};
pub use parse::kubelet_time;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One PHP error, its stack trace (if any) folded in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhpError {
    /// What kind of error it is (`class_not_found`, `memory_exhausted`, …).
    pub kind: ErrorKind,
    /// The message with what varies between occurrences normalised away; compare errors by
    /// `(kind, signature)`. At most [`ParserLimits::max_signature_bytes`] long.
    pub signature: String,
    /// The PHP message as written, from `PHP ` on, without the wrappers around it, at most
    /// [`ParserLimits::max_message_bytes`] long.
    pub first_line: String,
    /// When the message was written: the kubelet's timestamp when the log was fetched with
    /// `timestamps=true`, else FPM's, PHP's or nginx's date read as UTC, else `None`.
    pub time: Option<Timestamp>,
    /// How many stack-trace lines (`Stack trace:`, `#0 ...`, `thrown in ...`) were regrouped
    /// into this event, at most [`ParserLimits::max_trace_lines`].
    pub trace_lines: u32,
}

/// The bounds that keep a [`LogParser`]'s memory and work per line constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParserLimits {
    /// Longer lines are cut to this many bytes (at a character boundary) before anything else
    /// looks at them. PHP-FPM writes at most `log_limit` bytes a line (1024 by default) and the
    /// kubelet splits lines at 16 KiB. At least 256.
    pub max_line_bytes: usize,
    /// Bound of [`PhpError::first_line`]. At least 64.
    pub max_message_bytes: usize,
    /// Bound of [`PhpError::signature`]. At least 64.
    pub max_signature_bytes: usize,
    /// Trace lines counted per event; more are still regrouped but no longer counted. At
    /// least 1.
    pub max_trace_lines: u32,
    /// PHP-FPM workers that may each have an event waiting for its trace; when one more
    /// starts, the least recently active one's event is emitted as it is. At least 1.
    pub max_pending_children: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_line_bytes: 16 * 1024,
            max_message_bytes: 1024,
            max_signature_bytes: 256,
            max_trace_lines: 1024,
            max_pending_children: 64,
        }
    }
}

impl ParserLimits {
    fn sanitized(self) -> Self {
        ParserLimits {
            max_line_bytes: self.max_line_bytes.max(256),
            max_message_bytes: self.max_message_bytes.max(64),
            max_signature_bytes: self.max_signature_bytes.max(64),
            max_trace_lines: self.max_trace_lines.max(1),
            max_pending_children: self.max_pending_children.max(1),
        }
    }
}

/// What a [`LogParser`] has read, for metrics and for telling a quiet log from an unreadable
/// one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParserStats {
    /// Physical lines read.
    pub lines: u64,
    /// Lines longer than [`ParserLimits::max_line_bytes`], cut.
    pub truncated_lines: u64,
    /// PHP error messages recognised (each is, or will be, one [`PhpError`]).
    pub errors: u64,
    /// PHP-FPM's own lines, which are not PHP errors.
    pub fpm_lines: u64,
    /// Stack-trace lines with no pending event to join (their message was cut off, or another
    /// writer's line came in between).
    pub orphan_trace_lines: u64,
    /// Pending events emitted early because [`ParserLimits::max_pending_children`] workers
    /// already had one.
    pub evicted: u64,
}

/// Every PHP error in a whole log, with the default limits.
pub fn parse_log(text: &str) -> Vec<PhpError> {
    let mut parser = LogParser::new(ParserLimits::default());
    let mut out = Vec::new();
    for line in text.lines() {
        parser.push_line(line, &mut out);
    }
    parser.finish(&mut out);
    out
}
