//! Self-managed certificates across replicas (`--self-managed-certs`): exactly one CA and
//! serving pair, in the Secret, that every replica serves and the MutatingWebhookConfiguration's
//! `caBundle` trusts.
//!
//! - The Secret is created once: create-only, and a conflict means another replica won, whose
//!   pair is then used. A renewal replaces it with the resourceVersion it was read at, so of two
//!   replicas renewing at once one wins and the other takes its pair.
//! - Every replica serves what the Secret holds: it watches the Secret and rewrites its files on
//!   a change (the reloader in `tls` takes them within its poll period). A renewal keeps the CA,
//!   so old and new serving certificates are trusted alike while replicas switch.
//! - The `caBundle` is owned through server-side apply with this field manager, and the
//!   configuration is watched: a `kubectl apply` of a manifest that drops or blanks it is undone
//!   within moments. (The shipped manifest does not carry the field.)

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client};
use thiserror::Error;
use tracing::info;

use crate::certs::{self, Bundle, RENEW_BEFORE};

/// Field manager of the Secret and the `caBundle`.
pub const FIELD_MANAGER: &str = "tessera-webhook";

/// How many lost races in a row `ensure` takes before giving up for this round.
const RACES: usize = 5;

/// Why certificates could not be issued or stored.
#[derive(Debug, Error)]
pub enum CertError {
    /// rcgen refused.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The apiserver refused.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// Client failure.
        #[source]
        source: kube::Error,
    },
    /// The certificate files could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Other replicas kept changing the Secret.
    #[error("Secret {0} changed under every attempt to write it; will retry")]
    Contended(String),
}

/// Where the certificate lives and what trusts it.
#[derive(Debug, Clone)]
pub struct SelfManaged {
    /// Namespace of the Secret and the Service.
    pub namespace: String,
    /// Secret holding `ca.crt`, `ca.key`, `tls.crt`, `tls.key`.
    pub secret: String,
    /// The webhook's Service name.
    pub service: String,
    /// MutatingWebhookConfiguration whose `caBundle`s are set.
    pub webhook_configuration: String,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// More names for the serving certificate (`--cert-extra-names`).
    pub extra_names: Vec<String>,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> CertError {
    move |source| CertError::Api { what, source }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn bundle_of(secret: &Secret) -> Bundle {
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    Bundle {
        ca_cert: get("ca.crt"),
        ca_key: get("ca.key"),
        cert: get("tls.crt"),
        key: get("tls.key"),
    }
}

fn with_bundle(mut secret: Secret, b: &Bundle) -> Secret {
    let data = [
        ("ca.crt", &b.ca_cert),
        ("ca.key", &b.ca_key),
        ("tls.crt", &b.cert),
        ("tls.key", &b.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    secret.data = Some(data);
    secret
}

/// The pair to serve: the Secret's, after creating it (once, cluster-wide) or renewing it.
async fn stored_bundle(client: &Client, s: &SelfManaged) -> Result<Bundle, CertError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let what = format!("Secret {}/{}", s.namespace, s.secret);
    let mut names = certs::dns_names(&s.service, &s.namespace, &s.cluster_domain);
    names.extend(s.extra_names.iter().cloned());
    for _ in 0..RACES {
        let held = secrets
            .get_opt(&s.secret)
            .await
            .map_err(api_err(format!("reading {what}")))?;
        let (bundle, fresh) =
            certs::next_bundle(held.as_ref().map(bundle_of), names.clone(), now())?;
        if !fresh {
            return Ok(bundle);
        }
        let written = match held {
            None => {
                let new = Secret {
                    metadata: ObjectMeta {
                        name: Some(s.secret.clone()),
                        namespace: Some(s.namespace.clone()),
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    ..Default::default()
                };
                secrets
                    .create(&PostParams::default(), &with_bundle(new, &bundle))
                    .await
            }
            // Carries the resourceVersion it was read at: a concurrent renewal wins.
            Some(old) => {
                secrets
                    .replace(
                        &s.secret,
                        &PostParams::default(),
                        &with_bundle(old, &bundle),
                    )
                    .await
            }
        };
        match written {
            Ok(_) => {
                info!(secret = %s.secret, "serving certificate issued");
                return Ok(bundle);
            }
            // Another replica created or renewed it first: use theirs.
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(api_err(format!("writing {what}"))(e)),
        }
    }
    Err(CertError::Contended(what))
}

/// Makes sure one valid pair is stored, trusted and on disk at `files`; returns how long until
/// the serving certificate is due.
pub async fn ensure(
    client: &Client,
    s: &SelfManaged,
    files: (&Path, &Path),
) -> Result<Duration, CertError> {
    let bundle = stored_bundle(client, s).await?;
    set_ca_bundle(client, s, &bundle.ca_cert).await?;
    // Key first: the reloader takes a pair only when the key matches the certificate.
    write_if_changed(files.1, &bundle.key)?;
    write_if_changed(files.0, &bundle.cert)?;
    let not_after = certs::pem_not_after(&bundle.cert).unwrap_or(0);
    Ok(Duration::from_secs(
        not_after.saturating_sub((now() + RENEW_BEFORE).as_secs()),
    ))
}

/// Applies `ca` as every webhook's `caBundle` in the configuration, owning just that field.
async fn set_ca_bundle(client: &Client, s: &SelfManaged, ca: &str) -> Result<(), CertError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let what = format!("MutatingWebhookConfiguration {}", s.webhook_configuration);
    let Some(mwc) = api
        .get_opt(&s.webhook_configuration)
        .await
        .map_err(api_err(what.clone()))?
    else {
        return Ok(());
    };
    let stale: Vec<String> = mwc
        .webhooks
        .iter()
        .flatten()
        .filter(|w| {
            w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca.as_bytes())
        })
        .map(|w| w.name.clone())
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let bundle = ByteString(ca.as_bytes().to_vec());
    let patch = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": s.webhook_configuration},
        "webhooks": stale.iter().map(|name| serde_json::json!({
            "name": name,
            "clientConfig": {"caBundle": bundle},
        })).collect::<Vec<_>>(),
    });
    api.patch(
        &s.webhook_configuration,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(api_err(what))?;
    info!(configuration = %s.webhook_configuration, webhooks = ?stale, "caBundle set");
    Ok(())
}

fn write_if_changed(path: &Path, content: &str) -> Result<(), CertError> {
    tessera_serve::certs::write_if_changed(path, content).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Keeps the certificate valid and agreed until the process ends: again on every change of the
/// Secret or the configuration, when the serving certificate is due (at least hourly), and a
/// minute after a failure.
pub async fn run(client: Client, s: SelfManaged, cert: PathBuf, key: PathBuf) {
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let secret_events = watcher::watcher(secrets, by_name(&s.secret))
        .default_backoff()
        .map(|_| ());
    let config_events = watcher::watcher(configs, by_name(&s.webhook_configuration))
        .default_backoff()
        .map(|_| ());
    let mut changes = std::pin::pin!(futures::stream::select(secret_events, config_events));
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            _ = tokio::time::sleep(wait) => {}
        }
        wait = match ensure(&client, &s, (&cert, &key)).await {
            Ok(due_in) => due_in.min(Duration::from_secs(3600)),
            Err(e) => {
                tracing::warn!(error = %e, "self-managed certificate not refreshed");
                Duration::from_secs(60)
            }
        };
    }
}
