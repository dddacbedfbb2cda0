//! An [`ArtifactStore`] on a local directory. Presigned URLs point back at the server
//! (`{public_base_url}/uploads/{token}` and `/downloads/{token}`), whose routes call
//! [`ArtifactStore::accept_upload`] and [`ArtifactStore::serve_download`].
//!
//! Layout under the root: `objects/<key>` holds published blobs; `staging/<upload id>/` is one
//! upload's private area (`blob`, the measurements taken while writing it in `blob.record`,
//! and `parts/<number>` for multipart uploads); `tmp/` holds writes in progress. Every
//! publication is a rename, so readers never see partial bytes, and a write through a
//! presigned URL lands only while its upload's staging directory exists: once the upload was
//! completed or discarded, its URLs write nothing.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWriteExt as _};

use super::fsio::{self, CopyError, TempFile};
use super::presign::{self, Grant, PresignClaim, PresignError};
use super::record;
use super::{validate_key, validate_upload_id};
use crate::ports::{
    ArtifactStore, BlobError, BlobInfo, BlobResult, Measured, PresignedRequest, StagedEntry, StagedUpload,
};

/// Longest accepted object key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

const BLOB: &str = "blob";
const BLOB_RECORD: &str = "blob.record";

pub struct LocalArtifactStore {
    root: PathBuf,
    public_base_url: String,
    signing_secret: [u8; 32],
}

impl fmt::Debug for LocalArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalArtifactStore")
            .field("root", &self.root)
            .field("public_base_url", &self.public_base_url)
            .field("signing_secret", &"<redacted>")
            .finish()
    }
}

