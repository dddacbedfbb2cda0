//! Multipart uploads for [`LocalArtifactStore`]: parts land in the upload's staging directory
//! (`staging/<upload id>/parts/<part number:05>`) and completion concatenates them into the
//! upload's staged object. The multipart id is the upload id: one upload, one assembly.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncRead;

use super::fsio::{self, TempFile};
use super::local::{LocalArtifactStore, backend, upload_gone};
use super::presign::Grant;
use crate::ports::{BlobError, BlobInfo, BlobResult, PresignedRequest};

/// Part numbers run from 1 to this, as in S3.
pub const MAX_PART_NUMBER: u32 = 10_000;

const PARTS: &str = "parts";

impl LocalArtifactStore {
    pub(super) async fn multipart_create(&self, upload_id: &str) -> BlobResult<String> {
        let parts = self.staging_dir(upload_id)?.join(PARTS);
        tokio::fs::create_dir_all(&parts).await.map_err(backend)?;
        Ok(upload_id.to_owned())
    }

    pub(super) async fn multipart_presign_part(
        &self,
        upload_id: &str,
        multipart_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> BlobResult<PresignedRequest> {
        check_part_number(part_number)?;
        self.parts_dir(upload_id, multipart_id).await?;
        let grant = Grant::Part { upload_id: upload_id.to_owned(), part_number };
        Ok(self.upload_url(grant, expires_in))
    }

    /// Stores one part, replacing an earlier upload of the same part number atomically.
    pub(super) async fn multipart_put_part(
        &self,
        upload_id: &str,
        part_number: u32,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> BlobResult<BlobInfo> {
        check_part_number(part_number)?;
        let dir = self.parts_dir(upload_id, upload_id).await?;
        // Parts are not synced to disk: completion hashes every part again against its ETag,
        // so a part damaged by a crash is refused, and the assembled object is synced before
        // it is staged. This halves the disk writes a multipart upload waits for.
        let (temp, info) = self.write_temp(body, max_bytes, false).await?;
        // The upload may have been completed or discarded while the body streamed in; the
        // rename then fails rather than recreating the directory.
        match temp.persist(&dir.join(part_file(part_number))).await {
            Ok(()) => Ok(info),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(upload_gone(upload_id)),
            Err(err) => Err(backend(err)),
        }
    }

    /// Concatenates the listed parts into the upload's staged object, checking each part's
    /// ETag against the bytes actually copied, then removes the parts. On any error nothing is
    /// staged and the parts stay, so the client may retry with a corrected list.
    pub(super) async fn multipart_complete(
        &self,
        upload_id: &str,
        multipart_id: &str,
        parts: &[(u32, String)],
    ) -> BlobResult<()> {
        let dir = self.parts_dir(upload_id, multipart_id).await?;
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
        self.persist_staged(temp, upload_id, &info).await?;
        // The object is staged; leftover parts are only clutter that the GC or publishing removes.
        if let Err(err) = fsio::ignore_not_found(tokio::fs::remove_dir_all(&dir).await) {
            tracing::warn!(upload_id, error = %err, "could not remove the parts of an assembled upload");
        }
        Ok(())
    }

    /// The parts directory of a live multipart upload: `NotFound` once it was completed or
    /// discarded, `Invalid` for an id that is not this upload's.
    async fn parts_dir(&self, upload_id: &str, multipart_id: &str) -> BlobResult<PathBuf> {
        if multipart_id != upload_id {
            return Err(BlobError::Conflict(format!("multipart upload {multipart_id} is not upload {upload_id}")));
        }
        let dir = self.staging_dir(upload_id)?.join(PARTS);
        if tokio::fs::try_exists(&dir).await.map_err(backend)? { Ok(dir) } else { Err(upload_gone(upload_id)) }
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
pub(crate) fn check_part_list(parts: &[(u32, String)]) -> BlobResult<()> {
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
    BlobError::Conflict(format!("part {part_number} was not uploaded"))
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
            return Err(BlobError::Conflict(format!("part {number} does not match its ETag")));
        }
    }
    out.sync_all().map_err(backend)?;
    Ok(BlobInfo { size_bytes, sha256: hex::encode(whole.finalize()) })
}
