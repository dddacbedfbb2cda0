//! The server's ports: what it needs from a database, an object store and a runtime. Adapters
//! live in `store/`, `artifacts/` and `runtime/`; handlers only ever see these traits.

mod artifacts;
mod runtime;

use std::future::Future;

use aether_core::deployment::DeploymentStatus;

pub use artifacts::*;
pub use runtime::*;

use crate::model::{App, Artifact, Deployment, DeploymentEvent, IdempotencyRecord, PublicKey, Token, Upload};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (duplicate app name, key, token hash...).
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The database cannot be reached or answered with an error.
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Apps, artifacts, deployments and their events, keys, tokens, pending uploads and
/// idempotency records. Times are Unix milliseconds chosen by the caller.
pub trait MetadataStore: Send + Sync + 'static {
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// `Conflict` when the name is taken.
    fn create_app(&self, id: &str, name: &str, now_ms: i64) -> impl Future<Output = StoreResult<App>> + Send;
    fn get_app(&self, name: &str) -> impl Future<Output = StoreResult<Option<App>>> + Send;
    fn list_apps(&self) -> impl Future<Output = StoreResult<Vec<App>>> + Send;

    /// `Conflict` when the app already has this key.
    fn add_public_key(&self, key: &PublicKey) -> impl Future<Output = StoreResult<()>> + Send;
    fn active_public_keys(&self, app_id: &str) -> impl Future<Output = StoreResult<Vec<PublicKey>>> + Send;

    /// Inserts the artifact unless its digest is already stored; returns the stored row and
    /// whether this call created it.
    fn insert_artifact(&self, artifact: &Artifact) -> impl Future<Output = StoreResult<(Artifact, bool)>> + Send;
    fn get_artifact(&self, digest: &str) -> impl Future<Output = StoreResult<Option<Artifact>>> + Send;
    fn get_artifact_by_id(&self, id: &str) -> impl Future<Output = StoreResult<Option<Artifact>>> + Send;
    /// Newest first; `before` is the `created_at_ms`/`id` cursor of the last row of the previous page.
    fn list_artifacts(
        &self,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Artifact>>> + Send;
    /// `NotFound` when there is no such artifact, or a pending, deploying or running deployment
    /// uses it (it is then kept).
    fn delete_artifact(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records that an app uploaded (or uses) an artifact; idempotent.
    fn link_artifact(
        &self,
        app_id: &str,
        artifact_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The app's linked artifacts, oldest first.
    fn app_artifacts(&self, app_id: &str) -> impl Future<Output = StoreResult<Vec<Artifact>>> + Send;
    /// True when a deployment in `pending`, `deploying` or `running` uses the artifact.
    fn artifact_in_use(&self, artifact_id: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Takes lease `name` for `owner` until `expires_at_ms` when it is free, expired at
    /// `now_ms`, or already `owner`'s (renewing it); returns whether `owner` holds it now.
    fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Gives the lease up if `owner` holds it.
    fn release_lease(&self, name: &str, owner: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Forgets every lease (a single-replica server at start).
    fn clear_leases(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// `Conflict` when the id is taken.
    fn insert_upload(&self, upload: &Upload) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_upload(&self, id: &str) -> impl Future<Output = StoreResult<Option<Upload>>> + Send;
    /// The app's newest single-PUT upload of `digest`: what a completion that names no upload
    /// (older clients) completes.
    fn latest_upload(&self, app_id: &str, digest: &str) -> impl Future<Output = StoreResult<Option<Upload>>> + Send;
    /// Returns whether a row was deleted, so that of two racing completions only one proceeds
    /// to publish. Deleting an absent upload is not an error.
    fn delete_upload(&self, id: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Uploads whose deadline is at or before `now_ms`, the oldest deadline first.
    fn expired_uploads(&self, now_ms: i64) -> impl Future<Output = StoreResult<Vec<Upload>>> + Send;

    fn get_idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<IdempotencyRecord>>> + Send;
    /// Returns the record now stored: the given one, or the earlier one when the key was taken.
    fn put_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> impl Future<Output = StoreResult<IdempotencyRecord>> + Send;

    /// Inserts the deployment, its first event and (when given) its idempotency record in one
    /// transaction. When the idempotency key is taken already, nothing is inserted and the
    /// record holding it is returned: concurrent identical requests create one deployment.
    fn insert_deployment(
        &self,
        deployment: &Deployment,
        first_event: &DeploymentEvent,
        idempotency: Option<&IdempotencyRecord>,
    ) -> impl Future<Output = StoreResult<Option<IdempotencyRecord>>> + Send;
    fn get_deployment(&self, id: &str) -> impl Future<Output = StoreResult<Option<Deployment>>> + Send;
    /// Newest first.
    fn list_deployments(&self, app_id: &str) -> impl Future<Output = StoreResult<Vec<Deployment>>> + Send;
    /// Oldest first.
    fn deployment_events(&self, deployment_id: &str) -> impl Future<Output = StoreResult<Vec<DeploymentEvent>>> + Send;
    /// Writes the deployment's new state and the event in one transaction, but only if the
    /// stored status is still `expected` (optimistic concurrency); returns whether it applied.
    fn apply_transition(
        &self,
        deployment: &Deployment,
        expected: DeploymentStatus,
        event: &DeploymentEvent,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The app's deployment in `running`, if any (there is at most one).
    fn running_deployment(&self, app_id: &str) -> impl Future<Output = StoreResult<Option<Deployment>>> + Send;
    /// Every app's deployments in `status`, oldest first: what the control plane reconciles
    /// when it starts.
    fn deployments_with_status(
        &self,
        status: DeploymentStatus,
    ) -> impl Future<Output = StoreResult<Vec<Deployment>>> + Send;

    fn insert_token(&self, token: &Token) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_token(&self, token_hash: &str) -> impl Future<Output = StoreResult<Option<Token>>> + Send;
    /// Returns false when there is no such token.
    fn revoke_token(&self, id: &str, now_ms: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    fn count_tokens(&self) -> impl Future<Output = StoreResult<u64>> + Send;
}
