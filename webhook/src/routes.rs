//! The webhook's HTTP surface: `POST /mutate`, `GET /healthz`, `GET /readyz` (ready once
//! profiles are loaded) and `GET /metrics` (Prometheus text). TLS, timeouts on connections and
//! shutdown are the server's (see `serve`).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::admission;
use crate::error::WebhookError;
use crate::metrics::Outcome;
use crate::state::WebhookState;

#[derive(Clone)]
struct App {
    state: Arc<WebhookState>,
    registry: Arc<Registry>,
    max_body_bytes: usize,
}

/// The webhook's router. `registry` is encoded at `/metrics`; requests larger than
/// `max_body_bytes` are refused with 413.
pub fn router(state: Arc<WebhookState>, registry: Arc<Registry>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(App {
            state,
            registry,
            max_body_bytes,
        })
}

async fn mutate(State(app): State<App>, req: Request) -> Response {
    let start = Instant::now();
    let limit = app.state.request_timeout();
    let result = match tokio::time::timeout(limit, read_body(req, app.max_body_bytes)).await {
        Err(_) => Err(WebhookError::Timeout(limit.as_millis())),
        Ok(Err(e)) => Err(e),
        Ok(Ok(body)) => admission::review(&app.state, &body),
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

async fn read_body(req: Request, max: usize) -> Result<axum::body::Bytes, WebhookError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size: String| WebhookError::Body {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("{size} bytes is over the limit of {max} bytes"),
    };
    if let Some(n) = declared
        && n > max as u64
    {
        return Err(too_large(n.to_string()));
    }
    let body: Body = req.into_body();
    axum::body::to_bytes(body, max).await.map_err(|e| {
        if declared.is_none() {
            too_large("more than".to_string())
        } else {
            WebhookError::Body {
                status: StatusCode::BAD_REQUEST,
                message: e.to_string(),
            }
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

async fn metrics(State(app): State<App>) -> Response {
    app.state.metrics().before_scrape();
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &app.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let ct = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], text).into_response()
}
