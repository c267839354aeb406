//! The extender's command-line flags (every one also an environment variable), and the state
//! settings they make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use tessera_core::keys;
use tessera_core::ledger::SharingPolicy;
use tessera_core::request::Translation;
use tessera_core::score::Policy;

use crate::leader::LeaseSettings;
use crate::state::Config;

/// `tessera extender` flags.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Address to serve the extender verbs on.
    #[arg(long, env = "TESSERA_EXTENDER_LISTEN", default_value = "0.0.0.0:8888")]
    pub listen: SocketAddr,
    /// PEM certificate chain; serve HTTPS (the pair is reloaded when the files change).
    #[arg(long, env = "TESSERA_EXTENDER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "TESSERA_EXTENDER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle for client certificates: the verbs then answer only a client (kube-scheduler)
    /// whose certificate chains to it; `/healthz`, `/readyz` and `/metrics` stay open. Reloaded
    /// when the file changes.
    #[arg(long, env = "TESSERA_EXTENDER_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Manage the link's certificates: a CA, the serving pair and kube-scheduler's client pair
    /// in --cert-secret, renewed before expiry, written to --tls-cert, --tls-key and --client-ca.
    #[arg(long, env = "TESSERA_EXTENDER_SELF_MANAGED_CERTS", default_value_t = false, requires_all = ["tls_cert", "client_ca"])]
    pub self_managed_certs: bool,
    /// Secret for the self-managed certificates (in --cert-namespace).
    #[arg(
        long,
        env = "TESSERA_EXTENDER_CERT_SECRET",
        default_value = "tessera-extender-tls"
    )]
    pub cert_secret: String,
    /// Namespace of the extender's Service and certificate Secret.
    #[arg(
        long,
        env = "TESSERA_EXTENDER_CERT_NAMESPACE",
        default_value = "tessera-system"
    )]
    pub cert_namespace: String,
    /// The extender's Service (the serving certificate's DNS names).
    #[arg(
        long,
        env = "TESSERA_EXTENDER_SERVICE",
        default_value = "tessera-extender"
    )]
    pub service: String,
    /// More names (DNS or IP) for the self-managed serving certificate.
    #[arg(long, env = "TESSERA_EXTENDER_CERT_EXTRA_NAMES", value_delimiter = ',')]
    pub cert_extra_names: Vec<String>,
    /// The cluster's DNS domain.
    #[arg(long, env = "TESSERA_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Scoring policy.
    #[arg(long, env = "TESSERA_EXTENDER_POLICY", default_value = "fragmentation", value_parser = policy_parser())]
    pub policy: Policy,
    /// Device-plugin slots per GPU (must match the device plugin's `--slots-per-gpu`).
    #[arg(long, env = "TESSERA_SLOTS_PER_GPU", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub slots_per_gpu: u32,
    /// Scheduler name of the profile that uses this extender (only its pods are watched).
    #[arg(long, env = "TESSERA_EXTENDER_SCHEDULER_NAME", default_value = keys::SCHEDULER_NAME)]
    pub scheduler_name: String,
    /// How long a bound pod may take to show up bound before its reserved shares are released.
    #[arg(long, env = "TESSERA_EXTENDER_RESERVATION_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub reservation_timeout: Duration,
    /// Oldest acceptable device-plugin inventory heartbeat; `0s` turns the check off.
    #[arg(long, env = "TESSERA_EXTENDER_HEARTBEAT_MAX_AGE", default_value = "300s", value_parser = parse_duration)]
    pub heartbeat_max_age: Duration,
    /// Also read other projects' GPU request names (pods normally arrive translated by the
    /// webhook): `gpushare`, `hami`.
    #[arg(long, env = "TESSERA_EXTENDER_TRANSLATE", value_delimiter = ',', value_parser = ["gpushare", "hami"])]
    pub translate: Vec<String>,
    /// Place fractional shares also on GPUs without live MPS isolation (gpushare's model: the
    /// limits are then accounting, and workloads are trusted to keep to them). Off: such GPUs
    /// take whole-GPU containers only.
    #[arg(long, env = "TESSERA_EXTENDER_SOFT_SHARING", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub soft_sharing: bool,
    /// Elect a leader among the replicas on a Lease: only the leader answers the verbs and
    /// removes stale assignments; the others keep warm caches and are not ready. Off: this
    /// process leads alone (run exactly one).
    #[arg(long, env = "TESSERA_EXTENDER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "TESSERA_EXTENDER_LEASE_NAME",
        default_value = "tessera-extender"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease (default: the pod's own namespace, else `tessera-system`).
    #[arg(long, env = "TESSERA_EXTENDER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a leader's claim lasts without renewal (it renews when a third is left); a
    /// killed leader is replaced within about this long.
    #[arg(long, env = "TESSERA_EXTENDER_LEASE_DURATION", default_value = "10s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,
    /// Kubeconfig to use (default: in-cluster, then `$KUBECONFIG`, then `~/.kube/config`).
    #[arg(long, env = "TESSERA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Most connections served at once; at the cap new connections wait in the listen backlog.
    /// Keep it below the process's open-file limit.
    #[arg(long, env = "TESSERA_EXTENDER_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest a connection may stay open with no request in flight (HTTP/1 keep-alive and
    /// HTTP/2; a new connection gets 10 s for its first request).
    #[arg(long, env = "TESSERA_EXTENDER_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Longest from a request's headers to its answer, body included (kube-scheduler's own
    /// extender `httpTimeout` defaults to 30 s); past it the answer is 408.
    #[arg(long, env = "TESSERA_EXTENDER_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

fn policy_parser() -> impl TypedValueParser<Value = Policy> {
    PossibleValuesParser::new(Policy::ALL.map(Policy::name)).try_map(|name| Policy::parse(&name))
}

/// Whole seconds, at least 3 (the Lease counts in seconds and renews a third before expiry).
fn parse_lease_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.subsec_nanos() != 0 || d.as_secs() < 3 {
        return Err(format!(
            "`{text}`: the lease duration is whole seconds, at least 3s"
        ));
    }
    Ok(d)
}

