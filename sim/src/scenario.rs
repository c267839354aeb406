//! The scenario mode of `tessera simulate`: a cluster and a workload described in files (the
//! bundled ones by default), run through the same code the servers use. Workload items become
//! real k8s-openapi Pods; their requests are read by `request::pod_request` (with the profile's
//! name translation), placed by the scoring policy under the quorum filter and spreading
//! preference, and recorded in the ledger.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use tessera_core::affinity::{Spread, SpreadFault, Violations};
use tessera_core::frag::{self, ClassKey, NodeFrag, TypicalPods};
use tessera_core::inventory::{GpuInfo, Isolation, NodeInventory};
use tessera_core::ledger::{ClusterLedger, Holding, HostCapacity, NodeLedger};
use tessera_core::quantity;
use tessera_core::request::{self, Group, PodRequest, RequestContext, Translation};
use tessera_core::rng::Rng;
use tessera_core::score::{Policy, ScoreContext};

use super::engine::Chooser;

mod pods;

pub use pods::workload_pods;

/// The file format version these types read.
pub const FORMAT_VERSION: &str = "v1";

/// A cluster file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Must be `v1`.
    pub version: String,
    /// Device-plugin slots per GPU.
    #[serde(default = "default_slots")]
    pub slots_per_gpu: u32,
    /// Node templates.
    pub nodes: Vec<NodeSpec>,
}

fn default_slots() -> u32 {
    10
}

/// A node, or `count` identical nodes named `name-1`…`name-N`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Name (or prefix when `count` is set).
    pub name: String,
    /// How many such nodes.
    pub count: Option<u32>,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Allocatable CPU (`"64"`, `"500m"`).
    pub cpu: String,
    /// Allocatable memory (`"256Gi"`).
    pub memory: String,
    /// GPUs, if any.
    pub gpus: Option<GpuSpec>,
}

/// A node's GPUs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuSpec {
    /// Number of GPUs.
    pub count: u32,
    /// Model name.
    pub model: String,
    /// Memory per GPU, MiB.
    pub memory_mib: u64,
}

/// A workload file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Must be `v1`.
    pub version: String,
    /// Middleware ensembles.
    #[serde(default)]
    pub stateful_sets: Vec<StatefulSetSpec>,
    /// Other pods (AI training and inference…).
    #[serde(default)]
    pub pods: Vec<PodTemplate>,
}

/// A StatefulSet: `replicas` pods `name-0`…, grouped for spreading.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetSpec {
    /// StatefulSet name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Replicas.
    pub replicas: u32,
    /// A quorum ensemble (ZooKeeper, etcd, RocketMQ controller…).
    #[serde(default)]
    pub quorum: bool,
    /// CPU request per pod.
    pub cpu: String,
    /// Memory request per pod.
    pub memory: String,
    /// Extra limits (GPU shares…).
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// `count` pods `name-1`… with the same spec.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    /// Name (or prefix when `count` > 1).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// How many.
    #[serde(default = "one")]
    pub count: u32,
    /// CPU request.
    pub cpu: String,
    /// Memory request.
    pub memory: String,
    /// Limits, including GPU requests in any supported naming.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    /// Allowed GPU models, `|`-separated.
    pub gpu_models: Option<String>,
    /// Foreign request names to translate: `gpushare`, `hami`.
    #[serde(default)]
    pub translate: Vec<String>,
    /// Spreading group label.
    pub group: Option<String>,
    /// Pod priority.
    #[serde(default)]
    pub priority: i32,
}

fn one() -> u32 {
    1
}

/// Why a scenario could not run.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// Wrong or missing format version.
    #[error("{file}: version {found:?} is not supported (expected {FORMAT_VERSION:?})")]
    Version {
        /// Which file.
        file: String,
        /// Version found.
        found: String,
    },
    /// A quantity that does not parse.
    #[error("{file}: {field} = {value:?}: {source}")]
    Quantity {
        /// Which file.
        file: String,
        /// Field path.
        field: String,
        /// Offending value.
        value: String,
        /// Cause.
        #[source]
        source: quantity::QuantityError,
    },
    /// Two nodes with one name.
    #[error("{file}: node {name:?} is defined twice")]
    DuplicateNode {
        /// Which file.
        file: String,
        /// Node name.
        name: String,
    },
    /// An unknown translation name.
    #[error("{file}: pods[{name}].translate: {value:?} is not one of gpushare, hami")]
    Translation {
        /// Which file.
        file: String,
        /// Pod template name.
        name: String,
        /// Offending value.
        value: String,
    },
}

/// What happened to one pod that was not placed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// `namespace/name`.
    pub pod: String,
    /// Why (invalid request, or the first node's reason).
    pub reason: String,
}

