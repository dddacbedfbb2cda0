//! Two-phase uploads: presign, the client PUTs the bytes, complete. Multipart likewise.

use std::collections::BTreeMap;

use aether_core::api::{
    CompleteRequest, CompleteResponse, MultipartCompleteRequest, MultipartInitRequest, MultipartInitResponse,
    PresignPartRequest, PresignPartResponse, PresignRequest, PresignResponse,
};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;
use tokio_util::io::StreamReader;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::model::{App, PendingUpload};
use crate::ports::{ArtifactStore, BlobError, MetadataStore};
use crate::routes::apps::find_app;
use crate::service::{self, storage_key};
use crate::state::{AppState, Ports, now_ms};

fn check_size<P: Ports>(state: &AppState<P>, size_bytes: u64) -> ApiResult<()> {
    let limit = state.config.max_artifact_size_bytes;
    if size_bytes > limit {
        return Err(BlobError::TooLarge { limit_bytes: limit }.into());
    }
    Ok(())
}

async fn remember_pending<P: Ports>(
    state: &AppState<P>,
    app: &App,
    digest: &str,
    size: u64,
    upload_id: Option<String>,
) -> ApiResult<()> {
    let now = now_ms();
    let ttl_ms = i64::try_from(state.config.pending_ttl.as_millis()).unwrap_or(i64::MAX);
    let key = storage_key(digest);
    // Keys are per digest, so a retry replaces an unfinished earlier attempt (and its parts).
    if let Some(earlier) = state.store.get_pending_upload(&key).await? {
        if let Some(id) = &earlier.multipart_upload_id {
            state.blobs.abort_multipart(&key, id).await?;
        }
        state.store.delete_pending_upload(&key).await?;
    }
    let pending = PendingUpload {
        storage_key: key,
        app_id: Some(app.id.clone()),
        digest: digest.to_owned(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        multipart_upload_id: upload_id,
        created_at_ms: now,
        expires_at_ms: now.saturating_add(ttl_ms),
    };
    Ok(state.store.put_pending_upload(&pending).await?)
}

pub async fn presign<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<PresignRequest>,
) -> ApiResult<Json<PresignResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let digest = request.digest.as_str();
    let key = storage_key(digest);
    if state.store.get_artifact(digest).await?.is_some() {
        let none = PresignResponse {
            upload_url: String::new(),
            storage_key: key,
            method: "NONE".into(),
            headers: BTreeMap::new(),
        };
        return Ok(Json(none));
    }
    check_size(&state, request.size_bytes)?;
    service::check_quota(&state, &app, digest, request.size_bytes).await?;
    remember_pending(&state, &app, digest, request.size_bytes, None).await?;
    let presigned = state.blobs.presign_put(&key, state.config.presign_ttl).await?;
    Ok(Json(PresignResponse {
        upload_url: presigned.url,
        storage_key: key,
        method: presigned.method,
        headers: presigned.headers.into_iter().collect(),
    }))
}

/// The request fields that make a replay "the same request".
fn request_hash(parts: &[&str]) -> String {
    aether_core::digest::sha256_hex(parts.join("\n").as_bytes())
}

/// What a client declares when it finishes an upload.
struct Completion<'a> {
    /// Idempotency scope: `complete` or `multipart_complete`.
    scope: &'static str,
    digest: &'a str,
    size_bytes: u64,
    signature: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

/// Re-verifies the stored blob's size and digest, registers it and answers; replays with the
/// same idempotency key and body get the same artifact.
async fn finish<P: Ports>(state: &AppState<P>, app: &App, completion: Completion<'_>) -> ApiResult<CompleteResponse> {
    let Completion { scope, digest, size_bytes, signature, idempotency_key } = completion;
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
        return Ok(complete_response(&artifact, true, verified, idempotency_key));
    }
    let key = storage_key(digest);
    let info = state
        .blobs
        .recorded(&key)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("nothing was uploaded to {key}")))?;
    if info.sha256 != digest || info.size_bytes != size_bytes {
        // The object holds other bytes than declared: remove it so it can never be served,
        // and forget the attempt so the client can start over.
        state.blobs.delete(&key).await?;
        state.store.delete_pending_upload(&key).await?;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "digest_mismatch",
            format!(
                "uploaded object has sha256 {} and {} bytes; declared {digest} and {size_bytes}; it was discarded",
                info.sha256, info.size_bytes
            ),
        ));
    }
    service::check_quota(state, app, digest, size_bytes).await?;
    let (artifact, duplicate) = service::register(state, Some(app), digest, size_bytes, signature).await?;
    state.store.delete_pending_upload(&key).await?;
    if let Some(key) = idempotency_key {
        let record = crate::model::IdempotencyRecord {
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
    Ok(complete_response(&artifact, duplicate, verified, idempotency_key))
}

pub fn idempotency_conflict(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        format!("idempotency key {key:?} was used with a different request"),
    )
}

