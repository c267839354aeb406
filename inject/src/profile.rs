//! The `InjectionProfile` custom resource (`tessera.dev/v1alpha1`, cluster-scoped): which pods a
//! profile applies to and what it adds (DESIGN.md, "Sidecars and identity").
//!
//! The same schema is read from the cluster and from `--profiles FILE`. Container, volume and
//! selector fields keep the Kubernetes shapes (k8s-openapi types); their CRD schema is left open
//! (`x-kubernetes-preserve-unknown-fields`) because validation happens here, in [`super::compile`],
//! with errors naming the profile and the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// What a profile injects and into which pods.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tessera.dev",
    version = "v1alpha1",
    kind = "InjectionProfile",
    shortname = "injprof",
    doc = "Sidecars, identity and GPU-request handling that the Tessera webhook injects into matching pods."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectionProfileSpec {
    /// Pods whose labels match are injected; absent: only pods naming the profile in
    /// `tessera.dev/inject` are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub selector: Option<LabelSelector>,
    /// Namespaces whose labels match. Namespace labels are not in the AdmissionReview: the
    /// MutatingWebhookConfiguration scopes namespaces; the webhook checks this only when it knows
    /// the namespace's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub namespace_selector: Option<LabelSelector>,
    /// Also inject pods in `kube-system` (skipped otherwise).
    #[serde(default)]
    pub kube_system: bool,
    /// Also inject pods with `hostNetwork: true` (skipped otherwise).
    #[serde(default)]
    pub host_network: bool,
    /// Containers, init containers and volumes to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecars: Option<Sidecars>,
    /// Identity: templated env and files (a StatefulSet member's ordinal, peers, host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// SPIFFE ID env and a projected service-account token for every injected pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<Spiffe>,
    /// GPU request-name translation and the scheduler for shared-GPU pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
}

/// Containers, init containers and volumes a profile adds. A container or volume whose name
/// the pod already has is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecars {
    /// Add `containers` as native sidecars: init containers with `restartPolicy: Always`
    /// (Kubernetes ≥ 1.29), placed first so they start before and stop after the app.
    #[serde(default)]
    pub native: bool,
    /// Sidecar containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "open_object_list")]
    pub containers: Vec<Container>,
    /// Init containers, run before the pod's own init containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "open_object_list")]
    pub init_containers: Vec<Container>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "open_object_list")]
    pub volumes: Vec<Volume>,
    /// Mounts of those volumes added to every app container (a path already mounted is kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "open_object_list")]
    pub app_volume_mounts: Vec<VolumeMount>,
}

/// Identity, rendered from templates at admission. Templates that use only `namespace`,
/// `clusterDomain` and `serviceAccount` render for every pod; the others need a StatefulSet
/// member (a pod created from a Deployment has no name at admission), and other pods get no
/// identity from such a profile.
///
/// Templates are text with `{{variable}}` placeholders: `pod`, `namespace`, `statefulset`,
/// `service` (the headless service, `spec.subdomain`), `replicas`, `clusterDomain`, `host` (the
/// pod's stable DNS name), `serviceAccount`, `peers` (see [`Peers`]) and `ordinal`, which also
/// takes an offset: `{{ordinal+1}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    /// Replica count used when the webhook does not know the StatefulSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Cluster DNS domain; absent: the webhook's `--cluster-domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    /// How `{{peers}}` is rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Peers>,
    /// Env vars added to every app container (a name the container already sets is kept as is).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files, mounted read-only in every app container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Files>,
    /// Anti-affinity of the ensemble: `none` (default), `spread` or `quorum`. With `spread` or
    /// `quorum` the pod goes to the Tessera scheduler (`spec.schedulerName: tessera-scheduler`,
    /// or `spec.gpu.schedulerName` when set) and is labelled with its group:
    /// `tessera.dev/group` (the owning StatefulSet), `tessera.dev/group-size` (the StatefulSet's
    /// replicas, else `identity.replicas`) and, for `quorum`, `tessera.dev/quorum: "true"`. `spread`
    /// spreads the members across nodes and zones; `quorum` also keeps any single node and zone
    /// below half of the ensemble, and refuses a pod whose ensemble size is unknown. Labels the
    /// pod already has are kept. A pod that is neither a StatefulSet member nor labelled
    /// `tessera.dev/group` has no group and is left alone, and so is a pod naming a scheduler
    /// other than `default-scheduler` (the response warns that its group is not enforced).
    #[serde(default, skip_serializing_if = "AntiAffinity::is_none")]
    pub anti_affinity: AntiAffinity,
    /// The ensemble's membership is Tessera's to keep (the membership controller): members
    /// join as learners and are promoted one at a time, leave the voters before they stop, and
    /// roll followers first (README, "Ensembles").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Membership>,
}

