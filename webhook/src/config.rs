//! `tessera webhook` flags and the validated [`Config`] they become. The conversion is pure and
//! tested with argument slices; nothing here reads the environment itself (clap does, through
//! each flag's `env`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tessera_inject::profile::Spiffe;

use crate::cert_sync::SelfManaged;
use thiserror::Error;

/// Flags of `tessera webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, env = "TESSERA_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM file with the serving certificate chain (reloaded when it changes).
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_TLS_CERT",
        default_value = "/etc/tessera/tls/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM file with the serving certificate's private key (reloaded when it changes).
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_TLS_KEY",
        default_value = "/etc/tessera/tls/tls.key"
    )]
    pub tls_key: PathBuf,
    /// YAML file of InjectionProfile documents (same schema as the CRD), reloaded when it
    /// changes.
    #[arg(long, env = "TESSERA_WEBHOOK_PROFILES")]
    pub profiles: Option<PathBuf>,
    /// How often the --profiles file is checked for changes, in milliseconds.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_PROFILES_RELOAD_MS",
        default_value = "2000"
    )]
    pub profiles_reload_ms: u64,
    /// Kubeconfig for the apiserver: InjectionProfiles when no --profiles file is given, and
    /// StatefulSets for peer lists and replicas (default: in cluster, then $KUBECONFIG, then
    /// ~/.kube/config; with --profiles, only when given or when running in a pod).
    #[arg(long, env = "TESSERA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Cluster DNS domain used in rendered host names.
    #[arg(long, env = "TESSERA_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// SPIFFE trust domain for injected pods whose profiles set none; empty: none.
    #[arg(long, env = "TESSERA_WEBHOOK_TRUST_DOMAIN", default_value = "")]
    pub trust_domain: String,
    /// Audience of the projected token that goes with the default SPIFFE ID.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_TOKEN_AUDIENCE",
        default_value = "tessera"
    )]
    pub token_audience: String,
    /// Largest AdmissionReview accepted, in bytes.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_MAX_BODY_BYTES",
        default_value = "4194304"
    )]
    pub max_body_bytes: usize,
    /// Per-request time limit in milliseconds. Keep it below the webhook configuration's
    /// timeoutSeconds (3 s as shipped), so a slow review is answered here rather than cut off
    /// by the apiserver.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_REQUEST_TIMEOUT_MS",
        default_value = "2000"
    )]
    pub request_timeout_ms: u64,
    /// Most connections served at once; at the cap new connections wait in the listen backlog.
    /// Keep it below the process's open-file limit.
    #[arg(long, env = "TESSERA_WEBHOOK_MAX_CONNECTIONS", default_value = "1024")]
    pub max_connections: usize,
    /// Longest a connection may stay open with no request in flight, in milliseconds (HTTP/1
    /// keep-alive and HTTP/2; a new connection gets 10 s for its first request).
    #[arg(long, env = "TESSERA_WEBHOOK_IDLE_TIMEOUT_MS", default_value = "30000")]
    pub idle_timeout_ms: u64,
    /// How often the certificate files are checked for changes, in milliseconds.
    #[arg(long, env = "TESSERA_WEBHOOK_TLS_RELOAD_MS", default_value = "2000")]
    pub tls_reload_ms: u64,
    /// Manage the serving certificate: issue it into --cert-secret, set the caBundle of
    /// --webhook-configuration, renew it before expiry (writing --tls-cert/--tls-key).
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_SELF_MANAGED_CERTS",
        default_value_t = false
    )]
    pub self_managed_certs: bool,
    /// Namespace of the webhook's Service and certificate Secret.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_NAMESPACE",
        default_value = "tessera-system"
    )]
    pub namespace: String,
    /// Secret for the self-managed certificate.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_CERT_SECRET",
        default_value = "tessera-webhook-tls"
    )]
    pub cert_secret: String,
    /// The webhook's Service (the certificate's DNS names).
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_SERVICE",
        default_value = "tessera-webhook"
    )]
    pub service: String,
    /// More names (DNS or IP) for the self-managed serving certificate, besides the Service's:
    /// for an apiserver that reaches the webhook by URL.
    #[arg(long, env = "TESSERA_WEBHOOK_CERT_EXTRA_NAMES", value_delimiter = ',')]
    pub cert_extra_names: Vec<String>,
    /// MutatingWebhookConfiguration whose caBundle is managed.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_CONFIGURATION",
        default_value = "tessera-webhook"
    )]
    pub webhook_configuration: String,
    /// Longest wait for in-flight requests at shutdown, in seconds.
    #[arg(long, env = "TESSERA_WEBHOOK_DRAIN_SECONDS", default_value = "20")]
    pub drain_seconds: u64,
}

