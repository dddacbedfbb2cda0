//! `aether list`: every app with the deployment that represents it.

use aether_core::deployment::DeploymentStatus;
use aether_sdk::connect::Overrides;

use super::connection::{block_on, client};
use crate::args::OutputFormat;
use crate::exit::CliError;
use crate::render::{self, AppRow};

pub fn run(insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    let rows = block_on(async {
        let mut rows = Vec::new();
        for app in client.list_apps().await? {
            let name = super::connection::app_name(&app.name)?;
            let deployments = client.app_deployments(&name).await?;
            // The running deployment, else the newest (the list is newest first).
            let deployment = deployments
                .iter()
                .find(|d| d.status == DeploymentStatus::Running)
                .or_else(|| deployments.first())
                .cloned();
            rows.push(AppRow { app, deployment });
        }
        Ok(rows)
    })?;
    render::app_list(format, &rows);
    Ok(())
}
