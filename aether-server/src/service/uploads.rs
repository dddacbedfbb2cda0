//! Two-phase uploads: a client declares what it will send, writes it through presigned URLs to
//! a staging area private to the upload, and completes; only then are the staged bytes
//! measured and, if they are what was declared, published to the artifact's
//! content-addressed key and registered.
//!
//! The rule that keeps artifacts safe: nothing here ever writes or deletes a registered
//! artifact's blob. A completion that does not match is answered `digest_mismatch` and costs
//! only the upload's own staging area; a completion of a digest that is registered already
//! publishes nothing.

use std::collections::BTreeMap;

use aether_core::api::{CompleteResponse, MultipartInitResponse, PresignPartResponse, PresignResponse};
use axum::http::StatusCode;

use crate::error::{ApiError, ApiResult};
use crate::model::{App, Artifact, IdempotencyRecord, Upload};
use crate::ports::{ArtifactStore, BlobError, MetadataStore, PresignedRequest};
use crate::service::{self, storage_key};
use crate::state::{AppState, Ports, now_ms};

/// What a client declares when it starts an upload.
#[derive(Debug, Clone, Copy)]
pub struct Declaration<'a> {
    pub app: &'a App,
    pub digest: &'a str,
    pub size_bytes: u64,
}

/// What a client declares when it finishes one.
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    pub app: &'a App,
    pub digest: &'a str,
    pub size_bytes: u64,
    /// The upload to complete; `None` means the app's newest single-PUT upload of the digest.
    pub upload_id: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// `POST /artifacts/presign`: nothing to do when the digest is registered (`method: NONE`),
/// otherwise a new upload with a URL that writes only into its staging area.
pub async fn presign<P: Ports>(state: &AppState<P>, declared: Declaration<'_>) -> ApiResult<PresignResponse> {
    let key = storage_key(declared.digest);
    if state.store.get_artifact(declared.digest).await?.is_some() {
        return Ok(PresignResponse {
            upload_url: String::new(),
            storage_key: key,
            upload_id: None,
            method: "NONE".into(),
            headers: BTreeMap::new(),
        });
    }
    let upload = begin(state, declared).await?;
    let presigned = state.blobs.presign_upload(&upload.staged(), state.config.presign_ttl).await;
    let presigned = forget_on_error(state, &upload, presigned).await?;
    state.metrics.presigned(true);
    Ok(PresignResponse {
        upload_url: presigned.url,
        storage_key: key,
        upload_id: Some(upload.id),
        method: presigned.method,
        headers: presigned.headers.into_iter().collect(),
    })
}

/// `POST /artifacts/multipart/init`.
pub async fn init_multipart<P: Ports>(
    state: &AppState<P>,
    declared: Declaration<'_>,
) -> ApiResult<MultipartInitResponse> {
    check_declaration(state, declared).await?;
    let upload = new_upload(state, declared);
    let multipart_id = state.blobs.create_multipart(&upload.staged()).await?;
    let upload = Upload { multipart_id: Some(multipart_id), ..upload };
    if let Err(error) = state.store.insert_upload(&upload).await {
        let _ = state.blobs.discard(&upload.id, upload.multipart_id.as_deref()).await;
        return Err(error.into());
    }
    state.metrics.multipart_started();
    Ok(MultipartInitResponse { upload_id: upload.id, storage_key: storage_key(declared.digest) })
}

/// `POST /artifacts/multipart/presign-part`.
pub async fn presign_part<P: Ports>(
    state: &AppState<P>,
    app: &App,
    upload_id: &str,
    part_number: u32,
) -> ApiResult<PresignPartResponse> {
    if !(1..=10_000).contains(&part_number) {
        return Err(ApiError::bad_request("part_number must be between 1 and 10000"));
    }
    let upload = find_upload(state, app, upload_id).await?;
    let multipart_id = multipart_id(&upload)?;
    let presigned = state.blobs.presign_part(&upload.id, multipart_id, part_number, state.config.presign_ttl).await;
    let presigned = presigned.inspect_err(|_| state.metrics.presigned(false))?;
    state.metrics.presigned(true);
    state.metrics.part_presigned();
    Ok(PresignPartResponse {
        url: presigned.url,
        method: presigned.method,
        headers: presigned.headers.into_iter().collect(),
    })
}

