//! The server's ports: what it needs from a database, an object store and a runtime. Adapters
//! live in `store/`, `artifacts/` and `runtime/`; handlers only ever see these traits.

use std::future::Future;
use std::time::Duration;

use aether_core::deployment::DeploymentStatus;
use tokio::io::AsyncRead;

use crate::model::{App, Artifact, Deployment, DeploymentEvent, IdempotencyRecord, PendingUpload, PublicKey, Token};

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

    fn put_pending_upload(&self, upload: &PendingUpload) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_pending_upload(&self, storage_key: &str) -> impl Future<Output = StoreResult<Option<PendingUpload>>> + Send;
    fn delete_pending_upload(&self, storage_key: &str) -> impl Future<Output = StoreResult<()>> + Send;
    fn expired_pending_uploads(&self, now_ms: i64) -> impl Future<Output = StoreResult<Vec<PendingUpload>>> + Send;

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

    /// Inserts the deployment and its first event in one transaction.
    fn insert_deployment(
        &self,
        deployment: &Deployment,
        first_event: &DeploymentEvent,
    ) -> impl Future<Output = StoreResult<()>> + Send;
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
    /// Every app's deployments in `running`, oldest first: what a runtime restores on start.
    fn running_deployments(&self) -> impl Future<Output = StoreResult<Vec<Deployment>>> + Send;

    fn insert_token(&self, token: &Token) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_token(&self, token_hash: &str) -> impl Future<Output = StoreResult<Option<Token>>> + Send;
    /// Returns false when there is no such token.
    fn revoke_token(&self, id: &str, now_ms: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    fn count_tokens(&self) -> impl Future<Output = StoreResult<u64>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("upload exceeds the limit of {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    #[error("invalid upload: {0}")]
    Invalid(String),
    /// The bytes received do not hash to the digest the client declared; nothing was stored.
    #[error("the upload's SHA-256 is {actual}, not the declared {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("object storage error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type BlobResult<T> = Result<T, BlobError>;

/// Where a client sends bytes: a URL, a method and headers it must send along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

/// What a completed write holds, measured by the store itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size_bytes: u64,
    pub sha256: String,
}

/// Immutable blobs by key. Writes are all-or-nothing: a blob is visible only once complete.
pub trait ArtifactStore: Send + Sync + 'static {
    /// Streams `body` into `key`, failing with `TooLarge` past `max_bytes`, or with
    /// `DigestMismatch` when `expected_sha256` is given and differs; failures leave nothing.
    fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: Option<&str>,
    ) -> impl Future<Output = BlobResult<BlobInfo>> + Send;
    /// Size and SHA-256 of a stored blob, read back from the store; `None` when absent.
    fn stat(&self, key: &str) -> impl Future<Output = BlobResult<Option<BlobInfo>>> + Send;
    /// Size and SHA-256 the store measured itself when it wrote the blob (what completing an
    /// upload checks). Stores that keep no such record read the blob back, as `stat` does.
    fn recorded(&self, key: &str) -> impl Future<Output = BlobResult<Option<BlobInfo>>> + Send {
        self.stat(key)
    }
    fn open(&self, key: &str) -> impl Future<Output = BlobResult<Box<dyn AsyncRead + Send + Unpin>>> + Send;
    /// Deleting an absent blob is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = BlobResult<()>> + Send;
    fn presign_put(&self, key: &str, expires_in: Duration)
    -> impl Future<Output = BlobResult<PresignedRequest>> + Send;
    fn create_multipart(&self, key: &str) -> impl Future<Output = BlobResult<String>> + Send;
    fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> impl Future<Output = BlobResult<PresignedRequest>> + Send;
    /// Assembles the parts in order; every part's etag must match what the store returned.
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> impl Future<Output = BlobResult<()>> + Send;
    fn abort_multipart(&self, key: &str, upload_id: &str) -> impl Future<Output = BlobResult<()>> + Send;

    /// Receives a PUT to a presigned URL the server itself issued (`/uploads/{token}`); returns
    /// the bytes written and, for a multipart part, its ETag. Stores whose presigned URLs point
    /// elsewhere (S3) never get such requests.
    fn accept_presigned(
        &self,
        token: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> impl Future<Output = BlobResult<(u64, Option<String>)>> + Send {
        let _ = (token, body, max_bytes);
        async { Err(BlobError::NotFound("presigned upload".into())) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this runtime does not support {0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    Failed(String),
}

/// What a runtime is asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSpec {
    pub deployment_id: String,
    pub app_name: String,
    /// Lowercase hex SHA-256 of the artifact blob; the runtime re-verifies the bytes it fetches.
    pub digest: String,
    pub storage_key: String,
    /// Hex Ed25519 signature over `digest`, passed only when the control plane verified it when
    /// the deployment was created; the runtime checks it again against `public_keys`.
    pub signature: Option<String>,
    /// Hex public keys of the app's active signing keys.
    pub public_keys: Vec<String>,
    /// The port the release should listen on if it is free: a restored release keeps its URL.
    pub port: Option<u16>,
    /// Variables the release runs with, besides the ones the runtime sets itself (`PORT`).
    pub env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatus {
    pub running: bool,
    pub url: Option<String>,
}

/// Which output of a release a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One line a release wrote, stamped when the runtime read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at_ms: i64,
    pub deployment_id: String,
    pub stream: LogStream,
    pub text: String,
}

impl LogLine {
    /// `<RFC 3339 UTC, ms> <first 8 chars of the deployment id> <stdout|stderr>: <text>`, the
    /// form the logs route serves.
    pub fn render(&self) -> String {
        let short: String = self.deployment_id.chars().take(8).collect();
        format!("{} {short} {}: {}", aether_core::api::rfc3339_ms(self.at_ms), self.stream.as_str(), self.text)
    }
}

/// Which of an app's log lines to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many lines, the newest ones.
    pub tail: usize,
    /// Only lines stamped at or after this Unix millisecond.
    pub since_ms: Option<i64>,
    /// Only lines of this deployment.
    pub deployment_id: Option<String>,
}

impl LogQuery {
    pub fn matches(&self, line: &LogLine) -> bool {
        self.since_ms.is_none_or(|since| line.at_ms >= since)
            && self.deployment_id.as_deref().is_none_or(|id| line.deployment_id == id)
    }
}

/// Rendered log lines as they arrive; ends when the runtime stops publishing them.
pub type LogLines = futures_util::stream::BoxStream<'static, String>;

/// Runs releases. `apply` returns once the release serves (its URL) or failed to start.
pub trait Runtime: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn apply(&self, release: &ReleaseSpec) -> impl Future<Output = Result<Option<String>, RuntimeError>> + Send;
    /// Idempotent: stopping an unknown or already stopped deployment succeeds.
    fn stop(&self, deployment_id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn status(&self, deployment_id: &str) -> impl Future<Output = Result<ReleaseStatus, RuntimeError>> + Send;
    /// The app's recorded log lines that match `query`, oldest first, rendered with
    /// [`LogLine::render`].
    fn logs(&self, app_name: &str, query: &LogQuery) -> impl Future<Output = Result<Vec<String>, RuntimeError>> + Send;
    /// What [`Runtime::logs`] returns for `query`, then every later line of the app that
    /// matches it, with nothing lost or repeated in between.
    fn follow(&self, app_name: &str, query: &LogQuery) -> impl Future<Output = Result<LogLines, RuntimeError>> + Send;
    /// Stops every release this runtime started; called once the server stops serving.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
