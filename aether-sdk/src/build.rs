//! The local half of a deploy: detect -> install -> pack -> describe -> sign.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_core::digest::HashingWriter;
use aether_core::gzip::BlockCache;
use aether_core::lockfile;
use aether_core::manifest::{Manifest, ManifestEntry, Summary};
use aether_core::pack::{DEFAULT_MTIME, PackOptions, Packed};

use crate::block_cache::DiskBlockCache;
use aether_core::project::{self, NodeProject};
use aether_core::selection::{EntryKind, PackEntry, SelectionOptions, Walker};
use aether_core::signing::SigningKey;
use serde::Serialize;

use crate::describe::{self, Descriptions};
use crate::error::Error;
use crate::install;
use crate::outputs::write_atomically;

/// The artifact's file name; sidecars append to it (`app.tar.gz.sig`, ...).
pub const ARTIFACT_NAME: &str = "app.tar.gz";
/// Default output directory, relative to the project; never packed.
pub const DEFAULT_OUT_DIR: &str = ".aether";
/// Every file a build may write besides the artifact, by suffix.
const SIDECARS: [&str; 5] = [".manifest.json", ".blocks.json", ".sbom.json", ".provenance.json", ".sig"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomFormat {
    CycloneDx,
    Legacy,
    None,
}

/// Everything a build needs; frontends fill it from flags, files and the environment.
#[derive(Debug)]
pub struct BuildOptions {
    pub project_dir: PathBuf,
    /// Where outputs go; `None` means `<project>/.aether`.
    pub out_dir: Option<PathBuf>,
    /// Run npm (cached); `false` packs the tree as it is.
    pub install: bool,
    /// Report what would be packed, and its digest, without writing any output.
    pub dry_run: bool,
    pub sbom: SbomFormat,
    pub signing_key: Option<SigningKey>,
    pub source_date_epoch: Option<u64>,
    pub cache_dir: PathBuf,
    pub namespace: Option<String>,
    pub require_provenance: bool,
    pub provenance_timeout: Duration,
    pub threads: usize,
    pub npm_program: String,
    /// Bound of the compressed-block cache under `cache_dir/blocks`; 0 turns it off.
    pub block_cache_bytes: u64,
}

impl BuildOptions {
    /// A full build of `project_dir` with the defaults `aether deploy` uses: install (cached in
    /// `cache_dir`), CycloneDX SBOM, no signing key, outputs in `<project>/.aether`.
    pub fn new(project_dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            project_dir: project_dir.into(),
            out_dir: None,
            install: true,
            dry_run: false,
            sbom: SbomFormat::CycloneDx,
            signing_key: None,
            source_date_epoch: None,
            cache_dir: cache_dir.into(),
            namespace: None,
            require_provenance: false,
            provenance_timeout: describe::DEFAULT_PROVENANCE_TIMEOUT,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            npm_program: "npm".to_owned(),
            block_cache_bytes: crate::block_cache::DEFAULT_LIMIT_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Detect,
    Install,
    Pack,
    Describe,
    Write,
}

/// Progress, for frontends to render; the library itself never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    PhaseStarted {
        phase: Phase,
        detail: String,
    },
    /// Regular files packed so far and their bytes; the total is not known in advance,
    /// because entries are packed as the walk finds them.
    PackProgress {
        files_done: u64,
        bytes_done: u64,
    },
    PhaseFinished {
        phase: Phase,
        duration_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct InstallSummary {
    pub command: String,
    pub cached: bool,
}

/// What a build produced. Paths are `None` when the file was not written.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub dry_run: bool,
    pub project: NodeProject,
    pub artifact: Option<PathBuf>,
    pub digest: String,
    pub tar_sha256: String,
    pub size_bytes: u64,
    pub file_count: u64,
    pub total_file_bytes: u64,
    pub manifest: Option<PathBuf>,
    /// The block index (`app.tar.gz.blocks.json`): where each compressed block lies.
    pub blocks: Option<PathBuf>,
    /// Compressed blocks in the artifact.
    pub block_count: u64,
    pub sbom: Option<PathBuf>,
    pub signature: Option<PathBuf>,
    pub public_key: Option<String>,
    pub provenance: Option<PathBuf>,
    /// Why provenance is missing, e.g. `timeout`.
    pub note: Option<String>,
    pub install: Option<InstallSummary>,
    pub warnings: Vec<String>,
    pub durations_ms: BTreeMap<Phase, u64>,
    /// A dry run's answer to "what would be packed": every entry, as the manifest would list it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<ManifestEntry>>,
}

struct Timer<'a> {
    events: &'a mut dyn FnMut(BuildEvent),
    durations: BTreeMap<Phase, u64>,
}

