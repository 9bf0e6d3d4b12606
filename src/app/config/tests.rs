use super::*;
use std::io::Write;

fn file(ext: &str, text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn invalid(r: Result<Config, ConfigError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(c) => panic!("accepted: {c:?}"),
    }
}

const FILE: &str = r#"
prometheus:
  url: http://prometheus.monitoring:9090/
  timeout: 20s
rules: [/etc/rollout-guard/rules]
namespaces: [shop]
defaults:
  mode: gate
  interval: 15s
  bake_time: 5m
  gate_steps: [10, 50]
limits:
  max_rollbacks_per_hour: 2
log:
  format: json
"#;

#[test]
fn a_file_sets_everything_and_the_rest_keeps_its_defaults() {
    let f = file(".yaml", FILE);
    let c = Config::load_with_env(Some(f.path()), []).unwrap();
    assert_eq!(c.prometheus.url, "http://prometheus.monitoring:9090/");
    assert_eq!(c.prometheus.timeout, PromDuration::from_secs(20));
    assert_eq!(c.namespaces, ["shop"]);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.server.listen, "0.0.0.0:8080");
    assert!(c.leader_election.enabled);
    let s = c.base_settings();
    assert_eq!(s.mode, Mode::Gate);
    assert_eq!(s.interval, std::time::Duration::from_secs(15));
    assert_eq!(s.bake, std::time::Duration::from_secs(300));
    assert_eq!(s.gate_steps, [10, 50]);
    assert_eq!(s.max_rollbacks_per_hour, 2);
    assert_eq!(s.verify_timeout, Settings::default().verify_timeout);
}

