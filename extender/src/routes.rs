//! `POST /filter`, `/prioritize`, `/bind` and `/preempt` (kube-scheduler extender v1),
//! `/healthz`, `/readyz`, `/metrics`.
//! Handlers decode, hand the decision to tessera-core on a blocking thread (scoring thousands of
//! nodes is CPU work), and encode.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::error::ExtenderError;
use crate::state::ExtenderState;
use crate::wire::{
    ExtenderArgs, ExtenderBindingArgs, ExtenderBindingResult, ExtenderPreemptionArgs,
    ExtenderPreemptionResult,
};

/// Largest request body accepted: a full `Nodes` list of 5,000 nodes is about 25 MiB.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The extender's router.
pub fn router(state: Arc<ExtenderState>) -> Router {
    Router::new()
        .route("/filter", post(filter))
        .route("/prioritize", post(prioritize))
        .route("/bind", post(bind))
        .route("/preempt", post(preempt))
        .route_layer(middleware::from_fn_with_state(state.clone(), until_synced))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticated))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// With `--client-ca`, refuses a verb whose connection presented no verified client
/// certificate: only kube-scheduler may filter and bind (the extender holds `pods/binding`).
async fn authenticated(
    State(state): State<Arc<ExtenderState>>,
    request: Request,
    next: Next,
) -> Response {
    let verified = request
        .extensions()
        .get::<tessera_serve::VerifiedClient>()
        .is_some();
    if state.requires_client_certificate() && !verified {
        state
            .metrics()
            .refusals()
            .count(tessera_serve::Reason::ClientCertificate);
        let body = "the extender's verbs answer only kube-scheduler: present the client \
                    certificate its CA (--client-ca) signed";
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    next.run(request).await
}

/// Refuses every verb until the node and pod caches have been listed. A restarted extender
/// that answered from half-listed caches would see held GPUs as free and hand them out again;
/// kube-scheduler retries a pod whose extender call failed, so refusing costs only a retry.
async fn until_synced(
    State(state): State<Arc<ExtenderState>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.is_ready() {
        let body = "the extender's node and pod caches are not synced yet; retry";
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    // A standby's caches are warm, but only the leader decides: two deciders would hand out
    // the same share.
    if state.leadership().writer().is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, standby(&state)).into_response();
    }
    next.run(request).await
}

fn standby(state: &ExtenderState) -> String {
    format!(
        "this extender replica is a standby (the Lease is held by {}); retry",
        state.leadership().holder().as_deref().unwrap_or("nobody")
    )
}

/// Counts and times every verb.
async fn observe(
    State(state): State<Arc<ExtenderState>>,
    request: Request,
    next: Next,
) -> Response {
    let verb = request.uri().path().trim_start_matches('/').to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let ok = response.status().is_success();
    state
        .metrics()
        .observe(&verb, ok, started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<Arc<ExtenderState>>, headers: HeaderMap) -> Response {
    let metrics = state.metrics();
    metrics.set_leader(state.leadership().writer().is_some());
    let text = metrics.encode(&state.read(), crate::clock::unix_secs());
    tessera_serve::exposition::respond(&headers, text)
}

/// Ready once the caches are synced, leader or standby (the Service routes by the leader
/// label, see `leader`); the body says which.
async fn readyz(State(state): State<Arc<ExtenderState>>) -> (StatusCode, String) {
    if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced".into())
    } else if state.leadership().writer().is_none() {
        (StatusCode::OK, format!("ready: {}", standby(&state)))
    } else {
        (StatusCode::OK, "ready: leading".into())
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ExtenderError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ExtenderError::Internal(e.to_string()))
}

/// Decodes `ExtenderArgs` borrowing from `body`, decides with `verb` and encodes the answer, all
/// on a blocking thread: node names are never copied out of the request.
async fn args_verb(
    state: Arc<ExtenderState>,
    body: Bytes,
    verb: fn(&ExtenderState, ExtenderArgs<'_>) -> serde_json::Result<Vec<u8>>,
) -> Result<Response, ExtenderError> {
    let answer = blocking(move || {
        let args: ExtenderArgs<'_> =
            serde_json::from_slice(&body).map_err(|e| ExtenderError::Decode(e.to_string()))?;
        verb(&state, args).map_err(|e| ExtenderError::Internal(e.to_string()))
    })
    .await??;
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

async fn filter(
    State(state): State<Arc<ExtenderState>>,
    body: Bytes,
) -> Result<Response, ExtenderError> {
    args_verb(state, body, |s, a| {
        serde_json::to_vec(&crate::filter::filter(s, a))
    })
    .await
}

async fn preempt(
    State(state): State<Arc<ExtenderState>>,
    body: Result<Json<ExtenderPreemptionArgs>, JsonRejection>,
) -> Result<Json<ExtenderPreemptionResult>, ExtenderError> {
    let Json(args) = body.map_err(|e| ExtenderError::Decode(e.body_text()))?;
    blocking(move || Json(crate::preempt::preempt(&state, args))).await
}

async fn bind(
    State(state): State<Arc<ExtenderState>>,
    body: Result<Json<ExtenderBindingArgs>, JsonRejection>,
) -> Result<Json<ExtenderBindingResult>, ExtenderError> {
    let Json(args) = body.map_err(|e| ExtenderError::Decode(e.body_text()))?;
    Ok(Json(crate::bind::bind(&state, args).await))
}

async fn prioritize(
    State(state): State<Arc<ExtenderState>>,
    body: Bytes,
) -> Result<Response, ExtenderError> {
    args_verb(state, body, |s, a| {
        serde_json::to_vec(&crate::prioritize::prioritize(s, a))
    })
    .await
}
