//! Admission-time injection: which `InjectionProfile`s apply to a pod and the JSON Patch that
//! applies them (DESIGN.md, "Sidecars and identity").
//!
//! The webhook decodes the AdmissionReview into a [`PodView`], calls [`mutate`] and encodes the
//! answer. Everything is decided here: selection, sidecars without duplicates, identity
//! templating, the SPIFFE ID and its token, GPU name translation, the scheduler name and
//! anti-affinity group labels, and the `tessera.dev/injected: name@hash` marker that makes a
//! second pass change nothing. A profile that cannot render for a pod is an error and no patch
//! at all is produced.

pub mod bounds;
mod compile;
pub mod dra;
mod gpu;
mod group;
mod hold_stop;
mod identity;
pub mod membership;
mod owned;
mod parts;
mod patch;
pub mod peers;
pub mod profile;
mod render;
mod select;
pub mod template;
#[cfg(test)]
mod tests;
pub mod view;

pub use compile::{MAX_PROFILE_NAME, Problem, Profile, ProfileError, compile_all};
pub use identity::{Facts, MembershipLookup, ReplicaLookup};
pub use owned::forged_annotations;
pub use patch::{EnvVar, Op, PatchValue, Shared, escape};
pub use profile::{AntiAffinity, InjectionProfile, InjectionProfileSpec, Membership};
pub use render::{Context, Outcome, mutate};
pub use select::{Selection, injected_names, label_selector_matches, select};
pub use view::{PodView, Str};

use thiserror::Error;

use tessera_kernel::request::RequestError;

/// Annotation-key suffix of a profile's rendered files: `<profile>.files.tessera.dev/<file>`.
pub const FILES_ANNOTATION_DOMAIN: &str = "files.tessera.dev";
/// Env var holding the pod's SPIFFE ID.
pub const ENV_SPIFFE_ID: &str = "SPIFFE_ID";
/// Volume holding the projected service-account token for the SPIFFE audience.
pub const TOKEN_VOLUME: &str = "tessera-spiffe-token";
/// Where that token is mounted in every app container (file `token`).
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/tessera.dev/spiffe";

/// Why a profile cannot be rendered for a pod.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("profile {profile:?}: {field}: {problem}")]
pub struct RenderError {
    /// Profile name.
    pub profile: String,
    /// The profile field being rendered.
    pub field: String,
    /// What the pod lacks.
    pub problem: RenderProblem,
}

/// What a pod lacks for a profile to render.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderProblem {
    /// Identity templates need a StatefulSet member.
    #[error("the pod is not a StatefulSet member")]
    NotStatefulSetMember,
    /// The ordinal cannot be read.
    #[error("cannot read the StatefulSet ordinal from {0}")]
    BadOrdinal(String),
    /// No pod name at admission (`generateName`).
    #[error("the pod has no name at admission (generateName)")]
    NoPodName,
    /// No headless service.
    #[error("the pod has no spec.subdomain (headless service)")]
    NoService,
    /// Replica count unknown.
    #[error("the StatefulSet's replica count is unknown and spec.identity.replicas is not set")]
    NoReplicas,
    /// The container named to hold membership does not exist.
    #[error("the pod has no container {0:?}")]
    NoSuchContainer(String),
    /// The member's container has a preStop hook of its own.
    #[error("container {0:?} already has a preStop hook; the membership hook would replace it")]
    PreStopTaken(String),
    /// `{{role}}` without `spec.identity.membership`.
    #[error("{{{{role}}}} needs spec.identity.membership (its roles)")]
    NoMembership,
    /// `{{peers}}` inside the peer entry.
    #[error("{{{{peers}}}} cannot be used inside spec.identity.peers.entry")]
    NestedPeers,
    /// A GPU request that does not read.
    #[error("{0}")]
    Request(Box<RequestError>),
    /// The ordinal is not below the StatefulSet's replicas or the maximum ensemble size.
    #[error("StatefulSet ordinal {ordinal} (from {from}) is not below {what} ({limit})")]
    OrdinalOutOfRange {
        /// The ordinal read.
        ordinal: u32,
        /// Where it was read: the pod-index label or the pod name.
        from: String,
        /// The bound.
        limit: u32,
        /// What the bound is.
        what: &'static str,
    },
    /// More replicas than identity is rendered for.
    #[error("{replicas} replicas is more than the maximum ensemble size ({limit})")]
    EnsembleTooLarge {
        /// The replica count.
        replicas: u32,
        /// [`bounds::MAX_ENSEMBLE`].
        limit: u32,
    },
    /// More containers than injection serves.
    #[error("the pod has {count} containers and init containers; injection serves at most {limit}")]
    TooManyContainers {
        /// Containers plus init containers.
        count: usize,
        /// [`bounds::MAX_CONTAINERS`].
        limit: usize,
    },
    /// Rendered env values and files past their budget.
    #[error("rendered env values and files reach {bytes} bytes; the limit is {limit}")]
    RenderedTooLarge {
        /// Bytes rendered so far.
        bytes: usize,
        /// [`bounds::MAX_RENDERED_BYTES`].
        limit: usize,
    },
    /// Env vars and mounts copied into every container past their budget.
    #[error(
        "env vars and mounts copied into the pod's containers would take {bytes} bytes; the limit is {limit}"
    )]
    PatchTooLarge {
        /// Bytes the copies would take.
        bytes: usize,
        /// [`bounds::MAX_COPIED_BYTES`].
        limit: usize,
    },
    /// A name longer than Kubernetes allows (the apiserver validates only after admission).
    #[error("{field} is {length} characters long; Kubernetes allows at most {limit}")]
    NameTooLong {
        /// Which name.
        field: &'static str,
        /// Its length, bytes.
        length: usize,
        /// [`bounds::DNS_LABEL`] or [`bounds::DNS_SUBDOMAIN`].
        limit: usize,
    },
    /// An ephemeral container asking for a GPU share.
    #[error(
        "ephemeral container {container:?} asks for {resource}: ephemeral containers cannot hold \
         GPU shares (Kubernetes gives them no resources); ask for it in a container or init container"
    )]
    EphemeralGpu {
        /// Container name.
        container: String,
        /// The GPU resource it names.
        resource: String,
    },
    /// A foreign GPU name Tessera cannot express.
    #[error("container {container:?}: {resource} has no tessera.dev equivalent")]
    NoEquivalent {
        /// Container name.
        container: String,
        /// The foreign resource.
        resource: &'static str,
    },
}
