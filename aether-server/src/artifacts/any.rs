//! The artifact store the server was configured with (`AETHER_STORAGE_MODE`), as one type: the
//! server is built once over it instead of once per adapter.

use std::time::Duration;

use tokio::io::AsyncRead;

use super::local::LocalArtifactStore;
use super::s3::S3ArtifactStore;
use crate::ports::{ArtifactStore, BlobInfo, BlobResult, Measured, PresignedRequest, StagedEntry, StagedUpload};

#[derive(Debug)]
pub enum AnyArtifactStore {
    Local(LocalArtifactStore),
    S3(S3ArtifactStore),
}

impl From<LocalArtifactStore> for AnyArtifactStore {
    fn from(store: LocalArtifactStore) -> Self {
        Self::Local(store)
    }
}

impl From<S3ArtifactStore> for AnyArtifactStore {
    fn from(store: S3ArtifactStore) -> Self {
        Self::S3(store)
    }
}

impl AnyArtifactStore {
    /// The local store, whose temp files the server collects itself.
    pub fn local(&self) -> Option<&LocalArtifactStore> {
        match self {
            Self::Local(store) => Some(store),
            Self::S3(_) => None,
        }
    }
}

/// Forwards a call to whichever adapter this is.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Self::Local(store) => store.$method($($arg),*).await,
            Self::S3(store) => store.$method($($arg),*).await,
        }
    };
}

impl ArtifactStore for AnyArtifactStore {
    async fn ping(&self) -> BlobResult<()> {
        dispatch!(self.ping())
    }

    async fn head(&self, key: &str) -> BlobResult<Option<u64>> {
        dispatch!(self.head(key))
    }

    async fn open(&self, key: &str) -> BlobResult<Box<dyn AsyncRead + Send + Unpin>> {
        dispatch!(self.open(key))
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        dispatch!(self.delete(key))
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> BlobResult<PresignedRequest> {
        dispatch!(self.presign_get(key, expires_in))
    }

    async fn put_staged(
        &self,
        upload_id: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: &str,
    ) -> BlobResult<BlobInfo> {
        dispatch!(self.put_staged(upload_id, body, max_bytes, expected_sha256))
    }

    async fn presign_upload(&self, upload: &StagedUpload<'_>, expires_in: Duration) -> BlobResult<PresignedRequest> {
        dispatch!(self.presign_upload(upload, expires_in))
    }

    async fn create_multipart(&self, upload: &StagedUpload<'_>) -> BlobResult<String> {
        dispatch!(self.create_multipart(upload))
    }

    async fn presign_part(
        &self,
        upload_id: &str,
        multipart_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> BlobResult<PresignedRequest> {
        dispatch!(self.presign_part(upload_id, multipart_id, part_number, expires_in))
    }

    async fn complete_multipart(&self, upload_id: &str, multipart_id: &str, parts: &[(u32, String)]) -> BlobResult<()> {
        dispatch!(self.complete_multipart(upload_id, multipart_id, parts))
    }

    async fn measure_staged(&self, upload: &StagedUpload<'_>) -> BlobResult<Measured> {
        dispatch!(self.measure_staged(upload))
    }

    async fn publish(&self, upload_id: &str, key: &str) -> BlobResult<()> {
        dispatch!(self.publish(upload_id, key))
    }

    async fn discard(&self, upload_id: &str, multipart_id: Option<&str>) -> BlobResult<()> {
        dispatch!(self.discard(upload_id, multipart_id))
    }

    async fn purge_staged(&self, upload_id: &str, multipart_id: Option<&str>) -> BlobResult<()> {
        dispatch!(self.purge_staged(upload_id, multipart_id))
    }

    async fn list_staged(&self) -> BlobResult<Vec<StagedEntry>> {
        dispatch!(self.list_staged())
    }

    fn serves_presigned_urls(&self) -> bool {
        match self {
            Self::Local(store) => store.serves_presigned_urls(),
            Self::S3(store) => store.serves_presigned_urls(),
        }
    }

    async fn accept_upload(
        &self,
        token: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<(u64, Option<String>)> {
        dispatch!(self.accept_upload(token, body, max_bytes))
    }

    async fn serve_download(&self, token: &str) -> BlobResult<(u64, Box<dyn AsyncRead + Send + Unpin>)> {
        dispatch!(self.serve_download(token))
    }
}
