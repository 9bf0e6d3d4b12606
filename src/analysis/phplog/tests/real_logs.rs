//! Every error of the real PHP-FPM 8.2 logs, found with its kind, signature and trace, and the
//! new release's signatures against the old's.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::analysis::phplog::ErrorKind::*;
use crate::analysis::phplog::*;

pub(super) const DECORATED_NEW: &str = include_str!(
    "../../../../tests/data/php-fpm-logs/fpm8.2-decorated-new-release-missing-classes.log"
);
pub(super) const DECORATED_OLD: &str =
    include_str!("../../../../tests/data/php-fpm-logs/fpm8.2-decorated-old-release.log");
pub(super) const UNDECORATED_NEW: &str = include_str!(
    "../../../../tests/data/php-fpm-logs/fpm8.2-undecorated-new-release-missing-classes.log"
);
pub(super) const UNDECORATED_OLD: &str =
    include_str!("../../../../tests/data/php-fpm-logs/fpm8.2-undecorated-old-release.log");

/// (kind, signature, trace lines) of every error both releases hit, in log order.
fn shared_errors() -> Vec<(ErrorKind, &'static str, u32)> {
    vec![
        (
            UndefinedFunction,
            r"Call to undefined function App\Billing\format_money() in index.php",
            3,
        ),
        (Deprecated, "deprecated thing in index.php", 0),
        (Warning, "Undefined array key N in index.php", 0),
        (
            MemoryExhausted,
            "Allowed memory size of N bytes exhausted (tried to allocate N bytes) in index.php",
            0,
        ),
        (
            MaxExecutionTime,
            "Maximum execution time of N seconds exceeded in index.php",
            0,
        ),
        (
            UncaughtException,
            "Uncaught RuntimeException: Payment gateway timeout in index.php",
            3,
        ),
        (
            TypeError,
            "Uncaught TypeError: strlen(): Argument #N ($string) must be of type string, array given in index.php",
            3,
        ),
    ]
}

/// What the new release adds, as the data's README lists it (plus the `Failed to open stream`
/// warning PHP writes before `Failed opening required`).
fn missing_in_new() -> Vec<(ErrorKind, &'static str, u32)> {
    vec![
        (
            ClassNotFound,
            r#"Class "App\Billing\LegacyTaxCalculator" not found"#,
            3,
        ),
        (
            InterfaceNotFound,
            r#"Interface "App\Billing\Payable" not found"#,
            3,
        ),
        (
            TraitNotFound,
            r#"Trait "App\Support\Loggable" not found"#,
            0,
        ),
        (
            ClassNotFound,
            r#"Class "App\Billing\Currency" not found"#,
            3,
        ),
        (
            FailedToOpenStream,
            "require(removed_helpers.php): Failed to open stream: No such file or directory",
            0,
        ),
        (
            FailedOpeningRequired,
            "Failed opening required 'removed_helpers.php'",
            3,
        ),
        (
            ClassNotFound,
            r#"Class "App\Billing\RemovedBase" not found"#,
            4,
        ),
    ]
}

fn triples(errors: &[PhpError]) -> BTreeSet<(ErrorKind, String, u32)> {
    errors
        .iter()
        .map(|e| (e.kind, e.signature.clone(), e.trace_lines))
        .collect()
}

fn owned(expected: Vec<(ErrorKind, &str, u32)>) -> BTreeSet<(ErrorKind, String, u32)> {
    expected
        .into_iter()
        .map(|(k, s, t)| (k, s.to_owned(), t))
        .collect()
}

#[test]
fn real_logs_every_error_found_with_its_kind_signature_and_trace() {
    let old = owned(shared_errors());
    let new = owned(
        shared_errors()
            .into_iter()
            .chain(missing_in_new())
            .collect(),
    );
    for (name, text, expected, total) in [
        ("decorated old", DECORATED_OLD, &old, 7),
        ("undecorated old", UNDECORATED_OLD, &old, 7),
        ("decorated new", DECORATED_NEW, &new, 14),
        ("undecorated new", UNDECORATED_NEW, &new, 14),
    ] {
        let found = parse_log(text);
        assert_eq!(found.len(), total, "{name}: {found:#?}");
        assert_eq!(&triples(&found), expected, "{name}");
        for e in &found {
            assert!(e.first_line.starts_with("PHP "), "{name}: {e:?}");
        }
    }
}

