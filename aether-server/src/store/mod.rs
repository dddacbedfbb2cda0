//! Metadata store adapters: one SQL implementation of [`MetadataStore`] for SQLite and
//! PostgreSQL.
//!
//! Both backends go through sqlx's `Any` driver so every query is written once. The SQL sticks
//! to what both dialects accept (`$N` placeholders, `ON CONFLICT ... DO NOTHING`, row-by-row
//! inserts); the remaining differences live in the migrations, which exist once per backend,
//! and in how booleans come back (see [`flag`]).
//!
//! Referential integrity is the database's job: deleting an artifact that a deployment still
//! references fails with a foreign-key error (reported as [`StoreError::Database`]), so callers
//! check [`MetadataStore::artifact_in_use`] first and treat the error as a lost race.

mod apps;
mod artifacts;
mod auth;
mod deployments;
mod leases;
mod uploads;

use std::path::Path;

use aether_core::deployment::DeploymentStatus;
use sqlx::any::{AnyPoolOptions, AnyRow, AnyTypeInfoKind};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row, ValueRef as _};

use crate::model::{App, Artifact, Deployment, DeploymentEvent, IdempotencyRecord, PublicKey, Token, Upload};
use crate::ports::{MetadataStore, StoreError, StoreResult};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The metadata store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

/// How long a request waits for a database connection before the store reports it unavailable.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl SqlStore {
    /// Opens (creating it and its directory if missing) the SQLite database at `path`, in WAL
    /// mode with foreign keys enforced.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|e| StoreError::Database(Box::new(e)))?;
        }
        let url = sqlite_url(path)?;
        let pool = AnyPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection to a local file does not die between queries; a ping before each
            // checkout would only add a round trip to the connection's worker thread.
            .test_before_acquire(false)
            // The Any driver builds SQLite options from the URL alone, which cannot carry
            // pragmas. sqlx's defaults happen to match these today; setting them here keeps
            // the store's guarantees independent of those defaults.
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Wait up to 5 s for another writer instead of failing with SQLITE_BUSY.
                    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(db_err)?;
        // WAL is a property of the file, so setting it once suffices; doing it on every
        // connection would need a lock that the busy timeout does not wait for.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL").fetch_one(&pool).await.map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, path = %path.display(), "SQLite refused WAL mode; concurrent readers will block writers");
        }
        Ok(Self { pool, backend: Backend::Sqlite })
    }

    /// Connects to PostgreSQL at `url` (`postgres://` or `postgresql://`).
    pub async fn open_postgres(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        // A down database must turn into a prompt 503, not a request stalled for sqlx's
        // default 30 s of reconnect attempts. No ping before each checkout: it doubled the
        // round trips of every query, and a connection that died with the database fails its
        // query (a 503 the client retries) and is dropped from the pool then.
        let pool = AnyPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(db_err)?;
        Ok(Self { pool, backend: Backend::Postgres })
    }

    /// Opens the store named by `url`: `sqlite://<path>` (or `sqlite:<path>`, without query
    /// parameters: the connection options are fixed) or a PostgreSQL URL.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path == ":memory:" {
                // Each pooled connection would get its own empty database.
                return Err(config_err("in-memory SQLite is not supported; give a file path"));
            }
            if path.contains('?') {
                return Err(config_err("SQLite URLs take no parameters; the store sets its own options"));
            }
            return Self::open_sqlite(Path::new(path)).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url).await;
        }
        Err(config_err("unsupported database URL; expected sqlite:// or postgres://"))
    }

    /// Applies the embedded migrations of this store's backend that are not applied yet.
    ///
    /// On PostgreSQL the migrator holds an advisory lock while it runs, so replicas starting
    /// together migrate once. Migrations newer than this binary are tolerated: an older replica
    /// keeps serving while a newer one migrates (migrations only ever add to the schema that
    /// running versions use; see migrations/README.md).
    pub async fn migrate(&self) -> StoreResult<()> {
        let embedded = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let migrator = Migrator {
            migrations: std::borrow::Cow::Borrowed(embedded.migrations.as_ref()),
            ignore_missing: true,
            locking: true,
            ..Migrator::DEFAULT
        };
        migrator.run(&self.pool).await.map_err(|e| StoreError::Database(Box::new(e)))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Builds the URL for a SQLite file. The driver percent-decodes the path, so the characters
/// that would otherwise end it or be decoded (`%`, `?`, `#`) are encoded here.
fn sqlite_url(path: &Path) -> StoreResult<String> {
    let absolute = std::path::absolute(path).map_err(|e| StoreError::Database(Box::new(e)))?;
    let text = absolute.to_str().ok_or_else(|| config_err("the SQLite path is not valid UTF-8"))?;
    let encoded = text.replace('%', "%25").replace('?', "%3F").replace('#', "%23");
    Ok(format!("sqlite://{encoded}?mode=rwc"))
}

fn config_err(message: &'static str) -> StoreError {
    StoreError::Database(Box::new(sqlx::Error::Configuration(message.into())))
}

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// Maps a unique-constraint violation to `Conflict(what)`, anything else to `Database`.
fn conflict_or_db(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(inner) if inner.is_unique_violation() => StoreError::Conflict(what()),
        _ => db_err(e),
    }
}

/// Reads a boolean column. PostgreSQL returns BOOLEAN values, SQLite returns 0/1 integers, and
/// the `Any` driver decodes neither into the other, so the value's own type decides.
fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    let raw = row.try_get_raw(column)?;
    let is_bool = !raw.is_null() && raw.type_info().kind() == AnyTypeInfoKind::Bool;
    if is_bool { row.try_get::<bool, _>(column) } else { Ok(row.try_get::<i64, _>(column)? != 0) }
}

