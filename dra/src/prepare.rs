//! Preparing and unpreparing one claim: read the ResourceClaim, decide its edits
//! (`decide::share`), write its CDI spec and the checkpoint, remember the answer. The kubelet
//! calls these per claim; a failure is that claim's error, never the whole RPC's.
//!
//! Order of writes: the spec first, then the checkpoint. A crash between the two leaves a spec
//! no checkpoint names; the kubelet prepares the claim again and the same spec is rewritten,
//! and unprepare removes a claim's spec by its UID whether or not the checkpoint names it.

use crate::decide::cdi;
use crate::decide::prepared::{Prepared, PreparedClaim};
use crate::decide::share;
use crate::error::ClaimError;
use crate::files;
use crate::state::Shared;

/// Prepares claim `namespace/name` with UID `uid`; a claim already prepared gets its first
/// answer again and nothing is written.
pub async fn prepare(
    shared: &Shared,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<PreparedClaim, ClaimError> {
    let mut prepared = shared.prepared.lock().await;
    if let Some(done) = prepared.get(uid) {
        return Ok(done.clone());
    }
    let key = format!("{namespace}/{name}");
    let claim = shared
        .claims
        .get(namespace, name)
        .await
        .map_err(|reason| ClaimError::Read {
            claim: key.clone(),
            reason,
        })?;
    let found = claim.metadata.uid.clone().unwrap_or_default();
    if found != uid {
        return Err(ClaimError::Uid {
            claim: key,
            wanted: uid.into(),
            found,
        });
    }
    let config = &shared.config;
    let edits = share::claim_edits(
        &claim,
        &config.node_name,
        &shared.gpus(),
        config.mps_root.as_deref(),
    )?;
    let record = PreparedClaim::new(namespace, name, uid, &edits);
    let spec = serde_json::to_vec_pretty(&cdi::spec(uid, &edits)).unwrap_or_default();
    let spec_path = config.cdi_dir.join(&record.spec_file);
    files::write_atomic(&spec_path, &spec).map_err(|source| ClaimError::File {
        what: "writing CDI spec",
        path: spec_path.display().to_string(),
        source,
    })?;
    prepared.insert(uid, record.clone());
    if let Err(e) = checkpoint(shared, &prepared) {
        // Not recorded, not served: the kubelet retries, and the spec is rewritten then.
        prepared.remove(uid);
        let _ = files::remove(&spec_path);
        return Err(e);
    }
    Ok(record)
}

/// Unprepares claim `uid`: removes its CDI spec and forgets it. An unknown claim is done.
pub async fn unprepare(shared: &Shared, uid: &str) -> Result<(), ClaimError> {
    let mut prepared = shared.prepared.lock().await;
    let spec_path = shared.config.cdi_dir.join(cdi::file_name(uid));
    files::remove(&spec_path).map_err(|source| ClaimError::File {
        what: "removing CDI spec",
        path: spec_path.display().to_string(),
        source,
    })?;
    let Some(record) = prepared.remove(uid) else {
        return Ok(());
    };
    checkpoint(shared, &prepared).inspect_err(|_| {
        // Still in the checkpoint, so still ours: the kubelet's retry removes it.
        prepared.insert(uid, record);
    })
}

fn checkpoint(shared: &Shared, prepared: &Prepared) -> Result<(), ClaimError> {
    let path = shared.config.checkpoint();
    files::write_atomic(&path, prepared.encode().as_bytes()).map_err(|source| ClaimError::File {
        what: "writing checkpoint",
        path: path.display().to_string(),
        source,
    })
}
