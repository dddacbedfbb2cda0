//! Deployments: create (idempotently), read, and roll back.

use aether_core::api::{
    CreateDeploymentRequest, DeploymentEventResponse, DeploymentResponse, RollbackRequest, rfc3339_ms,
};
use aether_core::deployment::DeploymentStatus;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::deployer::{self, Replacement};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::model::{App, Artifact, Deployment, DeploymentEvent, IdempotencyRecord};
use crate::ports::{ArtifactStore, MetadataStore, Runtime};
use crate::routes::apps::find_app;
use crate::service;
use crate::service::uploads::idempotency_conflict;
use crate::state::{AppState, Ports, now_ms};

pub fn deployment_response(d: &Deployment, events: Option<&[DeploymentEvent]>) -> DeploymentResponse {
    DeploymentResponse {
        id: d.id.clone(),
        app_name: d.app_name.clone(),
        digest: d.digest.clone(),
        status: d.status,
        created_at: rfc3339_ms(d.created_at_ms),
        updated_at: rfc3339_ms(d.updated_at_ms),
        url: d.url.clone(),
        failure_reason: d.failure_reason.clone(),
        env_sha256: aether_core::api::env_sha256(&d.env),
        events: events.map(|events| {
            events
                .iter()
                .map(|e| DeploymentEventResponse {
                    from: e.from_status,
                    to: e.to_status,
                    reason: e.reason.clone(),
                    at: rfc3339_ms(e.at_ms),
                })
                .collect()
        }),
    }
}

/// Whether the artifact may run: its signature must verify when the server requires it.
async fn check_signature<P: Ports>(
    state: &AppState<P>,
    app: &App,
    artifact: &Artifact,
    signature: Option<&str>,
) -> ApiResult<bool> {
    let signature = signature.or(artifact.signature.as_deref());
    let verified = service::verify_signature(state.store.as_ref(), Some(app), &artifact.digest, signature).await?;
    if state.config.require_signature {
        if signature.is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "signature_required",
                "this server only deploys signed artifacts",
            ));
        }
        if !verified {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "signature_unverified",
                format!("the signature does not match an active key of app {}", app.name),
            ));
        }
    }
    Ok(verified)
}

/// What a new deployment runs besides its artifact.
struct Launch {
    runtime: Option<String>,
    signature: Option<String>,
    verified: bool,
    env: std::collections::BTreeMap<String, String>,
}

/// Creates a pending deployment with its first event and starts rolling it out. With an
/// idempotency record, a request whose key is taken creates nothing and gets the deployment
/// the key names (or a conflict when the key was used for another request).
async fn start<P: Ports>(
    state: &AppState<P>,
    app: &App,
    artifact: &Artifact,
    launch: Launch,
    replacement: Replacement,
    idempotency: Option<(&str, String)>,
) -> ApiResult<Deployment> {
    let Launch { runtime, signature, verified, env } = launch;
    let now = now_ms();
    let row = Deployment {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: app.id.clone(),
        app_name: app.name.clone(),
        artifact_id: artifact.id.clone(),
        digest: artifact.digest.clone(),
        status: DeploymentStatus::Pending,
        runtime: runtime.unwrap_or_else(|| state.runtime.name().to_owned()),
        url: None,
        failure_reason: None,
        signature,
        verified,
        env,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let first = DeploymentEvent {
        deployment_id: row.id.clone(),
        from_status: None,
        to_status: DeploymentStatus::Pending,
        reason: None,
        at_ms: now,
    };
    let record = idempotency.as_ref().map(|(key, hash)| IdempotencyRecord {
        scope: "deployment".into(),
        key: (*key).to_owned(),
        request_hash: hash.clone(),
        resource_id: row.id.clone(),
        created_at_ms: now,
    });
    if let Some(existing) = state.store.insert_deployment(&row, &first, record.as_ref()).await? {
        return replay(state, &existing, record.as_ref().map_or("", |r| r.request_hash.as_str())).await;
    }
    tokio::spawn(deployer::drive(state.clone(), row.clone(), replacement));
    Ok(row)
}

/// The deployment an idempotency key already names, if the request is the same one.
async fn replay<P: Ports>(state: &AppState<P>, record: &IdempotencyRecord, hash: &str) -> ApiResult<Deployment> {
    if record.request_hash != hash {
        return Err(idempotency_conflict(&record.key));
    }
    state
        .store
        .get_deployment(&record.resource_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the deployment of this idempotency key is gone"))
}

pub async fn create<P: Ports>(
    State(state): State<AppState<P>>,
    ApiJson(request): ApiJson<CreateDeploymentRequest>,
) -> ApiResult<(StatusCode, Json<DeploymentResponse>)> {
    let app = find_app(state.store.as_ref(), request.app_name.as_str()).await?;
    aether_core::api::validate_env(&request.env).map_err(ApiError::bad_request)?;
    if let Some(asked) = request.runtime.as_deref().filter(|asked| *asked != state.runtime.name()) {
        return Err(ApiError::bad_request(format!(
            "runtime {asked:?} is not available: this server runs releases with {:?}",
            state.runtime.name()
        )));
    }
    let digest = request.digest.as_str();
    let artifact = state
        .store
        .get_artifact(digest)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("artifact {digest} not found")))?;
    let hash = aether_core::digest::sha256_hex(
        [
            app.name.as_str(),
            digest,
            request.runtime.as_deref().unwrap_or(""),
            request.signature.as_deref().unwrap_or(""),
            &serde_json::to_string(&request.env).unwrap_or_default(),
        ]
        .join("\n")
        .as_bytes(),
    );
    if let Some(key) = &request.idempotency_key
        && let Some(record) = state.store.get_idempotency("deployment", key).await?
    {
        let existing = replay(&state, &record, &hash).await?;
        return Ok((StatusCode::CREATED, Json(deployment_response(&existing, None))));
    }
    let verified = check_signature(&state, &app, &artifact, request.signature.as_deref()).await?;
    let launch = Launch {
        runtime: request.runtime.clone(),
        signature: request.signature.clone(),
        verified,
        env: request.env.clone(),
    };
    let idempotency = request.idempotency_key.as_deref().map(|key| (key, hash));
    let row = start(&state, &app, &artifact, launch, Replacement::Supersede, idempotency).await?;
    Ok((StatusCode::CREATED, Json(deployment_response(&row, None))))
}