/// `POST /artifacts/complete`.
pub async fn complete<P: Ports>(state: &AppState<P>, completion: Completion<'_>) -> ApiResult<CompleteResponse> {
    let started = std::time::Instant::now();
    let result = finish(state, "complete", completion, None).await;
    state.metrics.completed(result.is_ok(), started.elapsed());
    result
}

/// `POST /artifacts/multipart/complete`: assembles the parts into the staging area, then
/// completes like a single upload.
pub async fn complete_multipart<P: Ports>(
    state: &AppState<P>,
    completion: Completion<'_>,
    parts: &[(u32, String)],
) -> ApiResult<CompleteResponse> {
    let started = std::time::Instant::now();
    let result = assemble_and_finish(state, completion, parts).await;
    state.metrics.completed(result.is_ok(), started.elapsed());
    if result.is_ok() {
        state.metrics.multipart_completed();
    }
    result
}

async fn assemble_and_finish<P: Ports>(
    state: &AppState<P>,
    completion: Completion<'_>,
    parts: &[(u32, String)],
) -> ApiResult<CompleteResponse> {
    let upload_id = completion.upload_id.ok_or_else(|| ApiError::bad_request("upload_id is required"))?;
    if let Some(key) = completion.idempotency_key
        && state.store.get_idempotency("multipart_complete", key).await?.is_some()
    {
        return finish(state, "multipart_complete", completion, None).await;
    }
    let upload = find_upload(state, completion.app, upload_id).await?;
    let multipart_id = multipart_id(&upload)?;
    if state.store.get_artifact(completion.digest).await?.is_none() {
        state.blobs.complete_multipart(&upload.id, multipart_id, parts).await?;
    }
    finish(state, "multipart_complete", completion, Some(upload)).await
}

/// Verifies and registers, or answers a replay; see the module documentation for the rules.
async fn finish<P: Ports>(
    state: &AppState<P>,
    scope: &'static str,
    completion: Completion<'_>,
    upload: Option<Upload>,
) -> ApiResult<CompleteResponse> {
    let Completion { app, digest, size_bytes, signature, idempotency_key, .. } = completion;
    let hash = request_hash(&[&app.name, digest, &size_bytes.to_string(), signature.unwrap_or("")]);
    if let Some(key) = idempotency_key
        && let Some(record) = state.store.get_idempotency(scope, key).await?
    {
        if record.request_hash != hash {
            return Err(idempotency_conflict(key));
        }
        let artifact = state.store.get_artifact_by_id(&record.resource_id).await?;
        let artifact = artifact.ok_or_else(|| ApiError::not_found("the artifact of this idempotency key is gone"))?;
        let verified = service::verify_signature(state.store.as_ref(), Some(app), digest, signature).await?;
        return Ok(response(&artifact, true, verified, idempotency_key));
    }
    let upload = match upload {
        Some(upload) => Some(upload),
        None => match completion.upload_id {
            Some(id) => Some(find_upload(state, app, id).await?),
            None => state.store.latest_upload(&app.id, digest).await?,
        },
    };
    let (artifact, duplicate) = match state.store.get_artifact(digest).await? {
        Some(registered) => (link_registered(state, &completion, registered, upload.as_ref()).await?, true),
        None => {
            let upload = upload.ok_or_else(|| {
                ApiError::not_found(format!("no upload of {digest} for app {}: presign one first", app.name))
            })?;
            publish_upload(state, &completion, &upload).await?
        }
    };
    if let Some(key) = idempotency_key {
        let record = IdempotencyRecord {
            scope: scope.to_owned(),
            key: key.to_owned(),
            request_hash: hash.clone(),
            resource_id: artifact.id.clone(),
            created_at_ms: now_ms(),
        };
        let stored = state.store.put_idempotency(&record).await?;
        if stored.request_hash != hash {
            return Err(idempotency_conflict(key));
        }
    }
    let verified = service::verify_signature(state.store.as_ref(), Some(app), digest, signature).await?;
    Ok(response(&artifact, duplicate, verified, idempotency_key))
}

