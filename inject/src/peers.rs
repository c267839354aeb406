//! The `<statefulset>-peers` ConfigMap: which StatefulSets get one and what it holds. Rendered
//! by the same templates as the identity injected at admission, so members read a peer list
//! that follows scale-out and scale-in without being re-created (DESIGN.md, "Sidecars and
//! identity"). The webhook process's controller writes it; injected members mount it.

use std::collections::BTreeMap;

use super::compile::Profile;
use super::identity::{Facts, Renderer};
use super::select::label_selector_matches;
use super::{RenderError, RenderProblem};
use tessera_kernel::keys;

/// Suffix of the ConfigMap's name: `<statefulset>-peers`.
pub const CONFIGMAP_SUFFIX: &str = "-peers";

/// Where injected members see the ConfigMap (kept with the pod-independent parts).
pub use super::parts::peers_mount_path as mount_path;

/// The first profile (by name) with a peer list that a StatefulSet's pod template selects, by
/// labels or the `tessera.dev/inject` annotation.
pub fn peer_profile<'p>(
    profiles: &'p [Profile],
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<&'p Profile> {
    let named: Vec<&str> = annotations
        .get(keys::ANNOTATION_INJECT)
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    profiles.iter().find(|p| {
        p.peer_entry.is_some()
            && (named.contains(&p.name.as_str())
                || p.spec.selector.as_ref().is_some_and(|s| {
                    label_selector_matches(s, |k| labels.get(k).map(String::as_str))
                }))
    })
}

/// What a StatefulSet's peers ConfigMap holds: `peers` (the profile's rendered peer list),
/// `hosts` (one stable DNS name per line) and `replicas`.
pub fn configmap_data(
    profile: &Profile,
    statefulset: &str,
    namespace: &str,
    service: Option<&str>,
    replicas: u32,
    cluster_domain: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    let facts = Facts {
        pod: None,
        namespace,
        member: Some((statefulset, 0)),
        service,
        service_account: "default",
    };
    let domain = profile.cluster_domain(cluster_domain);
    let r = Renderer {
        facts: &facts,
        profile,
        replicas: Some(replicas),
        cluster_domain: domain,
        // The ConfigMap lists the StatefulSet's replicas; the recorded membership is on the
        // StatefulSet itself (`tessera.dev/membership`).
        record: None,
        peer_list: Default::default(),
    };
    let peers = r.render(
        "spec.identity.peers",
        &super::template::Template::peers_only(),
    )?;
    let service = service.ok_or_else(|| RenderError {
        profile: profile.name.clone(),
        field: "spec.identity.peers".into(),
        problem: RenderProblem::NoService,
    })?;
    let hosts: Vec<String> = (0..replicas)
        .map(|i| format!("{statefulset}-{i}.{service}.{namespace}.svc.{domain}"))
        .collect();
    Ok(BTreeMap::from([
        ("peers".to_string(), peers),
        ("hosts".to_string(), hosts.join("\n")),
        ("replicas".to_string(), replicas.to_string()),
    ]))
}