impl LocalArtifactStore {
    /// Creates `objects/`, `staging/` and `tmp/` under `root` if needed.
    /// `public_base_url` is where clients reach this server, e.g. `https://aether.example`.
    pub fn new(root: PathBuf, public_base_url: String, signing_secret: [u8; 32]) -> io::Result<Self> {
        let store = Self { public_base_url: public_base_url.trim_end_matches('/').to_owned(), root, signing_secret };
        for dir in [store.objects_dir(), store.staging_root(), store.tmp_dir()] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Verifies a token from `PUT /uploads/{token}` and stores `body` where it grants.
    pub async fn accept_upload_at(
        &self,
        token: &str,
        now_unix_s: u64,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<(BlobInfo, Option<String>)> {
        let claim = presign::verify(token, &self.signing_secret, now_unix_s).map_err(presign_error)?;
        match claim.grant {
            Grant::Upload { upload_id, size_bytes, sha256 } => {
                let declared = StagedUpload { id: &upload_id, size_bytes, sha256: &sha256 };
                let info = self.stage_object(&declared, body, max_bytes).await?;
                Ok((info, None))
            }
            Grant::Part { upload_id, part_number } => {
                let info = self.multipart_put_part(&upload_id, part_number, body, max_bytes).await?;
                let etag = format!("\"{}\"", info.sha256);
                Ok((info, Some(etag)))
            }
            Grant::Download { .. } => Err(BlobError::Denied("this URL is for downloading, not uploading".into())),
        }
    }

    /// Verifies a token from `GET /downloads/{token}` and opens the blob it grants.
    pub async fn serve_download_at(
        &self,
        token: &str,
        now_unix_s: u64,
    ) -> BlobResult<(u64, Box<dyn AsyncRead + Send + Unpin>)> {
        let claim = presign::verify(token, &self.signing_secret, now_unix_s).map_err(presign_error)?;
        let Grant::Download { key } = claim.grant else {
            return Err(BlobError::Denied("this URL is for uploading, not downloading".into()));
        };
        let file = fsio::open_regular(&self.object_path(&key)?).await.map_err(backend)?;
        let file = file.ok_or_else(|| BlobError::NotFound(key.clone()))?;
        let size = file.metadata().await.map_err(backend)?.len();
        Ok((size, Box::new(file)))
    }

    /// Removes temp files untouched for longer than `older_than` (left by a crash mid-write);
    /// returns how many went. Staging areas are collected by the upload GC instead, which
    /// knows which uploads are still live.
    pub async fn gc_stale_temp(&self, older_than: Duration) -> BlobResult<usize> {
        // A threshold reaching before the epoch means nothing can be that old.
        let Some(cutoff) = SystemTime::now().checked_sub(older_than) else {
            return Ok(0);
        };
        sweep(&self.tmp_dir(), cutoff).await.map_err(backend)
    }

    fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub(super) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn staging_root(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// The staging directory of an upload.
    pub(super) fn staging_dir(&self, upload_id: &str) -> BlobResult<PathBuf> {
        validate_upload_id(upload_id)?;
        Ok(self.staging_root().join(upload_id))
    }

    /// Validates `key` and returns where its blob lives.
    fn object_path(&self, key: &str) -> BlobResult<PathBuf> {
        validate_key(key)?;
        Ok(self.objects_dir().join(key))
    }

    fn url(&self, route: &str, grant: Grant, expires_in: Duration) -> String {
        let claim = PresignClaim { grant, expires_at_unix_s: now_unix_s().saturating_add(expires_in.as_secs()) };
        format!("{}/{route}/{}", self.public_base_url, presign::sign(&claim, &self.signing_secret))
    }

    pub(super) fn upload_url(&self, grant: Grant, expires_in: Duration) -> PresignedRequest {
        PresignedRequest {
            url: self.url("uploads", grant, expires_in),
            method: "PUT".to_owned(),
            headers: vec![("content-type".to_owned(), "application/octet-stream".to_owned())],
        }
    }

    /// Streams `body` into a fresh temp file, returning it with what it holds; synced to disk
    /// when `durable`.
    pub(super) async fn write_temp(
        &self,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        durable: bool,
    ) -> BlobResult<(TempFile, BlobInfo)> {
        let (temp, mut file) = TempFile::create(&self.tmp_dir()).await.map_err(backend)?;
        let info = fsio::copy_hashing(body, &mut file, max_bytes).await.map_err(|err| match err {
            CopyError::TooLarge => BlobError::TooLarge { limit_bytes: max_bytes },
            // The body belongs to the client (a dropped connection, a body limit): not a
            // storage failure, so it must not look like one.
            CopyError::Read(err) => BlobError::Invalid(format!("reading the upload failed: {err}")),
            CopyError::Write(err) => backend(err),
        })?;
        if durable {
            fsio::finish(file).await.map_err(backend)?;
        } else {
            file.flush().await.map_err(backend)?;
        }
        Ok((temp, info))
    }

    /// Moves a synced temp file into an upload's staging directory as its object, recording
    /// what it holds. Fails with `NotFound` once the upload was completed or discarded.
    pub(super) async fn persist_staged(&self, temp: TempFile, upload_id: &str, info: &BlobInfo) -> BlobResult<()> {
        let dir = self.staging_dir(upload_id)?;
        let blob = dir.join(BLOB);
        match temp.persist(&blob).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(upload_gone(upload_id)),
            Err(err) => return Err(backend(err)),
        }
        if let Err(error) = record::write(&blob, &dir.join(BLOB_RECORD), info).await {
            tracing::warn!(upload_id, %error, "could not record the staged object's digest; it will be re-read");
        }
        Ok(())
    }

    /// One whole-object PUT: exactly the declared bytes, or nothing is staged.
    async fn stage_object(
        &self,
        declared: &StagedUpload<'_>,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<BlobInfo> {
        let dir = self.staging_dir(declared.id)?;
        if !tokio::fs::try_exists(&dir).await.map_err(backend)? {
            return Err(upload_gone(declared.id));
        }
        let (temp, info) = self.write_temp(body, declared.size_bytes.min(max_bytes), true).await?;
        if info.size_bytes != declared.size_bytes {
            return Err(BlobError::Invalid(format!(
                "the upload sent {} bytes; {} were declared",
                info.size_bytes, declared.size_bytes
            )));
        }
        if info.sha256 != declared.sha256 {
            return Err(BlobError::DigestMismatch { expected: declared.sha256.to_owned(), actual: info.sha256 });
        }
        self.persist_staged(temp, declared.id, &info).await?;
        Ok(info)
    }

    /// Where `key`'s blob goes, with its parent directory created.
    async fn destination(&self, key: &str) -> BlobResult<PathBuf> {
        let dest = self.object_path(key)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(backend)?;
        }
        Ok(dest)
    }
}

impl ArtifactStore for LocalArtifactStore {
    async fn ping(&self) -> BlobResult<()> {
        let meta = tokio::fs::metadata(self.objects_dir()).await.map_err(backend)?;
        if meta.is_dir() { Ok(()) } else { Err(backend(io::Error::other("objects/ is not a directory"))) }
    }

