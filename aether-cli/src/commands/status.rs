//! `aether status --app NAME`: what runs, and how the latest deployment went.

use aether_sdk::connect::Overrides;

use super::connection::{app_name, block_on, client};
use crate::args::{AppArgs, OutputFormat};
use crate::exit::CliError;
use crate::render;

pub fn run(args: &AppArgs, insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let app = app_name(&args.app)?;
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    let status = block_on(async { Ok(aether_sdk::status::app_status(&client, &app).await?) })?;
    render::app_status(format, app.as_str(), status.running.as_ref(), status.latest.as_ref());
    Ok(())
}
