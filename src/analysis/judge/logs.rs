//! Judging a `logs` rule: PHP error signatures printed by the new ReplicaSet's pods against
//! the old ones', per pod-minute of log read.
//!
//! Each signature of the counted kinds gets the conditional Poisson-rate test of
//! [`crate::analysis::stats::poisson_rate_greater`] (pod-minutes as the exposure), and so does their
//! total (many different missing classes, each rare); the family of tests shares `alpha`
//! (Bonferroni). A signature only the new pods print is the strongest evidence there is; one
//! both print alike is no evidence at all. Pure.

use serde::{Deserialize, Serialize};

use super::{Evidence, Judged, fmt_num, no_baseline, ratio_reached};
use crate::analysis::phplog::ErrorKind;
use crate::analysis::rules::Logs;
use crate::analysis::source::{LogCounts, SignatureCount};
use crate::analysis::stats::poisson_rate_greater;

/// One signature's counts on both sides, and its test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureRow {
    /// The error's kind (`other_fatal` in the total's row).
    pub kind: ErrorKind,
    /// The message with paths, line numbers and ids normalised away (`(all counted kinds)` in the
    /// total's row).
    pub signature: String,
    /// How many times the new pods printed it in the window.
    pub new: u64,
    /// How many times the old pods printed it in the window.
    pub old: u64,
    /// Rate ratio per pod-minute (`null` for infinity: printed only by the new pods).
    pub ratio: Option<f64>,
    /// The one-sided p-value that the new pods print it more often per pod-minute than `tolerance`
    /// × the old pods.
    pub p_value: f64,
    /// One occurrence as the new pods wrote it (empty in the total's row).
    pub example: String,
}

/// The numbers behind a `logs` verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogsEvidence {
    /// New pods whose logs were read.
    pub new_pods_read: u32,
    /// Pods the new ReplicaSet has.
    pub new_pods_total: u32,
    /// Minutes of the new pods' log read, summed over the pods: the exposure their errors are
    /// counted on.
    pub new_pod_minutes: f64,
    /// Old pods whose logs were read.
    pub old_pods_read: u32,
    /// Pods the old ReplicaSets have.
    pub old_pods_total: u32,
    /// Old pods gone since they were read, whose counts still count (the old version's
    /// errors after its pods left).
    #[serde(default)]
    pub old_pods_departed: u32,
    /// Minutes of the old pods' log read, summed over the pods: the exposure their errors are
    /// counted on.
    pub old_pod_minutes: f64,
    /// The counted signatures, the deciding one first, then by new count.
    pub signatures: Vec<SignatureRow>,
    /// The total of the counted kinds, tested like a signature.
    pub total: SignatureRow,
    /// alpha divided among the tests.
    pub alpha_per_test: f64,
    /// The rule's `min_ratio`: the floor for a row's `ratio`.
    pub min_ratio: f64,
    /// The rule's `min_errors`: the fewest new errors a row needs to fail.
    pub min_errors: f64,
    /// The counts are incomplete: the log reads lag behind, or a minute in the window lost
    /// errors (see `podlogs`).
    pub truncated: bool,
}

/// The signatures of the kinds a rule counts.
fn counted<'a>(c: &'a LogCounts, kinds: &[ErrorKind]) -> Vec<&'a SignatureCount> {
    c.errors
        .iter()
        .filter(|e| kinds.contains(&e.kind))
        .collect()
}

/// Whether one signature's row fails: significant at `alpha`, with enough errors and a large
/// enough ratio (`None`: infinite).
fn row_fails(r: &SignatureRow, alpha: f64, min_errors: f64, min_ratio: f64) -> bool {
    r.p_value < alpha
        && r.new as f64 >= min_errors
        && ratio_reached(r.ratio, r.new as f64, min_ratio)
}

impl LogsEvidence {
    /// Whether a row of this evidence fails (as the judge decided it).
    pub fn fails(&self, r: &SignatureRow) -> bool {
        row_fails(r, self.alpha_per_test, self.min_errors, self.min_ratio)
    }
}

/// Signatures kept in the evidence (the rest are summed in `total`).
pub const MAX_ROWS: usize = 20;

/// What the new pods' logs were held to: the old pods' logs read, and how many of those pods
/// are gone since (their counts kept, the old version's errors after its pods left).
fn baseline(old: &LogCounts) -> String {
    let gone = match old.pods_departed {
        0 => String::new(),
        n => format!(", {n} of them gone since, their counts kept"),
    };
    format!(
        "against the old pods' logs: {} pod(s) read{gone}, {} pod-minute(s)",
        old.pods_read + old.pods_departed,
        fmt_num(old.pod_minutes)
    )
}

