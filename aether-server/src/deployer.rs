//! Drives deployments through core's state machine: every transition is decided by
//! `aether_core::deployment`, written with its event in one transaction, and the machine's
//! actions are carried out here.

use aether_core::deployment::{Action, Deployment as Machine, DeploymentEvent, DeploymentStatus, EventRecord};

use crate::error::{ApiError, ApiResult};
use crate::model::{Deployment, DeploymentEvent as EventRow};
use crate::ports::{MetadataStore, ReleaseSpec, Runtime};
use crate::state::{AppState, Ports, now_ms};

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

async fn drive_inner<P: Ports>(state: &AppState<P>, row: Deployment, replacement: Replacement) -> ApiResult<()> {
    let previous = state.store.running_deployment(&row.app_id).await?;
    let (row, _) = transition(state.store.as_ref(), &row, DeploymentEvent::RolloutStarted).await?;
    let artifact = state.store.get_artifact_by_id(&row.artifact_id).await?;
    let storage_key = artifact.map(|a| a.storage_key).unwrap_or_default();
    let spec = ReleaseSpec {
        deployment_id: row.id.clone(),
        app_name: row.app_name.clone(),
        digest: row.digest.clone(),
        storage_key,
    };
    let event = match state.runtime.apply(&spec).await {
        Ok(url) => DeploymentEvent::RolloutSucceeded { url },
        Err(error) => DeploymentEvent::RolloutFailed { reason: error.to_string() },
    };
    let (row, actions) = transition(state.store.as_ref(), &row, event).await?;
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
