//! `tessera certs`: a CA and a serving certificate for the webhook's Service name, written as
//! files or as a Secret manifest, and the caBundle for the MutatingWebhookConfiguration.
//! The same certificates the webhook makes for itself with `--self-managed-certs`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use tessera_webhook::certs;

/// `tessera certs` flags.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// The webhook's Service.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_SERVICE",
        default_value = "tessera-webhook"
    )]
    pub service: String,
    /// Its namespace.
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_NAMESPACE",
        default_value = "tessera-system"
    )]
    pub namespace: String,
    /// The cluster's DNS domain.
    #[arg(long, env = "TESSERA_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Write `ca.crt`, `tls.crt` and `tls.key` here (the key readable by its owner only).
    #[arg(long, conflicts_with = "secret")]
    pub out_dir: Option<PathBuf>,
    /// Print a `kubernetes.io/tls` Secret manifest with this name instead of writing files.
    #[arg(long)]
    pub secret: Option<String>,
}

/// Makes the certificates; prints the caBundle (or the Secret, then the caBundle on stderr).
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("reading the clock")?;
    let names = certs::dns_names(&args.service, &args.namespace, &args.cluster_domain);
    let (bundle, _) = certs::next_bundle(None, names, now).context("making the certificates")?;
    let ca_bundle = STANDARD.encode(&bundle.ca_cert);
    match (&args.out_dir, &args.secret) {
        (_, Some(name)) => {
            println!("{}", secret_manifest(name, &args.namespace, &bundle));
            eprintln!("caBundle: {ca_bundle}");
        }
        (Some(dir), None) => {
            write_files(dir, &bundle)?;
            println!("{ca_bundle}");
        }
        (None, None) => {
            anyhow::bail!("say where the certificates go: --out-dir DIR or --secret NAME")
        }
    }
    Ok(())
}

fn write_files(dir: &Path, b: &certs::Bundle) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, text: &str, private: bool| -> anyhow::Result<()> {
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        use std::io::Write;
        options
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))
    };
    write("ca.crt", &b.ca_cert, false)?;
    write("tls.crt", &b.cert, false)?;
    write("tls.key", &b.key, true)
}

fn secret_manifest(name: &str, namespace: &str, b: &certs::Bundle) -> String {
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {
            "ca.crt": STANDARD.encode(&b.ca_cert),
            "tls.crt": STANDARD.encode(&b.cert),
            "tls.key": STANDARD.encode(&b.key),
        }
    });
    serde_yaml_ng::to_string(&secret).unwrap_or_default()
}
