//! Deterministic tar.gz packing with both digests and the manifest computed in one pass.

use std::fs::File;
use std::io::{self, Read, Write};

use tar::{EntryType, Header};

use crate::digest::{HashingReader, HashingWriter};
use crate::gzip::ParallelGzipWriter;
use crate::manifest::{MANIFEST_SCHEMA, Manifest, ManifestEntry, mode_string};
use crate::selection::{EntryKind, PackEntry};

/// Entry mtime when `SOURCE_DATE_EPOCH` is not given: 1980-01-01T00:00:00Z, the earliest time
/// every archive format (zip included) can represent.
pub const DEFAULT_MTIME: u64 = 315_532_800;

#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Every entry's mtime; pass `SOURCE_DATE_EPOCH` when set, else [`DEFAULT_MTIME`].
    pub mtime: u64,
    /// gzip level, 1-9.
    pub level: u32,
    /// Compression threads; the output does not depend on it.
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { mtime: DEFAULT_MTIME, level: 6, threads }
    }
}

/// What a pack produced, besides the bytes written.
#[derive(Debug, Clone)]
pub struct PackOutput {
    pub manifest: Manifest,
}

impl PackOutput {
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being packed (expected {expected} bytes, read {actual}); retry")]
    FileChanged { path: String, expected: u64, actual: u64 },
    #[error("writing the artifact failed")]
    Write(#[source] io::Error),
}

/// Packs `entries` (already sorted, see [`crate::selection::select`]) into `out`.
///
/// `progress` is called with each regular file's size once it is packed, for progress bars.
pub fn pack<W: Write>(
    entries: &[PackEntry],
    options: &PackOptions,
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<PackOutput, PackError> {
    let gz_hashing = HashingWriter::new(out);
    let gzip = ParallelGzipWriter::new(gz_hashing, options.level, options.threads).map_err(PackError::Write)?;
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    let mut manifest_entries = Vec::with_capacity(entries.len());
    let (mut total_files, mut total_file_bytes) = (0u64, 0u64);
    for entry in entries {
        let manifest_entry = append(&mut builder, entry, options.mtime)?;
        if let ManifestEntry::File { size, .. } = &manifest_entry {
            total_files += 1;
            total_file_bytes += size;
            progress(*size);
        }
        manifest_entries.push(manifest_entry);
    }
    let tar_hashing = builder.into_inner().map_err(PackError::Write)?;
    let (gzip, tar_sha256, _) = tar_hashing.finish();
    let gz_hashing = gzip.finish().map_err(PackError::Write)?;
    let (mut out, digest, size_bytes) = gz_hashing.finish();
    out.flush().map_err(PackError::Write)?;
    Ok(PackOutput {
        manifest: Manifest {
            schema: MANIFEST_SCHEMA.to_owned(),
            digest,
            tar_sha256,
            size_bytes,
            total_files,
            total_file_bytes,
            entries: manifest_entries,
        },
    })
}

fn header(kind: EntryType, mode: u32, size: u64, mtime: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header
}

fn append<W: Write>(builder: &mut tar::Builder<W>, entry: &PackEntry, mtime: u64) -> Result<ManifestEntry, PackError> {
    let path = entry.archive_path.as_str();
    match &entry.kind {
        EntryKind::Dir => {
            let mut h = header(EntryType::Directory, 0o755, 0, mtime);
            builder.append_data(&mut h, format!("{path}/"), io::empty()).map_err(PackError::Write)?;
            Ok(ManifestEntry::Dir { path: path.to_owned(), mode: mode_string(0o755) })
        }
        EntryKind::Symlink { target } => {
            let mut h = header(EntryType::Symlink, 0o777, 0, mtime);
            builder.append_link(&mut h, path, target).map_err(PackError::Write)?;
            Ok(ManifestEntry::Symlink { path: path.to_owned(), target: target.clone() })
        }
        EntryKind::File { size, executable } => {
            let mode = if *executable { 0o755 } else { 0o644 };
            let file = File::open(&entry.source).map_err(|source| PackError::Read { path: path.to_owned(), source })?;
            // Reading one byte past the expected size detects a file that grew.
            let mut reader = HashingReader::new(TaggedReader(file.take(size + 1)));
            let mut h = header(EntryType::Regular, mode, *size, mtime);
            builder.append_data(&mut h, path, &mut reader).map_err(|e| classify(e, path))?;
            let (sha256, actual) = reader.finish();
            if actual != *size {
                return Err(PackError::FileChanged { path: path.to_owned(), expected: *size, actual });
            }
            Ok(ManifestEntry::File { path: path.to_owned(), size: *size, mode: mode_string(mode), sha256 })
        }
    }
}

/// Tags read errors so they are not reported as failures to write the artifact.
struct TaggedReader<R>(R);

impl<R: Read> Read for TaggedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| io::Error::new(e.kind(), ReadFailed(e.to_string())))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReadFailed(String);

fn classify(error: io::Error, path: &str) -> PackError {
    if error.get_ref().is_some_and(|inner| inner.is::<ReadFailed>()) {
        PackError::Read { path: path.to_owned(), source: error }
    } else {
        PackError::Write(error)
    }
}
