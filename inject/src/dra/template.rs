//! The ResourceClaimTemplate of a share, and which ones a pod needs. Ordinary `resource.k8s.io/v1`
//! templates: one `exactly` request of the `gpu.tessera.dev` class, with `capacity.requests`
//! in the capacities the DRA plugin publishes (`memory` bytes, `compute` percent), so
//! kube-scheduler and the extender read them as they read any claim.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::{
    CapacityRequirements, DeviceClaim, DeviceConstraint, DeviceRequest, ExactDeviceRequest,
    ResourceClaimSpec, ResourceClaimTemplate, ResourceClaimTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::share::Share;

/// The DRA driver and its DeviceClass (`manifests/dra-plugin/deviceclass.yaml`).
pub const DEVICE_CLASS: &str = "gpu.tessera.dev";
/// The one request of every template; a container's MPS env comes from one claim.
pub const REQUEST: &str = "gpu";
/// The device attribute that tells GPUs apart (the plugin's `uuid`, qualified by its driver).
pub const UUID_ATTRIBUTE: &str = "gpu.tessera.dev/uuid";
/// Label on every template made, as on everything Tessera installs (`tessera uninstall`).
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "tessera");
/// Who made it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tessera-webhook");

/// The template for `share` in `namespace`.
pub fn template(namespace: &str, share: &Share) -> ResourceClaimTemplate {
    let mut requests = BTreeMap::new();
    if let Some(mib) = share.memory_mib {
        requests.insert("memory".to_string(), Quantity(format!("{mib}Mi")));
    }
    requests.insert("compute".to_string(), Quantity(share.percent.to_string()));
    // With several GPUs, each must be another device: a shareable device could otherwise serve
    // the one request twice.
    let constraints = (share.gpus > 1).then(|| {
        vec![DeviceConstraint {
            requests: Some(vec![REQUEST.to_string()]),
            distinct_attribute: Some(UUID_ATTRIBUTE.to_string()),
            ..Default::default()
        }]
    });
    let request = DeviceRequest {
        name: REQUEST.to_string(),
        exactly: Some(ExactDeviceRequest {
            device_class_name: DEVICE_CLASS.to_string(),
            allocation_mode: Some("ExactCount".to_string()),
            count: Some(i64::from(share.gpus)),
            capacity: Some(CapacityRequirements {
                requests: Some(requests),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let labels = [PART_OF, MANAGED_BY]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ResourceClaimTemplate {
        metadata: ObjectMeta {
            name: Some(share.template_name()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: ResourceClaimTemplateSpec {
            metadata: None,
            spec: ResourceClaimSpec {
                devices: Some(DeviceClaim {
                    requests: Some(vec![request]),
                    constraints,
                    config: None,
                }),
            },
        },
    }
}

/// The templates `pod` names that the webhook writes, each once, in the pod's order, for the
/// pod's claims not made yet: once `status.resourceClaimStatuses` names a claim, its template
/// has served, and the controller need not ask the apiserver again on the pod's later events.
pub fn templates_of(pod: &Pod) -> Vec<ResourceClaimTemplate> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut out: Vec<ResourceClaimTemplate> = Vec::new();
    let made = |name: &str| {
        pod.status
            .iter()
            .flat_map(|s| s.resource_claim_statuses.iter().flatten())
            .any(|c| c.name == name && c.resource_claim_name.is_some())
    };
    let claims = pod
        .spec
        .iter()
        .flat_map(|s| s.resource_claims.iter().flatten())
        .filter(|c| !made(&c.name));
    for claim in claims {
        let Some(share) = claim
            .resource_claim_template_name
            .as_deref()
            .and_then(Share::from_template_name)
        else {
            continue;
        };
        let name = share.template_name();
        if !out
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(&name))
        {
            out.push(template(namespace, &share));
        }
    }
    out
}
