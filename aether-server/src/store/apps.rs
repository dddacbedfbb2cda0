//! Applications and their signing keys.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{conflict_or_db, db_err, flag};
use crate::model::{App, PublicKey};
use crate::ports::StoreResult;

pub(super) async fn create_app(pool: &AnyPool, id: &str, name: &str, now_ms: i64) -> StoreResult<App> {
    sqlx::query("INSERT INTO applications (id, name, created_at_ms) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(now_ms)
        .execute(pool)
        .await
        .map_err(|e| conflict_or_db(e, || format!("app '{name}'")))?;
    Ok(App { id: id.to_owned(), name: name.to_owned(), created_at_ms: now_ms })
}

pub(super) async fn get_app(pool: &AnyPool, name: &str) -> StoreResult<Option<App>> {
    let row = sqlx::query("SELECT id, name, created_at_ms FROM applications WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(app_from_row).transpose().map_err(db_err)
}

/// Sorted by name, the order people scan a list of apps in.
pub(super) async fn list_apps(pool: &AnyPool) -> StoreResult<Vec<App>> {
    let rows = sqlx::query("SELECT id, name, created_at_ms FROM applications ORDER BY name ASC")
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(app_from_row).collect::<Result<_, _>>().map_err(db_err)
}

pub(super) async fn add_public_key(pool: &AnyPool, key: &PublicKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO public_keys (id, app_id, public_key_hex, active, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.id)
    .bind(&key.app_id)
    .bind(&key.public_key_hex)
    .bind(key.active)
    .bind(key.created_at_ms)
    .execute(pool)
    .await
    .map_err(|e| conflict_or_db(e, || format!("public key {} of app {}", key.public_key_hex, key.app_id)))?;
    Ok(())
}

/// Oldest first, so the order is stable across calls.
pub(super) async fn active_public_keys(pool: &AnyPool, app_id: &str) -> StoreResult<Vec<PublicKey>> {
    // `active = $2` with a bound `true` works on both backends: PostgreSQL compares
    // booleans, SQLite compares the stored 1 with the bound 1.
    let rows = sqlx::query(
        "SELECT id, app_id, public_key_hex, active, created_at_ms FROM public_keys \
         WHERE app_id = $1 AND active = $2 ORDER BY created_at_ms ASC, id ASC",
    )
    .bind(app_id)
    .bind(true)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(key_from_row).collect::<Result<_, _>>().map_err(db_err)
}

fn app_from_row(row: &AnyRow) -> Result<App, sqlx::Error> {
    Ok(App { id: row.try_get("id")?, name: row.try_get("name")?, created_at_ms: row.try_get("created_at_ms")? })
}

fn key_from_row(row: &AnyRow) -> Result<PublicKey, sqlx::Error> {
    Ok(PublicKey {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        public_key_hex: row.try_get("public_key_hex")?,
        active: flag(row, "active")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
