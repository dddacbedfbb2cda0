//! The router: every route, its auth and its body limits.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};

use crate::error::ApiError;
use crate::ports::ArtifactStore as _;
use crate::routes::{apps, artifacts, deployments, health, tokens, uploads};
use crate::state::{AppState, Ports};

pub fn router<P: Ports>(state: AppState<P>) -> Router {
    let json_limit = DefaultBodyLimit::max(state.config.max_json_body_bytes);
    let authenticated = Router::new()
        .route("/apps", post(apps::create::<P>).get(apps::list::<P>))
        .route("/apps/{app}/deployments", get(apps::deployments::<P>))
        .route("/apps/{app}/public-keys", post(apps::add_public_key::<P>))
        .route("/apps/{app}/logs", get(apps::logs::<P>))
        .route("/apps/{app}/rollback", post(deployments::rollback::<P>))
        .route("/artifacts/presign", post(uploads::presign::<P>))
        .route("/artifacts/complete", post(uploads::complete::<P>))
        .route("/artifacts/multipart/init", post(uploads::multipart_init::<P>))
        .route("/artifacts/multipart/presign-part", post(uploads::multipart_presign_part::<P>))
        .route("/artifacts/multipart/complete", post(uploads::multipart_complete::<P>))
        .route("/artifacts/{digest}", get(artifacts::get::<P>).head(artifacts::head::<P>))
        .route("/deployments", post(deployments::create::<P>))
        .route("/deployments/{id}", get(deployments::get::<P>))
        .route("/tokens", post(tokens::create::<P>))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke::<P>))
        .layer(json_limit)
        // The legacy upload streams artifact bodies: no small limit, the store enforces the size.
        .route(
            "/artifacts",
            get(artifacts::list::<P>).post(artifacts::legacy_upload::<P>).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::auth::require_token::<P>));
    let mut public = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz::<P>))
        .route("/metrics", get(health::metrics::<P>))
        .route("/openapi.json", get(crate::openapi::document::<P>));
    if state.blobs.serves_presigned_urls() {
        // Presigned URLs of the local store carry their own HMAC authorisation, like S3's.
        public = public
            .route("/uploads/{token}", put(uploads::put_presigned::<P>).layer(DefaultBodyLimit::disable()))
            .route("/downloads/{token}", get(uploads::get_presigned::<P>));
    }
    public
        .merge(authenticated)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track::<P>))
        // A body that stops arriving fails its request instead of holding it open.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.config.body_idle_timeout))
        .with_state(state)
}
