//! Every failure leaves the server as `{"code", "message"}` with the right status, here and
//! nowhere else.

use aether_core::wire::ErrorEnvelope;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ports::{BlobError, RuntimeError, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Sent as `Retry-After` with every 503: the causes (a database or object store that went
/// away, a cluster API that throttles) last seconds when they pass at all, and a hint keeps
/// clients from retrying in a tight loop meanwhile.
pub const RETRY_AFTER_SECS: u32 = 2;

/// A 503 answer gets its `Retry-After`.
pub fn with_retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorEnvelope { code: self.code.to_owned(), message: self.message };
        with_retry_after((self.status, Json(body)).into_response())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Database(source) => {
                tracing::error!(error = %source, "database error");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the database is unavailable")
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::NotFound(what) => Self::not_found(format!("{what} not found")),
            BlobError::TooLarge { limit_bytes } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("artifact exceeds the limit of {limit_bytes} bytes"),
            ),
            BlobError::Invalid(message) => Self::bad_request(message),
            BlobError::Denied(message) => Self::forbidden(message),
            BlobError::Conflict(message) => Self::conflict(message),
            BlobError::InsufficientStorage(message) => {
                tracing::error!(%message, "the artifact store is out of space");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the artifact store is out of space; nothing was stored",
                )
            }
            BlobError::DigestMismatch { expected, actual } => Self::new(
                StatusCode::BAD_REQUEST,
                "digest_mismatch",
                format!("the uploaded bytes hash to {actual}, not the declared {expected}; nothing was stored"),
            ),
            error @ BlobError::Backend { .. } => {
                tracing::error!(error = %crate::error::chain(&error), "object storage error");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "object storage is unavailable")
            }
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::Unsupported(what) => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_implemented",
                format!("the runtime does not support {what}"),
            ),
            error @ RuntimeError::Failed { retryable: true, .. } => {
                tracing::warn!(error = %chain(&error), "the runtime is unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", error.to_string())
            }
            error @ RuntimeError::Failed { .. } => {
                tracing::warn!(error = %chain(&error), "the runtime failed");
                Self::new(StatusCode::BAD_GATEWAY, "runtime_error", error.to_string())
            }
        }
    }
}

/// An error with its causes, `: `-separated, for logs.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
