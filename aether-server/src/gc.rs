//! Garbage collection of uploads that were started and never completed, and of staging areas
//! no upload owns any more (a crash between staging and recording, or a presigned URL used
//! again after its upload ended).
//!
//! Safe to run on every replica at once: one replica at a time holds the collector's lease, an
//! expired upload is claimed by deleting its row before its staging area is removed, every
//! step is idempotent, and nothing registered is touched.

use std::time::SystemTime;

use crate::ports::{ArtifactStore, MetadataStore};
use crate::state::{AppState, Ports};

/// Runs [`collect_once`] every `AETHER_PENDING_GC_INTERVAL_SECS` until the process exits. Of
/// several replicas, one at a time collects (the lease `job:pending-upload-gc`).
pub async fn run_pending_upload_gc<P: Ports>(state: AppState<P>) {
    loop {
        let Some(_lease) = state.leases.claim(&state.store, "job:pending-upload-gc").await else {
            tokio::time::sleep(state.config.pending_gc_interval).await;
            continue;
        };
        match collect_once(&state).await {
            Ok(removed) => state.metrics.gc_ran(removed as u64),
            Err(error) => {
                state.metrics.gc_ran(0);
                tracing::warn!(error = %crate::error::chain(error.as_ref()), "pending-upload garbage collection failed; will retry");
            }
        }
        tokio::time::sleep(state.config.pending_gc_interval).await;
    }
}

/// One pass: uploads past `AETHER_PENDING_TTL_SECS` (their staging areas, then their rows),
/// then staging areas older than the TTL that no upload row owns. The TTL is at least the
/// presigned URLs' lifetime (the configuration enforces it), so every URL of what is purged
/// has expired. Returns how many went.
pub async fn collect_once<P: Ports>(state: &AppState<P>) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    collect_at(state, SystemTime::now()).await
}

/// [`collect_once`] as if the clock said `now`, so tests need not wait for a TTL to pass.
pub async fn collect_at<P: Ports>(
    state: &AppState<P>,
    now: SystemTime,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let now_ms =
        now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut removed = 0;
    for upload in state.store.expired_uploads(now_ms).await? {
        // The row goes first and claims the upload: a collector that finds it gone skips it,
        // and a staging area left behind by a crash here is an orphan the sweep below removes.
        if !state.store.delete_upload(&upload.id).await? {
            continue;
        }
        state.blobs.purge_staged(&upload.id, upload.multipart_id.as_deref()).await?;
        removed += 1;
        tracing::info!(upload_id = %upload.id, digest = %upload.digest, "expired upload removed");
    }
    let cutoff = now.checked_sub(state.config.pending_ttl).unwrap_or(SystemTime::UNIX_EPOCH);
    for entry in state.blobs.list_staged().await? {
        // Young areas may belong to an upload whose row is being written right now.
        if entry.modified > cutoff || state.store.get_upload(&entry.upload_id).await?.is_some() {
            continue;
        }
        state.blobs.purge_staged(&entry.upload_id, entry.multipart_id.as_deref()).await?;
        removed += 1;
        tracing::info!(upload_id = %entry.upload_id, "orphaned staging area removed");
    }
    Ok(removed)
}