/// The digest is registered: its blob is not touched. The upload (if one was staged anyway)
/// is dropped, and a declaration that contradicts the registered artifact is refused.
async fn link_registered<P: Ports>(
    state: &AppState<P>,
    completion: &Completion<'_>,
    registered: Artifact,
    upload: Option<&Upload>,
) -> ApiResult<Artifact> {
    if let Some(upload) = upload {
        forget(state, upload).await?;
    }
    let registered_size = u64::try_from(registered.size_bytes).unwrap_or(0);
    if registered_size != completion.size_bytes {
        state.metrics.digest_mismatch();
        return Err(digest_mismatch(format!(
            "artifact {} is stored with {registered_size} bytes, not the declared {}; it was left unchanged",
            completion.digest, completion.size_bytes
        )));
    }
    let (artifact, _) =
        service::register(state, Some(completion.app), completion.digest, completion.size_bytes, completion.signature)
            .await?;
    Ok(artifact)
}

/// Measures the staged bytes against the declaration and the upload's own start, then
/// publishes and registers them. Any mismatch discards only the staging area.
async fn publish_upload<P: Ports>(
    state: &AppState<P>,
    completion: &Completion<'_>,
    upload: &Upload,
) -> ApiResult<(Artifact, bool)> {
    let (digest, size_bytes) = (completion.digest, completion.size_bytes);
    if upload.digest != digest || upload.size_bytes != size_bytes {
        forget(state, upload).await?;
        state.metrics.digest_mismatch();
        return Err(digest_mismatch(format!(
            "upload {} was started for {} bytes with sha256 {}; completing it as {size_bytes} bytes with sha256 \
             {digest} is refused and the upload discarded",
            upload.id, upload.size_bytes, upload.digest
        )));
    }
    let measured = match state.blobs.measure_staged(&upload.staged()).await {
        Ok(measured) => measured,
        Err(BlobError::NotFound(_)) => {
            return Err(ApiError::conflict(format!("nothing was uploaded to upload {} yet", upload.id)));
        }
        Err(error) => return Err(error.into()),
    };
    let size_ok = measured.size_bytes.is_none_or(|measured| measured == size_bytes);
    let digest_ok = measured.sha256.as_deref().is_none_or(|measured| measured == digest);
    if !size_ok || !digest_ok {
        forget(state, upload).await?;
        state.metrics.digest_mismatch();
        let shown = |value: Option<String>| value.unwrap_or_else(|| "(not checked)".to_owned());
        return Err(digest_mismatch(format!(
            "the uploaded object has {} bytes and sha256 {}; declared {size_bytes} bytes and {digest}; it was discarded",
            shown(measured.size_bytes.map(|n| n.to_string())),
            shown(measured.sha256)
        )));
    }
    service::check_quota(state, completion.app, digest, size_bytes).await?;
    match state.blobs.publish(&upload.id, &storage_key(digest)).await {
        Ok(()) => {}
        // A concurrent completion of the same upload got there first.
        Err(BlobError::NotFound(_)) if state.store.get_artifact(digest).await?.is_some() => {}
        Err(error) => return Err(error.into()),
    }
    let registered = service::register(state, Some(completion.app), digest, size_bytes, completion.signature).await?;
    state.store.delete_upload(&upload.id).await?;
    Ok(registered)
}

