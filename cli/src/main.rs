//! `tessera`: one binary for every part. Parses the command line, sets up logging and hands each
//! subcommand to its module; no decision is made here.

mod logging;
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
