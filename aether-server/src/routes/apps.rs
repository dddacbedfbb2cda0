//! Applications and their signing keys.

use aether_core::api::{
    AddPublicKeyRequest, AppResponse, CreateAppRequest, DeploymentResponse, PublicKeyResponse, rfc3339_ms,
};
use aether_core::wire::AppName;
use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use futures_util::StreamExt as _;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::{App, PublicKey};
use crate::ports::{LogQuery, MetadataStore, Runtime};
use crate::routes::deployments::deployment_response;
use crate::state::{AppState, Ports, now_ms};

pub fn app_response(app: &App) -> AppResponse {
    AppResponse { id: app.id.clone(), name: app.name.clone(), created_at: rfc3339_ms(app.created_at_ms) }
}

/// Looks an app up by a name from the URL, validating it first (400, then 404).
pub async fn find_app<M: MetadataStore>(store: &M, name: &str) -> ApiResult<App> {
    AppName::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    store.get_app(name).await?.ok_or_else(|| ApiError::not_found(format!("app {name} not found")))
}

pub async fn create<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<CreateAppRequest>,
) -> ApiResult<(StatusCode, Json<AppResponse>)> {
    let id = uuid::Uuid::new_v4().to_string();
    let app = state.store.create_app(&id, request.name.as_str(), now_ms()).await.map_err(|e| match e {
        crate::ports::StoreError::Conflict(_) => ApiError::conflict(format!("app {} already exists", request.name)),
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(app_response(&app))))
}

pub async fn list<P: Ports>(State(state): State<AppState<P>>) -> ApiResult<Json<Vec<AppResponse>>> {
    let apps = state.store.list_apps().await?;
    Ok(Json(apps.iter().map(app_response).collect()))
}

pub async fn deployments<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Vec<DeploymentResponse>>> {
    let app = find_app(state.store.as_ref(), &name).await?;
    let rows = state.store.list_deployments(&app.id).await?;
    Ok(Json(rows.iter().map(|d| deployment_response(d, None)).collect()))
}

pub async fn add_public_key<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<AddPublicKeyRequest>,
) -> ApiResult<(StatusCode, Json<PublicKeyResponse>)> {
    let app = find_app(state.store.as_ref(), &name).await?;
    let hex_key = request.public_key_hex.to_ascii_lowercase();
    // Reject what could never verify anything: a key must be a valid Ed25519 point.
    aether_core::signing::verify_digest(&hex_key, "", &"0".repeat(128)).or_else(|e| match e {
        aether_core::signing::VerifyError::Key(k) => Err(ApiError::bad_request(k.to_string())),
        _ => Ok(()),
    })?;
    let key = PublicKey {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: app.id.clone(),
        public_key_hex: hex_key,
        active: true,
        created_at_ms: now_ms(),
    };
    state.store.add_public_key(&key).await?;
    Ok((
        StatusCode::CREATED,
        Json(PublicKeyResponse { app_id: app.id, public_key_hex: key.public_key_hex, active: key.active }),
    ))
}

/// The most lines one request returns.
const MAX_TAIL: usize = 10_000;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct LogsQuery {
    /// The newest this many lines (default 100, at most 10,000).
    #[param(minimum = 0, maximum = 10000)]
    pub tail: Option<usize>,
    /// Only lines at or after this Unix millisecond.
    pub since_ms: Option<i64>,
    /// Only this deployment's lines.
    pub deployment: Option<String>,
    /// Keep the response open and send new lines as they come.
    #[serde(default)]
    pub follow: bool,
}

/// A JSON array of rendered lines, oldest first; with `follow=true` a `text/event-stream`
/// whose events each carry one rendered line as `data`: the same tail first, then every new
/// line, until the client disconnects or the server shuts down.
pub async fn logs<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(request): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let app = find_app(state.store.as_ref(), &name).await?;
    if request.tail.is_some_and(|tail| tail > MAX_TAIL) {
        return Err(ApiError::bad_request(format!("tail must be at most {MAX_TAIL}")));
    }
    let query =
        LogQuery { tail: request.tail.unwrap_or(100), since_ms: request.since_ms, deployment_id: request.deployment };
    if !request.follow {
        let lines: Vec<_> = state.runtime.logs(&app.name, &query).await?.collect().await;
        let rendered = lines.into_iter().map(|line| line.map(|line| line.render())).collect::<Result<Vec<_>, _>>();
        return Ok(Json(rendered?).into_response());
    }
    let lines = state.runtime.follow(&app.name, &query).await?;
    // A broken log stream ends the response with an `error` event saying why, not silently,
    // and right after it: waiting for the runtime's next line could hold the response open.
    let events = futures_util::stream::unfold(Some(lines), |lines| async move {
        let mut lines = lines?;
        let (event, rest) = match lines.next().await? {
            Ok(line) => (Event::default().data(line.render()), Some(lines)),
            Err(error) => (Event::default().event("error").data(error.to_string()), None),
        };
        Some((Ok::<_, Infallible>(event), rest))
    })
    .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
