//! Self-managed certificates for the kube-scheduler → extender link (`--self-managed-certs`):
//! one Secret holds the link's CA, the extender's serving pair and kube-scheduler's client pair
//! (`mtls`). Every extender replica serves what the Secret holds and trusts its CA for client
//! certificates; kube-scheduler mounts the same Secret (client pair and CA only).
//!
//! As the webhook's: the Secret is created once (create-only; a conflict means another replica
//! won and its pairs are used), renewals replace it at the resourceVersion they read, and the
//! Secret is watched so every replica rewrites its files when it changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tessera_serve::certs::{RENEW_BEFORE, dns_names, pem_not_after, write_if_changed};
use tracing::{info, warn};

use crate::mtls::{KEYS, Pairs, next_pairs};

/// How many lost races in a row one round takes before giving up until the next.
const RACES: usize = 5;

/// Where the link's certificates are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfManaged {
    /// Namespace of the Secret and the extender's Service.
    pub namespace: String,
    /// The Secret.
    pub secret: String,
    /// The extender's Service (the serving certificate's DNS names).
    pub service: String,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// More names (DNS or IP) for the serving certificate.
    pub extra_names: Vec<String>,
}

/// The files the extender serves from.
#[derive(Debug, Clone)]
pub struct Files {
    /// Serving certificate.
    pub cert: PathBuf,
    /// Serving key.
    pub key: PathBuf,
    /// CA bundle trusted for client certificates.
    pub client_ca: PathBuf,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn pairs_of(secret: &Secret) -> Pairs {
    let data = secret.data.clone().unwrap_or_default();
    Pairs::from_fields(|k| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    })
}

fn with_pairs(mut secret: Secret, p: &Pairs) -> Secret {
    let data = KEYS
        .iter()
        .zip(p.fields())
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    secret.data = Some(data);
    secret
}

/// The pairs to serve: the Secret's, after creating it (once, cluster-wide) or renewing it.
async fn stored_pairs(client: &Client, s: &SelfManaged) -> anyhow::Result<Pairs> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let what = format!("Secret {}/{}", s.namespace, s.secret);
    let mut names = dns_names(&s.service, &s.namespace, &s.cluster_domain);
    names.extend(s.extra_names.iter().cloned());
    for _ in 0..RACES {
        let held = secrets
            .get_opt(&s.secret)
            .await
            .map_err(|e| anyhow::anyhow!("reading {what}: {e}"))?;
        let (pairs, changed) = next_pairs(held.as_ref().map(pairs_of), names.clone(), now())
            .map_err(|e| anyhow::anyhow!("issuing the extender's certificates: {e}"))?;
        if !changed {
            return Ok(pairs);
        }
        let written = match held {
            None => {
                let new = Secret {
                    metadata: ObjectMeta {
                        name: Some(s.secret.clone()),
                        namespace: Some(s.namespace.clone()),
                        labels: Some(
                            [("app.kubernetes.io/managed-by".into(), "tessera".into())].into(),
                        ),
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    ..Default::default()
                };
                secrets
                    .create(&PostParams::default(), &with_pairs(new, &pairs))
                    .await
            }
            // Carries the resourceVersion it was read at: a concurrent renewal wins.
            Some(old) => {
                secrets
                    .replace(&s.secret, &PostParams::default(), &with_pairs(old, &pairs))
                    .await
            }
        };
        match written {
            Ok(_) => {
                info!(secret = %s.secret, "extender link certificates issued");
                return Ok(pairs);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => anyhow::bail!("writing {what}: {e}"),
        }
    }
    anyhow::bail!("{what} changed under every attempt to write it; will retry")
}

/// Makes sure valid pairs are stored and on disk at `files`; returns how long until the first
/// pair is due.
pub async fn ensure(client: &Client, s: &SelfManaged, files: &Files) -> anyhow::Result<Duration> {
    let pairs = stored_pairs(client, s).await?;
    let write = |path: &Path, content: &str| {
        write_if_changed(path, content).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    // The CA before the pair, the key before its certificate: the reloaders take a pair only
    // when the key matches, and a renewed CA is trusted before anything it signed is used.
    write(&files.client_ca, &pairs.ca_cert)?;
    write(&files.key, &pairs.serving_key)?;
    write(&files.cert, &pairs.serving_cert)?;
    let first_due = [&pairs.serving_cert, &pairs.client_cert]
        .iter()
        .map(|c| pem_not_after(c).unwrap_or(0))
        .min()
        .unwrap_or(0);
    Ok(Duration::from_secs(
        first_due.saturating_sub((now() + RENEW_BEFORE).as_secs()),
    ))
}

/// Keeps the pairs valid and agreed until the process ends: again on every change of the
/// Secret, when a pair is due (at least hourly), and a minute after a failure.
pub async fn run(client: Client, s: SelfManaged, files: Files) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", s.secret));
    let mut changes = std::pin::pin!(watcher::watcher(secrets, by_name).default_backoff());
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            _ = tokio::time::sleep(wait) => {}
        }
        wait = match ensure(&client, &s, &files).await {
            Ok(due_in) => due_in.min(Duration::from_secs(3600)),
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    "extender link certificates not refreshed"
                );
                Duration::from_secs(60)
            }
        };
    }
}
