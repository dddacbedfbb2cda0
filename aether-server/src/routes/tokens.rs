//! Minting and revoking short-lived tokens (admin only).

use aether_core::api::{CreateTokenRequest, CreateTokenResponse, rfc3339_ms};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{hash_token, new_secret};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::model::{Role, Token};
use crate::ports::MetadataStore;
use crate::state::{AppState, Ports, now_ms};

/// Longest lifetime a minted token may have: one year.
const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

pub async fn create<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreateTokenResponse>)> {
    let role = Role::parse(&request.role)
        .ok_or_else(|| ApiError::bad_request(format!("unknown role {:?} (admin, deployer, reader)", request.role)))?;
    if request.ttl_secs.is_some_and(|ttl| ttl == 0 || ttl > MAX_TTL_SECS) {
        return Err(ApiError::bad_request(format!("ttl_secs must be between 1 and {MAX_TTL_SECS}")));
    }
    let now = now_ms();
    let expires_at_ms = request.ttl_secs.map(|ttl| now.saturating_add(i64::try_from(ttl).unwrap_or(0) * 1000));
    let secret = new_secret();
    let token = Token {
        id: uuid::Uuid::new_v4().to_string(),
        name: request.name,
        role,
        token_hash: hash_token(&secret),
        created_at_ms: now,
        expires_at_ms,
        revoked_at_ms: None,
    };
    state.store.insert_token(&token).await?;
    let response = CreateTokenResponse {
        id: token.id,
        token: secret,
        role: role.as_str().to_owned(),
        expires_at: expires_at_ms.map(rfc3339_ms),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn revoke<P: Ports>(State(state): State<AppState<P>>, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    if state.store.revoke_token(&id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("token {id} not found")))
    }
}