/// The outcome of a scenario under one policy.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    /// Policy name.
    pub policy: String,
    /// Pods in the workload.
    pub pods: usize,
    /// Pods placed.
    pub placed: usize,
    /// Pods not placed, with reasons.
    pub failures: Vec<Failure>,
    /// GPUs in the cluster.
    pub cluster_gpus: u64,
    /// Allocated GPU compute, percent of the cluster's.
    pub alloc_pct: f64,
    /// GPUs' worth of compute nobody holds.
    pub unallocated_gpus: f64,
    /// Expected fragmentation, GPUs' worth (the FGD measure against the workload's own mix).
    pub fragmentation_gpus: f64,
    /// Fragmentation as a percent of idle GPU compute.
    pub fragmentation_pct_of_idle: f64,
    /// Spreading faults, counted.
    pub violations: Violations,
    /// Spreading faults, each with the node or zone it is on.
    pub faults: Vec<SpreadFault>,
    /// The final ledger (for the report).
    #[serde(skip)]
    pub ledger: ClusterLedger,
}

fn check_version(file: &str, found: &str) -> Result<(), ScenarioError> {
    if found == FORMAT_VERSION {
        Ok(())
    } else {
        Err(ScenarioError::Version {
            file: file.to_string(),
            found: found.to_string(),
        })
    }
}

/// Builds the ledger for a cluster file.
pub fn cluster_ledger(spec: &ClusterSpec, file: &str) -> Result<ClusterLedger, ScenarioError> {
    check_version(file, &spec.version)?;
    let mut ledger = ClusterLedger::new(spec.slots_per_gpu);
    for n in &spec.nodes {
        let q =
            |field: &str, value: &str, parse: fn(&str) -> Result<u64, quantity::QuantityError>| {
                parse(value).map_err(|source| ScenarioError::Quantity {
                    file: file.to_string(),
                    field: format!("nodes[{}].{field}", n.name),
                    value: value.to_string(),
                    source,
                })
            };
        let host = HostCapacity {
            cpu_milli: Some(q("cpu", &n.cpu, quantity::parse_cpu_milli)?),
            mem_mib: Some(q("memory", &n.memory, quantity::parse_mem_mib)?),
        };
        let names: Vec<String> = match n.count {
            Some(c) => (1..=c).map(|i| format!("{}-{i}", n.name)).collect(),
            None => vec![n.name.clone()],
        };
        for name in names {
            if ledger.node(&name).is_some() {
                return Err(ScenarioError::DuplicateNode {
                    file: file.to_string(),
                    name,
                });
            }
            let inventory = n
                .gpus
                .as_ref()
                .map(|g| node_inventory(&name, g))
                .unwrap_or_default();
            ledger.upsert_node(&name, n.zone.clone(), &inventory, host);
        }
    }
    Ok(ledger)
}

fn node_inventory(node: &str, g: &GpuSpec) -> NodeInventory {
    NodeInventory {
        gpus: (0..g.count)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{node}-{i}"),
                model: g.model.clone(),
                memory_mib: g.memory_mib,
                healthy: true,
                mig: false,
                mps: true,
                // Simulated nodes run Tessera's MPS daemon with the multi-user server.
                isolation: Isolation::MpsMultiUser,
            })
            .collect(),
    }
}

/// Runs the workload on the cluster under `policy`.
pub fn run(
    cluster: &ClusterSpec,
    cluster_file: &str,
    workload: &WorkloadSpec,
    workload_file: &str,
    policy: Policy,
) -> Result<ScenarioOutcome, ScenarioError> {
    let mut ledger = cluster_ledger(cluster, cluster_file)?;
    let pods = workload_pods(workload, workload_file)?;
    let largest = ledger
        .nodes()
        .iter()
        .flat_map(|n| n.gpus.iter().map(|g| g.mem_total_mib))
        .max();
    let requests: Vec<(String, Result<PodRequest, request::RequestError>)> = pods
        .iter()
        .map(|(pod, translation)| {
            (
                pod_key(pod),
                request::pod_request(
                    pod,
                    RequestContext {
                        translation: *translation,
                        largest_gpu_mib: largest,
                    },
                ),
            )
        })
        .collect();
    let mix = workload_mix(requests.iter().filter_map(|(_, r)| r.as_ref().ok()));
    let mut spread = Spread::default();
    let zones: Vec<String> = ledger
        .nodes()
        .iter()
        .filter_map(|n| n.zone.clone())
        .collect();
    spread.set_zones(zones.iter().map(String::as_str));
    let mut chooser = Chooser::new(policy);
    let mut rng = Rng::new(42);
    let mix = TypicalPods {
        cpu_per_gpu_milli: frag::cpu_per_gpu(ledger.nodes()),
        ..mix
    };
    let ctx = ScoreContext::new(&mix);
    let (mut placed, mut failures, mut groups) = (0, Vec::new(), Vec::<Group>::new());
    for (key, request) in &requests {
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                failures.push(Failure {
                    pod: key.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let chosen = {
            let rank = spread_rank(&spread, request.group.as_ref());
            chooser.choose(&ledger, request, ctx, &mut rng, &rank)
        };
        match chosen {
            Some((i, placement)) => {
                let holding = Holding {
                    placement,
                    cpu_milli: request.cpu_milli,
                    mem_mib: request.mem_mib,
                    run_as: request.run_as,
                };
                if ledger.apply_at(i, key, holding).is_ok() {
                    placed += 1;
                    if let Some(g) = &request.group {
                        spread.add(g, &ledger.nodes()[i]);
                        if !groups.contains(g) {
                            groups.push(g.clone());
                        }
                    }
                }
            }
            None => failures.push(Failure {
                pod: key.clone(),
                reason: why_not(&ledger, &spread, request, policy, ctx),
            }),
        }
    }
    Ok(outcome(
        policy,
        requests.len(),
        placed,
        failures,
        &spread,
        &groups,
        &mix,
        ledger,
    ))
}

/// Ranks nodes for a group member: the quorum filter vetoes, then fewer members of its group
/// on the node and zone rank higher (spreading first; the policy decides among equals).
fn spread_rank<'a>(
    spread: &'a Spread,
    group: Option<&'a Group>,
) -> impl Fn(&NodeLedger) -> Option<f64> + 'a {
    move |n: &NodeLedger| match group {
        Some(g) => spread.check(g, n).ok().map(|()| spread.score(g, n)),
        None => Some(0.0),
    }
}

