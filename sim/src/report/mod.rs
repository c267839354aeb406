//! The `--report` page: one self-contained HTML file (no scripts, no external files) that an
//! operator reads without the simulator at hand. A scenario report shows every node's GPUs with
//! each pod's memory and compute, a key, the pods with their colours, the pods not placed and the
//! spreading faults. A trace report shows the policies' allocation curves, a zoom on where they
//! differ, the table of numbers and the final GPUs of the first run. Built as a string; the CLI
//! writes it.

mod bars;
mod chart;
mod colour;
mod curves;
mod faults;
mod layout;
mod legend;
mod nodes;
mod page;
mod table;

use std::fmt::Write as _;

use super::replay::ReplayResult;
use super::scenario::ScenarioOutcome;
use super::summary::TraceSummary;
use tessera_core::affinity::SpreadFault;
use tessera_core::ledger::ClusterLedger;

pub use nodes::gpu_picture;
use page::escape;

/// The node view of `ledger` under a heading: key, picture, and the pods' colours when drawn.
fn node_section(heading: &str, ledger: &ClusterLedger, spread: Option<&[SpreadFault]>) -> String {
    let mut out = format!("<h2 id=\"nodes\">{}</h2>", escape(heading));
    out.push_str(&legend::node_key(ledger, spread.is_some()));
    out.push_str(&gpu_picture(ledger, spread.unwrap_or_default()));
    if let Some(pods) = legend::pod_list(ledger) {
        out.push_str("<h2 id=\"pods\">Pods on GPUs</h2>");
        out.push_str(&pods);
    }
    out
}

/// The scenario report of one outcome.
pub fn scenario_report(title: &str, o: &ScenarioOutcome) -> String {
    let failed = o.failures.len();
    let mark = |n: usize| if n == 0 { "ok" } else { "bad" };
    let spread_faults = (o.violations.anti_affinity + o.violations.quorum) as usize;
    let mut body = format!(
        "<p class=\"summary\">Policy <b>{}</b>: {} of {} pods placed, \
         <span class=\"{}\">{failed} not placed</span>; GPU allocation {:.1}% of {} GPUs \
         ({:.2} GPUs unallocated); fragmentation {:.2} GPUs; \
         <span class=\"{}\">{} anti-affinity fault(s), {} quorum violation(s)</span>.</p>",
        escape(&o.policy),
        o.placed,
        o.pods,
        mark(failed),
        o.alloc_pct,
        o.cluster_gpus,
        o.unallocated_gpus,
        o.fragmentation_gpus,
        mark(spread_faults),
        o.violations.anti_affinity,
        o.violations.quorum
    );
    body.push_str(&node_section("GPUs per node", &o.ledger, Some(&o.faults)));
    let _ = write!(
        body,
        "<h2 id=\"failed\">Pods not placed ({failed})</h2>{}\
         <h2 id=\"faults\">Spreading faults ({} anti-affinity, {} quorum)</h2>\
         <p class=\"note\">One row per node or zone; anti-affinity faults count the members \
         beyond the first on a node.</p>{}",
        faults::failures(&o.failures),
        o.violations.anti_affinity,
        o.violations.quorum,
        faults::spread_faults(&o.faults)
    );
    page::page(title, &body)
}

/// The trace report: curves of every policy from `runs`, the numbers of `summary`, and the
/// first run's final GPUs.
pub fn trace_report(title: &str, runs: &[ReplayResult], summary: &TraceSummary) -> String {
    let series = curves::series(runs);
    let mut body = String::from("<h2>GPU allocation over arrived workload (mean over seeds)</h2>");
    body.push_str(&curves::charts(&series));
    body.push_str("<h2 id=\"numbers\">Numbers</h2>");
    body.push_str(&table::numbers(summary, &series));
    if let Some((first, ledger)) = runs.first().and_then(|r| r.ledger.as_ref().map(|l| (r, l))) {
        let heading = format!(
            "GPUs at the end of {} seed {}",
            first.variant.label(),
            first.seed
        );
        body.push_str(&node_section(&heading, ledger, None));
    }
    page::page(title, &body)
}

#[cfg(test)]
mod tests;
