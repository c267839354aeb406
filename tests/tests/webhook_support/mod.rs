//! Shared by the webhook tests: certificates made with rcgen, a webhook served over real HTTPS
//! on 127.0.0.1 port 0 with the shipped profiles, a keep-alive HTTPS client, fixtures, and
//! JSON Patch application.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tessera_webhook::config::{AdmissionConfig, Config};
use tessera_webhook::profiles;
use tessera_webhook::{Webhook, WebhookState};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// Longest any single await in these tests may take.
pub const LIMIT: Duration = Duration::from_secs(30);

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA that signs serving certificates for `localhost` and 127.0.0.1.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            params,
            key,
        }
    }

    /// A serving pair: (certificate PEM, key PEM, certificate DER).
    pub fn leaf(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        client_config(&[&self.der])
    }
}

pub fn client_config(roots: &[&CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    // A resumed session reports the certificate of the session it resumes; every connection
    // does a full handshake so the tests see which certificate the server serves now.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

/// The repository root (tests/ is one level down).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every shipped profile in manifests/profiles/.
pub fn shipped_profiles() -> profiles::Loaded {
    let dir = repo_root().join("manifests/profiles");
    let mut text = String::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    for path in names {
        text.push_str("---\n");
        text.push_str(&std::fs::read_to_string(&path).unwrap());
        text.push('\n');
    }
    let loaded = profiles::parse(&text);
    assert!(
        loaded.errors.is_empty(),
        "shipped profiles: {:?}",
        loaded.errors
    );
    loaded
}

pub fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures/admission").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A webhook serving over HTTPS on 127.0.0.1; dropped or [`Server::stop`]ped, it shuts down.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<WebhookState>,
    pub certs: Arc<tessera_webhook::tls::CertStore>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

pub struct Options {
    pub profiles: Option<profiles::Loaded>,
    /// A `--profiles` file, loaded at start and polled every `tls_reload`.
    pub profiles_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub tls_reload: Duration,
    pub spiffe: Option<tessera_inject::profile::Spiffe>,
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            profiles: Some(shipped_profiles()),
            profiles_file: None,
            max_body_bytes: 4 << 20,
            tls_reload: Duration::from_millis(20),
            spiffe: None,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl Server {
    pub async fn start(ca: &Ca, opts: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = ca.leaf();
        let cert_path = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        Self::start_with_paths(dir, cert_path, key_path, opts).await
    }

    pub async fn start_with_paths(
        dir: tempfile::TempDir,
        tls_cert: PathBuf,
        tls_key: PathBuf,
        opts: Options,
    ) -> Server {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls_cert,
            tls_key,
            profiles: opts.profiles_file,
            profiles_reload: opts.tls_reload,
            kubeconfig: None,
            admission: AdmissionConfig {
                cluster_domain: "cluster.local".into(),
                spiffe: opts.spiffe,
            },
            max_body_bytes: opts.max_body_bytes,
            request_timeout: Duration::from_secs(5),
            max_connections: opts.max_connections,
            idle_timeout: opts.idle_timeout,
            tls_reload: opts.tls_reload,
            drain: Duration::from_secs(5),
            self_managed: None,
        };
        let mut registry = Registry::default();
        let mut webhook = Webhook::new(config, provider(), &mut registry).unwrap();
        if let Some(p) = opts.profiles {
            webhook.set_profiles(p);
        }
        webhook.load_profiles_file().unwrap();
        let state = webhook.state.clone();
        let certs = webhook.certs.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let done = tokio::spawn(webhook.serve(listener, Arc::new(registry), async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            state,
            certs,
            dir,
            stop: Some(tx),
            done: Some(done),
        }
    }

    /// Sends the shutdown signal and waits for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(LIMIT, done).await.unwrap().unwrap();
        }
    }
}

/// One keep-alive HTTPS connection.
pub struct Client {
    send: SendRequest<Full<Bytes>>,
    /// The certificate the server presented.
    pub peer: CertificateDer<'static>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, tls: Arc<ClientConfig>) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = TlsConnector::from(tls).connect(name, tcp).await?;
        let peer = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Client { send, peer })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), hyper::Error> {
        self.send.ready().await?;
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }

    /// POSTs a review to /mutate; returns the status and the JSON body.
    pub async fn mutate(&mut self, review: &Value) -> (u16, Value) {
        self.mutate_at("/mutate", review).await
    }

    /// POSTs a review to `path` (`/mutate-dra`); returns the status and the JSON body.
    pub async fn mutate_at(&mut self, path: &str, review: &Value) -> (u16, Value) {
        let uri = format!("{path}?timeout=5s");
        let (status, body) = self
            .request("POST", &uri, serde_json::to_vec(review).unwrap())
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }
}

