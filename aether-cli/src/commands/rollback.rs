//! `aether rollback --app NAME [--to ID]`: bring an earlier release back and follow it.

use aether_sdk::connect::Overrides;
use aether_sdk::deploy::wait_for_rollout;

use super::connection::{app_name, block_on, client, require_running};
use crate::args::{OutputFormat, RollbackArgs};
use crate::exit::CliError;
use crate::render::{self, DeployProgress};

pub fn run(args: &RollbackArgs, insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let app = app_name(&args.app)?;
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    block_on(async {
        let mut deployment = client.rollback(&app, args.to.as_deref()).await?;
        let mut timed_out = false;
        if !args.wait.no_wait {
            let mut progress = DeployProgress::new();
            let outcome =
                wait_for_rollout(&client, &deployment.id, args.wait.timeout, &mut |e| progress.handle(&e)).await;
            progress.finish();
            let outcome = outcome?;
            timed_out = outcome.timed_out;
            deployment = outcome.deployment;
            require_running(&client, &deployment, timed_out).await?;
        }
        render::rollback_report(format, &deployment, timed_out);
        Ok(())
    })
}
