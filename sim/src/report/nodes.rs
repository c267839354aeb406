//! The node view: every node a box, every GPU in it two bars side by side, memory on the left
//! and compute on the right, each filled bottom-up by the shares held on that GPU. A pod asking
//! only for memory (gpushare's `aliyun.com/gpu-mem`) therefore shows as a memory segment with
//! no compute. Unhealthy GPUs are hatched and outlined; nodes with a spreading fault get a
//! dashed border and a marker. The legend that explains all this is in `legend`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use tessera_core::affinity::{FaultKind, SpreadFault};
use tessera_core::ledger::{ClusterLedger, NodeLedger};

use super::layout::{COMPACT, DETAILED, Geometry, View};
use super::page::escape;
use super::{bars, colour};

/// Above this many pods on GPUs, or this many nodes, the picture draws each GPU's totals in two
/// fixed colours instead of one colour per pod (a trace holds thousands of pods).
pub const DETAILED_MAX_PODS: usize = 400;
const DETAILED_MAX_NODES: usize = 200;
/// Width the boxes flow in before wrapping, px.
const ROW_WIDTH: f64 = 1320.0;

/// A pod holding GPU shares, with its totals over all its GPUs.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPod<'a> {
    /// `namespace/name` (or the trace's pod name).
    pub name: &'a str,
    /// Node it is on.
    pub node: &'a str,
    /// Distinct GPUs it holds shares of.
    pub gpus: usize,
    /// GPU memory held, MiB, over all its GPUs.
    pub mem_mib: u64,
    /// Whether its GPUs' memory is known (trace GPUs have none recorded).
    pub mem_known: bool,
    /// Compute held, thousandths of a GPU, over all its GPUs.
    pub core_milli: u64,
}

/// Pods on GPUs in drawing order (node order, then pod name); the position is the colour index.
pub fn gpu_pods(ledger: &ClusterLedger) -> Vec<GpuPod<'_>> {
    let mut out = Vec::new();
    for node in ledger.nodes() {
        for (pod, holding) in node.holders() {
            let shares: Vec<_> = holding.placement.shares().collect();
            if shares.is_empty() {
                continue;
            }
            out.push(GpuPod {
                name: pod,
                node: &node.name,
                gpus: shares.iter().map(|s| s.gpu).collect::<BTreeSet<_>>().len(),
                mem_mib: shares.iter().map(|s| s.mem_mib).sum(),
                mem_known: shares
                    .iter()
                    .all(|s| node.gpus.get(s.gpu).is_some_and(|g| g.mem_total_mib > 0)),
                core_milli: shares.iter().map(|s| u64::from(s.core_milli)).sum(),
            });
        }
    }
    out
}

/// Whether the picture colours each pod (small clusters) or draws totals (traces).
pub fn is_detailed(ledger: &ClusterLedger) -> bool {
    ledger.nodes().len() <= DETAILED_MAX_NODES && gpu_pods(ledger).len() <= DETAILED_MAX_PODS
}

/// The SVG of every GPU node (and, when detailed, the nodes without GPUs too, so that faults on
/// them show), with `faults` marked on their nodes.
pub fn gpu_picture(ledger: &ClusterLedger, faults: &[SpreadFault]) -> String {
    let detailed = is_detailed(ledger);
    let mut faults_by_node: HashMap<&str, Vec<&SpreadFault>> = HashMap::new();
    for f in faults {
        if let Some(node) = &f.node {
            faults_by_node.entry(node.as_str()).or_default().push(f);
        }
    }
    let view = View {
        geo: if detailed { &DETAILED } else { &COMPACT },
        detailed,
        colours: gpu_pods(ledger)
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name, colour::pod(i)))
            .collect(),
        faults: faults_by_node,
    };
    let (gpu_nodes, cpu_nodes): (Vec<&NodeLedger>, Vec<&NodeLedger>) =
        ledger.nodes().iter().partition(|n| !n.gpus.is_empty());
    let shown = gpu_nodes
        .into_iter()
        .chain(cpu_nodes.into_iter().filter(|_| detailed));
    let (mut body, mut x, mut y, mut widest) = (String::new(), 5.0, 5.0, 0.0f64);
    let row_h = view.geo.node_h() + view.geo.row_gap;
    for node in shown {
        let w = view.geo.node_w(node.gpus.len());
        if x > 5.0 && x + w > ROW_WIDTH {
            (x, y) = (5.0, y + row_h);
        }
        node_svg(&mut body, &view, node, x, y);
        x += w + view.geo.row_gap;
        widest = widest.max(x);
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"nodes\" width=\"{:.0}\" height=\"{:.0}\">\
         <defs><pattern id=\"unhealthy\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fde4e4\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"{}\" stroke-width=\"2\"/></pattern></defs>\
         {body}</svg>",
        widest.max(200.0),
        y + row_h,
        colour::UNHEALTHY
    )
}

