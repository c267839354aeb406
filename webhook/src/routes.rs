//! The webhook's HTTP surface: `POST /mutate`, `POST /mutate-dra` (the DRA path), `GET /healthz`, `GET /readyz` (ready once
//! profiles are loaded) and `GET /metrics` (Prometheus text). TLS, timeouts on connections and
//! shutdown are the server's (see `serve`).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::admission::{self, Path};
use crate::error::WebhookError;
use crate::metrics::Outcome;
use crate::state::WebhookState;

#[derive(Clone)]
struct App {
    state: Arc<WebhookState>,
    registry: Arc<Registry>,
    max_body_bytes: usize,
    /// Large reviews decided at once, each on a blocking thread.
    admission: Arc<Semaphore>,
}

/// The webhook's router. `registry` is encoded at `/metrics`; requests larger than
/// `max_body_bytes` are refused with 413.
pub fn router(state: Arc<WebhookState>, registry: Arc<Registry>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/mutate", post(|s, r| mutate(s, r, Path::Inject)))
        .route("/mutate-dra", post(|s, r| mutate(s, r, Path::Dra)))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(App {
            state,
            registry,
            max_body_bytes,
            admission: Arc::new(Semaphore::new(admission_threads())),
        })
}

/// One review decided at a time per CPU: more would only queue on the cores.
fn admission_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

async fn mutate(State(app): State<App>, req: Request, path: Path) -> Response {
    let start = Instant::now();
    let limit = app.state.request_timeout();
    let result = match tokio::time::timeout(limit, answer(&app, req, path)).await {
        Err(_) => Err(WebhookError::Timeout(limit.as_millis())),
        Ok(result) => result,
    };
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(answer) => {
            app.state
                .metrics()
                .request(answer.outcome, &answer.profiles, seconds);
            let headers = [(header::CONTENT_TYPE, "application/json")];
            (StatusCode::OK, headers, answer.body).into_response()
        }
        Err(e) => {
            warn!(error = %e, "refused a /mutate request");
            let outcome = match e.status() {
                StatusCode::BAD_REQUEST => Outcome::BadRequest,
                _ => Outcome::Failed,
            };
            app.state.metrics().request(outcome, &[], seconds);
            e.into_response()
        }
    }
}

/// Largest review decided on the I/O worker that read it. Below it the work is small and bounded
/// by the body and by injection's fixed budgets (names checked before anything is rendered,
/// rendering stopped at its budget, container counts capped), so it costs less than handing it
/// to another thread (measured: `benches/mutate_load.rs`). The captured apiserver reviews are
/// 3–5 KiB.
pub const INLINE_REVIEW_BYTES: usize = 32 << 10;

/// Reads the body, then decides: small reviews at once on this worker, larger ones on a blocking
/// thread so that decoding and rendering them never hold the server's I/O workers. The permit
/// goes with the offloaded work, so a review that outlives its deadline still counts against the
/// bound until it ends.
async fn answer(app: &App, req: Request, path: Path) -> Result<admission::Answer, WebhookError> {
    let body = read_body(req, app.max_body_bytes).await?;
    let first = decide(app, body.clone(), path).await?;
    // A StatefulSet created a moment ago may not be in the watch cache when its first pod
    // arrives: read it live (bounded) and decide again rather than deny the member.
    match &first.missed {
        Some((namespace, name)) if app.state.read_live(namespace, name).await => {
            decide(app, body, path).await
        }
        _ => Ok(first),
    }
}

async fn decide(
    app: &App,
    body: axum::body::Bytes,
    path: Path,
) -> Result<admission::Answer, WebhookError> {
    if body.len() <= INLINE_REVIEW_BYTES {
        return admission::review_on(&app.state, &body, path);
    }
    let permit = app
        .admission
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| WebhookError::Internal(e.to_string()))?;
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        admission::review_on(&state, &body, path)
    })
    .await
    .map_err(|e| WebhookError::Internal(e.to_string()))?
}

async fn read_body(req: Request, max: usize) -> Result<axum::body::Bytes, WebhookError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size: &str| WebhookError::Body {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("{size} is over the limit of {max} bytes"),
    };
    if let Some(n) = declared
        && n > max as u64
    {
        return Err(too_large(&format!("Content-Length {n}")));
    }
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let body: Body = req.into_body();
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let e = e.into_inner();
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            return too_large("the body");
        }
        let message = if chunked {
            // hyper reads a body by Transfer-Encoding and drops a Content-Length beside it.
            format!("not valid chunked encoding (Transfer-Encoding: chunked wins over any Content-Length): {e}")
        } else {
            format!("could not be read: {e}")
        };
        WebhookError::Body {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    })
}

async fn readyz(State(app): State<App>) -> Response {
    if app.state.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "profiles not loaded").into_response()
    }
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    app.state.metrics().before_scrape();
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &app.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    tessera_serve::exposition::respond(&headers, text)
}
