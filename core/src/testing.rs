//! Builders for pods, nodes and GPUs, for tests of this and the other crates (feature `testing`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::inventory::{GpuInfo, Isolation, NodeInventory};
use crate::ledger::{HostCapacity, NodeLedger};

/// Builds a pod with containers and resource limits.
#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Pod,
}

impl PodBuilder {
    /// A pod `namespace/name` with no containers.
    pub fn new(namespace: &str, name: &str) -> Self {
        PodBuilder {
            pod: Pod {
                metadata: ObjectMeta {
                    namespace: Some(namespace.into()),
                    name: Some(name.into()),
                    ..Default::default()
                },
                spec: Some(PodSpec::default()),
                ..Default::default()
            },
        }
    }

    /// Adds a container whose limits are `limits` (name, quantity).
    pub fn container(mut self, name: &str, limits: &[(&str, &str)]) -> Self {
        let limits: BTreeMap<String, Quantity> = limits
            .iter()
            .map(|(k, v)| ((*k).to_string(), Quantity((*v).to_string())))
            .collect();
        if let Some(spec) = self.pod.spec.as_mut() {
            spec.containers.push(Container {
                name: name.into(),
                image: Some("example.invalid/app:1".into()),
                resources: Some(ResourceRequirements {
                    limits: Some(limits),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        self
    }

    /// Sets a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.pod
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// Sets an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// Marks the pod as controlled by StatefulSet `name`.
    pub fn statefulset(mut self, name: &str) -> Self {
        self.pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            ..Default::default()
        }]);
        self
    }

    /// Sets the pod priority.
    pub fn priority(mut self, priority: i32) -> Self {
        if let Some(spec) = self.pod.spec.as_mut() {
            spec.priority = Some(priority);
        }
        self
    }

    /// The pod.
    pub fn build(self) -> Pod {
        self.pod
    }
}

/// `count` healthy GPUs of `model` with `mem_mib` each, UUIDs `GPU-<node>-<i>`.
pub fn gpus(node: &str, count: u32, model: &str, mem_mib: u64) -> NodeInventory {
    NodeInventory {
        gpus: (0..count)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{node}-{i}"),
                model: model.into(),
                memory_mib: mem_mib,
                healthy: true,
                mig: false,
                mps: true,
                // Simulated nodes run Tessera's MPS daemon with the multi-user server.
                isolation: Isolation::MpsMultiUser,
            })
            .collect(),
    }
}

/// A node ledger with `count` GPUs and no host accounting.
pub fn node(name: &str, count: u32, model: &str, mem_mib: u64) -> NodeLedger {
    NodeLedger::new(
        name,
        None,
        &gpus(name, count, model, mem_mib),
        HostCapacity::untracked(),
        10,
        crate::ledger::SharingPolicy::IsolatedOnly,
    )
}

/// Records on `node` that `pod` holds `core_milli` of compute and `mem_mib` on GPU `gpu`.
/// Test setup: a refused holding is a broken test, so it panics.
#[allow(clippy::panic)]
pub fn hold(node: &mut NodeLedger, pod: &str, gpu: usize, mem_mib: u64, core_milli: u32) {
    use crate::ledger::{ContainerPlacement, Holding, Placement, Share};
    let share = Share {
        gpu,
        mem_mib,
        core_milli,
    };
    let placement = Placement {
        containers: vec![ContainerPlacement {
            container: "c".into(),
            shares: vec![share],
        }],
    };
    if let Err(e) = node.apply(
        pod,
        Holding {
            placement,
            cpu_milli: 0,
            mem_mib: 0,
            run_as: crate::request::RunAs::Unstated,
        },
    ) {
        panic!("test setup: {e}");
    }
}

/// A cluster of `nodes` nodes with 8 A100-40GB GPUs each and about `pods_per_node` random
/// shares (5–30% compute, 40 MiB per 0.1%) placed on each, host resources untracked: the
/// extender's view of a large, busy cluster, for benchmarks.
pub fn busy_cluster(nodes: usize, pods_per_node: usize, seed: u64) -> crate::ledger::ClusterLedger {
    use crate::ledger::{ClusterLedger, ContainerPlacement, Holding, Placement, Share};
    let mut ledger = ClusterLedger::new(64);
    let mut rng = crate::rng::Rng::new(seed);
    for n in 0..nodes {
        let name = format!("node-{n}");
        ledger.upsert_node(
            &name,
            None,
            &gpus(&name, 8, "A100", 40960),
            HostCapacity::untracked(),
        );
        for p in 0..pods_per_node {
            let core = 50 * (1 + rng.below(6) as u32);
            let share = Share {
                gpu: rng.below(8) as usize,
                mem_mib: u64::from(core) * 40,
                core_milli: core,
            };
            let placement = Placement {
                containers: vec![ContainerPlacement {
                    container: "c".into(),
                    shares: vec![share],
                }],
            };
            // A share that does not fit its GPU is simply skipped.
            let _ = ledger.apply_at(
                n,
                &format!("ns/p-{n}-{p}"),
                Holding {
                    placement,
                    cpu_milli: 0,
                    mem_mib: 0,
                    run_as: crate::request::RunAs::Unstated,
                },
            );
        }
    }
    ledger
}
