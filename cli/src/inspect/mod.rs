//! `tessera inspect` (also `kubectl tessera inspect`, with this binary installed as
//! `kubectl-tessera`): reads nodes and pods from the cluster, rebuilds the GPU accounting exactly
//! as the extender does, and prints per node and per GPU who holds what and what is free, the
//! isolation and inventory heartbeat of each node, and cluster totals.

mod claims;
mod ensembles;
mod report;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use tessera_core::cluster::{Cluster, NodeFacts, PodFacts};

pub use report::Report;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table (coloured on a terminal).
    Table,
    /// One JSON document.
    Json,
}

/// `tessera inspect` flags.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Only this node.
    #[arg(long, env = "TESSERA_INSPECT_NODE")]
    pub node: Option<String>,
    /// Output format.
    #[arg(long, short, env = "TESSERA_INSPECT_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Device-plugin slots per GPU (as the extender and device plugin run with).
    #[arg(long, env = "TESSERA_SLOTS_PER_GPU", default_value_t = 10)]
    pub slots_per_gpu: u32,
    /// Kubeconfig to use (default: in-cluster, then `$KUBECONFIG`, then `~/.kube/config`).
    #[arg(long, env = "TESSERA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (kubectl's `--context`).
    #[arg(long)]
    pub context: Option<String>,
    /// Only holders in this namespace (kubectl's `-n`); nodes, GPUs and totals stay
    /// cluster-wide, since free capacity is shared by every namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Show the ensembles whose membership Tessera keeps (members, voters, leader, target,
    /// the step under way) instead of GPUs.
    #[arg(long)]
    pub ensembles: bool,
    /// Show the DRA path instead (`tessera dra-plugin`): each GPU's capacity and the shares
    /// ResourceClaims hold of it, and claims still waiting for allocation.
    #[arg(long, conflicts_with = "ensembles")]
    pub claims: bool,
}

/// Prints the report.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.ensembles {
        return runtime.block_on(print_ensembles(&args));
    }
    if args.claims {
        return runtime.block_on(print_claims(&args));
    }
    let cluster = runtime.block_on(read_cluster(&args))?;
    let scope = report::Scope {
        node: args.node.as_deref(),
        namespace: args.namespace.as_deref(),
        now_secs: tessera_extender::clock::unix_secs(),
    };
    let report = Report::of(&cluster, &scope);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print!("{}", report.table(std::io::stdout().is_terminal())),
    }
    Ok(())
}

async fn print_ensembles(args: &InspectArgs) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let client =
        crate::kube_client::connect_to(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let api: Api<PartialObjectMeta<StatefulSet>> = match &args.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .context("listing StatefulSets")?;
    let (rows, warnings) = ensembles::rows(list.items.iter().map(|s| {
        let m = &s.metadata;
        (
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default(),
            m.annotations.as_ref(),
        )
    }));
    for w in warnings {
        tracing::warn!("{w}");
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Table => print!("{}", ensembles::table(&rows)),
    }
    Ok(())
}

async fn print_claims(args: &InspectArgs) -> anyhow::Result<()> {
    use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
    let client =
        crate::kube_client::connect_to(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let slices: Api<ResourceSlice> = Api::all(client.clone());
    let slices = slices
        .list(&ListParams::default())
        .await
        .context("listing ResourceSlices (resource.k8s.io/v1, Kubernetes 1.34 or later)")?;
    // Every namespace's claims: free room on a GPU is shared by all of them.
    let claims: Api<ResourceClaim> = Api::all(client);
    let claims = claims
        .list(&ListParams::default())
        .await
        .context("listing ResourceClaims")?;
    let view = claims::view(&slices.items, &claims.items, args.namespace.as_deref());
    for w in &view.warnings {
        tracing::warn!("{w}");
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Output::Table => print!("{}", view.table()),
    }
    Ok(())
}

async fn read_cluster(args: &InspectArgs) -> anyhow::Result<Cluster> {
    let client =
        crate::kube_client::connect_to(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let nodes: Api<PartialObjectMeta<Node>> = Api::all(client.clone());
    let nodes = nodes
        .list_metadata(&ListParams::default())
        .await
        .context("listing nodes")?;
    let node_facts = nodes
        .items
        .iter()
        .map(|n| {
            let m = &n.metadata;
            NodeFacts::from_metadata(
                m.name.as_deref().unwrap_or_default(),
                m.labels.as_ref(),
                m.annotations.as_ref(),
            )
        })
        .collect();
    // Only bound pods can hold shares.
    let pods: Api<Pod> = Api::all(client);
    let pods = pods
        .list(&ListParams::default().fields("spec.nodeName!="))
        .await
        .context("listing pods")?;
    let pod_facts = pods
        .items
        .iter()
        .map(PodFacts::from_pod)
        .filter(PodFacts::is_relevant)
        .collect();
    let (cluster, notices) = Cluster::rebuild(args.slots_per_gpu, node_facts, pod_facts);
    for notice in notices {
        tracing::warn!("{notice}");
    }
    Ok(cluster)
}
