//! A Pod decoded for what the extender reads of it, and nothing else: the pod watch and the verbs
//! see every pod of the profile several times, and a whole `Pod` (managed fields, env, volumes,
//! probes, statuses) costs most of its decoding in strings and maps the decisions never look at.
//! Fields left out are skipped by the JSON parser without being built. What is kept is what
//! `PodFacts`, `pod_request` (with `pod_group` and `run_as`) and the binder read, plus the DRA
//! claim references; `tests::decisions_match_the_whole_pod` holds the two decodings to the same
//! decisions over every pod fixture.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, Pod, PodResourceClaim, PodResourceClaimStatus, PodSecurityContext, PodSpec,
    PodStatus, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::{NamespaceResourceScope, Resource as _};
use serde::{Deserialize, Deserializer};

/// A Pod holding only the fields the extender reads (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlimPod(pub Pod);

impl std::ops::Deref for SlimPod {
    type Target = Pod;
    fn deref(&self) -> &Pod {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SlimPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(SlimPod(wire.into_pod()))
    }
}

/// Same kind, group, version and path as `Pod`: the apiserver serves it as a Pod.
impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(Pod::KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(Pod::GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(Pod::VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(Pod::URL_PATH_SEGMENT)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    spec: Option<WireSpec>,
    #[serde(default)]
    status: Option<WireStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    /// The watch resumes from the last object's version; the stale-assignment patch is
    /// conditional on it.
    resource_version: Option<String>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    #[serde(default)]
    containers: Vec<WireContainer>,
    init_containers: Option<Vec<WireContainer>>,
    node_name: Option<String>,
    priority: Option<i32>,
    scheduler_name: Option<String>,
    security_context: Option<WireRunAs>,
    resource_claims: Option<Vec<PodResourceClaim>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContainer {
    #[serde(default)]
    name: String,
    resources: Option<ResourceRequirements>,
    restart_policy: Option<String>,
    security_context: Option<WireRunAs>,
}

/// The part of a pod's or a container's `securityContext` that is read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRunAs {
    run_as_user: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    phase: Option<String>,
    resource_claim_statuses: Option<Vec<PodResourceClaimStatus>>,
}

impl Wire {
    fn into_pod(self) -> Pod {
        let m = self.metadata;
        Pod {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                deletion_timestamp: m.deletion_timestamp,
                labels: m.labels,
                annotations: m.annotations,
                owner_references: m.owner_references,
                ..Default::default()
            },
            spec: self.spec.map(WireSpec::into_spec),
            status: self.status.map(|s| PodStatus {
                phase: s.phase,
                resource_claim_statuses: s.resource_claim_statuses,
                ..Default::default()
            }),
        }
    }
}

impl WireSpec {
    fn into_spec(self) -> PodSpec {
        PodSpec {
            containers: self
                .containers
                .into_iter()
                .map(WireContainer::into_container)
                .collect(),
            init_containers: self
                .init_containers
                .map(|cs| cs.into_iter().map(WireContainer::into_container).collect()),
            node_name: self.node_name,
            priority: self.priority,
            scheduler_name: self.scheduler_name,
            security_context: self.security_context.map(|s| PodSecurityContext {
                run_as_user: s.run_as_user,
                ..Default::default()
            }),
            resource_claims: self.resource_claims,
            ..Default::default()
        }
    }
}

impl WireContainer {
    fn into_container(self) -> Container {
        Container {
            name: self.name,
            resources: self.resources,
            restart_policy: self.restart_policy,
            security_context: self.security_context.map(|s| SecurityContext {
                run_as_user: s.run_as_user,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
#[path = "slim_pod/tests.rs"]
mod tests;
