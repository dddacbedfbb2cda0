//! Garbage collection of uploads that were started and never completed.

use std::time::Duration;

use crate::ports::{ArtifactStore, MetadataStore};
use crate::state::{AppState, Ports, now_ms};

/// How often expired pending uploads are looked for.
const INTERVAL: Duration = Duration::from_secs(60);

/// Removes pending uploads older than `AETHER_PENDING_TTL_SECS`: their partial blobs or
/// multipart parts first, then their records. Runs until the process exits.
pub async fn run_pending_upload_gc<P: Ports>(state: AppState<P>) {
    loop {
        if let Err(error) = collect_once(&state).await {
            tracing::warn!(%error, "pending-upload garbage collection failed; will retry");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// One pass; returns how many uploads were removed.
pub async fn collect_once<P: Ports>(state: &AppState<P>) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let expired = state.store.expired_pending_uploads(now_ms()).await?;
    for upload in &expired {
        match &upload.multipart_upload_id {
            Some(id) => state.blobs.abort_multipart(&upload.storage_key, id).await?,
            // A completed upload has a row; only an unregistered blob is garbage.
            None if state.store.get_artifact(&upload.digest).await?.is_none() => {
                state.blobs.delete(&upload.storage_key).await?;
            }
            None => {}
        }
        state.store.delete_pending_upload(&upload.storage_key).await?;
        tracing::info!(digest = %upload.digest, "expired pending upload removed");
    }
    Ok(expired.len())
}
