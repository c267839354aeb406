//! Turning workload items into the k8s-openapi Pods the admission webhook and the extender
//! would see: StatefulSet members with their ordinal label and owner, other pods with their
//! limits, model annotation and group label.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use tessera_core::keys;
use tessera_core::request::{LABEL_GROUP_SIZE, Translation};

use super::{ScenarioError, WorkloadSpec, check_version, translation};

fn container(cpu: &str, memory: &str, limits: &BTreeMap<String, String>) -> Container {
    let requests: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", memory)]
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    let limits: BTreeMap<String, Quantity> = limits
        .iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect();
    Container {
        name: "main".into(),
        image: Some("registry.example/app:1".into()),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(namespace: &str, name: &str, c: Container, priority: i32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![c],
            priority: Some(priority),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn set(map: &mut Option<BTreeMap<String, String>>, k: &str, v: String) {
    map.get_or_insert_with(BTreeMap::new)
        .insert(k.to_string(), v);
}

/// Every pod of the workload in order (StatefulSets first), with its profile's translation.
pub fn workload_pods(
    w: &WorkloadSpec,
    file: &str,
) -> Result<Vec<(Pod, Translation)>, ScenarioError> {
    check_version(file, &w.version)?;
    let mut out = Vec::new();
    for s in &w.stateful_sets {
        for i in 0..s.replicas {
            let name = format!("{}-{i}", s.name);
            let mut p = pod(
                &s.namespace,
                &name,
                container(&s.cpu, &s.memory, &s.limits),
                0,
            );
            let labels = &mut p.metadata.labels;
            set(labels, keys::LABEL_POD_INDEX, i.to_string());
            set(labels, "statefulset.kubernetes.io/pod-name", name.clone());
            set(labels, LABEL_GROUP_SIZE, s.replicas.to_string());
            if s.quorum {
                set(labels, keys::LABEL_QUORUM, "true".into());
            }
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "StatefulSet".into(),
                name: s.name.clone(),
                uid: format!("sts-{}", s.name),
                controller: Some(true),
                ..Default::default()
            }]);
            out.push((p, Translation::default()));
        }
    }
    for t in &w.pods {
        let tr = translation(&t.translate, file, &t.name)?;
        for i in 1..=t.count {
            let name = if t.count == 1 {
                t.name.clone()
            } else {
                format!("{}-{i}", t.name)
            };
            let mut p = pod(
                &t.namespace,
                &name,
                container(&t.cpu, &t.memory, &t.limits),
                t.priority,
            );
            if let Some(models) = &t.gpu_models {
                set(
                    &mut p.metadata.annotations,
                    keys::ANNOTATION_GPU_MODELS,
                    models.clone(),
                );
            }
            if let Some(g) = &t.group {
                set(&mut p.metadata.labels, keys::LABEL_GROUP, g.clone());
            }
            out.push((p, tr));
        }
    }
    Ok(out)
}
