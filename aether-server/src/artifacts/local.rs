//! An [`ArtifactStore`] on a local directory. Presigned URLs point back at the server
//! (`{public_base_url}/uploads/{token}`), whose upload handler calls
//! [`LocalArtifactStore::accept_presigned`].
//!
//! Layout under the root: `objects/<key>` holds published blobs, `records/<key>` the size and
//! SHA-256 measured while writing each, `tmp/` holds writes in progress, and
//! `multipart/<upload_id>/` holds a `key` file plus one file per uploaded part.
//! Every publication is a rename from `tmp/`, so readers never see partial bytes.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWriteExt as _};

use super::fsio::{self, CopyError, TempFile};
use super::presign::{self, PresignClaim, PresignError};
use super::record;
use crate::ports::{ArtifactStore, BlobError, BlobInfo, BlobResult, PresignedRequest};

/// Longest accepted object key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// What a presigned write stored; `etag` is set for multipart parts and is what the upload
/// handler returns in its `ETag` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedWrite {
    pub key: String,
    pub info: BlobInfo,
    pub etag: Option<String>,
}

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
    /// Creates `objects/`, `tmp/` and `multipart/` under `root` if needed.
    /// `public_base_url` is where clients reach this server, e.g. `https://aether.example`.
    pub fn new(root: PathBuf, public_base_url: String, signing_secret: [u8; 32]) -> io::Result<Self> {
        let store = Self { public_base_url: public_base_url.trim_end_matches('/').to_owned(), root, signing_secret };
        for dir in [store.objects_dir(), store.tmp_dir(), store.multipart_dir()] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Verifies a token from `PUT /uploads/{token}` and stores `body` as the object or part it
    /// names. Tokens are not single-use: until expiry the same object or part may be rewritten,
    /// which is harmless because each write replaces the previous one atomically.
    pub async fn accept_presigned(
        &self,
        token: &str,
        now_unix_s: u64,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<PresignedWrite> {
        let claim = presign::verify(token, &self.signing_secret, now_unix_s).map_err(presign_error)?;
        let PresignClaim { key, upload_id, part_number, .. } = claim;
        match (upload_id, part_number) {
            (Some(upload_id), Some(part_number)) => {
                let info = self.multipart_put_part(&key, &upload_id, part_number, body, max_bytes).await?;
                let etag = Some(format!("\"{}\"", info.sha256));
                Ok(PresignedWrite { key, info, etag })
            }
            _ => {
                let info = self.put_object(&key, body, max_bytes, None).await?;
                Ok(PresignedWrite { key, info, etag: None })
            }
        }
    }

    /// Removes temp files and multipart uploads untouched for longer than `older_than`; returns
    /// how many entries were removed. An upload's directory changes whenever a part lands, so
    /// only abandoned uploads age out; `older_than` should exceed the longest presign expiry.
    pub async fn gc_stale_temp(&self, older_than: Duration) -> BlobResult<usize> {
        // A threshold reaching before the epoch means nothing can be that old.
        let Some(cutoff) = SystemTime::now().checked_sub(older_than) else {
            return Ok(0);
        };
        let temps = sweep(&self.tmp_dir(), cutoff).await.map_err(backend)?;
        let uploads = sweep(&self.multipart_dir(), cutoff).await.map_err(backend)?;
        Ok(temps + uploads)
    }

    pub(super) fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub(super) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(super) fn multipart_dir(&self) -> PathBuf {
        self.root.join("multipart")
    }

    /// Validates `key` and returns where its blob lives.
    pub(super) fn object_path(&self, key: &str) -> BlobResult<PathBuf> {
        validate_key(key)?;
        Ok(self.objects_dir().join(key))
    }

    pub(super) fn presigned(&self, claim: &PresignClaim) -> PresignedRequest {
        PresignedRequest {
            url: format!("{}/uploads/{}", self.public_base_url, presign::sign(claim, &self.signing_secret)),
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

    /// Publishes a synced temp file as `key`, replacing any previous blob atomically, and
    /// records `info` (measured while writing it) for [`ArtifactStore::recorded`].
    pub(super) async fn publish(&self, temp: TempFile, key: &str, info: &BlobInfo) -> BlobResult<()> {
        let dest = self.object_path(key)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(backend)?;
        }
        temp.persist(&dest).await.map_err(backend)?;
        if let Err(error) = record::write(&dest, &self.record_path(key), info).await {
            tracing::warn!(key, %error, "could not record the blob's digest; it will be re-read when needed");
        }
        Ok(())
    }

    /// Where the measurements of `key`'s blob are kept (`records/<key>`).
    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("records").join(key)
    }

    async fn put_object(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: Option<&str>,
    ) -> BlobResult<BlobInfo> {
        // Validate before reading anything so a bad key costs no I/O.
        self.object_path(key)?;
        let (temp, info) = self.write_temp(body, max_bytes, true).await?;
        if let Some(expected) = expected_sha256
            && !expected.eq_ignore_ascii_case(&info.sha256)
        {
            // Dropping `temp` removes the bytes: a mismatching upload is never published.
            return Err(BlobError::DigestMismatch { expected: expected.to_owned(), actual: info.sha256 });
        }
        self.publish(temp, key, &info).await?;
        Ok(info)
    }
}

impl ArtifactStore for LocalArtifactStore {
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: Option<&str>,
    ) -> BlobResult<BlobInfo> {
        self.put_object(key, body, max_bytes, expected_sha256).await
    }

    async fn stat(&self, key: &str) -> BlobResult<Option<BlobInfo>> {
        fsio::hash_file(&self.object_path(key)?).await.map_err(backend)
    }

    async fn recorded(&self, key: &str) -> BlobResult<Option<BlobInfo>> {
        let object = self.object_path(key)?;
        match record::read(&object, &self.record_path(key)).await {
            Some(info) => Ok(Some(info)),
            None => fsio::hash_file(&object).await.map_err(backend),
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
        fsio::ignore_not_found(tokio::fs::remove_file(&path).await).map_err(backend)?;
        record::remove(&self.record_path(key)).await.map_err(backend)
    }

    async fn presign_put(&self, key: &str, expires_in: Duration) -> BlobResult<PresignedRequest> {
        validate_key(key)?;
        let claim = PresignClaim {
            key: key.to_owned(),
            upload_id: None,
            part_number: None,
            expires_at_unix_s: expires_at(expires_in),
        };
        Ok(self.presigned(&claim))
    }

    async fn create_multipart(&self, key: &str) -> BlobResult<String> {
        self.multipart_create(key).await
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> BlobResult<PresignedRequest> {
        self.multipart_presign_part(key, upload_id, part_number, expires_at(expires_in)).await
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: &[(u32, String)]) -> BlobResult<()> {
        self.multipart_complete(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> BlobResult<()> {
        self.multipart_abort(key, upload_id).await
    }

    async fn accept_presigned(
        &self,
        token: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<(u64, Option<String>)> {
        // The inherent method of the same name takes the clock as a parameter for tests.
        let written = LocalArtifactStore::accept_presigned(self, token, now_unix_s(), body, max_bytes).await?;
        Ok((written.info.size_bytes, written.etag))
    }
}

/// Accepts relative keys of `[A-Za-z0-9._/-]`, at most [`MAX_KEY_BYTES`] long, whose
/// `/`-separated segments are neither empty, `.` nor `..`, so a key can only ever name a file
/// inside `objects/`.
pub fn validate_key(key: &str) -> BlobResult<()> {
    if key.is_empty() {
        return Err(BlobError::Invalid("object key is empty".to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(BlobError::Invalid(format!("object key is longer than {MAX_KEY_BYTES} bytes")));
    }
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))) {
        return Err(BlobError::Invalid(format!("object key contains {c:?}")));
    }
    if key.starts_with('/') {
        return Err(BlobError::Invalid("object key is absolute".to_owned()));
    }
    if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err(BlobError::Invalid("object key has an empty, '.' or '..' segment".to_owned()));
    }
    Ok(())
}

pub(super) fn backend(err: io::Error) -> BlobError {
    BlobError::Backend(Box::new(err))
}

fn presign_error(err: PresignError) -> BlobError {
    BlobError::Invalid(err.to_string())
}

fn now_unix_s() -> u64 {
    // A clock before 1970 is broken; treating it as the epoch only makes tokens expire early.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn expires_at(expires_in: Duration) -> u64 {
    now_unix_s().saturating_add(expires_in.as_secs())
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
    fn debug_redacts_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::new(dir.path().to_owned(), "http://h/".to_owned(), [0xab; 32]).unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("<redacted>") && !debug.contains("171"), "{debug}");
        assert!(
            store
                .presigned(&PresignClaim {
                    key: "k".to_owned(),
                    upload_id: None,
                    part_number: None,
                    expires_at_unix_s: 1
                })
                .url
                .starts_with("http://h/uploads/")
        );
    }
}
