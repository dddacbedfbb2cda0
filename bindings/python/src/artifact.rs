//! Building and reading artifacts: `pack`, `digest_file`, `read_manifest`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aether_core::digest::HashingReader;
use aether_core::manifest::{Manifest as CoreManifest, ManifestEntry as CoreEntry};
use aether_sdk::build::{BuildReport, Phase, SbomFormat};
use aether_sdk::config::Paths;
use aether_sdk::settings;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors;

/// Builds the Node project at `path` exactly like `aether deploy --pack-only`: installs the
/// production dependencies (cached), packs a deterministic `app.tar.gz`, writes its manifest,
/// SBOM and provenance, and signs it when a key is configured. Outputs go to `out_dir`
/// (default `path/.aether`). Settings left as `None` come from where the CLI reads them:
/// `signing_key` from `AETHER_SIGNING_KEY` or `signing_key` in config.toml (a 64-hex-character
/// Ed25519 seed, or the path of a file holding one), `source_date_epoch` from
/// `SOURCE_DATE_EPOCH`. Raises `PackError` when the build fails, `ConfigError` for a bad key
/// or variable. The GIL is released while it runs.
///
/// >>> import json, pathlib, tempfile
/// >>> project = pathlib.Path(tempfile.mkdtemp())
/// >>> _ = (project / "package.json").write_text(json.dumps({"name": "hello", "version": "1.0.0"}))
/// >>> _ = (project / "server.js").write_text("require('http').createServer().listen(process.env.PORT)\n")
/// >>> result = aether.pack(project, install=False, source_date_epoch=0)
/// >>> result.artifact.name, len(result.digest), result.digest == aether.digest_file(result.artifact)
/// ('app.tar.gz', 64, True)
#[pyfunction]
#[pyo3(signature = (path, out_dir=None, *, install=true, sbom=true, legacy_sbom=false, signing_key=None, source_date_epoch=None))]
#[allow(clippy::too_many_arguments)]
pub fn pack(
    py: Python<'_>,
    path: PathBuf,
    out_dir: Option<PathBuf>,
    install: bool,
    sbom: bool,
    legacy_sbom: bool,
    signing_key: Option<PathBuf>,
    source_date_epoch: Option<u64>,
) -> PyResult<PackResult> {
    let sbom = match (sbom, legacy_sbom) {
        (false, true) => return Err(PyValueError::new_err("legacy_sbom=True needs sbom=True")),
        (false, false) => SbomFormat::None,
        (true, true) => SbomFormat::Legacy,
        (true, false) => SbomFormat::CycloneDx,
    };
    let env = |name: &str| std::env::var(name).ok();
    let mut options =
        settings::build_options(&path, env, &Paths::from_env(env)).map_err(|e| errors::sdk_error(py, &e))?;
    options.out_dir = out_dir;
    options.install = install;
    options.sbom = sbom;
    if let Some(key) = signing_key {
        let key = settings::signing_key(&key.to_string_lossy(), "the signing_key argument");
        options.signing_key = Some(key.map_err(|e| errors::sdk_error(py, &e))?);
    }
    if source_date_epoch.is_some() {
        options.source_date_epoch = source_date_epoch;
    }
    let report = py.detach(|| aether_sdk::build(&options, &mut |_| {}));
    Ok(PackResult(report.map_err(|e| errors::sdk_error(py, &e))?))
}

/// The SHA-256 of a file's bytes as 64 lowercase hex characters: an artifact's digest. The GIL
/// is released while it reads.
///
/// >>> import tempfile
/// >>> with tempfile.NamedTemporaryFile(delete=False) as f:
/// ...     _ = f.write(b"abc")
/// >>> aether.digest_file(f.name)
/// 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
#[pyfunction]
pub fn digest_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let digest = py.detach(|| -> std::io::Result<String> {
        let mut reader = HashingReader::new(std::fs::File::open(&path)?);
        std::io::copy(&mut reader, &mut std::io::sink())?;
        Ok(reader.finish().0)
    })?;
    Ok(digest)
}

/// Reads an `app.tar.gz.manifest.json`: every entry of the artifact, its digests and totals.
/// Raises `OSError` when the file cannot be read, `ValueError` when it is not a manifest.
///
/// >>> import json, pathlib, tempfile
/// >>> project = pathlib.Path(tempfile.mkdtemp())
/// >>> _ = (project / "package.json").write_text(json.dumps({"name": "hello", "version": "1.0.0"}))
/// >>> result = aether.pack(project, install=False)
/// >>> manifest = aether.read_manifest(result.manifest)
/// >>> manifest.digest == result.digest, [(e.type, e.path, e.mode) for e in manifest.entries]
/// (True, [('file', 'package.json', '0644')])
#[pyfunction]
pub fn read_manifest(py: Python<'_>, path: PathBuf) -> PyResult<Manifest> {
    let bytes = py.detach(|| std::fs::read(&path))?;
    let manifest = CoreManifest::from_json(&bytes)
        .map_err(|e| PyValueError::new_err(format!("{} is not an Aether manifest: {e}", path.display())))?;
    Ok(Manifest(manifest))
}

/// What `pack` wrote; paths are `None` for files not written (no SBOM, no key).
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct PackResult(pub BuildReport);

