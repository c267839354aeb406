//! The scenario mode of `tessera simulate`: the bundled cluster and workload (or files given by
//! `--cluster`/`--workload`), one policy or all of them, printed as a summary or JSON.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use tessera_core::score::Policy;
use tessera_sim::{report, scenario};

use super::{OutputFormat, SimulateArgs, output};

const BUNDLED_CLUSTER: &str = include_str!("../../scenario/cluster.yaml");
const BUNDLED_WORKLOAD: &str = include_str!("../../scenario/workload.yaml");

/// Reads a YAML file (or the bundled text) into `T`; errors name the file, line and field.
fn load<T: DeserializeOwned>(
    path: Option<&Path>,
    bundled: &str,
    what: &str,
) -> Result<(T, String)> {
    let (text, name) = match path {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("--{what} {}: cannot read", p.display()))?,
            p.display().to_string(),
        ),
        None => (bundled.to_string(), format!("bundled {what}.yaml")),
    };
    let value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("{name}: invalid {what} file"))?;
    Ok((value, name))
}

/// Runs the scenario mode.
pub fn run(args: &SimulateArgs) -> Result<()> {
    let (cluster, cluster_name) =
        load::<scenario::ClusterSpec>(args.cluster.as_deref(), BUNDLED_CLUSTER, "cluster")?;
    let (workload, workload_name) =
        load::<scenario::WorkloadSpec>(args.workload.as_deref(), BUNDLED_WORKLOAD, "workload")?;
    let policies: Vec<Policy> = if args.compare {
        Policy::COMPARED.to_vec()
    } else {
        vec![args.policy]
    };
    let outcomes = policies
        .iter()
        .map(|p| scenario::run(&cluster, &cluster_name, &workload, &workload_name, *p))
        .collect::<Result<Vec<_>, _>>()?;
    let title = if args.cluster.is_none() && args.workload.is_none() {
        "bundled"
    } else {
        "custom"
    };
    match args.output {
        OutputFormat::Text => outcomes
            .iter()
            .for_each(|o| print!("{}", output::scenario_summary(title, o))),
        OutputFormat::Json => {
            output::print_json(&[output::ScenarioDocument::new(title, &outcomes)])?
        }
    }
    if let (Some(path), Some(first)) = (&args.report, outcomes.first()) {
        let html = report::scenario_report(
            &format!("Tessera simulate — {title} scenario, {}", first.policy),
            first,
        );
        std::fs::write(path, html)
            .with_context(|| format!("--report {}: cannot write", path.display()))?;
    }
    Ok(())
}
