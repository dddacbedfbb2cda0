//! Uploading an artifact file: skipped when the server has the digest already, otherwise a
//! presigned PUT or, for large files, a multipart upload with parts in flight concurrently,
//! then the server verifies the bytes and registers the artifact.

use std::future::Future;
use std::path::PathBuf;

use aether_core::api::{
    CompleteRequest, CompleteResponse, CompletedPart, MultipartCompleteRequest, MultipartInitRequest,
    PresignPartRequest, PresignRequest,
};
use aether_core::wire::{AppName, Digest};
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::sync::watch;

use crate::client::{Client, FilePut, Progress};
use crate::error::Error;

/// Variable the CLI reads for [`UploadRequest::multipart_threshold_bytes`].
pub const MULTIPART_THRESHOLD_ENV: &str = "AETHER_MULTIPART_THRESHOLD_BYTES";
/// Variable the CLI reads for [`UploadRequest::part_size_bytes`].
pub const PART_SIZE_ENV: &str = "AETHER_MULTIPART_PART_SIZE_BYTES";
/// Files larger than this are uploaded in parts: 1 GiB. One streaming PUT matches `curl -T`
/// on a local store, while parts pay for the server assembling them afterwards (measured by
/// `benches/run.sh stream`), so parts are kept for artifacts too large to resend whole.
pub const DEFAULT_MULTIPART_THRESHOLD_BYTES: u64 = 1024 * 1024 * 1024;
/// Size of each part but the last: 16 MiB.
pub const DEFAULT_PART_SIZE_BYTES: u64 = 16 * 1024 * 1024;
/// Parts in flight at once; below the server's default upload slots (8) so that one client
/// cannot exhaust them.
pub const DEFAULT_MAX_CONCURRENT_PARTS: usize = 4;
/// The API numbers parts from 1 to 10 000, like S3.
const MAX_PARTS: u64 = 10_000;

/// What to upload, and how.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub app_name: AppName,
    /// The packed artifact; it must not change while the upload runs.
    pub path: PathBuf,
    pub digest: Digest,
    /// The file's size; checked against the file before anything is sent.
    pub size_bytes: u64,
    /// Hex Ed25519 signature of the digest, stored with the artifact.
    pub signature: Option<String>,
    /// Makes the final step safe to retry: a replay returns the first answer.
    pub idempotency_key: Option<String>,
    /// Files strictly larger than this use multipart.
    pub multipart_threshold_bytes: u64,
    /// Grown when needed to stay within 10 000 parts.
    pub part_size_bytes: u64,
    pub max_concurrent_parts: usize,
}

impl UploadRequest {
    /// A request with the default multipart settings and no signature or idempotency key.
    pub fn new(app_name: AppName, path: impl Into<PathBuf>, digest: Digest, size_bytes: u64) -> Self {
        Self {
            app_name,
            path: path.into(),
            digest,
            size_bytes,
            signature: None,
            idempotency_key: None,
            multipart_threshold_bytes: DEFAULT_MULTIPART_THRESHOLD_BYTES,
            part_size_bytes: DEFAULT_PART_SIZE_BYTES,
            max_concurrent_parts: DEFAULT_MAX_CONCURRENT_PARTS,
        }
    }
}

/// Bytes handed to the network so far. It can step back when a failed PUT is retried, and
/// reaches `bytes_total` once the upload succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    pub artifact_id: String,
    /// Bytes this call sent; 0 when the server had the artifact already.
    pub uploaded_bytes: u64,
    /// The server had the digest, so no bytes were sent.
    pub skipped: bool,
    /// The artifact existed before this call registered it.
    pub duplicate: bool,
    /// The signature verified against one of the app's keys.
    pub verified: bool,
}

