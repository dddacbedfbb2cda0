//! Uploads in progress: what was presigned or started as multipart and not completed yet.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};

use super::{conflict_or_db, db_err};
use crate::model::Upload;
use crate::ports::StoreResult;

/// `SELECT <every column> FROM uploads <rest>`, as the static string sqlx requires.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, app_id, digest, size_bytes, multipart_id, created_at_ms, expires_at_ms FROM uploads ",
            $rest
        )
    };
}

pub(super) async fn insert(pool: &AnyPool, upload: &Upload) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO uploads (id, app_id, digest, size_bytes, multipart_id, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&upload.id)
    .bind(&upload.app_id)
    .bind(&upload.digest)
    .bind(i64::try_from(upload.size_bytes).map_err(|e| db_err(sqlx::Error::Encode(Box::new(e))))?)
    .bind(upload.multipart_id.as_deref())
    .bind(upload.created_at_ms)
    .bind(upload.expires_at_ms)
    .execute(pool)
    .await
    .map_err(|e| conflict_or_db(e, || format!("upload {}", upload.id)))?;
    Ok(())
}

pub(super) async fn get(pool: &AnyPool, id: &str) -> StoreResult<Option<Upload>> {
    let row = sqlx::query(select!("WHERE id = $1")).bind(id).fetch_optional(pool).await.map_err(db_err)?;
    row.as_ref().map(from_row).transpose().map_err(db_err)
}

pub(super) async fn latest(pool: &AnyPool, app_id: &str, digest: &str) -> StoreResult<Option<Upload>> {
    let row = sqlx::query(select!(
        "WHERE app_id = $1 AND digest = $2 AND multipart_id IS NULL ORDER BY created_at_ms DESC, id DESC LIMIT 1"
    ))
    .bind(app_id)
    .bind(digest)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.as_ref().map(from_row).transpose().map_err(db_err)
}

pub(super) async fn delete(pool: &AnyPool, id: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(pool).await.map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn expired(pool: &AnyPool, now_ms: i64) -> StoreResult<Vec<Upload>> {
    let rows = sqlx::query(select!("WHERE expires_at_ms <= $1 ORDER BY expires_at_ms ASC, id ASC"))
        .bind(now_ms)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(db_err)
}

fn from_row(row: &AnyRow) -> Result<Upload, sqlx::Error> {
    let size_bytes: i64 = row.try_get("size_bytes")?;
    Ok(Upload {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        digest: row.try_get("digest")?,
        size_bytes: u64::try_from(size_bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        multipart_id: row.try_get("multipart_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}
