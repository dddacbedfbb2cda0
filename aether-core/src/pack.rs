//! Deterministic tar.gz packing with both digests and the manifest computed in one pass.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use crate::blocks::BlockIndex;
use crate::digest::HashingWriter;
use crate::gzip::{BlockCache, FillError, ParallelGzipWriter};
use crate::manifest::{ManifestEntry, ManifestWriter, Summary, mode_string};
use crate::selection::{EntryKind, PackEntry, SelectionError};

/// Entry mtime when `SOURCE_DATE_EPOCH` is not given: 1980-01-01T00:00:00Z, the earliest time
/// every archive format (zip included) can represent.
pub const DEFAULT_MTIME: u64 = 315_532_800;

/// The deflate level artifacts are packed with. Level 5 costs about a fifth less CPU than 6
/// for output about 1.5% larger than `gzip -6` on a real `node_modules` tree (measured by
/// `benches/run.sh pack`, whose size target allows 3%), and compression is most of a pack.
pub const DEFAULT_LEVEL: u32 = 5;

#[derive(Clone)]
pub struct PackOptions {
    /// Every entry's mtime; pass `SOURCE_DATE_EPOCH` when set, else [`DEFAULT_MTIME`].
    pub mtime: u64,
    /// gzip level, 1-9.
    pub level: u32,
    /// Compression threads; the output does not depend on it.
    pub threads: usize,
    /// Compressed blocks of earlier packs; the output does not depend on it either.
    pub block_cache: Option<Arc<dyn BlockCache>>,
}

impl std::fmt::Debug for PackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackOptions")
            .field("mtime", &self.mtime)
            .field("level", &self.level)
            .field("threads", &self.threads)
            .field("block_cache", &self.block_cache.is_some())
            .finish()
    }
}

impl Default for PackOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { mtime: DEFAULT_MTIME, level: DEFAULT_LEVEL, threads, block_cache: None }
    }
}

/// One tar entry in this many starts a new compressed block (once the block holds
/// [`crate::gzip::MIN_BLOCK_SIZE`]): with the few-KiB entries of a `node_modules` tree, blocks
/// of about 1 MiB. The choice depends on the entry's name alone, so block boundaries stay put
/// when files before them change.
const ENTRIES_PER_CUT: u32 = 256;

/// What [`pack`] produced besides the artifact bytes.
#[derive(Debug)]
pub struct Packed<M> {
    pub summary: Summary,
    /// Where each compressed block lies in the artifact; its JSON's SHA-256 is in the summary.
    pub block_index: BlockIndex,
    /// Entries packed (files, directories and symlinks).
    pub entries: u64,
    /// The manifest's writer, handed back once the manifest is complete.
    pub manifest: M,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Select(#[from] SelectionError),
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
    #[error("writing the manifest failed")]
    WriteManifest(#[source] io::Error),
}

/// Packs `entries` into `out` as they come (in archive order, as [`crate::selection::Walker`]
/// yields them) and writes the manifest to `manifest` alongside, so memory stays the same
/// whatever the number of files.
///
/// `on_packed` sees each entry once it is in the archive, for progress and warnings.
pub fn pack<W: Write, M: Write>(
    entries: impl IntoIterator<Item = Result<PackEntry, SelectionError>>,
    options: &PackOptions,
    out: W,
    manifest: M,
    on_packed: &mut dyn FnMut(&PackEntry),
) -> Result<Packed<M>, PackError> {
    let mut packer = Packer::new(out, options)?;
    let mut manifest = ManifestWriter::new(manifest).map_err(PackError::WriteManifest)?;
    let mut count = 0;
    for entry in entries {
        let entry = entry?;
        manifest.entry(&packer.append(&entry)?).map_err(PackError::WriteManifest)?;
        on_packed(&entry);
        count += 1;
    }
    let (summary, block_index) = packer.finish()?;
    let manifest = manifest.finish(&summary).map_err(PackError::WriteManifest)?;
    Ok(Packed { summary, block_index, entries: count, manifest })
}

/// Packs entries one at a time, in the order given (which must be bytewise by archive path for
/// the output to be canonical); [`pack`] drives it.
///
/// The tar stream is built directly in the compressor's input blocks: headers are copied in,
/// file contents are read into them by the kernel, and both SHA-256s of a file's bytes (its own
/// and the tar stream's) are taken while the chunk is still in cache.
pub struct Packer<W: Write> {
    gzip: ParallelGzipWriter<HashingWriter<W>>,
    tar_hasher: Sha256,
    /// Builds each entry's header bytes (GNU long-name records included) exactly as
    /// `tar::Builder` would write them.
    headers: tar::Builder<Vec<u8>>,
    files: FileOpener,
    mtime: u64,
    total_files: u64,
    total_file_bytes: u64,
}

impl<W: Write> std::fmt::Debug for Packer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("gzip", &self.gzip)
            .field("total_files", &self.total_files)
            .field("total_file_bytes", &self.total_file_bytes)
            .finish_non_exhaustive()
    }
}