pub async fn get<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeploymentResponse>> {
    let row = state
        .store
        .get_deployment(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("deployment {id} not found")))?;
    let events = state.store.deployment_events(&id).await?;
    Ok(Json(deployment_response(&row, Some(&events))))
}

/// Redeploys the given deployment's artifact, or the one that ran before the current one,
/// after re-verifying the stored bytes and the signature.
pub async fn rollback<P: Ports>(
    State(state): State<AppState<P>>,
    ApiPath(name): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<DeploymentResponse>)> {
    // The body is optional: an empty one means "the previous release".
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    if let Some(to) = &request.to
        && uuid::Uuid::try_parse(to).map(|id| id.to_string()).as_deref() != Ok(to.as_str())
    {
        return Err(ApiError::bad_request(format!("`to` must be a deployment id (a lowercase UUID), not {to:?}")));
    }
    let app = find_app(state.store.as_ref(), &name).await?;
    let history = state.store.list_deployments(&app.id).await?;
    let current = history.iter().find(|d| d.status == DeploymentStatus::Running);
    let was_live = |d: &&Deployment| matches!(d.status, DeploymentStatus::Superseded | DeploymentStatus::RolledBack);
    let target = match &request.to {
        Some(id) => history
            .iter()
            .find(|d| &d.id == id)
            // 409 like "no earlier release": the app exists, it has no such release to go back to.
            .ok_or_else(|| ApiError::conflict(format!("app {name} has no deployment {id} to roll back to")))?,
        None => history
            .iter()
            .filter(was_live)
            .find(|d| current.is_none_or(|c| d.digest != c.digest && d.created_at_ms < c.created_at_ms))
            .ok_or_else(|| ApiError::conflict(format!("app {name} has no earlier release to roll back to")))?,
    };
    let artifact = state
        .store
        .get_artifact_by_id(&target.artifact_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the artifact of that deployment is gone"))?;
    // A cheap presence and size check: the runtime re-verifies the digest while it fetches.
    let stored = state.blobs.head(&artifact.storage_key).await?;
    if stored != u64::try_from(artifact.size_bytes).ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "digest_mismatch",
            format!("stored artifact {} is missing or no longer has its recorded size", artifact.digest),
        ));
    }
    let verified = check_signature(&state, &app, &artifact, target.signature.as_deref()).await?;
    let launch = Launch {
        runtime: Some(target.runtime.clone()),
        signature: target.signature.clone(),
        verified,
        env: target.env.clone(),
    };
    let row = start(&state, &app, &artifact, launch, Replacement::RollBack, None).await?;
    Ok((StatusCode::CREATED, Json(deployment_response(&row, None))))
}
