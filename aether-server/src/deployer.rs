//! Drives deployments through core's state machine: every transition is decided by
//! `aether_core::deployment`, written with its event in one transaction, and the machine's
//! actions are carried out here.

use aether_core::deployment::{Action, Deployment as Machine, DeploymentEvent, DeploymentStatus, EventRecord};

use crate::error::{ApiError, ApiResult};
use crate::model::{Deployment, DeploymentEvent as EventRow};
use crate::ports::{MetadataStore, ReleaseSpec, Runtime};
use crate::state::{AppState, Ports, now_ms};

/// The port of a URL the local runtime handed out (`http://127.0.0.1:PORT`).
fn url_port(url: &str) -> Option<u16> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// How a deployment that becomes running treats the one it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    Supersede,
    RollBack,
}

fn machine(row: &Deployment) -> ApiResult<Machine> {
    Machine::restore(row.status, row.created_at_ms, row.updated_at_ms, row.url.clone(), row.failure_reason.clone())
        .map_err(|e| ApiError::internal(format!("deployment {} is inconsistent: {e}", row.id)))
}

/// Applies `event` to the stored deployment; returns the new row and the machine's actions.
pub async fn transition<M: MetadataStore>(
    store: &M,
    row: &Deployment,
    event: DeploymentEvent,
) -> ApiResult<(Deployment, Vec<Action>)> {
    let mut machine = machine(row)?;
    let actions = machine
        .handle(event, now_ms())
        .map_err(|e| ApiError::new(axum::http::StatusCode::CONFLICT, "conflict", e.to_string()))?;
    let record = actions.iter().find_map(|a| match a {
        Action::RecordEvent(record) => Some(record.clone()),
        _ => None,
    });
    let record = record.ok_or_else(|| ApiError::internal("transition without an event record"))?;
    let updated = Deployment {
        status: machine.status(),
        url: machine.url().map(str::to_owned),
        failure_reason: machine.failure_reason().map(str::to_owned),
        updated_at_ms: machine.updated_at_unix_ms(),
        ..row.clone()
    };
    if !store.apply_transition(&updated, row.status, &event_row(&row.id, &record)).await? {
        return Err(ApiError::conflict(format!("deployment {} changed concurrently", row.id)));
    }
    Ok((updated, actions))
}

pub fn event_row(deployment_id: &str, record: &EventRecord) -> EventRow {
    EventRow {
        deployment_id: deployment_id.to_owned(),
        from_status: Some(record.from),
        to_status: record.to,
        reason: record.reason.clone(),
        at_ms: record.at_unix_ms,
    }
}

/// Rolls a pending deployment out: deploying, then running or failed. Runs in the background.
pub async fn drive<P: Ports>(state: AppState<P>, row: Deployment, replacement: Replacement) {
    if let Err(error) = drive_inner(&state, row, replacement).await {
        tracing::error!(code = error.code, message = %error.message, "deployment rollout failed to record");
    }
}

/// What the runtime needs to run the deployment. The signature is passed only when it was
/// verified at creation, so the runtime re-checks what the control plane vouched for and an
/// unverified (but allowed) signature does not turn into a failed release.
async fn release_spec<P: Ports>(state: &AppState<P>, row: &Deployment) -> ApiResult<ReleaseSpec> {
    let artifact = state.store.get_artifact_by_id(&row.artifact_id).await?;
    let keys = state.store.active_public_keys(&row.app_id).await?;
    let signature = row.signature.clone().or_else(|| artifact.as_ref().and_then(|a| a.signature.clone()));
    Ok(ReleaseSpec {
        deployment_id: row.id.clone(),
        app_name: row.app_name.clone(),
        digest: row.digest.clone(),
        storage_key: artifact.map(|a| a.storage_key).unwrap_or_default(),
        signature: signature.filter(|_| row.verified),
        public_keys: keys.into_iter().map(|k| k.public_key_hex).collect(),
        port: None,
        env: row.env.clone(),
    })
}

