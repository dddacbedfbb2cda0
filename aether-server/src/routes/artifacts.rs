//! Artifact metadata and the legacy direct upload.

use std::time::Instant;

use aether_core::api::{ArtifactPage, ArtifactResponse, LegacyUploadResponse, rfc3339_ms};
use aether_core::wire::{AppName, Digest};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;
use tokio_util::io::StreamReader;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::model::Artifact;
use crate::ports::{ArtifactStore, BlobError, MetadataStore};
use crate::service::{self, uploads};
use crate::state::{AppState, Ports};

pub fn artifact_response(a: &Artifact) -> ArtifactResponse {
    ArtifactResponse {
        id: a.id.clone(),
        digest: a.digest.clone(),
        size_bytes: u64::try_from(a.size_bytes).unwrap_or(0),
        storage_key: a.storage_key.clone(),
        signed: a.signature.is_some(),
        created_at: rfc3339_ms(a.created_at_ms),
    }
}

fn parse_digest(raw: &str) -> ApiResult<Digest> {
    Digest::parse(raw).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_digest", e.to_string()))
}

/// 200 when the artifact is stored (its row exists, and rows exist only for stored blobs).
pub async fn head<P: Ports>(State(state): State<AppState<P>>, ApiPath(digest): ApiPath<String>) -> Response {
    let Ok(digest) = Digest::parse(&digest) else { return StatusCode::BAD_REQUEST.into_response() };
    match state.store.get_artifact(digest.as_str()).await {
        Ok(Some(artifact)) => {
            let mut response = StatusCode::OK.into_response();
            if let Ok(length) = HeaderValue::from_str(&artifact.size_bytes.to_string()) {
                response.headers_mut().insert("x-aether-artifact-size", length);
            }
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => crate::error::with_retry_after(StatusCode::SERVICE_UNAVAILABLE.into_response()),
    }
}

pub async fn get<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(digest): ApiPath<String>,
) -> ApiResult<Json<ArtifactResponse>> {
    let digest = parse_digest(&digest)?;
    let artifact = state.store.get_artifact(digest.as_str()).await?;
    let artifact = artifact.ok_or_else(|| ApiError::not_found(format!("artifact {digest} not found")))?;
    Ok(Json(artifact_response(&artifact)))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}\\.[0-9a-f-]{1,64}$")]
    pub cursor: Option<String>,
}

/// A cursor is `<created_at_ms>.<id>` of the last item of the previous page; both parts are
/// checked as strictly as the documented pattern says.
fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once('.')?;
    let digits_ok = (1..=18).contains(&at.len()) && at.bytes().all(|b| b.is_ascii_digit());
    let id_ok = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    (digits_ok && id_ok).then(|| Some((at.parse().ok()?, id.to_owned()))).flatten()
}

