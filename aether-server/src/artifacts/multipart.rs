//! Multipart uploads for [`LocalArtifactStore`]: `multipart/<upload_id>/key` records the
//! object key and `multipart/<upload_id>/<part_number:05>` holds each uploaded part.

use std::io;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncRead;

use super::fsio::{self, TempFile};
use super::local::{LocalArtifactStore, backend, validate_key};
use super::presign::PresignClaim;
use crate::ports::{BlobError, BlobInfo, BlobResult, PresignedRequest};

/// Part numbers run from 1 to this, as in S3.
pub const MAX_PART_NUMBER: u32 = 10_000;

const KEY_FILE: &str = "key";

impl LocalArtifactStore {
    pub(super) async fn multipart_create(&self, key: &str) -> BlobResult<String> {
        validate_key(key)?;
        let upload_id = uuid::Uuid::new_v4().to_string();
        let dir = self.multipart_dir().join(&upload_id);
        tokio::fs::create_dir_all(&dir).await.map_err(backend)?;
        // Nobody knows the id before it is returned, so a plain write cannot be observed
        // half-done; a crash leaves a directory that `gc_stale_temp` removes.
        if let Err(err) = tokio::fs::write(dir.join(KEY_FILE), key).await {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(backend(err));
        }
        Ok(upload_id)
    }

