//! What an operator relies on in the reports: every share visible (memory-only ones too), one
//! distinct colour per pod in the legend, failures and faults shown, charts titled and zoomed on
//! the policies' band, the table holding each policy's numbers.

use std::collections::HashSet;

use super::*;
use crate::baselines::Published;
use crate::engine::Variant;
use crate::replay::CurvePoint;
use crate::scenario::Failure;
use crate::summary;
use tessera_core::affinity::{FaultKind, SpreadFault, Violations};
use tessera_core::ledger::HostCapacity;
use tessera_core::score::Policy;
use tessera_core::testing;

/// A cluster of two 16 GiB GPUs on `n1` and a CPU-only `cpu1`, holding the given
/// (pod, gpu, MiB, thousandths) shares.
fn ledger(shares: &[(&str, usize, u64, u32)]) -> ClusterLedger {
    let mut ledger = ClusterLedger::new(10);
    let gpus = testing::gpus("n1", 2, "T4", 16384);
    ledger.upsert_node(
        "n1",
        Some("zone-a".into()),
        &gpus,
        HostCapacity::untracked(),
    );
    ledger.upsert_node("cpu1", None, &Default::default(), HostCapacity::untracked());
    for &(pod, gpu, mem, core) in shares {
        if let Some(node) = ledger.node_mut("n1") {
            testing::hold(node, pod, gpu, mem, core);
        }
    }
    ledger
}

/// The value of attribute `name` in the first element whose text starts with `head`.
fn attribute(html: &str, head: &str, name: &str) -> Option<String> {
    let element = &html[html.find(head)?..];
    let element = &element[..element.find('>')?];
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &element[start..];
    Some(rest[..rest.find('"')?].to_string())
}

fn outcome(
    ledger: ClusterLedger,
    failures: Vec<Failure>,
    faults: Vec<SpreadFault>,
) -> ScenarioOutcome {
    ScenarioOutcome {
        policy: "fragmentation".into(),
        pods: 4,
        placed: 3,
        failures,
        cluster_gpus: 2,
        alloc_pct: 30.0,
        unallocated_gpus: 1.4,
        fragmentation_gpus: 0.5,
        fragmentation_pct_of_idle: 35.0,
        violations: Violations {
            anti_affinity: 1,
            quorum: 0,
        },
        faults,
        ledger,
    }
}

#[test]
fn a_memory_only_share_is_drawn_as_a_memory_segment_in_its_pods_colour() {
    let ledger = ledger(&[("research/ocr", 0, 5120, 0), ("ml/train", 1, 8192, 500)]);
    let svg = gpu_picture(&ledger, &[]);
    let head = "<rect class=\"mem\" data-pod=\"research/ocr\"";
    let height: f64 = attribute(&svg, head, "height")
        .and_then(|h| h.parse().ok())
        .unwrap_or(0.0);
    // 5 GiB of a 16 GiB GPU on a 90 px bar.
    assert!((height - 28.1).abs() < 0.2, "height {height} in {svg}");
    assert_eq!(attribute(&svg, head, "fill"), Some(colour::pod(1)));
    assert!(!svg.contains("class=\"core\" data-pod=\"research/ocr\""));
    assert!(svg.contains("class=\"core\" data-pod=\"ml/train\""));
}

#[test]
fn pod_list_names_every_pod_once_with_a_colour_of_its_own() {
    let shares: Vec<(String, usize, u64, u32)> = (0..12)
        .map(|i| (format!("ns/p{i:02}"), i % 2, 1024, 80))
        .collect();
    let refs: Vec<(&str, usize, u64, u32)> = shares
        .iter()
        .map(|(p, g, m, c)| (p.as_str(), *g, *m, *c))
        .collect();
    let list = legend::pod_list(&ledger(&refs)).unwrap_or_default();
    let mut colours = HashSet::new();
    for (pod, ..) in &shares {
        assert_eq!(list.matches(&format!("title=\"{pod} — ")).count(), 1);
        assert_eq!(list.matches(&format!("</span>{pod} <")).count(), 1);
        let entry = &list[list.find(&format!("title=\"{pod} — ")).unwrap_or(0)..];
        let colour = attribute(entry, "<span class=\"sw\"", "style").unwrap_or_default();
        assert!(colours.insert(colour.clone()), "{colour} repeats");
    }
    assert!(list.contains("ns/p03 — 1.0 GiB memory, 8% compute — on n1"));
    assert!(list.contains("ns/p03 <span class=\"share\">1.0 GiB, 8%</span>"));
}

