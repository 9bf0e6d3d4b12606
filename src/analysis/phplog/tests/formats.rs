//! Hand-written lines for what the real logs do not show: PHP 5 and 7 wording, the other
//! kinds, normalisation, nginx, kubelet timestamps, PHP's dated error_log, interleaved workers,
//! FPM's own lines and lines FPM split.

use std::collections::BTreeSet;

use super::*;
use crate::analysis::phplog::ErrorKind::*;
use crate::analysis::phplog::*;

/// PHP 7 (and PHP 5) wording of the same errors as the PHP 8.2 logs, written by hand from
/// those versions' message formats, each with its PHP 8 counterpart.
#[test]
fn php7_and_php5_wording_gives_the_php8_signatures() {
    let pairs = [
        (
            r"PHP Fatal error:  Uncaught Error: Class 'App\Billing\LegacyTaxCalculator' not found in /a/b.php:7",
            r#"PHP Fatal error:  Uncaught Error: Class "App\Billing\LegacyTaxCalculator" not found in /var/www/html/index.php:7"#,
        ),
        (
            r"PHP Fatal error:  Class 'App\Billing\RemovedBase' not found in /srv/app/src/Billing/Invoice.php on line 5",
            r#"PHP Fatal error:  Class "App\Billing\RemovedBase" not found in /var/www/html/src/Billing/Invoice.php on line 5"#,
        ),
        (
            r"PHP Fatal error:  Interface 'App\Billing\Payable' not found in /srv/app/src/Billing/Invoice.php on line 9",
            r#"PHP Fatal error:  Uncaught Error: Interface "App\Billing\Payable" not found in /var/www/html/index.php:8"#,
        ),
        (
            r"PHP Fatal error:  Trait 'App\Support\Loggable' not found in /srv/app/src/Job.php on line 4",
            r#"PHP Fatal error:  Trait "App\Support\Loggable" not found in /var/www/html/index.php(9) : eval()'d code on line 1"#,
        ),
        (
            "PHP Warning:  require(/srv/app/src/Billing/removed_helpers.php): failed to open stream: No such file or directory in /srv/app/index.php on line 12",
            "PHP Warning:  require(/var/www/html/src/Billing/removed_helpers.php): Failed to open stream: No such file or directory in /var/www/html/index.php on line 12",
        ),
        (
            "PHP Fatal error:  require(): Failed opening required '/srv/app/src/Billing/removed_helpers.php' (include_path='.:/usr/share/php') in /srv/app/index.php on line 12",
            "PHP Fatal error:  Uncaught Error: Failed opening required '/var/www/html/src/Billing/removed_helpers.php' (include_path='.:/usr/share/php') in /var/www/html/index.php:12",
        ),
        (
            r"PHP Fatal error:  Cannot redeclare class App\Billing\Invoice in /srv/app/src/Invoice.php on line 3",
            r"PHP Fatal error:  Cannot declare class App\Billing\Invoice, because the name is already in use in /var/www/html/src/Invoice.php on line 3",
        ),
        (
            "PHP Fatal error:  Cannot redeclare format_money() (previously declared in /srv/app/a.php:3) in /srv/app/b.php on line 9",
            "PHP Fatal error:  Cannot redeclare function format_money() (previously declared in /var/www/html/a.php:3) in /var/www/html/b.php on line 9",
        ),
        (
            r"PHP Fatal error:  Call to undefined function App\Billing\format_money() in /var/www/html/index.php on line 11",
            r"PHP Fatal error:  Uncaught Error: Call to undefined function App\Billing\format_money() in /var/www/html/index.php:11",
        ),
        (
            "PHP Fatal error:  Uncaught exception 'RuntimeException' with message 'Payment gateway timeout' in /var/www/html/index.php:18",
            "PHP Fatal error:  Uncaught RuntimeException: Payment gateway timeout in /var/www/html/index.php:18",
        ),
    ];
    for (old, php8) in pairs {
        let (old, php8) = (kind_and_signature(old), kind_and_signature(php8));
        assert_eq!(old, php8);
    }
    assert_eq!(
        kind_and_signature(pairs[0].0),
        (
            ClassNotFound,
            r#"Class "App\Billing\LegacyTaxCalculator" not found"#.to_owned()
        )
    );
    assert_eq!(
        kind_and_signature(pairs[6].0),
        (
            CannotRedeclare,
            r"Cannot redeclare class App\Billing\Invoice".to_owned()
        )
    );
    assert_eq!(
        kind_and_signature(pairs[7].0),
        (
            CannotRedeclare,
            "Cannot redeclare function format_money()".to_owned()
        )
    );
}

