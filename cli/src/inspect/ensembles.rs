//! `tessera inspect --ensembles`: each ensemble whose membership Tessera keeps, from the record
//! the membership controller writes on its StatefulSet (`tessera.dev/membership`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use tessera_kernel::ensemble::Record;
use tessera_kernel::keys;

/// One ensemble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleRow {
    /// Namespace.
    pub namespace: String,
    /// StatefulSet.
    pub name: String,
    /// The record, or why it could not be read.
    #[serde(flatten)]
    pub record: Record,
    /// Voters that may be lost with the rest still a majority.
    pub fault_tolerance: u32,
    /// What the target size would tolerate once every member votes.
    pub target_fault_tolerance: u32,
}

/// Rows for the StatefulSets (`namespace`, `name`, annotations) that carry a record, sorted;
/// unreadable records come back as warnings naming the StatefulSet.
pub fn rows<'a>(
    statefulsets: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a BTreeMap<String, String>>)>,
) -> (Vec<EnsembleRow>, Vec<String>) {
    let (mut rows, mut warnings) = (Vec::new(), Vec::new());
    for (namespace, name, annotations) in statefulsets {
        let Some(text) = annotations.and_then(|a| a.get(keys::ANNOTATION_MEMBERSHIP)) else {
            continue;
        };
        match Record::parse(text) {
            Ok(record) => rows.push(EnsembleRow {
                namespace: namespace.to_string(),
                name: name.to_string(),
                fault_tolerance: record.fault_tolerance(),
                target_fault_tolerance: record.target.saturating_sub(1) / 2,
                record,
            }),
            Err(e) => warnings.push(format!("statefulset {namespace}/{name}: {e}")),
        }
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    (rows, warnings)
}

/// The rows as a table.
pub fn table(rows: &[EnsembleRow]) -> String {
    let list = |set: &std::collections::BTreeSet<u32>| {
        let items: Vec<String> = set.iter().map(u32::to_string).collect();
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(",")
        }
    };
    let mut out =
        String::from("NAMESPACE/STATEFULSET  TARGET  VOTERS  LEARNERS  LEADER  TOLERATES  STEP\n");
    for r in rows {
        let leader = r.record.leader.map_or("-".to_string(), |l| l.to_string());
        let _ = writeln!(
            out,
            "{}/{}  {}  {}  {}  {}  {}/{}  {}",
            r.namespace,
            r.name,
            r.record.target,
            list(&r.record.voters),
            list(&r.record.learners),
            leader,
            r.fault_tolerance,
            r.target_fault_tolerance,
            r.record.step.as_deref().unwrap_or("-"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ensemble_mid_scale_shows_its_voters_leader_and_step() {
        let mid = Record {
            voters: [0, 1, 2].into(),
            learners: [3].into(),
            leader: Some(1),
            target: 5,
            step: Some("join member 3".into()),
        };
        let annotated =
            BTreeMap::from([(keys::ANNOTATION_MEMBERSHIP.to_string(), mid.to_annotation())]);
        let broken = BTreeMap::from([(keys::ANNOTATION_MEMBERSHIP.to_string(), "{".to_string())]);
        let (rows, warnings) = rows([
            ("ml", "zk", Some(&annotated)),
            ("ml", "plain", None),
            ("ml", "odd", Some(&broken)),
        ]);
        assert_eq!(rows.len(), 1, "only StatefulSets with a readable record");
        assert_eq!(
            (rows[0].fault_tolerance, rows[0].target_fault_tolerance),
            (1, 2)
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("statefulset ml/odd: annotation tessera.dev/membership"),
            "{warnings:?}"
        );
        let text = table(&rows);
        assert!(
            text.lines().nth(1).unwrap() == "ml/zk  5  0,1,2  3  1  1/2  join member 3",
            "{text}"
        );
    }
}
