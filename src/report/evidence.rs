//! A verdict's evidence as tables (the numbers, and each threshold with whether it was met) and
//! as one line for the summary. Both renderers draw these same tables.

use crate::analysis::judge::{
    AbsoluteEvidence, Baseline, CompareEvidence, CompareHistory, ErrorRateEvidence, Evidence,
    HistoryEvidence, LogsEvidence, SampleSummary, SignatureRow, WindowBound,
};
use crate::analysis::rules::Direction;

use super::{hms, num, pct, pval};

/// A table of the report.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A cell: plain text, or code (signatures, examples), shown in a monospace font.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Cell {
    Text(String),
    Code(String),
}

fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn row(cells: impl IntoIterator<Item = String>) -> Vec<Cell> {
    cells.into_iter().map(Cell::Text).collect()
}

fn met(ok: bool) -> String {
    if ok { "yes" } else { "no" }.into()
}

fn ratio(r: Option<f64>, any: bool) -> String {
    match r {
        Some(r) => format!("×{}", num(r)),
        None if any => "×∞".into(),
        None => "—".into(),
    }
}

/// The evidence in one line: the numbers that decided.
pub(super) fn numbers(e: &Evidence) -> String {
    match e {
        Evidence::ErrorRate(x) => format!(
            "new {} ({}/{}) vs old {} ({}/{}), {} errors where the old rate predicts {} ({}), p={} {} α={}; against {}{}",
            pct(x.new.rate),
            num(x.new.errors),
            num(x.new.requests),
            pct(x.old.rate),
            num(x.old.errors),
            num(x.old.requests),
            num(x.observed_errors),
            num(x.expected_errors),
            ratio(x.ratio, x.observed_errors > 0.0),
            pval(x.p_value),
            if x.p_value < x.alpha { "<" } else { "≥" },
            num(x.alpha),
            x.baseline.describe(),
            x.history.as_deref().map_or(String::new(), history_span),
        ),
        Evidence::Compare(x) => match &x.history {
            Some(h) => format!(
                "the old pods gone: new level {} vs the old version's {} before its pods left ({} to {}), {}, needs ×{} ({}), {} of {} new pods beyond",
                num(h.after),
                num(h.before),
                hms(h.before_from),
                hms(h.before_to),
                ratio(Some(h.ratio), true),
                num(h.needed),
                match h.unknown_drift {
                    None => format!("its own largest drift ×{}", num(h.largest_drift)),
                    Some(u) => format!("its history too short for its drift: ×{} assumed", num(u)),
                },
                x.pods_worse,
                x.pods_judged
            ),
            None => format!(
                "new median {} vs old {} (p90 {} vs {}), {} against the old pods at the same moments, shift {}, p={} {} α={}",
                num(x.new.median),
                num(x.old.median),
                num(x.new.p90),
                num(x.old.p90),
                ratio(x.median_ratio, true),
                num(x.shift),
                pval(x.p_value),
                if x.p_value < x.alpha { "<" } else { "≥" },
                num(x.alpha)
            ),
        },
        Evidence::Absolute(x) => {
            let mut s = format!(
                "new pods' p{} {} {} threshold {}",
                quantile_name(x.quantile),
                num(x.value),
                if x.breaches() {
                    x.direction.symbol()
                } else {
                    "within"
                },
                num(x.threshold)
            );
            match x.old_value {
                Some(o) => s.push_str(&format!(" (old pods {} at the same moments)", num(o))),
                None => s.push_str(" (no old pods to compare with)"),
            }
            s
        }
        Evidence::Logs(x) => {
            let r = x.signatures.first().unwrap_or(&x.total);
            format!(
                "{} `{}` printed {} time(s) by the new pods ({}/pod-minute) vs {} by the old ({}/pod-minute), {}, p={}",
                r.kind,
                r.signature,
                r.new,
                per_minute(r.new, x.new_pod_minutes),
                r.old,
                per_minute(r.old, x.old_pod_minutes),
                ratio(r.ratio, r.new > 0),
                pval(r.p_value)
            )
        }
    }
}

