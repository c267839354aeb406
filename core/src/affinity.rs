//! Anti-affinity and quorum spreading for replica groups (DESIGN.md, "Anti-affinity for
//! middleware").
//!
//! Every group is spread across nodes and zones (a soft preference: fewer members already there
//! scores higher). A quorum group is also filtered: no single node, and no single zone when the
//! cluster has at least three, may hold half or more of the ensemble, so losing one never loses
//! quorum. With fewer than three zones no placement survives a zone loss, so only the node rule
//! applies there.

use std::collections::{BTreeSet, HashMap};

use crate::fit::Unfit;
use crate::ledger::NodeLedger;
use crate::request::Group;

/// Zones needed before the zone rule of quorum groups applies.
pub const MIN_ZONES_FOR_ZONE_QUORUM: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Members {
    by_node: HashMap<String, u32>,
    by_zone: HashMap<String, u32>,
    total: u32,
}

/// Where each group's members are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spread {
    groups: HashMap<String, Members>,
    zones: BTreeSet<String>,
}

/// Spreading faults found in a placement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Violations {
    /// Members sharing a node with another member of their group (beyond the first).
    pub anti_affinity: u32,
    /// Quorum groups where one node or zone holds half or more of the ensemble.
    pub quorum: u32,
}

/// Which spreading rule a fault breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Two or more members of a group on one node.
    AntiAffinity,
    /// A node or zone holding half or more of a quorum ensemble.
    Quorum,
}

/// One spreading fault and where it is, for reports; `Violations` counts the same faults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpreadFault {
    /// Which rule.
    pub kind: FaultKind,
    /// Group key.
    pub group: String,
    /// The node holding the members (for a zone fault, `None`).
    pub node: Option<String>,
    /// The zone holding the members (zone quorum faults only).
    pub zone: Option<String>,
    /// Members of the group there.
    pub members: u32,
    /// Size of the ensemble.
    pub ensemble: u32,
}

fn ensemble(group: &Group, members: u32) -> u32 {
    group.size.unwrap_or(members).max(members)
}

