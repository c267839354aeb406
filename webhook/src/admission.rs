//! One `/mutate` or `/mutate-dra` request: decode the review, ask core, encode the answer. No
//! decision is made here; see `tessera_inject` (and `tessera_inject::dra` for the DRA path).

use tessera_inject::{Context, dra, forged_annotations, mutate};
use tracing::{debug, debug_span, info};

use crate::error::WebhookError;
use crate::metrics::Outcome;
use crate::review::{API_VERSION, KIND, Response, Review};
use crate::state::WebhookState;

/// The answer to one review.
#[derive(Debug)]
pub struct Answer {
    /// The AdmissionReview response JSON.
    pub body: Vec<u8>,
    /// How it ended, for metrics.
    pub outcome: Outcome,
    /// Profiles applied or denied on.
    pub profiles: Vec<String>,
    /// Decided while StatefulSet (namespace, name) was missing from the cache: read it live
    /// and review again.
    pub missed: Option<(String, String)>,
}

/// Which decision a route asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `/mutate`: the injection profiles.
    Inject,
    /// `/mutate-dra`: the profiles, then GPU shares moved to ResourceClaims (namespaces on the
    /// DRA path; the apiserver picks them by the webhook configuration's namespaceSelector).
    Dra,
}

/// A denial: the profile it is about (empty when none) and the message for the user.
struct Denial {
    profile: String,
    message: String,
}

/// The pod of a review, undecoded, for the DRA path (which patches it before it rewrites).
#[derive(serde::Deserialize)]
struct RawReview<'a> {
    #[serde(borrow)]
    request: RawRequest<'a>,
}

#[derive(serde::Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    object: &'a serde_json::value::RawValue,
}

/// Answers the AdmissionReview in `body` (`/mutate`).
pub fn review(state: &WebhookState, body: &[u8]) -> Result<Answer, WebhookError> {
    review_on(state, body, Path::Inject)
}

/// Answers the AdmissionReview in `body` on `path`.
pub fn review_on(state: &WebhookState, body: &[u8], path: Path) -> Result<Answer, WebhookError> {
    // One UTF-8 check of the whole body (vectorised) instead of one per string.
    let text = std::str::from_utf8(body).map_err(WebhookError::NotUtf8)?;
    let review: Review<'_> = serde_json::from_str(text).map_err(WebhookError::Decode)?;
    let (api_version, kind) = (review.api_version.as_deref(), review.kind.as_deref());
    if api_version != Some(API_VERSION) || kind != Some(KIND) {
        return Err(WebhookError::NotReview {
            api_version: api_version.unwrap_or_default().to_string(),
            kind: kind.unwrap_or_default().to_string(),
        });
    }
    let req = review.request.ok_or(WebhookError::NoRequest)?;
    let namespace = req.namespace.as_deref().unwrap_or("");
    let name = req.name.as_deref().unwrap_or("");
    // Per-request lines are debug: at 2,000 reviews/s an info line each would cost more than the
    // decision. Denials are logged at info; the `injected` annotation and the metrics record the
    // rest.
    let span = debug_span!("mutate", uid = %req.uid.as_str(), namespace, name,
        operation = req.operation.as_deref().unwrap_or(""), profiles = tracing::field::Empty);
    let _enter = span.enter();
    let uid = req.uid.as_str();
    let (Some(pod), true) = (req.object.as_ref(), req.is_pod_create()) else {
        debug!("not a pod CREATE: allowed unchanged");
        return Ok(answer(
            Response::allow(uid, &[], Vec::new()),
            Outcome::Skipped,
            Vec::new(),
        ));
    };
    if let Some(why) = forged_annotations(pod) {
        info!(uid = %uid, namespace, name, error = %why, "denied");
        return Ok(answer(
            Response::deny(uid, 403, why),
            Outcome::Denied,
            Vec::new(),
        ));
    }
    let profiles = state.profiles();
    let cfg = state.admission();
    let missed = std::cell::RefCell::new(None);
    let replicas = |sts: &str| {
        let found = state.replicas(namespace, sts);
        if found.is_none() && state.misses(namespace, sts) {
            *missed.borrow_mut() = Some((namespace.to_string(), sts.to_string()));
        }
        found
    };
    let membership = |sts: &str| state.membership(namespace, sts);
    let ctx = Context {
        namespace,
        cluster_domain: &cfg.cluster_domain,
        spiffe: cfg.spiffe.as_ref(),
        replicas: Some(&replicas),
        membership: Some(&membership),
        ..Context::default()
    };
    let decided = match path {
        Path::Inject => mutate(&profiles, pod, &ctx).map_err(|e| Denial {
            profile: e.profile.clone(),
            message: e.to_string(),
        }),
        Path::Dra => {
            let raw: RawReview<'_> = serde_json::from_str(text).map_err(WebhookError::Decode)?;
            dra::mutate_dra(&profiles, raw.request.object.get(), &ctx).map_err(|e| Denial {
                profile: e.profile().to_string(),
                message: e.to_string(),
            })
        }
    };
    match decided {
        Ok(out) => {
            if !span.is_disabled() {
                span.record("profiles", out.applied.join(",").as_str());
            }
            let outcome = if !out.ops.is_empty() {
                Outcome::Patched
            } else if out.already.is_empty() {
                Outcome::Skipped
            } else {
                Outcome::Unchanged
            };
            debug!(ops = out.ops.len(), already = ?out.already, dry_run = req.dry_run.unwrap_or(false), "allowed");
            let labels = if out.applied.is_empty() {
                out.already.clone()
            } else {
                out.applied.clone()
            };
            let mut allowed = answer(
                Response::allow(uid, &out.ops, out.warnings),
                outcome,
                labels,
            );
            // Rendered without the StatefulSet (a profile's fallback replicas): decide again
            // once it has been read.
            allowed.missed = missed.take();
            Ok(allowed)
        }
        Err(e) => {
            span.record("profiles", e.profile.as_str());
            info!(uid = %uid, namespace, name, profile = %e.profile, error = %e.message, "denied");
            let profile = vec![e.profile.clone()];
            let mut denied = answer(
                Response::deny(uid, 403, e.message),
                Outcome::Denied,
                profile,
            );
            denied.missed = missed.take();
            Ok(denied)
        }
    }
}

fn answer(resp: Response<'_>, outcome: Outcome, profiles: Vec<String>) -> Answer {
    Answer {
        body: resp.to_review_json(),
        outcome,
        profiles,
        missed: None,
    }
}

#[cfg(test)]
mod tests;
