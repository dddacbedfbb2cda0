//! The measurements themselves: Aether's pack, the `tar | gzip` reference, a pack's peak RSS and
//! the CLI's start-up time.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use aether_core::pack::{DEFAULT_MTIME, PackOptions};
use aether_core::selection::{EntryKind, SelectionOptions, Walker};
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// The reference pipeline: GNU tar with the same normalisations Aether applies, then `gzip -6`.
/// `-n` keeps gzip from embedding the name and mtime, as Aether does not either.
const TAR_GZIP: &str = "set -o pipefail; \
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | gzip -n -6 > \"$1\"";

/// What one Aether pack produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Packed {
    pub digest: String,
    pub size_bytes: u64,
    pub entries: u64,
    pub files: u64,
    pub file_bytes: u64,
    /// Peak resident set of the process that packed, when it was measured (`pack-once`).
    pub vm_hwm_kib: Option<u64>,
}

/// The tree as Aether selects it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TreeShape {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub file_bytes: u64,
}

/// Counts what a pack of `tree` will contain.
pub fn tree_shape(tree: &Path) -> Result<TreeShape> {
    let mut shape = TreeShape::default();
    for entry in Walker::new(&selection_options(tree, None))? {
        match entry?.kind {
            EntryKind::File { size, .. } => {
                shape.files += 1;
                shape.file_bytes += size;
            }
            EntryKind::Dir => shape.dirs += 1,
            EntryKind::Symlink { .. } => shape.symlinks += 1,
        }
    }
    Ok(shape)
}

/// What `aether deploy --pack-only --no-install --out OUT_DIR` selects in `tree`: never its
/// `.aether/` directory, nor the output files when they are written inside the tree.
fn selection_options(tree: &Path, out: Option<&Path>) -> SelectionOptions {
    let mut exclude = vec![tree.join(".aether")];
    exclude.extend(out.into_iter().flat_map(|o| [o.to_path_buf(), sibling(o, ".manifest.json")]));
    SelectionOptions { root: tree.to_path_buf(), node_modules: None, exclude }
}

/// The whole of `aether deploy --pack-only`'s packing work, streamed as the CLI does it: walk,
/// tar, gzip, both digests and the manifest JSON. With `out`, the artifact goes to `out` (through
/// the same 256 KiB buffer the CLI uses) and the manifest beside it; without, both are produced
/// and discarded.
pub fn aether_pack(tree: &Path, threads: usize, out: Option<&Path>) -> Result<Packed> {
    let options =
        PackOptions { mtime: DEFAULT_MTIME, level: aether_core::pack::DEFAULT_LEVEL, threads, block_cache: None };
    let (summary, entries) = match out {
        Some(path) => {
            let create = |p: &Path| File::create(p).with_context(|| format!("cannot create {}", p.display()));
            let mut writer = BufWriter::with_capacity(256 * 1024, create(path)?);
            let manifest = BufWriter::new(create(&sibling(path, ".manifest.json"))?);
            // Created first, so that outputs inside the tree are known to exist and excluded.
            let walker = Walker::new(&selection_options(tree, Some(path)))?;
            let packed = aether_core::pack::pack(walker, &options, &mut writer, manifest, &mut |_| {})?;
            writer.flush()?;
            packed.manifest.into_inner().map_err(|e| e.into_error())?;
            (packed.summary, packed.entries)
        }
        None => {
            let walker = Walker::new(&selection_options(tree, None))?;
            let packed = aether_core::pack::pack(walker, &options, std::io::sink(), std::io::sink(), &mut |_| {})?;
            (packed.summary, packed.entries)
        }
    };
    Ok(Packed {
        digest: summary.digest,
        size_bytes: summary.size_bytes,
        entries,
        files: summary.total_files,
        file_bytes: summary.total_file_bytes,
        vm_hwm_kib: None,
    })
}

/// `path` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Runs the reference pipeline on `tree`; returns the size of the `.tar.gz` it wrote to `out`.
pub fn tar_gzip(tree: &Path, out: &Path) -> Result<u64> {
    let status = Command::new("bash")
        .args(["-c", TAR_GZIP, "bash"])
        .arg(out)
        .current_dir(tree)
        .stdin(Stdio::null())
        .status()
        .context("cannot run bash")?;
    if !status.success() {
        bail!("tar | gzip failed: {status}");
    }
    Ok(std::fs::metadata(out)?.len())
}

/// Packs in a fresh child process (`pack-once`), so the peak RSS it reports belongs to one pack
/// alone and not to this process's earlier runs.
pub fn pack_in_child(self_exe: &Path, tree: &Path, threads: usize, out: &Path) -> Result<Packed> {
    let output = Command::new(self_exe)
        .args(["pack-once", "--threads", &threads.to_string(), "--tree"])
        .arg(tree)
        .arg("--out")
        .arg(out)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run pack-once")?;
    if !output.status.success() {
        bail!("pack-once failed: {}", output.status);
    }
    serde_json::from_slice(&output.stdout).context("pack-once printed no result")
}

/// Wall-clock milliseconds of `bin --help`, start to exit, `runs` times after a few warm-ups
/// (the first runs pay for loading the binary from disk).
pub fn help_timings_ms(bin: &Path, runs: usize) -> Result<Vec<f64>> {
    let run_once = || -> Result<f64> {
        let start = Instant::now();
        let status = Command::new(bin)
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if !status.success() {
            bail!("{} --help failed: {status}", bin.display());
        }
        Ok(ms)
    };
    for _ in 0..3 {
        run_once()?;
    }
    (0..runs).map(|_| run_once()).collect()
}
