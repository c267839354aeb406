//! One GPU in the node view: a memory bar and a compute bar on a free-coloured background,
//! stacked bottom-up with each pod's share (detailed) or the GPU's totals (compact). A GPU of
//! unknown memory (trace GPUs) gets one wide compute bar. Unhealthy GPUs are hatched.

use std::fmt::Write as _;

use tessera_core::ledger::{GpuState, NodeLedger};
use tessera_core::request::MILLI_PER_GPU;

use super::colour;
use super::layout::View;
use super::page::escape;

/// Percent of a GPU's compute, from thousandths.
pub fn pct(milli: u64) -> String {
    if milli.is_multiple_of(10) {
        format!("{}%", milli / 10)
    } else {
        format!("{:.1}%", milli as f64 / 10.0)
    }
}

/// GiB, from MiB.
pub fn gib(mib: u64) -> String {
    format!("{:.1} GiB", mib as f64 / 1024.0)
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part.min(whole) as f64 / whole as f64
    }
}

/// Where one bar is drawn, px, and which resource it shows (`mem` or `core`, also its class).
struct Bar {
    class: &'static str,
    x: f64,
    w: f64,
}

/// One pod's part of one GPU (or, compact, the GPU's totals): fractions of the bar heights.
struct Segment<'a> {
    pod: Option<&'a str>,
    colour: Option<&'a str>,
    mem: f64,
    core: f64,
    text: String,
}

/// Draws GPU `i` of `node` with its left edge at `gx`.
pub fn gpu_svg(out: &mut String, view: &View<'_>, node: &NodeLedger, i: usize, gx: f64) {
    let (geo, gpu) = (view.geo, &node.gpus[i]);
    let pair = 2.0 * geo.bar_w + geo.bar_gap;
    let mem = (gpu.mem_total_mib > 0).then_some(Bar {
        class: "mem",
        x: gx,
        w: geo.bar_w,
    });
    let core = match mem {
        Some(_) => Bar {
            class: "core",
            x: gx + geo.bar_w + geo.bar_gap,
            w: geo.bar_w,
        },
        None => Bar {
            class: "core",
            x: gx,
            w: pair,
        },
    };
    let title = gpu_title(node, i, gpu);
    for bar in mem.iter().chain([&core]) {
        background(out, view, gpu, bar, &title);
    }
    let stacks = if view.detailed {
        pod_stacks(view, node, i, gpu.mem_total_mib)
    } else {
        vec![totals(gpu)]
    };
    let floor = geo.header + geo.bar_h;
    let (mut mem_top, mut core_top) = (floor, floor);
    for seg in &stacks {
        if let Some(bar) = mem.as_ref().filter(|_| seg.mem > 0.0) {
            mem_top = segment(out, seg, bar, mem_top, geo.bar_h * seg.mem);
        }
        if seg.core > 0.0 {
            core_top = segment(out, seg, &core, core_top, geo.bar_h * seg.core);
        }
    }
    if view.detailed {
        let (fill, mark) = if gpu.healthy {
            ("#555", "")
        } else {
            (colour::UNHEALTHY, "✕")
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"9\" text-anchor=\"middle\" fill=\"{fill}\">{i}{mark}</text>",
            gx + pair / 2.0,
            floor + 11.0
        );
    }
}

fn gpu_title(node: &NodeLedger, i: usize, gpu: &GpuState) -> String {
    let used_core = MILLI_PER_GPU.saturating_sub(gpu.core_free.min(MILLI_PER_GPU));
    let mem = if gpu.mem_total_mib > 0 {
        format!(
            "memory {} of {}, ",
            gib(gpu.mem_total_mib.saturating_sub(gpu.mem_free_mib)),
            gib(gpu.mem_total_mib)
        )
    } else {
        String::new()
    };
    format!(
        "{} GPU {i} ({}): {mem}compute {} held{}",
        node.name,
        gpu.ident.model,
        pct(u64::from(used_core)),
        if gpu.healthy { "" } else { "; UNHEALTHY" }
    )
}

fn background(out: &mut String, view: &View<'_>, gpu: &GpuState, bar: &Bar, title: &str) {
    let (class, fill, stroke, width) = if gpu.healthy {
        ("bar", colour::FREE, "#b0b0b0", 0.5)
    } else {
        ("bar unhealthy", "url(#unhealthy)", colour::UNHEALTHY, 2.0)
    };
    let _ = write!(
        out,
        "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"><title>{}</title></rect>",
        bar.x,
        view.geo.header,
        bar.w,
        view.geo.bar_h,
        escape(title)
    );
}

/// The GPU's memory and compute held, as one segment in the fixed colours.
fn totals(gpu: &GpuState) -> Segment<'static> {
    let core_used = MILLI_PER_GPU.saturating_sub(gpu.core_free.min(MILLI_PER_GPU));
    let mem_used = gpu.mem_total_mib.saturating_sub(gpu.mem_free_mib);
    Segment {
        pod: None,
        colour: None,
        mem: fraction(mem_used, gpu.mem_total_mib),
        core: f64::from(core_used) / f64::from(MILLI_PER_GPU),
        text: String::new(),
    }
}

fn pod_stacks<'a>(
    view: &'a View<'_>,
    node: &'a NodeLedger,
    i: usize,
    mem_total: u64,
) -> Vec<Segment<'a>> {
    let mut out = Vec::new();
    for (pod, holding) in node.holders() {
        for share in holding.placement.shares().filter(|s| s.gpu == i) {
            out.push(Segment {
                pod: Some(pod),
                colour: view.colours.get(pod.as_str()).map(String::as_str),
                mem: fraction(share.mem_mib, mem_total),
                core: f64::from(share.core_milli) / f64::from(MILLI_PER_GPU),
                text: format!(
                    "{pod}: {} GPU memory, {} compute",
                    gib(share.mem_mib),
                    pct(u64::from(share.core_milli))
                ),
            });
        }
    }
    out
}

/// Draws a segment of `height` px on `bar` whose bottom is at `bottom`; returns its top.
fn segment(out: &mut String, seg: &Segment<'_>, bar: &Bar, bottom: f64, height: f64) -> f64 {
    // A sliver of one percent still shows as a line.
    let height = height.max(1.0);
    let top = bottom - height;
    let fill = match (seg.colour, bar.class) {
        (Some(c), _) => c,
        (None, "mem") => colour::MEM_TOTAL,
        (None, _) => colour::CORE_TOTAL,
    };
    let pod_attr = seg
        .pod
        .map(|p| format!(" data-pod=\"{}\"", escape(p)))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<rect class=\"{}\"{pod_attr} x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{fill}\" stroke=\"#fff\" stroke-width=\"0.4\">",
        bar.class, bar.x, bar.w
    );
    if !seg.text.is_empty() {
        let _ = write!(out, "<title>{}</title>", escape(&seg.text));
    }
    out.push_str("</rect>");
    top
}
