//! Artifacts, their links to apps, and uploads that have not completed yet.

use aether_core::deployment::DeploymentStatus;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{conflict_or_db, db_err};
use crate::model::Artifact;
use crate::ports::{StoreError, StoreResult};

/// Statuses whose deployment still needs its artifact's blob.
const LIVE_STATUSES: [DeploymentStatus; 3] =
    [DeploymentStatus::Pending, DeploymentStatus::Deploying, DeploymentStatus::Running];

pub(super) async fn insert_artifact(pool: &AnyPool, artifact: &Artifact) -> StoreResult<(Artifact, bool)> {
    // Two uploads of the same bytes race to here; DO NOTHING lets the loser read the
    // winner's row instead of failing. A clash on `id` alone is still a conflict.
    let inserted = sqlx::query(
        "INSERT INTO artifacts (id, digest, size_bytes, storage_key, signature, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING",
    )
    .bind(&artifact.id)
    .bind(&artifact.digest)
    .bind(artifact.size_bytes)
    .bind(&artifact.storage_key)
    .bind(artifact.signature.as_deref())
    .bind(artifact.created_at_ms)
    .execute(pool)
    .await
    .map_err(|e| conflict_or_db(e, || format!("artifact {}", artifact.id)))?
    .rows_affected();
    let stored = get_artifact(pool, &artifact.digest)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("artifact {}", artifact.digest)))?;
    Ok((stored, inserted == 1))
}

pub(super) async fn get_artifact(pool: &AnyPool, digest: &str) -> StoreResult<Option<Artifact>> {
    let row = sqlx::query(
        "SELECT id, digest, size_bytes, storage_key, signature, created_at_ms FROM artifacts WHERE digest = $1",
    )
    .bind(digest)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(artifact_from_row).transpose().map_err(db_err)
}

pub(super) async fn get_artifact_by_id(pool: &AnyPool, id: &str) -> StoreResult<Option<Artifact>> {
    let row = sqlx::query(
        "SELECT id, digest, size_bytes, storage_key, signature, created_at_ms FROM artifacts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(artifact_from_row).transpose().map_err(db_err)
}

/// Newest first. The cursor is the `(created_at_ms, id)` of the previous page's last row, so
/// rows inserted meanwhile neither repeat nor shift the next page.
pub(super) async fn list_artifacts(
    pool: &AnyPool,
    before: Option<(i64, String)>,
    limit: u32,
) -> StoreResult<Vec<Artifact>> {
    let limit = i64::from(limit);
    let query = match &before {
        Some((created_at_ms, id)) => sqlx::query(
            "SELECT id, digest, size_bytes, storage_key, signature, created_at_ms FROM artifacts \
             WHERE created_at_ms < $1 OR (created_at_ms = $1 AND id < $2) \
             ORDER BY created_at_ms DESC, id DESC LIMIT $3",
        )
        .bind(*created_at_ms)
        .bind(id.as_str())
        .bind(limit),
        None => sqlx::query(
            "SELECT id, digest, size_bytes, storage_key, signature, created_at_ms FROM artifacts \
             ORDER BY created_at_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit),
    };
    let rows = query.fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(artifact_from_row).collect::<Result<_, _>>().map_err(db_err)
}

/// `NotFound` when there is no such artifact. Its app links go with it; a deployment that
/// references it makes the database refuse (a `Database` error), see the module docs.
/// Deletes the row unless a live deployment uses the artifact, in one statement, so retention
/// running on several replicas at once never removes what a deployment needs and removes each
/// artifact once (the others find nothing to delete).
pub(super) async fn delete_artifact(pool: &AnyPool, id: &str) -> StoreResult<()> {
    let [pending, deploying, running] = LIVE_STATUSES.map(DeploymentStatus::as_str);
    let deleted = sqlx::query(
        "DELETE FROM artifacts WHERE id = $1 AND NOT EXISTS \
         (SELECT 1 FROM deployments WHERE artifact_id = $1 AND status IN ($2, $3, $4))",
    )
    .bind(id)
    .bind(pending)
    .bind(deploying)
    .bind(running)
    .execute(pool)
    .await
    .map_err(db_err)?
    .rows_affected();
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("artifact {id}")));
    }
    Ok(())
}

/// Keeps the first link time when the link already exists.
pub(super) async fn link_artifact(pool: &AnyPool, app_id: &str, artifact_id: &str, now_ms: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO app_artifacts (app_id, artifact_id, linked_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (app_id, artifact_id) DO NOTHING",
    )
    .bind(app_id)
    .bind(artifact_id)
    .bind(now_ms)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Oldest link first.
pub(super) async fn app_artifacts(pool: &AnyPool, app_id: &str) -> StoreResult<Vec<Artifact>> {
    let rows = sqlx::query(
        "SELECT a.id, a.digest, a.size_bytes, a.storage_key, a.signature, a.created_at_ms \
         FROM app_artifacts l JOIN artifacts a ON a.id = l.artifact_id \
         WHERE l.app_id = $1 ORDER BY l.linked_at_ms ASC, l.artifact_id ASC",
    )
    .bind(app_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(artifact_from_row).collect::<Result<_, _>>().map_err(db_err)
}

pub(super) async fn artifact_in_use(pool: &AnyPool, artifact_id: &str) -> StoreResult<bool> {
    // The statuses are bound rather than spelled in the SQL so they cannot drift from
    // `DeploymentStatus::as_str`.
    let [pending, deploying, running] = LIVE_STATUSES.map(DeploymentStatus::as_str);
    let row = sqlx::query("SELECT 1 FROM deployments WHERE artifact_id = $1 AND status IN ($2, $3, $4) LIMIT 1")
        .bind(artifact_id)
        .bind(pending)
        .bind(deploying)
        .bind(running)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

fn artifact_from_row(row: &AnyRow) -> Result<Artifact, sqlx::Error> {
    Ok(Artifact {
        id: row.try_get("id")?,
        digest: row.try_get("digest")?,
        size_bytes: row.try_get("size_bytes")?,
        storage_key: row.try_get("storage_key")?,
        signature: row.try_get("signature")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