/// Uploads the artifact and registers it with the app. `on_progress` is called from this
/// task (never concurrently) while bytes go out; not at all when the upload is skipped.
pub async fn upload_artifact(
    client: &Client,
    request: &UploadRequest,
    mut on_progress: impl FnMut(UploadProgress),
) -> Result<UploadOutcome, Error> {
    check_file(request).await?;
    if client.artifact_exists(&request.digest).await? {
        tracing::debug!(digest = %request.digest, "artifact already stored; nothing to upload");
        let response = client.complete(&complete_request(request, None, None)).await?;
        return Ok(outcome(response, None));
    }
    let (progress, mut watcher) = Progress::new();
    let work = async {
        if request.size_bytes > request.multipart_threshold_bytes {
            upload_multipart(client, request, &progress).await
        } else {
            upload_single(client, request, &progress).await
        }
    };
    let result = report_progress(work, &mut watcher, request.size_bytes, &mut on_progress).await?;
    if !result.skipped {
        on_progress(UploadProgress { bytes_done: request.size_bytes, bytes_total: request.size_bytes });
    }
    Ok(result)
}

/// Runs `work`, passing each change of the byte count to `on_progress` as it happens.
async fn report_progress<T>(
    work: impl Future<Output = Result<T, Error>>,
    watcher: &mut watch::Receiver<u64>,
    bytes_total: u64,
    on_progress: &mut impl FnMut(UploadProgress),
) -> Result<T, Error> {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            Ok(()) = watcher.changed() => {
                let bytes_done = (*watcher.borrow_and_update()).min(bytes_total);
                // The final count is reported once the server has accepted the bytes.
                if bytes_done < bytes_total {
                    on_progress(UploadProgress { bytes_done, bytes_total });
                }
            }
        }
    }
}

/// Refuses a file whose size is not the declared one: the server would discard the upload
/// after every byte had been sent.
async fn check_file(request: &UploadRequest) -> Result<(), Error> {
    let path = &request.path;
    let meta = tokio::fs::metadata(path).await.map_err(Error::io("cannot read the artifact", path))?;
    if !meta.is_file() || meta.len() != request.size_bytes {
        let detail = format!("{} bytes on disk, {} declared", meta.len(), request.size_bytes);
        let error = std::io::Error::new(std::io::ErrorKind::InvalidData, detail);
        return Err(Error::io("the artifact is not a file of the declared size", path)(error));
    }
    Ok(())
}

async fn upload_single(client: &Client, request: &UploadRequest, progress: &Progress) -> Result<UploadOutcome, Error> {
    let presign = PresignRequest {
        app_name: request.app_name.clone(),
        digest: request.digest.clone(),
        size_bytes: request.size_bytes,
    };
    let presigned = client.presign(&presign).await?;
    if presigned.method.eq_ignore_ascii_case("NONE") {
        // Stored by someone else since the HEAD.
        let response = client.complete(&complete_request(request, Some(presigned.storage_key), None)).await?;
        return Ok(outcome(response, None));
    }
    expect_put(client, &presigned.method)?;
    let put = FilePut {
        url: &presigned.upload_url,
        headers: &presigned.headers,
        path: &request.path,
        offset: 0,
        len: request.size_bytes,
    };
    client.put_file(&put, progress).await?;
    let completion = complete_request(request, Some(presigned.storage_key), presigned.upload_id);
    let response = client.complete(&completion).await?;
    Ok(outcome(response, Some(request.size_bytes)))
}

/// Parts go up concurrently, at most `max_concurrent_parts` at a time. A failed upload is
/// left to the server, which discards unfinished uploads after their time-to-live.
async fn upload_multipart(
    client: &Client,
    request: &UploadRequest,
    progress: &Progress,
) -> Result<UploadOutcome, Error> {
    let init = MultipartInitRequest {
        app_name: request.app_name.clone(),
        digest: request.digest.clone(),
        size_bytes: request.size_bytes,
    };
    let init = client.multipart_init(&init).await?;
    let upload_id = init.upload_id.as_str();
    let mut parts: Vec<CompletedPart> =
        futures_util::stream::iter(plan_parts(request.size_bytes, request.part_size_bytes))
            .map(|part| upload_part(client, request, upload_id, part, progress))
            .buffer_unordered(request.max_concurrent_parts.max(1))
            .try_collect()
            .await?;
    parts.sort_by_key(|part| part.part_number);
    let complete = MultipartCompleteRequest {
        app_name: request.app_name.clone(),
        digest: request.digest.clone(),
        size_bytes: request.size_bytes,
        upload_id: init.upload_id.clone(),
        parts,
        signature: request.signature.clone(),
        idempotency_key: request.idempotency_key.clone(),
    };
    let response = client.multipart_complete(&complete).await?;
    Ok(outcome(response, Some(request.size_bytes)))
}

