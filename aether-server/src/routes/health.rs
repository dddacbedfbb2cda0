//! Liveness, readiness and metrics: no token needed.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::error::{ApiError, ApiResult};
use crate::ports::MetadataStore;
use crate::state::{AppState, Ports};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready only while the database answers; recovers by itself when it returns.
pub async fn readyz<P: Ports>(State(state): State<AppState<P>>) -> ApiResult<&'static str> {
    match state.store.ping().await {
        Ok(()) => Ok("ready\n"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the database is unreachable"))
        }
    }
}

pub async fn metrics<P: Ports>(State(state): State<AppState<P>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
