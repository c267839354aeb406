//! `simulate --trace`: load the trace files, run the replays on worker threads with a progress
//! bar, print or serialise the summary, and write the report.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tessera_core::score::Policy;
use tessera_sim::engine::Variant;
use tessera_sim::replay::ReplayConfig;
use tessera_sim::{self as sim, baselines, summary, trace};

use super::{OutputFormat, SimulateArgs, output};

const NODE_FILE: &str = "openb_node_list_gpu_node.csv";
const POD_PREFIX: &str = "openb_pod_list_";

fn open(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::new(file))
}

/// The pod lists named by `--pods`: (trace name, path).
fn pod_lists(dir: &Path, pods: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut available: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("--trace {}: cannot read directory", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let trace = name
                .strip_prefix(POD_PREFIX)?
                .strip_suffix(".csv")?
                .to_string();
            Some((trace, e.path()))
        })
        .collect();
    available.sort();
    if pods == "all" {
        return Ok(available);
    }
    if pods.ends_with(".csv") {
        let path = PathBuf::from(pods);
        let name = path
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .trim_start_matches(POD_PREFIX)
                    .to_string()
            })
            .unwrap_or_default();
        return Ok(vec![(name, path)]);
    }
    match available.iter().find(|(name, _)| name == pods) {
        Some(found) => Ok(vec![found.clone()]),
        None => bail!(
            "--pods {pods:?}: no {POD_PREFIX}{pods}.csv in {}; known traces: {}",
            dir.display(),
            available
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn published(args: &SimulateArgs, dir: &Path) -> Result<Vec<baselines::Published>> {
    let path = match &args.baselines {
        Some(p) => p.clone(),
        None => {
            let beside = dir.parent().unwrap_or(dir).join("fgd-baselines.csv");
            if !beside.exists() {
                return Ok(Vec::new());
            }
            beside
        }
    };
    Ok(baselines::parse(open(&path)?, &path.display().to_string())?)
}

/// Runs the trace mode.
pub fn run(args: &SimulateArgs, dir: &Path) -> Result<()> {
    let node_path = dir.join(NODE_FILE);
    let nodes = trace::parse_nodes(open(&node_path)?, &node_path.display().to_string())?;
    let lists = pod_lists(dir, &args.pods)?;
    let published = published(args, dir)?;
    let policies: Vec<Policy> = if args.compare {
        Policy::COMPARED.to_vec()
    } else {
        vec![args.policy]
    };
    let seeds: Vec<u64> = (42..42 + args.seeds).collect();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let variants = variants(args, &policies);
    let runs_per_list = (variants.len() as u64 + args.reference_tries) * seeds.len() as u64;
    let bar = progress(lists.len() as u64 * runs_per_list);
    let mut summaries = Vec::new();
    let mut report_runs = Vec::new();
    for (name, path) in &lists {
        let pods = trace::parse_pods(open(path)?, &path.display().to_string())?;
        bar.set_message(name.clone());
        let learn = |cfg: ReplayConfig| ReplayConfig {
            learn_mix: args.learn_mix,
            ..cfg
        };
        let jobs: Vec<ReplayConfig> = sim::published_jobs(&variants, &seeds)
            .into_iter()
            .map(learn)
            .collect();
        let results = sim::run_configs(&nodes, &pods, &jobs, threads, &|_| bar.inc(1));
        let mut summary = summary::summarise(name, &variants, &seeds, &results, &published);
        if args.compare || args.bound {
            summary.bound = Some(bound(&nodes, &pods, &seeds)?);
        }
        if args.reference_tries > 0 {
            let jobs: Vec<ReplayConfig> =
                sim::tie_break_jobs(Variant::ideal(Policy::Fgd), &seeds, args.reference_tries)
                    .into_iter()
                    .map(learn)
                    .collect();
            let extra = sim::run_configs(&nodes, &pods, &jobs, threads, &|_| bar.inc(1));

            let method = format!(
                "best per seed of the policies run and {} FGD tie-breaks",
                args.reference_tries
            );
            summary.reference = Some(summary::LimitSummary::new(
                method,
                summary::best_per_seed(results.iter().chain(&extra)),
            ));
        }
        summaries.push(summary);
        if report_runs.is_empty() {
            report_runs = results;
        }
    }
    bar.finish_and_clear();
    match args.output {
        OutputFormat::Text => summaries
            .iter()
            .for_each(|s| print!("{}", output::trace_table(s))),
        OutputFormat::Json => output::print_json(&summaries)?,
    }
    if let (Some(path), Some(first)) = (&args.report, summaries.first()) {
        let title = format!("Tessera simulate — trace {}", first.trace);
        let html = sim::report::trace_report(&title, &report_runs, first);
        std::fs::write(path, html)
            .with_context(|| format!("--report {}: cannot write", path.display()))?;
    }
    Ok(())
}

/// Per policy: its own scores, through the extender when asked, each with the DRA allocator's
/// GPUs when asked; then kube-scheduler alone with DRA.
fn variants(args: &SimulateArgs, policies: &[Policy]) -> Vec<Variant> {
    let mut out = Vec::new();
    for p in policies {
        let through = args.through_extender.then(|| Variant::through_extender(*p));
        for v in std::iter::once(Variant::ideal(*p)).chain(through) {
            out.push(v);
            if args.dra {
                out.push(v.dra_allocator());
            }
        }
    }
    if args.dra {
        out.push(Variant::kube_scheduler_dra());
    }
    out
}

/// The linear relaxation's bound per seed, on the pods that seed's replay sees arrive.
fn bound(
    nodes: &[trace::TraceNode],
    pods: &[trace::TracePod],
    seeds: &[u64],
) -> Result<summary::LimitSummary> {
    let per_seed = tessera_bound::per_seed(nodes, pods, seeds, 1.3)?
        .into_iter()
        .map(|(seed, b)| summary::LimitSeed {
            seed,
            alloc_pct_130: b.alloc_pct(),
            unallocated_gpus_130: b.unallocated_gpus(),
        })
        .collect();
    Ok(summary::LimitSummary::new(
        "LP relaxation over pod classes and node types",
        per_seed,
    ))
}

/// A progress bar on stderr that shows itself only on runs longer than a second.
fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_length(total);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg:>12} [{bar:30}] {pos}/{len} runs, {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let shown = bar.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        if !shown.is_finished() {
            shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            shown.enable_steady_tick(Duration::from_millis(200));
        }
    });
    bar
}
