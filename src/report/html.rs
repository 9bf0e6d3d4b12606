//! The report as one self-contained HTML page: inline CSS, inline SVG plots, no script, nothing
//! fetched; it prints on paper as it reads on screen (no collapsed parts, tables and plots kept
//! whole across pages).
//!
//! The series colours (orange for the new pods, blue for the old) are used by the plots only,
//! so that a screenshot can tell a drawn plot from the rest of the page.

use std::fmt::Write as _;

use super::evidence::{Cell, Table, tables};
use super::model::{Ending, Entry, EntryKind, Report, RuleReport, TIMELINE_LEGEND, streak_suffix};
use super::series::SeriesSet;
use super::summary::capitalised;
use super::{datetime, hms, num, plot};

/// How to render the HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtmlOptions {
    /// Draw the plots; without them each failing rule's series is a table.
    pub plots: bool,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        HtmlOptions { plots: true }
    }
}

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1d1d1f; background: #fff; margin: 0 auto; padding: 24px 28px 40px; max-width: 1140px; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #ddd; }
h3 { font-size: 16px; margin: 0 0 6px; }
h4 { font-size: 14px; margin: 16px 0 4px; }
.badge { display: inline-block; font-weight: 600; font-size: 13px; padding: 2px 10px;
  border-radius: 12px; border: 1px solid; text-transform: uppercase; letter-spacing: .03em; }
