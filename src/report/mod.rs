//! `report`: decision records in, a post-incident report out, for a person rather than a
//! machine.
//!
//! Pure: [`select`] picks one Deployment's records for one revision (and lists what the file
//! holds when nothing matches), [`build`] turns them into a [`Report`] (the ending, a summary
//! paragraph, the timeline of evaluations, actions and events, and per failing rule the
//! evidence of the deciding evaluation with its series over the evaluations), and
//! [`markdown`] / [`html`] render it. The HTML is one self-contained file: inline CSS, inline
//! SVG plots, no script and nothing fetched. Reading the file and writing the document is the
//! command line's business.

mod evidence;
mod html;
mod images;
mod markdown;
mod model;
pub mod plot;
mod select;
mod series;
mod summary;

#[cfg(test)]
mod tests;

use jiff::Timestamp;

pub use html::{HtmlOptions, html};
pub use images::{Change, Images};
pub use markdown::markdown;
pub use model::{Ending, Entry, EntryKind, Mark, Report, RuleReport, Shown, Source};
pub use select::{DeploymentInfo, Inventory, RevisionInfo, SelectError, Selection};
pub use series::{Line, SeriesSet, Side};

/// Selects the records of `selection` and builds their report.
pub fn build(
    records: &[crate::records::Record],
    selection: &Selection,
    source: Source,
) -> Result<Report, SelectError> {
    let selected = select::select(records, selection)?;
    Ok(model::build(&selected, source))
}

/// `HH:MM:SS` in UTC.
pub fn hms(t: Timestamp) -> String {
    crate::analysis::judge::fmt_hms(t)
}

/// A date and time in UTC, to the second.
pub fn datetime(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A number with up to four significant digits, no trailing zeros.
pub fn num(v: f64) -> String {
    crate::analysis::judge::fmt_num(v)
}

/// A rate (a fraction) as a percentage.
pub fn pct(rate: f64) -> String {
    crate::analysis::judge::fmt_pct(rate)
}

/// A p-value: three decimals, or two significant digits in scientific notation when small.
pub fn pval(p: f64) -> String {
    if p == 0.0 {
        "0.000".into()
    } else {
        crate::analysis::judge::fmt_p(p)
    }
}
