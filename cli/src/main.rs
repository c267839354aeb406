//! `tessera`: one binary for every part. Parses the command line, sets up logging and hands each
//! subcommand to its module; no decision is made here.

mod build_info;
mod certs;
mod crd;
mod device_plugin;
mod dra_plugin;
mod ensemble;
mod extender;
mod inspect;
mod kube_client;
mod logging;
mod mps_daemon;
mod overlay;
mod serve;
mod simulate;
mod uninstall;
mod webhook;

use clap::{Parser, Subcommand};

/// `tessera --version`: the release and the commit it was built from (see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_COMMIT"),
    ")"
);

/// Tessera makes Kubernetes fit for middleware and AI workloads.
#[derive(Debug, Parser)]
#[command(name = "tessera", version = VERSION)]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the placement simulator on the bundled scenario, your own files, or the GPU trace.
    Simulate(simulate::SimulateArgs),
    /// Serve the kube-scheduler extender (filter, prioritize, bind, preempt).
    Extender(tessera_extender::Options),
    /// Show, per node and per GPU, which pod holds which share and what is free.
    Inspect(inspect::InspectArgs),
    /// Make a CA and the webhook's serving certificate; print the caBundle.
    Certs(certs::CertsArgs),
    /// Serve the mutating admission webhook (sidecar, identity and GPU-request injection).
    Webhook(tessera_webhook::WebhookArgs),
    /// Print the CustomResourceDefinitions generated from the Rust types.
    Crd,
    /// Run the kubelet device plugin: fractional GPUs from NVML, exact allocation.
    DevicePlugin(device_plugin::DevicePluginCli),
    /// Run the DRA kubelet plugin: MPS-enforced GPU shares as ResourceClaims, through CDI.
    DraPlugin(dra_plugin::DraPluginCli),
    /// Run MPS for the node's GPUs so that fractional shares hold (its own DaemonSet).
    MpsDaemon(mps_daemon::MpsDaemonCli),
    /// Keep injected ensembles' membership equal to their StatefulSets' replicas.
    Ensemble(tessera_ensemble::Options),
    /// Write an install for one cluster (the manifests and an overlay) to a directory.
    Overlay(overlay::OverlayArgs),
    /// Remove Tessera from a cluster: admission objects first, the CRD only when asked.
    Uninstall(uninstall::UninstallArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Extender(options) => extender::run(options),
        Command::Inspect(args) => inspect::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Webhook(args) => webhook::run(args),
        Command::Crd => crd::run(),
        Command::DevicePlugin(args) => device_plugin::run(args),
        Command::DraPlugin(args) => dra_plugin::run(args),
        Command::MpsDaemon(args) => mps_daemon::run(args),
        Command::Ensemble(options) => ensemble::run(options),
        Command::Overlay(args) => overlay::run(args),
        Command::Uninstall(args) => uninstall::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
