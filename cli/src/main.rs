//! `tessera`: one binary for every part. Parses the command line, sets up logging and hands each
//! subcommand to its module; no decision is made here.

mod extender;
mod kube_client;
mod logging;
mod serve;
mod simulate;

use clap::{Parser, Subcommand};

/// Tessera makes Kubernetes fit for middleware and AI workloads.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Extender(options) => extender::run(options),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
