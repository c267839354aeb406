//! The extender's one mapping from failures to the wire. A request that decodes always gets
//! HTTP 200, with per-node reasons in `FailedNodes` and whole-request failures in `Error`
//! (kube-scheduler then fails the attempt and retries with backoff); a body that does not decode
//! gets 400 with a JSON body naming the problem.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request could not be served.
#[derive(Debug)]
pub enum ExtenderError {
    /// The body is not ExtenderArgs.
    Decode(String),
    /// The decision work could not run (the worker thread failed).
    Internal(String),
}

impl IntoResponse for ExtenderError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ExtenderError::Decode(m) => (
                StatusCode::BAD_REQUEST,
                format!("undecodable extender request: {m}"),
            ),
            ExtenderError::Internal(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: {m}"),
            ),
        };
        (status, Json(serde_json::json!({ "Error": message }))).into_response()
    }
}