#[pymethods]
impl PackResult {
    /// The artifact, `app.tar.gz`.
    #[getter]
    fn artifact(&self) -> &Path {
        self.0.artifact.as_deref().unwrap_or(Path::new(""))
    }
    /// SHA-256 of the artifact: its identity on the server.
    #[getter]
    fn digest(&self) -> &str {
        &self.0.digest
    }
    #[getter]
    fn size_bytes(&self) -> u64 {
        self.0.size_bytes
    }
    #[getter]
    fn manifest(&self) -> Option<&Path> {
        self.0.manifest.as_deref()
    }
    /// The block index, `app.tar.gz.blocks.json`.
    #[getter]
    fn blocks(&self) -> Option<&Path> {
        self.0.blocks.as_deref()
    }
    #[getter]
    fn sbom(&self) -> Option<&Path> {
        self.0.sbom.as_deref()
    }
    #[getter]
    fn signature(&self) -> Option<&Path> {
        self.0.signature.as_deref()
    }
    /// The provenance statement, in a DSSE envelope when signed.
    #[getter]
    fn provenance(&self) -> Option<&Path> {
        self.0.provenance.as_deref()
    }
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.0.warnings.clone()
    }
    /// SHA-256 of the uncompressed tar stream.
    #[getter]
    fn tar_sha256(&self) -> &str {
        &self.0.tar_sha256
    }
    #[getter]
    fn file_count(&self) -> u64 {
        self.0.file_count
    }
    /// The signing key's public half (64 hex characters), when the build was signed.
    #[getter]
    fn public_key(&self) -> Option<&str> {
        self.0.public_key.as_deref()
    }
    /// The npm command that installed the dependencies; `None` with `install=False`.
    #[getter]
    fn install_command(&self) -> Option<&str> {
        self.0.install.as_ref().map(|i| i.command.as_str())
    }
    /// Milliseconds spent in each phase (`detect`, `install`, `pack`, `describe`, `write`).
    #[getter]
    fn durations_ms(&self) -> BTreeMap<&'static str, u64> {
        self.0.durations_ms.iter().map(|(phase, ms)| (phase_name(*phase), *ms)).collect()
    }
    fn __repr__(&self) -> String {
        format!("PackResult(artifact={:?}, digest={:?})", self.artifact(), self.0.digest)
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Detect => "detect",
        Phase::Install => "install",
        Phase::Pack => "pack",
        Phase::Describe => "describe",
        Phase::Write => "write",
    }
}

/// An artifact's manifest: its entries in archive order, digests and totals.
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct Manifest(CoreManifest);

#[pymethods]
impl Manifest {
    /// The format tag, `aether-manifest-v1`.
    #[getter]
    fn schema(&self) -> &str {
        &self.0.schema
    }
    #[getter]
    fn entries(&self) -> Vec<ManifestEntry> {
        self.0.entries.iter().cloned().map(ManifestEntry).collect()
    }
    /// SHA-256 of the `.tar.gz`.
    #[getter]
    fn digest(&self) -> &str {
        &self.0.summary.digest
    }
    #[getter]
    fn tar_sha256(&self) -> &str {
        &self.0.summary.tar_sha256
    }
    #[getter]
    fn size_bytes(&self) -> u64 {
        self.0.summary.size_bytes
    }
    #[getter]
    fn total_files(&self) -> u64 {
        self.0.summary.total_files
    }
    #[getter]
    fn total_file_bytes(&self) -> u64 {
        self.0.summary.total_file_bytes
    }
    fn __len__(&self) -> usize {
        self.0.entries.len()
    }
    fn __repr__(&self) -> String {
        format!("Manifest(digest={:?}, entries={})", self.0.summary.digest, self.0.entries.len())
    }
}

/// One entry of a manifest: a file (with size, mode and SHA-256), a directory or a symlink.
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct ManifestEntry(CoreEntry);

#[pymethods]
impl ManifestEntry {
    /// `"file"`, `"dir"` or `"symlink"`.
    #[getter]
    fn r#type(&self) -> &'static str {
        match self.0 {
            CoreEntry::File { .. } => "file",
            CoreEntry::Dir { .. } => "dir",
            CoreEntry::Symlink { .. } => "symlink",
        }
    }
    /// Relative, `/`-separated.
    #[getter]
    fn path(&self) -> &str {
        self.0.path()
    }
    #[getter]
    fn size(&self) -> Option<u64> {
        match &self.0 {
            CoreEntry::File { size, .. } => Some(*size),
            _ => None,
        }
    }
    /// Octal, e.g. `"0644"`; `None` for symlinks.
    #[getter]
    fn mode(&self) -> Option<&str> {
        match &self.0 {
            CoreEntry::File { mode, .. } | CoreEntry::Dir { mode, .. } => Some(mode),
            CoreEntry::Symlink { .. } => None,
        }
    }
    #[getter]
    fn sha256(&self) -> Option<&str> {
        match &self.0 {
            CoreEntry::File { sha256, .. } => Some(sha256),
            _ => None,
        }
    }
    /// Where a symlink points.
    #[getter]
    fn target(&self) -> Option<&str> {
        match &self.0 {
            CoreEntry::Symlink { target, .. } => Some(target),
            _ => None,
        }
    }
    fn __repr__(&self) -> String {
        format!("ManifestEntry(type={:?}, path={:?})", self.r#type(), self.0.path())
    }
}
