//! What a PHP message is and what identifies it: its [`ErrorKind`] and a signature that stays
//! the same from one occurrence to the next, from one PHP version to the next, and from old
//! pods to new.
//!
//! Owns classification and normalisation of one message's text; knows nothing of the wrappers
//! around it (`parse`) or of other lines (`events`).
//!
//! A signature keeps what tells one bug from another and drops what changes with every request
//! or release: file paths keep only their basename, line numbers go, numbers, ids, hex and
//! UUIDs become `N`, quoted values that are not identifiers become `"*"`. For the class-loading
//! kinds the signature is canonical, PHP 7's single quotes and PHP 8's double quotes alike:
//! `Class "App\Billing\LegacyTaxCalculator" not found`, `Failed opening required
//! 'removed_helpers.php'`. The missing name is the whole story there; where it was needed from
//! is left out so that one missing class is one signature.

use super::kind::ErrorKind;
use super::parse::Level;

/// Quoted text longer than this is not looked at as a quoted value: PHP quotes names and short
/// values, and an unmatched quote must not make the normaliser search a whole line.
const MAX_QUOTED: usize = 256;

/// The kind and signature of one message body (what follows `PHP Fatal error:`), the signature
/// at most `cap` bytes.
pub(super) fn classify(level: Level, body: &str, cap: usize) -> (ErrorKind, String) {
    let (head, file) = split_location(body);
    let (throwable, msg) = match uncaught(head) {
        Some((class, message)) => (Some(class), message),
        None => (None, head),
    };
    // The engine's plain `Error` is how PHP 7+ reports what PHP 5 wrote as a bare fatal.
    let engine = matches!(throwable, None | Some("Error"));
    if engine && let Some(found) = class_loading(msg, cap) {
        return found;
    }
    if let Some(found) = failed_to_open(msg, cap) {
        return found;
    }
    let kind = kind_of(level, throwable, msg);
    let mut sig = Normaliser::new(cap);
    if let Some(class) = throwable.filter(|_| !engine) {
        sig.raw("Uncaught ");
        sig.raw(class);
        if !msg.is_empty() {
            sig.raw(": ");
        }
    }
    sig.text(msg);
    if let Some(file) = file {
        sig.raw(" in ");
        sig.text(file);
    }
    (kind, sig.finish())
}

/// Whether a stack trace may follow the message: PHP 7+ prints one for uncaught throwables.
pub(super) fn awaits_trace(body: &str) -> bool {
    body.starts_with("Uncaught ")
}

fn kind_of(level: Level, throwable: Option<&str>, msg: &str) -> ErrorKind {
    match throwable {
        Some("TypeError" | "ArgumentCountError") => return ErrorKind::TypeError,
        Some("ParseError" | "CompileError") => return ErrorKind::ParseError,
        _ => {}
    }
    if level == Level::Parse {
        return ErrorKind::ParseError;
    }
    if matches!(throwable, None | Some("Error")) {
        if msg.starts_with("Call to undefined function ")
            || msg.starts_with("Call to undefined method ")
        {
            return ErrorKind::UndefinedFunction;
        }
        if msg.starts_with("Allowed memory size of ") || msg.starts_with("Out of memory") {
            return ErrorKind::MemoryExhausted;
        }
        if msg.starts_with("Maximum execution time of ") {
            return ErrorKind::MaxExecutionTime;
        }
        // PHP 5's catchable fatal for a wrongly typed argument.
        if level == Level::Fatal && msg.starts_with("Argument ") && msg.contains(" passed to ") {
            return ErrorKind::TypeError;
        }
    }
    match (throwable, level) {
        (Some(class), _) if class != "Error" => ErrorKind::UncaughtException,
        (_, Level::Fatal | Level::Parse) => ErrorKind::OtherFatal,
        (_, Level::Warning) => ErrorKind::Warning,
        (_, Level::Notice) => ErrorKind::Notice,
        (_, Level::Deprecated) => ErrorKind::Deprecated,
    }
}

/// `Uncaught RuntimeException: msg` → (`RuntimeException`, `msg`); PHP 5's
/// `Uncaught exception 'RuntimeException' with message 'msg'` likewise.
fn uncaught(head: &str) -> Option<(&str, &str)> {
    let rest = head.strip_prefix("Uncaught ")?;
    if let Some(quoted) = rest.strip_prefix("exception '") {
        let end = quoted.find('\'')?;
        let message = quoted[end + 1..]
            .strip_prefix(" with message '")
            .map(|m| m.strip_suffix('\'').unwrap_or(m))
            .unwrap_or("");
        return Some((&quoted[..end], message));
    }
    let n = rest.bytes().take_while(|&c| is_name_byte(c)).count();
    if n == 0 {
        return None;
    }
    let after = &rest[n..];
    if after.is_empty() {
        // PHP omits `: message` when the message is empty.
        return Some((&rest[..n], ""));
    }
    Some((&rest[..n], after.strip_prefix(": ")?))
}

