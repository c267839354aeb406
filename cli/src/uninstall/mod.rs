//! `tessera uninstall`: removes an installed Tessera in the one safe order (see [`plan`]),
//! finding its objects by the label every shipped manifest carries
//! (`app.kubernetes.io/part-of: tessera`). `--dry-run` lists what would go, in order, and
//! deletes nothing. Objects Tessera made in users' namespaces (`<statefulset>-peers`
//! ConfigMaps, `<statefulset>-quorum` PodDisruptionBudgets) are owned by their StatefulSets and
//! go with them; the `tessera-share-*` ResourceClaimTemplates the webhook made for the DRA path
//! carry the label and are deleted (claims already made from them stay with their pods); pods
//! keep their `tessera.dev/` annotations, which nothing reads any more.

mod plan;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client};

use plan::{Deletion, Stage};

/// The label every object of the shipped manifests carries.
pub const PART_OF: &str = "app.kubernetes.io/part-of=tessera";

/// `tessera uninstall` flags.
#[derive(Debug, Clone, Args)]
pub struct UninstallArgs {
    /// Print the deletions in order and delete nothing.
    #[arg(long, env = "TESSERA_UNINSTALL_DRY_RUN")]
    pub dry_run: bool,
    /// Also delete the InjectionProfile CRD, last. This deletes every InjectionProfile in the
    /// cluster, users' own included.
    #[arg(long, env = "TESSERA_UNINSTALL_CRDS")]
    pub crds: bool,
    /// Label selector naming Tessera's objects.
    #[arg(long, env = "TESSERA_UNINSTALL_SELECTOR", default_value = PART_OF)]
    pub selector: String,
    /// Kubeconfig to use (default: in-cluster, then `$KUBECONFIG`, then `~/.kube/config`).
    #[arg(long, env = "TESSERA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (kubectl's `--context`).
    #[arg(long)]
    pub context: Option<String>,
}

/// Lists, then (unless `--dry-run`) deletes, stage by stage.
pub fn run(args: UninstallArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(uninstall(&args))
}

async fn uninstall(args: &UninstallArgs) -> anyhow::Result<()> {
    let client =
        crate::kube_client::connect_to(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut count = 0;
    for stage in plan::stages(args.crds) {
        for deletion in found(&client, &stage, &args.selector).await? {
            if !args.dry_run {
                delete(&client, &stage, &deletion).await?;
            }
            println!("{verb} {deletion}");
            count += 1;
        }
    }
    if !args.crds {
        println!("kept the InjectionProfile CRD and every profile (--crds removes them)");
    }
    if count == 0 {
        println!("nothing labelled {} found", args.selector);
    }
    Ok(())
}

fn api(client: &Client, stage: &Stage, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = stage.resource();
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Objects of `stage`'s kind that `selector` matches, namespaced kinds across every namespace.
async fn found(client: &Client, stage: &Stage, selector: &str) -> anyhow::Result<Vec<Deletion>> {
    let list = match api(client, stage, None)
        .list_metadata(&ListParams::default().labels(selector))
        .await
    {
        // A kind the apiserver does not serve (DeviceClass before resource.k8s.io/v1, 1.34)
        // has nothing of ours to delete.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        list => list.with_context(|| format!("listing {}s labelled {selector}", stage.kind))?,
    };
    let mut out: Vec<Deletion> = list
        .items
        .into_iter()
        .filter_map(|o| {
            Some(Deletion {
                kind: stage.kind,
                namespace: o.metadata.namespace.filter(|_| stage.namespaced),
                name: o.metadata.name?,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Deletes one object in the background (its dependents are collected by the garbage
/// collector); one already gone counts as deleted.
async fn delete(client: &Client, stage: &Stage, d: &Deletion) -> anyhow::Result<()> {
    match api(client, stage, d.namespace.as_deref())
        .delete(&d.name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting {d}")),
    }
}
