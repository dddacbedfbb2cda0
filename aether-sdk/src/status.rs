//! What runs: every app with the deployment that represents it, and one app's running and
//! latest deployments. `aether list`, `aether status` and the Python module show these.

use aether_core::api::{AppResponse, DeploymentResponse};
use aether_core::deployment::DeploymentStatus;
use aether_core::wire::AppName;

use crate::client::Client;
use crate::error::Error;

/// An app and the deployment that represents it: the running one, else the newest.
#[derive(Debug, Clone)]
pub struct AppSummary {
    pub app: AppResponse,
    pub deployment: Option<DeploymentResponse>,
}

/// An app's running deployment and its newest one (with its events); the same deployment
/// when the newest is the one running.
#[derive(Debug, Clone)]
pub struct AppStatus {
    pub running: Option<DeploymentResponse>,
    pub latest: Option<DeploymentResponse>,
}

/// Every app, each with its running deployment (else its newest).
pub async fn apps(client: &Client) -> Result<Vec<AppSummary>, Error> {
    let mut summaries = Vec::new();
    for app in client.list_apps().await? {
        let name = AppName::parse(&app.name).map_err(|e| Error::Protocol {
            url: client.base_url().to_owned(),
            message: format!("the server listed an invalid app name {:?}: {e}", app.name),
        })?;
        let deployments = client.app_deployments(&name).await?;
        // The list is newest first.
        let deployment =
            deployments.iter().find(|d| d.status == DeploymentStatus::Running).or_else(|| deployments.first()).cloned();
        summaries.push(AppSummary { app, deployment });
    }
    Ok(summaries)
}

/// The app's running deployment and its newest one, read with its events.
pub async fn app_status(client: &Client, app: &AppName) -> Result<AppStatus, Error> {
    let deployments = client.app_deployments(app).await?;
    let running = deployments.iter().find(|d| d.status == DeploymentStatus::Running).cloned();
    let latest = match deployments.first() {
        Some(d) => Some(client.get_deployment(&d.id).await?),
        None => None,
    };
    Ok(AppStatus { running, latest })
}
