use super::*;

fn parse(text: &str) -> Result<RuleSet, RuleErrors> {
    RuleSet::from_sources(&[(PathBuf::from("team.yaml"), text.to_string())])
}

const MINIMAL: &str = r#"
version: 1
rules:
  - name: cpu
    action: pause
    check:
      absolute:
        query: 'up{pod=~"{{ pods }}"}'
        threshold: 0.9
"#;

#[test]
fn bundled_defaults_load_and_cover_the_documented_rules() {
    let set = RuleSet::defaults();
    let names: Vec<_> = set.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "class-loading-errors",
            "php-error-rate",
            "crash-looping",
            "cpu-saturation",
            "cpu-throttling",
            "cpu-per-request"
        ]
    );
    let class = set.get("class-loading-errors").unwrap();
    assert_eq!(class.action, Action::Rollback);
    assert!(
        matches!(&class.check, Check::ErrorRate(c) if c.errors.as_str().contains("class_not_found"))
    );
}

/// Both bundled files pass every check, PromQL included, as `rules lint rules` runs them.
#[test]
fn bundled_rule_files_lint_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let set = RuleSet::load(&[dir.join("default.yaml"), dir.join("php-logs.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.files.len(), 2);
}

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let set = parse(MINIMAL).unwrap();
    let rule = &set.rules[0];
    assert_eq!(rule.window.to_string(), "5m");
    assert_eq!(rule.consecutive, 2);
    assert_eq!(rule.on_missing, OnMissing::Inconclusive);
    let Check::Absolute(a) = &rule.check else {
        panic!("absolute expected")
    };
    assert_eq!(
        (a.quantile, a.min_samples, a.unless_old_too),
        (0.5, 10, true)
    );
}

#[test]
fn unknown_keys_are_errors_with_file_and_line() {
    let text = MINIMAL.replace("threshold: 0.9", "threshold: 0.9\n        treshold: 0.8");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.0.len(), 1);
    let e = &err.0[0];
    assert_eq!(e.file, PathBuf::from("team.yaml"));
    assert_eq!(e.line, Some(10), "{e}");
    assert_eq!(e.rule.as_deref(), Some("cpu"));
    assert!(e.message.contains("treshold"), "{e}");
    assert!(
        e.to_string().starts_with("team.yaml:10: rule `cpu`: "),
        "{e}"
    );
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let text = "version: 1\nrules:\n  - name: a\n    action: [pause\n";
    let e = &parse(text).unwrap_err().0[0];
    assert!(e.line.is_some(), "{e}");
    assert!(e.to_string().starts_with("team.yaml:"), "{e}");
}

#[test]
fn bad_templates_are_refused_when_loading() {
    let text = MINIMAL.replace(r#"pod=~"{{ pods }}""#, r#"pod="{{ pods }}""#);
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("=~"), "{e}");
    let text = MINIMAL.replace("{{ pods }}", "{{ pod }}");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("unknown variable"), "{e}");
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = r#"
version: 1
rules:
  - name: Bad Name
    action: rollback
    consecutive: 0
    window: 1m
    check:
      compare:
        query: 'x{pod=~"{{ pods }}"}'
        step: 2m
        alpha: 2
        min_ratio: 0.5
        min_drift_pairs: 1
        unknown_drift: 0.9
  - name: no-history
    action: pause
    check:
      compare:
        query: 'x{pod=~"{{ pods }}"}'
        history: false
        min_ratio: 1.2
        unknown_drift: 1.1
  - name: ok
    action: warn
    check:
      error_rate:
        errors: 'e'
        requests: 'r{pod=~"{{ pods }}"}[{{ interval }}]'
        min_rate_increase: 5
        burst_share: 1.5
        history_pairing: 0.5
"#;
    let errs = parse(text).unwrap_err().0;
    let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let joined = all.join("\n");
    for needle in [
        "name must be",
        "consecutive",
        "alpha",
        "min_ratio",
        "step",
        "min_rate_increase",
        "burst_share must be above 0 and at most 1 (got 1.5)",
        "history_pairing",
        "min_drift_pairs must be at least 2",
        "compare.unknown_drift must be a number of at least 1, got 0.9",
        "compare.unknown_drift must be a number of at least 1.2, got 1.1",
        "unknown_drift applies to the comparison with the old version's history, which history: false turns off",
    ] {
        assert!(joined.contains(needle), "missing {needle} in\n{joined}");
    }
    assert!(
        all.iter().any(|e| e.contains("rule `Bad Name`")),
        "{joined}"
    );
    assert!(all.iter().any(|e| e.contains("rule `ok`")), "{joined}");
}