#[test]
fn real_logs_exact_counts_per_kind() {
    let old: BTreeMap<ErrorKind, usize> = [
        (UndefinedFunction, 1),
        (Deprecated, 1),
        (Warning, 1),
        (MemoryExhausted, 1),
        (MaxExecutionTime, 1),
        (UncaughtException, 1),
        (TypeError, 1),
    ]
    .into();
    let mut new = old.clone();
    new.extend([
        (ClassNotFound, 3),
        (InterfaceNotFound, 1),
        (TraitNotFound, 1),
        (FailedToOpenStream, 1),
        (FailedOpeningRequired, 1),
    ]);
    assert_eq!(counts(&parse_log(DECORATED_OLD)), old);
    assert_eq!(counts(&parse_log(UNDECORATED_OLD)), old);
    assert_eq!(counts(&parse_log(DECORATED_NEW)), new);
    assert_eq!(counts(&parse_log(UNDECORATED_NEW)), new);
}

#[test]
fn real_logs_signature_diff_singles_out_the_class_loading_errors() {
    for (new, old) in [
        (DECORATED_NEW, DECORATED_OLD),
        (UNDECORATED_NEW, UNDECORATED_OLD),
        (DECORATED_NEW, UNDECORATED_OLD),
    ] {
        let (new, old) = (keys(&parse_log(new)), keys(&parse_log(old)));
        assert!(
            old.is_subset(&new),
            "every old error has the same signature in the new pods"
        );
        let only_new: BTreeSet<_> = new.difference(&old).cloned().collect();
        let class_loading: BTreeSet<_> = only_new
            .iter()
            .filter(|(kind, _)| kind.is_class_loading())
            .map(|(_, signature)| signature.as_str())
            .collect();
        assert_eq!(
            class_loading,
            BTreeSet::from([
                r#"Class "App\Billing\LegacyTaxCalculator" not found"#,
                r#"Interface "App\Billing\Payable" not found"#,
                r#"Trait "App\Support\Loggable" not found"#,
                r#"Class "App\Billing\Currency" not found"#,
                r#"Class "App\Billing\RemovedBase" not found"#,
                "Failed opening required 'removed_helpers.php'",
            ])
        );
        // The one new signature that is not class loading is the warning about the same file.
        let rest: Vec<_> = only_new
            .iter()
            .filter(|(kind, _)| !kind.is_class_loading())
            .collect();
        assert_eq!(
            rest,
            [&(
                FailedToOpenStream,
                "require(removed_helpers.php): Failed to open stream: No such file or directory"
                    .to_owned()
            )]
        );
    }
}

#[test]
fn real_logs_fpm_lines_counted_not_reported_and_no_trace_line_lost() {
    for text in [
        DECORATED_NEW,
        DECORATED_OLD,
        UNDECORATED_NEW,
        UNDECORATED_OLD,
    ] {
        let lines: Vec<&str> = text.lines().collect();
        let (_, stats) = events_with(ParserLimits::default(), &lines);
        assert_eq!(stats.fpm_lines, 5, "start-up and shut-down notices");
        assert_eq!(stats.orphan_trace_lines, 0);
        assert_eq!(stats.evicted, 0);
        assert_eq!(stats.lines, lines.len() as u64);
    }
}

#[test]
fn real_logs_times_from_fpm_dates_only_where_fpm_dated_the_line() {
    let found = parse_log(DECORATED_NEW);
    assert_eq!(found[0].time, ts("2026-11-25T16:00:05Z"));
    let max_time = found.iter().find(|e| e.kind == MaxExecutionTime).unwrap();
    assert_eq!(max_time.time, ts("2026-11-25T16:00:07Z"));
    assert!(parse_log(UNDECORATED_NEW).iter().all(|e| e.time.is_none()));
}
