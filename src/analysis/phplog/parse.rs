//! One physical log line, unwrapped: which wrappers it came in (kubelet timestamp, PHP-FPM's
//! decoration, PHP's own dated `error_log`, nginx's `FastCGI sent in stderr`), which process
//! wrote it, and what it is (PHP messages, a stack-trace line, FPM's own chatter, or anything
//! else).
//!
//! Owns the line formats and nothing else: no state across lines (that is `events`), no
//! deciding which kind of error a message is (that is `signature`). Times are returned as the
//! text found and parsed only when an event needs them, because almost every line of a real log
//! is not an error and parsing its date would be wasted work.
//!
//! Everything here works on `&str` slices cut at ASCII bytes, so no slice can fall inside a
//! multi-byte character, whatever the input.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use memchr::memmem;

/// Who wrote a line, as far as the format tells: multi-line events are regrouped per writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Writer {
    /// A bare, PHP-dated or nginx line: regrouped with the lines next to it.
    Adjacent,
    /// A line PHP-FPM decorated with the pid of the worker that wrote it.
    Child(u32),
}

/// A time as written in a line, not parsed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RawTime<'a> {
    /// The kubelet's RFC 3339 prefix (`timestamps=true`).
    Kubelet(&'a str),
    /// PHP-FPM's or PHP's bracketed date: `25-Nov-2026 16:00:05`, maybe with fractional
    /// seconds and a zone name after it.
    Php(&'a str),
    /// nginx's `2026/11/25 16:00:05`.
    Nginx(&'a str),
}

/// A physical line with its wrappers taken off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Unwrapped<'a> {
    /// The kubelet's timestamp, if the line has one.
    pub kubelet: Option<RawTime<'a>>,
    /// FPM's, PHP's or nginx's date around the text, if any.
    pub time: Option<RawTime<'a>>,
    pub writer: Writer,
    pub body: Body<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Body<'a> {
    /// What a PHP process (or nginx, relaying one) wrote; see [`content`].
    Text(&'a str),
    /// PHP-FPM's master speaking for itself (`fpm is running`, `child 12 exited on signal 11`,
    /// `server reached pm.max_children`): never a PHP error. Carries the pid when it says a
    /// child exited, whose pending event can then be closed.
    Fpm { exited_child: Option<u32> },
}

/// What the text of a line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Content<'a> {
    /// Nothing but whitespace (PHP puts blank lines between chained exceptions).
    Blank,
    /// One or more `PHP message: ` segments (nginx may carry several in one line), or one bare
    /// PHP message.
    Messages(Segments<'a>),
    /// `Stack trace:`, `#3 ...`, `Next Exception: ...`, or `  thrown in ...` (which ends it).
    Trace { ends: bool },
    /// Anything else, including an application's own `error_log()` lines.
    Other,
}

/// The severity PHP wrote after `PHP ` (`Fatal error`, `Warning`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    /// `Fatal error`, `Recoverable fatal error`, `Catchable fatal error` (PHP 5), `Unknown error`.
    Fatal,
    Parse,
    Warning,
    /// `Notice` and PHP 5's `Strict Standards`.
    Notice,
    Deprecated,
}

/// One PHP error message: `PHP Fatal error:  Uncaught Error: ... in /app/x.php:7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Message<'a> {
    pub level: Level,
    /// From `PHP ` to the end of the message.
    pub text: &'a str,
    /// What follows the level and its colon, without the leading spaces.
    pub body: &'a str,
    /// PHP's own date, when it wrote to a file (`[25-Nov-2026 16:00:05 UTC] PHP ...`).
    pub time: Option<RawTime<'a>>,
}

const PHP_MESSAGE: &str = "PHP message: ";
const FASTCGI: &str = "FastCGI sent in stderr: \"";

/// Takes a physical line (already capped in length, line ending removed) apart.
pub(super) fn unwrap(line: &str) -> Unwrapped<'_> {
    let (kubelet, rest) = split_kubelet(line);
    Unwrapped {
        kubelet,
        ..unwrap_inner(rest)
    }
}