#[test]
fn duplicate_names_and_versions() {
    let two = format!(
        "{MINIMAL}\n  - name: cpu\n    action: warn\n    check:\n      absolute:\n        query: up{{pod=~\"{{{{ pods }}}}\"}}\n        threshold: 1\n"
    );
    let e = parse(&two).unwrap_err().to_string();
    assert!(e.contains("already loaded"), "{e}");
    let e = parse(&MINIMAL.replace("version: 1", "version: 2"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("version 2 is not supported"), "{e}");
}

#[test]
fn load_reads_folders_and_reports_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), MINIMAL).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/b.yml"),
        MINIMAL.replace("name: cpu", "name: cpu2"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a rule").unwrap();
    let set = RuleSet::load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(set.rules.len(), 2);
    assert_eq!(set.files.len(), 2);

    let missing = dir.path().join("nope.yaml");
    let e = RuleSet::load(std::slice::from_ref(&missing)).unwrap_err();
    assert_eq!(e.0[0].file, missing);
    assert!(e.0[0].message.contains("cannot read"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = RuleSet::load(&[empty.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no rule files"), "{e}");
}

#[cfg(unix)]
#[test]
fn load_reads_a_configmap_volume_once() {
    // How the kubelet lays out a ConfigMap mounted as a directory: the files live in a dated
    // folder, `..data` links to it, and each key is a link through `..data`. Walking into the
    // `..` entries would load every rule two more times and refuse the duplicates.
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let dated = dir.path().join("..2026_01_02_03_04_05.123456789");
    std::fs::create_dir(&dated).unwrap();
    std::fs::write(dated.join("default.yaml"), MINIMAL).unwrap();
    std::fs::write(
        dated.join("extra.yaml"),
        MINIMAL.replace("name: cpu", "name: cpu2"),
    )
    .unwrap();
    symlink(dated.file_name().unwrap(), dir.path().join("..data")).unwrap();
    symlink("..data/default.yaml", dir.path().join("default.yaml")).unwrap();
    symlink("..data/extra.yaml", dir.path().join("extra.yaml")).unwrap();
    let set = RuleSet::load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(set.rules.len(), 2);
    assert_eq!(
        set.files,
        vec![
            dir.path().join("default.yaml"),
            dir.path().join("extra.yaml")
        ]
    );
}

/// Issue 14 (messages): a file that cannot be read is the one problem reported, without a
/// "no rules" about no file after it.
#[test]
fn an_unreadable_file_is_the_only_problem_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, b"version: 1\n\xff\n").unwrap();
    let e = RuleSet::load(std::slice::from_ref(&path)).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].file, path);
    assert!(e.0[0].message.contains("cannot read"), "{e}");
}

/// Issue 14, bug 4: links that lead back to a folder being read (two links to the folder
/// itself, a link to its parent) end the walk instead of hanging it; each folder is read once.
#[cfg(unix)]
#[test]
fn load_ends_on_folders_that_link_to_themselves() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), MINIMAL).unwrap();
    symlink(".", dir.path().join("self")).unwrap();
    symlink(".", dir.path().join("again")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    symlink("..", dir.path().join("sub/up")).unwrap();
    let root = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(RuleSet::load(&[root])).unwrap());
    // A guard against hanging for ever, not a measurement: the walk reads four entries.
    let set = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the walk did not end")
        .unwrap();
    assert_eq!(set.files, vec![dir.path().join("a.yaml")]);
}

