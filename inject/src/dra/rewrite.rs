//! The rewrite of a pod's GPU shares into ResourceClaims, on the pod as normalised (Tessera's
//! names only): each container that asks for GPUs loses `tessera.dev/gpu`, `gpu-mem` and
//! `gpu-core` and gets one claim, made from the template of its share.

use serde_json::{Value, json};
use tessera_kernel::keys;
use tessera_kernel::request::Translation;

use super::DraError;
use super::share::Share;
use crate::patch::{Op, PatchValue, escape};
use crate::view::{ContainerView, PodView};

/// Tessera's request names, removed from a rewritten container.
const TESSERA_NAMES: [&str; 3] = [
    keys::RESOURCE_GPU,
    keys::RESOURCE_GPU_MEM,
    keys::RESOURCE_GPU_CORE,
];

/// Share names of gpushare and HAMi that only a profile translates (HAMi's `nvidia.com/gpu`
/// alone is a whole GPU, which the DeviceClass's extended resource serves without a rewrite).
const FOREIGN_SHARE_NAMES: [&str; 5] = [
    keys::GPUSHARE_MEM,
    keys::GPUSHARE_COUNT,
    keys::HAMI_MEM,
    keys::HAMI_CORES,
    keys::HAMI_MEM_PERCENTAGE,
];

/// The claim of the container at `index` of the app (`init` false) or init containers.
pub fn claim_name(init: bool, index: usize) -> String {
    if init {
        format!("tessera-gpu-init-{index}")
    } else {
        format!("tessera-gpu-{index}")
    }
}

/// The patch that moves `pod`'s shares to claims, and notes for the client. Nothing when no
/// container asks for a GPU by Tessera's names, so a second pass changes nothing.
pub fn rewrite(pod: &PodView<'_>) -> Result<(Vec<Op>, Vec<String>), DraError> {
    let mut ops = Vec::new();
    let mut warnings = Vec::new();
    let mut pod_claims: Vec<PatchValue> = Vec::new();
    let lists = [
        (true, "/spec/initContainers/", pod.init_containers()),
        (false, "/spec/containers/", pod.containers()),
    ];
    for (init, prefix, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            warn_foreign(c, &mut warnings);
            let demand =
                crate::gpu::demand_of(c, Translation::default()).map_err(DraError::Request)?;
            let Some(demand) = demand else { continue };
            let share = Share::of(&demand);
            let claim = claim_name(init, i);
            let template = share.template_name();
            match pod
                .resource_claims()
                .iter()
                .find(|e| e.name.as_str() == claim)
            {
                Some(e) if e.resource_claim_template_name.as_deref() == Some(&template) => {}
                Some(e) => {
                    return Err(DraError::ClaimTaken {
                        claim,
                        container: c.name.to_string(),
                        names: e
                            .resource_claim_template_name
                            .as_ref()
                            .map(|t| t.to_string()),
                    });
                }
                None => pod_claims
                    .push(json!({"name": claim, "resourceClaimTemplateName": template}).into()),
            }
            container_ops(&mut ops, &format!("{prefix}{i}"), c, &claim);
        }
    }
    if ops.is_empty() && pod_claims.is_empty() {
        return Ok((ops, warnings));
    }
    let has_claims = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.resource_claims.is_some());
    append(&mut ops, "/spec/resourceClaims", has_claims, pod_claims);
    // The label the template controller watches pods by.
    let labelled = pod.label(keys::LABEL_GPU_PATH) == Some(keys::GPU_PATH_DRA);
    if !labelled {
        ops.push(match pod.metadata.labels {
            Some(_) => add(
                format!("/metadata/labels/{}", escape(keys::LABEL_GPU_PATH)),
                Value::from(keys::GPU_PATH_DRA),
            ),
            None => add(
                "/metadata/labels".into(),
                json!({ keys::LABEL_GPU_PATH: keys::GPU_PATH_DRA }),
            ),
        });
    }
    Ok((ops, warnings))
}

/// Removes Tessera's names from the container at `base` and points it at `claim`.
fn container_ops(ops: &mut Vec<Op>, base: &str, c: &ContainerView<'_>, claim: &str) {
    let r = c.resources.as_ref();
    for (list, map) in [
        ("limits", r.and_then(|r| r.limits.as_ref())),
        ("requests", r.and_then(|r| r.requests.as_ref())),
    ] {
        for name in TESSERA_NAMES {
            if map.is_some_and(|m| m.contains_key(name)) {
                ops.push(Op {
                    op: "remove",
                    path: format!("{base}/resources/{list}/{}", escape(name)),
                    value: None,
                });
            }
        }
    }
    let claims = r.and_then(|r| r.claims.as_ref());
    if claims.is_some_and(|cs| cs.iter().any(|n| n.name.as_str() == claim)) {
        return;
    }
    if r.is_none() {
        ops.push(add(format!("{base}/resources"), json!({})));
    }
    let entry = json!({ "name": claim });
    match claims {
        Some(_) => ops.push(add(format!("{base}/resources/claims/-"), entry)),
        None => ops.push(add(format!("{base}/resources/claims"), json!([entry]))),
    }
}

/// Notes a container that still asks with gpushare's or HAMi's share names: no profile
/// translated them, so neither path can serve them.
fn warn_foreign(c: &ContainerView<'_>, warnings: &mut Vec<String>) {
    let r = c.resources.as_ref();
    let maps = [
        r.and_then(|r| r.limits.as_ref()),
        r.and_then(|r| r.requests.as_ref()),
    ];
    let found = FOREIGN_SHARE_NAMES
        .into_iter()
        .find(|n| maps.iter().flatten().any(|m| m.contains_key(*n)));
    if let Some(name) = found {
        warnings.push(format!(
            "container {:?} asks for {name}, which no profile translated for this pod, so it \
             is not moved to a ResourceClaim; label the pod tessera.dev/gpu-sharing=enabled \
             (the gpu-sharing profile) or ask with tessera.dev/gpu-mem and gpu-core",
            c.name.as_str()
        ));
    }
}

fn add(path: String, value: Value) -> Op {
    Op {
        op: "add",
        path,
        value: Some(value.into()),
    }
}

/// Appends `items` to the array at `path`, adding the array when the pod has none.
fn append(ops: &mut Vec<Op>, path: &str, exists: bool, items: Vec<PatchValue>) {
    if items.is_empty() {
        return;
    }
    if exists {
        for v in items {
            ops.push(Op {
                op: "add",
                path: format!("{path}/-"),
                value: Some(v),
            });
        }
    } else {
        ops.push(Op {
            op: "add",
            path: path.to_string(),
            value: Some(PatchValue::List(items)),
        });
    }
}
