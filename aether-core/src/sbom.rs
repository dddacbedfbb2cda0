//! The SBOM of an artifact: CycloneDX 1.5 JSON (the published format) and the legacy
//! `aether-sbom-v1` JSON (kept for older readers).
//!
//! Both are pure functions of their inputs and byte-identical across runs: the caller passes the
//! timestamp, the serial number is a UUID v5 of the artifact digest, and every list is sorted.
//! The CycloneDX document is checked with `cyclonedx-bom`'s own 1.5 validation before it is
//! written, and `scripts/validate_cyclonedx.py` checks it against the official schema in tests.
//!
//! Decisions:
//! - `bom-ref` of a package is its purl; when the same name@version is installed at several
//!   paths, each of those copies uses its lockfile path instead, which is unique.
//! - The root (`metadata.component`) is the app: type `application`, `bom-ref`
//!   `app:<name>@<version>` (cannot collide with a purl or a `node_modules/` path), its npm purl,
//!   and the artifact digest as its SHA-256 hash, because the artifact is what the SBOM describes.
//!   It depends on every top-level package (`node_modules/<name>`, `node_modules/@scope/<name>`).
//! - Both outputs end with a newline so the files are POSIX text files.

mod fields;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use cyclonedx_bom::external_models::date_time::DateTime;
use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
use cyclonedx_bom::models::component::{Classification, Component, Components};
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::prelude::{NormalizedString, Purl};
use cyclonedx_bom::validation::Validate as _;
use serde::Serialize;

use crate::digest::is_valid_sha256_hex;
use crate::lockfile::InstalledPackage;

/// What the SBOM describes: the app and the artifact it was packed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SbomSubject<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// Lowercase hex SHA-256 of the artifact; also seeds the serial number.
    pub artifact_digest: &'a str,
    /// Paths of the installed packages the app depends on directly (see
    /// [`crate::lockfile::root_dependencies`]): the root's `dependsOn`.
    pub dependencies: &'a [String],
}

/// Why an SBOM could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("artifact digest {digest:?} is not a lowercase hex SHA-256")]
    InvalidDigest { digest: String },
    #[error("timestamp {timestamp_unix} is outside the years 0000-9999 that RFC 3339 can express")]
    InvalidTimestamp { timestamp_unix: i64 },
    /// Two packages share a path, so their `bom-ref`s could not be unique.
    #[error("package path {path:?} is listed more than once")]
    DuplicatePackagePath { path: String },
    /// `cyclonedx-bom` rejected the document; a bug in this module, never an input problem.
    #[error("the CycloneDX document fails cyclonedx-bom's 1.5 validation: {details}")]
    InvalidBom { details: String },
    #[error("cannot write the CycloneDX JSON")]
    CycloneDx(#[from] cyclonedx_bom::errors::JsonWriteError),
    #[error("cannot write the legacy SBOM JSON")]
    Json(#[from] serde_json::Error),
}

/// The CycloneDX 1.5 JSON SBOM of `subject` listing every installed package.
pub fn cyclonedx_json(
    subject: &SbomSubject,
    packages: &[InstalledPackage],
    timestamp_unix: i64,
) -> Result<Vec<u8>, SbomError> {
    check_digest(subject.artifact_digest)?;
    let invalid_timestamp = || SbomError::InvalidTimestamp { timestamp_unix };
    let timestamp = fields::rfc3339_utc(timestamp_unix).ok_or_else(invalid_timestamp)?;
    let timestamp = DateTime::try_from(timestamp).map_err(|_| invalid_timestamp())?;
    let refs = bom_refs(packages)?;
    let root = root_component(subject);
    let root_ref = root.bom_ref.clone().unwrap_or_default();
    let mut components: Vec<Component> = packages.iter().map(|p| package_component(p, &refs)).collect();
    components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
    let metadata =
        Metadata { timestamp: Some(timestamp), tools: Some(tools()), component: Some(root), ..Metadata::default() };
    let bom = Bom {
        version: 1,
        serial_number: Some(UrnUuid::from(fields::serial_uuid(subject.artifact_digest))),
        metadata: Some(metadata),
        components: Some(Components(components)),
        services: None,
        external_references: None,
        dependencies: Some(dependency_graph(&root_ref, subject.dependencies, packages, &refs)),
        compositions: None,
        properties: None,
        vulnerabilities: None,
        signature: None,
        annotations: None,
        formulation: None,
        spec_version: SpecVersion::V1_5,
    };
    // `Validate::validate()` checks against 1.3, which rejects `bom-ref`: name the version.
    let validation = bom.validate_version(SpecVersion::V1_5);
    if !validation.passed() {
        return Err(SbomError::InvalidBom { details: format!("{validation:?}") });
    }
    let mut out = Vec::new();
    bom.output_as_json_v1_5(&mut out)?;
    out.push(b'\n');
    Ok(out)
}

/// The legacy `aether-sbom-v1` JSON, kept byte-compatible in shape for older readers.
pub fn legacy_json(subject: &SbomSubject, packages: &[InstalledPackage]) -> Result<Vec<u8>, SbomError> {
    check_digest(subject.artifact_digest)?;
    let mut listed: Vec<LegacyPackage> = packages
        .iter()
        .map(|p| LegacyPackage {
            name: &p.name,
            version: &p.version,
            path: &p.path,
            license: p.license.as_deref(),
            integrity: p.integrity.as_deref(),
        })
        .collect();
    listed.sort_by(|a, b| (a.path, a.name, a.version).cmp(&(b.path, b.name, b.version)));
    let document = LegacySbom {
        schema: "aether-sbom-v1",
        artifact_digest: subject.artifact_digest,
        app: LegacyApp { name: subject.name, version: subject.version },
        packages: listed,
    };
    let mut out = serde_json::to_vec_pretty(&document)?;
    out.push(b'\n');
    Ok(out)
}

#[derive(Serialize)]
struct LegacySbom<'a> {
    schema: &'static str,
    artifact_digest: &'a str,
    app: LegacyApp<'a>,
    packages: Vec<LegacyPackage<'a>>,
}

