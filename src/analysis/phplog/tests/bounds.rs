//! Hostile input: multi-byte characters at every cap, huge lines, random garbage, endless
//! traces and more workers than the parser keeps; nothing panics and nothing grows.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::analysis::phplog::ErrorKind::*;
use crate::analysis::phplog::*;

#[test]
fn multi_byte_characters_at_every_cap_are_cut_on_boundaries() {
    for filler in ["é", "€", "😀"] {
        for shift in 0..4 {
            let text = format!(
                "PHP Fatal error:  Uncaught RuntimeException: {}{}",
                "a".repeat(shift + 1),
                filler.repeat(300)
            );
            let (found, stats) = events_with(small(), &[text.as_str()]);
            assert_eq!(found.len(), 1);
            let e = &found[0];
            assert_eq!(e.kind, UncaughtException);
            assert!(e.first_line.len() <= 64 && e.first_line.len() > 60, "{e:?}");
            assert!(e.signature.len() <= 64 && e.signature.len() > 60, "{e:?}");
            assert!(e.signature.starts_with("Uncaught RuntimeException: a"));
            assert_eq!(stats.truncated_lines, 1);
        }
    }
    // A class name longer than the signature cap is cut inside its multi-byte characters.
    let long = format!(
        "PHP Fatal error:  Uncaught Error: Class \"App\\{}\" not found in /a/x.php:3",
        "é".repeat(40)
    );
    let e = events_with(small(), &[long.as_str()]).0.remove(0);
    assert_eq!(e.kind, ClassNotFound);
    assert_eq!(e.signature, format!("Class \"App\\{}", "é".repeat(26)));
}

#[test]
fn huge_lines_are_cut_before_work() {
    let huge = format!(
        "PHP Fatal error:  Uncaught Error: Class \"App\\X\" not found {}",
        "é".repeat(1 << 20)
    );
    let (found, stats) = events_with(
        ParserLimits::default(),
        &[huge.as_str(), &"#".repeat(1 << 21)],
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].signature, r#"Class "App\X" not found"#);
    assert!(found[0].first_line.len() <= 1024);
    assert_eq!(stats.truncated_lines, 2);
}

#[test]
fn garbage_never_panics_and_bounds_hold() {
    let mut rng = StdRng::seed_from_u64(7);
    let pieces = [
        "PHP message: ",
        "PHP Fatal error:  ",
        "PHP Warning: ",
        "Uncaught ",
        "Error: ",
        "Class \"",
        "Class '",
        "\" not found",
        " not found",
        " in /",
        "/a/b.php:",
        " on line ",
        "Stack trace:",
        "#0 ",
        "  thrown in ",
        "Next X: ",
        "[25-Nov-2026 16:00:05] ",
        "[25-Nov-2026 99:99:99 UTC] ",
        "WARNING: [pool www] child ",
        " said into stderr: \"",
        "2026/11/25 16:00:05 [error] 1#1: *1 FastCGI sent in stderr: \"",
        "\" while ",
        ", client: ",
        "2026-11-25T16:00:05.1Z ",
        "9999-99-99T99:99:99Z ",
        "Failed opening required '",
        "require(",
        "): failed to open stream",
        "Cannot redeclare ",
        "Cannot declare class ",
        "(include_path='",
        "')",
        "0x",
        "123e4567-e89b-12d3-a456-42661417400",
        "é",
        "😀",
        "\u{0}",
        "\t",
        " ",
        "'",
        "\"",
        "(",
        ")",
        "/",
        ":",
        ";",
        "...",
        "9",
        "N",
    ];
    let mut parser = LogParser::new(small());
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let mut line = String::new();
        for _ in 0..rng.random_range(0..24) {
            if rng.random_bool(0.1) {
                let bytes: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                line.push_str(&String::from_utf8_lossy(&bytes));
            } else {
                line.push_str(pieces[rng.random_range(0..pieces.len())]);
            }
        }
        parser.push_line(&line, &mut out);
        assert!(parser.pending() <= 1 + 4);
    }
    parser.finish(&mut out);
    assert!(!out.is_empty(), "the pieces make some messages");
    for e in &out {
        assert!(e.first_line.len() <= 64, "{e:?}");
        assert!(e.signature.len() <= 64, "{e:?}");
        assert!(e.trace_lines <= 5, "{e:?}");
    }
}

