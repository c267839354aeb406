//! Printing simulator results: aligned text tables, or JSON on stdout.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use tessera_core::score::Policy;
use tessera_sim::summary::TraceSummary;

/// The comparison table of one trace, with per-seed rows.
pub fn trace_table(s: &TraceSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {} — {} GPUs, {} seed(s) {:?}",
        s.trace,
        s.cluster_gpus,
        s.seeds.len(),
        s.seeds
    );
    // Labels such as `kube-scheduler/first-fit` are wider than the policy names.
    let w = s
        .policies
        .iter()
        .map(|p| p.policy.len())
        .fold(14, usize::max);
    let _ = writeln!(
        out,
        "{:<w$} {:>9} {:>9} {:>11}   {:>9} {:>11}",
        "policy", "alloc@100", "alloc@130", "unalloc@130", "published", "pub.unalloc"
    );
    for p in &s.policies {
        let (pub_alloc, pub_unalloc) = match &p.published {
            Some(b) => (
                format!("{:.2}%", b.alloc_pct_130),
                format!("{:.1}", b.unallocated_gpus_130),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            out,
            "{:<w$} {:>8.2}% {:>8.2}% {:>11.1}   {:>9} {:>11}",
            p.policy,
            p.alloc_pct_100,
            p.alloc_pct_130,
            p.unallocated_gpus_130,
            pub_alloc,
            pub_unalloc
        );
    }
    let limits = [("bound", &s.bound), ("reference", &s.reference)];
    for (name, limit) in limits.iter().filter_map(|(n, l)| Some((n, l.as_ref()?))) {
        let _ = writeln!(
            out,
            "{:<w$} {:>9} {:>8.2}% {:>11.1}   ({})",
            name, "-", limit.alloc_pct_130, limit.unallocated_gpus_130, limit.method
        );
    }
    if s.bound.is_some() {
        let closed: Vec<String> = s
            .policies
            .iter()
            // Ours only: the published baselines are all further from the bound than FGD.
            .filter(|p| {
                let base = p.policy.split('@').next().unwrap_or_default();
                Policy::parse(base).is_ok_and(|b| b.published_name().is_none())
            })
            .filter_map(|p| {
                let share = s.closed_share(&p.policy, "fgd")?;
                Some(format!("{} {:.1}%", p.policy, 100.0 * share))
            })
            .collect();
        if !closed.is_empty() {
            let _ = writeln!(
                out,
                "share of fgd's distance to the bound closed: {}",
                closed.join(", ")
            );
        }
    }
    let _ = writeln!(out, "per seed (alloc@130 / unallocated GPUs):");
    // name, then seed:alloc%/unallocated for each seed.
    let mut seed_line = |name: &str, seeds: Vec<(u64, f64, f64)>| {
        let cells: Vec<String> = seeds
            .iter()
            .map(|(seed, alloc, idle)| format!("{seed}:{alloc:.2}%/{idle:.0}"))
            .collect();
        let _ = writeln!(out, "  {:<w$} {}", name, cells.join(" "));
    };
    for p in &s.policies {
        let seeds = p.per_seed.iter();
        seed_line(
            &p.policy,
            seeds
                .map(|f| (f.seed, f.alloc_pct_130, f.unallocated_gpus_130))
                .collect(),
        );
    }
    for (name, limit) in limits.iter().filter_map(|(n, l)| Some((n, l.as_ref()?))) {
        let seeds = limit.per_seed.iter();
        seed_line(
            name,
            seeds
                .map(|f| (f.seed, f.alloc_pct_130, f.unallocated_gpus_130))
                .collect(),
        );
    }
    out.push('\n');
    out
}

/// One JSON document: the summary itself for one trace, an array for several.
pub fn print_json<T: Serialize>(items: &[T]) -> Result<()> {
    let text = match items {
        [one] => serde_json::to_string_pretty(one)?,
        many => serde_json::to_string_pretty(many)?,
    };
    println!("{text}");
    Ok(())
}

use tessera_sim::scenario::ScenarioOutcome;

/// The scenario's summary for people.
pub fn scenario_summary(title: &str, o: &ScenarioOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title} scenario — policy {}", o.policy);
    let _ = writeln!(
        out,
        "  pods placed          {} of {} ({} failed)",
        o.placed,
        o.pods,
        o.failures.len()
    );
    let _ = writeln!(
        out,
        "  GPU allocation       {:.1}% of {} GPUs ({:.2} GPUs unallocated)",
        o.alloc_pct, o.cluster_gpus, o.unallocated_gpus
    );
    let _ = writeln!(
        out,
        "  fragmentation        {:.2} GPUs ({:.1}% of idle GPU compute)",
        o.fragmentation_gpus, o.fragmentation_pct_of_idle
    );
    let _ = writeln!(
        out,
        "  quorum violations    {} (ensembles with half or more of their voters on one node or zone)",
        o.violations.quorum
    );
    let _ = writeln!(
        out,
        "  anti-affinity faults {} (members placed on a node that already holds one of their group)",
        o.violations.anti_affinity
    );
    for f in &o.faults {
        let _ = writeln!(out, "    {}", fault_line(f));
    }
    for f in &o.failures {
        let _ = writeln!(out, "  failed {}: {}", f.pod, f.reason);
    }
    out.push('\n');
    out
}

/// One spreading fault for people: which rule, which group, where.
fn fault_line(f: &tessera_core::affinity::SpreadFault) -> String {
    let place = match (&f.node, &f.zone) {
        (Some(node), _) => format!("node {node}"),
        (None, Some(zone)) => format!("zone {zone}"),
        (None, None) => "one place".to_string(),
    };
    let rule = match f.kind {
        tessera_core::affinity::FaultKind::AntiAffinity => "anti-affinity",
        tessera_core::affinity::FaultKind::Quorum => "quorum",
    };
    format!(
        "{rule}: {} has {} of its {} members on {place}",
        f.group, f.members, f.ensemble
    )
}

/// `--output json` for the scenario: the trace document's shape plus violation counts.
#[derive(Debug, Serialize)]
pub struct ScenarioDocument<'a> {
    trace: &'a str,
    seeds: Vec<u64>,
    policies: &'a [ScenarioOutcome],
}

impl<'a> ScenarioDocument<'a> {
    /// Wraps outcomes.
    pub fn new(trace: &'a str, policies: &'a [ScenarioOutcome]) -> Self {
        ScenarioDocument {
            trace,
            seeds: vec![42],
            policies,
        }
    }
}
