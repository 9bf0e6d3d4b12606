//! The statistics against SciPy: every reference value in `tests/data/stats/reference.json`
//! (made by `tests/data/stats/make_reference.py`, which records the SciPy version) is
//! recomputed here and must agree to a relative 1e-7.

use rollout_guard::analysis::stats::{self, Tail};
use serde::Deserialize;
use statrs::stats_tests::Alternative;
use statrs::stats_tests::mannwhitneyu::{MannWhitneyUMethod, mannwhitneyu};

#[derive(Deserialize)]
struct Reference {
    scipy_version: String,
    mannwhitneyu: Vec<Mwu>,
    fisher_exact: Vec<Fisher>,
    binomtest: Vec<Binom>,
    hodges_lehmann: Vec<Hl>,
}

#[derive(Deserialize)]
struct Mwu {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    alternative: String,
    method: String,
    use_continuity: bool,
    statistic: f64,
    pvalue: f64,
}

#[derive(Deserialize)]
struct Fisher {
    name: String,
    table: [[u64; 2]; 2],
    alternative: String,
    pvalue: f64,
}

#[derive(Deserialize)]
struct Binom {
    name: String,
    k: u64,
    n: u64,
    p: f64,
    alternative: String,
    pvalue: f64,
}

#[derive(Deserialize)]
struct Hl {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    shift: f64,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/stats/reference.json"
    );
    let text = std::fs::read_to_string(path).expect("reference.json is committed");
    let r: Reference = serde_json::from_str(&text).expect("reference.json parses");
    assert!(!r.scipy_version.is_empty());
    r
}

#[track_caller]
fn close(name: &str, got: f64, want: f64) {
    let tol = 1e-7 * want.abs().max(f64::MIN_POSITIVE);
    assert!(
        (got - want).abs() <= tol || (got == want),
        "{name}: got {got:e}, SciPy says {want:e}"
    );
}

fn alternative(s: &str) -> Alternative {
    match s {
        "greater" => Alternative::Greater,
        "less" => Alternative::Less,
        "two-sided" => Alternative::TwoSided,
        other => panic!("unknown alternative {other}"),
    }
}

/// Why rollout-guard computes Mann-Whitney itself: statrs 0.19 disagrees with SciPy. If a statrs
/// upgrade fixes both, this test fails and `stats::mann_whitney` can go back to statrs.
#[test]
fn statrs_mann_whitney_still_disagrees_with_scipy() {
    let r = reference();
    let case = |name: &str| r.mannwhitneyu.iter().find(|c| c.name == name).unwrap();
    let exact = case("exact_n5_n6_cpu_greater");
    let (_, p) = mannwhitneyu(
        &exact.x,
        &exact.y,
        MannWhitneyUMethod::Exact,
        Alternative::Greater,
    )
    .unwrap();
    let exact_wrong = (p - exact.pvalue).abs() > 0.5;
    let tiny = case("asymp_x_clearly_greater_n60_n60_greater_cc_tiny_p");
    let method = MannWhitneyUMethod::AsymptoticInclContinuityCorrection;
    let (_, p) = mannwhitneyu(&tiny.x, &tiny.y, method, Alternative::Greater).unwrap();
    let tail_lost = p == 0.0 && tiny.pvalue > 0.0;
    assert!(
        exact_wrong && tail_lost,
        "statrs now agrees with SciPy: use it again in stats::mann_whitney"
    );
}

#[test]
fn our_mann_whitney_agrees_where_it_picks_scipys_method() {
    let r = reference();
    let mut compared = 0;
    assert!(r.mannwhitneyu.len() >= 20);
    for c in &r.mannwhitneyu {
        let tail = match c.alternative.as_str() {
            "greater" => Tail::Greater,
            "less" => Tail::Less,
            _ => continue,
        };
        let (u, p) = stats::mann_whitney(&c.x, &c.y, tail).unwrap();
        close(&c.name, u, c.statistic);
        // Ours is exact when that is cheap and tie-free, else asymptotic with continuity
        // correction: compare p where SciPy used the same.
        let ties = c.name.contains("ties");
        let ours_exact = !ties && c.x.len() + c.y.len() <= stats::EXACT_MAX;
        if (c.method == "exact") == ours_exact && (ours_exact || c.use_continuity) {
            close(&c.name, p, c.pvalue);
            compared += 1;
        }
    }
    assert!(compared >= 8, "only {compared} one-sided cases compared");
}