impl Timer<'_> {
    fn run<T>(
        &mut self,
        phase: Phase,
        detail: &str,
        f: impl FnOnce(&mut dyn FnMut(BuildEvent)) -> Result<T, Error>,
    ) -> Result<T, Error> {
        (self.events)(BuildEvent::PhaseStarted { phase, detail: detail.to_owned() });
        let started = Instant::now();
        let result = f(self.events)?;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.durations.insert(phase, duration_ms);
        (self.events)(BuildEvent::PhaseFinished { phase, duration_ms });
        Ok(result)
    }
}

/// Runs the build, reporting progress through `events`.
pub fn build(options: &BuildOptions, events: &mut dyn FnMut(BuildEvent)) -> Result<BuildReport, Error> {
    let mut timer = Timer { events, durations: BTreeMap::new() };
    let project = timer.run(Phase::Detect, "package.json", |_| detect(&options.project_dir))?;
    let out_dir = options.out_dir.clone().unwrap_or_else(|| project.root.join(DEFAULT_OUT_DIR));
    if !options.dry_run {
        std::fs::create_dir_all(&out_dir).map_err(Error::io("cannot create the output directory", &out_dir))?;
    }
    let installed = install_dependencies(options, &project, &mut timer)?;
    let node_modules = installed.as_ref().map(|(i, _)| i.node_modules.clone());
    let selection = SelectionOptions {
        root: project.root.clone(),
        node_modules: node_modules.clone(),
        exclude: output_paths(&project.root, &out_dir),
    };
    let mut staged = timer.run(Phase::Pack, ARTIFACT_NAME, |events| pack(options, &out_dir, &selection, events))?;
    let mut warnings = staged.warnings.clone();
    let node_modules_dir = node_modules.unwrap_or_else(|| project.root.join("node_modules"));
    let node_version = installed.as_ref().map(|(_, version)| version.clone());
    let descriptions = timer.run(Phase::Describe, "SBOM, provenance", |_| {
        let built = describe::Built {
            project: &project,
            digest: &staged.summary.digest,
            manifest_sha256: &staged.manifest_sha256,
            node_modules: &node_modules_dir,
            node_version,
            install_command: installed.as_ref().map(|(i, _)| i.command.clone()),
            packed_packages: &staged.packages,
        };
        describe::describe(options, built)
    })?;
    warnings.extend(descriptions.warnings.iter().cloned());

    let mut report = new_report(options, project, &staged.summary, &descriptions, warnings);
    report.install = installed.map(|(i, _)| InstallSummary { command: i.command, cached: i.cached });
    report.entries = staged.entries.take();
    if !options.dry_run {
        timer.run(Phase::Write, "outputs", |_| persist(&out_dir, staged, descriptions, &mut report))?;
    }
    report.durations_ms = timer.durations;
    Ok(report)
}

/// Installs (or finds in the cache) the production dependencies; returns them with the Node
/// version they were installed for.
fn install_dependencies(
    options: &BuildOptions,
    project: &NodeProject,
    timer: &mut Timer<'_>,
) -> Result<Option<(install::Installed, String)>, Error> {
    if !options.install {
        return Ok(None);
    }
    let detail = format!("npm {}", install::npm_args(project).join(" "));
    let version = crate::toolchain::node_version(Instant::now() + Duration::from_secs(30)).map_err(|e| {
        Error::CommandFailed { command: "node --version".into(), status: e.to_string(), stderr_tail: String::new() }
    })?;
    let installed = timer.run(Phase::Install, &detail, |_| {
        install::install(project, &options.cache_dir, &version, &options.npm_program)
    })?;
    Ok(Some((installed, version)))
}

