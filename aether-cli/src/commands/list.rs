//! `aether list`: every app with the deployment that represents it.

use aether_sdk::connect::Overrides;

use super::connection::{block_on, client};
use crate::args::OutputFormat;
use crate::exit::CliError;
use crate::render;

pub fn run(insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    let apps = block_on(async { Ok(aether_sdk::status::apps(&client).await?) })?;
    render::app_list(format, &apps);
    Ok(())
}