/// The history an error-rate verdict held the new pods to after the old pods left, in a few
/// words: its span and its numbers.
fn history_span(h: &HistoryEvidence) -> String {
    format!(
        " (history {} to {}: {} errors in {} requests, held to at most {})",
        hms(h.from),
        hms(h.to),
        num(h.old_errors),
        num(h.old_requests),
        pct(h.rate_bound)
    )
}

fn per_minute(k: u64, minutes: f64) -> String {
    if minutes > 0.0 {
        num(k as f64 / minutes)
    } else {
        "—".into()
    }
}

fn quantile_name(q: f64) -> String {
    num((q * 100.0).round())
}

/// The evidence as tables.
pub(super) fn tables(e: &Evidence) -> Vec<Table> {
    match e {
        Evidence::ErrorRate(x) => error_rate(x),
        Evidence::Compare(x) => compare(x),
        Evidence::Absolute(x) => absolute(x),
        Evidence::Logs(x) => logs(x),
    }
}

fn error_rate(x: &ErrorRateEvidence) -> Vec<Table> {
    let ratio_met = x.ratio_met();
    vec![
        Table {
            title: "Counts over the window".into(),
            header: vec!["".into(), "new pods".into(), "old pods".into()],
            rows: vec![
                row(["errors".into(), num(x.new.errors), num(x.old.errors)]),
                row(["requests".into(), num(x.new.requests), num(x.old.requests)]),
                row(["error rate".into(), pct(x.new.rate), pct(x.old.rate)]),
            ],
        },
        Table {
            title: format!(
                "The test ({}, one-sided; fails only when every condition is met)",
                match x.test {
                    crate::analysis::rules::ProportionTest::Binomial =>
                        "stratified binomial test per interval",
                    crate::analysis::rules::ProportionTest::Fisher => "Fisher's exact test",
                    crate::analysis::rules::ProportionTest::Sequential =>
                        "sequential test per interval, valid at every look",
                }
            ),
            header: vec!["".into(), "value".into(), "to fail".into(), "met".into()],
            rows: vec![
                row([
                    "p-value".into(),
                    pval(x.p_value),
                    format!("< α = {}", num(x.alpha)),
                    met(x.p_value < x.alpha),
                ]),
                row([
                    "observed / expected errors".into(),
                    ratio(x.ratio, x.observed_errors > 0.0),
                    format!("≥ ×{}", num(x.min_ratio)),
                    met(ratio_met),
                ]),
                row([
                    "new errors in the compared intervals".into(),
                    num(x.observed_errors),
                    format!("≥ {}", num(x.min_errors)),
                    met(x.observed_errors >= x.min_errors),
                ]),
                row([
                    "rate increase over expected".into(),
                    pct(x.rate_increase),
                    format!("≥ {}", pct(x.min_rate_increase)),
                    met(x.rate_increase >= x.min_rate_increase),
                ]),
                row([
                    "errors the old rate predicts (see the baseline)".into(),
                    num(x.expected_errors),
                    String::new(),
                    String::new(),
                ]),
                row([
                    "intervals compared (strata)".into(),
                    x.strata.to_string(),
                    String::new(),
                    String::new(),
                ]),
                row([
                    "dispersion φ (counts divided by it)".into(),
                    num(x.dispersion),
                    String::new(),
                    String::new(),
                ]),
                row([
                    "tolerance (null: new rate ≤ tolerance × old)".into(),
                    num(x.tolerance),
                    String::new(),
                    String::new(),
                ]),
            ],
        },
        error_rate_baseline(x),
    ]
}

