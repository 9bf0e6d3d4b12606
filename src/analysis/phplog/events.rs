//! The streaming parser: physical lines in, one [`PhpError`] per PHP error out, with the stack
//! trace of an uncaught throwable regrouped into the message that announced it.
//!
//! Owns the state across lines and its bounds. Line formats are `parse`'s business and kinds
//! and signatures `signature`'s; this file only decides which line belongs to which event and
//! when an event is complete.
//!
//! How lines are regrouped:
//! - an event waits for its trace only when a trace can follow, i.e. for `Uncaught ...`
//!   messages; every other message is emitted at once;
//! - PHP-FPM's decorated lines carry the worker's pid, so a trace line joins the pending event
//!   of the same worker, whatever other workers wrote in between;
//! - PHP writes an uncaught throwable's message and its whole trace in one go, so a worker's
//!   lines up to `thrown in` all belong to its pending event, including what is not a trace
//!   line: the rest of a message FPM wrapped at its `log_limit`, the second line of a
//!   multi-line exception message. They are absorbed, not counted;
//! - bare, PHP-dated and nginx lines carry no writer, so a trace line joins the pending event
//!   only if nothing but trace and blank lines came in between (adjacency), and any other
//!   line completes it;
//! - an event is complete at `  thrown in ...`, when its writer starts another message
//!   (including an application's `error_log()` line), when FPM says the worker exited, when
//!   the per-worker table is full and it is the least recently used, or at
//!   [`LogParser::finish`]. PHP before 8.1 cut messages at `log_errors_max_len` (1024 bytes by
//!   default), so `thrown in` may never come; the event then completes by one of the others.
//!
//! Events are emitted in the order they complete, which for interleaved workers is not always
//! the order their first lines came in; [`PhpError::time`] tells when each started.

use super::parse::{self, Body, Content, Message, RawTime, Writer};
use super::signature::{self, floor_boundary};
use super::{ParserLimits, ParserStats, PhpError};

/// Reads a log line by line, in bounded memory whatever the input: lines are cut to
/// [`ParserLimits::max_line_bytes`] before anything else, a pending event keeps a count of its
/// trace lines and not their text, and at most [`ParserLimits::max_pending_children`] workers
/// have an event pending.
///
/// One parser reads one stream (one container's log): pids of different pods would mix.
#[derive(Debug)]
pub struct LogParser {
    limits: ParserLimits,
    /// The pending event of bare lines.
    adjacent: Option<PhpError>,
    /// The pending events of FPM workers, with the tick they were last touched at.
    children: Vec<(u32, u64, PhpError)>,
    tick: u64,
    stats: ParserStats,
}

impl LogParser {
    /// A parser with these limits; limits below their documented minimums are raised to them.
    pub fn new(limits: ParserLimits) -> Self {
        LogParser {
            limits: limits.sanitized(),
            adjacent: None,
            children: Vec::new(),
            tick: 0,
            stats: ParserStats::default(),
        }
    }

    /// Reads one physical line (with or without its line ending) and appends to `out` the
    /// events it completes.
    pub fn push_line(&mut self, line: &str, out: &mut Vec<PhpError>) {
        self.stats.lines += 1;
        let line = if line.len() > self.limits.max_line_bytes {
            self.stats.truncated_lines += 1;
            &line[..floor_boundary(line, self.limits.max_line_bytes)]
        } else {
            line
        };
        let line = line.trim_end_matches(['\n', '\r']);
        let from_monolog = super::monolog::as_php_line(line);
        let line = from_monolog.as_deref().unwrap_or(line);
        let unwrapped = parse::unwrap(line);
        match unwrapped.body {
            Body::Fpm { exited_child } => {
                self.stats.fpm_lines += 1;
                if let Some(pid) = exited_child {
                    self.flush(Writer::Child(pid), out);
                }
            }
            Body::Text(text) => {
                let times = [unwrapped.kubelet, unwrapped.time];
                self.text(times, unwrapped.writer, text, out);
            }
        }
    }

