//! What `tessera inspect` shows, built from the same cluster state the extender keeps: per node
//! and per GPU, who holds which memory and compute share, and what is free.

use serde::Serialize;
use tessera_core::cluster::Cluster;
use tessera_core::ledger::Sharing;

/// What the report covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only this node.
    pub node: Option<&'a str>,
    /// Only holders (and uncounted pods) of this namespace.
    pub namespace: Option<&'a str>,
    /// Now, Unix seconds (heartbeat ages).
    pub now_secs: i64,
}

impl Scope<'_> {
    fn shows(&self, pod: &str) -> bool {
        self.namespace
            .is_none_or(|ns| pod.split_once('/').is_some_and(|(p, _)| p == ns))
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Nodes with GPUs, by name.
    pub nodes: Vec<NodeReport>,
    /// Pods whose assignment could not be counted (unknown node or GPU, over-commit).
    pub unplaced: Vec<String>,
    /// Sums over the nodes shown.
    pub totals: Totals,
}

/// Sums over the nodes shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Nodes with GPUs.
    pub nodes: usize,
    /// GPUs.
    pub gpus: u32,
    /// Of them, healthy.
    pub healthy: u32,
    /// GPU memory, MiB.
    pub mem_total_mib: u64,
    /// GPU memory handed out, MiB.
    pub mem_allocated_mib: u64,
    /// Compute handed out, thousandths of a GPU.
    pub compute_allocated_milli: u64,
    /// GPUs whose shares an MPS daemon enforces now (single- or multi-user).
    pub isolated: u32,
    /// GPUs with no live isolation (whole GPUs only, unless soft sharing).
    pub not_isolated: u32,
    /// The largest inventory heartbeat age, seconds.
    pub oldest_heartbeat_secs: Option<i64>,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// Zone label.
    pub zone: Option<String>,
    /// Seconds since the device plugin's last inventory heartbeat (none reported: absent).
    pub heartbeat_age_secs: Option<i64>,
    /// GPUs in index order.
    pub gpus: Vec<GpuReport>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuReport {
    /// Index on the node.
    pub index: usize,
    /// UUID.
    pub uuid: String,
    /// Model.
    pub model: String,
    /// False once the device plugin marked it unhealthy.
    pub healthy: bool,
    /// How its shares are enforced now: `mps multi-user`, `mps single-user (…)`, or `none`
    /// (whole GPUs only, unless the extender runs with soft sharing).
    pub isolation: String,
    /// Memory, MiB.
    pub mem_total_mib: u64,
    /// Memory not held, MiB.
    pub mem_free_mib: u64,
    /// Compute not held, thousandths.
    pub core_free_milli: u32,
    /// Device-plugin slots not held.
    pub slots_free: u32,
    /// Who holds what, by pod then container.
    pub holders: Vec<Holder>,
}

/// One container's share of one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// `namespace/name`.
    pub pod: String,
    /// Container.
    pub container: String,
    /// Memory, MiB.
    pub mem_mib: u64,
    /// Compute, thousandths.
    pub core_milli: u32,
}

/// The isolation of a GPU in words (the ledger keeps it as what the GPU may take).
fn isolation(node: &tessera_core::ledger::NodeLedger, sharing: Sharing) -> String {
    match sharing {
        Sharing::AnyUser => "mps multi-user".to_string(),
        Sharing::OneUser => match node.mps_user() {
            Some(user) => format!("mps single-user (serving {})", user.describe()),
            None => "mps single-user".to_string(),
        },
        Sharing::WholeOnly => "none".to_string(),
    }
}

