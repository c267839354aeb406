//! The trace report's charts: each policy's allocation ratio over arrived workload (mean over
//! seeds), over the whole replay and zoomed on the band where the policies part ways, which on
//! the published traces is a few points below 100% past full arrival.

use super::chart::{self, Axis, Chart, Series};
use super::colour;
use super::legend::{self, LineKey};
use crate::replay::ReplayResult;

/// Arrived workload of the replays' last point, percent.
const ARRIVED_MAX: usize = 130;
/// Arrived workload at which the cluster's capacity has been requested, percent.
const FULL: f64 = 100.0;

/// One line per policy (variant), in the order run: the mean over seeds at each whole percent
/// arrived. Through-extender variants share their policy's colour, dashed.
pub fn series(runs: &[ReplayResult]) -> Vec<Series> {
    let mut variants = Vec::new();
    for r in runs {
        if !variants.contains(&r.variant) {
            variants.push(r.variant);
        }
    }
    let mut policies = Vec::new();
    for v in &variants {
        if !policies.contains(&v.policy) {
            policies.push(v.policy);
        }
    }
    variants
        .iter()
        .map(|v| {
            let mine: Vec<&ReplayResult> = runs.iter().filter(|r| r.variant == *v).collect();
            let points = (0..=ARRIVED_MAX)
                .filter_map(|a| {
                    let ys: Vec<f64> = mine
                        .iter()
                        .filter_map(|r| r.curve.get(a).map(|p| p.alloc_pct))
                        .collect();
                    (!ys.is_empty()).then(|| (a as f64, ys.iter().sum::<f64>() / ys.len() as f64))
                })
                .collect();
            let index = policies.iter().position(|p| *p == v.policy).unwrap_or(0);
            Series {
                label: v.label(),
                colour: colour::policy(index),
                dashed: v.through_extender,
                points,
            }
        })
        .collect()
}

/// The zoom chart's window: x from `.0` to `.1`, y from `.2` to `.3` (percent). The y range
/// is every policy's values from 100% to 130% arrived, widened to a round step; the x range
/// starts where every policy has stayed inside that range since (at 100% at the latest).
pub fn zoom_band(series: &[Series]) -> chart::Band {
    let x_hi = ARRIVED_MAX as f64;
    let values = |from: f64| {
        series
            .iter()
            .flat_map(move |s| s.points.iter().filter(move |p| p.0 >= from))
            .map(|p| p.1)
    };
    let low = values(FULL).fold(f64::MAX, f64::min);
    if low == f64::MAX {
        return (0.0, x_hi, 0.0, 100.0);
    }
    let step = y_step(values(FULL).fold(low, f64::max) - low);
    let y_lo = ((low / step).floor() * step).max(0.0);
    // The earliest x after which no line drops below the band again.
    let last_below = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| p.0 < FULL && p.1 < y_lo))
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let x_lo = ((last_below + 1.0) / 5.0).floor() * 5.0;
    let x_lo = x_lo.min(FULL);
    let high = values(x_lo).fold(low, f64::max);
    let step = y_step(high - y_lo);
    let y_hi = ((high / step).ceil() * step).max(y_lo + step);
    (x_lo, x_hi, y_lo, y_hi)
}

/// A tick step giving at most about ten ticks over `span`.
fn y_step(span: f64) -> f64 {
    [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        .into_iter()
        .find(|s| span / s <= 10.0)
        .unwrap_or(25.0)
}

fn arrived_axis(lo: f64, hi: f64) -> Axis {
    Axis {
        lo,
        hi,
        step: if hi - lo <= 50.0 { 5.0 } else { 10.0 },
        title: "Arrived workload: GPU requested so far, % of cluster GPU capacity".to_string(),
    }
}

fn alloc_axis(lo: f64, hi: f64, step: f64) -> Axis {
    Axis {
        lo,
        hi,
        step,
        title: "GPU allocation ratio, % of capacity".to_string(),
    }
}

/// The key, the full chart with the zoom band shaded, and the zoom chart under its heading.
pub fn charts(series: &[Series]) -> String {
    let keys: Vec<LineKey<'_>> = series
        .iter()
        .map(|s| LineKey {
            label: &s.label,
            colour: &s.colour,
            dashed: s.dashed,
        })
        .collect();
    let band = zoom_band(series);
    let (x_lo, x_hi, y_lo, y_hi) = band;
    let full = chart::line_chart(&Chart {
        id: "alloc-full",
        x: arrived_axis(0.0, ARRIVED_MAX as f64),
        y: alloc_axis(0.0, 100.0, 10.0),
        series,
        shade: Some((band, "zoomed below")),
    });
    let zoom = chart::line_chart(&Chart {
        id: "alloc-zoom",
        x: arrived_axis(x_lo, x_hi),
        y: alloc_axis(y_lo, y_hi, y_step(y_hi - y_lo)),
        series,
        shade: None,
    });
    let key = legend::line_key(&keys);
    format!(
        "{key}{full}\n<h2 id=\"zoom\">Zoom: {x_lo:.0}–{x_hi:.0}% arrived, allocation {y_lo}–{y_hi}%</h2>\
         <p class=\"note\">The band where the policies differ, enlarged (the shaded box above). \
         Lines that coincide are drawn over each other: the table below has every policy's numbers.</p>{key}{zoom}\n"
    )
}