/// What an error-rate verdict held the new pods to: the old pods beside them, the old
/// version's history after they left, the old version over the whole window; each with its
/// span and numbers.
fn error_rate_baseline(x: &ErrorRateEvidence) -> Table {
    let mut rows = vec![row(["compared with".into(), x.baseline.describe().into()])];
    if x.baseline != Baseline::History {
        rows.push(row([
            "beside the old pods".into(),
            format!(
                "{} interval(s) in which both versions served, each against the old pods' rate in it",
                x.strata
            ),
        ]));
    }
    if let Some(h) = &x.history {
        rows.extend(history_rows(h));
    }
    if let Some(w) = &x.window_bound {
        rows.push(window_row(w));
    }
    Table {
        title: "The baseline".into(),
        header: vec!["".into(), "".into()],
        rows,
    }
}

fn history_rows(h: &HistoryEvidence) -> Vec<Vec<Cell>> {
    vec![
        row([
            "the old version's history".into(),
            format!(
                "{} errors in {} requests, {} to {} ({}); held to at most {}, the upper end of its confidence interval",
                num(h.old_errors),
                num(h.old_requests),
                hms(h.from),
                hms(h.to),
                pct(h.old_errors / h.old_requests.max(1.0)),
                pct(h.rate_bound)
            ),
        ]),
        row([
            "after the old pods left".into(),
            format!(
                "{} interval(s): the new pods made {} errors in {} requests, where the history's rate predicts {}",
                h.intervals,
                num(h.errors),
                num(h.requests),
                num(h.expected)
            ),
        ]),
    ]
}

fn window_row(w: &WindowBound) -> Vec<Cell> {
    row([
        "the old version over the window".into(),
        format!(
            "{} errors in {} requests, held to at most {}: every new interval against it, p={}",
            num(w.old_errors),
            num(w.old_requests),
            pct(w.rate_bound),
            pval(w.p_value)
        ),
    ])
}

fn samples_table(new: &SampleSummary, old: Option<&SampleSummary>) -> Table {
    let o = |f: fn(&SampleSummary) -> String| old.map_or("—".to_string(), f);
    Table {
        title: "Samples over the window".into(),
        header: vec!["".into(), "new pods".into(), "old pods".into()],
        rows: vec![
            row([
                "samples".into(),
                new.samples.to_string(),
                o(|s| s.samples.to_string()),
            ]),
            row([
                "pods".into(),
                new.pods.to_string(),
                o(|s| s.pods.to_string()),
            ]),
            row(["median".into(), num(new.median), o(|s| num(s.median))]),
            row(["p90".into(), num(new.p90), o(|s| num(s.p90))]),
            row(["max".into(), num(new.max), o(|s| num(s.max))]),
            row([
                "left out as warm-up".into(),
                new.warmup_dropped.to_string(),
                o(|s| s.warmup_dropped.to_string()),
            ]),
        ],
    }
}

fn direction(d: Direction) -> String {
    match d {
        Direction::HigherIsWorse => "higher is worse".into(),
        Direction::LowerIsWorse => "lower is worse".into(),
    }
}

fn compare(x: &CompareEvidence) -> Vec<Table> {
    let mut samples = samples_table(&x.new, Some(&x.old));
    if let Some(m) = &x.at_load {
        samples.title = format!(
            "Samples over the window, at the old version's load (each against its cost modelled as {} + {} × load, fitted on {} old samples at loads {} to {}, shown at its median load {})",
            num(m.fixed),
            num(m.per_unit),
            m.samples,
            num(m.low),
            num(m.high),
            num(m.reference_load)
        );
        samples.rows.push(row([
            "left out, no load at their moment".into(),
            m.without_load.to_string(),
            String::new(),
        ]));
    }
    if let Some(h) = &x.history {
        return vec![samples, compare_history(x, h)];
    }
    vec![
        samples,
        Table {
            title: format!(
                "The test against the old pods at the same moments (Mann-Whitney U on time-aligned samples, one-sided, {}; fails only when every condition is met)",
                direction(x.direction)
            ),
            header: vec!["".into(), "value".into(), "to fail".into(), "met".into()],
            rows: vec![
                row([
                    format!("p-value (U = {})", num(x.u_statistic)),
                    pval(x.p_value),
                    format!("< α = {}", num(x.alpha)),
                    met(x.p_value < x.alpha),
                ]),
                row([
                    "median ratio, time-aligned".into(),
                    ratio(x.median_ratio, true),
                    format!("≥ ×{}", num(x.min_ratio)),
                    met(x.ratio_met()),
                ]),
                row([
                    "Hodges-Lehmann shift".into(),
                    num(x.shift),
                    format!("≥ {} and > 0", num(x.min_shift)),
                    met(x.shift >= x.min_shift && x.shift > 0.0),
                ]),
            ],
        },
    ]
}