#[test]
fn php7_undecorated_log_regroups_like_the_php8_one() {
    // A PHP 7.4 FPM log (decoration off), written by hand from PHP 7.4's formats.
    let php7 = "\
[25-Nov-2026 16:00:18] NOTICE: fpm is running, pid 7
NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class 'App\\Billing\\Currency' not found in /var/www/html/index.php:10
Stack trace:
#0 {main}
  thrown in /var/www/html/index.php on line 10
NOTICE: PHP message: PHP Warning:  require(/var/www/html/src/Billing/removed_helpers.php): failed to open stream: No such file or directory in /var/www/html/index.php on line 12
NOTICE: PHP message: PHP Fatal error:  require(): Failed opening required '/var/www/html/src/Billing/removed_helpers.php' (include_path='.:/usr/share/php') in /var/www/html/index.php on line 12
";
    let found = parse_log(php7);
    let php8 = parse_log(super::real_logs::UNDECORATED_NEW);
    let wanted = |kind| {
        php8.iter()
            .find(|e| e.kind == kind)
            .unwrap()
            .signature
            .clone()
    };
    assert_eq!(
        keys(&found),
        BTreeSet::from([
            (
                ClassNotFound,
                r#"Class "App\Billing\Currency" not found"#.to_owned()
            ),
            (FailedToOpenStream, wanted(FailedToOpenStream)),
            (FailedOpeningRequired, wanted(FailedOpeningRequired)),
        ])
    );
    assert_eq!(found[0].trace_lines, 3);
}

#[test]
fn kinds_of_the_other_errors() {
    let cases = [
        (
            "PHP Fatal error:  Out of memory (allocated 2097152) (tried to allocate 4096 bytes) in /a/x.php on line 3",
            MemoryExhausted,
        ),
        (
            "PHP Parse error:  syntax error, unexpected token \"}\" in /a/x.php on line 3",
            ParseError,
        ),
        (
            "PHP Fatal error:  Uncaught ParseError: syntax error, unexpected end of file in /a/x.php:9",
            ParseError,
        ),
        (
            "PHP Fatal error:  Uncaught ArgumentCountError: Too few arguments to function f(), 0 passed in /a/x.php on line 3 and exactly 1 expected in /a/x.php:2",
            TypeError,
        ),
        (
            "PHP Catchable fatal error:  Argument 1 passed to f() must be an instance of Foo, string given, called in /a/x.php on line 3",
            TypeError,
        ),
        (
            "PHP Fatal error:  Uncaught Error: Call to a member function save() on null in /a/x.php:3",
            OtherFatal,
        ),
        (
            "PHP Fatal error:  Call to a member function save() on null in /a/x.php on line 3",
            OtherFatal,
        ),
        (
            "PHP Fatal error:  Uncaught DivisionByZeroError: Division by zero in /a/x.php:3",
            UncaughtException,
        ),
        (
            "PHP Fatal error:  Uncaught App\\Payment\\GatewayTimeout: slow in /a/x.php:3",
            UncaughtException,
        ),
        (
            "PHP Fatal error:  Uncaught Exception in /a/x.php:3",
            UncaughtException,
        ),
        (
            "PHP Fatal error:  Uncaught Error: Call to undefined method App\\Foo::bar() in /a/x.php:3",
            UndefinedFunction,
        ),
        (
            "PHP Fatal error:  Cannot redeclare App\\Foo::bar() in /a/x.php on line 3",
            CannotRedeclare,
        ),
        (
            "PHP Warning:  include(/a/partials/footer.php): Failed to open stream: No such file or directory in /a/x.php on line 3",
            FailedToOpenStream,
        ),
        (
            "PHP Warning:  include(): Failed opening '/a/partials/footer.php' for inclusion (include_path='.:/usr/share/php') in /a/x.php on line 3",
            Warning,
        ),
        (
            "PHP Warning:  fopen(/tmp/cache/1234.json): Failed to open stream: Permission denied in /a/x.php on line 3",
            Warning,
        ),
        (
            "PHP Fatal error:  Maximum execution time of 30+2 seconds exceeded (terminated) in Unknown on line 0",
            MaxExecutionTime,
        ),
        (
            "PHP Notice:  Undefined index: user in /a/x.php on line 3",
            Notice,
        ),
        (
            "PHP Strict Standards:  Non-static method Foo::bar() should not be called statically in /a/x.php on line 3",
            Notice,
        ),
        (
            "PHP Deprecated:  Creation of dynamic property Foo::$bar is deprecated in /a/x.php on line 3",
            Deprecated,
        ),
        (
            "PHP Recoverable fatal error:  Object of class Foo could not be converted to string in /a/x.php on line 3",
            OtherFatal,
        ),
        (
            "PHP Fatal error:  Enum \"App\\Status\" not found in /a/x.php on line 3",
            ClassNotFound,
        ),
    ];
    for (line, kind) in cases {
        assert_eq!(one(line).kind, kind, "{line}");
    }
}