/// tar's record size: headers, contents and the trailer are all padded to it.
const RECORD: usize = 512;
const ZEROS: [u8; 2 * RECORD] = [0; 2 * RECORD];

impl<W: Write> Packer<W> {
    pub fn new(out: W, options: &PackOptions) -> Result<Self, PackError> {
        let gzip = ParallelGzipWriter::with_cache(
            HashingWriter::new(out),
            options.level,
            options.threads,
            options.block_cache.clone(),
        )
        .map_err(PackError::Write)?;
        Ok(Self {
            gzip,
            tar_hasher: Sha256::new(),
            headers: tar::Builder::new(Vec::with_capacity(4 * RECORD)),
            files: FileOpener::default(),
            mtime: options.mtime,
            total_files: 0,
            total_file_bytes: 0,
        })
    }

    /// Appends one entry and returns its manifest entry.
    pub fn append(&mut self, entry: &PackEntry) -> Result<ManifestEntry, PackError> {
        let path = entry.archive_path.as_str();
        if crc32fast::hash(path.as_bytes()).is_multiple_of(ENTRIES_PER_CUT) {
            self.gzip.offer_cut().map_err(PackError::Write)?;
        }
        self.headers.get_mut().clear();
        match &entry.kind {
            EntryKind::Dir => {
                let mut h = header(EntryType::Directory, 0o755, 0, self.mtime);
                self.headers.append_data(&mut h, format!("{path}/"), io::empty()).map_err(PackError::Write)?;
                self.emit_headers()?;
                Ok(ManifestEntry::Dir { path: path.to_owned(), mode: mode_string(0o755) })
            }
            EntryKind::Symlink { target } => {
                // Every entry's mode is 0644 or 0755; a link's own mode is never used on unpack.
                let mut h = header(EntryType::Symlink, 0o755, 0, self.mtime);
                self.headers.append_link(&mut h, path, target).map_err(PackError::Write)?;
                self.emit_headers()?;
                Ok(ManifestEntry::Symlink { path: path.to_owned(), target: target.clone() })
            }
            EntryKind::File { size, executable } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                let read_error = |source| PackError::Read { path: path.to_owned(), source };
                let mut file = SizedFile::new(self.files.open(&entry.source).map_err(read_error)?, *size);
                let mut h = header(EntryType::Regular, mode, *size, self.mtime);
                self.headers.append_data(&mut h, path, io::empty()).map_err(PackError::Write)?;
                self.emit_headers()?;
                let mut file_hasher = Sha256::new();
                let tar_hasher = &mut self.tar_hasher;
                // Reading one byte past the expected size detects a file that grew.
                let actual = self
                    .gzip
                    .read_from(&mut file, size + 1, &mut |chunk| {
                        file_hasher.update(chunk);
                        tar_hasher.update(chunk);
                    })
                    .map_err(|e| match e {
                        FillError::Read(source) => read_error(source),
                        FillError::Write(source) => PackError::Write(source),
                    })?;
                if actual != *size {
                    return Err(PackError::FileChanged { path: path.to_owned(), expected: *size, actual });
                }
                let padding = (RECORD - (*size % RECORD as u64) as usize) % RECORD;
                self.emit(&ZEROS[..padding])?;
                self.total_files += 1;
                self.total_file_bytes += size;
                let sha256 = hex::encode(file_hasher.finalize());
                Ok(ManifestEntry::File { path: path.to_owned(), size: *size, mode: mode_string(mode), sha256 })
            }
        }
    }

    /// Writes the tar trailer, finishes the gzip stream and flushes `out`.
    pub fn finish(mut self) -> Result<(Summary, BlockIndex), PackError> {
        self.emit(&ZEROS)?;
        let tar_sha256 = hex::encode(self.tar_hasher.finalize());
        let (gz_hashing, blocks) = self.gzip.finish().map_err(PackError::Write)?;
        let (mut out, digest, size_bytes) = gz_hashing.finish();
        out.flush().map_err(PackError::Write)?;
        let block_index = BlockIndex::new(digest.clone(), size_bytes, blocks);
        let summary = Summary {
            digest,
            tar_sha256,
            size_bytes,
            total_files: self.total_files,
            total_file_bytes: self.total_file_bytes,
            block_count: block_index.blocks.len() as u64,
            block_index_sha256: crate::digest::sha256_hex(&block_index.to_json()),
        };
        Ok((summary, block_index))
    }

    fn emit_headers(&mut self) -> Result<(), PackError> {
        let bytes = self.headers.get_mut();
        self.tar_hasher.update(&bytes[..]);
        self.gzip.write_all(bytes).map_err(PackError::Write)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.tar_hasher.update(bytes);
        self.gzip.write_all(bytes).map_err(PackError::Write)
    }
}

