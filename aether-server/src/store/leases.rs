//! Leases: who does a piece of work that one replica at a time must do, until when.

use sqlx::AnyPool;

use super::db_err;
use crate::ports::StoreResult;

/// Takes `name` for `owner` until `expires_at_ms`, when it is free, expired at `now_ms`, or
/// already `owner`'s (a renewal). One statement, so of replicas racing for a lease exactly one
/// gets it.
pub(super) async fn try_lease(
    pool: &AnyPool,
    name: &str,
    owner: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO leases (name, owner, expires_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at_ms = excluded.expires_at_ms \
         WHERE leases.owner = excluded.owner OR leases.expires_at_ms <= $4",
    )
    .bind(name)
    .bind(owner)
    .bind(expires_at_ms)
    .bind(now_ms)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

/// Gives `name` up, if `owner` holds it.
pub(super) async fn release(pool: &AnyPool, name: &str, owner: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Forgets every lease: for a server that knows it is the only one (embedded SQLite), whose
/// predecessor's leases would otherwise only delay its own start.
pub(super) async fn clear(pool: &AnyPool) -> StoreResult<()> {
    sqlx::query("DELETE FROM leases").execute(pool).await.map_err(db_err)?;
    Ok(())
}
