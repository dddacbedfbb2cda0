//! Liveness, readiness and metrics: no token needed.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::error::{ApiError, ApiResult};
use std::time::Duration;

use crate::ports::{ArtifactStore, MetadataStore};
use crate::state::{AppState, Ports};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long each dependency may take to answer a readiness check.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Ready only while the database and the artifact store answer; recovers by itself when they
/// return.
pub async fn readyz<P: Ports>(State(state): State<AppState<P>>) -> ApiResult<&'static str> {
    let unavailable = |what: &str| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", format!("{what} is unreachable"))
    };
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed: database");
            return Err(unavailable("the database"));
        }
        Err(_) => return Err(unavailable("the database")),
    }
    match tokio::time::timeout(READY_TIMEOUT, state.blobs.ping()).await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(error)) => {
            tracing::warn!(error = %crate::error::chain(&error), "readiness check failed: artifact store");
            Err(unavailable("the artifact store"))
        }
        Err(_) => Err(unavailable("the artifact store")),
    }
}

pub async fn metrics<P: Ports>(State(state): State<AppState<P>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