#[test]
fn generated_pod_colours_never_repeat() {
    let colours: HashSet<String> = (0..5000).map(colour::pod).collect();
    assert_eq!(colours.len(), 5000);
}

#[test]
fn scenario_report_lists_failed_pods_with_reasons_and_marks_faults() {
    let failures = vec![Failure {
        pod: "ml/<huge>".into(),
        reason: "fits no node of 2 (first: n1: needs 4 GPUs & has 2)".into(),
    }];
    let faults = vec![SpreadFault {
        kind: FaultKind::AntiAffinity,
        group: "serving/chat".into(),
        node: Some("n1".into()),
        zone: None,
        members: 2,
        ensemble: 3,
    }];
    let o = outcome(
        ledger(&[("serving/chat-1", 0, 1024, 300)]),
        failures,
        faults,
    );
    let html = scenario_report("t", &o);
    assert!(html.contains("<td>ml/&lt;huge&gt;</td>"), "{html}");
    assert!(html.contains("n1: needs 4 GPUs &amp; has 2"));
    assert!(html.contains("1 not placed"));
    // The picture: n1 has the fault border and marker, cpu1 (no GPU) is drawn, unmarked.
    let n1 = &html[html.find("<g class=\"node\" transform").unwrap_or(0)..];
    assert!(n1.starts_with("<g class=\"node\"") && n1.contains("<title>n1 (zone-a)"));
    assert!(n1[..n1.find("</g>").unwrap_or(0)].contains("⚠ anti-affinity"));
    assert_eq!(
        html.matches("stroke-dasharray=\"6 3\"").count(),
        2,
        "node and key"
    );
    assert!(html.contains("cpu1"));
    // The list.
    assert!(html.contains("<td>serving/chat</td><td>node n1</td><td>2 of 3</td>"));
}

#[test]
fn unhealthy_gpu_is_hatched_and_marked_by_its_index() {
    let mut ledger = ledger(&[]);
    if let Some(node) = ledger.node_mut("n1") {
        assert!(node.set_health("GPU-n1-1", false));
    }
    let svg = gpu_picture(&ledger, &[]);
    assert_eq!(
        svg.matches("class=\"bar unhealthy\"").count(),
        2,
        "memory and compute bar"
    );
    assert_eq!(svg.matches("class=\"bar\"").count(), 2);
    assert!(svg.contains(">1✕</text>") && svg.contains("UNHEALTHY"));
}

#[test]
fn names_are_escaped() {
    let mut ledger = ClusterLedger::new(10);
    let gpus = testing::gpus("n1", 3, "T4", 16384);
    ledger.upsert_node("<n1>", None, &gpus, HostCapacity::untracked());
    let svg = gpu_picture(&ledger, &[]);
    assert!(svg.contains("&lt;n1&gt;") && !svg.contains("<n1>"));
    assert_eq!(svg.matches("class=\"bar\"").count(), 6);
}

/// A replay whose curve is `ramp` until 90% arrived, then flattens at `top` by 130%.
fn run(policy: Policy, seed: u64, top: f64) -> ReplayResult {
    let curve = (0..=130)
        .map(|a| {
            let a = a as f64;
            let alloc = if a <= 90.0 {
                a
            } else {
                90.0 + (top - 90.0) * (a - 90.0) / 40.0
            };
            CurvePoint {
                arrived_pct: a,
                alloc_pct: alloc,
            }
        })
        .collect::<Vec<_>>();
    ReplayResult {
        variant: Variant::ideal(policy),
        seed,
        cluster_gpus: 100,
        alloc_pct_100: curve[100].alloc_pct,
        alloc_pct_130: top,
        unallocated_gpus_130: 100.0 - top,
        placed: 10,
        failed: seed as usize,
        curve,
        ledger: None,
    }
}

