//! Drives deployments through core's state machine: every transition is decided by
//! `aether_core::deployment`, written with its event in one transaction, and the machine's
//! actions are carried out here.
//!
//! A rollout is started on the runtime, then followed: each step the runtime reports becomes a
//! `progress` event of the deployment (so clients see it as it happens), and its end becomes
//! `running` or `failed`. One live replica at a time does this for a deployment, under the
//! lease `rollout:<id>` (see [`crate::lease`]). [`run_reconciler`] picks up what nobody holds:
//! at start what a predecessor left, and later the rollouts of a replica that died.

use aether_core::deployment::{Action, Deployment as Machine, DeploymentEvent, DeploymentStatus, EventRecord};
use futures_util::StreamExt as _;

use crate::error::{ApiError, ApiResult};
use crate::lease::LeaseGuard;
use crate::model::{Deployment, DeploymentEvent as EventRow};
use crate::ports::{Health, MetadataStore, ReleaseSpec, Rollout, RolloutProgress, Runtime, RuntimeError};
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

/// The lease under which a deployment's rollout is followed.
fn lease_name(deployment_id: &str) -> String {
    format!("rollout:{deployment_id}")
}

/// Rolls a pending deployment out: deploying, then running or failed. Runs in the background;
/// does nothing if another replica already holds the rollout.
pub async fn drive<P: Ports>(state: AppState<P>, row: Deployment, replacement: Replacement) {
    let Some(lease) = state.leases.claim(&state.store, &lease_name(&row.id)).await else { return };
    drive_claimed(state, row, replacement, lease).await;
}

async fn drive_claimed<P: Ports>(state: AppState<P>, row: Deployment, replacement: Replacement, lease: LeaseGuard) {
    if let Err(error) = drive_inner(&state, row, replacement, &lease).await {
        tracing::error!(code = error.code, message = %error.message, "deployment rollout failed to record");
    }
}

/// What the runtime needs to run the deployment. The signature is passed only when it was
/// verified at creation, so the runtime re-checks what the control plane vouched for and an
/// unverified (but allowed) signature does not turn into a failed release.
pub async fn release_spec<P: Ports>(state: &AppState<P>, row: &Deployment) -> ApiResult<ReleaseSpec> {
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
        port: row.url.as_deref().and_then(url_port),
        env: row.env.clone(),
    })
}

async fn drive_inner<P: Ports>(
    state: &AppState<P>,
    row: Deployment,
    replacement: Replacement,
    lease: &LeaseGuard,
) -> ApiResult<()> {
    let (row, _) = transition(state.store.as_ref(), &row, DeploymentEvent::RolloutStarted).await?;
    let spec = match release_spec(state, &row).await {
        Ok(spec) => spec,
        Err(error) => {
            return settle(state, &row, None, DeploymentEvent::RolloutFailed { reason: error.message }, replacement)
                .await;
        }
    };
    let rollout = match state.runtime.start(&spec).await {
        Ok(()) => state.runtime.watch(&spec).await,
        Err(error) => Err(error),
    };
    follow(state, row, spec, rollout, replacement, lease).await
}