    /// Emits every pending event; the parser can go on reading afterwards.
    pub fn finish(&mut self, out: &mut Vec<PhpError>) {
        out.extend(self.adjacent.take());
        self.children.sort_by_key(|&(_, tick, _)| tick);
        out.extend(self.children.drain(..).map(|(_, _, error)| error));
    }

    /// What the parser has seen so far.
    pub fn stats(&self) -> &ParserStats {
        &self.stats
    }

    /// How many events are waiting for more lines: at most one for bare lines plus
    /// [`ParserLimits::max_pending_children`].
    pub fn pending(&self) -> usize {
        usize::from(self.adjacent.is_some()) + self.children.len()
    }

    fn text(
        &mut self,
        times: [Option<RawTime<'_>>; 2],
        writer: Writer,
        text: &str,
        out: &mut Vec<PhpError>,
    ) {
        match parse::content(text) {
            Content::Blank => {}
            Content::Other => match writer {
                Writer::Adjacent => self.flush(writer, out),
                Writer::Child(_) => {
                    self.pending_mut(writer);
                }
            },
            Content::Trace { ends } => {
                let max = self.limits.max_trace_lines;
                match self.pending_mut(writer) {
                    Some(pending) => {
                        pending.trace_lines = pending.trace_lines.saturating_add(1).min(max);
                        if ends {
                            self.flush(writer, out);
                        }
                    }
                    None => self.stats.orphan_trace_lines += 1,
                }
            }
            Content::Messages(segments) => {
                for segment in segments {
                    self.flush(writer, out);
                    if let Some(message) = segment {
                        self.start(times, writer, message, out);
                    }
                }
            }
        }
    }

    /// A new message: emitted now, or kept pending when a stack trace may follow.
    fn start(
        &mut self,
        times: [Option<RawTime<'_>>; 2],
        writer: Writer,
        message: Message<'_>,
        out: &mut Vec<PhpError>,
    ) {
        let (kind, signature) =
            signature::classify(message.level, message.body, self.limits.max_signature_bytes);
        let first_line =
            &message.text[..floor_boundary(message.text, self.limits.max_message_bytes)];
        let error = PhpError {
            kind,
            signature,
            first_line: first_line.to_owned(),
            // The outermost time that parses: the kubelet's, then FPM's or nginx's, then PHP's.
            time: [times[0], times[1], message.time]
                .into_iter()
                .flatten()
                .find_map(parse::parse_time),
            trace_lines: 0,
        };
        self.stats.errors += 1;
        if !signature::awaits_trace(message.body) {
            out.push(error);
            return;
        }
        match writer {
            Writer::Adjacent => self.adjacent = Some(error),
            Writer::Child(pid) => {
                if self.children.len() >= self.limits.max_pending_children
                    && let Some(oldest) = self
                        .children
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, tick, _))| *tick)
                        .map(|(i, _)| i)
                {
                    let (_, _, evicted) = self.children.swap_remove(oldest);
                    self.stats.evicted += 1;
                    out.push(evicted);
                }
                self.tick += 1;
                self.children.push((pid, self.tick, error));
            }
        }
    }

    fn pending_mut(&mut self, writer: Writer) -> Option<&mut PhpError> {
        match writer {
            Writer::Adjacent => self.adjacent.as_mut(),
            Writer::Child(pid) => {
                self.tick += 1;
                let tick = self.tick;
                self.children
                    .iter_mut()
                    .find(|(p, _, _)| *p == pid)
                    .map(|(_, last, error)| {
                        *last = tick;
                        error
                    })
            }
        }
    }

    /// Emits the writer's pending event, if any.
    fn flush(&mut self, writer: Writer, out: &mut Vec<PhpError>) {
        match writer {
            Writer::Adjacent => out.extend(self.adjacent.take()),
            Writer::Child(pid) => {
                if let Some(i) = self.children.iter().position(|(p, _, _)| *p == pid) {
                    let (_, _, error) = self.children.swap_remove(i);
                    out.push(error);
                }
            }
        }
    }
}
