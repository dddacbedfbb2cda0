//! Upload bookkeeping shared by every upload route: quotas, registering an artifact after its
//! blob is stored, signature verification and retention.

pub mod uploads;

use aether_core::signing::verify_digest_any;

use crate::error::{ApiError, ApiResult};
use crate::model::{App, Artifact};
use crate::ports::{ArtifactStore, MetadataStore};
use crate::state::{AppState, Ports, now_ms};

/// Content-addressed location of an artifact's blob.
pub fn storage_key(digest: &str) -> String {
    format!("artifacts/sha256/{digest}.tar.gz")
}

/// Refuses an upload that would take the app past its artifact count or byte quota.
pub async fn check_quota<P: Ports>(state: &AppState<P>, app: &App, digest: &str, size_bytes: u64) -> ApiResult<()> {
    let (max_count, max_bytes) = (state.config.max_artifacts_per_app, state.config.max_total_bytes_per_app);
    if max_count.is_none() && max_bytes.is_none() {
        return Ok(());
    }
    let artifacts = state.store.app_artifacts(&app.id).await?;
    if artifacts.iter().any(|a| a.digest == digest) {
        return Ok(());
    }
    let used: u64 = artifacts.iter().map(|a| u64::try_from(a.size_bytes).unwrap_or(0)).sum();
    let retention_frees = state.config.retain_latest_per_app.is_some();
    if let Some(max) = max_count
        && artifacts.len() as u64 >= max
        && !retention_frees
    {
        return Err(quota(format!("app {} already has {} artifacts (limit {max})", app.name, artifacts.len())));
    }
    if let Some(max) = max_bytes
        && used + size_bytes > max
    {
        return Err(quota(format!("app {} would use {} bytes (limit {max})", app.name, used + size_bytes)));
    }
    Ok(())
}

fn quota(message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::FORBIDDEN, "quota_exceeded", message)
}

/// True when `signature` is a valid signature of `digest` by one of the app's active keys.
pub async fn verify_signature<M: MetadataStore>(
    store: &M,
    app: Option<&App>,
    digest: &str,
    signature: Option<&str>,
) -> ApiResult<bool> {
    let (Some(app), Some(signature)) = (app, signature) else { return Ok(false) };
    let keys = store.active_public_keys(&app.id).await?;
    Ok(verify_digest_any(keys.iter().map(|k| k.public_key_hex.as_str()), digest, signature).is_ok())
}

/// Records an artifact whose blob is already stored and verified. The row is written only
/// after the blob exists, so no row ever points at a missing blob.
pub async fn register<P: Ports>(
    state: &AppState<P>,
    app: Option<&App>,
    digest: &str,
    size_bytes: u64,
    signature: Option<&str>,
) -> ApiResult<(Artifact, bool)> {
    let artifact = Artifact {
        id: uuid::Uuid::new_v4().to_string(),
        digest: digest.to_owned(),
        size_bytes: i64::try_from(size_bytes).unwrap_or(i64::MAX),
        storage_key: storage_key(digest),
        signature: signature.map(str::to_owned),
        created_at_ms: now_ms(),
    };
    let (stored, created) = state.store.insert_artifact(&artifact).await?;
    if let Some(app) = app {
        state.store.link_artifact(&app.id, &stored.id, now_ms()).await?;
        retain_latest(state, app).await?;
    }
    Ok((stored, !created))
}

/// Deletes the app's oldest artifacts beyond `AETHER_RETAIN_LATEST_PER_APP`, never one that a
/// live deployment uses.
async fn retain_latest<P: Ports>(state: &AppState<P>, app: &App) -> ApiResult<()> {
    let Some(keep) = state.config.retain_latest_per_app else { return Ok(()) };
    let artifacts = state.store.app_artifacts(&app.id).await?;
    let excess = artifacts.len().saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    for artifact in artifacts.into_iter().take(excess) {
        if state.store.artifact_in_use(&artifact.id).await? {
            continue;
        }
        // Row first: a blob without a row is garbage, a row without a blob is a lie. Of
        // replicas retaining at once, one deletes the row and the blob; the others skip.
        match state.store.delete_artifact(&artifact.id).await {
            Ok(()) => {}
            Err(crate::ports::StoreError::NotFound(_)) => continue,
            Err(error) => return Err(error.into()),
        }
        state.blobs.delete(&artifact.storage_key).await?;
        tracing::info!(app = %app.name, digest = %artifact.digest, "artifact removed by retention");
    }
    Ok(())
}