#[test]
fn fisher_exact_agrees_with_scipy() {
    let r = reference();
    let mut greater = 0;
    for c in &r.fisher_exact {
        let flat = [c.table[0][0], c.table[0][1], c.table[1][0], c.table[1][1]];
        let p =
            statrs::stats_tests::fisher::fishers_exact(&flat, alternative(&c.alternative)).unwrap();
        if c.alternative == "two-sided" {
            // statrs sums "as likely" tables with another tolerance than SciPy: 1e-4 apart on
            // large tables. rollout-guard only uses the one-sided test.
            assert!(
                (p - c.pvalue).abs() <= 1e-3 * c.pvalue,
                "{}: {p} vs {}",
                c.name,
                c.pvalue
            );
        } else {
            close(&c.name, p, c.pvalue);
        }
        if c.alternative == "greater" {
            close(&c.name, stats::fisher_greater(c.table).unwrap(), c.pvalue);
            greater += 1;
        }
    }
    assert!(greater >= 5);
}

#[test]
fn binomial_tests_agree_with_scipy() {
    let r = reference();
    let mut compared = 0;
    for c in &r.binomtest {
        let p = match c.alternative.as_str() {
            "greater" => stats::binomial_greater(c.k, c.n, c.p).unwrap(),
            "less" => stats::binomial_less(c.k, c.n, c.p).unwrap(),
            _ => continue, // two-sided is not used by rollout-guard
        };
        close(&c.name, p, c.pvalue);
        compared += 1;
    }
    assert!(compared >= 7, "only {compared} cases compared");
}

#[test]
fn hodges_lehmann_agrees_with_numpy() {
    let r = reference();
    for c in &r.hodges_lehmann {
        let got = stats::hodges_lehmann(&c.x, &c.y).unwrap();
        assert!(
            (got - c.shift).abs() <= 1e-12 * c.shift.abs().max(1.0),
            "{}: {got} vs {}",
            c.name,
            c.shift
        );
    }
}

#[derive(Deserialize)]
struct Sequential {
    scipy_version: String,
    ratios: Vec<f64>,
    cases: Vec<SequentialCase>,
}

#[derive(Deserialize)]
struct SequentialCase {
    name: String,
    /// [errors_new, requests_new, errors_old, requests_old] per stratum.
    strata: Vec<[f64; 4]>,
    tolerance: f64,
    dispersion: f64,
    log_evalue: f64,
}

/// The sequential test's e-value against SciPy's binomial pmf
/// (`tests/data/stats/make_sequential_reference.py`).
#[test]
fn sequential_evalue_agrees_with_scipy() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/stats/sequential.json"
    );
    let text = std::fs::read_to_string(path).expect("sequential.json");
    let r: Sequential = serde_json::from_str(&text).expect("valid JSON");
    assert!(!r.scipy_version.is_empty());
    assert_eq!(
        r.ratios,
        stats::MIXTURE_RATIOS.to_vec(),
        "the fixtures were made for other mixture ratios: rerun the script"
    );
    assert!(r.cases.len() >= 10);
    for c in &r.cases {
        let strata: Vec<stats::Stratum> = c
            .strata
            .iter()
            .map(|s| stats::Stratum {
                errors_new: s[0],
                requests_new: s[1],
                errors_old: s[2],
                requests_old: s[3],
            })
            .collect();
        let got = stats::rate_ratio_log_evalue(&strata, None, c.tolerance, c.dispersion)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert!(
            (got - c.log_evalue).abs() <= 1e-9 * c.log_evalue.abs().max(1.0),
            "{}: got {got}, SciPy {}",
            c.name,
            c.log_evalue
        );
        let p = stats::rate_ratio_sequential_p(&strata, None, c.tolerance, c.dispersion).unwrap();
        assert!(
            (p - (-c.log_evalue).exp().min(1.0)).abs() < 1e-12,
            "{}: {p}",
            c.name
        );
    }
}
