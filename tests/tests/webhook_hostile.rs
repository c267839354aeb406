//! Hostile input over real HTTPS: a pod asking for unbounded work is denied with the bound and
//! the webhook keeps serving; a declared body over the limit is refused before it is sent;
//! silent connections are closed; and past the connection cap new connections wait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use webhook_support::{Ca, Client, LIMIT, Options, Server, fixture, patch_of};

fn zk(ordinal: &str) -> Value {
    let mut review = fixture("pod-statefulset-zk-1.request.json");
    review["request"]["object"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] =
        json!(ordinal);
    review
}

async fn tls(addr: std::net::SocketAddr, ca: &Ca) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(ca.client_config())
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TlsStream<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(LIMIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server closes the connection");
    out
}

#[tokio::test]
async fn a_huge_ordinal_is_denied_naming_the_label_and_limit_and_the_next_pod_is_admitted() {
    let ca = Ca::new("hostile-ordinal");
    let server = Server::start(&ca, Options::default()).await;
    let mut c = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    for ordinal in ["4294967295", "1000000"] {
        let (status, out) = c.mutate(&zk(ordinal)).await;
        assert_eq!(status, 200);
        assert_eq!(out["response"]["allowed"], false, "{out}");
        let message = out["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("ordinal {ordinal}"))
                && message.contains("label apps.kubernetes.io/pod-index")
                && message.contains("maximum ensemble size (1000)"),
            "{message}"
        );
    }
    let review = zk("1");
    let (status, out) = c.mutate(&review).await;
    assert_eq!(status, 200);
    assert_eq!(out["response"]["allowed"], true, "{out}");
    assert!(patch_of(&review, &out).is_some());
    server.stop().await;
}

#[tokio::test]
async fn a_pod_created_with_a_forged_gpu_assignment_is_denied_naming_it() {
    let ca = Ca::new("hostile-forged");
    let server = Server::start(&ca, Options::default()).await;
    let mut c = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let mut review = fixture("pod-extended-resource-gpu-mem.request.json");
    let annotations = &mut review["request"]["object"]["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations["tessera.dev/gpu-assignment"] =
        json!(r#"{"main":[{"gpu":"GPU-0","mem":1,"core":1}]}"#);
    annotations["tessera.dev/bind-phase"] = json!("allocated");
    let (status, out) = c.mutate(&review).await;
    assert_eq!(status, 200);
    assert_eq!(out["response"]["allowed"], false, "{out}");
    let message = out["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("created with tessera.dev/gpu-assignment, tessera.dev/bind-phase")
            && message.contains("only Tessera's extender and device plugin write"),
        "{message}"
    );
    // The same pod without them is served.
    let clean = fixture("pod-extended-resource-gpu-mem.request.json");
    let (_, out) = c.mutate(&clean).await;
    assert_eq!(out["response"]["allowed"], true, "{out}");
    server.stop().await;
}

#[tokio::test]
async fn thirty_thousand_containers_are_denied_with_the_count_and_the_limit() {
    let ca = Ca::new("hostile-containers");
    let server = Server::start(&ca, Options::default()).await;
    let mut c = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let mut review = zk("1");
    let many: Vec<Value> = (0..30_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    review["request"]["object"]["spec"]["containers"] = json!(many);
    let (status, out) = c.mutate(&review).await;
    assert_eq!(status, 200);
    let message = out["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("30000 containers") && message.contains("at most 250"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let ca = Ca::new("hostile-length");
    let server = Server::start(&ca, Options::default()).await;
    let mut stream = tls(server.addr, &ca).await;
    let head = "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                content-length: 1000000000000000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut stream).await).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("Content-Length 1000000000000000000 is over the limit of 4194304 bytes"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let ca = Ca::new("hostile-idle");
    let opts = Options {
        idle_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let server = Server::start(&ca, opts).await;
    // Handshake, then nothing.
    let mut silent = tls(server.addr, &ca).await;
    assert!(until_closed(&mut silent).await.is_empty());
    // One request, then nothing.
    let mut idle = tls(server.addr, &ca).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut idle).await).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_waits_for_a_free_slot() {
    let ca = Ca::new("hostile-cap");
    let opts = Options {
        max_connections: 2,
        ..Options::default()
    };
    let server = Server::start(&ca, opts).await;
    let mut first = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let second = tls(server.addr, &ca).await;
    let addr = server.addr;
    let config: Arc<_> = ca.client_config();
    let third = tokio::spawn(async move { Client::connect(addr, config).await });
    // A round trip on a served connection; an uncapped server would have finished the third
    // handshake meanwhile.
    let (status, _) = first.request("GET", "/healthz", Vec::new()).await.unwrap();
    assert_eq!(status, 200);
    assert!(!third.is_finished(), "the third connection is not served");
    drop(second);
    let mut third = tokio::time::timeout(LIMIT, third)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    let (status, _) = third.request("GET", "/healthz", Vec::new()).await.unwrap();
    assert_eq!(status, 200);
    server.stop().await;
}

/// One huge review is decided off the I/O worker: on a server that shares one thread with its
/// clients (this test's runtime), small reviews keep being answered while it is read and
/// decided. Were it decided inline, that thread would stop for its whole decoding and the small
/// reviews' answers would show one gap as long as most of its life.
#[tokio::test]
async fn a_huge_review_never_stalls_the_small_ones_beside_it() {
    let ca = Ca::new("hostile-stall");
    let server = Server::start(&ca, Options::default()).await;
    let mut huge = zk("1");
    let many: Vec<Value> = (0..100_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    huge["request"]["object"]["spec"]["containers"] = json!(many);
    // Encoded before the clock starts: this test's own thread only sends it.
    let huge = serde_json::to_vec(&huge).unwrap();
    assert!(huge.len() > 3 << 20, "a body of a few MiB");
    let mut big = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let mut small = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let review = zk("1");
    // Warm the small connection so that its first answer is no outlier.
    assert_eq!(small.mutate(&review).await.0, 200);
    let started = std::time::Instant::now();
    let huge_task = tokio::spawn(async move {
        let (status, out) = big.request("POST", "/mutate", huge).await.unwrap();
        (status, out, started.elapsed())
    });
    let mut answers = Vec::new();
    while !huge_task.is_finished() {
        let (status, _) = small.mutate(&review).await;
        assert_eq!(status, 200);
        answers.push(started.elapsed());
    }
    let (status, out, life) = huge_task.await.unwrap();
    assert_eq!(status, 200);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert!(
        out["response"]["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("100000 containers")),
        "{out}"
    );
    let within: Vec<Duration> = answers.into_iter().filter(|t| *t <= life).collect();
    let mut gaps: Vec<Duration> = within.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.extend(within.first().copied());
    let longest = gaps.iter().max().copied().unwrap_or(life);
    println!(
        "huge review answered in {life:?}; {} small reviews answered meanwhile, longest gap {longest:?}",
        within.len()
    );
    assert!(
        within.len() >= 5 && longest < life / 3,
        "small reviews stalled behind the huge one: {} answered in {life:?}, longest gap {longest:?}",
        within.len()
    );
    server.stop().await;
}
