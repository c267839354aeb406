//! The DRA path at admission (dra/README.md, "Users' pod specs on the DRA path"): in a namespace
//! labelled `tessera.dev/gpu-path=dra`, a pod is first decided as on `/mutate` (its profiles,
//! gpushare's and HAMi's names normalised to Tessera's), then each container's GPU share is
//! moved from extended resources to a ResourceClaim made from a template per share size.
//! Templates are made by a controller, never here: admission has no side effects.

mod rewrite;
mod share;
mod template;
#[cfg(test)]
mod tests;

pub use rewrite::{claim_name, rewrite};
pub use share::{MEMORY_STEP_MIB, Share, TEMPLATE_PREFIX, WHOLE_PERCENT};
pub use template::{
    DEVICE_CLASS, MANAGED_BY, PART_OF, REQUEST, UUID_ATTRIBUTE, template, templates_of,
};

use serde::Deserialize;
use thiserror::Error;

use crate::compile::Profile;
use crate::render::{Context, Outcome, mutate};
use crate::view::PodView;
use crate::{RenderError, RenderProblem};

/// Why a pod cannot be admitted on the DRA path.
#[derive(Debug, Error)]
pub enum DraError {
    /// A profile does not render for the pod (as on `/mutate`).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A GPU request that does not read.
    #[error("{0}")]
    Request(RenderProblem),
    /// The pod already uses the claim name the rewrite needs, for something else.
    #[error(
        "container {container:?}: spec.resourceClaims already has {claim:?} ({}); Tessera names \
         the claim of this container's GPU share so",
        names.as_deref().map_or("not from a template".to_string(), |t| format!("template {t:?}"))
    )]
    ClaimTaken {
        /// The claim name.
        claim: String,
        /// The container whose share it would hold.
        container: String,
        /// The template the existing entry names.
        names: Option<String>,
    },
    /// The pod's JSON does not decode as a pod.
    #[error("the pod does not decode: {0}")]
    Decode(#[source] serde_json::Error),
    /// The profiles' patch did not apply to the pod (a bug: it is built against this pod).
    #[error("the injection patch does not apply to the pod: {0}")]
    Patch(String),
}

impl DraError {
    /// The profile the denial is about, for metrics (empty when none).
    pub fn profile(&self) -> &str {
        match self {
            DraError::Render(e) => &e.profile,
            _ => "",
        }
    }
}

/// Decides the pod whose JSON is `pod_json` on the DRA path: [`mutate`], then [`rewrite`] on
/// the pod as that patch leaves it. The answer's patch is both, in order.
pub fn mutate_dra(
    profiles: &[Profile],
    pod_json: &str,
    ctx: &Context<'_>,
) -> Result<Outcome, DraError> {
    let pod: PodView<'_> = serde_json::from_str(pod_json).map_err(DraError::Decode)?;
    let mut out = mutate(profiles, &pod, ctx)?;
    let (ops, warnings) = if out.ops.is_empty() {
        rewrite(&pod)?
    } else {
        let mut doc: serde_json::Value =
            serde_json::from_str(pod_json).map_err(DraError::Decode)?;
        let patch = serde_json::to_value(&out.ops)
            .and_then(serde_json::from_value::<Vec<json_patch::PatchOperation>>)
            .map_err(|e| DraError::Patch(e.to_string()))?;
        json_patch::patch(&mut doc, &patch).map_err(|e| DraError::Patch(e.to_string()))?;
        let normalised = PodView::deserialize(&doc).map_err(DraError::Decode)?;
        rewrite(&normalised)?
    };
    out.ops.extend(ops);
    out.warnings.extend(warnings);
    Ok(out)
}
