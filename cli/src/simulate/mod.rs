//! `tessera simulate`: files in, figures out. The bundled scenario runs with no flags; `--trace`
//! replays the public GPU trace. All decisions happen in tessera-core's `sim` module.

mod output;
mod scenario;
mod trace;

use std::path::PathBuf;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use tessera_core::score::Policy;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people.
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

fn policy_parser() -> impl TypedValueParser<Value = Policy> {
    PossibleValuesParser::new(Policy::ALL.map(Policy::name)).try_map(|name| Policy::parse(&name))
}

/// Flags of `tessera simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Cluster file (YAML, `version: v1`) instead of the bundled scenario's cluster.
    #[arg(long, env = "TESSERA_SIM_CLUSTER", conflicts_with = "trace")]
    pub cluster: Option<PathBuf>,
    /// Workload file (YAML, `version: v1`) instead of the bundled scenario's workload.
    #[arg(long, env = "TESSERA_SIM_WORKLOAD", conflicts_with = "trace")]
    pub workload: Option<PathBuf>,
    /// Directory of the GPU cluster trace (`openb_node_list_gpu_node.csv`, `openb_pod_list_*.csv`).
    #[arg(long, env = "TESSERA_SIM_TRACE")]
    pub trace: Option<PathBuf>,
    /// Which pod list of the trace: a name (`default`, `cpu050`, …), `all`, or a CSV path.
    #[arg(
        long,
        env = "TESSERA_SIM_PODS",
        default_value = "default",
        requires = "trace"
    )]
    pub pods: String,
    /// Number of seeds, counting up from 42 as in the published runs.
    #[arg(long, env = "TESSERA_SIM_SEEDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: u64,
    /// Scoring policy.
    #[arg(long, env = "TESSERA_SIM_POLICY", default_value = "fragmentation", value_parser = policy_parser())]
    pub policy: Policy,
    /// Run ours and every published baseline side by side.
    #[arg(long, env = "TESSERA_SIM_COMPARE")]
    pub compare: bool,
    /// Also run each policy through kube-scheduler's extender interface (scores squeezed to
    /// integers 0–10, ties broken at random) and report both (trace mode).
    #[arg(long, env = "TESSERA_SIM_THROUGH_EXTENDER", requires = "trace")]
    pub through_extender: bool,
    /// Also run each policy as it would place with DRA (trace mode): the node the policy picks,
    /// the GPUs inside it taken first fit by index as kube-scheduler's DRA allocator does
    /// (`POLICY/first-fit`), and kube-scheduler alone with DRA, no extender
    /// (`kube-scheduler/first-fit`: its default CPU and memory scores).
    #[arg(long, env = "TESSERA_SIM_DRA", requires = "trace")]
    pub dra: bool,
    /// Print the upper bound on the allocation at 130% (a linear relaxation over pod classes
    /// and node types of the arrived pods; always on with `--compare`).
    #[arg(long, env = "TESSERA_SIM_BOUND", requires = "trace")]
    pub bound: bool,
    /// Online reference: replays per seed of FGD with other tie-breaks (node orders); the best
    /// run per seed among them and every policy run is printed as `reference` (0: none).
    #[arg(
        long,
        env = "TESSERA_SIM_REFERENCE_TRIES",
        default_value_t = 0,
        requires = "trace"
    )]
    pub reference_tries: u64,
    /// Learn the typical request mix from the pods arrived so far, as a running extender must,
    /// instead of being given each list's mix in advance (the published protocol).
    #[arg(long, env = "TESSERA_SIM_LEARN_MIX", requires = "trace")]
    pub learn_mix: bool,
    /// Published results to print beside ours (default: `fgd-baselines.csv` next to the trace directory).
    #[arg(long, env = "TESSERA_SIM_BASELINES")]
    pub baselines: Option<PathBuf>,
    /// Write an HTML page: every node's GPUs with each pod's memory and compute share, pods not
    /// placed and spreading faults (scenario); allocation curves, a zoom and the numbers (trace).
    #[arg(long, env = "TESSERA_SIM_REPORT")]
    pub report: Option<PathBuf>,
    /// Output format.
    #[arg(long, env = "TESSERA_SIM_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Worker threads for trace replays (default: the machine's cores).
    #[arg(long, env = "TESSERA_SIM_THREADS")]
    pub threads: Option<usize>,
}

/// Runs the subcommand.
pub fn run(args: SimulateArgs) -> Result<()> {
    match &args.trace {
        Some(dir) => trace::run(&args, dir),
        None => scenario::run(&args),
    }
}
