//! Hostile input to the extender over real HTTP: 4 MB pods leave a few hundred bytes each
//! behind them until their bind, a declared body over the limit is refused before it is sent,
//! and a body that stalls is cut off at the request deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState, router};
use tessera_tests::http::{post_ok, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(30);

struct Binds;

impl Binder for Binds {
    fn bind(&self, _: BindTarget) -> BindFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn state() -> Arc<ExtenderState> {
    let config = Config {
        reservation_timeout: Duration::from_secs(60),
        heartbeat_max_age: None,
        ..Config::default()
    };
    let state = Arc::new(ExtenderState::new(config, Arc::new(Binds)));
    state.set_ready(true);
    state
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/extender/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn filtered_4mb_pods_are_remembered_by_their_request_only() {
    let state = state();
    let addr = serve(state.clone()).await;
    let big = "x".repeat(4 << 20);
    let mut body = fixture("filter.nodenames.request.json");
    body["Pod"]["metadata"]["annotations"] = json!({"example.dev/big": big});
    for i in 0..63 {
        body["Pod"]["metadata"]["uid"] = json!(format!("uid-{i}"));
        post_ok(addr, "filter", &body).await;
    }
    let (pods, bytes) = state.pending_size();
    assert_eq!(pods, 63);
    assert!(bytes < 63 * 4096, "{bytes} bytes remembered for 63 pods");
    let mut bind = fixture("bind.request.json");
    bind["PodUID"] = json!("uid-62");
    bind["PodName"] = body["Pod"]["metadata"]["name"].clone();
    let out = post_ok(addr, "bind", &bind).await;
    assert_eq!(out["Error"], "", "{out}");
}

#[tokio::test]
async fn a_flood_of_filters_forgets_the_oldest_not_the_bind_in_flight() {
    let state = state();
    let addr = serve(state.clone()).await;
    // The pending memory full of other pods' filters (junk, or pods that never bind).
    for i in 0..tessera_extender::state::MAX_PENDING_PODS {
        state.keep(&format!("junk-{i}"), "ns/junk", Err("never bound".into()));
    }
    let mut body = fixture("filter.nodenames.request.json");
    body["Pod"]["metadata"]["uid"] = json!("uid-in-flight");
    post_ok(addr, "filter", &body).await;
    // More junk while the pod's bind is on its way: each forgets the oldest junk.
    for i in 0..100 {
        state.keep(
            &format!("late-junk-{i}"),
            "ns/junk",
            Err("never bound".into()),
        );
    }
    assert_eq!(
        state.pending_size().0,
        tessera_extender::state::MAX_PENDING_PODS
    );
    let mut bind = fixture("bind.request.json");
    bind["PodUID"] = json!("uid-in-flight");
    bind["PodName"] = body["Pod"]["metadata"]["name"].clone();
    let out = post_ok(addr, "bind", &bind).await;
    assert_eq!(out["Error"], "", "{out}");
}

#[tokio::test]
async fn a_bind_names_the_pod_filtered_under_its_uid_or_is_refused() {
    let state = state();
    let addr = serve(state.clone()).await;
    // A pod with no UID is not remembered, and a bind without a UID is refused.
    let mut body = fixture("filter.nodenames.request.json");
    body["Pod"]["metadata"]["uid"] = json!("");
    post_ok(addr, "filter", &body).await;
    assert_eq!(state.pending_size().0, 0);
    let mut bind = fixture("bind.request.json");
    bind["PodUID"] = json!("");
    let out = post_ok(addr, "bind", &bind).await;
    assert!(
        out["Error"]
            .as_str()
            .unwrap()
            .contains("must name the pod's UID"),
        "{out}"
    );

    // A UID filtered as one pod cannot bind another (a kube-system pod, say).
    body["Pod"]["metadata"]["uid"] = json!("uid-filtered");
    post_ok(addr, "filter", &body).await;
    bind["PodUID"] = json!("uid-filtered");
    bind["PodNamespace"] = json!("kube-system");
    bind["PodName"] = json!("coredns-0");
    let out = post_ok(addr, "bind", &bind).await;
    let error = out["Error"].as_str().unwrap();
    assert!(
        error.contains("pod kube-system/coredns-0 (uid uid-filtered): that UID was filtered as pod default/gpu-n"),
        "{out}"
    );
    // The pod that was filtered still binds.
    bind["PodNamespace"] = json!("default");
    bind["PodName"] = body["Pod"]["metadata"]["name"].clone();
    let out = post_ok(addr, "bind", &bind).await;
    assert_eq!(out["Error"], "", "{out}");
}

async fn plain_server(
    state: Arc<ExtenderState>,
    limits: tessera_serve::Limits,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state);
    let never = std::future::pending::<()>();
    tokio::spawn(tessera_serve::serve_plain(
        listener,
        app,
        never,
        Duration::from_secs(1),
        limits,
    ));
    addr
}

/// Writes `head` (and nothing more) and reads the answer until the server closes.
async fn answer_to(addr: std::net::SocketAddr, head: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .ok();
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413_and_a_stalled_body_408_each_counted() {
    let state = state();
    let limits = tessera_serve::Limits {
        request: Duration::from_millis(300),
        idle: Duration::from_millis(300),
        max_body_bytes: 64 << 20,
        refusals: state.metrics().refusals(),
        ..tessera_serve::Limits::default()
    };
    let addr = plain_server(state.clone(), limits).await;
    let huge = answer_to(
        addr,
        "POST /filter HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000000000000\r\n\r\n",
    )
    .await;
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    let stalled = answer_to(
        addr,
        "POST /filter HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"Pod\":",
    )
    .await;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    let metrics = answer_to(
        addr,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    for reason in ["body_too_large", "request_timeout"] {
        let line = format!("tessera_extender_refused_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
}
