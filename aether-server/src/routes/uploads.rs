//! Two-phase uploads: presign, the client PUTs the bytes, complete. Multipart likewise. The
//! rules live in [`crate::service::uploads`]; these handlers parse and answer.

use aether_core::api::{
    CompleteRequest, CompleteResponse, MultipartCompleteRequest, MultipartInitRequest, MultipartInitResponse,
    PresignPartRequest, PresignPartResponse, PresignRequest, PresignResponse,
};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::ports::ArtifactStore;
use crate::routes::apps::find_app;
use crate::service::storage_key;
use crate::service::uploads::{self, Completion, Declaration};
use crate::state::{AppState, Ports};

pub async fn presign<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<PresignRequest>,
) -> ApiResult<Json<PresignResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let declared = Declaration { app: &app, digest: request.digest.as_str(), size_bytes: request.size_bytes };
    Ok(Json(uploads::presign(&state, declared).await?))
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
        app: &app,
        digest,
        size_bytes: request.size_bytes,
        upload_id: request.upload_id.as_deref(),
        signature: request.signature.as_deref(),
        idempotency_key: request.idempotency_key.as_deref(),
    };
    Ok(Json(uploads::complete(&state, completion).await?))
}

pub async fn multipart_init<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<MultipartInitRequest>,
) -> ApiResult<Json<MultipartInitResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let declared = Declaration { app: &app, digest: request.digest.as_str(), size_bytes: request.size_bytes };
    Ok(Json(uploads::init_multipart(&state, declared).await?))
}

pub async fn multipart_presign_part<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<PresignPartRequest>,
) -> ApiResult<Json<PresignPartResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    Ok(Json(uploads::presign_part(&state, &app, &request.upload_id, request.part_number).await?))
}

pub async fn multipart_complete<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<MultipartCompleteRequest>,
) -> ApiResult<Json<CompleteResponse>> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    let completion = Completion {
        app: &app,
        digest: request.digest.as_str(),
        size_bytes: request.size_bytes,
        upload_id: Some(&request.upload_id),
        signature: request.signature.as_deref(),
        idempotency_key: request.idempotency_key.as_deref(),
    };
    let parts: Vec<(u32, String)> = request.parts.iter().map(|p| (p.part_number, p.etag.clone())).collect();
    Ok(Json(uploads::complete_multipart(&state, completion, &parts).await?))
}

/// Most of a refused upload's body that is read to let its client see the answer.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// `PUT /uploads/{token}`: where the local store's presigned upload URLs point. The token
/// itself is the authorisation (an HMAC the server issued), so no bearer token is needed, as
/// with S3. Mounted only when the artifact store serves its own URLs.
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
    let written = state.blobs.accept_upload(&token, &mut reader, state.config.max_artifact_size_bytes).await;
    let outcome = match &written {
        Ok(_) => "stored",
        Err(crate::ports::BlobError::DigestMismatch { .. }) => "digest_mismatch",
        Err(crate::ports::BlobError::TooLarge { .. }) => "too_large",
        Err(_) => "failed",
    };
    state.metrics.upload_finished(outcome, written.as_ref().map_or(0, |(size, _)| *size), started.elapsed());
    state.metrics.put_received(started.elapsed());
    if matches!(written, Err(crate::ports::BlobError::InsufficientStorage(_))) {
        // Refused midway through the body: a client still sending would see its connection
        // closed (a broken pipe) instead of this answer, so a bounded rest is read and dropped.
        let _ =
            tokio::io::copy(&mut tokio::io::AsyncReadExt::take(&mut reader, DRAIN_BYTES), &mut tokio::io::sink()).await;
    }
    let (_, etag) = written?;
    let mut response = StatusCode::OK.into_response();
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert("etag", etag);
    }
    Ok(response)
}

/// `GET /downloads/{token}`: where the local store's presigned download URLs point (the
/// Kubernetes fetcher downloads artifacts through them).
pub async fn get_presigned<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<Response> {
    let (size, reader) = state.blobs.serve_download(&token).await?;
    let mut response = Body::from_stream(ReaderStream::with_capacity(reader, 256 * 1024)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    if let Ok(length) = HeaderValue::from_str(&size.to_string()) {
        headers.insert(header::CONTENT_LENGTH, length);
    }
    Ok(response)
}
