//! The `--report` page: one self-contained HTML file with an SVG picture of every node's GPUs
//! and the shares on them, and, for trace replays, the allocation curve over arrived workload per
//! policy. Built as a string; the CLI writes it.

use std::fmt::Write as _;

use crate::ledger::{ClusterLedger, NodeLedger};
use crate::request::MILLI_PER_GPU;

use super::replay::ReplayResult;
use super::scenario::ScenarioOutcome;

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(pod: &str) -> &'static str {
    let h = pod
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    PALETTE[h as usize % PALETTE.len()]
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}svg{{background:#fafafa;border:1px solid #ddd}}\
         .legend span{{display:inline-block;margin-right:1em}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

/// One node: a labelled box of GPU columns, each filled bottom-up by its holders' compute shares.
fn node_svg(out: &mut String, node: &NodeLedger, x: u32, y: u32, detailed: bool) {
    const GPU_W: u32 = 10;
    const H: u32 = 40;
    let _ = write!(
        out,
        "<g transform=\"translate({x},{y})\"><title>{}</title>",
        escape(&node.name)
    );
    for (i, gpu) in node.gpus.iter().enumerate() {
        let gx = i as u32 * (GPU_W + 2);
        let stroke = if gpu.healthy { "#999" } else { "#d00" };
        let _ = write!(
            out,
            "<rect x=\"{gx}\" y=\"0\" width=\"{GPU_W}\" height=\"{H}\" fill=\"#fff\" stroke=\"{stroke}\"/>"
        );
        let mut filled = 0.0;
        let mut shares: Vec<(&String, u32)> = Vec::new();
        for (pod, h) in node.holders() {
            for s in h.placement.shares().filter(|s| s.gpu == i) {
                shares.push((pod, s.core_milli));
            }
        }
        if !detailed {
            let used = MILLI_PER_GPU - gpu.core_free.min(MILLI_PER_GPU);
            shares = vec![];
            let h = f64::from(H) * f64::from(used) / 1000.0;
            let _ = write!(
                out,
                "<rect x=\"{gx}\" y=\"{:.1}\" width=\"{GPU_W}\" height=\"{h:.1}\" fill=\"#4e79a7\"/>",
                f64::from(H) - h
            );
        }
        for (pod, milli) in shares {
            let h = f64::from(H) * f64::from(milli) / 1000.0;
            filled += h;
            let _ = write!(
                out,
                "<rect x=\"{gx}\" y=\"{:.1}\" width=\"{GPU_W}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}%</title></rect>",
                f64::from(H) - filled,
                colour(pod),
                escape(pod),
                milli / 10
            );
        }
    }
    let _ = write!(
        out,
        "<text x=\"0\" y=\"{}\" font-size=\"8\">{}</text></g>",
        H + 10,
        escape(&node.name)
    );
}

/// Every GPU node of the ledger, in a grid.
pub fn gpu_picture(ledger: &ClusterLedger) -> String {
    let nodes: Vec<&NodeLedger> = ledger
        .nodes()
        .iter()
        .filter(|n| !n.gpus.is_empty())
        .collect();
    let detailed = nodes.len() <= 200;
    let per_row = 12u32;
    let (cell_w, cell_h) = (110u32, 56u32);
    let rows = (nodes.len() as u32).div_ceil(per_row).max(1);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">",
        per_row * cell_w + 10,
        rows * cell_h + 10
    );
    for (k, node) in nodes.iter().enumerate() {
        let (col, row) = (k as u32 % per_row, k as u32 / per_row);
        node_svg(&mut out, node, 5 + col * cell_w, 5 + row * cell_h, detailed);
    }
    out.push_str("</svg>");
    out
}

/// The mean allocation curve of each policy over arrived workload (0–130%).
pub fn curves(runs: &[ReplayResult]) -> String {
    let (w, h, pad) = (640.0, 360.0, 40.0);
    let mut policies: Vec<_> = runs.iter().map(|r| r.variant).collect();
    policies.dedup();
    let mut out =
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">");
    let x = |a: f64| pad + a / 130.0 * (w - 2.0 * pad);
    let y = |p: f64| h - pad - p / 100.0 * (h - 2.0 * pad);
    for tick in [0.0, 50.0, 100.0, 130.0] {
        let _ = write!(
            out,
            "<text x=\"{:.0}\" y=\"{}\" font-size=\"10\">{tick}%</text>",
            x(tick) - 8.0,
            h - pad + 14.0
        );
    }
    for tick in [0.0, 50.0, 80.0, 100.0] {
        let _ = write!(
            out,
            "<text x=\"4\" y=\"{:.0}\" font-size=\"10\">{tick}%</text>",
            y(tick) + 3.0
        );
        let _ = write!(
            out,
            "<line x1=\"{pad}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            w - pad,
            y(tick),
            y(tick)
        );
    }
    let mut legend = String::from("<p class=\"legend\">");
    for (k, p) in policies.iter().enumerate() {
        let mine: Vec<&ReplayResult> = runs.iter().filter(|r| r.variant == *p).collect();
        let points: Vec<String> = (0..=130)
            .map(|a| {
                let mean = mine.iter().map(|r| r.curve[a].alloc_pct).sum::<f64>()
                    / mine.len().max(1) as f64;
                format!("{:.1},{:.1}", x(a as f64), y(mean))
            })
            .collect();
        let c = PALETTE[k % PALETTE.len()];
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = write!(
            legend,
            "<span style=\"color:{c}\">&#9632; {}</span>",
            escape(&p.label())
        );
    }
    out.push_str("</svg>");
    legend.push_str("</p>");
    legend + &out
}

/// The trace report: curves of every policy, and the first run's final GPUs.
pub fn trace_report(title: &str, runs: &[ReplayResult]) -> String {
    let mut body = String::from("<h2>GPU allocation over arrived workload (mean over seeds)</h2>");
    body.push_str(&curves(runs));
    if let Some((first, ledger)) = runs.first().and_then(|r| r.ledger.as_ref().map(|l| (r, l))) {
        let _ = write!(
            body,
            "<h2>GPUs at the end of {} seed {} (each column a GPU, filled by allocated compute)</h2>",
            escape(&first.variant.label()),
            first.seed
        );
        body.push_str(&gpu_picture(ledger));
    }
    page(title, &body)
}

/// The scenario report: every node's GPUs with each pod's share.
pub fn scenario_report(title: &str, o: &ScenarioOutcome) -> String {
    let mut body = format!(
        "<p>{} of {} pods placed; GPU allocation {:.1}%; fragmentation {:.2} GPUs; quorum violations {}.</p>",
        o.placed, o.pods, o.alloc_pct, o.fragmentation_gpus, o.violations.quorum
    );
    body.push_str(
        "<h2>GPUs (each column a GPU; each colour a pod's compute share; hover for names)</h2>",
    );
    body.push_str(&gpu_picture(&o.ledger));
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_every_gpu_is_drawn() {
        let mut ledger = ClusterLedger::new(10);
        ledger.upsert_node(
            "<n1>",
            None,
            &crate::testing::gpus("n1", 3, "T4", 16384),
            crate::ledger::HostCapacity::untracked(),
        );
        let svg = gpu_picture(&ledger);
        assert!(svg.contains("&lt;n1&gt;") && !svg.contains("<n1>"));
        assert_eq!(svg.matches("stroke=\"#999\"").count(), 3);
    }
}