#[test]
fn signatures_normalise_what_varies_and_keep_names() {
    let cases = [
        (
            "PHP Warning:  Undefined array key \"user_id\" in /var/www/releases/20261125/src/Cart.php on line 42",
            "Undefined array key \"user_id\" in Cart.php",
        ),
        (
            "PHP Warning:  Undefined array key 'john@example.com' in /a/Cart.php on line 42",
            "Undefined array key \"*\" in Cart.php",
        ),
        (
            "PHP Fatal error:  Uncaught App\\V2\\OrderMissing: order 123e4567-e89b-12d3-a456-426614174000 (id 0x7f3a, ref 5f3c4b2a1d9e8f77) not in shard 12 in /a/OrderRepo.php:77",
            "Uncaught App\\V2\\OrderMissing: order N (id N, ref N) not in shard N in OrderRepo.php",
        ),
        (
            "PHP Warning:  file_get_contents(http://10.0.0.12:8080/api/v1/users/42): Failed to open stream: HTTP request failed! HTTP/1.1 503 in /a/Client.php on line 3",
            "file_get_contents(N): Failed to open stream: HTTP request failed! HTTP/N.N N",
        ),
        (
            "PHP Fatal error:  Uncaught RuntimeException: can't   read /var/cache/app/tpl_9f.php, mode 0644 in /a/View.php:12",
            "Uncaught RuntimeException: can't read tpl_9f.php, mode N in View.php",
        ),
    ];
    for (line, signature) in cases {
        assert_eq!(one(line).signature, signature, "{line}");
    }
    // One occurrence to the next: other numbers, lines and release paths, same signature.
    assert_eq!(
        one("PHP Warning:  Undefined offset: 3 in /srv/releases/a1/src/Cart.php on line 10")
            .signature,
        one("PHP Warning:  Undefined offset: 17 in /srv/releases/b2/src/Cart.php on line 12")
            .signature,
    );
}

