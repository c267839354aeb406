//! Webhook replicas with self-managed certificates (`--self-managed-certs`) against the real
//! apiserver in `TESSERA_E2E_KUBECONFIG` (skipped, saying so, when unset): replicas started
//! together agree on one certificate, a rotation of the Secret under traffic fails no review,
//! and re-applying the shipped MutatingWebhookConfiguration never leaves it untrusted for long.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tessera_tests::e2e::{self, KillOnDrop};
use tessera_tests::process::{free_addr, spawn_logged};

const SERVICE: &str = "tessera-webhook";

/// A namespace and a MutatingWebhookConfiguration of the test's own, removed on drop.
struct Env {
    kubeconfig: PathBuf,
    client: Client,
    ns: String,
    mwc: String,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(kubeconfig: PathBuf) -> Env {
        let client = e2e::client(&kubeconfig).await.unwrap();
        let ns = e2e::unique("tessera-e2e-certs");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(
            json!({"metadata": {"name": ns, "labels": {"tessera-e2e-certs": ns}}}),
        )
        .unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        Env {
            kubeconfig,
            client,
            mwc: ns.clone(),
            ns,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Creates the configuration as an admin would, for pods of no namespace (its caBundle is
    /// all the test needs).
    async fn create_unused_configuration(&self) {
        let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": self.mwc},
            "webhooks": [{"name": "pods.tessera.dev", "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {"service": {"name": SERVICE, "namespace": self.ns, "path": "/mutate"}},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods"]}],
                "namespaceSelector": {"matchLabels": {"tessera-e2e-never": "true"}}}]
        }))
        .unwrap();
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &mwc).await.unwrap();
    }

    /// Starts a self-managed replica keeping `secret`; its files and log under `name`.
    fn replica(&self, name: &str, secret: &str) -> Replica {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = free_addr();
        let profiles =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/profiles/zookeeper.yaml");
        let (cert, key, listen) = (dir.join("tls.crt"), dir.join("tls.key"), addr.to_string());
        let args: Vec<&std::ffi::OsStr> = vec![
            "--log-level".as_ref(),
            "info".as_ref(),
            "webhook".as_ref(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
            "--tls-reload-ms".as_ref(),
            "200".as_ref(),
            "--self-managed-certs".as_ref(),
            "--namespace".as_ref(),
            self.ns.as_ref(),
            "--cert-secret".as_ref(),
            secret.as_ref(),
            "--service".as_ref(),
            SERVICE.as_ref(),
            "--webhook-configuration".as_ref(),
            self.mwc.as_ref(),
            "--cert-extra-names".as_ref(),
            "127.0.0.1".as_ref(),
            "--profiles".as_ref(),
            profiles.as_os_str(),
            "--kubeconfig".as_ref(),
            self.kubeconfig.as_os_str(),
        ];
        let log = dir.join("webhook.log");
        let process = spawn_logged(Path::new(env!("CARGO_BIN_EXE_tessera")), args, &log);
        Replica {
            addr,
            log,
            _process: process,
        }
    }

    async fn ca_bundle(&self) -> Option<Vec<u8>> {
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        let mwc = api.get_opt(&self.mwc).await.ok()??;
        let bundle = mwc.webhooks?.first()?.client_config.ca_bundle.clone()?;
        (!bundle.0.is_empty()).then_some(bundle.0)
    }

    async fn secret(&self, name: &str) -> Secret {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        api.get(name).await.unwrap()
    }

    fn service_name(&self) -> String {
        format!("{SERVICE}.{}.svc", self.ns)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let (ns, mwc) = (self.ns.clone(), self.mwc.clone());
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let _ = api.delete(&mwc, &DeleteParams::default()).await;
            let namespaces: Api<Namespace> = Api::all(client);
            let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
        });
    }
}

struct Replica {
    addr: SocketAddr,
    log: PathBuf,
    _process: KillOnDrop,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn tls_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A verified TLS session with `addr` for `name`, trusting only `ca_pem`; the leaf it served.
fn connect(
    addr: SocketAddr,
    ca_pem: &[u8],
    name: &str,
) -> Result<(rustls::ClientConnection, TcpStream, CertificateDer<'static>), String> {
    let server = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(tls_config(ca_pem), server).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    let leaf = conn.peer_certificates().ok_or("no certificate")?[0].clone();
    Ok((conn, tcp, leaf))
}

/// One AdmissionReview of a plain pod over a new verified connection; Ok when answered 200.
fn review(addr: SocketAddr, ca_pem: &[u8], name: &str) -> Result<(), String> {
    let (mut conn, mut tcp, _) = connect(addr, ca_pem, name)?;
    let body = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/admission/pod-bare.request.json"),
    )
    .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: {name}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    tls.write_all(&body).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // The server may close without close_notify once it has answered.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    match answer.starts_with("HTTP/1.1 200") && answer.contains("\"allowed\":true") {
        true => Ok(()),
        false => Err(format!(
            "answered: {}",
            answer.lines().next().unwrap_or("nothing")
        )),
    }
}

fn pem_der(pem: &[u8]) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem).unwrap()
}

