//! API tokens and idempotency records.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{conflict_or_db, db_err};
use crate::model::{IdempotencyRecord, Role, Token};
use crate::ports::{StoreError, StoreResult};

/// `Conflict` on a duplicate id or hash; the message names neither, since a hash collision
/// with another user's token should not be confirmed to the caller.
pub(super) async fn insert_token(pool: &AnyPool, token: &Token) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, name, role, token_hash, created_at_ms, expires_at_ms, revoked_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.id)
    .bind(token.name.as_deref())
    .bind(token.role.as_str())
    .bind(&token.token_hash)
    .bind(token.created_at_ms)
    .bind(token.expires_at_ms)
    .bind(token.revoked_at_ms)
    .execute(pool)
    .await
    .map_err(|e| conflict_or_db(e, || "token".to_owned()))?;
    Ok(())
}

/// Revoked and expired tokens are returned too: deciding what they may do is the caller's job.
pub(super) async fn find_token(pool: &AnyPool, token_hash: &str) -> StoreResult<Option<Token>> {
    let row = sqlx::query(
        "SELECT id, name, role, token_hash, created_at_ms, expires_at_ms, revoked_at_ms \
         FROM tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(token_from_row).transpose().map_err(db_err)
}

/// Revoking twice keeps the first revocation time and still reports the token as found.
pub(super) async fn revoke_token(pool: &AnyPool, id: &str, now_ms: i64) -> StoreResult<bool> {
    let changed = sqlx::query("UPDATE tokens SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected();
    Ok(changed > 0)
}

/// Every stored token, revoked or not.
pub(super) async fn count_tokens(pool: &AnyPool) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens").fetch_one(pool).await.map_err(db_err)?;
    u64::try_from(count).map_err(|e| StoreError::Database(Box::new(e)))
}

pub(super) async fn get_idempotency(pool: &AnyPool, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
    let row = sqlx::query(
        "SELECT scope, key, request_hash, resource_id, created_at_ms FROM idempotency_keys \
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(record_from_row).transpose().map_err(db_err)
}

/// First writer wins: concurrent replays of one request all get the record stored first.
pub(super) async fn put_idempotency(pool: &AnyPool, record: &IdempotencyRecord) -> StoreResult<IdempotencyRecord> {
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(&record.scope)
    .bind(&record.key)
    .bind(&record.request_hash)
    .bind(&record.resource_id)
    .bind(record.created_at_ms)
    .execute(pool)
    .await
    .map_err(db_err)?;
    get_idempotency(pool, &record.scope, &record.key)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("idempotency key {}/{}", record.scope, record.key)))
}

fn token_from_row(row: &AnyRow) -> Result<Token, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "role".to_owned(),
        source: format!("unknown role {role:?}").into(),
    })?;
    Ok(Token {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role,
        token_hash: row.try_get("token_hash")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}

fn record_from_row(row: &AnyRow) -> Result<IdempotencyRecord, sqlx::Error> {
    Ok(IdempotencyRecord {
        scope: row.try_get("scope")?,
        key: row.try_get("key")?,
        request_hash: row.try_get("request_hash")?,
        resource_id: row.try_get("resource_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