    pub(super) async fn multipart_presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expires_at_unix_s: u64,
    ) -> BlobResult<PresignedRequest> {
        check_part_number(part_number)?;
        self.upload_dir(key, upload_id).await?;
        let claim = PresignClaim {
            key: key.to_owned(),
            upload_id: Some(upload_id.to_owned()),
            part_number: Some(part_number),
            expires_at_unix_s,
        };
        Ok(self.presigned(&claim))
    }

    /// Stores one part, replacing an earlier upload of the same part number atomically.
    pub(super) async fn multipart_put_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<BlobInfo> {
        check_part_number(part_number)?;
        let dir = self.upload_dir(key, upload_id).await?;
        // Parts are not synced to disk: completion hashes every part again against its ETag,
        // so a part damaged by a crash is refused, and the assembled object is synced before
        // it is published. This halves the disk writes a multipart upload waits for.
        let (temp, info) = self.write_temp(body, max_bytes, false).await?;
        // The upload may have been aborted or completed while the body streamed in; the rename
        // then fails rather than recreating the directory.
        match temp.persist(&dir.join(part_file(part_number))).await {
            Ok(()) => Ok(info),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(upload_not_found(upload_id)),
            Err(err) => Err(backend(err)),
        }
    }

    /// Concatenates the listed parts into the object, checking each part's ETag against the
    /// bytes actually copied, then removes the upload. On any error nothing is published and
    /// the upload stays, so the client may retry with a corrected list.
    pub(super) async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> BlobResult<()> {
        let dir = self.upload_dir(key, upload_id).await?;
        check_part_list(parts)?;
        // Fail fast on a missing part before copying gigabytes of the others.
        for (part_number, _) in parts {
            let present = tokio::fs::try_exists(dir.join(part_file(*part_number))).await.map_err(backend)?;
            if !present {
                return Err(missing_part(*part_number));
            }
        }
        let (temp, file) = TempFile::create(&self.tmp_dir()).await.map_err(backend)?;
        let file = file.into_std().await;
        let sources: Vec<(u32, PathBuf, String)> = parts
            .iter()
            .map(|(number, etag)| (*number, dir.join(part_file(*number)), etag.trim_matches('"').to_owned()))
            .collect();
        // Plain blocking I/O with large reads, off the async threads: this copies gigabytes.
        let info = tokio::task::spawn_blocking(move || concatenate(&sources, file))
            .await
            .map_err(|e| backend(io::Error::other(e)))??;
        self.publish(temp, key, &info).await?;
        // The object is published; a leftover upload directory is only clutter for the GC.
        if let Err(err) = fsio::ignore_not_found(tokio::fs::remove_dir_all(&dir).await) {
            tracing::warn!(upload_id, error = %err, "could not remove a completed multipart upload");
        }
        Ok(())
    }

    /// Removes the upload and its parts; aborting an unknown upload is not an error.
    pub(super) async fn multipart_abort(&self, key: &str, upload_id: &str) -> BlobResult<()> {
        let dir = match self.upload_dir(key, upload_id).await {
            Ok(dir) => dir,
            Err(BlobError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        fsio::ignore_not_found(tokio::fs::remove_dir_all(&dir).await).map_err(backend)
    }

    /// The directory of an existing upload of `key`: `NotFound` when there is no such upload,
    /// `Invalid` when it belongs to another key.
    async fn upload_dir(&self, key: &str, upload_id: &str) -> BlobResult<PathBuf> {
        validate_key(key)?;
        // Only canonical UUIDs name a directory, so an id can never climb out of `multipart/`.
        let canonical = uuid::Uuid::try_parse(upload_id).map(|id| id.to_string()).ok();
        if canonical.as_deref() != Some(upload_id) {
            return Err(BlobError::Invalid(format!("malformed multipart upload id {upload_id:?}")));
        }
        let dir = self.multipart_dir().join(upload_id);
        let recorded = match tokio::fs::read_to_string(dir.join(KEY_FILE)).await {
            Ok(recorded) => recorded,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(upload_not_found(upload_id)),
            Err(err) => return Err(backend(err)),
        };
        if recorded != key {
            return Err(BlobError::Invalid(format!("multipart upload {upload_id} is for another key")));
        }
        Ok(dir)
    }
}

fn part_file(part_number: u32) -> String {
    format!("{part_number:05}")
}

fn check_part_number(part_number: u32) -> BlobResult<()> {
    if (1..=MAX_PART_NUMBER).contains(&part_number) {
        Ok(())
    } else {
        Err(BlobError::Invalid(format!("part number {part_number} is outside 1..={MAX_PART_NUMBER}")))
    }
}

/// A non-empty list of valid part numbers in strictly ascending order, as S3 requires.
fn check_part_list(parts: &[(u32, String)]) -> BlobResult<()> {
    if parts.is_empty() {
        return Err(BlobError::Invalid("a multipart upload needs at least one part".to_owned()));
    }
    for (part_number, _) in parts {
        check_part_number(*part_number)?;
    }
    if let Some(pair) = parts.windows(2).find(|pair| pair[0].0 >= pair[1].0) {
        return Err(BlobError::Invalid(format!("part {} is listed after part {}", pair[1].0, pair[0].0)));
    }
    Ok(())
}

fn missing_part(part_number: u32) -> BlobError {
    BlobError::Invalid(format!("part {part_number} was not uploaded"))
}

fn upload_not_found(upload_id: &str) -> BlobError {
    BlobError::NotFound(format!("multipart upload {upload_id}"))
}

/// Appends each part to `out` in order, checking each against its ETag and hashing the whole
/// object in the same pass, then syncs `out`.
fn concatenate(parts: &[(u32, PathBuf, String)], mut out: std::fs::File) -> BlobResult<BlobInfo> {
    use std::io::{Read as _, Write as _};
    let mut buf = vec![0u8; fsio::BUF_SIZE];
    let mut whole = Sha256::new();
    let mut size_bytes = 0u64;
    for (number, path, etag) in parts {
        let mut part = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(missing_part(*number)),
            Err(err) => return Err(backend(err)),
        };
        let mut hasher = Sha256::new();
        loop {
            let n = part.read(&mut buf).map_err(backend)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            whole.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(backend)?;
            size_bytes += n as u64;
        }
        if *etag != hex::encode(hasher.finalize()) {
            return Err(BlobError::Invalid(format!("part {number} does not match its ETag")));
        }
    }
    out.sync_all().map_err(backend)?;
    Ok(BlobInfo { size_bytes, sha256: hex::encode(whole.finalize()) })
}
