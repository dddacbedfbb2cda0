//! What every control-plane command shares: the client built from flags, variables and the
//! session file; the async runtime; and how a rollout that did not end running is reported.

use std::future::Future;

use aether_core::api::DeploymentResponse;
use aether_core::deployment::DeploymentStatus;
use aether_core::wire::AppName;
use aether_sdk::client::{Client, LogsQuery};
use aether_sdk::config::Paths;
use aether_sdk::connect::{Overrides, client_config};
use serde_json::json;

use crate::exit::{CliError, Exit};

/// Lines of a failed release's output shown with the error.
const FAILURE_LOG_LINES: usize = 20;

pub fn paths() -> Paths {
    Paths::from_env(|name| std::env::var(name).ok())
}

pub fn client(overrides: &Overrides) -> Result<Client, CliError> {
    let config = client_config(overrides, |name| std::env::var(name).ok(), &paths())?;
    Ok(Client::new(config)?)
}

/// Runs `work` on a fresh async runtime; only network commands pay for starting one.
pub fn block_on<T>(work: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::io(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(work)
}

pub fn app_name(raw: &str) -> Result<AppName, CliError> {
    AppName::parse(raw).map_err(|e| CliError::usage(format!("invalid app name {raw:?}: {e}")))
}

/// Turns a deployment that did not end `running` into exit 20, with the reason and the last
/// lines the release wrote.
pub async fn require_running(
    client: &Client,
    deployment: &DeploymentResponse,
    timed_out: bool,
) -> Result<(), CliError> {
    if timed_out {
        let mut error = CliError::new(
            Exit::Runtime,
            "deploy_timeout",
            format!(
                "deployment {} is still {} after the timeout; it keeps rolling out on the server (see `aether status --app {}`)",
                deployment.id,
                deployment.status.as_str(),
                deployment.app_name
            ),
        );
        error.details = Some(json!({ "deployment_id": deployment.id, "status": deployment.status }));
        return Err(error);
    }
    if deployment.status == DeploymentStatus::Running {
        return Ok(());
    }
    let logs = match AppName::parse(&deployment.app_name) {
        Ok(app) => {
            let query = LogsQuery {
                tail: Some(FAILURE_LOG_LINES),
                deployment: Some(deployment.id.clone()),
                ..LogsQuery::default()
            };
            client.app_logs(&app, &query).await.unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    let reason = deployment.failure_reason.as_deref().unwrap_or("no reason recorded");
    let mut message = format!("deployment {} ended {}: {reason}", deployment.id, deployment.status.as_str());
    if !logs.is_empty() {
        message.push_str("\nlast log lines:\n");
        message.push_str(&logs.join("\n"));
    }
    let mut error = CliError::new(Exit::Runtime, "deployment_failed", message);
    error.details = Some(json!({ "deployment_id": deployment.id, "status": deployment.status, "logs": logs }));
    Err(error)
}
