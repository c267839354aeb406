//! One connection's life: the router wrapped so that every request is counted while in flight,
//! refused early when its declared body is over the limit, and cut off at the request deadline;
//! and the connection closed when no request has been in flight for too long (before the first
//! request, between HTTP/1 keep-alive requests, and on an idle HTTP/2 connection), when the
//! server stops, and in any case once a close has taken longer than a request may.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::budget::Budget;
use crate::client_auth::VerifiedClient;
use crate::limits::Limits;
use crate::refusals::Reason;

/// Requests in flight on one connection.
type InFlight = Arc<watch::Sender<usize>>;

/// What a connection shares with the server and knows of its peer.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) budget: Budget,
    /// The peer presented a client certificate that verified.
    pub(crate) verified: bool,
}

/// Serves `io` until the peer closes, the connection idles out, or `stop` turns true.
pub(crate) async fn serve<I>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    app: Router,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight: InFlight = Arc::new(watch::Sender::new(0));
    let limits = &shared.limits;
    let (first_request, between, deadline) = (limits.first_request, limits.idle, limits.request);
    let service = Tracked {
        app,
        in_flight: in_flight.clone(),
        shared,
    };
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let idle = idle(in_flight.subscribe(), first_request, between);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            _ = stop.wait_for(|s| *s), if !closing => {}
            () = &mut idle, if !closing => {}
            // A close that outlasts a request's deadline is a peer that will not let go.
            () = tokio::time::sleep(deadline), if closing => return Ok(()),
        }
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
}

/// Resolves once no request has been in flight for `first` (before any request) or `between`
/// (after one).
async fn idle(mut rx: watch::Receiver<usize>, first: Duration, between: Duration) {
    let mut wait = first;
    loop {
        if rx.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        wait = between;
    }
}

/// The router with the per-request rules.
#[derive(Clone)]
struct Tracked {
    app: Router,
    in_flight: InFlight,
    shared: Shared,
}

impl<B> tower::Service<Request<B>> for Tracked
where
    B: http_body::Body<Data = axum::body::Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A Router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let limits = &self.shared.limits;
        let declared = declared_length(&req);
        if let Some(refused) = refuse(declared, limits.max_body_bytes) {
            limits.refusals.count(Reason::BodyTooLarge);
            return Box::pin(async move { Ok(refused) });
        }
        let guard = Guard::enter(self.in_flight.clone());
        let deadline = limits.request;
        let refusals = limits.refusals.clone();
        let mut app = self.app.clone();
        let budget = self.shared.budget.clone();
        let body_bytes = body_bytes(declared, req.body().is_end_stream(), limits.max_body_bytes);
        let mut req = req.map(Body::new);
        if self.shared.verified {
            req.extensions_mut().insert(VerifiedClient);
        }
        Box::pin(async move {
            let _guard = guard;
            let counted = refusals.clone();
            let work = async move {
                // The body's bytes are reserved before any is read and held until answered.
                let _reserved = match budget.try_reserve(body_bytes) {
                    Some(r) => Some(r),
                    None => {
                        counted.count(Reason::BodyBudget);
                        budget.reserve(body_bytes).await
                    }
                };
                tower::Service::call(&mut app, req).await
            };
            match tokio::time::timeout(deadline, work).await {
                Ok(response) => response,
                Err(_) => Ok({
                    refusals.count(Reason::RequestTimeout);
                    text(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request was not received and answered within {} ms",
                            deadline.as_millis()
                        ),
                    )
                }),
            }
        })
    }
}

/// The request's declared `Content-Length`, if it has a readable one.
fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The bytes a request's body may take: its Content-Length, or the limit when it declares none
/// (chunked, or an HTTP/2 stream without the header). Requests without a body take nothing.
fn body_bytes(declared: Option<u64>, no_body: bool, max: u64) -> u64 {
    match declared {
        Some(n) => n.min(max),
        None if no_body => 0,
        None => max,
    }
}

/// The answer to a request refused on its headers alone: a declared body over the limit.
fn refuse(declared: Option<u64>, max: u64) -> Option<Response<Body>> {
    let size = declared?;
    (size > max).then(|| {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Content-Length {size} is over the limit of {max} bytes"),
        )
    })
}

/// An error answer in the servers' one shape: `{"code": …, "error": "…"}`.
fn text(status: StatusCode, message: String) -> Response<Body> {
    let body = serde_json::json!({"code": status.as_u16(), "error": message});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Counts a request in flight until dropped.
struct Guard(InFlight);

impl Guard {
    fn enter(in_flight: InFlight) -> Guard {
        in_flight.send_modify(|n| *n += 1);
        Guard(in_flight)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
