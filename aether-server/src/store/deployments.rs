//! Deployments and their event history.

use aether_core::deployment::DeploymentStatus;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::{conflict_or_db, db_err, flag, optional_status, status};
use crate::model::{Deployment, DeploymentEvent, IdempotencyRecord};
use crate::ports::{StoreError, StoreResult};

/// A deployment query; rows carry the app's name, which lives in `applications`.
macro_rules! select_deployments {
    ($tail:literal) => {
        concat!(
            "SELECT d.id, d.app_id, a.name AS app_name, d.artifact_id, d.digest, d.status, d.runtime, d.url, ",
            "d.failure_reason, d.signature, d.verified, d.env_json, d.created_at_ms, d.updated_at_ms ",
            "FROM deployments d JOIN applications a ON a.id = d.app_id ",
            $tail
        )
    };
}

/// The deployment, its first event and its idempotency key land together or not at all, so no
/// deployment is ever without history and a key never names two deployments. Returns the
/// record that already held the key, when one did (and then nothing was inserted).
pub(super) async fn insert_deployment(
    pool: &AnyPool,
    deployment: &Deployment,
    first_event: &DeploymentEvent,
    idempotency: Option<&IdempotencyRecord>,
) -> StoreResult<Option<IdempotencyRecord>> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    // The key is claimed first, in the same transaction: of concurrent requests with one key
    // (on any replica), the database lets exactly one insert; the others wait for it to commit
    // and then find its record.
    if let Some(record) = idempotency {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(&record.resource_id)
        .bind(record.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            let existing = super::auth::get_idempotency(pool, &record.scope, &record.key).await?;
            let existing = existing.ok_or_else(|| StoreError::NotFound(format!("idempotency key {}", record.key)))?;
            return Ok(Some(existing));
        }
    }
    sqlx::query(
        "INSERT INTO deployments (id, app_id, artifact_id, digest, status, runtime, url, failure_reason, \
         signature, verified, env_json, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&deployment.id)
    .bind(&deployment.app_id)
    .bind(&deployment.artifact_id)
    .bind(&deployment.digest)
    .bind(deployment.status.as_str())
    .bind(&deployment.runtime)
    .bind(deployment.url.as_deref())
    .bind(deployment.failure_reason.as_deref())
    .bind(deployment.signature.as_deref())
    .bind(deployment.verified)
    .bind(serde_json::to_string(&deployment.env).map_err(|e| db_err(sqlx::Error::Encode(Box::new(e))))?)
    .bind(deployment.created_at_ms)
    .bind(deployment.updated_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_or_db(e, || format!("deployment {}", deployment.id)))?;
    insert_event(&mut tx, first_event).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(None)
}

pub(super) async fn get_deployment(pool: &AnyPool, id: &str) -> StoreResult<Option<Deployment>> {
    let row =
        sqlx::query(select_deployments!("WHERE d.id = $1")).bind(id).fetch_optional(pool).await.map_err(db_err)?;
    row.as_ref().map(deployment_from_row).transpose().map_err(db_err)
}

/// Newest first; the id breaks ties between deployments created in the same millisecond.
pub(super) async fn list_deployments(pool: &AnyPool, app_id: &str) -> StoreResult<Vec<Deployment>> {
    let rows = sqlx::query(select_deployments!("WHERE d.app_id = $1 ORDER BY d.created_at_ms DESC, d.id DESC"))
        .bind(app_id)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(deployment_from_row).collect::<Result<_, _>>().map_err(db_err)
}

/// Oldest first: event ids only grow, so id order is insertion order even when two events
/// share a timestamp.
pub(super) async fn deployment_events(pool: &AnyPool, deployment_id: &str) -> StoreResult<Vec<DeploymentEvent>> {
    let rows = sqlx::query(
        "SELECT deployment_id, from_status, to_status, reason, at_ms FROM deployment_events \
         WHERE deployment_id = $1 ORDER BY id ASC",
    )
    .bind(deployment_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(event_from_row).collect::<Result<_, _>>().map_err(db_err)
}

/// Compare-and-set on the status: the `WHERE status = expected` makes a concurrent writer
/// that got there first turn this update into a no-op, and the event is only written when
/// the update applied. Identity fields (app, artifact, digest, runtime, creation time) are
/// never rewritten.
pub(super) async fn apply_transition(
    pool: &AnyPool,
    deployment: &Deployment,
    expected: DeploymentStatus,
    event: &DeploymentEvent,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let changed = sqlx::query(
        "UPDATE deployments SET status = $1, url = $2, failure_reason = $3, signature = $4, verified = $5, \
         updated_at_ms = $6 WHERE id = $7 AND status = $8",
    )
    .bind(deployment.status.as_str())
    .bind(deployment.url.as_deref())
    .bind(deployment.failure_reason.as_deref())
    .bind(deployment.signature.as_deref())
    .bind(deployment.verified)
    .bind(deployment.updated_at_ms)
    .bind(&deployment.id)
    .bind(expected.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if changed != 1 {
        tx.rollback().await.map_err(db_err)?;
        return Ok(false);
    }
    insert_event(&mut tx, event).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

/// The most recently updated running deployment, should the at-most-one rule ever be broken.
pub(super) async fn running_deployment(pool: &AnyPool, app_id: &str) -> StoreResult<Option<Deployment>> {
    let row = sqlx::query(select_deployments!(
        "WHERE d.app_id = $1 AND d.status = $2 ORDER BY d.updated_at_ms DESC, d.id DESC LIMIT 1"
    ))
    .bind(app_id)
    .bind(DeploymentStatus::Running.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(deployment_from_row).transpose().map_err(db_err)
}

/// Oldest first, so releases come back in the order they were deployed.
pub(super) async fn deployments_with_status(pool: &AnyPool, status: DeploymentStatus) -> StoreResult<Vec<Deployment>> {
    let rows = sqlx::query(select_deployments!("WHERE d.status = $1 ORDER BY d.created_at_ms ASC, d.id ASC"))
        .bind(status.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(deployment_from_row).collect::<Result<_, _>>().map_err(db_err)
}

async fn insert_event(conn: &mut AnyConnection, event: &DeploymentEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO deployment_events (deployment_id, from_status, to_status, reason, at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&event.deployment_id)
    .bind(event.from_status.map(DeploymentStatus::as_str))
    .bind(event.to_status.as_str())
    .bind(event.reason.as_deref())
    .bind(event.at_ms)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn deployment_from_row(row: &AnyRow) -> Result<Deployment, sqlx::Error> {
    Ok(Deployment {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        app_name: row.try_get("app_name")?,
        artifact_id: row.try_get("artifact_id")?,
        digest: row.try_get("digest")?,
        status: status(row, "status")?,
        runtime: row.try_get("runtime")?,
        url: row.try_get("url")?,
        failure_reason: row.try_get("failure_reason")?,
        signature: row.try_get("signature")?,
        verified: flag(row, "verified")?,
        env: serde_json::from_str(&row.try_get::<String, _>("env_json")?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<DeploymentEvent, sqlx::Error> {
    Ok(DeploymentEvent {
        deployment_id: row.try_get("deployment_id")?,
        from_status: optional_status(row, "from_status")?,
        to_status: status(row, "to_status")?,
        reason: row.try_get("reason")?,
        at_ms: row.try_get("at_ms")?,
    })
}