/// The canonical signature of a class-loading message, if it is one.
fn class_loading(msg: &str, cap: usize) -> Option<(ErrorKind, String)> {
    const NOT_FOUND: [(&str, ErrorKind); 4] = [
        ("Class ", ErrorKind::ClassNotFound),
        ("Interface ", ErrorKind::InterfaceNotFound),
        ("Trait ", ErrorKind::TraitNotFound),
        ("Enum ", ErrorKind::ClassNotFound),
    ];
    for (word, kind) in NOT_FOUND {
        if let Some(rest) = msg.strip_prefix(word)
            && let Some(name) = quoted_before(rest, " not found")
        {
            return Some((kind, bounded(format!("{word}\"{name}\" not found"), cap)));
        }
    }
    const REQUIRED: &str = "Failed opening required '";
    if let Some(at) = msg.find(REQUIRED) {
        let rest = &msg[at + REQUIRED.len()..];
        let end = rest
            .find("' (include_path=")
            .or_else(|| rest.rfind('\''))
            .unwrap_or(rest.len());
        let file = basename(&rest[..end]);
        return Some((
            ErrorKind::FailedOpeningRequired,
            bounded(format!("Failed opening required '{file}'"), cap),
        ));
    }
    let redeclared = if let Some(rest) = msg.strip_prefix("Cannot declare ") {
        // PHP 7+: `Cannot declare class X, because the name is already in use`.
        declared_type(rest).map(|(what, name)| format!("Cannot redeclare {what} {name}"))
    } else if let Some(rest) = msg.strip_prefix("Cannot redeclare ") {
        // PHP 5: `Cannot redeclare class X`; functions: `Cannot redeclare f()` (PHP 8.3+:
        // `Cannot redeclare function f()`), methods `Cannot redeclare C::m()`.
        declared_type(rest)
            .map(|(what, name)| format!("Cannot redeclare {what} {name}"))
            .or_else(|| {
                let rest = rest
                    .strip_prefix("function ")
                    .or_else(|| rest.strip_prefix("method "))
                    .unwrap_or(rest);
                let n = rest
                    .bytes()
                    .take_while(|&c| is_name_byte(c) || c == b':')
                    .count();
                let name = &rest[..n];
                let what = if name.contains("::") {
                    "method"
                } else {
                    "function"
                };
                (n > 0).then(|| format!("Cannot redeclare {what} {name}()"))
            })
    } else {
        None
    };
    redeclared.map(|sig| (ErrorKind::CannotRedeclare, bounded(sig, cap)))
}

/// `class App\Foo, because ...` → (`class`, `App\Foo`).
fn declared_type(rest: &str) -> Option<(&'static str, &str)> {
    ["class", "interface", "trait", "enum"]
        .into_iter()
        .find_map(|what| {
            let name = rest.strip_prefix(what)?.strip_prefix(' ')?;
            let n = name.bytes().take_while(|&c| is_name_byte(c)).count();
            (n > 0).then(|| (what, &name[..n]))
        })
}

/// `"App\Foo" not found` or `'App\Foo' not found` → `App\Foo`.
fn quoted_before<'a>(rest: &'a str, suffix: &str) -> Option<&'a str> {
    let quote = *rest.as_bytes().first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let inner = &rest[1..];
    let mut at = 0;
    while let Some(found) = inner[at..].find(quote as char) {
        let end = at + found;
        if inner[end + 1..].starts_with(suffix) {
            return Some(&inner[..end]);
        }
        at = end + 1;
    }
    None
}