fn unwrap_inner(line: &str) -> Unwrapped<'_> {
    let b = line.as_bytes();
    let adjacent = |time, text| Unwrapped {
        kubelet: None,
        time,
        writer: Writer::Adjacent,
        body: Body::Text(text),
    };
    if b.first() == Some(&b'[')
        && let Some((date, rest)) = split_php_date(line)
    {
        let time = Some(RawTime::Php(date));
        if rest.starts_with("PHP ") {
            return adjacent(time, rest);
        }
        return match fpm_line(rest) {
            Some(mut fpm) => {
                fpm.time = time;
                fpm
            }
            None => adjacent(time, rest),
        };
    }
    if b.first().is_some_and(u8::is_ascii_uppercase)
        && let Some(fpm) = fpm_line(line)
        && matches!(fpm.writer, Writer::Child(_))
    {
        // An undated decorated line; an undated `NOTICE: ...` that is not about a pool is a
        // worker's own output (`NOTICE: PHP message: ...` with decoration off), not FPM's.
        return fpm;
    }
    if b.len() > 20 && b[4] == b'/' && b[7] == b'/' && b[10] == b' ' && b[0].is_ascii_digit() {
        if let Some(at) = memmem::find(b, FASTCGI.as_bytes()) {
            let content = nginx_content(&line[at + FASTCGI.len()..]);
            // `get`: byte 19 need not be a char boundary in a line that only looks dated.
            return adjacent(line.get(..19).map(RawTime::Nginx), content);
        }
        return adjacent(None, line);
    }
    adjacent(None, line)
}

/// The time the kubelet put before a line of `kubectl logs --timestamps` output, if any.
pub fn kubelet_time(line: &str) -> Option<Timestamp> {
    split_kubelet(line).0.and_then(parse_time)
}

/// `2026-11-25T16:00:05.123456789Z rest` → the timestamp text and the rest. Only the shape is
/// checked here; [`parse_time`] rejects a malformed one later.
fn split_kubelet(line: &str) -> (Option<RawTime<'_>>, &str) {
    let b = line.as_bytes();
    if b.len() > 20 && b[0].is_ascii_digit() && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' {
        let head = &b[..b.len().min(40)];
        if let Some(space) = memchr::memchr(b' ', head) {
            return (Some(RawTime::Kubelet(&line[..space])), &line[space + 1..]);
        }
    }
    (None, line)
}

/// `[25-Nov-2026 16:00:05] rest` or `[25-Nov-2026 16:00:05 UTC] rest` → date text and rest.
fn split_php_date(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = memchr::memchr(b']', &b[..b.len().min(64)])?;
    let date = &line[1..close];
    let d = date.as_bytes();
    if d.len() < 20 || d[2] != b'-' || d[6] != b'-' || d[11] != b' ' || d[14] != b':' {
        return None;
    }
    Some((date, line[close + 1..].trim_start_matches(' ')))
}

/// `WARNING: [pool www] child 21 said into stderr: "..."` and FPM's other lines after the date.
/// `None` when the line does not start with an upper-case level and a colon.
fn fpm_line(line: &str) -> Option<Unwrapped<'_>> {
    let level_end = line.bytes().take(10).position(|c| c == b':')?;
    if level_end == 0
        || !line.as_bytes()[..level_end]
            .iter()
            .all(u8::is_ascii_uppercase)
    {
        return None;
    }
    let rest = line[level_end + 1..].trim_start_matches(' ');
    let fpm = Unwrapped {
        kubelet: None,
        time: None,
        writer: Writer::Adjacent,
        body: Body::Fpm { exited_child: None },
    };
    if rest.starts_with(PHP_MESSAGE) {
        // Dated `NOTICE: PHP message: ...`: a worker's output after all.
        return Some(Unwrapped {
            body: Body::Text(line),
            ..fpm
        });
    }
    let Some(pool) = rest.strip_prefix("[pool ") else {
        return Some(fpm);
    };
    let Some(close) = pool.find("] ") else {
        return Some(fpm);
    };
    let Some(child) = pool[close + 2..].strip_prefix("child ") else {
        return Some(fpm);
    };
    let digits = child.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(pid) = child[..digits].parse::<u32>() else {
        return Some(fpm);
    };
    let after = &child[digits..];
    let said = after
        .strip_prefix(" said into stderr: \"")
        .or_else(|| after.strip_prefix(" said into stdout: \""));
    match said {
        Some(payload) => Some(Unwrapped {
            kubelet: None,
            time: None,
            writer: Writer::Child(pid),
            body: Body::Text(strip_decoration_end(payload)),
        }),
        None if after.starts_with(" exited") => Some(Unwrapped {
            body: Body::Fpm {
                exited_child: Some(pid),
            },
            ..fpm
        }),
        None => Some(fpm),
    }
}