fn complete_response(
    artifact: &crate::model::Artifact,
    duplicate: bool,
    verified: bool,
    key: Option<&str>,
) -> CompleteResponse {
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

pub async fn complete<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<CompleteRequest>,
) -> ApiResult<Json<CompleteResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let digest = request.digest.as_str();
    if let Some(key) = &request.storage_key
        && *key != storage_key(digest)
    {
        return Err(ApiError::bad_request(format!("storage_key {key:?} does not belong to digest {digest}")));
    }
    let completion = Completion {
        scope: "complete",
        digest,
        size_bytes: request.size_bytes,
        signature: request.signature.as_deref(),
        idempotency_key: request.idempotency_key.as_deref(),
    };
    let response = finish(&state, &app, completion).await?;
    Ok(Json(response))
}

pub async fn multipart_init<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<MultipartInitRequest>,
) -> ApiResult<Json<MultipartInitResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let digest = request.digest.as_str();
    check_size(&state, request.size_bytes)?;
    service::check_quota(&state, &app, digest, request.size_bytes).await?;
    let key = storage_key(digest);
    let upload_id = state.blobs.create_multipart(&key).await?;
    remember_pending(&state, &app, digest, request.size_bytes, Some(upload_id.clone())).await?;
    Ok(Json(MultipartInitResponse { upload_id, storage_key: key }))
}

pub async fn multipart_presign_part<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<PresignPartRequest>,
) -> ApiResult<Json<PresignPartResponse>> {
    find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    if !(1..=10_000).contains(&request.part_number) {
        return Err(ApiError::bad_request("part_number must be between 1 and 10000"));
    }
    let key = storage_key(request.digest.as_str());
    let presigned =
        state.blobs.presign_part(&key, &request.upload_id, request.part_number, state.config.presign_ttl).await?;
    Ok(Json(PresignPartResponse {
        url: presigned.url,
        method: presigned.method,
        headers: presigned.headers.into_iter().collect(),
    }))
}

pub async fn multipart_complete<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<MultipartCompleteRequest>,
) -> ApiResult<Json<CompleteResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let digest = request.digest.as_str();
    let replay = match &request.idempotency_key {
        Some(key) => state.store.get_idempotency("multipart_complete", key).await?.is_some(),
        None => false,
    };
    if !replay {
        let parts: Vec<(u32, String)> = request.parts.iter().map(|p| (p.part_number, p.etag.clone())).collect();
        state.blobs.complete_multipart(&storage_key(digest), &request.upload_id, &parts).await?;
    }
    let completion = Completion {
        scope: "multipart_complete",
        digest,
        size_bytes: request.size_bytes,
        signature: request.signature.as_deref(),
        idempotency_key: request.idempotency_key.as_deref(),
    };
    let response = finish(&state, &app, completion).await?;
    Ok(Json(response))
}

/// `PUT /uploads/{token}`: where presigned URLs of the local store point. The token itself is
/// the authorisation (an HMAC the server issued), so no bearer token is needed, as with S3.
pub async fn put_presigned<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(token): ApiPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let _slot = state.upload_slots.try_acquire().map_err(|_| {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_uploads", "too many uploads in progress; retry shortly")
    })?;
    let _gauge = state.metrics.upload_started();
    let started = std::time::Instant::now();
    let mut reader = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let written = state.blobs.accept_presigned(&token, &mut reader, state.config.max_artifact_size_bytes).await;
    let outcome = if written.is_ok() { "stored" } else { "failed" };
    state.metrics.upload_finished(outcome, written.as_ref().map_or(0, |(size, _)| *size), started.elapsed());
    let (_, etag) = written?;
    let mut response = StatusCode::OK.into_response();
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert("etag", etag);
    }
    Ok(response)
}