/// Why no node took the pod: the quorum filter if it refused every node, else the first node's
/// fit failure, shortened.
fn why_not(
    ledger: &ClusterLedger,
    spread: &Spread,
    request: &PodRequest,
    policy: Policy,
    ctx: ScoreContext<'_>,
) -> String {
    if let Some(g) = &request.group
        && ledger.nodes().iter().all(|n| spread.check(g, n).is_err())
        && let Some(err) = ledger.nodes().iter().find_map(|n| spread.check(g, n).err())
    {
        return err.to_string();
    }
    let reason = super::engine::first_reason(ledger, request, policy, ctx)
        .map(|e| e.to_string())
        .unwrap_or_default();
    format!(
        "fits no node of {} (first: {})",
        ledger.nodes().len(),
        shorten(&reason, REASON_CHARS)
    )
}

/// Most characters of a node's reason quoted in a failure.
const REASON_CHARS: usize = 160;

/// `text` cut to at most `limit` characters at a word boundary, with `…` when cut.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let cut: String = text.chars().take(limit).collect();
    let word_end = cut.rfind(' ').unwrap_or(cut.len());
    format!("{}…", cut[..word_end].trim_end_matches([',', ';', ':']))
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The typical mix of a workload: its request classes covering 95% of pods.
pub fn workload_mix<'a>(requests: impl Iterator<Item = &'a PodRequest>) -> TypicalPods {
    let mut counts: HashMap<ClassKey, u64> = HashMap::new();
    for r in requests {
        let (milli, gpus, mem) = r.containers.first().map_or((0, 0, 0), |c| {
            (c.demand.core_milli, c.demand.gpus, c.demand.mem_mib)
        });
        *counts
            .entry((r.cpu_milli, milli, gpus, mem, r.models.clone()))
            .or_default() += 1;
    }
    TypicalPods::from_counts(counts, 0.95)
}

#[allow(clippy::too_many_arguments)]
fn outcome(
    policy: Policy,
    pods: usize,
    placed: usize,
    failures: Vec<Failure>,
    spread: &Spread,
    groups: &[Group],
    mix: &TypicalPods,
    ledger: ClusterLedger,
) -> ScenarioOutcome {
    let gpus: u64 = ledger.nodes().iter().map(|n| n.gpus.len() as u64).sum();
    let free: u64 = ledger.nodes().iter().map(NodeLedger::free_gpu_milli).sum();
    let frag: f64 = ledger
        .nodes()
        .iter()
        // The published measure, so that policies are compared on one scale.
        .map(|n| NodeFrag::new(n, mix).frag.published)
        .sum();
    let total = (gpus * 1000).max(1) as f64;
    ScenarioOutcome {
        policy: policy.name().to_string(),
        pods,
        placed,
        failures,
        cluster_gpus: gpus,
        alloc_pct: 100.0 * (total - free as f64) / total,
        unallocated_gpus: free as f64 / 1000.0,
        fragmentation_gpus: frag / 1000.0,
        fragmentation_pct_of_idle: if free == 0 {
            0.0
        } else {
            100.0 * frag / free as f64
        },
        violations: spread.violations(groups),
        faults: spread.faults(groups),
        ledger,
    }
}

/// Reads a translation list.
pub fn translation(names: &[String], file: &str, pod: &str) -> Result<Translation, ScenarioError> {
    let mut t = Translation::default();
    for n in names {
        match n.as_str() {
            "gpushare" => t.gpushare = true,
            "hami" => t.hami = true,
            other => {
                return Err(ScenarioError::Translation {
                    file: file.to_string(),
                    name: pod.to_string(),
                    value: other.to_string(),
                });
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests;