#[derive(Serialize)]
struct LegacyApp<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct LegacyPackage<'a> {
    name: &'a str,
    version: &'a str,
    path: &'a str,
    license: Option<&'a str>,
    integrity: Option<&'a str>,
}

/// The digest is the SBOM's identity (serial number, root hash), so a malformed one is refused
/// rather than silently producing an SBOM that names the wrong artifact.
fn check_digest(digest: &str) -> Result<(), SbomError> {
    if is_valid_sha256_hex(digest) { Ok(()) } else { Err(SbomError::InvalidDigest { digest: digest.to_owned() }) }
}

/// The `bom-ref` of every package by path: its purl, or its path when that purl is shared.
fn bom_refs(packages: &[InstalledPackage]) -> Result<BTreeMap<&str, String>, SbomError> {
    let mut purl_uses: BTreeMap<String, usize> = BTreeMap::new();
    for package in packages {
        *purl_uses.entry(fields::npm_purl(&package.name, &package.version)).or_default() += 1;
    }
    let mut refs = BTreeMap::new();
    for package in packages {
        let purl = fields::npm_purl(&package.name, &package.version);
        let bom_ref = if purl_uses.get(&purl).is_some_and(|uses| *uses > 1) { package.path.clone() } else { purl };
        if refs.insert(package.path.as_str(), bom_ref).is_some() {
            return Err(SbomError::DuplicatePackagePath { path: package.path.clone() });
        }
    }
    Ok(refs)
}

/// A component named like npm's CycloneDX tools name it: scope as `group`, exact version, purl.
fn npm_component(kind: Classification, name: &str, version: &str, bom_ref: String) -> Component {
    let (scope, local) = fields::split_scope(name);
    let mut component = Component::new(kind, local, version, Some(bom_ref));
    if version.is_empty() {
        component.version = None;
    }
    component.group = scope.map(NormalizedString::new);
    component.purl = fields::npm_purl(name, version).parse::<Purl>().ok();
    component
}

fn package_component(package: &InstalledPackage, refs: &BTreeMap<&str, String>) -> Component {
    let bom_ref = refs.get(package.path.as_str()).cloned().unwrap_or_else(|| package.path.clone());
    let mut component = npm_component(Classification::Library, &package.name, &package.version, bom_ref);
    let sha512 = package.integrity.as_deref().and_then(fields::sha512_hex);
    if sha512.is_none() && package.integrity.is_some() {
        tracing::debug!(path = %package.path, "integrity is not a well-formed sha512; no hash reported");
    }
    component.hashes = sha512.map(|hex| hash(HashAlgorithm::SHA_512, hex));
    component.licenses = package.license.as_deref().and_then(fields::licenses);
    component
}

fn root_component(subject: &SbomSubject) -> Component {
    let bom_ref = format!("app:{}@{}", subject.name, subject.version);
    let mut component = npm_component(Classification::Application, subject.name, subject.version, bom_ref);
    component.hashes = Some(hash(HashAlgorithm::SHA_256, subject.artifact_digest.to_owned()));
    component
}

fn hash(alg: HashAlgorithm, hex: String) -> Hashes {
    Hashes(vec![Hash { alg, content: HashValue(hex) }])
}

/// `metadata.tools` in the 1.5 object form (the array form is deprecated since 1.5). The version
/// is fixed at compile time, so it changes only with Aether releases.
fn tools() -> Tools {
    let aether = Component::new(Classification::Application, "aether", env!("CARGO_PKG_VERSION"), None);
    Tools::Object { services: None, components: Some(Components(vec![aether])) }
}

/// One entry per component plus the root (first), sorted by ref, each `dependsOn` sorted.
fn dependency_graph(
    root_ref: &str,
    root_dependencies: &[String],
    packages: &[InstalledPackage],
    refs: &BTreeMap<&str, String>,
) -> Dependencies {
    let direct = root_dependencies.iter().filter_map(|path| refs.get(path.as_str()));
    let mut graph = vec![dependency(root_ref, direct)];
    let mut entries: Vec<Dependency> = packages
        .iter()
        .filter_map(|package| {
            let own = refs.get(package.path.as_str())?;
            Some(dependency(own, package.dependencies.iter().filter_map(|path| refs.get(path.as_str()))))
        })
        .collect();
    entries.sort_by(|a, b| a.dependency_ref.cmp(&b.dependency_ref));
    graph.extend(entries);
    Dependencies(graph)
}

fn dependency<'a>(bom_ref: &str, depends_on: impl Iterator<Item = &'a String>) -> Dependency {
    let depends_on: BTreeSet<String> = depends_on.cloned().collect();
    Dependency { dependency_ref: bom_ref.to_owned(), dependencies: depends_on.into_iter().collect() }
}
