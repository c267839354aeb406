//! One budget of buffered request-body bytes per server, across connections and HTTP/2 streams:
//! of 32 streams (the most one connection may open) on one HTTP/2 connection, each declaring an 8 KiB body and sending half of it,
//! only 8 reserve their body from a 64 KiB budget; the rest wait (counted) until earlier
//! requests are answered, and every request is answered once the bodies are complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tessera_serve::{Limits, Reason, Refusals};
use tokio::sync::mpsc;

const STREAMS: usize = 32;
const HALF: usize = 4 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_share_the_servers_body_budget() {
    let refusals = Refusals::default();
    let limits = Limits {
        max_body_bytes: 2 * HALF as u64,
        max_buffered_bytes: 64 << 10,
        refusals: refusals.clone(),
        ..Limits::default()
    };
    let app = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tessera_serve::serve_plain(
        listener,
        app,
        std::future::pending(),
        Duration::from_secs(1),
        limits,
    ));

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut rest = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..STREAMS {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
        tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; HALF]))))
            .await
            .unwrap();
        rest.push(tx);
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let req = hyper::Request::post("http://localhost/echo")
            .header("content-length", (2 * HALF).to_string())
            .body(body)
            .unwrap();
        let mut send = send.clone();
        answers.push(tokio::spawn(async move {
            send.ready().await.unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&text).into_owned())
        }));
    }
    // 64 KiB holds 8 bodies of 8 KiB: the other streams wait for the budget.
    let waited = async {
        while refusals.get(Reason::BodyBudget) < (STREAMS - 8) as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), waited)
        .await
        .unwrap_or_else(|_| panic!("only {} bodies waited", refusals.get(Reason::BodyBudget)));

    // Completing the bodies answers every request, the waiting ones as budget comes back.
    for tx in rest {
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(Frame::data(Bytes::from(vec![b'y'; HALF]))))
                .await;
        });
    }
    for answer in answers {
        let (status, text) = tokio::time::timeout(Duration::from_secs(20), answer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status, text.as_str()), (200, "8192"));
    }
}