fn new_report(
    options: &BuildOptions,
    project: NodeProject,
    summary: &Summary,
    descriptions: &Descriptions,
    warnings: Vec<String>,
) -> BuildReport {
    BuildReport {
        dry_run: options.dry_run,
        project,
        artifact: None,
        digest: summary.digest.clone(),
        tar_sha256: summary.tar_sha256.clone(),
        size_bytes: summary.size_bytes,
        file_count: summary.total_files,
        total_file_bytes: summary.total_file_bytes,
        manifest: None,
        blocks: None,
        block_count: summary.block_count,
        sbom: None,
        signature: None,
        public_key: options.signing_key.as_ref().map(SigningKey::public_key_hex),
        provenance: None,
        note: descriptions.note.clone(),
        install: None,
        warnings,
        durations_ms: BTreeMap::new(),
        entries: None,
    }
}

/// Reads the project at `dir`: an error when it is not a Node project.
pub(crate) fn detect(dir: &Path) -> Result<NodeProject, Error> {
    let root = std::fs::canonicalize(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Project(project::ProjectError::NoPackageJson { dir: dir.to_path_buf() }),
        _ => Error::io("cannot open the project directory", dir)(e),
    })?;
    Ok(project::detect(&root)?)
}

/// The packed artifact and its manifest, still in temporary files until every output is ready.
struct Staged {
    file: Option<tempfile::NamedTempFile>,
    manifest_file: Option<tempfile::NamedTempFile>,
    manifest_sha256: String,
    summary: Summary,
    /// The block index's JSON, written beside the artifact.
    block_index: Vec<u8>,
    /// Entries left out, then native modules packed.
    warnings: Vec<String>,
    /// What was packed, kept only by a dry run, which reports it.
    entries: Option<Vec<ManifestEntry>>,
    /// Archive paths of the installed packages that were packed.
    packages: BTreeSet<String>,
}

