//! Talking to an extender over real HTTP on 127.0.0.1, as kube-scheduler does.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tessera_extender::{ExtenderState, router};

/// Serves `state`'s router on a free port of 127.0.0.1.
pub async fn serve(state: Arc<ExtenderState>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    addr
}

/// POSTs `body` as JSON to `/verb`; the status and the JSON answer.
pub async fn post(addr: SocketAddr, verb: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/{verb}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// POSTs `body` to `/verb`, expecting HTTP 200; the JSON answer.
pub async fn post_ok(addr: SocketAddr, verb: &str, body: &Value) -> Value {
    let (status, out) = post(addr, verb, body).await;
    assert_eq!(status, 200, "{verb}: {out}");
    out
}
