//! The extender's verbs over mutual TLS, as kube-scheduler reaches them with the shipped
//! `tlsConfig`: the link's certificates made by the extender's own generator, the real serving
//! stack (`tessera-serve`) and the extender's router. Only the client pair signed by the link's
//! CA may filter and bind; probes and scrapes need no certificate; a certificate from any other
//! CA does not get through the handshake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tessera_extender::mtls::{Pairs, next_pairs};
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState, router};
use tessera_serve::Limits;
use tessera_serve::client_auth::{ClientCas, load_client_cas};
use tessera_serve::tls::{self, CertStore};
use tessera_tests::tls_client::{client, request};

struct Binds;

impl Binder for Binds {
    fn bind(&self, _: BindTarget) -> BindFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// The extender with `--client-ca`, serving HTTPS from the pairs' files.
async fn extender(pairs: &Pairs, dir: &std::path::Path) -> (Arc<ExtenderState>, SocketAddr) {
    let config = Config {
        heartbeat_max_age: None,
        client_certificates: true,
        ..Config::default()
    };
    let state = Arc::new(ExtenderState::new(config, Arc::new(Binds)));
    state.set_ready(true);
    let (cert, key, ca) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"));
    std::fs::write(&cert, &pairs.serving_cert).unwrap();
    std::fs::write(&key, &pairs.serving_key).unwrap();
    std::fs::write(&ca, &pairs.ca_cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let store = CertStore::new(tls::load(&cert, &key, &provider).unwrap().key);
    let cas = ClientCas::new(load_client_cas(&ca, &provider).unwrap());
    let server = tls::server_config_with_clients(store, Some(cas), provider).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        refusals: state.metrics().refusals(),
        ..Limits::default()
    };
    let app = router(state.clone());
    tokio::spawn(tessera_serve::serve_tls(
        listener,
        server,
        app,
        std::future::pending(),
        Duration::from_secs(1),
        limits,
    ));
    (state, addr)
}

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/extender/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn only_the_schedulers_client_certificate_may_filter_and_bind() {
    let names = vec!["127.0.0.1".to_string()];
    let (pairs, _) = next_pairs(None, names.clone(), now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, addr) = extender(&pairs, dir.path()).await;
    let filter = fixture("filter.nodenames.request.json");

    // kube-scheduler, with the client pair from the Secret.
    let scheduler = client(
        &pairs.ca_cert,
        Some((&pairs.client_cert, &pairs.client_key)),
    );
    let (status, body) = request(addr, scheduler.clone(), "POST", "/filter", &filter)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(answer.get("NodeNames").is_some(), "{answer}");

    // Anyone else on the network, with TLS but no certificate: refused, and counted.
    let anonymous = client(&pairs.ca_cert, None);
    for verb in ["/filter", "/prioritize", "/bind", "/preempt"] {
        let (status, body) = request(addr, anonymous.clone(), "POST", verb, &filter)
            .await
            .unwrap();
        assert_eq!(status, 401, "{verb}: {body}");
        assert!(body.contains("client certificate"), "{body}");
    }
    assert_eq!(
        state
            .metrics()
            .refusals()
            .get(tessera_serve::Reason::ClientCertificate),
        4
    );
    // Probes and scrapes need none.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = request(addr, anonymous.clone(), "GET", path, "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}");
    }

    // A client pair from another CA (another link's, or self-made) fails the handshake.
    let (other, _) = next_pairs(None, names, now()).unwrap();
    let forged = client(
        &pairs.ca_cert,
        Some((&other.client_cert, &other.client_key)),
    );
    let refused = request(addr, forged, "POST", "/filter", &filter).await;
    assert!(
        refused.is_err(),
        "a foreign client certificate got {refused:?}"
    );

    // A renewal keeps the CA: the renewed client pair is taken without touching the server.
    let mut renewed = pairs.clone();
    renewed.client_cert.clear();
    let (renewed, changed) = next_pairs(Some(renewed), vec!["127.0.0.1".into()], now()).unwrap();
    assert!(changed);
    assert_ne!(renewed.client_cert, pairs.client_cert);
    let scheduler = client(
        &pairs.ca_cert,
        Some((&renewed.client_cert, &renewed.client_key)),
    );
    let (status, _) = request(addr, scheduler, "POST", "/filter", &filter)
        .await
        .unwrap();
    assert_eq!(status, 200);
}
