//! Serving-certificate reload under continuous client traffic: the files are replaced plainly
//! (rewritten in place) and the Kubernetes Secret-volume way (a `..data` symlink swapped
//! atomically). No request may fail, a connection opened before the swap keeps working, and new
//! connections get the new certificate. A pair whose key does not match is not taken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use webhook_support::{Ca, Client, LIMIT, Options, Server, fixture};

/// Clients that keep sending reviews, reconnecting every few requests, until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    peers: mpsc::UnboundedReceiver<CertificateDer<'static>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(server: &Server, ca: &Ca, clients: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (tx, peers) = mpsc::unbounded_channel();
        let body = serde_json::to_vec(&fixture("pod-statefulset-zk-0.request.json")).unwrap();
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok, failed, tx) = (stop.clone(), ok.clone(), failed.clone(), tx.clone());
                let (addr, tls, body) = (server.addr, ca.client_config(), body.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut c) = Client::connect(addr, tls.clone()).await else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let _ = tx.send(c.peer.clone());
                        for _ in 0..10 {
                            match c.request("POST", "/mutate", body.clone()).await {
                                Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            ok,
            failed,
            peers,
            tasks,
        }
    }

    /// Waits until some new connection was served `cert`.
    async fn await_peer(&mut self, cert: &CertificateDer<'static>) {
        tokio::time::timeout(LIMIT, async {
            while let Some(p) = self.peers.recv().await {
                if &p == cert {
                    return;
                }
            }
        })
        .await
        .expect("no connection got the new certificate");
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            tokio::time::timeout(LIMIT, t).await.unwrap().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

async fn await_reload(server: &Server, from: u64) {
    let mut rx = server.certs.subscribe();
    tokio::time::timeout(LIMIT, rx.wait_for(|g| *g > from))
        .await
        .expect("certificate was not reloaded")
        .unwrap();
}

/// Runs traffic across `swap` and checks nothing failed and the new cert is served.
async fn reload_under_traffic(
    server: &Server,
    ca: &Ca,
    swap: impl FnOnce() -> CertificateDer<'static>,
) {
    let mut early = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let old = early.peer.clone();
    let body = serde_json::to_vec(&fixture("pod-bare.request.json")).unwrap();
    assert_eq!(
        early
            .request("POST", "/mutate", body.clone())
            .await
            .unwrap()
            .0,
        200
    );
    let mut traffic = Traffic::start(server, ca, 4);
    traffic.await_peer(&old).await;
    let generation = *server.certs.subscribe().borrow();
    let new = swap();
    await_reload(server, generation).await;
    traffic.await_peer(&new).await;
    let (ok, failed) = traffic.finish().await;
    assert_eq!(failed, 0, "{failed} failed requests ({ok} ok)");
    assert!(ok > 0);
    // The connection opened before the swap still works, on its old session.
    assert_eq!(early.request("POST", "/mutate", body).await.unwrap().0, 200);
    assert_eq!(early.peer, old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_replace_of_cert_and_key_under_traffic_fails_no_request() {
    let ca = Ca::new("reload-plain");
    let server = Server::start(&ca, Options::default()).await;
    let dir = server.dir.path().to_path_buf();
    reload_under_traffic(&server, &ca, || {
        let (cert, key, der) = ca.leaf();
        // Rewritten in place, one file after the other, as `kubectl cp` or an editor would.
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        der
    })
    .await;
}

/// Lays out a Secret volume: `..<ts>/{tls.crt,tls.key}`, `..data -> ..<ts>`, `tls.* -> ..data/tls.*`.
fn secret_volume_write(dir: &Path, ts: &str, cert: &str, key: &str) {
    let data = dir.join(ts);
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("tls.crt"), cert).unwrap();
    std::fs::write(data.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(ts, &tmp).unwrap();
    // rename(2) over the old link is the atomic step the kubelet's AtomicWriter relies on.
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_volume_symlink_swap_under_traffic_fails_no_request() {
    let ca = Ca::new("reload-symlink");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = ca.leaf();
    secret_volume_write(dir.path(), "..2026_11_24_00_00_00.1", &cert, &key);
    for f in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), dir.path().join(f)).unwrap();
    }
    let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let path = dir.path().to_path_buf();
    let server = Server::start_with_paths(dir, c, k, Options::default()).await;
    reload_under_traffic(&server, &ca, || {
        let (cert, key, der) = ca.leaf();
        secret_volume_write(&path, "..2026_11_24_00_05_00.2", &cert, &key);
        std::fs::remove_dir_all(path.join("..2026_11_24_00_00_00.1")).unwrap();
        der
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_match_is_refused_and_the_old_certificate_kept() {
    let ca = Ca::new("reload-mismatch");
    let server = Server::start(&ca, Options::default()).await;
    let dir = server.dir.path().to_path_buf();
    let mut c = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let old = c.peer.clone();
    let (cert_b, _, _) = ca.leaf();
    let (_, key_c, _) = ca.leaf();
    std::fs::write(dir.join("tls.crt"), cert_b).unwrap();
    std::fs::write(dir.join("tls.key"), key_c).unwrap();
    // The reloader counts the refusal; wait for it on /metrics.
    tokio::time::timeout(LIMIT, async {
        loop {
            let (_, body) = c.request("GET", "/metrics", vec![]).await.unwrap();
            if String::from_utf8(body)
                .unwrap()
                .contains("tessera_webhook_tls_reloads_total{result=\"error\"} 1")
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the mismatched pair was never tried");
    assert_eq!(*server.certs.subscribe().borrow(), 0, "no swap happened");
    let fresh = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    assert_eq!(fresh.peer, old);
}
