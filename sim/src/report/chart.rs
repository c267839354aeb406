//! A line chart in SVG: a plot area with grid, ticks and titled axes, lines clipped to the area,
//! and an optional shaded band (the main chart shades what the zoom chart enlarges). Knows
//! nothing about policies or traces.

use std::fmt::Write as _;

use super::page::escape;

/// One axis: range, tick step and title.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Lowest value shown.
    pub lo: f64,
    /// Highest value shown.
    pub hi: f64,
    /// Distance between ticks.
    pub step: f64,
    /// Axis title, with unit.
    pub title: String,
}

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name in the key and the line's tooltip.
    pub label: String,
    /// Stroke colour.
    pub colour: String,
    /// Dashed stroke.
    pub dashed: bool,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
}

/// A rectangle in data units: x from `.0` to `.1`, y from `.2` to `.3`.
pub type Band = (f64, f64, f64, f64);

/// A chart to draw.
pub struct Chart<'a> {
    /// Unique within the page (names the clip path).
    pub id: &'a str,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Lines.
    pub series: &'a [Series],
    /// A band to shade, with its caption.
    pub shade: Option<(Band, &'a str)>,
}

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 56.0;

fn ticks(axis: &Axis) -> Vec<f64> {
    let first = (axis.lo / axis.step).ceil() as i64;
    let last = (axis.hi / axis.step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * axis.step).collect()
}

fn tick_label(v: f64, step: f64) -> String {
    if step.fract().abs() > 1e-9 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Draws the chart.
pub fn line_chart(c: &Chart<'_>) -> String {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |v: f64| LEFT + (v - c.x.lo) / (c.x.hi - c.x.lo) * pw;
    let sy = |v: f64| TOP + ph - (v - c.y.lo) / (c.y.hi - c.y.lo) * ph;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"{id}\" width=\"{W}\" height=\"{H}\" \
         data-x-lo=\"{}\" data-x-hi=\"{}\" data-y-lo=\"{}\" data-y-hi=\"{}\">\
         <defs><clipPath id=\"{id}-area\"><rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\"/></clipPath></defs>",
        c.x.lo,
        c.x.hi,
        c.y.lo,
        c.y.hi,
        id = escape(c.id)
    );
    if let Some(((x0, x1, y0, y1), caption)) = c.shade {
        let (left, right) = (sx(x0.max(c.x.lo)), sx(x1.min(c.x.hi)));
        let (top, bottom) = (sy(y1.min(c.y.hi)), sy(y0.max(c.y.lo)));
        let _ = write!(
            out,
            "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fff3c4\" stroke=\"#e0b000\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#8a6d00\">{}</text>",
            right - left,
            bottom - top,
            right - 4.0,
            bottom + 14.0,
            escape(caption)
        );
    }
    grid(&mut out, c, &sx, &sy);
    for s in c.series {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let dash = if s.dashed {
            " stroke-dasharray=\"7 4\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<polyline clip-path=\"url(#{}-area)\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{}</title></polyline>",
            escape(c.id),
            s.colour,
            points.join(" "),
            escape(&s.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// Grid lines, tick labels, the plot frame and both axis titles.
fn grid(out: &mut String, c: &Chart<'_>, sx: &dyn Fn(f64) -> f64, sy: &dyn Fn(f64) -> f64) {
    let (bottom, right) = (H - BOTTOM, W - RIGHT);
    for v in ticks(&c.x) {
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{x:.1}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            bottom + 15.0,
            tick_label(v, c.x.step),
            x = sx(v)
        );
    }
    for v in ticks(&c.y) {
        let y = sy(v);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            tick_label(v, c.y.step)
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.0}\" height=\"{:.0}\" fill=\"none\" stroke=\"#777\"/>\
         <text class=\"axis-title\" x=\"{:.0}\" y=\"{:.0}\" font-size=\"13\" text-anchor=\"middle\">{}</text>\
         <text class=\"axis-title\" transform=\"translate(18,{:.0}) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\">{}</text>",
        right - LEFT,
        bottom - TOP,
        LEFT + (right - LEFT) / 2.0,
        H - 12.0,
        escape(&c.x.title),
        TOP + (bottom - TOP) / 2.0,
        escape(&c.y.title)
    );
}
