//! What went wrong, as lists under the picture: pods that were not placed with the reason the
//! simulator recorded, and spreading faults with the node or zone they are on (the picture
//! marks the nodes; zone faults appear only here).

use crate::scenario::Failure;
use tessera_core::affinity::{FaultKind, SpreadFault};

use super::page::text_table;

/// The pods not placed, one row each with its reason.
pub fn failures(failures: &[Failure]) -> String {
    let rows: Vec<Vec<String>> = failures
        .iter()
        .map(|f| vec![f.pod.clone(), f.reason.clone()])
        .collect();
    text_table(
        &["pod", "why it was not placed"],
        &rows,
        "Every pod was placed.",
    )
}

/// The spreading faults, one row each.
pub fn spread_faults(faults: &[SpreadFault]) -> String {
    let rows: Vec<Vec<String>> = faults
        .iter()
        .map(|f| {
            let (rule, meaning) = match f.kind {
                FaultKind::AntiAffinity => (
                    "anti-affinity",
                    "members share a node: losing it loses several",
                ),
                FaultKind::Quorum => ("quorum", "losing this place loses the ensemble's quorum"),
            };
            let place = match (&f.node, &f.zone) {
                (Some(n), _) => format!("node {n}"),
                (None, Some(z)) => format!("zone {z}"),
                (None, None) => String::new(),
            };
            vec![
                format!("⚠ {rule}"),
                f.group.clone(),
                place,
                format!("{} of {}", f.members, f.ensemble),
                meaning.to_string(),
            ]
        })
        .collect();
    text_table(
        &[
            "rule broken",
            "group",
            "where",
            "members there",
            "what it risks",
        ],
        &rows,
        "No spreading faults.",
    )
}
