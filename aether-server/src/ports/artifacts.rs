//! The artifact-store port: immutable, content-addressed blobs, and uploads that are staged
//! privately before they become one.
//!
//! An upload never writes where artifacts live. Each upload gets a staging area of its own
//! (named by the upload's id); clients write there through presigned URLs, the control plane
//! measures what arrived, and only a verified upload is published to its content-addressed key.
//! A published blob is only ever removed by [`ArtifactStore::delete`] (retention, operators);
//! no upload request writes or deletes it.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncRead;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("upload exceeds the limit of {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    #[error("invalid upload: {0}")]
    Invalid(String),
    /// A presigned URL that is forged, expired or used for what it does not grant.
    #[error("{0}")]
    Denied(String),
    /// The request contradicts what was uploaded (a part missing or of other bytes).
    #[error("{0}")]
    Conflict(String),
    /// The bytes received do not hash to the digest the client declared; nothing was stored.
    #[error("the upload's SHA-256 is {actual}, not the declared {expected}")]
    DigestMismatch { expected: String, actual: String },
    /// The store's disk is full: the upload did not fit, and nothing of it was kept.
    #[error("no space left for the upload: {0}")]
    InsufficientStorage(String),
    /// The object store cannot be reached or failed; a retry may help.
    #[error("object storage error: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl BlobError {
    pub fn backend(message: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend { message: message.into(), source: Some(source.into()) }
    }
}

pub type BlobResult<T> = Result<T, BlobError>;

/// Where a client sends bytes (or fetches them): a URL, a method and headers it must send
/// along. Presigned URLs carry their own authorisation; no bearer token goes with them.
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

/// An upload as the client declared it when it asked for a URL. `id` names the upload's
/// private staging area: a canonical UUID chosen by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedUpload<'a> {
    pub id: &'a str,
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the bytes the client will send.
    pub sha256: &'a str,
}

/// What the store measured of a staged upload. A field is `None` when the store's
/// configuration skips that check (the S3 adapter's `AETHER_VERIFY_REMOTE_*` toggles); the
/// local store always measures both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measured {
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
}

/// A staging area found in the store, for the garbage collector: the upload it belongs to,
/// its unfinished multipart upload if any, and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedEntry {
    pub upload_id: String,
    pub multipart_id: Option<String>,
    pub modified: SystemTime,
}

/// Immutable blobs by key, and staged uploads. Every write is all-or-nothing: a blob is
/// visible under its key only once complete.
pub trait ArtifactStore: Send + Sync + 'static {
    /// Whether the store answers; `GET /readyz` fails while it does not.
    fn ping(&self) -> impl Future<Output = BlobResult<()>> + Send;

    /// The size of a published blob, without reading it; `None` when absent.
    fn head(&self, key: &str) -> impl Future<Output = BlobResult<Option<u64>>> + Send;
    fn open(&self, key: &str) -> impl Future<Output = BlobResult<Box<dyn AsyncRead + Send + Unpin>>> + Send;
    /// Removes a published blob (retention, operators); deleting an absent blob is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = BlobResult<()>> + Send;
    /// A URL from which anyone holding it may download the blob until it expires.
    fn presign_get(&self, key: &str, expires_in: Duration)
    -> impl Future<Output = BlobResult<PresignedRequest>> + Send;

    /// Streams `body` into the staging area of upload `upload_id` (the legacy direct upload,
    /// whose size is not declared in advance), failing with `TooLarge` past `max_bytes` or with
    /// `DigestMismatch` unless it hashes to `expected_sha256`; nothing is staged unless it
    /// verified.
    fn put_staged(
        &self,
        upload_id: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: &str,
    ) -> impl Future<Output = BlobResult<BlobInfo>> + Send;

    /// Prepares the upload's staging area and returns the URL for one PUT of its bytes. The
    /// URL accepts exactly the declared size (and, where the store can check it at the door,
    /// the declared SHA-256), and writes only into the staging area.
    fn presign_upload(
        &self,
        upload: &StagedUpload<'_>,
        expires_in: Duration,
    ) -> impl Future<Output = BlobResult<PresignedRequest>> + Send;
    /// Starts a multipart upload into the staging area; returns the store's multipart id.
    fn create_multipart(&self, upload: &StagedUpload<'_>) -> impl Future<Output = BlobResult<String>> + Send;
    fn presign_part(
        &self,
        upload_id: &str,
        multipart_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> impl Future<Output = BlobResult<PresignedRequest>> + Send;
    /// Assembles the parts, in order, into the staged object; every part's ETag must match
    /// what the store returned for it. On error the parts stay, so a corrected list may follow.
    fn complete_multipart(
        &self,
        upload_id: &str,
        multipart_id: &str,
        parts: &[(u32, String)],
    ) -> impl Future<Output = BlobResult<()>> + Send;

    /// Measures the staged object (`NotFound` when nothing was uploaded yet).
    fn measure_staged(&self, upload: &StagedUpload<'_>) -> impl Future<Output = BlobResult<Measured>> + Send;
    /// Makes the staged object the blob at `key` and clears the staging area. Callers publish
    /// only verified uploads of digests that are not registered yet.
    fn publish(&self, upload_id: &str, key: &str) -> impl Future<Output = BlobResult<()>> + Send;
    /// Removes whatever the upload staged (its object, its unfinished multipart upload), and
    /// makes sure its URLs can no longer write anything that is read. Idempotent.
    fn discard(&self, upload_id: &str, multipart_id: Option<&str>) -> impl Future<Output = BlobResult<()>> + Send;
    /// Removes every trace of an upload's staging area, markers included. Only for uploads
    /// whose presigned URLs have expired (the garbage collector), since a store may rely on
    /// what [`ArtifactStore::discard`] leaves to refuse a URL that is used again.
    fn purge_staged(&self, upload_id: &str, multipart_id: Option<&str>) -> impl Future<Output = BlobResult<()>> + Send;
    /// Every staging area in the store, for the garbage collector to match against the
    /// uploads the metadata store still knows.
    fn list_staged(&self) -> impl Future<Output = BlobResult<Vec<StagedEntry>>> + Send;

    /// True when presigned URLs point back at this server (`/uploads/{token}` and
    /// `/downloads/{token}` are then mounted and handled by [`ArtifactStore::accept_upload`]
    /// and [`ArtifactStore::serve_download`]).
    fn serves_presigned_urls(&self) -> bool {
        false
    }
    /// Receives a PUT to a presigned URL the server itself issued; returns the bytes written
    /// and, for a multipart part, its ETag.
    fn accept_upload(
        &self,
        token: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> impl Future<Output = BlobResult<(u64, Option<String>)>> + Send {
        let _ = (token, body, max_bytes);
        async { Err(BlobError::NotFound("presigned upload".into())) }
    }
    /// Opens the blob a presigned download URL the server issued names; returns its size too.
    fn serve_download(
        &self,
        token: &str,
    ) -> impl Future<Output = BlobResult<(u64, Box<dyn AsyncRead + Send + Unpin>)>> + Send {
        let _ = token;
        async { Err(BlobError::NotFound("presigned download".into())) }
    }
}
