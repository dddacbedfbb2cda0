//! `aether deploy`: flags, configuration and environment -> `aether_sdk::build` -> render.

use aether_core::deployment::DeploymentStatus;
use aether_sdk::build::SbomFormat;
use aether_sdk::connect::Overrides;
use aether_sdk::deploy::{DeployOptions, deploy};
use aether_sdk::{BuildOptions, build, settings};

use super::connection::{app_name, block_on, client, paths, require_running};
use crate::args::{DeployArgs, OutputFormat};
use crate::exit::CliError;
use crate::render::{self, DeployProgress};

pub fn run(args: DeployArgs, insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let options = build_options(&args)?;
    if args.pack_only || args.dry_run {
        let mut progress = render::Progress::new();
        let report = build(&options, &mut |event| progress.handle(&event));
        progress.finish();
        let namespace = options.namespace.clone();
        render::build_report(format, &report?, namespace.as_deref());
        return Ok(());
    }
    let app = args.app.as_deref().map(app_name).transpose()?;
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    let namespace = options.namespace.clone();
    let mut deploy_options = DeployOptions::new(options);
    deploy_options.app = app;
    let wait = !args.wait.no_wait;
    deploy_options.wait = wait;
    deploy_options.timeout = args.wait.timeout;
    deploy_options.force = args.force;
    deploy_options.env = args.env.iter().cloned().collect();
    settings::apply_upload_settings(&mut deploy_options, |name| std::env::var(name).ok())?;
    block_on(async {
        let mut progress = DeployProgress::new();
        let report = deploy(&client, deploy_options, |event| progress.handle(&event)).await;
        progress.finish();
        let report = report?;
        if wait && report.status != DeploymentStatus::Running {
            let deployment = client.get_deployment(&report.deployment_id).await?;
            require_running(&client, &deployment, report.timed_out).await?;
        }
        render::deploy_report(format, &report, namespace.as_deref());
        Ok(())
    })
}

/// The environment's and `config.toml`'s build settings, with the flags applied over them.
fn build_options(args: &DeployArgs) -> Result<BuildOptions, CliError> {
    let mut options = settings::build_options(&args.path, |name| std::env::var(name).ok(), &paths())?;
    options.out_dir = args.out.clone();
    options.install = !args.no_install;
    options.dry_run = args.dry_run;
    options.sbom = match (args.no_sbom, args.legacy_sbom) {
        (true, _) => SbomFormat::None,
        (false, true) => SbomFormat::Legacy,
        (false, false) => SbomFormat::CycloneDx,
    };
    Ok(options)
}
