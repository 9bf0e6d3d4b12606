//! The command line as a person uses it: `rules lint`, `rules defaults`, `simulate`, `--help`.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn lint_accepts_the_bundled_rules() {
    let out = run(&["rules", "lint", "rules"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "8 rule(s) in 2 file(s): ok");
}

/// `rules lint` on one file, `team.yaml`, holding `yaml` with exactly one problem: it exits 1
/// and prints every one of `wants`.
fn lint_finds_one_problem(yaml: &str, wants: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("team.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = run(&["rules", "lint", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for want in wants {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(err.contains("1 problem(s) found"), "{err}");
}

#[test]
fn lint_names_every_problem_and_exits_1() {
    lint_finds_one_problem(
        "version: 1\nrules:\n  - name: cpu\n    action: pause\n    check:\n      absolute:\n        query: 'up{pod=~\"{{ pods }}\"}'\n        threshold: 0.9\n        treshold: 1\n",
        &["team.yaml:9: rule `cpu`:", "treshold"],
    );
}

/// Issue 14 (hardening): a query is parsed as PromQL, so a syntax error is found by lint, not
/// by Prometheus at every evaluation.
#[test]
fn lint_reports_promql_syntax_errors() {
    lint_finds_one_problem(
        "version: 1\nrules:\n  - name: cpu\n    action: pause\n    check:\n      absolute:\n        query: 'sum(rate(up{pod=~\"{{ pods }}\"}[1m])'\n        threshold: 0.9\n",
        &[
            "team.yaml:3: rule `cpu`: check.absolute.query is not valid PromQL: unclosed left parenthesis",
        ],
    );
}

#[test]
fn defaults_print_the_bundled_file() {
    let out = run(&["rules", "defaults"]);
    assert!(out.status.success());
    let bundled =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
            .unwrap();
    assert_eq!(text(&out.stdout), bundled);
}

#[test]
fn simulate_needs_the_traces_named_not_a_path_of_the_source_tree() {
    let out = run(&["simulate", "--openmetrics", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--nab"), "{}", text(&out.stderr));
}

#[test]
fn simulate_writes_openmetrics_and_the_backtest_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.om");
    let out = run(&[
        "simulate",
        "--scenario",
        "cpu-saturation",
        "--seed",
        "3",
        "--nab",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nab"),
        "--openmetrics",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let keys: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "NAMESPACE",
            "DEPLOYMENT",
            "OLD_REPLICASET",
            "NEW_REPLICASET",
            "FROM",
            "TO"
        ]
    );
    let om = std::fs::read_to_string(&file).unwrap();
    assert!(om.ends_with("# EOF\n"));
    for family in [
        "php_requests_total",
        "container_cpu_usage_seconds_total",
        "kube_pod_container_resource_limits",
    ] {
        assert!(om.contains(&format!("# TYPE {family} gauge")), "{family}");
    }
    let new_rs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("NEW_REPLICASET="))
        .unwrap();
    assert!(
        om.contains(&format!("pod=\"{new_rs}-")),
        "the new ReplicaSet's pods are in the file"
    );
}

#[test]
fn every_command_explains_itself() {
    for args in [
        &["--help"][..],
        &["backtest", "--help"],
        &["rules", "lint", "--help"],
        &["simulate", "--help"],
        &["run", "--help"],
        &["demo", "--help"],
        &["report", "--help"],
        &["rules", "defaults", "--help"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            text(&out.stdout).contains("Usage: rollout-guard"),
            "{args:?}"
        );
    }
}

#[test]
fn completions_name_every_command() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    for command in ["backtest", "report", "status", "check", "run", "rules"] {
        assert!(
            script.contains(command),
            "{command} missing from the bash completions"
        );
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}