/// The JSON Patch ops of an allowed response (`None` when it carries no patch), checking the
/// rules the apiserver enforces: apiVersion/kind, uid, patchType with patch.
pub fn patch_of(request: &Value, response: &Value) -> Option<json_patch::Patch> {
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["kind"], "AdmissionReview");
    let r = &response["response"];
    assert_eq!(r["uid"], request["request"]["uid"], "uid must be echoed");
    assert_eq!(
        r.get("patch").is_some(),
        r.get("patchType").is_some(),
        "patch and patchType go together: {r}"
    );
    let b64 = r.get("patch")?.as_str().unwrap();
    assert_eq!(r["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(serde_json::from_slice(&bytes).expect("patch is a JSON Patch array"))
}

/// Applies `patch` to the request's object.
pub fn apply(request: &Value, patch: &json_patch::Patch) -> Value {
    let mut object = request["request"]["object"].clone();
    json_patch::patch(&mut object, patch).expect("patch applies to the object as sent");
    object
}

/// `review` with its object replaced (a re-submission or reinvocation).
pub fn with_object(review: &Value, object: Value) -> Value {
    let mut r = review.clone();
    r["request"]["object"] = object;
    r["request"]["uid"] = Value::String(format!(
        "{}-again",
        review["request"]["uid"].as_str().unwrap()
    ));
    r
}

/// Fails unless `actual` is the golden patch of `case` (`tests/fixtures/admission/golden/`),
/// writing the actual one beside the test binaries to compare or adopt.
#[allow(dead_code)] // not every test binary that includes this module checks goldens
pub fn check_golden(case: &str, actual: &Value) {
    let path = repo_root().join(format!("tests/fixtures/admission/golden/{case}.patch.json"));
    let want: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if &want != actual {
        let out =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{case}.patch.json"));
        std::fs::write(&out, serde_json::to_string_pretty(actual).unwrap()).unwrap();
        panic!(
            "{case}: patch differs from {} (actual written to {})",
            path.display(),
            out.display()
        );
    }
}

/// A webhook with default options on 127.0.0.1 and a client of it, trusting `ca_name`'s CA.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub async fn server_and_client(ca_name: &str) -> (Server, Client) {
    let ca = Ca::new(ca_name);
    let server = Server::start(&ca, Options::default()).await;
    let client = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    (server, client)
}

/// Posts `review` to `path`, applies the patch, checks the golden patch of `case`, and that
/// none of `again_on` patches the result again; the patched pod, typed and as JSON.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub async fn admitted_as_golden(
    client: &mut Client,
    path: &str,
    case: &str,
    review: &Value,
    again_on: &[&str],
) -> (k8s_openapi::api::core::v1::Pod, Value) {
    let (status, resp) = client.mutate_at(path, review).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    let patch = patch_of(review, &resp).unwrap_or_else(|| panic!("{case}: no patch"));
    check_golden(case, &serde_json::to_value(&patch).unwrap());
    let object = apply(review, &patch);
    let pod = serde_json::from_value(object.clone()).expect("patched object is a Pod");
    for again_path in again_on {
        let again = with_object(review, object.clone());
        let (status, resp) = client.mutate_at(again_path, &again).await;
        assert_eq!(status, 200);
        assert!(
            patch_of(&again, &resp).is_none(),
            "{case}: second pass on {again_path} patched: {resp}"
        );
    }
    (pod, object)
}
