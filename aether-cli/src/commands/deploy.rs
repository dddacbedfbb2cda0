//! `aether deploy`: flags, configuration and environment -> `aether_sdk::build` -> render.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aether_core::signing::SigningKey;
use aether_sdk::build::SbomFormat;
use aether_sdk::config::{ConfigFile, Paths};
use aether_sdk::describe::DEFAULT_PROVENANCE_TIMEOUT;
use aether_sdk::{BuildOptions, build};

use crate::args::DeployArgs;
use crate::exit::CliError;
use crate::render;

pub fn run(args: DeployArgs) -> Result<(), CliError> {
    if !args.pack_only && !args.dry_run {
        return Err(CliError::usage(
            "uploading to a control plane is not available in this version; run `aether deploy --pack-only` \
             to build the artifact, or `--dry-run` to preview it",
        ));
    }
    let env = |name: &str| std::env::var(name).ok();
    let paths = Paths::from_env(env);
    let config = ConfigFile::load(&paths.config_file)?;
    let options = BuildOptions {
        project_dir: args.path.clone(),
        out_dir: args.out.clone(),
        install: !args.no_install,
        dry_run: args.dry_run,
        sbom: match (args.no_sbom, args.legacy_sbom) {
            (true, _) => SbomFormat::None,
            (false, true) => SbomFormat::Legacy,
            (false, false) => SbomFormat::CycloneDx,
        },
        signing_key: signing_key(env("AETHER_SIGNING_KEY").or(config.signing_key.clone()))?,
        source_date_epoch: number_variable("SOURCE_DATE_EPOCH")?,
        cache_dir: paths.cache_dir.clone(),
        namespace: env("AETHER_DEFAULT_NAMESPACE").filter(|n| !n.is_empty()).or(config.namespace),
        require_provenance: env("AETHER_REQUIRE_PROVENANCE").is_some_and(|v| v == "1" || v == "true"),
        provenance_timeout: number_variable("AETHER_PROVENANCE_TIMEOUT_MS")?
            .map_or(DEFAULT_PROVENANCE_TIMEOUT, Duration::from_millis),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        npm_program: "npm".to_owned(),
    };
    let mut progress = render::Progress::new();
    let report = build(&options, &mut |event| progress.handle(&event));
    progress.finish();
    let report = report?;
    render::build_report(args.format, &report, options.namespace.as_deref());
    Ok(())
}

/// A key given inline as 64 hex characters, or the path of a file holding them.
fn signing_key(value: Option<String>) -> Result<Option<SigningKey>, CliError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let trimmed = value.trim();
    let looks_inline = trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    let (text, origin) = if looks_inline || !Path::new(trimmed).exists() {
        (trimmed.to_owned(), "AETHER_SIGNING_KEY".to_owned())
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