/// Judges a `logs` rule on what the new and the old pods printed.
pub(super) fn judge_logs(rule: &Logs, new: &LogCounts, old: Option<&LogCounts>) -> Judged {
    let Some(old) = old else { return no_baseline() };
    if let Some(missing) = too_little_log(rule, new, old) {
        return Judged::Missing(missing);
    }
    let new_sigs = counted(new, &rule.kinds);
    let old_sigs = counted(old, &rule.kinds);
    // Every signature the new pods printed is a hypothesis; so is the total.
    let tests = new_sigs.len() + 1;
    let test = RateTest {
        rule,
        en: new.pod_minutes,
        eo: old.pod_minutes,
        alpha: rule.alpha / tests as f64,
    };
    let mut rows: Vec<SignatureRow> = new_sigs
        .iter()
        .map(|e| {
            let k_old = old_sigs
                .iter()
                .find(|o| o.kind == e.kind && o.signature == e.signature)
                .map_or(0, |o| o.count);
            test.row(
                e.kind,
                e.signature.clone(),
                e.count,
                k_old,
                e.example.clone(),
            )
        })
        .collect();
    let total_new: u64 = new_sigs.iter().map(|s| s.count).sum();
    let total_old: u64 = old_sigs.iter().map(|s| s.count).sum();
    let total = test.row(
        ErrorKind::OtherFatal,
        "(all counted kinds)".into(),
        total_new,
        total_old,
        String::new(),
    );
    rows.sort_by(|a, b| {
        test.fails(b)
            .cmp(&test.fails(a))
            .then(a.p_value.total_cmp(&b.p_value))
            .then(b.new.cmp(&a.new))
    });
    let deciding = rows.first().filter(|r| test.fails(r));
    let fail = deciding.is_some() || test.fails(&total);
    let reason = format!(
        "{}; {}",
        test.reason(deciding, fail, rows.first(), &total),
        baseline(old)
    );
    rows.truncate(MAX_ROWS);
    Judged::Decided {
        fail,
        reason,
        building: false,
        unsettled: None,
        evidence: Evidence::Logs(test.evidence(new, old, rows, total)),
        warn_only: false,
    }
}

/// Why the log read is too little to judge on, if it is: no pod's log read on a side, or
/// fewer pod-minutes than the rule requires.
fn too_little_log(rule: &Logs, new: &LogCounts, old: &LogCounts) -> Option<String> {
    for (side, c) in [("new", new), ("old", old)] {
        if c.pods_read + c.pods_departed == 0 {
            return Some(format!(
                "no log of the {side} pods could be read ({} pod(s); {})",
                c.pods_total,
                if c.skipped.is_empty() {
                    "none running".to_string()
                } else {
                    c.skipped.join("; ")
                }
            ));
        }
        if c.pod_minutes < rule.min_pod_minutes {
            return Some(format!(
                "{} pod-minute(s) of {side} log, fewer than the {} required",
                fmt_num(c.pod_minutes),
                fmt_num(rule.min_pod_minutes)
            ));
        }
    }
    None
}

/// The family of rate tests of one `logs` verdict: the rule, the pod-minutes of log read on
/// each side (the exposures), and `alpha` divided among the tests.
struct RateTest<'a> {
    rule: &'a Logs,
    en: f64,
    eo: f64,
    alpha: f64,
}

