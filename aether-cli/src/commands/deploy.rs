//! `aether deploy`: flags, configuration and environment -> `aether_sdk::build` -> render.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aether_core::signing::SigningKey;
use aether_sdk::build::SbomFormat;
use aether_sdk::config::{ConfigFile, Paths};
use aether_sdk::describe::DEFAULT_PROVENANCE_TIMEOUT;
use aether_sdk::{BuildOptions, build};

use aether_core::deployment::DeploymentStatus;
use aether_sdk::connect::Overrides;
use aether_sdk::deploy::{DeployOptions, deploy};
use aether_sdk::upload::{MULTIPART_THRESHOLD_ENV, PART_SIZE_ENV};

use super::connection::{app_name, block_on, client, require_running};
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
    if let Some(threshold) = number_variable(MULTIPART_THRESHOLD_ENV)? {
        deploy_options.multipart_threshold_bytes = threshold;
    }
    if let Some(part_size) = number_variable(PART_SIZE_ENV)?.filter(|n| *n > 0) {
        deploy_options.part_size_bytes = part_size;
    }
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

fn build_options(args: &DeployArgs) -> Result<BuildOptions, CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let paths = Paths::from_env(env);
    let config = ConfigFile::load(&paths.config_file)?;
    Ok(BuildOptions {
        project_dir: args.path.clone(),
        out_dir: args.out.clone(),
        install: !args.no_install,
        dry_run: args.dry_run,
        sbom: match (args.no_sbom, args.legacy_sbom) {
            (true, _) => SbomFormat::None,
            (false, true) => SbomFormat::Legacy,
            (false, false) => SbomFormat::CycloneDx,
        },
        signing_key: match env("AETHER_SIGNING_KEY").filter(|v| !v.trim().is_empty()) {
            Some(value) => signing_key(Some(value), "AETHER_SIGNING_KEY".to_owned())?,
            None => signing_key(config.signing_key.clone(), format!("signing_key in {}", paths.config_file.display()))?,
        },
        source_date_epoch: number_variable("SOURCE_DATE_EPOCH")?,
        cache_dir: paths.cache_dir.clone(),
        namespace: env("AETHER_DEFAULT_NAMESPACE").filter(|n| !n.is_empty()).or(config.namespace),
        require_provenance: env("AETHER_REQUIRE_PROVENANCE").is_some_and(|v| v == "1" || v == "true"),
        provenance_timeout: number_variable("AETHER_PROVENANCE_TIMEOUT_MS")?
            .map_or(DEFAULT_PROVENANCE_TIMEOUT, Duration::from_millis),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        npm_program: "npm".to_owned(),
    })
}

/// A key given inline as 64 hex characters, or the path of a file holding them.
/// The key from `value` (64 hex characters, or a path to a file holding them); `origin` names
/// where `value` came from in error messages.
fn signing_key(value: Option<String>, origin: String) -> Result<Option<SigningKey>, CliError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let trimmed = value.trim();
    let looks_inline = trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    let (text, origin) = if looks_inline || !Path::new(trimmed).exists() {
        (trimmed.to_owned(), origin)
    } else {
        let path = PathBuf::from(trimmed);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CliError::config("invalid_signing_key", format!("cannot read signing key file {}: {e}", path.display()))
        })?;
        (text, format!("file {}", path.display()))
    };
    SigningKey::from_hex_seed(&text)
        .map(Some)
        .map_err(|e| CliError::config("invalid_signing_key", format!("invalid signing key ({origin}): {e}")))
}

fn number_variable(name: &'static str) -> Result<Option<u64>, CliError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map(Some).map_err(|_| {
            CliError::config("invalid_variable", format!("{name}={value:?} is not a non-negative integer"))
        }),
        _ => Ok(None),
    }
}