async fn wait_serving(env: &Env, replicas: &[&Replica]) -> Vec<u8> {
    let found = e2e::wait_for(
        "the caBundle and every replica serving",
        Duration::from_secs(30),
        || async {
            let ca = env.ca_bundle().await?;
            replicas
                .iter()
                .all(|r| TcpStream::connect(r.addr).is_ok())
                .then_some(ca)
        },
    )
    .await;
    found.unwrap_or_else(|e| {
        let logs: Vec<String> = replicas.iter().map(|r| r.log()).collect();
        panic!("{e}\n{}", logs.join("\n---\n"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_serve_the_one_pair_the_ca_bundle_trusts() {
    let Some(kubeconfig) = e2e::kubeconfig("webhook_replicas_agree") else {
        return;
    };
    let env = Env::start(kubeconfig).await;
    env.create_unused_configuration().await;
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        let secret = format!("tls-{round}");
        let (a, b) = (
            env.replica(&format!("a{round}"), &secret),
            env.replica(&format!("b{round}"), &secret),
        );
        // The caBundle may still be the previous round's until a replica of this one sets it.
        let stored = e2e::wait_for("the round's Secret", Duration::from_secs(30), || async {
            let api: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
            api.get_opt(&secret).await.ok().flatten()
        })
        .await
        .unwrap();
        let data = stored.data.unwrap();
        let ca_pem = data["ca.crt"].0.clone();
        let leaf = pem_der(&data["tls.crt"].0);
        let ok = e2e::wait_for(
            "both replicas serving the Secret's pair",
            Duration::from_secs(30),
            || async {
                let trusted = env.ca_bundle().await? == ca_pem;
                let served: Vec<_> = [&a, &b]
                    .iter()
                    .map(|r| connect(r.addr, &ca_pem, &env.service_name()).map(|(_, _, l)| l))
                    .collect();
                (trusted && served.iter().all(|s| s.as_ref().is_ok_and(|l| *l == leaf)))
                    .then_some(())
            },
        )
        .await;
        if let Err(e) = ok {
            panic!("round {round}: {e}\n{}\n---\n{}", a.log(), b.log());
        }
        // Nothing kept a second CA: exactly one pair was issued.
        let issued = [&a, &b]
            .iter()
            .map(|r| r.log().matches("serving certificate issued").count())
            .sum::<usize>();
        assert_eq!(issued, 1, "round {round}: {issued} pairs issued");
    }
    println!(
        "{ROUNDS} rounds of 2 replicas started together: every replica served the one pair in the Secret, trusted by the caBundle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_under_traffic_fails_no_review() {
    let Some(kubeconfig) = e2e::kubeconfig("webhook_secret_rotation") else {
        return;
    };
    let env = Env::start(kubeconfig).await;
    env.create_unused_configuration().await;
    let (a, b) = (env.replica("a", "tls"), env.replica("b", "tls"));
    let ca = wait_serving(&env, &[&a, &b]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic: Vec<_> = [a.addr, b.addr]
        .into_iter()
        .map(|addr| {
            let (stop, ok, failed, ca, name) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                ca.clone(),
                env.service_name(),
            );
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match review(addr, &ca, &name) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            errors.push(e);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                errors
            })
        })
        .collect();
    // Traffic before, during and after each change.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let names = vec![env.service_name(), "127.0.0.1".to_string()];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();

    // An operator rotates the serving pair (same CA): both replicas serve it within seconds.
    let mut held = env.secret("tls").await;
    let ca_key = String::from_utf8(held.data.as_ref().unwrap()["ca.key"].0.clone()).unwrap();
    let (cert, key) = tessera_webhook::certs::issue(&ca_key, names.clone(), now).unwrap();
    let data = held.data.as_mut().unwrap();
    data.insert("tls.crt".into(), ByteString(cert.clone().into_bytes()));
    data.insert("tls.key".into(), ByteString(key.into_bytes()));
    secrets
        .replace("tls", &PostParams::default(), &held)
        .await
        .unwrap();
    let rotated = Instant::now();
    let leaf = pem_der(cert.as_bytes());
    let serving = |want: CertificateDer<'static>| {
        let (ca, name) = (ca.clone(), env.service_name());
        let addrs = [a.addr, b.addr];
        move || {
            let (ca, name, want) = (ca.clone(), name.clone(), want.clone());
            async move {
                addrs
                    .iter()
                    .all(|addr| connect(*addr, &ca, &name).is_ok_and(|(_, _, l)| l == want))
                    .then_some(())
            }
        }
    };
    e2e::wait_for(
        "both replicas serving the rotated pair",
        Duration::from_secs(15),
        serving(leaf),
    )
    .await
    .unwrap();
    let switched = rotated.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A pair close to expiry is put in: a replica renews it, and both serve the renewal.
    let mut held = env.secret("tls").await;
    let old = now - Duration::from_secs(355 * 86_400);
    let (due, due_key) = tessera_webhook::certs::issue(&ca_key, names, old).unwrap();
    let data = held.data.as_mut().unwrap();
    data.insert("tls.crt".into(), ByteString(due.clone().into_bytes()));
    data.insert("tls.key".into(), ByteString(due_key.into_bytes()));
    secrets
        .replace("tls", &PostParams::default(), &held)
        .await
        .unwrap();
    let due_written = Instant::now();
    let renewal = e2e::wait_for(
        "a replica renewing the due pair",
        Duration::from_secs(15),
        || async {
            let current = env.secret("tls").await.data.unwrap()["tls.crt"].0.clone();
            (current != due.as_bytes()).then_some(current)
        },
    )
    .await
    .unwrap();
    e2e::wait_for(
        "both replicas serving the renewal",
        Duration::from_secs(15),
        serving(pem_der(&renewal)),
    )
    .await
    .unwrap();
    let renewed = due_written.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = traffic
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 0, "no review was answered");
    assert_eq!(failed, 0, "{errors:?}\n{}\n---\n{}", a.log(), b.log());
    println!(
        "rotation under traffic: both replicas served an operator's new pair {switched:.1?} after the Secret changed, and a replica's renewal of a due pair {renewed:.1?} after it was written; {ok} reviews over new verified connections, 0 failed"
    );
}

/// `kubectl` from `PATH`, or `None` (the test then says it is skipped).
fn kubectl() -> Option<PathBuf> {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    found.then(|| PathBuf::from("kubectl"))
}

fn kubectl_apply(kubectl: &Path, kubeconfig: &Path, file: &Path, extra: &[&str]) {
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl apply {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped configuration, pointed at `addr` by URL and at the test's namespace.
fn shipped_configuration(env: &Env, addr: SocketAddr, blank_ca: bool) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/webhook/mutatingwebhookconfiguration.yaml");
    let mut doc: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["metadata"]["name"] = json!(env.mwc);
    for hook in doc["webhooks"].as_array_mut().unwrap() {
        hook["clientConfig"] = json!({"url": format!("https://{addr}/mutate")});
        if blank_ca {
            // The manifest as shipped before: `caBundle: ""`.
            hook["clientConfig"]["caBundle"] = json!("");
        }
        // Only the test's namespace, for every pod (no other test's pods are affected).
        hook["namespaceSelector"] = json!({"matchLabels": {"tessera-e2e-certs": env.ns}});
        hook.as_object_mut().unwrap().remove("matchConditions");
    }
    serde_yaml_ng::to_string(&doc).unwrap()
}

/// A server-side dry run of a plain pod in the test's namespace: the apiserver calls the webhook
/// (failurePolicy Fail), so this fails while the caBundle does not trust the webhook.
async fn admitted(env: &Env) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "probe-"},
        "spec": {"containers": [{"name": "main", "image": "local/app:1"}]}
    }))
    .unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    pods.create(&dry, &pod)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapplying_the_manifest_keeps_admission_working() {
    let Some(kubeconfig) = e2e::kubeconfig("webhook_reapply_manifest") else {
        return;
    };
    let Some(kubectl) = kubectl() else {
        println!("webhook_reapply_manifest: skipped (no kubectl on PATH)");
        return;
    };
    let env = Env::start(kubeconfig.clone()).await;
    // The webhook first, then the configuration: it sets the caBundle when the file appears.
    let replica = env.replica("a", "tls");
    let file = env.dir.path().join("mwc.yaml");
    std::fs::write(&file, shipped_configuration(&env, replica.addr, false)).unwrap();
    kubectl_apply(&kubectl, &kubeconfig, &file, &[]);
    kubectl_apply(&kubectl, &kubeconfig, &file, &[]);
    let first = Instant::now();
    let working = e2e::wait_for(
        "admission through the webhook",
        Duration::from_secs(30),
        || async { admitted(&env).await.ok() },
    )
    .await;
    if let Err(e) = working {
        panic!("{e}: {:?}\n{}", admitted(&env).await, replica.log());
    }
    let trusted_after = first.elapsed();
    let ca = env.ca_bundle().await.unwrap();
    // Re-applied as shipped, client-side and server-side: the caBundle is untouched.
    for extra in [&[][..], &["--server-side"][..]] {
        kubectl_apply(&kubectl, &kubeconfig, &file, extra);
        assert_eq!(env.ca_bundle().await.as_ref(), Some(&ca), "apply {extra:?}");
        admitted(&env).await.unwrap();
    }
    // The manifest as it used to ship (`caBundle: ""`) blanks it: the webhook puts it back.
    std::fs::write(&file, shipped_configuration(&env, replica.addr, true)).unwrap();
    kubectl_apply(&kubectl, &kubeconfig, &file, &[]);
    let blanked = Instant::now();
    let restored = e2e::wait_for(
        "admission again after a blank caBundle",
        Duration::from_secs(15),
        || async { admitted(&env).await.ok() },
    )
    .await;
    if let Err(e) = restored {
        panic!("{e}\n{}", replica.log());
    }
    let restored_after = blanked.elapsed();
    assert_eq!(env.ca_bundle().await.as_ref(), Some(&ca));
    println!(
        "reapply: caBundle set {trusted_after:.1?} after the configuration was applied (twice); \
         re-applied client- and server-side with admission working throughout; a blanked \
         caBundle was restored and admission working again after {restored_after:.1?}"
    );
}