/// Publishes an upload staged without a declaration (the legacy direct upload) unless the
/// digest got registered meanwhile, in which case the staged copy is dropped.
pub async fn publish_staged<P: Ports>(state: &AppState<P>, upload_id: &str, digest: &str) -> ApiResult<()> {
    if state.store.get_artifact(digest).await?.is_some() {
        state.blobs.discard(upload_id, None).await?;
        return Ok(());
    }
    match state.blobs.publish(upload_id, &storage_key(digest)).await {
        Ok(()) => Ok(()),
        Err(BlobError::NotFound(_)) if state.store.get_artifact(digest).await?.is_some() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Records a new upload before anything is staged for it.
async fn begin<P: Ports>(state: &AppState<P>, declared: Declaration<'_>) -> ApiResult<Upload> {
    check_declaration(state, declared).await?;
    let upload = new_upload(state, declared);
    state.store.insert_upload(&upload).await?;
    Ok(upload)
}

/// Refuses an upload beyond the size limit or the app's quota before anything is written.
async fn check_declaration<P: Ports>(state: &AppState<P>, declared: Declaration<'_>) -> ApiResult<()> {
    check_size(state, declared.size_bytes)?;
    service::check_quota(state, declared.app, declared.digest, declared.size_bytes).await
}

fn new_upload<P: Ports>(state: &AppState<P>, declared: Declaration<'_>) -> Upload {
    let now = now_ms();
    let ttl_ms = i64::try_from(state.config.pending_ttl.as_millis()).unwrap_or(i64::MAX);
    Upload {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: declared.app.id.clone(),
        digest: declared.digest.to_owned(),
        size_bytes: declared.size_bytes,
        multipart_id: None,
        created_at_ms: now,
        expires_at_ms: now.saturating_add(ttl_ms),
    }
}

/// Undoes [`begin`] when the store could not presign.
async fn forget_on_error<P: Ports>(
    state: &AppState<P>,
    upload: &Upload,
    presigned: Result<PresignedRequest, BlobError>,
) -> ApiResult<PresignedRequest> {
    match presigned {
        Ok(presigned) => Ok(presigned),
        Err(error) => {
            state.metrics.presigned(false);
            let _ = forget(state, upload).await;
            Err(error.into())
        }
    }
}

/// Drops an upload: its staging area first, then its row (a row without a staging area is
/// harmless; the other way round the GC removes the area after the TTL).
pub async fn forget<P: Ports>(state: &AppState<P>, upload: &Upload) -> ApiResult<()> {
    state.blobs.discard(&upload.id, upload.multipart_id.as_deref()).await?;
    state.store.delete_upload(&upload.id).await?;
    Ok(())
}

/// The app's upload `id`; another app's uploads do not exist for this one.
async fn find_upload<P: Ports>(state: &AppState<P>, app: &App, id: &str) -> ApiResult<Upload> {
    match state.store.get_upload(id).await? {
        Some(upload) if upload.app_id == app.id => Ok(upload),
        _ => Err(ApiError::not_found(format!(
            "upload {id} of app {} (it was completed, aborted or expired, or never started)",
            app.name
        ))),
    }
}

fn multipart_id(upload: &Upload) -> ApiResult<&str> {
    upload
        .multipart_id
        .as_deref()
        .ok_or_else(|| ApiError::conflict(format!("upload {} is a single PUT, not a multipart upload", upload.id)))
}

fn check_size<P: Ports>(state: &AppState<P>, size_bytes: u64) -> ApiResult<()> {
    let limit = state.config.max_artifact_size_bytes;
    if size_bytes > limit {
        state.metrics.size_exceeded();
        return Err(BlobError::TooLarge { limit_bytes: limit }.into());
    }
    Ok(())
}

/// The request fields that make a replay "the same request".
fn request_hash(parts: &[&str]) -> String {
    aether_core::digest::sha256_hex(parts.join("\n").as_bytes())
}

pub fn idempotency_conflict(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        format!("idempotency key {key:?} was used with a different request"),
    )
}

fn digest_mismatch(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "digest_mismatch", message)
}

fn response(artifact: &Artifact, duplicate: bool, verified: bool, key: Option<&str>) -> CompleteResponse {
    CompleteResponse {
        artifact_id: artifact.id.clone(),
        digest: artifact.digest.clone(),
        duplicate,
        verified,
        storage_key: artifact.storage_key.clone(),
        status: "stored".into(),
        idempotency_key: key.map(str::to_owned),
    }
}