async fn upload_part(
    client: &Client,
    request: &UploadRequest,
    upload_id: &str,
    part: Part,
    progress: &Progress,
) -> Result<CompletedPart, Error> {
    let presign = PresignPartRequest {
        app_name: request.app_name.clone(),
        digest: request.digest.clone(),
        upload_id: upload_id.to_owned(),
        part_number: part.number,
    };
    let presigned = client.presign_part(&presign).await?;
    expect_put(client, &presigned.method)?;
    let put = FilePut {
        url: &presigned.url,
        headers: &presigned.headers,
        path: &request.path,
        offset: part.offset,
        len: part.len,
    };
    let etag = client.put_file(&put, progress).await?;
    let etag = etag.ok_or_else(|| Error::Protocol {
        url: presigned.url.split('?').next().unwrap_or_default().to_owned(),
        message: format!("part {} was stored without an ETag, so it cannot be assembled", part.number),
    })?;
    Ok(CompletedPart { part_number: part.number, etag })
}

fn expect_put(client: &Client, method: &str) -> Result<(), Error> {
    if method.eq_ignore_ascii_case("PUT") {
        return Ok(());
    }
    Err(Error::Protocol {
        url: client.base_url().to_owned(),
        message: format!("the server asked for an upload with method {method:?}; only PUT is supported"),
    })
}

fn complete_request(
    request: &UploadRequest,
    storage_key: Option<String>,
    upload_id: Option<String>,
) -> CompleteRequest {
    CompleteRequest {
        app_name: request.app_name.clone(),
        digest: request.digest.clone(),
        size_bytes: request.size_bytes,
        storage_key,
        upload_id,
        signature: request.signature.clone(),
        idempotency_key: request.idempotency_key.clone(),
    }
}

/// `None` when nothing was sent because the server had the bytes already.
fn outcome(response: CompleteResponse, uploaded_bytes: Option<u64>) -> UploadOutcome {
    UploadOutcome {
        artifact_id: response.artifact_id,
        uploaded_bytes: uploaded_bytes.unwrap_or(0),
        skipped: uploaded_bytes.is_none(),
        duplicate: response.duplicate,
        verified: response.verified,
    }
}

/// A byte range of the file, uploaded as one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    number: u32,
    offset: u64,
    len: u64,
}

/// Splits `size` bytes into parts of `part_size` (the last one shorter), growing the parts
/// when `size` would otherwise need more than the API's 10 000.
fn plan_parts(size: u64, part_size: u64) -> Vec<Part> {
    let part_size = part_size.max(1).max(size.div_ceil(MAX_PARTS));
    (0..size.div_ceil(part_size))
        .map(|index| {
            let offset = index * part_size;
            let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            Part { number, offset, len: part_size.min(size - offset) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_file_in_order() {
        let parts = plan_parts(10, 4);
        let ranges: Vec<(u32, u64, u64)> = parts.iter().map(|p| (p.number, p.offset, p.len)).collect();
        assert_eq!(ranges, [(1, 0, 4), (2, 4, 4), (3, 8, 2)]);
        assert_eq!(plan_parts(8, 4).len(), 2);
        assert_eq!(plan_parts(1, 0).len(), 1);
    }

    #[test]
    fn parts_grow_to_stay_within_the_limit() {
        let size = 20_000 * 1024;
        let parts = plan_parts(size, 1024);
        assert_eq!(parts.len(), 10_000);
        assert_eq!(parts.iter().map(|p| p.len).sum::<u64>(), size);
    }
}
