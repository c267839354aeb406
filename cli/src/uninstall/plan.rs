//! The order in which `tessera uninstall` removes Tessera's objects, as data: admission first (a
//! MutatingWebhookConfiguration with failurePolicy Fail whose service is gone refuses every pod
//! it matches, and the guard policies refuse GPU and quorum pods that no webhook mutated), then
//! the workloads and their cluster-wide RBAC, then the namespace, and the CRD last and only when
//! asked (deleting it deletes every InjectionProfile users wrote). No I/O: `mod.rs` lists and
//! deletes.

use kube::core::{ApiResource, GroupVersionKind};

/// One kind of object `tessera uninstall` removes, in its place in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource name in URLs.
    pub plural: &'static str,
    /// Namespaced (listed across every namespace) or cluster-scoped.
    pub namespaced: bool,
}

impl Stage {
    /// The kube-rs description of this kind, for a dynamic `Api`.
    pub fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        ApiResource::from_gvk_with_plural(&gvk, self.plural)
    }
}

const fn stage(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Stage {
    Stage {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

const ADMISSION: &str = "admissionregistration.k8s.io";
const RBAC: &str = "rbac.authorization.k8s.io";

/// Everything but the CRD, in deletion order. Namespaced objects (Services, Roles, Leases, the
/// webhook's certificate Secret) go with the namespace.
const ORDER: [Stage; 10] = [
    stage(
        ADMISSION,
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    stage(
        ADMISSION,
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        false,
    ),
    stage(
        ADMISSION,
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        false,
    ),
    stage("apps", "v1", "Deployment", "deployments", true),
    stage("apps", "v1", "DaemonSet", "daemonsets", true),
    // The webhook's tessera-share-* templates, in the users' namespaces (claims made from them
    // stay with their pods).
    stage(
        "resource.k8s.io",
        "v1",
        "ResourceClaimTemplate",
        "resourceclaimtemplates",
        true,
    ),
    // After the DRA plugin's DaemonSet: no new claim is allocated through the class once the
    // plugin that prepares them is gone.
    stage(
        "resource.k8s.io",
        "v1",
        "DeviceClass",
        "deviceclasses",
        false,
    ),
    stage(
        RBAC,
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    stage(RBAC, "v1", "ClusterRole", "clusterroles", false),
    stage("", "v1", "Namespace", "namespaces", false),
];

/// The CustomResourceDefinition, removed only with `--crds`.
pub const CRDS: Stage = stage(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    false,
);

/// The kinds to remove, in order; the CRD last and only when `crds` is set.
pub fn stages(crds: bool) -> Vec<Stage> {
    let mut out = ORDER.to_vec();
    if crds {
        out.push(CRDS);
    }
    out
}

/// One object to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Its kind.
    pub kind: &'static str,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Deletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(crds: bool) -> Vec<&'static str> {
        stages(crds).iter().map(|s| s.kind).collect()
    }

    #[test]
    fn admission_objects_go_first_and_the_namespace_after_the_workloads() {
        let order = kinds(false);
        let at = |k: &str| order.iter().position(|x| *x == k).unwrap_or(usize::MAX);
        assert_eq!(order[0], "MutatingWebhookConfiguration");
        assert!(at("ValidatingAdmissionPolicyBinding") < at("ValidatingAdmissionPolicy"));
        assert!(at("ValidatingAdmissionPolicy") < at("Deployment"));
        assert!(at("DaemonSet") < at("Namespace"));
        assert!(at("DaemonSet") < at("DeviceClass"));
        assert!(at("MutatingWebhookConfiguration") < at("ResourceClaimTemplate"));
        assert!(at("ClusterRole") < at("Namespace"));
    }

    #[test]
    fn the_crd_is_removed_last_and_only_when_asked() {
        assert!(!kinds(false).contains(&"CustomResourceDefinition"));
        assert_eq!(kinds(true).last(), Some(&"CustomResourceDefinition"));
    }

    #[test]
    fn a_deletion_names_its_namespace_when_it_has_one() {
        let d = Deletion {
            kind: "Deployment",
            namespace: Some("tessera-system".into()),
            name: "tessera-webhook".into(),
        };
        assert_eq!(d.to_string(), "Deployment tessera-system/tessera-webhook");
    }
}