/// How the membership controller drives one product's ensemble: its own tools, run in a
/// member's container with `sh -c`, so a new product is a new profile and no new code.
/// Commands see `TESSERA_ID` (the member acted on, rendered from `id`) and `TESSERA_ENTRY`
/// (its peer entry rendered as a voter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Membership {
    /// The product's id of a member, e.g. `{{ordinal+1}}` for ZooKeeper's myid.
    pub id: String,
    /// What `{{role}}` renders to in the peer list for a voter and for a learner.
    pub roles: Roles,
    /// The container the commands run in and whose stop is held (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Longest a member's stop is held while it still votes (default 60 s); past it, the
    /// member stops as a voter (the controller is down or the ensemble cannot answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_timeout_seconds: Option<u32>,
    /// The product's commands.
    pub commands: MembershipCommands,
}

/// `{{role}}` for voters and learners.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Roles {
    /// E.g. ZooKeeper's `participant`.
    pub voter: String,
    /// E.g. ZooKeeper's `observer`.
    pub learner: String,
}

/// Shell commands (`sh -c`) run in a member's container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipCommands {
    /// Prints the live membership, one `ID ROLE` line per member (ROLE as in `roles`).
    pub members: String,
    /// Prints `leader` when the member it runs in leads.
    pub leader: String,
    /// Makes member `TESSERA_ID` (`TESSERA_ENTRY`) a voter; run in a voter, or in the joining
    /// member itself with `addInMember`.
    pub add: String,
    /// `add` runs in the joining member (KRaft's `add-controller` reads the joiner's own
    /// configuration) instead of in a voter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub add_in_member: bool,
    /// Removes member `TESSERA_ID` from the voters; run in a voter that stays.
    pub remove: String,
    /// Exits 0 while the member it runs in still votes: its stop is held meanwhile.
    pub votes: String,
}

/// How the Tessera scheduler places the members of one ensemble (`identity.antiAffinity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AntiAffinity {
    /// No anti-affinity: the pod's scheduler and labels are left as they are.
    #[default]
    None,
    /// Members are spread across nodes and zones (`topology.kubernetes.io/zone`) as far as
    /// the cluster allows.
    Spread,
    /// Spread, and no single node or zone may hold half or more of the ensemble, so losing one
    /// never loses quorum (ZooKeeper, KRaft controllers, etcd).
    Quorum,
}

impl AntiAffinity {
    /// True for the default, `none`.
    pub fn is_none(&self) -> bool {
        *self == AntiAffinity::None
    }
}

/// The peer list: one entry per ordinal `0..replicas`, joined by `separator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peers {
    /// Template of one entry; `ordinal`, `pod` and `host` are the peer's.
    pub entry: String,
    /// Text between entries (default `,`).
    #[serde(default = "default_separator")]
    pub separator: String,
}

fn default_separator() -> String {
    ",".to_string()
}

/// Templated files. Their rendered text is stored in pod annotations and projected into the
/// containers through the downward API, so no image or apiserver round trip is involved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Files {
    /// Absolute directory the files appear in.
    pub mount_path: String,
    /// File name (a plain name, no `/`) to template.
    pub items: BTreeMap<String, String>,
}

/// SPIFFE identity: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spiffe {
    /// Trust domain (a DNS-like name).
    pub trust_domain: String,
    /// Audience of the projected service-account token.
    pub audience: String,
    /// Token lifetime in seconds (at least 600, the apiserver's minimum).
    #[serde(default = "default_expiration")]
    pub expiration_seconds: i64,
}

fn default_expiration() -> i64 {
    3600
}

/// GPU handling for AI pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gpu {
    /// Translate gpushare names (`aliyun.com/gpu-mem` GiB, `aliyun.com/gpu-count`).
    #[serde(default)]
    pub gpushare: bool,
    /// Translate HAMi names (`nvidia.com/gpu`, `gpumem`, `gpucores`).
    #[serde(default)]
    pub hami: bool,
    /// Scheduler for pods that ask for shared GPUs, and for this profile's anti-affinity groups
    /// (default `tessera-scheduler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
}

/// An object the CRD leaves open; validated when the profile is compiled.
fn open_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A list of open objects (containers, volumes).
fn open_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}
