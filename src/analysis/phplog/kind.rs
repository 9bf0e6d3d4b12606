//! The kinds of PHP error the parser tells apart, under the names rules use in YAML.
//!
//! Owns [`ErrorKind`] and its string form. Deciding which kind a message is belongs to
//! `signature`; this file only names the kinds, so a rule can count exactly what it asks for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of PHP error a message reports.
///
/// The class-loading kinds come first: they are what a release that forgot a file or a class
/// produces, and what old pods of the same service do not. The rest are kept apart so that a
/// rule counting, say, memory exhaustion does not also count every warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// `Class "X" not found`, uncaught or at declaration time; a missing enum is reported so too.
    ClassNotFound,
    /// `Interface "X" not found`.
    InterfaceNotFound,
    /// `Trait "X" not found`.
    TraitNotFound,
    /// `Failed opening required 'file'`: a `require` of a file that is not there.
    FailedOpeningRequired,
    /// `require(file): Failed to open stream`, the warning PHP writes just before the
    /// `Failed opening required` fatal (and alone for a missing `include`).
    FailedToOpenStream,
    /// `Cannot declare class X, because the name is already in use`, `Cannot redeclare ...`.
    CannotRedeclare,
    /// `Allowed memory size of N bytes exhausted`, `Out of memory`.
    MemoryExhausted,
    /// `Maximum execution time of N seconds exceeded`.
    MaxExecutionTime,
    /// An uncaught exception, or an uncaught throwable of any class but the engine's plain
    /// `Error`: `Uncaught RuntimeException: ...`, `Uncaught App\PaymentFailed: ...`,
    /// `Uncaught DivisionByZeroError: ...`. A plain `Uncaught Error: ...` is the engine's fatal
    /// that PHP 5 reported without "Uncaught" (`Call to a member function ... on null`), so it
    /// is classified by its message like PHP 5's, [`ErrorKind::OtherFatal`] when nothing more
    /// specific fits.
    UncaughtException,
    /// `Uncaught TypeError`, `Uncaught ArgumentCountError` (a subclass of `TypeError`), and
    /// PHP 5's `Argument N passed to f() must be ...`.
    TypeError,
    /// `Call to undefined function f()`, `Call to undefined method C::m()`.
    UndefinedFunction,
    /// `PHP Parse error:` and `Uncaught ParseError`.
    ParseError,
    /// A fatal error none of the kinds above describes.
    OtherFatal,
    /// `PHP Warning:` not described by a kind above.
    Warning,
    /// `PHP Notice:` (and PHP 5's `Strict Standards:`).
    Notice,
    /// `PHP Deprecated:`.
    Deprecated,
}

/// A name that is not one of [`ErrorKind::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PHP error kind {0:?} (expected one of: {names})", names = ErrorKind::names())]
pub struct UnknownErrorKind(pub String);

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::ClassNotFound,
        ErrorKind::InterfaceNotFound,
        ErrorKind::TraitNotFound,
        ErrorKind::FailedOpeningRequired,
        ErrorKind::FailedToOpenStream,
        ErrorKind::CannotRedeclare,
        ErrorKind::MemoryExhausted,
        ErrorKind::MaxExecutionTime,
        ErrorKind::UncaughtException,
        ErrorKind::TypeError,
        ErrorKind::UndefinedFunction,
        ErrorKind::ParseError,
        ErrorKind::OtherFatal,
        ErrorKind::Warning,
        ErrorKind::Notice,
        ErrorKind::Deprecated,
    ];

    /// The snake_case name, as serde writes it and rules list it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ClassNotFound => "class_not_found",
            ErrorKind::InterfaceNotFound => "interface_not_found",
            ErrorKind::TraitNotFound => "trait_not_found",
            ErrorKind::FailedOpeningRequired => "failed_opening_required",
            ErrorKind::FailedToOpenStream => "failed_to_open_stream",
            ErrorKind::CannotRedeclare => "cannot_redeclare",
            ErrorKind::MemoryExhausted => "memory_exhausted",
            ErrorKind::MaxExecutionTime => "max_execution_time",
            ErrorKind::UncaughtException => "uncaught_exception",
            ErrorKind::TypeError => "type_error",
            ErrorKind::UndefinedFunction => "undefined_function",
            ErrorKind::ParseError => "parse_error",
            ErrorKind::OtherFatal => "other_fatal",
            ErrorKind::Warning => "warning",
            ErrorKind::Notice => "notice",
            ErrorKind::Deprecated => "deprecated",
        }
    }

    /// Whether the error says code could not be loaded or was loaded twice: a class, interface
    /// or trait not found, a required file missing, a name declared twice. These are what a
    /// release missing a file produces; the `Failed to open stream` warning is left out because
    /// it also comes from `include`, which PHP survives.
    pub fn is_class_loading(self) -> bool {
        matches!(
            self,
            ErrorKind::ClassNotFound
                | ErrorKind::InterfaceNotFound
                | ErrorKind::TraitNotFound
                | ErrorKind::FailedOpeningRequired
                | ErrorKind::CannotRedeclare
        )
    }

    fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_owned()))
    }
}
