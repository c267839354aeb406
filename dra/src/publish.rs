//! The publishing task: writes the node's ResourceSlice at start, whenever what it says
//! changes (health, MPS readiness), and every `--resync-seconds`; a failed write is retried
//! with backoff. The pool generation goes up by one for every changed content, starting above
//! the stored slice's, so the scheduler never mistakes a new slice for an old one.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::resource::v1::ResourceSliceSpec;
use tokio::sync::watch;

use crate::decide::slice;
use crate::slices::Slices;
use crate::state::{Shared, stopped};

/// First pause after a failed write; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest pause between two failed writes.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs until `shutdown` turns true.
pub async fn run(shared: Arc<Shared>, sink: Arc<dyn Slices>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = shared.subscribe();
    let name = slice::slice_name(&shared.config.node_name);
    let mut published: Option<(i64, ResourceSliceSpec)> = None;
    let mut retry = RETRY_MIN;
    loop {
        match publish_once(&shared, sink.as_ref(), &name, published.as_ref()).await {
            Ok(now) => {
                published = Some(now);
                retry = RETRY_MIN;
            }
            Err(e) => {
                tracing::warn!(slice = %name, error = %e, retry_in = ?retry, "publishing the ResourceSlice failed");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = stopped(&mut shutdown) => return,
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(shared.config.resync_every) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Writes the slice if it differs from `last` (or always on a resync, which `last` being the
/// same makes a no-op write that repairs a changed or deleted object).
async fn publish_once(
    shared: &Shared,
    sink: &dyn Slices,
    name: &str,
    last: Option<&(i64, ResourceSliceSpec)>,
) -> Result<(i64, ResourceSliceSpec), String> {
    let node_uid = sink.node_uid(&shared.config.node_name).await?;
    let node = shared.node_gpus(&node_uid);
    let generation = match last {
        Some((g, spec))
            if same_content(
                spec,
                &slice::resource_slice(&node, shared.mps().as_ref(), *g).spec,
            ) =>
        {
            *g
        }
        Some((g, _)) => g + 1,
        None => sink.generation(name).await?.map_or(1, |g| g + 1),
    };
    let built = slice::resource_slice(&node, shared.mps().as_ref(), generation);
    sink.apply(&built).await?;
    let devices = built.spec.devices.as_ref().map_or(0, Vec::len);
    tracing::info!(slice = %name, generation, devices, "ResourceSlice published");
    Ok((generation, built.spec))
}

fn same_content(a: &ResourceSliceSpec, b: &ResourceSliceSpec) -> bool {
    a.devices == b.devices
}