/// Selects and packs in one stream, writing the manifest as entries go in: neither the file
/// list nor the manifest is ever held whole in memory. A dry run packs into sinks.
fn pack(
    options: &BuildOptions,
    out_dir: &Path,
    selection: &SelectionOptions,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Staged, Error> {
    // Compressed blocks of earlier builds: a repack compresses only what changed.
    let block_cache = (options.block_cache_bytes > 0)
        .then(|| DiskBlockCache::new(options.cache_dir.join("blocks"), options.block_cache_bytes));
    let pack_options = PackOptions {
        mtime: options.source_date_epoch.unwrap_or(DEFAULT_MTIME),
        level: aether_core::pack::DEFAULT_LEVEL,
        threads: options.threads.max(1),
        block_cache: block_cache.clone().map(|cache| Arc::new(cache) as Arc<dyn BlockCache>),
    };
    let (mut files_done, mut bytes_done, mut native) = (0, 0, Vec::new());
    let mut packages = BTreeSet::new();
    let mut on_packed = |entry: &PackEntry| match &entry.kind {
        EntryKind::File { size, .. } => {
            files_done += 1;
            bytes_done += *size;
            events(BuildEvent::PackProgress { files_done, bytes_done });
            native.extend(project::native_module_warning(entry));
        }
        // One path per installed package, not per file: the SBOM lists what shipped.
        EntryKind::Dir | EntryKind::Symlink { .. } => {
            if lockfile::is_package_path(&entry.archive_path) {
                packages.insert(entry.archive_path.clone());
            }
        }
    };
    let (file, manifest_file, manifest_sha256, (summary, block_index), entries, mut warnings) = if options.dry_run {
        let mut walker = Walker::new(selection)?;
        // The manifest stays in memory: a dry run reports every entry it would pack.
        let manifest = HashingWriter::new(Vec::new());
        let packed = aether_core::pack::pack(&mut walker, &pack_options, std::io::sink(), manifest, &mut on_packed)?;
        let (manifest, manifest_sha256, _) = packed.manifest.finish();
        let entries = Manifest::from_json(&manifest)
            .map_err(|e| Error::io("cannot read back the manifest of", out_dir)(e.into()))?
            .entries;
        let packed_summary = (packed.summary, packed.block_index.to_json());
        (None, None, manifest_sha256, packed_summary, Some(entries), walker.into_warnings())
    } else {
        let temp = |prefix: &str| {
            tempfile::Builder::new()
                .prefix(prefix)
                .tempfile_in(out_dir)
                .map_err(Error::io("cannot create a file in", out_dir))
        };
        let (file, manifest_file) = (temp(".app.tar.gz.")?, temp(".manifest.")?);
        // The files being written are not packed either, even when the output directory is
        // the project itself.
        let mut selection = selection.clone();
        selection.exclude.extend([file.path().to_path_buf(), manifest_file.path().to_path_buf()]);
        let mut walker = Walker::new(&selection)?;
        let writer = BufWriter::with_capacity(256 * 1024, file.as_file());
        let manifest = HashingWriter::new(BufWriter::new(manifest_file.as_file()));
        let Packed { summary, block_index, manifest, .. } =
            aether_core::pack::pack(&mut walker, &pack_options, writer, manifest, &mut on_packed)?;
        let (buffered, manifest_sha256, _) = manifest.finish();
        buffered.into_inner().map_err(|e| Error::io("cannot write the manifest in", out_dir)(e.into_error()))?;
        (
            Some(file),
            Some(manifest_file),
            manifest_sha256,
            (summary, block_index.to_json()),
            None,
            walker.into_warnings(),
        )
    };
    warnings.append(&mut native);
    if let Some(cache) = block_cache {
        cache.trim();
    }
    Ok(Staged { file, manifest_file, manifest_sha256, summary, block_index, warnings, entries, packages })
}

/// What a build never packs: the output directory and `<project>/.aether` (the default one,
/// which may hold an earlier build's outputs), and the output files themselves, which matters
/// when the output directory is the project.
fn output_paths(root: &Path, out_dir: &Path) -> Vec<PathBuf> {
    let mut paths = vec![out_dir.to_path_buf(), root.join(DEFAULT_OUT_DIR), out_dir.join(ARTIFACT_NAME)];
    paths.extend(SIDECARS.iter().map(|suffix| out_dir.join(format!("{ARTIFACT_NAME}{suffix}"))));
    paths
}

/// Moves every output into place; stale sidecars from earlier builds are removed so no file
/// describes another artifact.
fn persist(out_dir: &Path, staged: Staged, descriptions: Descriptions, report: &mut BuildReport) -> Result<(), Error> {
    let artifact = out_dir.join(ARTIFACT_NAME);
    let sidecar = |suffix: &str| out_dir.join(format!("{ARTIFACT_NAME}{suffix}"));
    for suffix in SIDECARS {
        let path = sidecar(suffix);
        if path.exists() {
            std::fs::remove_file(&path).map_err(Error::io("cannot remove stale output", &path))?;
        }
    }
    if let Some(file) = staged.file {
        file.as_file().sync_all().map_err(Error::io("cannot write", &artifact))?;
        file.persist(&artifact).map_err(|e| Error::io("cannot write", &artifact)(e.error))?;
    }
    report.artifact = Some(artifact);
    let write = |suffix: &str, bytes: Option<&Vec<u8>>| -> Result<Option<PathBuf>, Error> {
        let Some(bytes) = bytes else { return Ok(None) };
        let path = sidecar(suffix);
        write_atomically(&path, bytes, None)?;
        Ok(Some(path))
    };
    if let Some(file) = staged.manifest_file {
        let path = sidecar(".manifest.json");
        file.as_file().sync_all().map_err(Error::io("cannot write", &path))?;
        file.persist(&path).map_err(|e| Error::io("cannot write", &path)(e.error))?;
        report.manifest = Some(path);
        report.blocks = write(".blocks.json", Some(&staged.block_index))?;
    }
    report.sbom = write(".sbom.json", descriptions.sbom_json.as_ref())?;
    report.provenance = write(".provenance.json", descriptions.provenance_json.as_ref())?;
    report.signature = write(".sig", descriptions.signature.as_ref())?;
    Ok(())
}