fn node_svg(out: &mut String, view: &View<'_>, node: &NodeLedger, x: f64, y: f64) {
    let geo = view.geo;
    let faults = view.faults.get(node.name.as_str());
    let (w, h) = (geo.node_w(node.gpus.len()), geo.node_h());
    let border = match faults {
        Some(_) => format!(
            "stroke=\"{}\" stroke-width=\"2.5\" stroke-dasharray=\"6 3\"",
            colour::FAULT
        ),
        None => "stroke=\"#999\" stroke-width=\"1\"".to_string(),
    };
    let name = escape(&node.name);
    let _ = write!(
        out,
        "<g class=\"node\" transform=\"translate({x:.1},{y:.1})\"><title>{name}{}: {} pod(s)</title>\
         <rect width=\"{w:.1}\" height=\"{h:.1}\" rx=\"3\" fill=\"#fafafa\" {border}/>",
        node.zone
            .as_deref()
            .map(|z| format!(" ({})", escape(z)))
            .unwrap_or_default(),
        node.holders().len()
    );
    if view.detailed {
        node_header(out, geo, node);
    }
    for i in 0..node.gpus.len() {
        let gx = geo.pad + i as f64 * (2.0 * geo.bar_w + geo.bar_gap + geo.gpu_gap);
        bars::gpu_svg(out, view, node, i, gx);
    }
    if let Some(faults) = faults {
        fault_marker(out, geo, faults, view.detailed);
    }
    out.push_str("</g>");
}

fn node_header(out: &mut String, geo: &Geometry, node: &NodeLedger) {
    let model = node.gpus.first().map(|g| g.ident.model.as_str());
    let detail = match (node.zone.as_deref(), model) {
        (Some(z), Some(m)) => format!("{z} · {m}"),
        (None, Some(m)) => m.to_string(),
        (Some(z), None) => format!("{z} · no GPU"),
        (None, None) => "no GPU".to_string(),
    };
    let _ = write!(
        out,
        "<text x=\"{p}\" y=\"13\" font-size=\"11\" font-weight=\"bold\">{}</text>\
         <text x=\"{p}\" y=\"25\" font-size=\"9\" fill=\"#555\">{}</text>",
        escape(&node.name),
        escape(&detail),
        p = geo.pad
    );
    if node.gpus.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.0}\" font-size=\"10\" fill=\"#555\">{} pod(s), CPU only</text>",
            geo.pad,
            geo.header + geo.bar_h / 2.0,
            node.holders().len()
        );
    }
}

/// The ⚠ line under a node's GPUs (detailed), or a corner triangle (compact).
fn fault_marker(out: &mut String, geo: &Geometry, faults: &[&SpreadFault], detailed: bool) {
    if !detailed {
        let _ = write!(
            out,
            "<path d=\"M0,0 h8 L0,8 z\" fill=\"{}\"/>",
            colour::FAULT
        );
        return;
    }
    let kinds: BTreeSet<&str> = faults
        .iter()
        .map(|f| match f.kind {
            FaultKind::AntiAffinity => "anti-affinity",
            FaultKind::Quorum => "quorum",
        })
        .collect();
    let _ = write!(
        out,
        "<text class=\"fault\" x=\"{}\" y=\"{:.0}\" font-size=\"10\" font-weight=\"bold\" fill=\"{}\">⚠ {}</text>",
        geo.pad,
        geo.header + geo.bar_h + 25.0,
        colour::FAULT,
        kinds.into_iter().collect::<Vec<_>>().join(", ")
    );
}