async fn drive_inner<P: Ports>(state: &AppState<P>, row: Deployment, replacement: Replacement) -> ApiResult<()> {
    let previous = state.store.running_deployment(&row.app_id).await?;
    let (row, _) = transition(state.store.as_ref(), &row, DeploymentEvent::RolloutStarted).await?;
    let event = match release_spec(state, &row).await {
        Ok(spec) => match state.runtime.apply(&spec).await {
            Ok(url) => DeploymentEvent::RolloutSucceeded { url },
            Err(error) => DeploymentEvent::RolloutFailed { reason: error.to_string() },
        },
        Err(error) => DeploymentEvent::RolloutFailed { reason: error.message },
    };
    let started = matches!(event, DeploymentEvent::RolloutSucceeded { .. });
    let (row, actions) = match transition(state.store.as_ref(), &row, event).await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Cancelled (or otherwise changed) while it rolled out: nothing may keep running
            // for a deployment whose record says it is not.
            if started {
                state.runtime.stop(&row.id).await?;
            }
            return Err(error);
        }
    };
    for action in actions {
        match action {
            Action::SupersedePrevious => retire_previous(state, previous.as_ref(), &row, replacement).await?,
            Action::StopRelease => state.runtime.stop(&row.id).await?,
            Action::StartRollout | Action::RecordEvent(_) => {}
        }
    }
    Ok(())
}

async fn retire_previous<P: Ports>(
    state: &AppState<P>,
    previous: Option<&Deployment>,
    current: &Deployment,
    replacement: Replacement,
) -> ApiResult<()> {
    let Some(previous) = previous.filter(|p| p.id != current.id && p.status == DeploymentStatus::Running) else {
        return Ok(());
    };
    // Re-read: the previous deployment may have changed while this one rolled out.
    let Some(fresh) = state.store.get_deployment(&previous.id).await? else { return Ok(()) };
    if fresh.status != DeploymentStatus::Running {
        return Ok(());
    }
    let event = match replacement {
        Replacement::Supersede => DeploymentEvent::Superseded { by: current.id.clone() },
        Replacement::RollBack => DeploymentEvent::RolledBack { reason: Some(format!("rolled back to {}", current.id)) },
    };
    let (_, actions) = transition(state.store.as_ref(), &fresh, event).await?;
    if actions.iter().any(|a| matches!(a, Action::StopRelease)) {
        state.runtime.stop(&fresh.id).await?;
    }
    Ok(())
}

/// Starts again every deployment recorded as running, each on the port of its recorded URL so
/// that URL stays valid. Runs once at start-up, before or while the server serves.
///
/// A release that cannot be restored keeps its `running` status: core's state machine has no
/// `running -> failed` transition, and inventing one here would bypass it. The failure is
/// logged as an error instead, and the next deployment of the app replaces it as usual.
pub async fn restore_running<P: Ports>(state: &AppState<P>) -> ApiResult<()> {
    let rows = state.store.running_deployments().await?;
    let restores = rows.iter().map(|row| async move {
        let outcome = match release_spec(state, row).await {
            Ok(spec) => {
                let spec = ReleaseSpec { port: row.url.as_deref().and_then(url_port), ..spec };
                state.runtime.apply(&spec).await.map_err(|e| e.to_string())
            }
            Err(error) => Err(error.message),
        };
        match outcome {
            Ok(url) if url == row.url => {
                tracing::info!(app = %row.app_name, deployment = %row.id, url = ?url, "restored a running release");
            }
            Ok(url) => tracing::warn!(
                app = %row.app_name, deployment = %row.id, recorded_url = ?row.url, url = ?url,
                "restored a running release at a different URL: its port was taken"
            ),
            Err(reason) => tracing::error!(
                app = %row.app_name, deployment = %row.id, %reason,
                "cannot restore a running release after a restart; it stays recorded as running but serves nothing until the app is deployed again"
            ),
        }
    });
    futures_util::future::join_all(restores).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::url_port;

    #[test]
    fn ports_come_from_recorded_urls() {
        assert_eq!(url_port("http://127.0.0.1:41234"), Some(41234));
        assert_eq!(url_port("http://127.0.0.1:41234/"), Some(41234));
        assert_eq!(url_port("http://[::1]:8080/x"), Some(8080));
        assert_eq!(url_port("http://fake.invalid/abc"), None);
        assert_eq!(url_port("nonsense"), None);
    }
}