#[test]
fn nginx_fastcgi_lines_with_several_messages() {
    let found = events(&[
        "2026/11/25 16:00:05 [error] 12#12: *3 FastCGI sent in stderr: \"PHP message: PHP Warning:  Undefined array key 5 in /var/www/html/index.php on line 14; PHP message: PHP Deprecated:  deprecated thing in /var/www/html/index.php on line 13PHP message: PHP Fatal error:  Uncaught Error: Class \"App\\Billing\\Currency\" not found in /var/www/html/index.php:10",
        "Stack trace:",
        "#0 {main}",
        "  thrown in /var/www/html/index.php on line 10\" while reading response header from upstream, client: 10.0.0.7, server: _, request: \"GET / HTTP/1.1\", upstream: \"fastcgi://127.0.0.1:9000\", host: \"shop\"",
        "2026/11/25 16:00:06 [error] 12#12: *5 FastCGI sent in stderr: \"PHP message: PHP Fatal error:  Trait \"App\\Support\\Loggable\" not found in /var/www/html/index.php(9) : eval()'d code on line 1\" while reading response header from upstream, client: 10.0.0.7, server: _, request: \"GET /x HTTP/1.1\", upstream: \"fastcgi://127.0.0.1:9000\", host: \"shop\"",
        "2026/11/25 16:00:07 [error] 12#12: *6 FastCGI sent in stderr: \"PHP message: user 42 logged in\" while reading response header from upstream, client: 10.0.0.7, server: _",
        "2026/11/25 16:00:08 [error] 12#12: *7 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.7",
    ]);
    let got: Vec<_> = found
        .iter()
        .map(|e| (e.kind, e.signature.as_str(), e.trace_lines, e.time))
        .collect();
    assert_eq!(
        got,
        [
            (
                Warning,
                "Undefined array key N in index.php",
                0,
                ts("2026-11-25T16:00:05Z")
            ),
            (
                Deprecated,
                "deprecated thing in index.php",
                0,
                ts("2026-11-25T16:00:05Z")
            ),
            (
                ClassNotFound,
                r#"Class "App\Billing\Currency" not found"#,
                3,
                ts("2026-11-25T16:00:05Z")
            ),
            (
                TraitNotFound,
                r#"Trait "App\Support\Loggable" not found"#,
                0,
                ts("2026-11-25T16:00:06Z")
            ),
        ]
    );
    assert_eq!(
        found[3].first_line,
        r#"PHP Fatal error:  Trait "App\Support\Loggable" not found in /var/www/html/index.php(9) : eval()'d code on line 1"#
    );
}

#[test]
fn kubelet_timestamps_win_and_bad_ones_fall_back() {
    let k = "2026-11-25T16:00:05.123456789Z ";
    let lines = [
        format!(
            "{k}[25-Nov-2026 15:00:00] WARNING: [pool www] child 9 said into stderr: \"NOTICE: PHP message: PHP Warning:  Undefined array key 5 in /a/x.php on line 14\""
        ),
        format!("{k}NOTICE: PHP message: PHP Notice:  Undefined index: a in /a/x.php on line 3"),
        format!("{k}[25-Nov-2026 15:00:00 UTC] PHP Deprecated:  old in /a/x.php on line 3"),
        format!(
            "{k}2026/11/25 15:00:00 [error] 1#1: *1 FastCGI sent in stderr: \"PHP message: PHP Warning:  w in /a/x.php on line 3\" while reading upstream, client: 1.2.3.4"
        ),
        format!("{k}PHP Fatal error:  Uncaught Exception: boom in /a/x.php:3"),
        format!("{k}Stack trace:"),
        format!("{k}#0 {{main}}"),
        format!("{k}  thrown in /a/x.php on line 3"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let found = events(&lines);
    assert_eq!(found.len(), 5);
    for e in &found {
        assert_eq!(e.time, ts("2026-11-25T16:00:05.123456789Z"), "{e:?}");
    }
    assert_eq!(found[4].kind, UncaughtException);
    assert_eq!(found[4].trace_lines, 3);

    // A malformed kubelet prefix does not hide FPM's date.
    let e = one(
        "2026-13-45T99:00:00Z [25-Nov-2026 15:00:00] WARNING: [pool www] child 9 said into stderr: \"NOTICE: PHP message: PHP Warning:  w in /a/x.php on line 3\"",
    );
    assert_eq!(e.time, ts("2026-11-25T15:00:00Z"));
}

#[test]
fn php_error_log_dated_lines_regroup_by_adjacency() {
    let found = events(&[
        "[25-Nov-2026 15:39:43 UTC] PHP Fatal error:  Uncaught Exception: inner in /a/x.php:3",
        "Stack trace:",
        "#0 {main}",
        "",
        "Next RuntimeException: outer in /a/x.php:5",
        "Stack trace:",
        "#0 {main}",
        "  thrown in /a/x.php on line 5",
        "[25-Nov-2026 15:39:44.250 Europe/Paris] PHP Warning:  w in /a/x.php on line 3",
    ]);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].trace_lines, 6);
    assert_eq!(found[0].signature, "Uncaught Exception: inner in x.php");
    assert_eq!(found[0].time, ts("2026-11-25T15:39:43Z"));
    // A named zone is not resolved (no time-zone database in a pure parser): read as UTC.
    assert_eq!(found[1].time, ts("2026-11-25T15:39:44.25Z"));
}

