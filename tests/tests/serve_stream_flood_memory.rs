//! One HTTP/2 connection with 200 streams, each sending a whole 1 MiB body to a route that reads
//! it (as the webhook and the extender do): the server's heap stays within its body budget plus
//! the flow-control windows, not 200 bodies. Before the budget the same flood held every body at
//! once (the probe saw 357 MiB in the webhook and 613 MiB in the extender). Peak heap counted by a
//! global allocator; the client's bodies are static and allocate nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tessera_serve::Limits;
use tessera_tests::bounds::{Counting, cost_of};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const STREAMS: usize = 200;
const BODY: usize = 1 << 20;
const BUDGET: u64 = 16 << 20;
static CHUNK: [u8; 64 << 10] = [b'x'; 64 << 10];

/// A static chunk, the same frame each time: the client allocates nothing per byte.
fn frame(_: usize) -> Result<Frame<Bytes>, std::convert::Infallible> {
    Ok(Frame::data(Bytes::from_static(&CHUNK)))
}

type Chunks = StreamBody<
    futures::stream::Iter<
        std::iter::Map<
            std::ops::Range<usize>,
            fn(usize) -> Result<Frame<Bytes>, std::convert::Infallible>,
        >,
    >,
>;

/// A body of `n` chunks.
fn chunks(n: usize) -> Chunks {
    let frames: fn(usize) -> Result<Frame<Bytes>, std::convert::Infallible> = frame;
    StreamBody::new(futures::stream::iter((0..n).map(frames)))
}

fn flood() -> usize {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let limits = Limits {
            max_body_bytes: BODY as u64,
            max_buffered_bytes: BUDGET,
            ..Limits::default()
        };
        let app = Router::new()
            .route(
                "/review",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .layer(DefaultBodyLimit::max(BODY));
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
        // One request first, so the server's SETTINGS (at most 32 streams) have arrived before
        // the flood: a client that opens more before it knows is refused those streams.
        let mut first = send.clone();
        first.ready().await.unwrap();
        let probe = hyper::Request::post("http://localhost/review")
            .body(chunks(0))
            .unwrap();
        first.send_request(probe).await.unwrap();
        let mut answers = Vec::new();
        for _ in 0..STREAMS {
            let body = chunks(BODY / CHUNK.len());
            let req = hyper::Request::post("http://localhost/review")
                .header("content-length", BODY.to_string())
                .body(body)
                .unwrap();
            let mut send = send.clone();
            answers.push(tokio::spawn(async move {
                send.ready().await.unwrap();
                let resp = send.send_request(req).await.unwrap();
                let status = resp.status().as_u16();
                let _ = resp.into_body().collect().await;
                status
            }));
        }
        let mut ok = 0;
        for a in answers {
            if tokio::time::timeout(Duration::from_secs(60), a)
                .await
                .unwrap()
                .unwrap()
                == 200
            {
                ok += 1;
            }
        }
        ok
    })
}

#[test]
fn two_hundred_streams_hold_the_budget_not_two_hundred_bodies() {
    let (ok, peak, _) = cost_of(flood);
    assert_eq!(ok, STREAMS, "every stream is answered");
    println!(
        "{STREAMS} streams of {} KiB on one connection: peak heap {:.1} MiB (budget {} MiB)",
        BODY >> 10,
        peak as f64 / f64::from(1 << 20),
        BUDGET >> 20
    );
    // The budget, the windows (256 KiB), and what the runtime and the h2 streams keep.
    assert!(
        peak < (BUDGET as usize) + (16 << 20),
        "peak heap {peak} bytes"
    );
}