impl RateTest<'_> {
    /// The row of a signature (or of the total) printed `k_new` times by the new pods and
    /// `k_old` by the old.
    fn row(
        &self,
        kind: ErrorKind,
        signature: String,
        k_new: u64,
        k_old: u64,
        example: String,
    ) -> SignatureRow {
        let (en, eo) = (self.en, self.eo);
        let p = poisson_rate_greater(k_new as f64, en, k_old as f64, eo, self.rule.tolerance)
            .unwrap_or(1.0);
        let ratio = (k_old > 0).then(|| (k_new as f64 / en) / (k_old as f64 / eo));
        SignatureRow {
            kind,
            signature,
            new: k_new,
            old: k_old,
            ratio,
            p_value: p,
            example,
        }
    }

    /// Whether a row fails at this family's alpha and the rule's thresholds.
    fn fails(&self, r: &SignatureRow) -> bool {
        row_fails(r, self.alpha, self.rule.min_errors, self.rule.min_ratio)
    }

    /// The verdict's reason: the `deciding` signature, else the total when it fails (`fail`),
    /// else the `closest` signature, or that the new pods printed none.
    fn reason(
        &self,
        deciding: Option<&SignatureRow>,
        fail: bool,
        closest: Option<&SignatureRow>,
        total: &SignatureRow,
    ) -> String {
        let (en, eo, alpha, rule) = (self.en, self.eo, self.alpha, self.rule);
        let per_min = |k: u64, e: f64| fmt_num(k as f64 / e);
        match (deciding, fail) {
            (Some(r), _) => format!(
                "{} `{}`: new pods printed it {} time(s) ({}/pod-minute over {} pod-minute(s)), old pods {} ({}/pod-minute): {}, p={:.2e} < {:.2e}",
                r.kind,
                r.signature,
                r.new,
                per_min(r.new, en),
                fmt_num(en),
                r.old,
                per_min(r.old, eo),
                r.ratio.map_or("only in the new pods".into(), |x| format!(
                    "×{}",
                    fmt_num(x)
                )),
                r.p_value,
                alpha
            ),
            (None, true) => format!(
                "{} errors of the counted kinds from the new pods ({}/pod-minute) against {} from the old ({}/pod-minute), p={:.2e} < {:.2e}",
                total.new,
                per_min(total.new, en),
                total.old,
                per_min(total.old, eo),
                total.p_value,
                alpha
            ),
            (None, false) => match closest {
                Some(r) => format!(
                    "no signature stands out: closest `{}` new {} vs old {} (p={:.2e}, needs < {:.2e}, ≥ {} errors, ×{})",
                    r.signature,
                    r.new,
                    r.old,
                    r.p_value,
                    alpha,
                    fmt_num(rule.min_errors),
                    fmt_num(rule.min_ratio)
                ),
                None => format!(
                    "the new pods printed no error of the counted kinds in {} pod-minute(s) of log",
                    fmt_num(en)
                ),
            },
        }
    }

    /// The evidence of the verdict on the counts `new` and `old`, with its `rows` (already cut
    /// to [`MAX_ROWS`]) and `total`.
    fn evidence(
        &self,
        new: &LogCounts,
        old: &LogCounts,
        rows: Vec<SignatureRow>,
        total: SignatureRow,
    ) -> LogsEvidence {
        LogsEvidence {
            new_pods_read: new.pods_read,
            new_pods_total: new.pods_total,
            new_pod_minutes: self.en,
            old_pods_read: old.pods_read,
            old_pods_total: old.pods_total,
            old_pods_departed: old.pods_departed,
            old_pod_minutes: self.eo,
            signatures: rows,
            total,
            alpha_per_test: self.alpha,
            min_ratio: self.rule.min_ratio,
            min_errors: self.rule.min_errors,
            truncated: new.truncated || old.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::judge::tests::window;
    use crate::analysis::judge::{Outcome, judge};
    use crate::analysis::phplog::parse_log;
    use crate::analysis::rules::Check;
    use crate::analysis::source::SignatureCount;

    fn rule() -> crate::analysis::rules::Rule {
        crate::analysis::judge::tests::rule(
            "  - name: log-class-errors\n    action: rollback\n    window: 10m\n    check:\n      logs: {}\n",
        )
    }

    fn counts(pods: u32, minutes: f64, errors: &[(ErrorKind, &str, u64)]) -> LogCounts {
        LogCounts {
            pods_read: pods,
            pods_total: pods,
            pods_departed: 0,
            pod_minutes: minutes,
            errors: errors
                .iter()
                .map(|(k, s, n)| SignatureCount {
                    kind: *k,
                    signature: s.to_string(),
                    count: *n,
                    example: format!("PHP Fatal error:  {s}"),
                })
                .collect(),
            truncated: false,
            skipped: Vec::new(),
        }
    }

    fn run(new: LogCounts, old: Option<LogCounts>) -> crate::analysis::judge::Verdict {
        judge(
            &rule(),
            &window(),
            &super::super::Observation::Logs { new, old },
        )
    }

    const MISSING: &str = r#"Class "App\Billing\LegacyTaxCalculator" not found"#;

    #[test]
    fn a_signature_only_the_new_pods_print_fails() {
        let shared = (ErrorKind::Warning, "Undefined variable $x", 40);
        let v = run(
            counts(2, 20.0, &[(ErrorKind::ClassNotFound, MISSING, 8), shared]),
            Some(counts(
                4,
                40.0,
                &[(ErrorKind::Warning, "Undefined variable $x", 80)],
            )),
        );
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
        assert!(
            v.reason.contains("LegacyTaxCalculator") && v.reason.contains("only in the new pods"),
            "{}",
            v.reason
        );
        let Some(Evidence::Logs(e)) = &v.evidence else {
            panic!()
        };
        assert_eq!(e.signatures[0].new, 8);
        assert_eq!(e.signatures.len(), 1, "warnings are not a counted kind");
    }

    #[test]
    fn a_signature_both_sides_print_alike_passes() {
        let v = run(
            counts(2, 20.0, &[(ErrorKind::ClassNotFound, MISSING, 10)]),
            Some(counts(4, 40.0, &[(ErrorKind::ClassNotFound, MISSING, 21)])),
        );
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    }

    #[test]
    fn many_rare_missing_classes_fail_together() {
        let names: Vec<String> = (0..12)
            .map(|i| format!(r#"Class "App\C{i}" not found"#))
            .collect();
        let errs: Vec<(ErrorKind, &str, u64)> = names
            .iter()
            .map(|n| (ErrorKind::ClassNotFound, n.as_str(), 1))
            .collect();
        let v = run(counts(2, 20.0, &errs), Some(counts(4, 40.0, &[])));
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
        assert!(
            v.reason.contains("12 errors of the counted kinds"),
            "{}",
            v.reason
        );
        assert!(
            v.reason
                .ends_with("; against the old pods' logs: 4 pod(s) read, 40 pod-minute(s)"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn the_reason_says_the_old_pods_gone_whose_counts_still_count() {
        let new = counts(2, 20.0, &[(ErrorKind::ClassNotFound, MISSING, 9)]);
        let mut old = counts(4, 40.0, &[]);
        old.pods_departed = 3;
        let v = run(new, Some(old));
        assert!(
            v.reason.ends_with(
                "; against the old pods' logs: 7 pod(s) read, 3 of them gone since, their counts kept, 40 pod-minute(s)"
            ),
            "{}",
            v.reason
        );
    }

    #[test]
    fn too_little_log_or_no_baseline_is_inconclusive() {
        let new = counts(1, 1.0, &[(ErrorKind::ClassNotFound, MISSING, 5)]);
        let v = run(new.clone(), Some(counts(4, 40.0, &[])));
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.reason.contains("pod-minute"), "{}", v.reason);
        let v = run(
            counts(2, 20.0, &[(ErrorKind::ClassNotFound, MISSING, 5)]),
            None,
        );
        assert_eq!(v.outcome, Outcome::Inconclusive);
        let mut none = counts(0, 0.0, &[]);
        none.pods_total = 3;
        none.skipped = vec!["shop-x: gone".into()];
        let v = run(none, Some(counts(4, 40.0, &[])));
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.reason.contains("shop-x: gone"), "{}", v.reason);
    }

    /// The real PHP-FPM 8.2 output: the new release's missing classes stand out, the errors
    /// both releases print do not.
    #[test]
    fn the_real_fpm_logs_single_out_the_removed_classes() {
        let read = |f: &str| {
            let text = std::fs::read_to_string(format!(
                "{}/tests/data/php-fpm-logs/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let mut c = counts(1, 10.0, &[]);
            for e in parse_log(&text) {
                c.merge(LogCounts {
                    errors: vec![SignatureCount {
                        kind: e.kind,
                        signature: e.signature,
                        count: 1,
                        example: e.first_line,
                    }],
                    ..LogCounts::default()
                });
            }
            c
        };
        // Five requests' worth of each log per pod-minute: scale the counts up so the test
        // has data (the real files hold one request per error).
        let scale = |mut c: LogCounts| {
            for e in &mut c.errors {
                e.count *= 5;
            }
            c
        };
        let new = scale(read("fpm8.2-decorated-new-release-missing-classes.log"));
        let old = scale(read("fpm8.2-decorated-old-release.log"));
        let v = run(new, Some(old));
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
        let Some(Evidence::Logs(e)) = &v.evidence else {
            panic!()
        };
        let failing: Vec<&SignatureRow> = e
            .signatures
            .iter()
            .filter(|r| r.old == 0 && r.new > 0)
            .collect();
        assert!(!failing.is_empty());
        for r in &failing {
            assert!(r.kind.is_class_loading(), "{r:?}");
        }
        assert!(matches!(rule().check, Check::Logs(_)));
    }
}