#[test]
fn pending_state_stays_bounded() {
    let limits = small();
    let mut parser = LogParser::new(limits);
    let mut out = Vec::new();
    for pid in 0..10_000u32 {
        let line = decorated(
            pid,
            "NOTICE: PHP message: PHP Fatal error:  Uncaught Exception: x in /a/x.php:3",
        );
        parser.push_line(&line, &mut out);
        parser.push_line(&decorated(pid, "Stack trace:"), &mut out);
        assert!(parser.pending() <= limits.max_pending_children);
    }
    assert_eq!(parser.stats().evicted, 10_000 - 4);
    assert_eq!(out.len(), 10_000 - 4);
    // A trace that never ends is counted up to the cap only, and kept as one event.
    for _ in 0..100_000 {
        parser.push_line("#1 /a/x.php(3): f()", &mut out);
        parser.push_line(&decorated(9_999, "#1 /a/x.php(3): f()"), &mut out);
    }
    assert_eq!(out.len(), 10_000 - 4);
    parser.finish(&mut out);
    assert_eq!(out.len(), 10_000);
    assert!(out.iter().all(|e| e.kind == UncaughtException));
    assert_eq!(out.last().unwrap().trace_lines, 5);
    assert_eq!(parser.pending(), 0);
}

#[test]
fn every_format_survives_a_multi_byte_character_anywhere_and_a_cut_anywhere() {
    let samples = [
        "2026-11-25T16:00:05.123456789Z [25-Nov-2026 16:00:05] WARNING: [pool www] child 4517 said into stderr: \"NOTICE: PHP message: PHP Fatal error:  Uncaught Error: Class \"App\\A\" not found in /a/x.php:7\"",
        "[25-Nov-2026 16:00:05 UTC] PHP Warning:  require(/a/b.php): Failed to open stream: No such file or directory in /a/x.php on line 3",
        "2026/11/25 16:00:05 [error] 12#12: *3 FastCGI sent in stderr: \"PHP message: PHP Warning:  w in /a/x.php on line 3; PHP message: PHP Notice:  n in /a/x.php on line 4\" while reading upstream, client: 10.0.0.7",
        "NOTICE: PHP message: PHP Fatal error:  Cannot declare class App\\Foo, because the name is already in use in /a/x.php on line 3",
        "PHP Fatal error:  Uncaught exception 'E' with message 'id 123e4567-e89b-12d3-a456-426614174000 (include_path='.:/x') 0x1f' in /a/x.php:3",
    ];
    let expected = [1, 1, 2, 1, 1];
    for (sample, expected) in samples.into_iter().zip(expected) {
        assert_eq!(events(&[sample]).len(), expected, "{sample}");
        for at in (0..=sample.len()).filter(|&at| sample.is_char_boundary(at)) {
            let (found, _) = events_with(small(), &[&sample[..at]]);
            assert!(found.len() <= expected, "{}: {found:#?}", &sample[..at]);
        }
        for inserted in ["é", "€", "😀", "\u{0}"] {
            for at in (0..=sample.len()).filter(|&at| sample.is_char_boundary(at)) {
                let line = format!("{}{inserted}{}", &sample[..at], &sample[at..]);
                let (found, _) = events_with(small(), &[line.as_str()]);
                assert!(found.len() <= expected, "{line}: {found:#?}");
                for e in &found {
                    assert!(e.first_line.len() <= 64 && e.signature.len() <= 64);
                }
            }
        }
    }
}
