//! Legends: the key to the node view's encoding (bars, free, unhealthy, faults), the list of
//! pods with their colour and share, and the policies' line key for the charts.

use std::fmt::Write as _;

use tessera_core::ledger::ClusterLedger;

use super::bars::{gib, pct};
use super::colour;
use super::nodes;
use super::page::{escape, swatch};

/// A small inline SVG.
fn sample(w: u32, h: u32, inner: &str) -> String {
    format!(
        "<svg class=\"sample\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">{inner}</svg>"
    )
}

/// The key to the node view of `ledger`; `with_faults` when the page marks spreading faults.
pub fn node_key(ledger: &ClusterLedger, with_faults: bool) -> String {
    let detailed = nodes::is_detailed(ledger);
    let gpus = || ledger.nodes().iter().flat_map(|n| &n.gpus);
    let (mem_known, mem_unknown) = (
        gpus().any(|g| g.mem_total_mib > 0),
        gpus().any(|g| g.mem_total_mib == 0),
    );
    let (mem, core) = if detailed {
        (colour::pod(0), colour::pod(1))
    } else {
        (
            colour::MEM_TOTAL.to_string(),
            colour::CORE_TOTAL.to_string(),
        )
    };
    let gpu = sample(
        24,
        22,
        &format!(
            "<rect x=\"2\" y=\"1\" width=\"9\" height=\"20\" fill=\"{free}\" stroke=\"#b0b0b0\"/>\
             <rect x=\"2\" y=\"9\" width=\"9\" height=\"12\" fill=\"{mem}\"/>\
             <rect x=\"12\" y=\"1\" width=\"9\" height=\"20\" fill=\"{free}\" stroke=\"#b0b0b0\"/>\
             <rect x=\"12\" y=\"15\" width=\"9\" height=\"6\" fill=\"{core}\"/>",
            free = colour::FREE
        ),
    );
    let unhealthy = sample(
        14,
        22,
        &format!(
            "<rect x=\"2\" y=\"1\" width=\"10\" height=\"20\" fill=\"#fde4e4\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <path d=\"M2,8 L12,1 M2,15 L12,8 M2,21 L12,14\" stroke=\"{c}\" stroke-width=\"1.5\"/>",
            c = colour::UNHEALTHY
        ),
    );
    let fault = sample(
        30,
        22,
        &format!(
            "<rect x=\"2\" y=\"2\" width=\"26\" height=\"18\" rx=\"3\" fill=\"#fafafa\" stroke=\"{}\" stroke-width=\"2.5\" stroke-dasharray=\"6 3\"/>",
            colour::FAULT
        ),
    );
    let mut items = vec![
        format!(
            "{gpu} one GPU: <b>left bar = GPU memory</b>, <b>right bar = compute</b>; the height \
             of a segment is the share of that GPU held"
        ),
        swatch(colour::FREE, "free (held by nobody)"),
    ];
    if detailed {
        items.push(
            "each coloured segment is one pod, its colour listed under <i>Pods on GPUs</i>; \
             hover a segment for the pod and its share"
                .to_string(),
        );
    } else {
        items.push(
            "too many pods to colour each: every GPU shows its totals; hover a node for its name"
                .to_string(),
        );
        if mem_known {
            items.push(swatch(colour::MEM_TOTAL, "memory held"));
        }
        items.push(swatch(colour::CORE_TOTAL, "compute held"));
    }
    items.push(format!(
        "{unhealthy} unhealthy GPU (red outline, hatched, ✕ by its index): no new shares"
    ));
    if with_faults {
        items.push(format!(
            "{fault} node with a spreading fault (⚠ anti-affinity or quorum), listed under \
             <i>Spreading faults</i>"
        ));
    }
    if mem_unknown {
        items.push("a single wide bar: GPU memory unknown (trace), compute only".to_string());
    }
    let mut out = String::from("<div class=\"key\">");
    for item in items {
        let _ = write!(out, "<span>{item}</span>");
    }
    out.push_str("</div>");
    out
}

/// Every pod on a GPU, once, with its colour and share, grouped under its node in drawing
/// order; `None` when the picture draws totals instead of pods.
pub fn pod_list(ledger: &ClusterLedger) -> Option<String> {
    if !nodes::is_detailed(ledger) {
        return None;
    }
    let pods = nodes::gpu_pods(ledger);
    if pods.is_empty() {
        return Some("<p class=\"note\">No pod holds a GPU share.</p>".to_string());
    }
    let mut out = String::from(
        "<p class=\"note\">Each pod's colour, then its share of each GPU it holds: memory (where known) and compute.</p>\
         <div class=\"pods\">",
    );
    let mut node = None;
    for (i, p) in pods.iter().enumerate() {
        if node != Some(p.node) {
            if node.is_some() {
                out.push_str("</div>");
            }
            let _ = write!(out, "<div class=\"podnode\"><b>{}</b>", escape(p.node));
            node = Some(p.node);
        }
        let n = p.gpus.max(1) as u64;
        let mem = if p.mem_known {
            format!("{}, ", gib(p.mem_mib / n))
        } else {
            String::new()
        };
        let share = match (n > 1, mem.is_empty()) {
            (false, _) => format!("{mem}{}", pct(p.core_milli)),
            (true, true) => format!("{n} GPUs × {}", pct(p.core_milli / n)),
            (true, false) => format!("{n} GPUs × ({mem}{})", pct(p.core_milli / n)),
        };
        let _ = write!(
            out,
            "<div class=\"pod\" title=\"{} — {} memory, {} compute — on {}\">{} <span class=\"share\">{}</span></div>",
            escape(p.name),
            gib(p.mem_mib),
            pct(p.core_milli),
            escape(p.node),
            swatch(&colour::pod(i), p.name),
            escape(&share)
        );
    }
    out.push_str("</div></div>");
    Some(out)
}

/// One policy line in the charts' key.
pub struct LineKey<'a> {
    /// Policy label.
    pub label: &'a str,
    /// Line colour.
    pub colour: &'a str,
    /// Dashed (through the extender's 0–10 scores).
    pub dashed: bool,
}

/// The policies' key: a line sample per policy.
pub fn line_key(lines: &[LineKey<'_>]) -> String {
    let mut out = String::from("<div class=\"key\">");
    for l in lines {
        let dash = if l.dashed {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let line = sample(
            30,
            12,
            &format!(
                "<line x1=\"1\" y1=\"6\" x2=\"29\" y2=\"6\" stroke=\"{}\" stroke-width=\"3\"{dash}/>",
                l.colour
            ),
        );
        let _ = write!(out, "<span>{line} {}</span>", escape(l.label));
    }
    out.push_str("</div>");
    out
}