/// Validated webhook configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Certificate chain file.
    pub tls_cert: PathBuf,
    /// Private key file.
    pub tls_key: PathBuf,
    /// Profiles file; `None`: profiles are watched in the cluster.
    pub profiles: Option<PathBuf>,
    /// Profiles file poll interval.
    pub profiles_reload: Duration,
    /// Kubeconfig for the watch.
    pub kubeconfig: Option<PathBuf>,
    /// What the decisions need.
    pub admission: AdmissionConfig,
    /// Body-size limit in bytes.
    pub max_body_bytes: usize,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest a connection may idle.
    pub idle_timeout: Duration,
    /// Certificate poll interval.
    pub tls_reload: Duration,
    /// Drain deadline at shutdown.
    pub drain: Duration,
    /// Self-managed certificate settings, when enabled.
    pub self_managed: Option<SelfManaged>,
}

/// The settings the admission decision itself uses.
#[derive(Debug, Clone, Default)]
pub struct AdmissionConfig {
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// SPIFFE settings for pods whose profiles set none.
    pub spiffe: Option<Spiffe>,
}

/// A flag with a value the webhook cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Zero where a positive number is needed.
    #[error("--{flag} must be greater than 0")]
    Zero {
        /// The flag.
        flag: &'static str,
    },
    /// An empty value.
    #[error("--{flag} must not be empty")]
    Empty {
        /// The flag.
        flag: &'static str,
    },
}

impl TryFrom<WebhookArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: WebhookArgs) -> Result<Config, ConfigError> {
        for (flag, v) in [
            ("max-body-bytes", a.max_body_bytes as u64),
            ("request-timeout-ms", a.request_timeout_ms),
            ("max-connections", a.max_connections as u64),
            ("idle-timeout-ms", a.idle_timeout_ms),
            ("tls-reload-ms", a.tls_reload_ms),
            ("profiles-reload-ms", a.profiles_reload_ms),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { flag });
            }
        }
        if a.cluster_domain.is_empty() {
            return Err(ConfigError::Empty {
                flag: "cluster-domain",
            });
        }
        let spiffe = if a.trust_domain.is_empty() {
            None
        } else if a.token_audience.is_empty() {
            return Err(ConfigError::Empty {
                flag: "token-audience",
            });
        } else {
            Some(Spiffe {
                trust_domain: a.trust_domain,
                audience: a.token_audience,
                expiration_seconds: 3600,
            })
        };
        let self_managed = a.self_managed_certs.then(|| SelfManaged {
            namespace: a.namespace,
            secret: a.cert_secret,
            service: a.service,
            webhook_configuration: a.webhook_configuration,
            cluster_domain: a.cluster_domain.clone(),
            extra_names: a.cert_extra_names,
        });
        Ok(Config {
            self_managed,
            listen: a.listen,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            profiles: a.profiles,
            profiles_reload: Duration::from_millis(a.profiles_reload_ms),
            kubeconfig: a.kubeconfig,
            admission: AdmissionConfig {
                cluster_domain: a.cluster_domain,
                spiffe,
            },
            max_body_bytes: a.max_body_bytes,
            request_timeout: Duration::from_millis(a.request_timeout_ms),
            max_connections: a.max_connections,
            idle_timeout: Duration::from_millis(a.idle_timeout_ms),
            tls_reload: Duration::from_millis(a.tls_reload_ms),
            drain: Duration::from_secs(a.drain_seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WebhookArgs,
    }

    fn config(argv: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["tessera-webhook"];
        all.extend_from_slice(argv);
        Config::try_from(Cli::try_parse_from(all).unwrap().args)
    }

    #[test]
    fn defaults_give_no_spiffe_and_five_second_timeout() {
        let c = config(&[]).unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(2));
        assert_eq!(c.admission.cluster_domain, "cluster.local");
        assert!(c.admission.spiffe.is_none());
    }

    #[test]
    fn trust_domain_flag_enables_default_spiffe() {
        let c = config(&["--trust-domain", "example.org", "--token-audience", "mesh"]).unwrap();
        let s = c.admission.spiffe.unwrap();
        assert_eq!(
            (s.trust_domain.as_str(), s.audience.as_str()),
            ("example.org", "mesh")
        );
    }

    #[test]
    fn self_managed_certificates_are_opt_in() {
        assert!(config(&[]).unwrap().self_managed.is_none());
        let c = config(&["--self-managed-certs", "--namespace", "ops"]).unwrap();
        let s = c.self_managed.unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.secret.as_str()),
            ("ops", "tessera-webhook-tls")
        );
    }

    #[test]
    fn the_profiles_file_is_polled_every_two_seconds_unless_told() {
        assert_eq!(config(&[]).unwrap().profiles_reload, Duration::from_secs(2));
        let c = config(&["--profiles", "p.yaml", "--profiles-reload-ms", "250"]).unwrap();
        assert_eq!(c.profiles_reload, Duration::from_millis(250));
        assert_eq!(
            config(&["--profiles-reload-ms", "0"]).unwrap_err(),
            ConfigError::Zero {
                flag: "profiles-reload-ms"
            }
        );
    }

    #[test]
    fn zero_limits_are_refused_naming_the_flag() {
        assert_eq!(
            config(&["--request-timeout-ms", "0"])
                .unwrap_err()
                .to_string(),
            "--request-timeout-ms must be greater than 0"
        );
    }
}