#[test]
fn empty_sets_huge_windows_and_uneven_steps_are_refused() {
    let e = parse("version: 1\nrules: []\n").unwrap_err().to_string();
    assert!(e.contains("at least one rule"), "{e}");
    let e = parse(&MINIMAL.replace("action: pause", "action: pause\n    window: 20000y"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("window must be"), "{e}");
    let e = parse(&MINIMAL.replace("threshold: 0.9", "threshold: 0.9\n        step: 7m"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("divide the window"), "{e}");
    let e = parse(&MINIMAL.replace("threshold: 0.9", "threshold: 0.9\n        warmup: 45s"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("warmup must be a multiple of the step"), "{e}");
    // Issue 14: rules that could never be evaluated.
    let e = parse(&MINIMAL.replace(
        "action: pause",
        "action: pause\n    window: 10m\n    consecutive: 4294967295",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("consecutive must be 1 to 100"), "{e}");
    let e = parse(
        &MINIMAL
            .replace("action: pause", "action: pause\n    window: 10m")
            .replace("threshold: 0.9", "threshold: 0.9\n        step: 1ms"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("more than 11000 points per series"), "{e}");
    // The range queries also reach back over twice the warmup: 10,000 points over the window
    // are served, 12,000 with a minute's warmup are not.
    let stepped = |extra: &str| {
        parse(
            &MINIMAL
                .replace("action: pause", "action: pause\n    window: 10m")
                .replace(
                    "threshold: 0.9",
                    &format!("threshold: 0.9\n        step: 60ms{extra}"),
                ),
        )
    };
    assert!(stepped("").is_ok());
    let e = stepped("\n        warmup: 1m").unwrap_err().to_string();
    assert!(
        e.contains("over 10m and twice the warmup (1m) asks for more than 11000 points"),
        "{e}"
    );
    // Both problems of one rule are reported, not only the first.
    let e = parse(
        &MINIMAL
            .replace(
                "action: pause",
                "action: pause\n    window: 10m\n    consecutive: 0",
            )
            .replace("threshold: 0.9", "threshold: 0.9\n        step: 1ms"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("consecutive") && e.contains("points per series"),
        "{e}"
    );
}

/// Issue 14 (hardening): a query is parsed as PromQL once its placeholders are filled in, so
/// that a query Prometheus would refuse is a lint problem, not an `inconclusive` rule at run
/// time.
const ERROR_RATE: &str = r#"
version: 1
rules:
  - name: errors
    action: rollback
    check:
      error_rate:
        errors: 'sum(increase(php_errors_total{namespace="{{ namespace }}", pod=~"{{ pods }}"}[{{ interval }}]))'
        requests: 'sum(increase(php_requests_total{namespace="{{ namespace }}", pod=~"{{ pods }}"}[{{ interval }}]))'
"#;

#[test]
fn well_formed_promql_passes() {
    parse(ERROR_RATE).unwrap();
    parse(MINIMAL).unwrap();
    // Compound durations, as a 90s interval renders, and every placeholder at once.
    parse(&ERROR_RATE.replace(
        "action: rollback",
        "action: rollback\n    window: 6m\n    # {{ window }}",
    ))
    .unwrap();
    let every = MINIMAL.replace(
        r#"'up{pod=~"{{ pods }}"}'"#,
        r#"'max_over_time(up{namespace="{{ namespace }}", deployment="{{ deployment }}", replicaset=~"{{ replicaset }}", pod=~"{{ pods }}"}[{{ window }}] offset {{ interval }}) # [5]'"#,
    );
    parse(&every).unwrap();
}

/// The one problem `text` has, as lint prints it.
fn only_problem(text: &str) -> String {
    let errors = parse(text).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0].to_string()
}

#[test]
fn promql_syntax_errors_name_the_rule_and_the_query() {
    let cases = [
        // Unbalanced parenthesis.
        (
            "sum(increase(php_errors_total",
            "sum((increase(php_errors_total",
            "check.error_rate.errors is not valid PromQL: ",
        ),
        // A misspelt function, named in the message.
        (
            "sum(increase(php_errors_total",
            "sum(increse(php_errors_total",
            "check.error_rate.errors is not valid PromQL: unknown function with name 'increse'",
        ),
        // A range without a unit.
        (
            "php_requests_total{namespace=\"{{ namespace }}\", pod=~\"{{ pods }}\"}[{{ interval }}])",
            "php_requests_total{namespace=\"{{ namespace }}\", pod=~\"{{ pods }}\"}[{{ interval }}]) + rate(x[5])",
            "check.error_rate.requests has a range without a unit, [5]: ",
        ),
    ];
    for (from, to, want) in cases {
        let text = ERROR_RATE.replacen(from, to, 1);
        assert_ne!(text, ERROR_RATE, "{from}");
        let e = only_problem(&text);
        assert!(
            e.starts_with("team.yaml:4: rule `errors`: ") && e.contains(want),
            "{want}: {e}"
        );
    }
    // A bad matcher.
    let e = only_problem(&MINIMAL.replace(r#""{{ pods }}"}"#, r#""{{ pods }}", job}"#));
    assert!(
        e.contains("rule `cpu`: check.absolute.query is not valid PromQL"),
        "{e}"
    );
}

#[test]
fn queries_must_be_instant_vectors() {
    // A bare range vector: Prometheus refuses it in a range query.
    let e = only_problem(&MINIMAL.replace(
        r#"'up{pod=~"{{ pods }}"}'"#,
        r#"'up{pod=~"{{ pods }}"}[5m]'"#,
    ));
    assert!(
        e.contains("rule `cpu`: check.absolute.query is a range vector expression"),
        "{e}"
    );
    let compare = MINIMAL
        .replace("absolute:", "compare:")
        .replace("        threshold: 0.9\n", "");
    parse(&compare).unwrap();
    let e = only_problem(&compare.replace(
        r#"'up{pod=~"{{ pods }}"}'"#,
        r#"'count(up{pod=~"{{ pods }}"}) > bool 1 or "x"'"#,
    ));
    assert!(e.contains("check.compare.query"), "{e}");
    let e = only_problem(&ERROR_RATE.replacen(
        "'sum(increase(php_errors_total",
        "'scalar(increase(php_errors_total",
        1,
    ));
    assert!(
        e.contains("check.error_rate.errors is a scalar expression"),
        "{e}"
    );
}

#[test]
fn an_error_rate_warm_up_must_be_whole_intervals_inside_the_window() {
    let rule = |warmup: &str| {
        format!(
            "version: 1\nrules:\n  - name: e\n    action: rollback\n    window: 10m\n    check:\n      error_rate:\n        errors: 'increase(e{{pod=~\"{{{{ pods }}}}\"}}[{{{{ interval }}}}])'\n        requests: 'increase(r{{pod=~\"{{{{ pods }}}}\"}}[{{{{ interval }}}}])'\n        warmup: {warmup}\n"
        )
    };
    if let Err(e) = parse(&rule("2m")) {
        panic!("{e}");
    }
    for bad in ["90s", "10m", "20000y"] {
        let e = parse(&rule(bad)).unwrap_err().to_string();
        assert!(
            e.contains("error_rate.warmup must be a multiple"),
            "{bad}: {e}"
        );
    }
}