/// Newest first; `cursor` is opaque to clients (`<created_at_ms>.<id>` of the last item).
pub async fn list<P: Ports>(
    State(state): State<AppState<P>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<ArtifactPage>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let before = match &query.cursor {
        Some(cursor) => Some(parse_cursor(cursor).ok_or_else(|| ApiError::bad_request("malformed cursor"))?),
        None => None,
    };
    let items = state.store.list_artifacts(before, limit).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|a| format!("{}.{}", a.created_at_ms, a.id)))
        .flatten();
    Ok(Json(ArtifactPage { items: items.iter().map(artifact_response).collect(), next_cursor }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct LegacyQuery {
    /// The app to link the artifact to (or the `x-aether-app` header).
    #[param(value_type = Option<AppName>)]
    pub app_name: Option<String>,
}

/// The headers of the legacy upload, for the document (the handler reads them from the map).
#[derive(Debug, utoipa::IntoParams)]
#[allow(dead_code)]
pub struct LegacyHeaders {
    /// The SHA-256 of the body; what arrives is verified against it.
    #[param(rename = "x-aether-artifact-digest", value_type = Digest)]
    pub digest: String,
    /// The artifact's signature (hex Ed25519 over the digest).
    #[param(rename = "x-aether-signature")]
    pub signature: Option<String>,
    /// The app to link the artifact to, when the query does not name it.
    #[param(rename = "x-aether-app", value_type = Option<AppName>)]
    pub app: Option<String>,
}

/// Deprecated single-request upload: the body is streamed to the store and verified against
/// `X-Aether-Artifact-Digest` before anything becomes visible.
pub async fn legacy_upload<P: Ports>(
    State(state): State<AppState<P>>,
    ApiQuery(query): ApiQuery<LegacyQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if state.config.require_presign {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "presign_required",
            "direct uploads are disabled; use POST /artifacts/presign",
        ));
    }
    let digest = legacy_digest(&headers)?;
    let signature = headers.get("x-aether-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let app = match query.app_name.as_deref().or_else(|| headers.get("x-aether-app").and_then(|v| v.to_str().ok())) {
        // A named app must exist: an upload meant for an app is not silently left unlinked.
        Some(name) => Some(crate::routes::apps::find_app(state.store.as_ref(), name).await?),
        None => None,
    };
    // Already stored: the bytes are known, so the body is not read again.
    let stored = match state.store.get_artifact(digest.as_str()).await? {
        Some(existing) => u64::try_from(existing.size_bytes).unwrap_or(0),
        None => {
            if let Some(app) = &app {
                service::check_quota(&state, app, digest.as_str(), declared_length(&headers).unwrap_or(0)).await?;
            }
            let (upload_id, size) = upload_body(&state, digest.as_str(), &headers, body).await?;
            if let Some(app) = &app
                && let Err(error) = service::check_quota(&state, app, digest.as_str(), size).await
            {
                state.blobs.discard(&upload_id, None).await?;
                return Err(error);
            }
            uploads::publish_staged(&state, &upload_id, digest.as_str()).await?;
            size
        }
    };
    let (artifact, duplicate) =
        service::register(&state, app.as_ref(), digest.as_str(), stored, signature.as_deref()).await?;
    let verified =
        service::verify_signature(state.store.as_ref(), app.as_ref(), digest.as_str(), signature.as_deref()).await?;
    let body = LegacyUploadResponse {
        artifact_url: format!("{}/artifacts/{}", state.config.public_url, artifact.digest),
        digest: artifact.digest,
        duplicate,
        app_linked: app.is_some(),
        verified,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert("deprecation", HeaderValue::from_static("true"));
    response.headers_mut().insert("link", HeaderValue::from_static("</artifacts/presign>; rel=\"successor-version\""));
    Ok(response)
}

fn legacy_digest(headers: &HeaderMap) -> ApiResult<Digest> {
    let raw = headers.get("x-aether-artifact-digest").ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "missing_digest", "X-Aether-Artifact-Digest header is required")
    })?;
    parse_digest(raw.to_str().unwrap_or_default())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// Streams the request body into a fresh staging area; returns its upload id and the size.
async fn upload_body<P: Ports>(
    state: &AppState<P>,
    digest: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(String, u64)> {
    let limit = state.config.max_artifact_size_bytes;
    if declared_length(headers).is_some_and(|n| n > limit) {
        return Err(BlobError::TooLarge { limit_bytes: limit }.into());
    }
    let _slot = state.upload_slots.try_acquire().map_err(|_| {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_uploads", "too many uploads in progress; retry shortly")
    })?;
    let _gauge = state.metrics.upload_started();
    let started = Instant::now();
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut reader = StreamReader::new(stream);
    let upload_id = uuid::Uuid::new_v4().to_string();
    let result = state.blobs.put_staged(&upload_id, &mut reader, limit, digest).await;
    let outcome = match &result {
        Ok(_) => "stored",
        Err(BlobError::DigestMismatch { .. }) => "digest_mismatch",
        Err(BlobError::TooLarge { .. }) => "too_large",
        Err(_) => "failed",
    };
    let size = result.as_ref().map_or(0, |info| info.size_bytes);
    state.metrics.upload_finished(outcome, size, started.elapsed());
    state.metrics.put_received(started.elapsed());
    Ok((upload_id, result?.size_bytes))
}