fn status(row: &AnyRow, column: &str) -> Result<DeploymentStatus, sqlx::Error> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
}

fn optional_status(row: &AnyRow, column: &str) -> Result<Option<DeploymentStatus>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| t.parse().map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) }))
        .transpose()
}

impl MetadataStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(db_err)
    }

    async fn create_app(&self, id: &str, name: &str, now_ms: i64) -> StoreResult<App> {
        apps::create_app(&self.pool, id, name, now_ms).await
    }

    async fn get_app(&self, name: &str) -> StoreResult<Option<App>> {
        apps::get_app(&self.pool, name).await
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        apps::list_apps(&self.pool).await
    }

    async fn add_public_key(&self, key: &PublicKey) -> StoreResult<()> {
        apps::add_public_key(&self.pool, key).await
    }

    async fn active_public_keys(&self, app_id: &str) -> StoreResult<Vec<PublicKey>> {
        apps::active_public_keys(&self.pool, app_id).await
    }

    async fn insert_artifact(&self, artifact: &Artifact) -> StoreResult<(Artifact, bool)> {
        artifacts::insert_artifact(&self.pool, artifact).await
    }

    async fn get_artifact(&self, digest: &str) -> StoreResult<Option<Artifact>> {
        artifacts::get_artifact(&self.pool, digest).await
    }

    async fn get_artifact_by_id(&self, id: &str) -> StoreResult<Option<Artifact>> {
        artifacts::get_artifact_by_id(&self.pool, id).await
    }

    async fn list_artifacts(&self, before: Option<(i64, String)>, limit: u32) -> StoreResult<Vec<Artifact>> {
        artifacts::list_artifacts(&self.pool, before, limit).await
    }

    async fn delete_artifact(&self, id: &str) -> StoreResult<()> {
        artifacts::delete_artifact(&self.pool, id).await
    }

    async fn link_artifact(&self, app_id: &str, artifact_id: &str, now_ms: i64) -> StoreResult<()> {
        artifacts::link_artifact(&self.pool, app_id, artifact_id, now_ms).await
    }

    async fn app_artifacts(&self, app_id: &str) -> StoreResult<Vec<Artifact>> {
        artifacts::app_artifacts(&self.pool, app_id).await
    }

    async fn artifact_in_use(&self, artifact_id: &str) -> StoreResult<bool> {
        artifacts::artifact_in_use(&self.pool, artifact_id).await
    }

    async fn try_lease(&self, name: &str, owner: &str, now_ms: i64, expires_at_ms: i64) -> StoreResult<bool> {
        leases::try_lease(&self.pool, name, owner, now_ms, expires_at_ms).await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> StoreResult<()> {
        leases::release(&self.pool, name, owner).await
    }

    async fn clear_leases(&self) -> StoreResult<()> {
        leases::clear(&self.pool).await
    }

    async fn insert_upload(&self, upload: &Upload) -> StoreResult<()> {
        uploads::insert(&self.pool, upload).await
    }

    async fn get_upload(&self, id: &str) -> StoreResult<Option<Upload>> {
        uploads::get(&self.pool, id).await
    }

    async fn latest_upload(&self, app_id: &str, digest: &str) -> StoreResult<Option<Upload>> {
        uploads::latest(&self.pool, app_id, digest).await
    }

    async fn delete_upload(&self, id: &str) -> StoreResult<bool> {
        uploads::delete(&self.pool, id).await
    }

    async fn expired_uploads(&self, now_ms: i64) -> StoreResult<Vec<Upload>> {
        uploads::expired(&self.pool, now_ms).await
    }

    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        auth::get_idempotency(&self.pool, scope, key).await
    }

    async fn put_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<IdempotencyRecord> {
        auth::put_idempotency(&self.pool, record).await
    }

    async fn insert_deployment(
        &self,
        deployment: &Deployment,
        first_event: &DeploymentEvent,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        deployments::insert_deployment(&self.pool, deployment, first_event, idempotency).await
    }

    async fn get_deployment(&self, id: &str) -> StoreResult<Option<Deployment>> {
        deployments::get_deployment(&self.pool, id).await
    }

    async fn list_deployments(&self, app_id: &str) -> StoreResult<Vec<Deployment>> {
        deployments::list_deployments(&self.pool, app_id).await
    }

    async fn deployment_events(&self, deployment_id: &str) -> StoreResult<Vec<DeploymentEvent>> {
        deployments::deployment_events(&self.pool, deployment_id).await
    }

    async fn apply_transition(
        &self,
        deployment: &Deployment,
        expected: DeploymentStatus,
        event: &DeploymentEvent,
    ) -> StoreResult<bool> {
        deployments::apply_transition(&self.pool, deployment, expected, event).await
    }

    async fn running_deployment(&self, app_id: &str) -> StoreResult<Option<Deployment>> {
        deployments::running_deployment(&self.pool, app_id).await
    }

    async fn deployments_with_status(&self, status: DeploymentStatus) -> StoreResult<Vec<Deployment>> {
        deployments::deployments_with_status(&self.pool, status).await
    }

    async fn insert_token(&self, token: &Token) -> StoreResult<()> {
        auth::insert_token(&self.pool, token).await
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<Token>> {
        auth::find_token(&self.pool, token_hash).await
    }

    async fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        auth::revoke_token(&self.pool, id, now_ms).await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        auth::count_tokens(&self.pool).await
    }
}