/// A compare verdict judged once the old pods were gone: the new pods' level against the old
/// version's before its pods left, beyond the old version's own drift over the same gap.
fn compare_history(x: &CompareEvidence, h: &CompareHistory) -> Table {
    let most = 2 * x.pods_worse > x.pods_judged;
    let mut rows = vec![
        row([
            "the old version's level before its pods left".into(),
            num(h.before),
            format!("{} to {}", hms(h.before_from), hms(h.before_to)),
            String::new(),
        ]),
        row([
            "the new pods' level after warm-up".into(),
            num(h.after),
            String::new(),
            String::new(),
        ]),
        row([
            "ratio, new to old".into(),
            ratio(Some(h.ratio), true),
            match h.unknown_drift {
                None => format!(
                    "≥ ×{}: the larger of min_ratio ×{} and the old version's own largest drift ×{} over {} s ({} pairs of stretches since {})",
                    num(h.needed),
                    num(x.min_ratio),
                    num(h.largest_drift),
                    num(h.gap_seconds),
                    h.drift_pairs,
                    hms(h.history_from)
                ),
                Some(u) => format!(
                    "≥ ×{}: the largest of min_ratio ×{}, the drift the rule assumes where the old version's history (since {}) is too short to measure it over {} s (unknown_drift ×{}), and {}",
                    num(h.needed),
                    num(x.min_ratio),
                    hms(h.history_from),
                    num(h.gap_seconds),
                    num(u),
                    match h.drift_pairs {
                        0 => "no drift measured (0 pairs of stretches)".to_string(),
                        n => format!(
                            "the largest drift measured, ×{} ({n} pairs of stretches)",
                            num(h.largest_drift)
                        ),
                    }
                ),
            },
            met(h.ratio >= h.needed),
        ]),
        row([
            "new pods each beyond the bar".into(),
            format!("{} of {}", x.pods_worse, x.pods_judged),
            format!(
                "more than half, each beyond ×{}: the largest of that, the 95th percentile of the old pods' own rises above the whole (×{}) and where one more old pod would fall by their spread ({})",
                num(h.pod_needed()),
                num(h.pod_bar),
                h.spread_bar.map_or(
                    "not set: fewer than three old pods sampled over the window".into(),
                    |b| format!("×{}", num(b))
                )
            ),
            met(most),
        ]),
        row([
            "shift".into(),
            num(x.shift),
            format!("≥ {}", num(x.min_shift)),
            met(x.shift >= x.min_shift),
        ]),
    ];
    if let Some(b) = h.while_both {
        rows.push(row([
            "while both served, ratio to the old pods".into(),
            ratio(Some(b), true),
            format!("≥ ×{}: a regression shows there too", num(x.min_ratio)),
            met(b >= x.min_ratio),
        ]));
    }
    Table {
        title: format!(
            "Against the old version's history (its pods gone; {}; fails only when every condition is met)",
            direction(x.direction)
        ),
        header: vec!["".into(), "value".into(), "to fail".into(), "met".into()],
        rows,
    }
}