    async fn head(&self, key: &str) -> BlobResult<Option<u64>> {
        match tokio::fs::symlink_metadata(self.object_path(key)?).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(backend(err)),
        }
    }

    async fn open(&self, key: &str) -> BlobResult<Box<dyn AsyncRead + Send + Unpin>> {
        match fsio::open_regular(&self.object_path(key)?).await.map_err(backend)? {
            Some(file) => Ok(Box::new(file)),
            None => Err(BlobError::NotFound(key.to_owned())),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        let path = self.object_path(key)?;
        // A key that is only a prefix of other keys is a directory, not a blob: nothing to do.
        match tokio::fs::symlink_metadata(&path).await {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(()),
            Err(err) => return fsio::ignore_not_found(Err(err)).map_err(backend),
        }
        fsio::ignore_not_found(tokio::fs::remove_file(&path).await).map_err(backend)
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> BlobResult<PresignedRequest> {
        validate_key(key)?;
        let url = self.url("downloads", Grant::Download { key: key.to_owned() }, expires_in);
        Ok(PresignedRequest { url, method: "GET".to_owned(), headers: Vec::new() })
    }

    async fn put_staged(
        &self,
        upload_id: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: &str,
    ) -> BlobResult<BlobInfo> {
        let dir = self.staging_dir(upload_id)?;
        let (temp, info) = self.write_temp(body, max_bytes, true).await?;
        if !expected_sha256.eq_ignore_ascii_case(&info.sha256) {
            // Dropping `temp` removes the bytes: a mismatching upload is never staged.
            return Err(BlobError::DigestMismatch { expected: expected_sha256.to_owned(), actual: info.sha256 });
        }
        tokio::fs::create_dir_all(&dir).await.map_err(backend)?;
        self.persist_staged(temp, upload_id, &info).await?;
        Ok(info)
    }

    async fn presign_upload(&self, upload: &StagedUpload<'_>, expires_in: Duration) -> BlobResult<PresignedRequest> {
        let dir = self.staging_dir(upload.id)?;
        tokio::fs::create_dir_all(&dir).await.map_err(backend)?;
        let grant = Grant::Upload {
            upload_id: upload.id.to_owned(),
            size_bytes: upload.size_bytes,
            sha256: upload.sha256.to_owned(),
        };
        Ok(self.upload_url(grant, expires_in))
    }

    async fn create_multipart(&self, upload: &StagedUpload<'_>) -> BlobResult<String> {
        self.multipart_create(upload.id).await
    }

    async fn presign_part(
        &self,
        upload_id: &str,
        multipart_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> BlobResult<PresignedRequest> {
        self.multipart_presign_part(upload_id, multipart_id, part_number, expires_in).await
    }

    async fn complete_multipart(&self, upload_id: &str, multipart_id: &str, parts: &[(u32, String)]) -> BlobResult<()> {
        self.multipart_complete(upload_id, multipart_id, parts).await
    }

    async fn measure_staged(&self, upload: &StagedUpload<'_>) -> BlobResult<Measured> {
        let dir = self.staging_dir(upload.id)?;
        let blob = dir.join(BLOB);
        let info = match record::read(&blob, &dir.join(BLOB_RECORD)).await {
            Some(info) => Some(info),
            None => fsio::hash_file(&blob).await.map_err(backend)?,
        };
        let info = info.ok_or_else(|| BlobError::NotFound(format!("the staged object of upload {}", upload.id)))?;
        Ok(Measured { size_bytes: Some(info.size_bytes), sha256: Some(info.sha256) })
    }

    async fn publish(&self, upload_id: &str, key: &str) -> BlobResult<()> {
        let dir = self.staging_dir(upload_id)?;
        let staged = dir.join(BLOB);
        let dest = self.destination(key).await?;
        match tokio::fs::rename(&staged, &dest).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(format!("the staged object of upload {upload_id}")));
            }
            Err(err) => return Err(backend(err)),
        }
        if let Some(parent) = dest.parent() {
            fsio::sync_dir(parent).await.map_err(backend)?;
        }
        // The object is published; a leftover staging directory is only clutter for the GC.
        if let Err(error) = fsio::ignore_not_found(tokio::fs::remove_dir_all(&dir).await) {
            tracing::warn!(upload_id, %error, "could not remove a published upload's staging directory");
        }
        Ok(())
    }

