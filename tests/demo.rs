//! `rollout-guard demo` as a newcomer runs it: three acts, the decisions the story promises,
//! and the decision records left behind.

use std::process::Command;

use rollout_guard::records::{self, Kind};

#[test]
fn the_demo_rolls_back_two_bad_releases_and_keeps_the_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(["demo", "--output-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "→ billing runs v1: rolled back",
        "→ search runs v1: rolled back",
        "→ cart runs v2: v2 passed",
        "RolledBack: class-loading-errors",
        "RolledBack: cpu-saturation",
        "RollbackComplete",
        "AnalysisPassed",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    let (recs, skipped) = records::read(&dir.path().join("records.jsonl")).unwrap();
    assert_eq!(skipped, 0);
    let rollbacks: Vec<&str> = recs
        .iter()
        .filter(|r| {
            r.kind == Kind::Action
                && r.result.as_ref().is_some_and(|w| w.is_ok())
                && r.acts.iter().any(|a| a.name() == "rollback")
        })
        .map(|r| r.deployment.as_str())
        .collect();
    assert_eq!(rollbacks, ["billing", "search"]);
    assert!(stdout.contains(&dir.path().join("records.jsonl").display().to_string()));
    // A report per act, self-contained, with the failing rule's plot where there was one.
    let billing = std::fs::read_to_string(dir.path().join("report-billing.html")).unwrap();
    assert!(
        billing.contains("class-loading-errors") && billing.contains("<svg"),
        "{billing}"
    );
    let cart = std::fs::read_to_string(dir.path().join("report-cart.html")).unwrap();
    assert!(cart.contains("cart") && !cart.contains("<script"));
}
