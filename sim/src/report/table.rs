//! The trace report's table of numbers: one row per policy, one column per entry of `COLUMNS`
//! (a new figure in `PolicySummary` is one more entry there). Cells are plain text, escaped
//! when written.

use std::fmt::Write as _;

use super::chart::Series;
use super::page::{escape, swatch};
use crate::summary::{LimitSummary, PolicySummary, SeedFigures, TraceSummary};

/// A column: its header, whether it holds a number (right-aligned), and how a row's cell reads.
struct Column {
    title: &'static str,
    numeric: bool,
    cell: fn(&PolicySummary) -> String,
    /// The cell of a limit's row (bound, online reference), where the figure applies.
    limit: Option<fn(&LimitSummary) -> String>,
}

const DASH: &str = "—";

/// The smallest and largest of one figure over the seeds, with `decimals` places.
fn seed_range(p: &PolicySummary, figure: fn(&SeedFigures) -> f64, decimals: usize) -> String {
    let values = p.per_seed.iter().map(figure);
    let lo = values.clone().fold(f64::MAX, f64::min);
    let hi = values.fold(f64::MIN, f64::max);
    if lo > hi {
        DASH.to_string()
    } else {
        format!("{lo:.decimals$}–{hi:.decimals$}")
    }
}

const COLUMNS: &[Column] = &[
    Column {
        title: "alloc@100 %",
        numeric: true,
        cell: |p| format!("{:.2}", p.alloc_pct_100),
        limit: None,
    },
    Column {
        title: "alloc@130 %",
        numeric: true,
        cell: |p| format!("{:.2}", p.alloc_pct_130),
        limit: Some(|l| format!("{:.2}", l.alloc_pct_130)),
    },
    Column {
        title: "unallocated GPUs @130",
        numeric: true,
        cell: |p| format!("{:.1}", p.unallocated_gpus_130),
        limit: Some(|l| format!("{:.1}", l.unallocated_gpus_130)),
    },
    Column {
        title: "alloc@130 % over seeds (min–max)",
        numeric: true,
        cell: |p| seed_range(p, |s| s.alloc_pct_130, 2),
        limit: None,
    },
    Column {
        title: "failed pods per seed (min–max)",
        numeric: true,
        cell: |p| seed_range(p, |s| s.failed as f64, 0),
        limit: None,
    },
    Column {
        title: "published alloc@100 %",
        numeric: true,
        cell: |p| {
            p.published
                .as_ref()
                .map_or(DASH.to_string(), |b| format!("{:.2}", b.alloc_pct_100))
        },
        limit: None,
    },
    Column {
        title: "published alloc@130 %",
        numeric: true,
        cell: |p| {
            p.published
                .as_ref()
                .map_or(DASH.to_string(), |b| format!("{:.2}", b.alloc_pct_130))
        },
        limit: None,
    },
    Column {
        title: "published unallocated GPUs @130",
        numeric: true,
        cell: |p| {
            p.published.as_ref().map_or(DASH.to_string(), |b| {
                format!("{:.1}", b.unallocated_gpus_130)
            })
        },
        limit: None,
    },
];

/// The table; the policy cell carries its line's colour from `series` (matched by label).
pub fn numbers(summary: &TraceSummary, series: &[Series]) -> String {
    let mut out = format!(
        "<p>Trace <b>{}</b>: {} GPUs, {} seed(s) ({}); means over seeds. \
         Allocation ratio is allocated GPU compute as a percent of the cluster's, at 100% and \
         130% of capacity arrived.</p><table class=\"numbers\"><tr><th>policy</th>",
        escape(&summary.trace),
        summary.cluster_gpus,
        summary.seeds.len(),
        escape(
            &summary
                .seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    for c in COLUMNS {
        let _ = write!(out, "<th>{}</th>", escape(c.title));
    }
    out.push_str("</tr>");
    for p in &summary.policies {
        let colour = series
            .iter()
            .find(|s| s.label == p.policy)
            .map_or("#fff", |s| s.colour.as_str());
        let _ = write!(out, "<tr><td>{}</td>", swatch(colour, &p.policy));
        for c in COLUMNS {
            let class = if c.numeric { " class=\"num\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(&(c.cell)(p)));
        }
        out.push_str("</tr>");
    }
    let limits = [
        ("upper bound", summary.bound.as_ref()),
        ("online reference", summary.reference.as_ref()),
    ];
    for (name, limit) in limits {
        let Some(limit) = limit else { continue };
        let _ = write!(
            out,
            "<tr class=\"limit\"><td><i>{}</i> ({})</td>",
            escape(name),
            escape(&limit.method)
        );
        for c in COLUMNS {
            let cell = c.limit.map_or(DASH.to_string(), |f| f(limit));
            let _ = write!(out, "<td class=\"num\">{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}