/// Opens files relative to their directory, kept open while its files are packed: entries come
/// sorted, so most files share the previous one's directory, and the kernel resolves one name
/// instead of the whole absolute path for each.
#[derive(Debug, Default)]
struct FileOpener {
    dir: Option<(PathBuf, OwnedFd)>,
}

impl FileOpener {
    fn open(&mut self, path: &Path) -> io::Result<File> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return File::open(path) };
        if self.dir.as_ref().is_none_or(|(dir, _)| dir != parent) {
            self.dir = None;
            let fd = rustix::fs::open(parent, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
            self.dir = Some((parent.to_path_buf(), fd));
        }
        match &self.dir {
            Some((_, dir)) => {
                Ok(File::from(rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?))
            }
            None => File::open(path),
        }
    }
}

/// A file expected to hold `expected` bytes. A regular file returns fewer bytes than asked for
/// only at its end, so once a short read lands exactly on the expected size the end is taken as
/// reached without one more `read` call (there is one file per entry: that call is one in four).
/// A file that had grown still yields the extra byte that reveals it.
struct SizedFile {
    file: File,
    expected: u64,
    read: u64,
    at_end: bool,
}

impl SizedFile {
    fn new(file: File, expected: u64) -> Self {
        Self { file, expected, read: 0, at_end: false }
    }
}

