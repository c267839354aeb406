//! Bounds on the work one pod can ask of admission. Every size that grows with user input is
//! checked before the work it would cost: the StatefulSet ordinal (a peer list is rendered for
//! every member up to it), the replicas a peer list is rendered for, the containers every env
//! var and mount is copied into, the rendered identity text and the patch those copies make.
//! Names are checked against the lengths Kubernetes allows before any is copied, and a peer list
//! stops at the rendering budget instead of being measured after. A pod past a bound is denied
//! with the bound in the message; nothing is rendered for it.

use super::RenderProblem;
use super::view::PodView;
use tessera_kernel::keys;

/// Largest ensemble identity is rendered for: ordinals and replicas must stay below it when
/// the StatefulSet's replicas are not known. ZooKeeper, Kafka controller and RocketMQ
/// ensembles are a handful of members; a peer list of 1,000 entries is already about 100 KiB.
pub const MAX_ENSEMBLE: u32 = 1_000;

/// Most containers plus init containers in a pod that a profile is applied to. Injection
/// copies env vars and mounts into every container; Kubernetes itself sets no limit.
pub const MAX_CONTAINERS: usize = 250;

/// Most bytes of rendered identity (env values and files) for one pod. Files are stored in the
/// pod's annotations, which the apiserver caps at 256 KiB in total.
pub const MAX_RENDERED_BYTES: usize = 256 << 10;

/// Most bytes of env vars and mounts copied into the pod's containers by one patch (each copy
/// counted): the part of a patch that grows with the pod rather than with the profiles.
pub const MAX_COPIED_BYTES: usize = 1 << 20;

/// Longest DNS label Kubernetes accepts (namespaces, `spec.subdomain`).
pub const DNS_LABEL: usize = 63;
/// Longest DNS subdomain Kubernetes accepts (pod, StatefulSet and service account names).
pub const DNS_SUBDOMAIN: usize = 253;

/// Checks every name a template or label can copy from `pod` against the length Kubernetes
/// allows it, before anything is rendered: the apiserver validates a pod only after mutating
/// admission, so a 300 KB owner name or subdomain would otherwise be copied into every peer list
/// entry.
pub(super) fn check_names(pod: &PodView<'_>, namespace: &str) -> Result<(), RenderProblem> {
    let spec = pod.spec.as_ref();
    let names = [
        ("metadata.name", pod.metadata.name.as_deref(), DNS_SUBDOMAIN),
        ("metadata.namespace", Some(namespace), DNS_LABEL),
        (
            "the owning StatefulSet's name",
            pod.statefulset(),
            DNS_SUBDOMAIN,
        ),
        (
            "spec.subdomain",
            spec.and_then(|s| s.subdomain.as_deref()),
            DNS_LABEL,
        ),
        (
            "spec.serviceAccountName",
            spec.and_then(|s| s.service_account_name.as_deref()),
            DNS_SUBDOMAIN,
        ),
    ];
    for (field, name, limit) in names {
        let length = name.map_or(0, str::len);
        if length > limit {
            return Err(RenderProblem::NameTooLong {
                field,
                length,
                limit,
            });
        }
    }
    Ok(())
}

/// Checks `bytes` rendered (one value while it grows, or a pod's total) against
/// [`MAX_RENDERED_BYTES`].
pub(super) fn check_rendered(bytes: usize) -> Result<(), RenderProblem> {
    if bytes > MAX_RENDERED_BYTES {
        return Err(RenderProblem::RenderedTooLarge {
            bytes,
            limit: MAX_RENDERED_BYTES,
        });
    }
    Ok(())
}

/// Checks `ordinal` of StatefulSet member `pod` against the StatefulSet's `replicas` when
/// known, else against [`MAX_ENSEMBLE`].
pub(super) fn check_ordinal(
    pod: &PodView<'_>,
    ordinal: u32,
    replicas: Option<u32>,
) -> Result<(), RenderProblem> {
    let (limit, what) = match replicas {
        Some(n) => (n, "the StatefulSet's replicas"),
        None => (MAX_ENSEMBLE, "the maximum ensemble size"),
    };
    if ordinal < limit && ordinal < MAX_ENSEMBLE {
        return Ok(());
    }
    let (limit, what) = if limit <= MAX_ENSEMBLE {
        (limit, what)
    } else {
        (MAX_ENSEMBLE, "the maximum ensemble size")
    };
    let from = match pod.label(keys::LABEL_POD_INDEX) {
        Some(_) => format!("label {}", keys::LABEL_POD_INDEX),
        None => "the pod name".to_string(),
    };
    Err(RenderProblem::OrdinalOutOfRange {
        ordinal,
        from,
        limit,
        what,
    })
}

/// Checks the replicas a peer list or `{{replicas}}` is rendered for.
pub(super) fn check_replicas(replicas: u32) -> Result<u32, RenderProblem> {
    if replicas > MAX_ENSEMBLE {
        return Err(RenderProblem::EnsembleTooLarge {
            replicas,
            limit: MAX_ENSEMBLE,
        });
    }
    Ok(replicas)
}

/// Checks the pod's container count before anything is copied into its containers.
pub(super) fn check_containers(pod: &PodView<'_>) -> Result<(), RenderProblem> {
    let count = pod.containers().len() + pod.init_containers().len();
    if count > MAX_CONTAINERS {
        return Err(RenderProblem::TooManyContainers {
            count,
            limit: MAX_CONTAINERS,
        });
    }
    Ok(())
}

/// Adds `bytes` of rendered identity to `total` and checks [`MAX_RENDERED_BYTES`].
pub(super) fn add_rendered(total: &mut usize, bytes: usize) -> Result<(), RenderProblem> {
    *total = total.saturating_add(bytes);
    check_rendered(*total)
}

/// Checks `per_container` bytes copied into `containers` containers against
/// [`MAX_COPIED_BYTES`].
pub(super) fn check_copies(per_container: usize, containers: usize) -> Result<(), RenderProblem> {
    let bytes = per_container.saturating_mul(containers);
    if bytes > MAX_COPIED_BYTES {
        return Err(RenderProblem::PatchTooLarge {
            bytes,
            limit: MAX_COPIED_BYTES,
        });
    }
    Ok(())
}

/// Length of `value` as compact JSON, without building the text.
pub(super) fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Patch values always serialise, and the sink never fails.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