    async fn discard(&self, upload_id: &str, _multipart_id: Option<&str>) -> BlobResult<()> {
        let dir = self.staging_dir(upload_id)?;
        fsio::ignore_not_found(tokio::fs::remove_dir_all(&dir).await).map_err(backend)
    }

    async fn purge_staged(&self, upload_id: &str, multipart_id: Option<&str>) -> BlobResult<()> {
        // Nothing marks a discarded upload here: a missing staging directory refuses its URLs.
        self.discard(upload_id, multipart_id).await
    }

    async fn list_staged(&self) -> BlobResult<Vec<StagedEntry>> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(self.staging_root()).await.map_err(backend)?;
        while let Some(entry) = entries.next_entry().await.map_err(backend)? {
            // Entries vanish concurrently when uploads complete.
            let modified = match entry.metadata().await.and_then(|meta| meta.modified()) {
                Ok(modified) => modified,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(backend(err)),
            };
            let upload_id = entry.file_name().to_string_lossy().into_owned();
            found.push(StagedEntry { multipart_id: None, upload_id, modified });
        }
        Ok(found)
    }

    fn serves_presigned_urls(&self) -> bool {
        true
    }

    async fn accept_upload(
        &self,
        token: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<(u64, Option<String>)> {
        let (info, etag) = self.accept_upload_at(token, now_unix_s(), body, max_bytes).await?;
        Ok((info.size_bytes, etag))
    }

    async fn serve_download(&self, token: &str) -> BlobResult<(u64, Box<dyn AsyncRead + Send + Unpin>)> {
        self.serve_download_at(token, now_unix_s()).await
    }
}

pub(super) fn backend(err: io::Error) -> BlobError {
    // A full disk is the operator's to fix, not an outage that passes by itself: it gets its
    // own answer so that it is not mistaken for unreachable storage.
    if err.kind() == io::ErrorKind::StorageFull || err.kind() == io::ErrorKind::QuotaExceeded {
        return BlobError::InsufficientStorage(format!("the local artifact directory is full ({err})"));
    }
    BlobError::backend("local artifact directory", err)
}

/// The upload was completed, discarded, or never existed: its URLs write nothing any more.
pub(super) fn upload_gone(upload_id: &str) -> BlobError {
    BlobError::NotFound(format!("upload {upload_id} (it was completed or aborted, or never started)"))
}

fn presign_error(err: PresignError) -> BlobError {
    BlobError::Denied(err.to_string())
}

fn now_unix_s() -> u64 {
    // A clock before 1970 is broken; treating it as the epoch only makes tokens expire early.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Removes the entries of `dir` last modified before `cutoff`; returns how many went.
async fn sweep(dir: &Path, cutoff: SystemTime) -> io::Result<usize> {
    let mut removed = 0;
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        // Entries can vanish concurrently (a finished upload renames its temp file away).
        let meta = match entry.metadata().await {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        if meta.modified()? >= cutoff {
            continue;
        }
        let path = entry.path();
        let result =
            if meta.is_dir() { tokio::fs::remove_dir_all(&path).await } else { tokio::fs::remove_file(&path).await };
        fsio::ignore_not_found(result)?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for key in ["a", "blobs/sha256/ab/cdef.tar.zst", "A-Z_0.9", &"k".repeat(MAX_KEY_BYTES)] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        for key in ["", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", "a\\b", "a b", "é", "a?b", too_long.as_str()] {
            assert!(matches!(validate_key(key), Err(BlobError::Invalid(_))), "{key}");
        }
    }

    #[test]
    fn upload_ids_must_be_canonical_uuids() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::new(dir.path().to_owned(), "http://h/".to_owned(), [0xab; 32]).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        assert!(store.staging_dir(&id).unwrap().ends_with(&id));
        for bad in ["..", "../objects", &id.to_uppercase(), "", "a/b"] {
            assert!(matches!(store.staging_dir(bad), Err(BlobError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::new(dir.path().to_owned(), "http://h/".to_owned(), [0xab; 32]).unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("<redacted>") && !debug.contains("171"), "{debug}");
        let grant = Grant::Download { key: "k".to_owned() };
        assert!(store.url("downloads", grant, Duration::from_secs(1)).starts_with("http://h/downloads/"));
    }
}