/// Records the rollout's steps as they come and its end, within `AETHER_ROLLOUT_TIMEOUT_SECS`,
/// as long as this replica holds the rollout's lease.
async fn follow<P: Ports>(
    state: &AppState<P>,
    mut row: Deployment,
    spec: ReleaseSpec,
    rollout: Result<Rollout, RuntimeError>,
    replacement: Replacement,
    lease: &LeaseGuard,
) -> ApiResult<()> {
    let mut rollout = match rollout {
        Ok(rollout) => rollout,
        Err(error) => {
            let event = DeploymentEvent::RolloutFailed { reason: error.to_string() };
            return settle(state, &row, Some(&spec), event, replacement).await;
        }
    };
    let deadline = tokio::time::Instant::now() + state.config.rollout_timeout;
    let end = loop {
        let report = tokio::select! {
            report = tokio::time::timeout_at(deadline, rollout.next()) => report,
            () = lease.lost() => {
                tracing::warn!(deployment = %row.id, "another replica follows this rollout now");
                return Ok(());
            }
        };
        match report {
            Ok(Some(RolloutProgress::Step(message))) => {
                match transition(state.store.as_ref(), &row, DeploymentEvent::Progress { message }).await {
                    Ok((updated, _)) => row = updated,
                    // Cancelled or otherwise moved on meanwhile: stop following.
                    Err(error) if error.code == "conflict" => {
                        let current = state.store.get_deployment(&row.id).await?;
                        if current.as_ref().is_some_and(|d| d.status != DeploymentStatus::Deploying) {
                            state.runtime.stop(&spec, previous_spec(state, &row).await.as_ref()).await?;
                            return Ok(());
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok(Some(RolloutProgress::Ready { url })) => break DeploymentEvent::RolloutSucceeded { url },
            Ok(Some(RolloutProgress::Failed { reason })) => break DeploymentEvent::RolloutFailed { reason },
            Ok(None) => {
                break DeploymentEvent::RolloutFailed { reason: "the runtime stopped reporting the rollout".into() };
            }
            Err(_) => {
                let secs = state.config.rollout_timeout.as_secs();
                break DeploymentEvent::RolloutFailed { reason: format!("the rollout did not finish within {secs} s") };
            }
        }
    };
    settle(state, &row, Some(&spec), end, replacement).await
}

/// The app's running deployment other than `row`, as the runtime's fallback.
async fn previous_spec<P: Ports>(state: &AppState<P>, row: &Deployment) -> Option<ReleaseSpec> {
    let previous = state.store.running_deployment(&row.app_id).await.ok().flatten()?;
    if previous.id == row.id {
        return None;
    }
    release_spec(state, &previous).await.ok()
}

/// Records the rollout's end and carries out what the machine asks for.
async fn settle<P: Ports>(
    state: &AppState<P>,
    row: &Deployment,
    spec: Option<&ReleaseSpec>,
    end: DeploymentEvent,
    replacement: Replacement,
) -> ApiResult<()> {
    let previous = state.store.running_deployment(&row.app_id).await?;
    let started = matches!(end, DeploymentEvent::RolloutSucceeded { .. });
    let fallback = match &previous {
        Some(previous) if previous.id != row.id => release_spec(state, previous).await.ok(),
        _ => None,
    };
    let (row, actions) = match transition(state.store.as_ref(), row, end).await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Cancelled (or otherwise changed) while it rolled out: nothing may keep running
            // for a deployment whose record says it is not.
            if started && let Some(spec) = spec {
                state.runtime.stop(spec, fallback.as_ref()).await?;
            }
            return Err(error);
        }
    };
    for action in actions {
        match action {
            Action::SupersedePrevious => retire_previous(state, previous.as_ref(), &row, replacement).await?,
            Action::StopRelease => {
                if let Some(spec) = spec {
                    state.runtime.stop(spec, fallback.as_ref()).await?;
                }
            }
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
        let spec = release_spec(state, &fresh).await?;
        state.runtime.stop(&spec, None).await?;
    }
    Ok(())
}

/// Follows, on every replica, what no live replica holds: pending deployments are rolled
/// out, deploying ones followed again (or started again where rollouts end with the control
/// plane). Runs until the process exits; every `AETHER_LEASE_SECS / 6` it takes over the
/// rollouts whose lease expired, so a rollout whose replica died is finished by another.
pub async fn run_reconciler<P: Ports>(state: AppState<P>) {
    loop {
        if let Err(error) = reconcile_once(&state).await {
            tracing::warn!(code = error.code, message = %error.message, "cannot look for rollouts to take over");
        }
        tokio::time::sleep(state.leases.poll_every()).await;
    }
}

/// One pass of [`run_reconciler`].
pub async fn reconcile_once<P: Ports>(state: &AppState<P>) -> ApiResult<()> {
    let pending = state.store.deployments_with_status(DeploymentStatus::Pending).await?;
    let deploying = state.store.deployments_with_status(DeploymentStatus::Deploying).await?;
    for row in deploying {
        if state.leases.holds(&lease_name(&row.id)) {
            continue;
        }
        let Some(lease) = state.leases.claim(&state.store, &lease_name(&row.id)).await else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            tracing::info!(app = %row.app_name, deployment = %row.id, "following a rollout nobody follows");
            let result = match release_spec(&state, &row).await {
                Ok(spec) => {
                    let rollout = state.runtime.resume(&spec).await;
                    follow(&state, row, spec, rollout, Replacement::Supersede, &lease).await
                }
                Err(error) => {
                    let event = DeploymentEvent::RolloutFailed { reason: error.message };
                    settle(&state, &row, None, event, Replacement::Supersede).await
                }
            };
            if let Err(error) = result {
                tracing::error!(code = error.code, message = %error.message, "cannot resume a rollout");
            }
        });
    }
    for row in pending {
        if state.leases.holds(&lease_name(&row.id)) {
            continue;
        }
        if let Some(lease) = state.leases.claim(&state.store, &lease_name(&row.id)).await {
            tokio::spawn(drive_claimed(state.clone(), row, Replacement::Supersede, lease));
        }
    }
    Ok(())
}

/// At start-up: every release recorded as running is checked against the runtime (restored
/// where releases end with the control plane); one that is gone is recorded as failed. Nothing
/// stays falsely `running` after a restart.
pub async fn check_running_releases<P: Ports>(state: &AppState<P>) -> ApiResult<()> {
    let running = state.store.deployments_with_status(DeploymentStatus::Running).await?;
    futures_util::future::join_all(running.iter().map(|row| check_running(state, row))).await;
    Ok(())
}

/// Whether a release recorded as running still serves; a gone one is recorded as failed.
async fn check_running<P: Ports>(state: &AppState<P>, row: &Deployment) {
    let health = match release_spec(state, row).await {
        Ok(spec) => state.runtime.check(&spec).await,
        Err(error) => Ok(Health::Gone { reason: error.message }),
    };
    match health {
        Ok(Health::Serving { url }) if url.is_none() || url == row.url => {
            tracing::info!(app = %row.app_name, deployment = %row.id, url = ?url, "a running release still serves");
        }
        Ok(Health::Serving { url }) => tracing::warn!(
            app = %row.app_name, deployment = %row.id, recorded_url = ?row.url, url = ?url,
            "a running release serves at a different URL now: its port was taken"
        ),
        Ok(Health::Gone { reason }) => {
            tracing::error!(app = %row.app_name, deployment = %row.id, %reason, "a running release is gone");
            let lost = DeploymentEvent::ReleaseLost { reason: format!("the release is gone: {reason}") };
            if let Err(error) = settle(state, row, None, lost, Replacement::Supersede).await {
                tracing::error!(code = error.code, message = %error.message, "cannot record a lost release");
            }
        }
        Err(error) => tracing::warn!(
            app = %row.app_name, deployment = %row.id, error = %crate::error::chain(&error),
            "cannot check a running release; its record is left as it is"
        ),
    }
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