/// The end of a decorated payload: the closing quote, `", pipe is closed` on a worker's last
/// words, or `...` where an older FPM cut a line longer than its buffer (no quote then). Where
/// FPM 7.3+ wraps a long line instead, every piece is quoted and the pieces after the first
/// arrive as lines of their own, which `events` absorbs into the worker's pending event.
fn strip_decoration_end(payload: &str) -> &str {
    payload
        .strip_suffix("\", pipe is closed")
        .or_else(|| payload.strip_suffix('"'))
        .or_else(|| payload.strip_suffix("..."))
        .unwrap_or(payload)
}

/// nginx's `FastCGI sent in stderr: "...` content: up to the closing `" while reading ...,
/// client: ...` when it is on this line (a stack trace puts it on the last line instead).
fn nginx_content(content: &str) -> &str {
    if let Some(at) = content.rfind("\" while ")
        && content[at..].contains(", client: ")
    {
        return &content[..at];
    }
    content.strip_suffix('"').unwrap_or(content)
}

/// What a line's text is. A decorated payload, an undecorated line and nginx's FastCGI content
/// all come here.
pub(super) fn content(text: &str) -> Content<'_> {
    let b = text.as_bytes();
    let Some(&first) = b.first() else {
        return Content::Blank;
    };
    match first {
        b'N' | b'W' | b'E' | b'A' | b'D' | b'P' => {
            let t = strip_worker_level(text);
            if t.starts_with(PHP_MESSAGE) {
                return Content::Messages(Segments::new(t, None));
            }
            if t.starts_with("PHP ") {
                return Content::Messages(Segments::single(t, None));
            }
            if first == b'N' && is_next_exception(text) {
                return Content::Trace { ends: false };
            }
            Content::Other
        }
        b'[' => match split_php_date(text) {
            Some((date, rest)) if rest.starts_with("PHP ") => {
                Content::Messages(Segments::single(rest, Some(RawTime::Php(date))))
            }
            _ => Content::Other,
        },
        b'S' if text.starts_with("Stack trace:") => Content::Trace { ends: false },
        b'#' if b.len() > 2 && b[1].is_ascii_digit() => {
            let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            match b.get(1 + digits) {
                Some(b' ') => Content::Trace { ends: false },
                _ => Content::Other,
            }
        }
        b' ' | b'\t' => {
            let t = text.trim_start();
            if t.is_empty() {
                Content::Blank
            } else if t.starts_with("thrown in ") {
                Content::Trace { ends: true }
            } else {
                Content::Other
            }
        }
        b't' if text.starts_with("thrown in ") => Content::Trace { ends: true },
        _ if text.trim().is_empty() => Content::Blank,
        _ => Content::Other,
    }
}

/// `NOTICE: PHP message: ...` → `PHP message: ...`; anything else unchanged.
fn strip_worker_level(text: &str) -> &str {
    let b = text.as_bytes();
    let upper = b
        .iter()
        .take(8)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    if upper > 0 && b.get(upper) == Some(&b':') && b.get(upper + 1) == Some(&b' ') {
        let rest = &text[upper + 2..];
        if rest.starts_with(PHP_MESSAGE) {
            return rest;
        }
    }
    text
}

/// `Next RuntimeException: msg in /a.php:5`: the next exception of a chain, part of the trace.
fn is_next_exception(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("Next ") else {
        return false;
    };
    let name = rest
        .bytes()
        .take_while(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'\\')
        .count();
    name > 0 && rest[name..].starts_with(": ")
}

/// The PHP messages of one line, split at `PHP message: `. Segments that are not PHP errors
/// (an application's `error_log("...")` arrives as `PHP message: ...` too) come out as `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Segments<'a> {
    rest: &'a str,
    split: bool,
    time: Option<RawTime<'a>>,
}

