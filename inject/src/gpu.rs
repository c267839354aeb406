//! GPU request handling at admission: foreign request names (gpushare, HAMi) rewritten into
//! Tessera's per the profile's opt-in, and whether the pod needs the Tessera scheduler. The
//! request itself is read by [`tessera_kernel::request::pod_request`], the same code the extender runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::RenderProblem;
use super::patch::ContainerChanges;
use super::view::{ContainerView, StrMap};
use tessera_kernel::keys;
use tessera_kernel::request::{self, GpuDemand, RequestContext, Translation};

/// The foreign names each translation covers.
fn foreign_names(t: Translation) -> Vec<&'static str> {
    let mut names = Vec::new();
    if t.gpushare {
        names.extend([keys::GPUSHARE_COUNT, keys::GPUSHARE_MEM]);
    }
    if t.hami {
        names.extend([
            keys::HAMI_GPU,
            keys::HAMI_MEM,
            keys::HAMI_CORES,
            keys::HAMI_MEM_PERCENTAGE,
        ]);
    }
    names
}

/// True when any of `containers` asks for a GPU under a name `t` reads (Tessera's own always
/// count).
pub(super) fn asks_for_gpu<'c, 'a: 'c>(
    containers: impl IntoIterator<Item = &'c ContainerView<'a>>,
    t: Translation,
) -> bool {
    containers.into_iter().any(|c| gpu_name(c, t).is_some())
}

/// The first GPU resource name container `c` asks for under `t`.
fn gpu_name<'c>(c: &'c ContainerView<'_>, t: Translation) -> Option<&'c str> {
    let foreign = foreign_names(t);
    lists(c).find_map(|m| {
        m.keys()
            .map(|k| k.as_str())
            .find(|k| k.starts_with("tessera.dev/gpu") || foreign.contains(k))
    })
}

/// Refuses ephemeral containers that ask for GPUs: Kubernetes gives ephemeral containers no
/// resources and the kubelet never calls a device plugin for them, so a share there could be
/// neither placed nor allocated. (The apiserver refuses ephemeral containers at creation and
/// `resources` on them; the guard policy refuses them on `pods/ephemeralcontainers`, which
/// this webhook does not see.)
pub(super) fn refuse_ephemeral(
    containers: &[ContainerView<'_>],
    t: Translation,
) -> Result<(), RenderProblem> {
    for c in containers {
        if let Some(resource) = gpu_name(c, t) {
            return Err(RenderProblem::EphemeralGpu {
                container: c.name.to_string(),
                resource: resource.to_string(),
            });
        }
    }
    Ok(())
}

fn lists<'c>(c: &'c ContainerView<'_>) -> impl Iterator<Item = &'c StrMap<'c>> {
    let r = c.resources.as_ref();
    [
        r.and_then(|r| r.limits.as_ref()),
        r.and_then(|r| r.requests.as_ref()),
    ]
    .into_iter()
    .flatten()
}

/// Rewrites container `c`'s foreign GPU names into Tessera's, recording the edits in `changes`.
pub(super) fn translate(
    c: &ContainerView<'_>,
    t: Translation,
    changes: &mut ContainerChanges,
) -> Result<(), RenderProblem> {
    let foreign = foreign_names(t);
    let has_foreign = lists(c).any(|m| m.keys().any(|k| foreign.contains(&k.as_str())));
    if !has_foreign {
        return Ok(());
    }
    let Some(demand) = demand_of(c, t)? else {
        return Ok(());
    };
    if demand.mem_percent > 0 {
        return Err(RenderProblem::NoEquivalent {
            container: c.name.to_string(),
            resource: keys::HAMI_MEM_PERCENTAGE,
        });
    }
    let mut set = vec![(keys::RESOURCE_GPU.to_string(), demand.gpus.to_string())];
    if demand.mem_mib > 0 {
        set.push((
            keys::RESOURCE_GPU_MEM.to_string(),
            demand.mem_mib.to_string(),
        ));
    }
    if demand.core_milli > 0 && !(demand.exclusive() && demand.mem_mib == 0) {
        set.push((
            keys::RESOURCE_GPU_CORE.to_string(),
            (demand.core_milli / 10).to_string(),
        ));
    }
    let r = c.resources.as_ref();
    for (list, map) in [
        ("limits", r.and_then(|r| r.limits.as_ref())),
        ("requests", r.and_then(|r| r.requests.as_ref())),
    ] {
        let Some(map) = map else { continue };
        let remove: Vec<String> = map
            .keys()
            .filter(|k| foreign.contains(&k.as_str()))
            .map(|k| k.to_string())
            .collect();
        if !remove.is_empty() {
            changes.resources.insert(list, (remove, set.clone()));
        }
    }
    Ok(())
}

/// The container's GPU demand, read by the core request code with `t` applied.
pub(super) fn demand_of(
    c: &ContainerView<'_>,
    t: Translation,
) -> Result<Option<GpuDemand>, RenderProblem> {
    let to_map = |m: Option<&StrMap<'_>>| {
        m.map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let r = c.resources.as_ref();
    let container = Container {
        name: c.name.to_string(),
        resources: Some(ResourceRequirements {
            limits: to_map(r.and_then(|r| r.limits.as_ref())),
            requests: to_map(r.and_then(|r| r.requests.as_ref())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = Pod {
        spec: Some(PodSpec {
            containers: vec![container],
            ..Default::default()
        }),
        ..Default::default()
    };
    let ctx = RequestContext {
        translation: t,
        largest_gpu_mib: None,
    };
    let req = request::pod_request(&pod, ctx).map_err(|e| RenderProblem::Request(Box::new(e)))?;
    Ok(req.containers.first().map(|c| c.demand))
}