#[test]
fn bare_trace_lines_join_only_an_adjacent_message() {
    let (found, stats) = events_with(
        ParserLimits::default(),
        &[
            "PHP Fatal error:  Uncaught Exception: a in /a/x.php:3",
            "GET /health 200",
            "Stack trace:",
            "#0 {main}",
            "  thrown in /a/x.php on line 3",
            "PHP Fatal error:  Uncaught Exception: b in /a/x.php:4",
            "#0 {main}",
        ],
    );
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].trace_lines, found[1].trace_lines), (0, 1));
    assert_eq!(stats.orphan_trace_lines, 3);
}

#[test]
fn interleaved_fpm_workers_stack_traces_regrouped_by_pid() {
    let lines = [
        decorated(
            1,
            r#"NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class "App\A" not found in /a/x.php:3"#,
        ),
        decorated(
            2,
            "NOTICE: PHP message: PHP Fatal error:  Uncaught LogicException: b in /a/y.php:4",
        ),
        decorated(1, "Stack trace:"),
        decorated(2, "Stack trace:"),
        decorated(
            3,
            "NOTICE: PHP message: PHP Warning:  Undefined variable $c in /a/z.php on line 5",
        ),
        decorated(2, "#0 /a/y.php(9): f()"),
        decorated(1, "#0 {main}"),
        decorated(2, "#1 {main}"),
        decorated(1, "  thrown in /a/x.php on line 3"),
        "[25-Nov-2026 16:00:05] NOTICE: [pool www] child 4 started".to_owned(),
        decorated(2, "  thrown in /a/y.php on line 4"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (found, stats) = events_with(ParserLimits::default(), &lines);
    let got: Vec<_> = found
        .iter()
        .map(|e| (e.kind, e.signature.as_str(), e.trace_lines))
        .collect();
    assert_eq!(
        got,
        [
            (Warning, "Undefined variable $c in z.php", 0),
            (ClassNotFound, r#"Class "App\A" not found"#, 3),
            (UncaughtException, "Uncaught LogicException: b in y.php", 4),
        ]
    );
    assert_eq!(stats.orphan_trace_lines, 0);
    assert_eq!(stats.fpm_lines, 1);
}

#[test]
fn a_worker_event_closes_on_its_next_message_other_output_or_exit() {
    let fatal = |pid| {
        decorated(
            pid,
            "NOTICE: PHP message: PHP Fatal error:  Uncaught Exception: x in /a/x.php:3",
        )
    };
    let lines = [
        fatal(1),
        decorated(1, "Stack trace:"),
        decorated(1, "NOTICE: PHP message: PHP Notice:  n in /a/x.php on line 3"),
        fatal(2),
        // Not a PHP message: could be the rest of a wrapped line, so it does not close.
        decorated(2, "{\"level\":\"info\",\"msg\":\"app log line\"}"),
        // An application's error_log() line is a message of its own, which does.
        decorated(2, "NOTICE: PHP message: retrying payment"),
        fatal(3),
        "[25-Nov-2026 16:00:06] WARNING: [pool www] child 3 exited on signal 11 (SIGSEGV) after 1.500000 seconds from start".to_owned(),
    ];
    let mut parser = LogParser::new(ParserLimits::default());
    let mut out = Vec::new();
    for line in &lines {
        parser.push_line(line, &mut out);
    }
    // All complete before `finish`: nothing waits for lines that will not come.
    assert_eq!(parser.pending(), 0);
    let got: Vec<_> = out.iter().map(|e| (e.kind, e.trace_lines)).collect();
    assert_eq!(
        got,
        [
            (UncaughtException, 1),
            (Notice, 0),
            (UncaughtException, 0),
            (UncaughtException, 0),
        ]
    );
}

#[test]
fn fpm_own_lines_and_application_output_are_not_php_errors() {
    let lines = [
        "[25-Nov-2026 16:00:03] NOTICE: fpm is running, pid 4515",
        "[25-Nov-2026 16:00:03] NOTICE: ready to handle connections",
        "[25-Nov-2026 16:00:03] NOTICE: systemd monitor interval set to 10000ms",
        "[25-Nov-2026 16:00:04] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
        "[25-Nov-2026 16:00:04] WARNING: [pool www] child 21461 exited on signal 9 (SIGKILL) after 12.3 seconds from start",
        "[25-Nov-2026 16:00:04] NOTICE: [pool www] child 21461 exited with code 0 after 3.1 seconds from start",
        "[25-Nov-2026 16:00:04] WARNING: [pool www] child 21, script '/var/www/html/index.php' (request: \"GET /index.php\") executing too slow (1.02 sec), logging",
        "[25-Nov-2026 16:00:04] ERROR: unable to read what child say: Bad file descriptor (9)",
        "[25-Nov-2026 16:00:10.123456] NOTICE: Terminating ...",
        "NOTICE: fpm is running, pid 1",
        "NOTICE: PHP message: user 42 paid invoice 7",
        "[25-Nov-2026 16:00:04] WARNING: [pool www] child 21 said into stderr: \"NOTICE: PHP message: Fatal error in payment provider, retrying\"",
        "[25-Nov-2026 16:00:04] WARNING: [pool www] child 21 said into stdout: \"PHP is great\"",
        "127.0.0.1 -  25/Nov/2026:16:00:05 +0000 \"GET /index.php\" 200",
        "PHP Version => 8.2.7",
    ];
    let (found, stats) = events_with(ParserLimits::default(), &lines);
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(stats.fpm_lines, 9);
    assert_eq!(stats.errors, 0);
}

#[test]
fn long_lines_split_by_fpm_make_one_event() {
    let long_message = "x".repeat(1200);
    let head = format!(
        "NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class \"App\\Big\" not found in {long_message}"
    );
    // FPM < 7.3 cut the line at its 1024-byte buffer and wrote `...` instead of the quote;
    // FPM 7.3+ wraps it: each piece quoted, the rest on lines of their own.
    let old_fpm = [
        format!(
            "[25-Nov-2026 16:00:05] WARNING: [pool www] child 7 said into stderr: \"{}...",
            &head[..950]
        ),
        decorated(7, &head[950..]),
        decorated(7, "Stack trace:"),
        decorated(7, "#0 {main}"),
        decorated(7, "  thrown in /a/x.php on line 3"),
    ];
    let new_fpm = [
        decorated(7, &head[..1000]),
        decorated(7, &format!("{} in /a/x.php:3", &head[1000..])),
        decorated(7, "Stack trace:"),
        decorated(7, "#0 {main}"),
        decorated(7, "  thrown in /a/x.php on line 3"),
    ];
    for lines in [old_fpm, new_fpm] {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (found, stats) = events_with(ParserLimits::default(), &lines);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].kind, ClassNotFound);
        assert_eq!(found[0].signature, r#"Class "App\Big" not found"#);
        assert_eq!(found[0].trace_lines, 3);
        assert_eq!(stats.orphan_trace_lines, 0);
    }
}

#[test]
fn error_kind_names_round_trip() {
    let names: BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), ErrorKind::ALL.len());
    for kind in ErrorKind::ALL {
        assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        let yaml = serde_json::to_string(&kind).unwrap();
        assert_eq!(yaml, format!("\"{}\"", kind.as_str()));
        assert_eq!(serde_json::from_str::<ErrorKind>(&yaml).unwrap(), kind);
    }
    let class_loading: Vec<_> = ErrorKind::ALL
        .into_iter()
        .filter(|k| k.is_class_loading())
        .collect();
    assert_eq!(
        class_loading,
        [
            ClassNotFound,
            InterfaceNotFound,
            TraitNotFound,
            FailedOpeningRequired,
            CannotRedeclare
        ]
    );
    let err = "class_missing".parse::<ErrorKind>().unwrap_err();
    assert_eq!(err, UnknownErrorKind("class_missing".to_owned()));
    assert!(
        err.to_string()
            .contains("class_not_found, interface_not_found")
    );
}

#[test]
fn line_endings_and_empty_input() {
    assert!(parse_log("").is_empty());
    let crlf = "NOTICE: PHP message: PHP Warning:  w in /a/x.php on line 3\r\n\r\n";
    assert_eq!(parse_log(crlf)[0].signature, "w in x.php");
    let mut parser = LogParser::new(ParserLimits::default());
    let mut out = Vec::new();
    parser.push_line("PHP Notice:  n in /a/x.php on line 3\n", &mut out);
    assert_eq!(out[0].first_line, "PHP Notice:  n in /a/x.php on line 3");
}