impl Read for SizedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at_end || buf.is_empty() {
            return Ok(0);
        }
        let n = self.file.read(buf)?;
        self.read += n as u64;
        self.at_end = n == 0 || (n < buf.len() && self.read == self.expected);
        Ok(n)
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::symlink;

    use super::*;

    fn entry(root: &Path, path: &str, kind: EntryKind) -> PackEntry {
        PackEntry { archive_path: path.to_owned(), source: root.join(path), kind }
    }

    /// The tar stream `tar::Builder` writes for the same entries, which the packer must match
    /// byte for byte (GNU long-name records included).
    fn reference_tar(root: &Path, entries: &[PackEntry], mtime: u64) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for e in entries {
            let path = e.archive_path.as_str();
            match &e.kind {
                EntryKind::Dir => {
                    let mut h = header(EntryType::Directory, 0o755, 0, mtime);
                    builder.append_data(&mut h, format!("{path}/"), io::empty()).unwrap();
                }
                EntryKind::Symlink { target } => {
                    let mut h = header(EntryType::Symlink, 0o755, 0, mtime);
                    builder.append_link(&mut h, path, target).unwrap();
                }
                EntryKind::File { size, executable } => {
                    let mut h = header(EntryType::Regular, if *executable { 0o755 } else { 0o644 }, *size, mtime);
                    builder.append_data(&mut h, path, File::open(root.join(path)).unwrap()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn tar_stream_matches_tar_builder_with_long_names_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let long_dir = format!("d/{}", "n".repeat(120));
        std::fs::create_dir_all(root.join(&long_dir)).unwrap();
        let long_file = format!("{long_dir}/{}.js", "f".repeat(90));
        std::fs::write(root.join(&long_file), vec![b'x'; 3 * crate::gzip::MAX_BLOCK_SIZE + 7]).unwrap();
        std::fs::write(root.join("d/a.js"), "a").unwrap();
        std::fs::write(root.join("d/empty"), "").unwrap();
        std::fs::write(root.join("d/record"), vec![b'r'; 512]).unwrap();
        let long_target = format!("../{}", "t".repeat(150));
        symlink(&long_target, root.join("d/link")).unwrap();
        let file = |p: &str| {
            let size = std::fs::metadata(root.join(p)).unwrap().len();
            entry(root, p, EntryKind::File { size, executable: p.ends_with(".js") })
        };
        let entries = vec![
            entry(root, "d", EntryKind::Dir),
            file("d/a.js"),
            file("d/empty"),
            entry(root, "d/link", EntryKind::Symlink { target: long_target }),
            entry(root, &long_dir, EntryKind::Dir),
            file(&long_file),
            file("d/record"),
        ];
        let options = PackOptions { mtime: 1_234, level: 6, threads: 2, block_cache: None };
        let mut gz = Vec::new();
        let packed = pack(entries.iter().cloned().map(Ok), &options, &mut gz, io::sink(), &mut |_| {}).unwrap();
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut tar_bytes).unwrap();
        assert!(tar_bytes == reference_tar(root, &entries, 1_234), "tar streams differ");
        assert_eq!(packed.summary.tar_sha256, crate::digest::sha256_hex(&tar_bytes));
        assert_eq!(packed.summary.total_files, 4);
        assert_eq!(packed.entries, 7);
    }

    #[test]
    fn a_file_that_grew_or_shrank_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "12345").unwrap();
        let options = PackOptions { threads: 1, ..PackOptions::default() };
        for (claimed, actual) in [(4, 5), (6, 5)] {
            let entries = [entry(dir.path(), "f", EntryKind::File { size: claimed, executable: false })];
            match pack(entries.iter().cloned().map(Ok), &options, io::sink(), io::sink(), &mut |_| {}) {
                Err(PackError::FileChanged { expected, actual: read, .. }) => {
                    assert_eq!((expected, read), (claimed, actual));
                }
                other => panic!("expected FileChanged, got {other:?}"),
            }
        }
    }

    #[test]
    fn sized_file_stops_at_a_short_read_of_the_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").unwrap();
        let mut file = SizedFile::new(File::open(&path).unwrap(), 5);
        let mut buf = [0; 16];
        assert_eq!(file.read(&mut buf).unwrap(), 5);
        assert!(file.at_end);
        assert_eq!(file.read(&mut buf).unwrap(), 0);
        // Expecting less than is there: the extra bytes still come through.
        let mut file = SizedFile::new(File::open(&path).unwrap(), 3);
        assert_eq!(file.read(&mut buf[..4]).unwrap(), 4);
        assert!(!file.at_end);
    }

    /// 3,000 files of 4 KiB of pseudo-random text, each distinct.
    fn many_files(root: &Path) -> Vec<PackEntry> {
        std::fs::create_dir_all(root.join("m")).unwrap();
        (0..3000u32)
            .map(|i| {
                let path = format!("m/file-{i:05}.js");
                let text: Vec<u8> =
                    (0..4096u32).map(|j| b"abcdefgh ijklmnop\n"[((i * 31 + j * 7 + j / 97) % 18) as usize]).collect();
                std::fs::write(root.join(&path), text).unwrap();
                entry(root, &path, EntryKind::File { size: 4096, executable: false })
            })
            .collect()
    }

    fn block_hashes(root: &Path, entries: &[PackEntry]) -> Vec<String> {
        let options = PackOptions { mtime: 1, level: 6, threads: 2, block_cache: None };
        let packed = pack(entries.iter().cloned().map(Ok), &options, io::sink(), io::sink(), &mut |_| {}).unwrap();
        let _ = root;
        packed.block_index.blocks.into_iter().map(|b| b.sha256).collect()
    }

    #[test]
    fn changing_one_file_changes_only_the_blocks_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let entries = many_files(dir.path());
        let before = block_hashes(dir.path(), &entries);
        assert!(before.len() >= 6, "too few blocks to tell: {}", before.len());
        // A file in the middle grows by a few hundred bytes.
        let changed = &entries[1500];
        let mut text = std::fs::read(&changed.source).unwrap();
        text.extend_from_slice(&[b'z'; 700]);
        std::fs::write(&changed.source, &text).unwrap();
        let mut after_entries = entries.clone();
        after_entries[1500].kind = EntryKind::File { size: text.len() as u64, executable: false };
        let after = block_hashes(dir.path(), &after_entries);
        let differing = before.iter().filter(|hash| !after.contains(hash)).count();
        // The block holding the file and the one after it (primed with its tail) at most.
        assert!(differing <= 2, "{differing} of {} blocks changed", before.len());
        assert!(differing >= 1, "the change is in no block");
        assert!(after.len().abs_diff(before.len()) <= 1);
    }
}
