//! `aether status --app NAME`: what runs, and how the latest deployment went.

use aether_core::deployment::DeploymentStatus;
use aether_sdk::connect::Overrides;

use super::connection::{app_name, block_on, client};
use crate::args::{AppArgs, OutputFormat};
use crate::exit::CliError;
use crate::render;

pub fn run(args: &AppArgs, insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let app = app_name(&args.app)?;
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    let (running, latest) = block_on(async {
        let deployments = client.app_deployments(&app).await?;
        let running = deployments.iter().find(|d| d.status == DeploymentStatus::Running).cloned();
        let latest = match deployments.first() {
            Some(d) => Some(client.get_deployment(&d.id).await?),
            None => None,
        };
        Ok((running, latest))
    })?;
    render::app_status(format, app.as_str(), running.as_ref(), latest.as_ref());
    Ok(())
}