fn trace_runs() -> (Vec<ReplayResult>, TraceSummary) {
    let runs = vec![
        run(Policy::Fragmentation, 42, 97.0),
        run(Policy::Fragmentation, 43, 95.0),
        run(Policy::Random, 42, 92.5),
        run(Policy::Random, 43, 92.5),
    ];
    let variants = [
        Variant::ideal(Policy::Fragmentation),
        Variant::ideal(Policy::Random),
    ];
    let published = [Published {
        trace: "default".into(),
        policy: Policy::Random.published_name().unwrap_or_default().into(),
        alloc_pct_100: 88.1,
        alloc_pct_130: 91.25,
        unallocated_gpus_130: 8.74,
    }];
    let summary = summary::summarise("default", &variants, &[42, 43], &runs, &published);
    (runs, summary)
}

#[test]
fn trace_charts_have_axis_titles_and_the_zoom_covers_the_policies_band() {
    let (runs, summary) = trace_runs();
    let html = trace_report("t", &runs, &summary);
    assert_eq!(
        html.matches("class=\"axis-title\"").count(),
        4,
        "two charts, two axes"
    );
    assert!(html.contains("Arrived workload") && html.contains("GPU allocation ratio"));
    let series = curves::series(&runs);
    let (x_lo, x_hi, y_lo, y_hi) = curves::zoom_band(&series);
    // From 100% arrived on, the lines lie in 90.6–96; every line is above 90 from 90% on.
    assert_eq!((x_lo, x_hi, y_lo, y_hi), (90.0, 130.0, 90.0, 96.0));
    for s in &series {
        for &(x, y) in s.points.iter().filter(|p| p.0 >= x_lo) {
            assert!(
                (y_lo..=y_hi).contains(&y),
                "{} at {x}: {y} outside {y_lo}–{y_hi}",
                s.label
            );
        }
    }
    let zoom = &html[html.find("id=\"alloc-zoom\"").unwrap_or(0)..];
    assert_eq!(attribute(zoom, "id=", "data-y-lo"), Some(format!("{y_lo}")));
}

#[test]
fn trace_table_holds_each_policys_numbers() {
    let (runs, summary) = trace_runs();
    let html = trace_report("t", &runs, &summary);
    let table = &html[html.find("<table class=\"numbers\"").unwrap_or(0)..];
    let row = |policy: &str| {
        let start = table.find(&format!("</span>{policy}</td>")).unwrap_or(0);
        table[start..start + table[start..].find("</tr>").unwrap_or(0)].to_string()
    };
    let ours = row("fragmentation");
    for cell in ["96.00", "95.00–97.00", "42–43", "4.0"] {
        assert!(ours.contains(&format!(">{cell}</td>")), "{cell} in {ours}");
    }
    let random = row("random");
    for cell in ["92.50", "7.5", "88.10", "91.25", "8.7"] {
        assert!(
            random.contains(&format!(">{cell}</td>")),
            "{cell} in {random}"
        );
    }
    assert!(ours.contains(">—</td>"), "no published figure for ours");
}

#[test]
fn trace_table_prints_the_bound_and_the_online_reference_beside_the_policies() {
    use crate::summary::{LimitSeed, LimitSummary};
    let (runs, mut summary) = trace_runs();
    let seed = |alloc: f64| LimitSeed {
        seed: 42,
        alloc_pct_130: alloc,
        unallocated_gpus_130: (100.0 - alloc) / 10.0,
    };
    summary.bound = Some(LimitSummary::new("LP relaxation", vec![seed(99.0)]));
    summary.reference = Some(LimitSummary::new("best of 8 tie-breaks", vec![seed(96.5)]));
    let html = trace_report("t", &runs, &summary);
    let table = &html[html.find("<table class=\"numbers\"").unwrap()..];
    let row = |name: &str| {
        let start = table.find(name).unwrap();
        table[start..start + table[start..].find("</tr>").unwrap()].to_string()
    };
    let bound = row("upper bound");
    assert!(bound.contains("(LP relaxation)"), "{bound}");
    assert!(
        bound.contains(">99.00</td>") && bound.contains(">0.1</td>"),
        "{bound}"
    );
    let reference = row("online reference");
    assert!(reference.contains(">96.50</td>"), "{reference}");
    assert!(
        reference.contains(">0.3</td>") || reference.contains(">0.4</td>"),
        "{reference}"
    );
}