.badge.bad { background: #fbe9e9; color: #8f1d1d; border-color: #c98b8b; }
.badge.warn { background: #fff4d6; color: #6b4e00; border-color: #d8c07a; }
.badge.good { background: #e6f4e6; color: #1e5a1e; border-color: #8cbf8c; }
.badge.neutral { background: #eee; color: #333; border-color: #bbb; }
.summary { font-size: 16px; background: #f6f6f8; border-left: 4px solid #888; padding: 12px 16px;
  margin: 14px 0; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13.5px; }
th, td { border: 1px solid #d4d4d8; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f4; font-weight: 600; }
table.facts th { width: 150px; }
caption { text-align: left; font-weight: 600; padding: 2px 0 4px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f6f6f8; border: 1px solid #e2e2e6; padding: 8px 10px; white-space: pre-wrap;
  word-break: break-all; margin: 4px 0 10px; }
article.rule { border: 1px solid #ddd; border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
article.rule.decided { border-color: #999; box-shadow: 0 0 0 1px #999; }
.tag { font-size: 12px; font-weight: 600; background: #333; color: #fff; padding: 1px 8px;
  border-radius: 10px; margin-left: 8px; vertical-align: 2px; }
figure { margin: 10px 0; }
figure svg { display: block; max-width: 100%; height: auto; border: 1px solid #e2e2e6; }
figcaption { font-size: 13px; color: #444; margin-top: 4px; max-width: 720px; }
.muted { color: #555; }
td.o-fail { background: #fbe9e9; color: #8f1d1d; font-weight: 600; }
td.o-pass { background: #e9f5e9; color: #1e5a1e; }
td.o-inconclusive { background: #f1f1f1; color: #555; }
table.timeline td:nth-child(-n+2) { white-space: nowrap; }
tr.deciding td { border-top: 2px solid #333; border-bottom: 2px solid #333; }
tr.action td, tr.event td { background: #fafafa; }
tr.action.failed td:first-child, tr.event.warning td:first-child { border-left: 4px solid #b08800; }
ul.notes li { margin: 3px 0; }
footer { margin-top: 36px; font-size: 12.5px; color: #555; border-top: 1px solid #ddd; padding-top: 8px; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  article.rule, figure, table, pre, .summary { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"#;

/// Renders the report as one HTML page.
pub fn html(r: &Report, options: HtmlOptions) -> String {
    let mut out = String::new();
    let _ = write_page(&mut out, r, options);
    out
}

/// Writes the whole page: head, summary and facts, failing rules, timeline, quiet rules, notes.
fn write_page(out: &mut String, r: &Report, options: HtmlOptions) -> std::fmt::Result {
    write_head(out, r)?;
    let failing: Vec<&RuleReport> = r.failing().collect();
    if !failing.is_empty() {
        writeln!(out, "<section id=\"failing\"><h2>Rules that failed</h2>")?;
        for rule in failing {
            write_rule(out, r, rule, options)?;
        }
        writeln!(out, "</section>")?;
    }

    writeln!(out, "<section id=\"timeline\"><h2>Timeline</h2>")?;
    write_timeline(out, r)?;
    writeln!(out, "</section>")?;

    write_quiet(out, r, options)?;
    write_notes(out, r)?;
    writeln!(
        out,
        "<footer>Generated by <code>rollout-guard report</code> from {} ({} records). Times are UTC.</footer>\n</body>\n</html>",
        esc(&r.source.name),
        r.source.records
    )
}

/// The document's head, its header with the badge, the summary and the facts table.
fn write_head(out: &mut String, r: &Report) -> std::fmt::Result {
    let title = r.title();
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        esc(&title)
    )?;
    writeln!(
        out,
        "<header><h1>{}/{}, revision {}</h1><span class=\"badge {}\">{}</span></header>",
        esc(&r.namespace),
        esc(&r.deployment),
        r.revision,
        badge(&r.ending),
        esc(r.ending.headline())
    )?;
    writeln!(
        out,
        "<p class=\"summary\" id=\"summary\">{}</p>",
        esc(&r.summary)
    )?;
    writeln!(out, "<table class=\"facts\">")?;
    for (k, v) in r.facts() {
        writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v))?;
    }
    writeln!(out, "</table>")
}

/// The section on the rules that never failed: a table, then their plots; nothing without them.
fn write_quiet(out: &mut String, r: &Report, options: HtmlOptions) -> std::fmt::Result {
    let quiet: Vec<&RuleReport> = r.quiet().collect();
    if quiet.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<section id=\"quiet\"><h2>Rules that did not fail</h2><table><tr><th>rule</th><th>action</th><th>pass</th><th>inconclusive</th><th>latest reason</th></tr>"
    )?;
    for q in &quiet {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(q.name.as_str()),
            q.action,
            q.pass,
            q.inconclusive,
            esc(&q.last_reason)
        )?;
    }
    writeln!(out, "</table>")?;
    // What the rules that passed saw, plotted as for the failing ones: a rollout that passed
    // has numbers worth looking at too.
    if options.plots {
        for q in quiet {
            if let Some(series) = &q.series {
                writeln!(out, "<h3>{}</h3>", esc(q.name.as_str()))?;
                write_plot(out, r, q, series)?;
            }
        }
    }
    writeln!(out, "</section>")
}

/// The notes on the input, as a list; nothing without them.
fn write_notes(out: &mut String, r: &Report) -> std::fmt::Result {
    if r.notes.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<section id=\"notes\"><h2>Notes</h2><ul class=\"notes\">"
    )?;
    for n in &r.notes {
        writeln!(out, "<li>{}</li>", esc(n))?;
    }
    writeln!(out, "</ul></section>")
}

fn badge(e: &Ending) -> &'static str {
    match e {
        Ending::RolledBack { .. } | Ending::ActionFailed { .. } => "bad",
        Ending::Paused { .. }
        | Ending::Recorded { .. }
        | Ending::Inconclusive { .. }
        | Ending::Held { .. } => "warn",
        Ending::Passed { .. } => "good",
        Ending::NoAction { .. } => "neutral",
    }
}

fn write_rule(
    out: &mut String,
    r: &Report,
    rule: &RuleReport,
    options: HtmlOptions,
) -> std::fmt::Result {
    writeln!(
        out,
        "<article class=\"rule{}\" id=\"rule-{}\">",
        if rule.decided { " decided" } else { "" },
        esc(&rule.name)
    )?;
    writeln!(
        out,
        "<h3>{}{}</h3>\n<p class=\"muted\">{}</p>",
        esc(&rule.name),
        if rule.decided {
            "<span class=\"tag\">decided</span>"
        } else {
            ""
        },
        esc(&rule.line())
    )?;
    match (&rule.series, options.plots) {
        (Some(series), true) => write_plot(out, r, rule, series)?,
        (Some(series), false) => write_series_table(out, series)?,
        (None, _) => writeln!(
            out,
            "<p class=\"muted\">No numbers to plot: none of its verdicts carried evidence (missing data).</p>"
        )?,
    }
    let Some(shown) = &rule.shown else {
        return writeln!(out, "</article>");
    };
    writeln!(
        out,
        "<h4>Evidence of evaluation {} at {} UTC ({})</h4>\n<p><strong>{}</strong>: {}</p>",
        shown.evaluation,
        hms(shown.at),
        shown.label(),
        shown.verdict.outcome,
        esc(&shown.verdict.reason)
    )?;
    if let Some(e) = &shown.verdict.evidence {
        for t in tables(e) {
            write_table(out, &t)?;
        }
    }
    if !shown.verdict.queries.is_empty() {
        writeln!(out, "<h4>Queries as sent</h4>")?;
        for q in &shown.verdict.queries {
            writeln!(
                out,
                "<div class=\"muted\">{}, {}</div><pre>{}</pre>",
                esc(q.side.as_str()),
                esc(q.name.as_str()),
                esc(&q.promql)
            )?;
        }
    }
    if let Some(e) = &shown.verdict.error {
        writeln!(out, "<p>Query error: <code>{}</code></p>", esc(e))?;
    }
    writeln!(out, "</article>")
}

fn write_plot(
    out: &mut String,
    r: &Report,
    rule: &RuleReport,
    series: &SeriesSet,
) -> std::fmt::Result {
    match plot::svg(series, &r.marks) {
        Ok(svg) => {
            let label = format!("{}: {}", rule.name, series.title);
            // plotters writes a bare <svg ...>; name it for screen readers and for the tests.
            let svg = svg.replacen(
                "<svg ",
                &format!(
                    "<svg class=\"plot\" data-rule=\"{}\" role=\"img\" aria-label=\"{}\" ",
                    esc(&rule.name),
                    esc(&label)
                ),
                1,
            );
            writeln!(
                out,
                "<figure>\n{svg}\n<figcaption>{}. Orange: the new pods; blue: the old pods{}; purple vertical lines: the decision moments.</figcaption>\n</figure>",
                esc(&capitalised(&series.title)),
                if series.threshold.is_some() {
                    "; grey dashed: the threshold"
                } else {
                    ""
                }
            )
        }
        Err(e) => writeln!(out, "<p class=\"muted\">{}</p>", esc(&e)),
    }
}

fn write_series_table(out: &mut String, s: &SeriesSet) -> std::fmt::Result {
    writeln!(
        out,
        "<h4>Series as the judge saw it: {} ({})</h4>\n<table class=\"series\"><tr><th>time (UTC)</th>",
        esc(&s.title),
        esc(&s.y_label)
    )?;
    for l in &s.lines {
        write!(out, "<th>{}</th>", esc(&l.label))?;
    }
    if s.threshold.is_some() {
        write!(out, "<th>threshold</th>")?;
    }
    writeln!(out, "</tr>")?;
    for (i, t) in s.times.iter().enumerate() {
        write!(out, "<tr><td>{}</td>", hms(*t))?;
        for l in &s.lines {
            write!(
                out,
                "<td class=\"num\">{}</td>",
                l.values[i].map_or("—".to_string(), num)
            )?;
        }
        if let Some(th) = s.threshold {
            write!(out, "<td class=\"num\">{}</td>", num(th))?;
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</table>")
}

fn write_table(out: &mut String, t: &Table) -> std::fmt::Result {
    writeln!(
        out,
        "<table class=\"evidence\"><caption>{}</caption>",
        esc(&t.title)
    )?;
    write!(out, "<tr>")?;
    for h in &t.header {
        write!(out, "<th>{}</th>", esc(h))?;
    }
    writeln!(out, "</tr>")?;
    for row in &t.rows {
        write!(out, "<tr>")?;
        for (i, c) in row.iter().enumerate() {
            match c {
                Cell::Code(s) => write!(out, "<td><code>{}</code></td>", esc(s))?,
                Cell::Text(s) if i > 0 && looks_numeric(s) => {
                    write!(out, "<td class=\"num\">{}</td>", esc(s))?
                }
                Cell::Text(s) => write!(out, "<td>{}</td>", esc(s))?,
            }
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</table>")
}

fn looks_numeric(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || ".-+e%×∞/ ".contains(c))
}

fn write_timeline(out: &mut String, r: &Report) -> std::fmt::Result {
    write!(
        out,
        "<table class=\"timeline\"><tr><th>time (UTC)</th><th>step</th>"
    )?;
    for rule in &r.rules {
        write!(out, "<th>{}</th>", esc(&rule.name))?;
    }
    writeln!(out, "<th>what happened</th></tr>")?;
    let span = r.rules.len();
    for Entry { at, kind } in &r.timeline {
        match kind {
            EntryKind::Evaluation {
                number,
                phase,
                stage,
                outcomes,
                what,
                deciding,
            } => {
                write!(
                    out,
                    "<tr class=\"evaluation{}\"><td>{}</td><td>{}evaluation {number}{}</td>",
                    if *deciding { " deciding" } else { "" },
                    hms(*at),
                    if *deciding { "<strong>" } else { "" },
                    if *deciding { " (decides)</strong>" } else { "" },
                )?;
                for o in outcomes {
                    match o {
                        Some((outcome, streak)) => write!(
                            out,
                            "<td class=\"o-{outcome}\">{outcome}{}</td>",
                            streak_suffix(*streak)
                        )?,
                        None => write!(out, "<td></td>")?,
                    }
                }
                writeln!(
                    out,
                    "<td>{}{}; {}</td></tr>",
                    phase,
                    stage
                        .as_ref()
                        .map_or(String::new(), |s| format!(", stage {}", esc(s.as_str()))),
                    esc(what)
                )?;
            }
            EntryKind::Action { what, ok } => writeln!(
                out,
                "<tr class=\"action{}\"><td>{}</td><td>{}</td><td colspan=\"{}\"></td><td>{}</td></tr>",
                if *ok { "" } else { " failed" },
                hms(*at),
                if *ok { "action" } else { "action failed" },
                span,
                esc(what)
            )?,
            EntryKind::Event {
                reason,
                message,
                warning,
            } => writeln!(
                out,
                "<tr class=\"event{}\"><td>{}</td><td>event</td><td colspan=\"{}\"></td><td><strong>{}</strong>: {}</td></tr>",
                if *warning { " warning" } else { "" },
                hms(*at),
                span,
                esc(reason.as_str()),
                esc(message)
            )?,
        }
    }
    writeln!(
        out,
        "</table>\n<p class=\"muted\">{TIMELINE_LEGEND} From {} to {}.</p>",
        datetime(r.first),
        datetime(r.last)
    )
}

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