impl Spread {
    /// Records the zones the cluster has (the quorum zone rule needs three or more).
    pub fn set_zones<'a>(&mut self, zones: impl IntoIterator<Item = &'a str>) {
        self.zones = zones.into_iter().map(str::to_string).collect();
    }

    /// Records a member placed on `node`.
    pub fn add(&mut self, group: &Group, node: &NodeLedger) {
        let m = self.groups.entry(group.key.clone()).or_default();
        *m.by_node.entry(node.name.clone()).or_default() += 1;
        if let Some(zone) = &node.zone {
            *m.by_zone.entry(zone.clone()).or_default() += 1;
        }
        m.total += 1;
    }

    /// Forgets a member that was on `node`.
    pub fn remove(&mut self, group: &Group, node: &NodeLedger) {
        let Some(m) = self.groups.get_mut(&group.key) else {
            return;
        };
        let dec = |map: &mut HashMap<String, u32>, k: &str| {
            if let Some(v) = map.get_mut(k) {
                *v = v.saturating_sub(1);
                if *v == 0 {
                    map.remove(k);
                }
            }
        };
        dec(&mut m.by_node, &node.name);
        if let Some(zone) = &node.zone {
            dec(&mut m.by_zone, zone);
        }
        m.total = m.total.saturating_sub(1);
        // Forget empty entries, so that equal membership compares equal however it was reached.
        if m.total == 0 {
            self.groups.remove(&group.key);
        }
    }

    fn counts(&self, group: &Group, node: &NodeLedger) -> (u32, u32, u32) {
        let Some(m) = self.groups.get(&group.key) else {
            return (0, 0, 0);
        };
        let on_node = m.by_node.get(&node.name).copied().unwrap_or(0);
        let in_zone = node
            .zone
            .as_ref()
            .and_then(|z| m.by_zone.get(z))
            .copied()
            .unwrap_or(0);
        (on_node, in_zone, m.total)
    }

    /// The quorum filter: refuses a node (or zone) that would hold half or more of the ensemble.
    pub fn check(&self, group: &Group, node: &NodeLedger) -> Result<(), Unfit> {
        if !group.quorum {
            return Ok(());
        }
        let (on_node, in_zone, total) = self.counts(group, node);
        let size = ensemble(group, total + 1);
        let refuse = |place: String, after: u32| Unfit::Spread {
            node: node.name.clone(),
            reason: format!(
                "quorum group {} would have {after} of {size} members on {place}; losing it would lose quorum",
                group.key
            ),
        };
        if 2 * (on_node + 1) >= size && size > 1 {
            return Err(refuse(format!("node {}", node.name), on_node + 1));
        }
        if self.zones.len() >= MIN_ZONES_FOR_ZONE_QUORUM
            && 2 * (in_zone + 1) >= size
            && size > 1
            && let Some(zone) = &node.zone
        {
            return Err(refuse(format!("zone {zone}"), in_zone + 1));
        }
        Ok(())
    }

    /// Spreading preference in 0–1: 1 for a node and zone with no member yet.
    pub fn score(&self, group: &Group, node: &NodeLedger) -> f64 {
        let (on_node, in_zone, _) = self.counts(group, node);
        1.0 / (1.0 + 2.0 * f64::from(on_node) + f64::from(in_zone))
    }

    /// Counts spreading faults of the current placement: members beyond the first on a node,
    /// and quorum groups with any node or zone at fault (see [`Spread::faults`]).
    pub fn violations(&self, groups: &[Group]) -> Violations {
        let faults = self.faults(groups);
        let anti_affinity = faults
            .iter()
            .filter(|f| f.kind == FaultKind::AntiAffinity)
            .map(|f| f.members - 1)
            .sum();
        let mut broken: Vec<&str> = faults
            .iter()
            .filter(|f| f.kind == FaultKind::Quorum)
            .map(|f| f.group.as_str())
            .collect();
        broken.dedup();
        Violations {
            anti_affinity,
            quorum: u32::try_from(broken.len()).unwrap_or(u32::MAX),
        }
    }

    /// Lists the spreading faults of the current placement: every node with two or more
    /// members of a group, and every node or zone holding half or more of a quorum ensemble.
    /// Ordered by group as given, then node or zone name.
    pub fn faults(&self, groups: &[Group]) -> Vec<SpreadFault> {
        let mut out = Vec::new();
        for group in groups {
            let Some(m) = self.groups.get(&group.key) else {
                continue;
            };
            let size = ensemble(group, m.total);
            let too_many = |k: u32| group.quorum && 2 * k >= size && size > 1;
            let fault = |kind, node: Option<&String>, zone: Option<&String>, members| SpreadFault {
                kind,
                group: group.key.clone(),
                node: node.cloned(),
                zone: zone.cloned(),
                members,
                ensemble: size,
            };
            let mut nodes: Vec<(&String, &u32)> = m.by_node.iter().collect();
            nodes.sort();
            for (node, &k) in nodes {
                if k > 1 {
                    out.push(fault(FaultKind::AntiAffinity, Some(node), None, k));
                }
                if too_many(k) {
                    out.push(fault(FaultKind::Quorum, Some(node), None, k));
                }
            }
            if self.zones.len() >= MIN_ZONES_FOR_ZONE_QUORUM {
                let mut zones: Vec<(&String, &u32)> = m.by_zone.iter().collect();
                zones.sort();
                for (zone, &k) in zones.into_iter().filter(|(_, k)| too_many(**k)) {
                    out.push(fault(FaultKind::Quorum, None, Some(zone), k));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn zoned(name: &str, zone: &str) -> NodeLedger {
        let mut n = testing::node(name, 0, "none", 0);
        n.zone = Some(zone.into());
        n
    }

    fn zk(size: u32) -> Group {
        Group {
            key: "mw/zk".into(),
            quorum: true,
            size: Some(size),
        }
    }

    #[test]
    fn quorum_group_of_three_never_puts_two_on_one_node_or_zone() {
        let (a1, a2, b1, c1) = (
            zoned("a1", "a"),
            zoned("a2", "a"),
            zoned("b1", "b"),
            zoned("c1", "c"),
        );
        let mut spread = Spread::default();
        spread.set_zones(["a", "b", "c"]);
        spread.add(&zk(3), &a1);
        let err = spread.check(&zk(3), &a1).unwrap_err().to_string();
        assert_eq!(
            err,
            "node a1: quorum group mw/zk would have 2 of 3 members on node a1; losing it would lose quorum"
        );
        assert!(
            spread
                .check(&zk(3), &a2)
                .unwrap_err()
                .to_string()
                .contains("on zone a")
        );
        assert!(spread.check(&zk(3), &b1).is_ok());
        spread.add(&zk(3), &b1);
        spread.add(&zk(3), &c1);
        assert_eq!(spread.violations(&[zk(3)]), Violations::default());
    }

    #[test]
    fn five_members_allow_two_per_node_and_zone_rule_needs_three_zones() {
        let (a1, a2) = (zoned("a1", "a"), zoned("a2", "a"));
        let mut spread = Spread::default();
        spread.set_zones(["a", "b"]);
        spread.add(&zk(5), &a1);
        assert!(spread.check(&zk(5), &a1).is_ok());
        spread.add(&zk(5), &a1);
        assert!(spread.check(&zk(5), &a1).is_err());
        // Two zones only: the zone rule does not apply, so a2 in zone a is fine.
        assert!(spread.check(&zk(5), &a2).is_ok());
    }

    #[test]
    fn plain_groups_are_never_filtered_but_prefer_empty_nodes_and_count_faults() {
        let g = Group {
            key: "ml/web".into(),
            quorum: false,
            size: None,
        };
        let (a1, b1) = (zoned("a1", "a"), zoned("b1", "b"));
        let mut spread = Spread::default();
        spread.add(&g, &a1);
        assert!(spread.check(&g, &a1).is_ok());
        assert!(spread.score(&g, &b1) > spread.score(&g, &a1));
        spread.add(&g, &a1);
        assert_eq!(spread.violations(std::slice::from_ref(&g)).anti_affinity, 1);
        spread.remove(&g, &a1);
        assert_eq!(spread.violations(&[g]).anti_affinity, 0);
    }

    #[test]
    fn faults_name_the_node_or_zone_that_breaks_each_rule() {
        let (a1, a2, b1, c1) = (
            zoned("a1", "a"),
            zoned("a2", "a"),
            zoned("b1", "b"),
            zoned("c1", "c"),
        );
        let mut spread = Spread::default();
        spread.set_zones(["a", "b", "c"]);
        // Forced placements (the filter would refuse them): two on a1, one more in zone a.
        for node in [&a1, &a1, &a2, &b1, &c1] {
            spread.add(&zk(5), node);
        }
        let faults = spread.faults(&[zk(5)]);
        let short: Vec<(FaultKind, Option<&str>, Option<&str>, u32)> = faults
            .iter()
            .map(|f| (f.kind, f.node.as_deref(), f.zone.as_deref(), f.members))
            .collect();
        assert_eq!(
            short,
            [
                (FaultKind::AntiAffinity, Some("a1"), None, 2),
                (FaultKind::Quorum, None, Some("a"), 3),
            ]
        );
        let v = spread.violations(&[zk(5)]);
        assert_eq!((v.anti_affinity, v.quorum), (1, 1));
    }
}