impl Report {
    /// The report of `cluster` (nodes without GPUs are left out) within `scope`.
    pub fn of(cluster: &Cluster, scope: &Scope<'_>) -> Self {
        let only = scope.node;
        let ages: std::collections::HashMap<String, i64> =
            cluster.heartbeat_ages(scope.now_secs).into_iter().collect();
        let mut nodes: Vec<NodeReport> = cluster
            .ledger
            .nodes()
            .iter()
            .filter(|n| !n.gpus.is_empty() && only.is_none_or(|o| o == n.name))
            .map(|n| {
                let gpus = n
                    .gpus
                    .iter()
                    .enumerate()
                    .map(|(index, g)| {
                        let mut holders = Vec::new();
                        for (pod, h) in n.holders().iter().filter(|(pod, _)| scope.shows(pod)) {
                            for c in &h.placement.containers {
                                for s in c.shares.iter().filter(|s| s.gpu == index) {
                                    holders.push(Holder {
                                        pod: pod.clone(),
                                        container: c.container.clone(),
                                        mem_mib: s.mem_mib,
                                        core_milli: s.core_milli,
                                    });
                                }
                            }
                        }
                        holders.sort_by(|a, b| (&a.pod, &a.container).cmp(&(&b.pod, &b.container)));
                        GpuReport {
                            index,
                            uuid: g.ident.uuid.clone(),
                            model: g.ident.model.clone(),
                            healthy: g.healthy,
                            isolation: isolation(n, g.sharing),
                            mem_total_mib: g.mem_total_mib,
                            mem_free_mib: g.mem_free_mib,
                            core_free_milli: g.core_free,
                            slots_free: g.slots_free,
                            holders,
                        }
                    })
                    .collect();
                NodeReport {
                    name: n.name.clone(),
                    zone: n.zone.clone(),
                    heartbeat_age_secs: ages.get(&n.name).copied(),
                    gpus,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut totals = Totals {
            nodes: nodes.len(),
            oldest_heartbeat_secs: nodes.iter().filter_map(|n| n.heartbeat_age_secs).max(),
            ..Totals::default()
        };
        for u in cluster
            .usage()
            .iter()
            .filter(|u| only.is_none_or(|o| o == u.node))
        {
            totals.gpus += u.gpus;
            totals.healthy += u.healthy;
            totals.mem_total_mib += u.mem_total_mib;
            totals.mem_allocated_mib += u.mem_allocated_mib;
            totals.compute_allocated_milli += u.compute_allocated_milli;
            totals.isolated += u.isolation.mps + u.isolation.mps_multi_user;
            totals.not_isolated += u.isolation.none;
        }
        let mut unplaced = cluster.unplaced_pods();
        unplaced.retain(|p| scope.shows(p));
        Report {
            nodes,
            unplaced,
            totals,
        }
    }

    /// A table for a terminal; `color` adds ANSI colours (free in green, full in red).
    pub fn table(&self, color: bool) -> String {
        let paint = |code: &str, text: String| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text
            }
        };
        let mut out = String::new();
        for node in &self.nodes {
            let zone = node.zone.as_deref().unwrap_or("-");
            out.push_str(&paint("1", format!("{}  (zone {zone})", node.name)));
            match node.heartbeat_age_secs {
                Some(age) => out.push_str(&format!("  heartbeat {age}s ago")),
                None => out.push_str(&paint("33", "  no heartbeat".to_string())),
            }
            out.push('\n');
            for g in &node.gpus {
                let used_mem = g.mem_total_mib - g.mem_free_mib;
                let used_core = 1000 - g.core_free_milli.min(1000);
                let state = if !g.healthy {
                    paint("31", "UNHEALTHY".to_string())
                } else if g.mem_free_mib == 0 || g.core_free_milli == 0 || g.slots_free == 0 {
                    paint("31", "full".to_string())
                } else {
                    paint(
                        "32",
                        format!("free {} MiB, {}%", g.mem_free_mib, g.core_free_milli / 10),
                    )
                };
                out.push_str(&format!(
                    "  gpu {} {} {}  isolation {}  mem {}/{} MiB  compute {}%  {}\n",
                    g.index,
                    g.uuid,
                    g.model,
                    g.isolation,
                    used_mem,
                    g.mem_total_mib,
                    used_core / 10,
                    state
                ));
                for h in &g.holders {
                    out.push_str(&format!(
                        "      {} [{}]  {} MiB, {}%\n",
                        h.pod,
                        h.container,
                        h.mem_mib,
                        f64::from(h.core_milli) / 10.0
                    ));
                }
            }
        }
        if self.nodes.is_empty() {
            out.push_str("no node reports Tessera GPUs (is the device plugin running?)\n");
        }
        if !self.nodes.is_empty() {
            out.push_str(&self.totals.line());
        }
        for pod in &self.unplaced {
            out.push_str(&paint("33", format!("not counted: {pod} (its assignment names an unknown node or GPU, or over-commits)")));
            out.push('\n');
        }
        out
    }
}

impl Totals {
    /// The totals line of the table.
    fn line(&self) -> String {
        let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
        let heartbeat = self
            .oldest_heartbeat_secs
            .map_or(String::new(), |a| format!("; oldest heartbeat {a}s"));
        format!(
            "total: {} node(s), {} GPU(s), {} healthy; memory {}/{} MiB allocated ({}%); compute {:.2}/{} GPUs ({}%); isolation live on {}, none on {}{heartbeat}\n",
            self.nodes,
            self.gpus,
            self.healthy,
            self.mem_allocated_mib,
            self.mem_total_mib,
            pct(self.mem_allocated_mib, self.mem_total_mib),
            self.compute_allocated_milli as f64 / 1000.0,
            self.gpus,
            pct(self.compute_allocated_milli, u64::from(self.gpus) * 1000),
            self.isolated,
            self.not_isolated,
        )
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::annotations::{Assignment, ContainerAssignment, GpuShare};
    use tessera_core::cluster::{NodeFacts, PodFacts};
    use tessera_core::inventory::{GpuInfo, NodeInventory};

    use super::*;

    /// Pod `key` bound to gpu-1, holding one share of GPU `uuid`.
    fn held(key: &str, uuid: &str, mem_mib: u64, core_milli: u32) -> PodFacts {
        PodFacts {
            key: key.into(),
            uid: key.into(),
            priority: 0,
            node: Some("gpu-1".into()),
            assignment: Some(Assignment {
                node: "gpu-1".into(),
                containers: vec![ContainerAssignment {
                    container: "main".into(),
                    init: false,
                    gpus: vec![GpuShare {
                        uuid: uuid.into(),
                        mem_mib,
                        core_milli,
                    }],
                }],
            }),
            assignment_error: None,
            group: None,
            terminal: false,
            run_as: tessera_core::request::RunAs::Uid(1000),
            origin: tessera_core::cluster::Origin::default(),
        }
    }

    fn cluster() -> Cluster {
        let mut c = Cluster::new(10);
        let gpu = |i: u32| GpuInfo {
            index: i,
            uuid: format!("GPU-{i}"),
            model: "T4".into(),
            memory_mib: 16384,
            healthy: true,
            mig: false,
            mps: true,
            isolation: tessera_core::inventory::Isolation::Mps,
        };
        c.apply_node(NodeFacts {
            name: "gpu-1".into(),
            zone: Some("a".into()),
            inventory: NodeInventory {
                gpus: vec![gpu(0), gpu(1)],
            },
            inventory_error: None,
            heartbeat: Some(970),
        });
        c.apply_node(NodeFacts {
            name: "cpu-1".into(),
            zone: None,
            inventory: NodeInventory::default(),
            inventory_error: None,
            heartbeat: None,
        });
        for (pod, uuid, mem, core) in [
            ("ml/a", "GPU-0", 4096, 250),
            ("ml/b", "GPU-0", 8192, 500),
            ("ml/c", "GPU-9", 1, 1),
        ] {
            c.apply_pod(held(pod, uuid, mem, core));
        }
        c
    }

    #[test]
    fn gpus_list_their_holders_and_what_is_free() {
        let scope = Scope {
            now_secs: 1_000,
            ..Scope::default()
        };
        let r = Report::of(&cluster(), &scope);
        assert_eq!(r.nodes.len(), 1, "nodes without GPUs are left out");
        let g0 = &r.nodes[0].gpus[0];
        assert_eq!(
            (g0.mem_free_mib, g0.core_free_milli, g0.slots_free),
            (16384 - 12288, 250, 8)
        );
        let who: Vec<&str> = g0.holders.iter().map(|h| h.pod.as_str()).collect();
        assert_eq!(who, ["ml/a", "ml/b"]);
        assert!(r.nodes[0].gpus[1].holders.is_empty());
        assert_eq!(
            r.unplaced,
            ["ml/c"],
            "an assignment naming an unknown GPU is reported"
        );
        let table = r.table(false);
        assert!(
            table.contains("gpu 0 GPU-0 T4  isolation mps single-user (serving UID 1000)  mem 12288/16384 MiB  compute 75%  free 4096 MiB, 25%"),
            "{table}"
        );
        assert!(
            table.contains("      ml/b [main]  8192 MiB, 50%"),
            "{table}"
        );
        assert!(table.contains("not counted: ml/c"), "{table}");
        assert!(!table.contains('\x1b'));
        assert!(r.table(true).contains("\x1b[32m"));
        assert!(
            table.contains("gpu-1  (zone a)  heartbeat 30s ago"),
            "{table}"
        );
        assert!(
            table.contains("total: 1 node(s), 2 GPU(s), 2 healthy; memory 12288/32768 MiB allocated (37%); compute 0.75/2 GPUs (37%); isolation live on 2, none on 0; oldest heartbeat 30s"),
            "{table}"
        );
    }

    #[test]
    fn a_namespace_shows_only_its_holders_and_keeps_cluster_totals() {
        let mut c = cluster();
        c.apply_pod(held("web/x", "GPU-1", 1024, 100));
        let scope = Scope {
            namespace: Some("web"),
            now_secs: 1_000,
            ..Scope::default()
        };
        let r = Report::of(&c, &scope);
        let who: Vec<&str> = r.nodes[0]
            .gpus
            .iter()
            .flat_map(|g| g.holders.iter().map(|h| h.pod.as_str()))
            .collect();
        assert_eq!(who, ["web/x"]);
        assert!(r.unplaced.is_empty(), "ml/c is another namespace's");
        assert_eq!(r.totals.mem_allocated_mib, 12288 + 1024);
    }
}
