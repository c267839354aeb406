//! A borrowed view of the parts of a pod that injection reads. Decoding only these fields,
//! borrowing strings from the request body, costs a fraction of building a full `Pod` or a
//! `serde_json::Value`; everything else in the object is skipped unparsed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A string borrowed from the input when it has no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Str<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// String map (labels, annotations, resource lists).
pub type StrMap<'a> = BTreeMap<Str<'a>, Str<'a>>;

/// The pod, as far as injection reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView<'a> {
    /// Metadata.
    #[serde(borrow, default)]
    pub metadata: MetaView<'a>,
    /// Spec (always present on a real pod).
    #[serde(borrow, default)]
    pub spec: Option<SpecView<'a>>,
}

/// `metadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaView<'a> {
    /// Name; absent for `generateName` pods at admission.
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// Namespace (the request's namespace is used when absent).
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    /// Labels.
    #[serde(borrow, default)]
    pub labels: Option<StrMap<'a>>,
    /// Annotations.
    #[serde(borrow, default)]
    pub annotations: Option<StrMap<'a>>,
    /// Owners.
    #[serde(borrow, default)]
    pub owner_references: Option<Vec<OwnerView<'a>>>,
}

/// One owner reference.
#[derive(Debug, Deserialize)]
pub struct OwnerView<'a> {
    /// Owner kind.
    #[serde(borrow)]
    pub kind: Str<'a>,
    /// Owner name.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// The managing controller.
    #[serde(default)]
    pub controller: Option<bool>,
}

/// `spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecView<'a> {
    /// App containers.
    #[serde(borrow, default)]
    pub containers: Option<Vec<ContainerView<'a>>>,
    /// Init containers.
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
    /// Ephemeral containers (only to refuse GPU shares there).
    #[serde(borrow, default)]
    pub ephemeral_containers: Option<Vec<ContainerView<'a>>>,
    /// Volumes (names only).
    #[serde(borrow, default)]
    pub volumes: Option<Vec<Named<'a>>>,
    /// Host network.
    #[serde(default)]
    pub host_network: Option<bool>,
    /// Service account (defaulted to `default` before webhooks run).
    #[serde(borrow, default)]
    pub service_account_name: Option<Str<'a>>,
    /// Scheduler name.
    #[serde(borrow, default)]
    pub scheduler_name: Option<Str<'a>>,
    /// Headless service of a StatefulSet member.
    #[serde(borrow, default)]
    pub subdomain: Option<Str<'a>>,
    /// Pod-level ResourceClaims (the DRA path adds one per GPU container).
    #[serde(borrow, default)]
    pub resource_claims: Option<Vec<PodClaimView<'a>>>,
}

/// One `spec.resourceClaims` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodClaimView<'a> {
    /// Name the containers refer to.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// The template a claim is made from, when it names one.
    #[serde(borrow, default)]
    pub resource_claim_template_name: Option<Str<'a>>,
}

/// An entry that only matters by name.
#[derive(Debug, Deserialize)]
pub struct Named<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Str<'a>,
}

/// A container, as far as injection reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// Env var names.
    #[serde(borrow, default)]
    pub env: Option<Vec<Named<'a>>>,
    /// Volume mounts.
    #[serde(borrow, default)]
    pub volume_mounts: Option<Vec<MountView<'a>>>,
    /// Resources.
    #[serde(borrow, default)]
    pub resources: Option<ResourcesView<'a>>,
    /// Lifecycle hooks, as far as whether one is set.
    #[serde(default)]
    pub lifecycle: Option<LifecycleView>,
}

/// `lifecycle`: which hooks are set.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleView {
    /// `preStop`, when set.
    #[serde(default)]
    pub pre_stop: Option<serde::de::IgnoredAny>,
}

/// A volume mount.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountView<'a> {
    /// Volume name.
    #[serde(borrow)]
    pub name: Str<'a>,
    /// Where it is mounted.
    #[serde(borrow)]
    pub mount_path: Str<'a>,
}

/// `resources`.
#[derive(Debug, Default, Deserialize)]
pub struct ResourcesView<'a> {
    /// Limits.
    #[serde(borrow, default)]
    pub limits: Option<StrMap<'a>>,
    /// Requests.
    #[serde(borrow, default)]
    pub requests: Option<StrMap<'a>>,
    /// Pod-level claims the container uses (by name).
    #[serde(borrow, default)]
    pub claims: Option<Vec<Named<'a>>>,
}

impl<'a> PodView<'a> {
    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        get(self.metadata.labels.as_ref(), key)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        get(self.metadata.annotations.as_ref(), key)
    }

    /// The StatefulSet that controls the pod (an owner of that kind whose `controller` is not
    /// false).
    pub fn statefulset(&self) -> Option<&str> {
        self.metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind.as_str() == "StatefulSet" && o.controller.unwrap_or(true))
            .map(|o| o.name.as_str())
    }

    /// The scheduler the pod names (`None` when unset or empty).
    pub fn scheduler_name(&self) -> Option<&str> {
        self.spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// App containers (empty when the spec has none).
    pub fn containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.containers.as_deref())
            .unwrap_or(&[])
    }

    /// Init containers.
    pub fn init_containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or(&[])
    }
}

impl<'a> PodView<'a> {
    /// Pod-level ResourceClaims (empty when the spec has none).
    pub fn resource_claims(&self) -> &[PodClaimView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.resource_claims.as_deref())
            .unwrap_or(&[])
    }

    /// Ephemeral containers (empty when the spec has none).
    pub fn ephemeral_containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_deref())
            .unwrap_or(&[])
    }
}

fn get<'m>(map: Option<&'m StrMap<'_>>, key: &str) -> Option<&'m str> {
    map?.get(key).map(Str::as_str)
}
