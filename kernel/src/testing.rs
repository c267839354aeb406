//! Builders for pods and GPU inventories, for tests of this and the other crates (feature
//! `testing`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::inventory::{GpuInfo, Isolation, NodeInventory};

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
        if let Some(spec) = self.pod.spec.as_mut() {
            spec.containers.push(limited(name, limits));
        }
        self
    }

    /// Adds an ordinary init container (runs to completion before the app containers).
    pub fn init_container(mut self, name: &str, limits: &[(&str, &str)]) -> Self {
        if let Some(spec) = self.pod.spec.as_mut() {
            spec.init_containers
                .get_or_insert_with(Vec::new)
                .push(limited(name, limits));
        }
        self
    }

    /// Adds a native sidecar: an init container with `restartPolicy: Always`.
    pub fn sidecar(mut self, name: &str, limits: &[(&str, &str)]) -> Self {
        if let Some(spec) = self.pod.spec.as_mut() {
            let mut c = limited(name, limits);
            c.restart_policy = Some("Always".into());
            spec.init_containers.get_or_insert_with(Vec::new).push(c);
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

fn limited(name: &str, limits: &[(&str, &str)]) -> Container {
    let limits: BTreeMap<String, Quantity> = limits
        .iter()
        .map(|(k, v)| ((*k).to_string(), Quantity((*v).to_string())))
        .collect();
    Container {
        name: name.into(),
        image: Some("example.invalid/app:1".into()),
        resources: Some(ResourceRequirements {
            limits: Some(limits),
            ..Default::default()
        }),
        ..Default::default()
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