#[test]
fn environment_variables_override_nested_keys_and_lists() {
    let f = file(".yaml", FILE);
    let c = Config::load_with_env(
        Some(f.path()),
        env(&[
            ("ROLLOUT_GUARD__PROMETHEUS__URL", "http://other:9090"),
            ("ROLLOUT_GUARD__DEFAULTS__MODE", "observe"),
            ("ROLLOUT_GUARD__NAMESPACES", "shop,billing"),
            ("ROLLOUT_GUARD__KILL_SWITCH", "true"),
            ("ROLLOUT_GUARD__LIMITS__MAX_ROLLBACKS_PER_HOUR", "5"),
            // Not ours: ignored.
            ("ROLLOUT_GUARD_TEST_KUBECONFIG", "/tmp/x"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(c.prometheus.url, "http://other:9090");
    assert_eq!(c.defaults.mode, Mode::Observe);
    assert_eq!(c.namespaces, ["shop", "billing"]);
    assert!(c.kill_switch && c.base_settings().kill_switch);
    assert_eq!(c.limits.max_rollbacks_per_hour, 5);
}

#[test]
fn the_environment_alone_is_enough() {
    let c = Config::load_with_env(
        None,
        env(&[("ROLLOUT_GUARD__PROMETHEUS__URL", "http://p:9090")]),
    )
    .unwrap();
    assert_eq!(c.prometheus.url, "http://p:9090");
    assert!(c.rules.is_empty());
}

#[test]
fn toml_works_too() {
    let f = file(
        ".toml",
        "[prometheus]\nurl = \"http://p:9090\"\n[defaults]\nmode = \"observe\"\n",
    );
    let c = Config::load_with_env(Some(f.path()), []).unwrap();
    assert_eq!(c.defaults.mode, Mode::Observe);
}

#[test]
fn unknown_keys_in_files_and_variables_are_errors() {
    let f = file(
        ".yaml",
        "prometheus:\n  url: http://p:9090\nkillswitch: true\n",
    );
    assert!(invalid(Config::load_with_env(Some(f.path()), [])).contains("killswitch"));
    let msg = invalid(Config::load_with_env(
        None,
        env(&[
            ("ROLLOUT_GUARD__PROMETHEUS__URL", "http://p:9090"),
            ("ROLLOUT_GUARD__DEFAULTS__BAKE", "5m"),
        ]),
    ));
    assert!(msg.contains("bake"), "{msg}");
}

#[test]
fn bad_values_are_all_reported_at_once() {
    let f = file(
        ".yaml",
        r#"
prometheus: {url: "not a url"}
defaults: {interval: 0s, gate_steps: [50, 20]}
server: {listen: "8080"}
limits: {max_concurrent_evaluations: 0}
"#,
    );
    let msg = invalid(Config::load_with_env(Some(f.path()), []));
    for want in [
        "prometheus",
        "defaults.interval",
        "defaults.gate_steps",
        "server.listen",
        "limits.max_concurrent_evaluations",
    ] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
}

#[test]
fn a_missing_file_bad_syntax_and_a_missing_url_are_clear() {
    let msg = invalid(Config::load_with_env(
        Some(Path::new("/nonexistent/c.yaml")),
        [],
    ));
    assert!(
        msg.contains("/nonexistent/c.yaml") && msg.contains("no such file"),
        "{msg}"
    );
    let f = file(".yaml", "prometheus: [unclosed\n");
    assert!(invalid(Config::load_with_env(Some(f.path()), [])).contains("cannot read"));
    let msg = invalid(Config::load_with_env(None, []));
    assert!(msg.contains("prometheus"), "{msg}");
    let msg = invalid(Config::load_with_env(
        None,
        env(&[
            ("ROLLOUT_GUARD__PROMETHEUS__URL", "http://p:9090"),
            ("ROLLOUT_GUARD__DEFAULTS__MODE", "canary"),
        ]),
    ));
    assert!(msg.contains("canary"), "{msg}");
}

#[test]
fn gate_steps_must_be_increasing_percentages() {
    assert!(gate_steps_ok(&[]).is_ok());
    assert!(gate_steps_ok(&[10, 50, 100]).is_ok());
    assert!(gate_steps_ok(&[0]).is_err());
    assert!(gate_steps_ok(&[101]).is_err());
    assert!(gate_steps_ok(&[50, 50]).is_err());
}

/// A "billion laughs": nine levels of ten aliases each, 10⁹ values from a few hundred bytes.
fn nested_aliases(levels: usize) -> String {
    let mut text =
        String::from("prometheus: {url: http://p:9090}\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..levels {
        let prev = format!("*l{}", i - 1);
        text += &format!("l{i}: &l{i} [{}]\n", vec![prev; 10].join(", "));
    }
    text
}

/// Issue 14, bug 6: a file of nested aliases is refused before anything expands them.
#[test]
fn a_file_of_nested_aliases_is_refused_before_it_expands() {
    let text = nested_aliases(9);
    assert!(text.len() < 600, "{}", text.len());
    let f = file(".yaml", &text);
    assert!(check_yaml(f.path()).is_err(), "the budget did not catch it");
    let msg = invalid(Config::load_with_env(Some(f.path()), []));
    assert!(
        msg.contains("cannot read") && msg.contains("alias"),
        "{msg}"
    );
    // A file with a few aliases is still read (and then refused for its unknown keys).
    let f = file(".yaml", &nested_aliases(2));
    let msg = invalid(Config::load_with_env(Some(f.path()), []));
    assert!(msg.contains("unknown field"), "{msg}");
}

/// Issue 14 (messages): a log level that means nothing is refused, not only warned about.
#[test]
fn a_log_level_that_is_not_a_filter_is_refused() {
    let url = ("ROLLOUT_GUARD__PROMETHEUS__URL", "http://p:9090");
    for bad in [
        "verbose",
        "info,kube=loud",
        "rollout_guard=[",
        "info,debugg",
    ] {
        let msg = invalid(Config::load_with_env(
            None,
            env(&[url, ("ROLLOUT_GUARD__LOG__LEVEL", bad)]),
        ));
        assert!(msg.contains("log.level"), "{bad}: {msg}");
    }
    for good in [
        "INFO",
        "rollout_guard=debug,kube=warn",
        "warn,rollout_guard::records=debug",
    ] {
        Config::load_with_env(None, env(&[url, ("ROLLOUT_GUARD__LOG__LEVEL", good)]))
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

/// Issue 14: the records' rotation, from a file or the environment, with its defaults.
#[test]
fn records_rotation_is_configured_and_has_defaults() {
    let url = ("ROLLOUT_GUARD__PROMETHEUS__URL", "http://p:9090");
    let c = Config::load_with_env(None, env(&[url])).unwrap();
    assert_eq!(c.records.path, None);
    assert_eq!(c.records.rotation(), crate::records::Rotation::default());
    assert_eq!((c.records.max_bytes, c.records.keep), (64 << 20, 4));
    let f = file(
        ".yaml",
        "prometheus: {url: http://p:9090}\nrecords: {path: /data/records.jsonl, max_bytes: 1048576, keep: 10}\n",
    );
    let c = Config::load_with_env(
        Some(f.path()),
        env(&[("ROLLOUT_GUARD__RECORDS__KEEP", "2")]),
    )
    .unwrap();
    assert_eq!(
        c.records.path.as_deref(),
        Some(Path::new("/data/records.jsonl"))
    );
    assert_eq!(c.records.max_bytes, 1 << 20);
    assert_eq!(c.records.keep, 2);
}

/// Issue 14: a file too small for a record, no rotated file kept, or more than a hundred are
/// refused, each with what it got.
#[test]
fn records_rotation_out_of_range_is_refused() {
    let url = ("ROLLOUT_GUARD__PROMETHEUS__URL", "http://p:9090");
    let msg = invalid(Config::load_with_env(
        None,
        env(&[
            url,
            ("ROLLOUT_GUARD__RECORDS__MAX_BYTES", "1000"),
            ("ROLLOUT_GUARD__RECORDS__KEEP", "0"),
        ]),
    ));
    assert!(
        msg.contains("records.max_bytes: at least 16384 (16 KiB), got 1000"),
        "{msg}"
    );
    assert!(
        msg.contains("records.keep: 1 to 100 rotated files, got 0"),
        "{msg}"
    );
    let msg = invalid(Config::load_with_env(
        None,
        env(&[url, ("ROLLOUT_GUARD__RECORDS__KEEP", "101")]),
    ));
    assert!(msg.contains("records.keep"), "{msg}");
    let msg = invalid(Config::load_with_env(
        None,
        env(&[url, ("ROLLOUT_GUARD__RECORDS__MAX_BYTES", "-1")]),
    ));
    assert!(msg.contains("max_bytes"), "{msg}");
    for ok in [("16384", "1"), ("1073741824", "100")] {
        Config::load_with_env(
            None,
            env(&[
                url,
                ("ROLLOUT_GUARD__RECORDS__MAX_BYTES", ok.0),
                ("ROLLOUT_GUARD__RECORDS__KEEP", ok.1),
            ]),
        )
        .unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}