/// `90s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 2m, 500ms)"))?;
    let unit_ms = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)))
}

impl Options {
    /// Where the leader Lease lives, when electing.
    pub fn lease(&self) -> Option<LeaseSettings> {
        self.leader_elect.then(|| LeaseSettings {
            name: self.lease_name.clone(),
            namespace: self
                .lease_namespace
                .clone()
                .unwrap_or_else(crate::leader::default_namespace),
            duration: self.lease_duration,
        })
    }

    /// Where the self-managed certificates live, when managed.
    pub fn self_managed(&self) -> Option<crate::cert_sync::SelfManaged> {
        self.self_managed_certs
            .then(|| crate::cert_sync::SelfManaged {
                namespace: self.cert_namespace.clone(),
                secret: self.cert_secret.clone(),
                service: self.service.clone(),
                cluster_domain: self.cluster_domain.clone(),
                extra_names: self.cert_extra_names.clone(),
            })
    }

    /// The state settings these flags make.
    pub fn config(&self) -> Config {
        Config {
            policy: self.policy,
            slots_per_gpu: self.slots_per_gpu,
            translation: Translation {
                gpushare: self.translate.iter().any(|t| t == "gpushare"),
                hami: self.translate.iter().any(|t| t == "hami"),
            },
            reservation_timeout: self.reservation_timeout,
            heartbeat_max_age: (!self.heartbeat_max_age.is_zero())
                .then_some(self.heartbeat_max_age),
            sharing: if self.soft_sharing {
                SharingPolicy::Soft
            } else {
                SharingPolicy::IsolatedOnly
            },
            client_certificates: self.client_ca.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_make_the_default_config() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: Options,
        }
        let options = Cli::try_parse_from(["tessera"]).unwrap().options;
        assert_eq!(options.config(), Config::default());
        // Replicas elect a leader unless told to run alone.
        let lease = options.lease().unwrap();
        assert_eq!(
            (lease.name.as_str(), lease.duration),
            ("tessera-extender", Duration::from_secs(10))
        );
        let alone = Cli::try_parse_from(["tessera", "--leader-elect=false"]).unwrap();
        assert_eq!(alone.options.lease(), None);
        let named = Cli::try_parse_from(["tessera", "--lease-namespace", "ops"]).unwrap();
        assert_eq!(named.options.lease().unwrap().namespace, "ops");
    }

    #[test]
    fn durations_parse_with_units_and_bad_ones_say_why() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(
            parse_duration("5d"),
            Err("unknown duration unit `d` in `5d`".to_string())
        );
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_lease_duration("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_lease_duration("2s").is_err());
        assert!(parse_lease_duration("2500ms").is_err());
    }
}