/// `require(/app/x.php): Failed to open stream: No such file or directory` (PHP 7: `failed`).
/// From `require` and `include` it says a file is missing; from `fopen` and the like it is an
/// ordinary warning, with the same canonical shape.
fn failed_to_open(msg: &str, cap: usize) -> Option<(ErrorKind, String)> {
    let open = msg.find('(')?;
    let function = &msg[..open];
    if function.is_empty() || !function.bytes().all(is_name_byte) {
        return None;
    }
    let close = open + msg[open..].find("): ")?;
    let after = &msg[close + 3..];
    let reason = after
        .strip_prefix("Failed to open stream")
        .or_else(|| after.strip_prefix("failed to open stream"))?;
    let kind = match function {
        "require" | "require_once" | "include" | "include_once" => ErrorKind::FailedToOpenStream,
        _ => ErrorKind::Warning,
    };
    let mut sig = Normaliser::new(cap);
    sig.raw(function);
    sig.raw("(");
    sig.text(basename(&msg[open + 1..close]));
    sig.raw("): Failed to open stream: ");
    sig.text(reason.strip_prefix(": ").unwrap_or(reason));
    Some((kind, sig.finish()))
}

/// `msg in /app/x.php:7` or `msg in /app/x.php on line 7` → (`msg`, `Some("x.php")`); the
/// message unchanged and `None` when it does not end with a location.
fn split_location(body: &str) -> (&str, Option<&str>) {
    let whole = body.trim_end();
    let (s, line_said) = match whole.rfind(" on line ") {
        Some(at) if is_digits(&whole[at + " on line ".len()..]) => (&whole[..at], true),
        _ => (whole, false),
    };
    let Some(at) = s.rfind(" in ") else {
        return (whole, None);
    };
    let mut file = &s[at + " in ".len()..];
    if !line_said {
        match file.rfind(':') {
            Some(colon) if is_digits(&file[colon + 1..]) => file = &file[..colon],
            _ => return (whole, None),
        }
    }
    let b = file.as_bytes();
    let looks_like_file = file.starts_with('/')
        || file.contains(".php")
        || file.starts_with("Unknown")
        || file.starts_with('[')
        || (b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\');
    if !looks_like_file {
        return (whole, None);
    }
    (&s[..at], Some(basename(file)))
}

/// `/var/www/html/index.php(20) : eval()'d code` → `index.php`.
fn basename(path: &str) -> &str {
    let path = match path.find('(') {
        Some(0) | None => path,
        Some(at) => &path[..at],
    };
    let path = path.trim_end_matches(['/', '\\']);
    match path.rfind(['/', '\\']) {
        Some(at) => &path[at + 1..],
        None => path,
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// A byte of a PHP name: `App\Billing\Currency`, `format_money`, `$string`.
fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'\\'
}

fn is_word_byte(c: u8) -> bool {
    is_name_byte(c) || c == b'$'
}

fn bounded(mut s: String, cap: usize) -> String {
    truncate(&mut s, cap);
    s
}

/// Cuts `s` to at most `cap` bytes, at a character boundary.
pub(super) fn truncate(s: &mut String, cap: usize) {
    if s.len() > cap {
        let end = floor_boundary(s, cap);
        s.truncate(end);
    }
}

/// The largest character boundary of `s` not after `at`.
pub(super) fn floor_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut end = at;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Builds a signature, never longer than its cap.
struct Normaliser {
    out: String,
    cap: usize,
}

impl Normaliser {
    fn new(cap: usize) -> Self {
        Normaliser {
            out: String::with_capacity(cap.min(256)),
            cap,
        }
    }

    fn full(&self) -> bool {
        self.out.len() >= self.cap
    }

    /// Appends text as it is, as much as fits.
    fn raw(&mut self, s: &str) {
        let room = self.cap.saturating_sub(self.out.len());
        self.out.push_str(&s[..floor_boundary(s, room)]);
    }

    /// Appends text normalised. Every cut falls on an ASCII byte, so on a char boundary.
    fn text(&mut self, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && !self.full() {
            let c = b[i];
            let prev = if i == 0 { b' ' } else { b[i - 1] };
            i = match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.spaces(b, i),
                b'"' | b'\'' if !prev.is_ascii_alphanumeric() => self.quote(s, i),
                b'(' if s[i..].starts_with("(include_path='") => self.include_path(s, i),
                b'/' if matches!(prev, b' ' | b'(' | b'=' | b'[')
                    && b.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) =>
                {
                    self.path(s, i)
                }
                c if is_word_byte(c) => self.word_or_uuid(s, i),
                c if c.is_ascii_control() => i + 1,
                _ => self.other(s, i),
            };
        }
    }

    /// The whitespace run at `i` as one space (none at the start); returns where it ends.
    fn spaces(&mut self, b: &[u8], mut i: usize) -> usize {
        if !self.out.is_empty() && !self.out.ends_with(' ') {
            self.out.push(' ');
        }
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    /// The quote opening at `i`: the quoted value, or the quote itself when it does not close;
    /// returns where what was read ends.
    fn quote(&mut self, s: &str, i: usize) -> usize {
        match closing_quote(s.as_bytes(), i) {
            Some(end) => {
                self.quoted(&s[i + 1..end]);
                end + 1
            }
            None => {
                self.raw(&s[i..=i]);
                i + 1
            }
        }
    }

    /// Configuration, not the error: `(include_path='.:/usr/share/php')` at `i` is left out,
    /// with the space before it; returns where it ends (the end of `s` if it does not close).
    fn include_path(&mut self, s: &str, i: usize) -> usize {
        match s[i..].find("')") {
            Some(end) => {
                if self.out.ends_with(' ') {
                    self.out.pop();
                }
                i + end + 2
            }
            None => s.len(),
        }
    }

    /// The path starting at `i` as its basename (`/` when it has none); returns where it ends.
    fn path(&mut self, s: &str, i: usize) -> usize {
        let b = s.as_bytes();
        let end = i + b[i..]
            .iter()
            .position(|c| {
                matches!(
                    c,
                    b' ' | b'\t' | b')' | b'(' | b',' | b';' | b'"' | b'\'' | b']' | b':'
                )
            })
            .unwrap_or(b.len() - i);
        let name = basename(&s[i..end]);
        self.raw(if name.is_empty() { "/" } else { name });
        end
    }

    /// The run of word bytes at `i`, or the UUID it starts, as [`Normaliser::word`] or `N`;
    /// returns where it ends.
    fn word_or_uuid(&mut self, s: &str, i: usize) -> usize {
        let b = s.as_bytes();
        let end = i + b[i..].iter().take_while(|&&c| is_word_byte(c)).count();
        let uuid_end = end + 28;
        if end - i == 8 && b.len() >= uuid_end && is_uuid(&b[i..uuid_end]) {
            self.out.push('N');
            uuid_end
        } else {
            self.word(&s[i..end]);
            end
        }
    }

    /// Any other run at `i`, as it is, up to a byte that starts something else (see
    /// [`special`]) or a non-graphic ASCII byte; returns where it ends.
    fn other(&mut self, s: &str, i: usize) -> usize {
        let b = s.as_bytes();
        let end = i
            + 1
            + b[i + 1..]
                .iter()
                .position(|&c| c.is_ascii() && !c.is_ascii_graphic() || special(c))
                .unwrap_or(b.len() - i - 1);
        self.raw(&s[i..end]);
        end
    }

    /// A run of name bytes: numbers, hex and `0x...` become `N`, names stay.
    fn word(&mut self, w: &str) {
        let b = w.as_bytes();
        let hex_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_hexdigit);
        let number = b.iter().all(u8::is_ascii_digit)
            || ((w.starts_with("0x") || w.starts_with("0X")) && hex_digits(&b[2..]))
            || (b.len() >= 8 && hex_digits(b) && b.iter().any(u8::is_ascii_digit));
        if number {
            self.out.push('N');
        } else {
            self.raw(w);
        }
    }

    /// A quoted value: names and identifiers stay (in double quotes, so PHP 7's single quotes
    /// and PHP 8's double quotes agree), paths keep their basename, anything else is a value.
    fn quoted(&mut self, inner: &str) {
        let b = inner.as_bytes();
        let name = !b.is_empty()
            && !b[0].is_ascii_digit()
            && b.iter().all(|&c| is_name_byte(c) || c == b':');
        self.out.push('"');
        if name {
            self.raw(inner);
        } else if inner.contains('/') {
            self.raw(basename(inner));
        } else {
            self.out.push('*');
        }
        if !self.full() {
            self.out.push('"');
        }
    }

    fn finish(mut self) -> String {
        truncate(&mut self.out, self.cap);
        let len = self.out.trim_end().len();
        self.out.truncate(len);
        self.out
    }
}

/// Bytes that end an "other" run in [`Normaliser::text`], because they start something else.
fn special(c: u8) -> bool {
    matches!(c, b'"' | b'\'' | b'/' | b'(') || is_word_byte(c)
}

/// Where the quote opened at `open` closes: the same quote followed by a non-alphanumeric byte
/// or the end, within [`MAX_QUOTED`] bytes.
fn closing_quote(b: &[u8], open: usize) -> Option<usize> {
    let quote = b[open];
    let limit = b.len().min(open + 1 + MAX_QUOTED);
    (open + 1..limit)
        .find(|&j| b[j] == quote && b.get(j + 1).is_none_or(|n| !n.is_ascii_alphanumeric()))
}

/// `123e4567-e89b-12d3-a456-426614174000`.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