fn absolute(x: &AbsoluteEvidence) -> Vec<Table> {
    let mut rows = vec![row([
        format!("new pods' p{}", quantile_name(x.quantile)),
        num(x.value),
        format!("{} {}", x.direction.symbol(), num(x.threshold)),
        met(x.breaches()),
    ])];
    rows.push(row([
        format!(
            "old pods' p{} at the same moments",
            quantile_name(x.quantile)
        ),
        x.old_value.map_or("no old pods".into(), num),
        "(a breach the old pods share is spared)".into(),
        String::new(),
    ]));
    vec![
        samples_table(&x.new, x.old.as_ref()),
        Table {
            title: format!("Against the threshold ({})", direction(x.direction)),
            header: vec!["".into(), "value".into(), "to fail".into(), "met".into()],
            rows,
        },
    ]
}

/// The tables of a logs verdict: the logs read, the signatures, and an example of each.
fn logs(x: &LogsEvidence) -> Vec<Table> {
    let mut tables = vec![logs_read(x), signatures(x)];
    tables.extend(examples(x));
    tables
}

/// How much log each side's pods gave: pods read, and pod-minutes of log.
fn logs_read(x: &LogsEvidence) -> Table {
    Table {
        title: "Logs read".into(),
        header: vec!["".into(), "new pods".into(), "old pods".into()],
        rows: vec![
            row([
                "pods read / total".into(),
                format!("{} / {}", x.new_pods_read, x.new_pods_total),
                format!("{} / {}", x.old_pods_read, x.old_pods_total),
            ]),
            row([
                "pod-minutes of log".into(),
                num(x.new_pod_minutes),
                num(x.old_pod_minutes),
            ]),
        ],
    }
}

/// Every signature's counts, rates and test, then the total of the counted kinds.
fn signatures(x: &LogsEvidence) -> Table {
    let mut rows: Vec<Vec<Cell>> = x
        .signatures
        .iter()
        .map(|r| signature_row(x, r, false))
        .collect();
    rows.push(signature_row(x, &x.total, true));
    Table {
        title: format!(
            "Signatures (the deciding one first); a signature fails with p < {} (α shared among the tests), ≥ {} errors and ≥ ×{}{}",
            pval(x.alpha_per_test),
            num(x.min_errors),
            num(x.min_ratio),
            if x.truncated {
                "; some logs were cut at the byte limit"
            } else {
                ""
            }
        ),
        header: [
            "kind",
            "signature",
            "new",
            "old",
            "new /pod-min",
            "old /pod-min",
            "ratio",
            "p-value",
            "fails",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// One row of the signatures table: `r`'s signature, or the total when `total`.
fn signature_row(x: &LogsEvidence, r: &SignatureRow, total: bool) -> Vec<Cell> {
    vec![
        t(if total {
            "all counted kinds".to_string()
        } else {
            r.kind.to_string()
        }),
        if total {
            t("(total)")
        } else {
            Cell::Code(r.signature.clone())
        },
        t(r.new.to_string()),
        t(r.old.to_string()),
        t(per_minute(r.new, x.new_pod_minutes)),
        t(per_minute(r.old, x.old_pod_minutes)),
        t(ratio(r.ratio, r.new > 0)),
        t(pval(r.p_value)),
        t(met(x.fails(r))),
    ]
}

/// An example line of each signature that kept one; `None` when none did.
fn examples(x: &LogsEvidence) -> Option<Table> {
    let examples: Vec<Vec<Cell>> = x
        .signatures
        .iter()
        .filter(|r| !r.example.is_empty())
        .map(|r| {
            vec![
                Cell::Code(r.signature.clone()),
                Cell::Code(clip(&r.example, 300)),
            ]
        })
        .collect();
    (!examples.is_empty()).then(|| Table {
        title: "An example line of each signature".into(),
        header: vec!["signature".into(), "example".into()],
        rows: examples,
    })
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
