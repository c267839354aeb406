//! `POST /filter`, `/prioritize` and `/bind` (kube-scheduler extender v1), `/healthz`, `/readyz`.
//! Handlers decode, hand the decision to tessera-core on a blocking thread (scoring thousands of
//! nodes is CPU work), and encode.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_core::decide;
use tessera_core::request::{self, PodRequest, RequestContext};

use crate::error::ExtenderError;
use crate::state::ExtenderState;
use crate::wire::{
    ExtenderArgs, ExtenderBindingArgs, ExtenderBindingResult, ExtenderFilterResult, HostPriority,
    NodeList,
};

/// Largest request body accepted: a full `Nodes` list of 5,000 nodes is about 25 MiB.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The extender's router.
pub fn router(state: Arc<ExtenderState>) -> Router {
    Router::new()
        .route("/filter", post(filter))
        .route("/prioritize", post(prioritize))
        .route("/bind", post(bind))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<ExtenderState>>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

fn decode(body: Result<Json<ExtenderArgs>, JsonRejection>) -> Result<ExtenderArgs, ExtenderError> {
    body.map(|Json(args)| args)
        .map_err(|e| ExtenderError::Decode(e.body_text()))
}

fn pod_request(state: &ExtenderState, args: &ExtenderArgs) -> Result<PodRequest, String> {
    let ctx = RequestContext {
        translation: state.config().translation,
        largest_gpu_mib: None,
    };
    request::pod_request(&args.pod, ctx).map_err(|e| e.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ExtenderError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ExtenderError::Internal(e.to_string()))
}

async fn filter(
    State(state): State<Arc<ExtenderState>>,
    body: Result<Json<ExtenderArgs>, JsonRejection>,
) -> Result<Json<ExtenderFilterResult>, ExtenderError> {
    let args = decode(body)?;
    blocking(move || Json(filter_now(&state, args))).await
}

fn filter_now(state: &ExtenderState, args: ExtenderArgs) -> ExtenderFilterResult {
    state.remember(&args.pod);
    let pod = match pod_request(state, &args) {
        Ok(pod) => pod,
        Err(error) => {
            return ExtenderFilterResult {
                error,
                ..Default::default()
            };
        }
    };
    let names = args.candidate_names();
    let verdict = decide::filter(state.read().view(state.config().policy), &pod, &names);
    let (nodes, node_names) = match args.nodes {
        Some(list) if args.node_names.is_none() => {
            let items = list
                .items
                .into_iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_ref()
                        .is_some_and(|name| verdict.passed.contains(name))
                })
                .collect();
            (
                Some(NodeList {
                    metadata: list.metadata,
                    items,
                }),
                None,
            )
        }
        _ => (None, Some(verdict.passed)),
    };
    ExtenderFilterResult {
        nodes,
        node_names,
        failed_nodes: verdict.failed,
        failed_and_unresolvable_nodes: verdict.unresolvable,
        error: String::new(),
    }
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
    body: Result<Json<ExtenderArgs>, JsonRejection>,
) -> Result<Json<Vec<HostPriority>>, ExtenderError> {
    let args = decode(body)?;
    blocking(move || {
        let names = args.candidate_names();
        // A prioritize error is ignored by kube-scheduler: an invalid pod simply ranks nothing.
        let ranked = match pod_request(&state, &args) {
            Ok(pod) => decide::prioritize(state.read().view(state.config().policy), &pod, &names),
            Err(_) => names.into_iter().map(|n| (n, 0)).collect(),
        };
        Json(
            ranked
                .into_iter()
                .map(|(host, score)| HostPriority { host, score })
                .collect(),
        )
    })
    .await
}
