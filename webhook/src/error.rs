//! The webhook's errors and their one mapping to HTTP (STYLE.md, section 3): a policy decision
//! (a profile that cannot render) is HTTP 200 with `allowed: false` and is not an error here; an
//! undecodable review is 400 with a JSON body naming the problem; a body over the limit is 413;
//! a request that ran out of time is 503, so the apiserver's failurePolicy decides.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thiserror::Error;

/// Why a request got no AdmissionReview answer.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// Not JSON of the AdmissionReview shape.
    #[error("request body is not an AdmissionReview: {0}")]
    Decode(#[source] serde_json::Error),
    /// JSON is UTF-8; this body is not.
    #[error("request body is not UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// Another apiVersion or kind.
    #[error(
        "expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got apiVersion {api_version:?} kind {kind:?}"
    )]
    NotReview {
        /// apiVersion found.
        api_version: String,
        /// kind found.
        kind: String,
    },
    /// No `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// The body could not be read (too large, aborted).
    #[error("request body: {message}")]
    Body {
        /// HTTP status to answer with.
        status: StatusCode,
        /// What went wrong.
        message: String,
    },
    /// The request took longer than the limit.
    #[error("request took longer than {0} ms")]
    Timeout(u128),
    /// The decision could not be run (its thread panicked or the pool is gone).
    #[error("internal error: {0}")]
    Internal(String),
}

impl WebhookError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::Decode(_)
            | WebhookError::NotUtf8(_)
            | WebhookError::NotReview { .. }
            | WebhookError::NoRequest => StatusCode::BAD_REQUEST,
            WebhookError::Body { status, .. } => *status,
            WebhookError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({"code": status.as_u16(), "error": self.to_string()});
        (status, axum::Json(body)).into_response()
    }
}