impl<'a> Segments<'a> {
    fn new(text: &'a str, time: Option<RawTime<'a>>) -> Self {
        Segments {
            rest: text,
            split: true,
            time,
        }
    }

    fn single(text: &'a str, time: Option<RawTime<'a>>) -> Self {
        Segments {
            rest: text,
            split: false,
            time,
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Option<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let segment = if self.split {
            let text = self.rest.strip_prefix(PHP_MESSAGE).unwrap_or(self.rest);
            match memmem::find(text.as_bytes(), PHP_MESSAGE.as_bytes()) {
                Some(at) => {
                    self.rest = &text[at..];
                    &text[..at]
                }
                None => {
                    self.rest = "";
                    text
                }
            }
        } else {
            std::mem::take(&mut self.rest)
        };
        // nginx joins messages with `; ` or a newline; PHP ends none with either.
        let segment = segment.trim_end_matches([';', ' ', '\t', '\n', '\r']);
        let (segment, time) = match split_php_date(segment) {
            Some((date, rest)) => (rest, Some(RawTime::Php(date))),
            None => (segment, self.time),
        };
        Some(message(segment, time))
    }
}

/// `PHP Fatal error:  ...` → its level and body; `None` for anything else.
fn message<'a>(text: &'a str, time: Option<RawTime<'a>>) -> Option<Message<'a>> {
    const LEVELS: [(&str, Level); 9] = [
        ("Fatal error:", Level::Fatal),
        ("Warning:", Level::Warning),
        ("Notice:", Level::Notice),
        ("Deprecated:", Level::Deprecated),
        ("Parse error:", Level::Parse),
        ("Recoverable fatal error:", Level::Fatal),
        ("Catchable fatal error:", Level::Fatal),
        ("Strict Standards:", Level::Notice),
        ("Unknown error:", Level::Fatal),
    ];
    let rest = text.strip_prefix("PHP ")?;
    LEVELS.iter().find_map(|&(prefix, level)| {
        let body = rest.strip_prefix(prefix)?;
        Some(Message {
            level,
            text,
            body: body.trim_start_matches(' '),
            time,
        })
    })
}

/// The instant a time text names, or `None` when it is malformed. Dates without a zone are
/// read as UTC; so are PHP's dates with a named zone (resolving `Europe/Paris` would need the
/// time-zone database, which a pure parser does not read), which is why the kubelet's
/// timestamp, always UTC, wins when present.
pub(super) fn parse_time(raw: RawTime<'_>) -> Option<Timestamp> {
    match raw {
        RawTime::Kubelet(s) => s.parse().ok(),
        RawTime::Php(s) => parse_php_date(s),
        RawTime::Nginx(s) => parse_nginx_date(s),
    }
}

/// `25-Nov-2026 16:00:05[.123456][ UTC]`.
fn parse_php_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[2] != b'-' || b[6] != b'-' || b[11] != b' ' {
        return None;
    }
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| m[..] == b[3..6])? + 1;
    let day = number(&b[0..2])?;
    let year = number(&b[7..11])?;
    utc(year, month as i64, day, &b[12..])
}

/// `2026/11/25 16:00:05`.
fn parse_nginx_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' {
        return None;
    }
    utc(
        number(&b[0..4])?,
        number(&b[5..7])?,
        number(&b[8..10])?,
        &b[11..],
    )
}

/// `HH:MM:SS[.fraction]` on the given day, in UTC.
fn utc(year: i64, month: i64, day: i64, clock: &[u8]) -> Option<Timestamp> {
    if clock.len() < 8 || clock[2] != b':' || clock[5] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        number(&clock[0..2])?,
        number(&clock[3..5])?,
        number(&clock[6..8])?,
    );
    let mut nanos = 0i64;
    if clock.get(8) == Some(&b'.') {
        let digits = &clock[9..];
        let n = digits
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
            .min(9);
        if n > 0 {
            nanos = number(&digits[..n])? * 10i64.pow(9 - n as u32);
        }
    }
    let dt = DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        i32::try_from(nanos).ok()?,
    )
    .ok()?;
    Offset::UTC.to_timestamp(dt).ok()
}

/// A short run of ASCII digits as a number; `None` if empty or anything else is in it.
fn number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0i64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}
