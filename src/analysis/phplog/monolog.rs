//! Monolog's JSON lines: what Laravel and Symfony write when they catch an error and log it
//! (`JsonFormatter`, one object per line), read as the PHP message PHP itself would have
//! written had the error gone uncaught, so that the rest of the parser classifies it as any
//! other (`Class "App\Foo" not found` is a class-loading error however it reached the log).
//!
//! Owns the recognition of such a line and its translation. Only records at `ERROR` or above
//! (Monolog level 400 and up) are PHP errors; below, they are an application's own logging and
//! left alone like any `error_log()` line. Nothing here fails: a line that is not a Monolog
//! record is left as it is.

use serde::Deserialize;

/// Monolog's level number for `ERROR`; `CRITICAL`, `ALERT` and `EMERGENCY` are above.
const ERROR: u16 = 400;

#[derive(Deserialize)]
struct Record {
    message: String,
    #[serde(default)]
    level: Option<u16>,
    #[serde(default)]
    level_name: Option<String>,
    #[serde(default)]
    datetime: Option<String>,
    #[serde(default)]
    context: Option<Context>,
}

#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    exception: Option<Exception>,
}

/// An exception as Monolog's normaliser writes it: `file` is `path:line`.
#[derive(Deserialize)]
struct Exception {
    class: String,
    message: String,
    #[serde(default)]
    file: Option<String>,
}

impl Record {
    fn is_error(&self) -> bool {
        match (self.level, self.level_name.as_deref()) {
            (Some(level), _) => level >= ERROR,
            (None, Some(name)) => matches!(
                name.to_ascii_uppercase().as_str(),
                "ERROR" | "CRITICAL" | "ALERT" | "EMERGENCY"
            ),
            (None, None) => false,
        }
    }

    /// The message PHP would have written for it.
    fn as_php(&self) -> String {
        match self.context.as_ref().and_then(|c| c.exception.as_ref()) {
            Some(e) => {
                let place = e
                    .file
                    .as_deref()
                    .map_or(String::new(), |f| format!(" in {f}"));
                format!(
                    "PHP Fatal error:  Uncaught {}: {}{place}",
                    e.class, e.message
                )
            }
            None => format!("PHP Fatal error:  {}", self.message),
        }
    }
}

/// The PHP line a Monolog JSON line stands for (`prefix` is what came before the object: the
/// kubelet's timestamp, if any; without one, Monolog's own `datetime` takes its place), or
/// `None` for any other line.
pub(super) fn as_php_line(line: &str) -> Option<String> {
    let start = line.find('{')?;
    let (prefix, object) = line.split_at(start);
    // Only an object that is the whole rest of the line, after at most a timestamp; the
    // cheap tests first, since every line of a log comes here.
    let object = object.trim_end();
    if prefix.len() > 40 || prefix.contains('"') || !object.ends_with('}') {
        return None;
    }
    let record: Record = serde_json::from_str(object).ok()?;
    if !record.is_error() {
        return None;
    }
    let php = record.as_php();
    let prefix = prefix.trim();
    Some(match (prefix.is_empty(), record.datetime.as_deref()) {
        (false, _) => format!("{prefix} {php}"),
        (true, Some(at)) if at.parse::<jiff::Timestamp>().is_ok() => format!("{at} {php}"),
        (true, _) => php,
    })
}

#[cfg(test)]
mod tests {
    use super::as_php_line;
    use crate::analysis::phplog::{ErrorKind, parse_log};

    /// Laravel's `json` log channel, as Monolog's `JsonFormatter` writes a caught `Error`
    /// (the exception normalised to class, message, code and `file:line`; the trace cut here).
    const LARAVEL: &str = r#"2026-11-25T16:00:05.123456789Z {"message":"Class \"App\\Billing\\LegacyTaxCalculator\" not found","context":{"exception":{"class":"Error","message":"Class \"App\\Billing\\LegacyTaxCalculator\" not found","code":0,"file":"/var/www/html/app/Http/Controllers/InvoiceController.php:42","trace":["/var/www/html/vendor/laravel/framework/src/Illuminate/Routing/Controller.php:54"]}},"level":500,"level_name":"CRITICAL","channel":"production","datetime":"2026-11-25T16:00:05.123456+00:00","extra":{}}"#;

    #[test]
    fn a_class_error_laravel_caught_and_logged_is_a_class_loading_error() {
        let errors = parse_log(LARAVEL);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.kind, ErrorKind::ClassNotFound);
        assert!(
            e.signature.contains(r"App\Billing\LegacyTaxCalculator"),
            "{}",
            e.signature
        );
        assert_eq!(
            e.time.map(|t| t.to_string()).as_deref(),
            Some("2026-11-25T16:00:05.123456789Z")
        );
        // The same class error from PHP-FPM itself has the same signature: old pods that
        // printed it raw and new pods that log it through Monolog compare.
        let raw = parse_log(
            r#"PHP Fatal error:  Uncaught Error: Class "App\Billing\LegacyTaxCalculator" not found in /var/www/html/index.php:7"#,
        );
        assert_eq!(raw[0].signature, e.signature);
    }

    #[test]
    fn without_a_kubelet_timestamp_monologs_own_time_is_taken() {
        let line = LARAVEL.split_once(' ').unwrap().1;
        let errors = parse_log(line);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].time.map(|t| t.to_string()).as_deref(),
            Some("2026-11-25T16:00:05.123456Z")
        );
    }

    #[test]
    fn only_records_at_error_or_above_are_php_errors() {
        let info = r#"{"message":"Class \"App\\Foo\" not found in cache, rebuilding","context":{},"level":200,"level_name":"INFO","channel":"app","datetime":"2026-11-25T16:00:05+00:00","extra":{}}"#;
        assert!(as_php_line(info).is_none());
        assert!(parse_log(info).is_empty());
        // Symfony's Monolog with only a level name, and no exception in the context.
        let named = r#"{"message":"Interface \"App\\Billing\\Payable\" not found","context":{},"level_name":"ERROR","channel":"request","datetime":"2026-11-25T16:00:05+00:00"}"#;
        let errors = parse_log(named);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, ErrorKind::InterfaceNotFound);
    }

    #[test]
    fn other_lines_are_left_alone() {
        for line in [
            "",
            "GET /index.php 200",
            r#"{"not":"monolog"}"#,
            r#"{"message":"x","level":"high"}"#,
            r#"{"message":"half"#,
            r#"[25-Nov-2026 16:00:05] WARNING: [pool www] child 12 said into stderr: "{\"message\":\"x\",\"level\":500}""#,
        ] {
            assert!(as_php_line(line).is_none(), "{line}");
        }
    }
}
