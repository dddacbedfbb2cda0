//! Describing a packed artifact: SBOM, provenance and signature, all as bytes in memory until
//! the build writes them out together with the artifact and the manifest packing wrote.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use aether_core::pack::DEFAULT_MTIME;
use aether_core::project::NodeProject;
use aether_core::provenance::{NamedDigest, ProvenanceInput};
use aether_core::signing::IN_TOTO_PAYLOAD_TYPE;
use aether_core::{digest::sha256_hex, lockfile, sbom};

use crate::build::{ARTIFACT_NAME, BuildOptions, SbomFormat};
use crate::error::Error;
use crate::toolchain::{self, ProbeError};

/// The builder identity recorded in provenance.
pub const BUILDER_ID: &str = concat!("https://aether.dev/builder/aether@", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Default)]
pub struct Descriptions {
    /// SHA-256 of the manifest file, which packing wrote.
    pub manifest_sha256: String,
    pub sbom_json: Option<Vec<u8>>,
    pub provenance_json: Option<Vec<u8>>,
    /// 128 hex characters, when a key is configured.
    pub signature: Option<Vec<u8>>,
    pub note: Option<String>,
    pub warnings: Vec<String>,
}

/// What installing and packing established, for the descriptions.
#[derive(Debug)]
pub struct Built<'a> {
    pub project: &'a NodeProject,
    pub digest: &'a str,
    pub manifest_sha256: &'a str,
    /// Where the packed `node_modules` was read from.
    pub node_modules: &'a Path,
    /// The Node version the dependencies were installed for, when they were installed.
    pub node_version: Option<String>,
    /// The command that installed them; `None` when the tree was packed as found.
    pub install_command: Option<String>,
    /// Archive paths of the installed packages the artifact holds (`.aetherignore` may have
    /// left some out): the SBOM lists these only.
    pub packed_packages: &'a BTreeSet<String>,
}

pub fn describe(options: &BuildOptions, built: Built<'_>) -> Result<Descriptions, Error> {
    let project = built.project;
    // Every lockfile kind is recorded in provenance; only npm's are read for the SBOM.
    let lockfile_bytes = match project.lockfile.as_ref() {
        Some(l) => Some(std::fs::read(&l.path).map_err(Error::io("cannot read", &l.path))?),
        None => None,
    };
    let npm_lockfile = lockfile_bytes.as_deref().filter(|_| project.lockfile.as_ref().is_some_and(|l| l.kind.is_npm()));
    let sbom_json = sbom_bytes(options, &built, npm_lockfile)?;
    let mut out =
        Descriptions { manifest_sha256: built.manifest_sha256.to_owned(), sbom_json, ..Descriptions::default() };
    out.provenance_json = provenance(options, &built, &mut out, lockfile_bytes.as_deref())?;
    out.signature = options.signing_key.as_ref().map(|key| key.sign_digest(built.digest).into_bytes());
    Ok(out)
}

fn sbom_bytes(
    options: &BuildOptions,
    built: &Built<'_>,
    npm_lockfile: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, Error> {
    if options.sbom == SbomFormat::None {
        return Ok(None);
    }
    let project = built.project;
    let mut packages = lockfile::installed_packages(npm_lockfile, built.node_modules)?;
    packages.retain(|p| built.packed_packages.contains(&p.path));
    let package_json_path = project.root.join("package.json");
    let package_json = std::fs::read(&package_json_path).map_err(Error::io("cannot read", &package_json_path))?;
    let direct = lockfile::root_dependencies(npm_lockfile, &package_json, &packages);
    let subject = sbom::SbomSubject {
        name: &project.name,
        version: &project.version,
        artifact_digest: built.digest,
        dependencies: &direct,
    };
    let bytes = match options.sbom {
        SbomFormat::Legacy => sbom::legacy_json(&subject, &packages)?,
        _ => {
            let timestamp = options.source_date_epoch.unwrap_or(DEFAULT_MTIME);
            sbom::cyclonedx_json(&subject, &packages, i64::try_from(timestamp).unwrap_or(i64::MAX))?
        }
    };
    Ok(Some(bytes))
}

/// Builds the provenance statement within the configured time budget. Without
/// `require_provenance`, running out of time leaves a warning and a `timeout` note instead.
fn provenance(
    options: &BuildOptions,
    built: &Built<'_>,
    out: &mut Descriptions,
    lockfile_bytes: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, Error> {
    let project = built.project;
    let deadline = Instant::now() + options.provenance_timeout;
    let probed = built
        .node_version
        .clone()
        .map(Ok)
        .unwrap_or_else(|| toolchain::node_version(deadline))
        .and_then(|node| toolchain::npm_version(deadline).map(|npm| (node, npm)));
    let (node, npm) = match probed {
        Ok((node, npm)) => (Some(node), Some(npm)),
        Err(ProbeError::Timeout) => return provenance_timed_out(options, out),
        Err(ProbeError::Failed(reason)) => {
            out.warnings.push(format!("provenance records no Node toolchain: {reason}"));
            (None, None)
        }
    };
    let mut byproducts =
        vec![NamedDigest { name: format!("{ARTIFACT_NAME}.manifest.json"), sha256: out.manifest_sha256.clone() }];
    if let Some(sbom) = &out.sbom_json {
        byproducts.push(NamedDigest { name: format!("{ARTIFACT_NAME}.sbom.json"), sha256: sha256_hex(sbom) });
    }
    let input = ProvenanceInput {
        artifact: NamedDigest { name: ARTIFACT_NAME.to_owned(), sha256: built.digest.to_owned() },
        project_name: project.name.clone(),
        project_version: project.version.clone(),
        start_command: project.start_command.clone(),
        lockfile: project
            .lockfile
            .as_ref()
            .zip(lockfile_bytes)
            .map(|(l, bytes)| NamedDigest { name: l.file_name.to_owned(), sha256: sha256_hex(bytes) }),
        node_version: node,
        npm_version: npm,
        install_command: built.install_command.clone(),
        builder_id: BUILDER_ID.to_owned(),
        byproducts,
        source_date_epoch: options.source_date_epoch,
        namespace: options.namespace.clone(),
    };
    if Instant::now() > deadline {
        return provenance_timed_out(options, out);
    }
    let statement = aether_core::provenance::statement_json(&input);
    let bytes = match &options.signing_key {
        Some(key) => serde_json::to_vec_pretty(&key.dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &statement)),
        None => serde_json::from_slice::<serde_json::Value>(&statement).and_then(|v| serde_json::to_vec_pretty(&v)),
    }
    .map_err(|e| Error::Provenance { reason: e.to_string() })?;
    Ok(Some(bytes))
}

fn provenance_timed_out(options: &BuildOptions, out: &mut Descriptions) -> Result<Option<Vec<u8>>, Error> {
    let ms = options.provenance_timeout.as_millis();
    if options.require_provenance {
        return Err(Error::Provenance { reason: format!("timed out after {ms} ms (AETHER_PROVENANCE_TIMEOUT_MS)") });
    }
    out.note = Some("timeout".to_owned());
    out.warnings.push(format!("provenance skipped: it took longer than {ms} ms (AETHER_PROVENANCE_TIMEOUT_MS)"));
    Ok(None)
}

/// Default budget for gathering provenance.
pub const DEFAULT_PROVENANCE_TIMEOUT: Duration = Duration::from_secs(10);
