//! Safe unpacking of a `.tar.gz` artifact into a release directory.
//!
//! The artifact is built from a project whose dependencies run arbitrary install scripts, and it
//! travels through storage we do not fully control, so every entry is treated as hostile: nothing
//! may land outside the release directory, nothing may be written through a link, no device or
//! hard link may be created, and a gzip bomb must not fill the disk. Extraction happens in a fresh
//! sibling directory that is renamed into place only once every entry has been accepted, so a
//! runtime never sees a half-unpacked release and a refusal leaves nothing behind.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::GzDecoder;
use tar::{Entry, EntryType};

/// Bounds on what one artifact may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes written to regular files, counted while copying rather than taken from headers.
    pub max_total_bytes: u64,
    /// Archive entries of any kind, so a flood of empty files or directories is bounded too.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    /// Generous enough for a large `node_modules`, small enough that a bomb cannot exhaust a host.
    fn default() -> Self {
        Self { max_total_bytes: 4 << 30, max_entries: 200_000 }
    }
}

impl UnpackLimits {
    /// The largest decompressed stream an acceptable archive can have: file contents, plus
    /// headers, padding and long-name records for every entry, plus the trailer.
    fn max_stream_bytes(&self) -> u64 {
        self.max_total_bytes
            .saturating_add(self.max_entries.saturating_mul(ENTRY_OVERHEAD))
            .saturating_add(TRAILER_SLACK)
    }

    /// The largest `.tar.gz` these limits can accept, so a download can be cut off before it
    /// fills the disk: deflate never grows its input by more than 5 bytes per 64 KiB stored
    /// block, which one part in a thousand plus the gzip framing covers.
    pub fn max_archive_bytes(&self) -> u64 {
        let stream = self.max_stream_bytes();
        stream.saturating_add(stream / 1000).saturating_add(1024)
    }
}

/// What an accepted archive contained, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackSummary {
    /// Every entry the archive listed, including directories and symlinks.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes written to regular files.
    pub total_bytes: u64,
}

/// Why an artifact was refused; entry paths are reported as they appear in the archive.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("destination {} already exists; releases are never unpacked over existing files", .path.display())]
    DestinationExists { path: PathBuf },
    #[error("destination {} has no final path component to unpack into", .path.display())]
    InvalidDestination { path: PathBuf },
    #[error("entry {path:?} has an empty path")]
    EmptyPath { path: PathBuf },
    #[error("entry {path:?} has an absolute path")]
    AbsolutePath { path: PathBuf },
    #[error("entry {path:?} contains a `..` component")]
    ParentTraversal { path: PathBuf },
    #[error("symlink {path:?} has an empty target")]
    EmptyLinkTarget { path: PathBuf },
    #[error("symlink {path:?} points outside the release (target {target:?})")]
    LinkEscapes { path: PathBuf, target: PathBuf },
    #[error("entry {path:?} is a hard link; hard links are not supported")]
    HardLink { path: PathBuf },
    #[error("entry {path:?} is a {kind}; only files, directories and symlinks are supported")]
    UnsupportedEntryType { path: PathBuf, kind: String },
    #[error("entry {path:?} would be written through the symlink {symlink:?}")]
    WriteThroughSymlink { path: PathBuf, symlink: PathBuf },
    #[error("entry {path:?} needs {parent:?} to be a directory, but the archive made it something else")]
    NotADirectory { path: PathBuf, parent: PathBuf },
    #[error("entry {path:?} appears twice in the archive")]
    DuplicateEntry { path: PathBuf },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("archive expands to more than {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    #[error("archive is corrupt or truncated: {context}")]
    Corrupt {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Decompressed bytes allowed per entry on top of file contents: headers, padding, and GNU/PAX
/// extension records for paths up to `PATH_MAX`. Caps the stream so that payloads we skip (or
/// that the `tar` crate buffers in memory, like long names) cannot turn into a CPU or memory bomb.
const ENTRY_OVERHEAD: u64 = 8 * 1024;
/// End-of-archive blocks plus the record padding GNU tar appends.
const TRAILER_SLACK: u64 = 64 * 1024;
const COPY_BUFFER: usize = 64 * 1024;
/// Staging names include the pid and a counter, so collisions only come from stale leftovers.
const STAGING_ATTEMPTS: u32 = 64;
static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Unpacks a gzip-compressed tarball into `dest`, which must not exist yet.
///
/// `dest` appears atomically (one rename) and only if every entry was accepted; on any error the
/// staging directory is removed so the parent directory is left exactly as it was.
pub fn unpack_tar_gz<R: Read>(reader: R, dest: &Path, limits: &UnpackLimits) -> Result<UnpackSummary, UnpackError> {
    ensure_absent(dest)?;
    let staging = create_staging(dest)?;
    let outcome = extract(reader, &staging, limits).and_then(|summary| {
        // Re-checked because a concurrent caller may have claimed `dest` meanwhile, and rename
        // would silently replace an empty directory.
        ensure_absent(dest)?;
        fs::rename(&staging, dest).map_err(|source| io_error(format!("renaming into {}", dest.display()), source))?;
        Ok(summary)
    });
    if outcome.is_err()
        && let Err(error) = fs::remove_dir_all(&staging)
    {
        tracing::warn!(path = %staging.display(), %error, "could not remove staging directory");
    }
    outcome
}

fn ensure_absent(dest: &Path) -> Result<(), UnpackError> {
    // symlink_metadata, so a dangling symlink at `dest` also counts as taken.
    match fs::symlink_metadata(dest) {
        Ok(_) => Err(UnpackError::DestinationExists { path: dest.to_path_buf() }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(format!("checking {}", dest.display()), source)),
    }
}

/// A sibling of `dest`, so the final rename stays on one filesystem and is atomic.
fn create_staging(dest: &Path) -> Result<PathBuf, UnpackError> {
    let name = dest.file_name().ok_or_else(|| UnpackError::InvalidDestination { path: dest.to_path_buf() })?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    for _ in 0..STAGING_ATTEMPTS {
        let counter = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut staged = name.to_os_string();
        staged.push(format!(".unpack-{}-{counter}", std::process::id()));
        let path = parent.join(staged);
        match fs::create_dir(&path) {
            Ok(()) => {
                if let Err(source) = fs::set_permissions(&path, Permissions::from_mode(0o755)) {
                    let _ = fs::remove_dir(&path);
                    return Err(io_error(format!("setting permissions on {}", path.display()), source));
                }
                return Ok(path);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(io_error(format!("creating {}", path.display()), source)),
        }
    }
    let source = io::Error::from(io::ErrorKind::AlreadyExists);
    Err(io_error(format!("no free staging directory name next to {}", dest.display()), source))
}

fn extract<R: Read>(reader: R, root: &Path, limits: &UnpackLimits) -> Result<UnpackSummary, UnpackError> {
    let cap = limits.max_stream_bytes();
    let mut archive = tar::Archive::new(CappedReader { inner: GzDecoder::new(reader), remaining: cap });
    let mut extractor = Extractor {
        root,
        limits,
        summary: UnpackSummary::default(),
        known_dirs: HashSet::new(),
        buffer: vec![0; COPY_BUFFER],
    };
    let entries = archive.entries().map_err(|e| archive_error(e, "reading the archive".into(), limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(e, "reading an entry header".into(), limits))?;
        extractor.entry(&mut entry)?;
    }
    // Reading to the end makes the decoder verify the gzip CRC and length trailer.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| archive_error(e, "reading past the end of the archive".into(), limits))?;
    Ok(extractor.summary)
}

struct Extractor<'a> {
    root: &'a Path,
    limits: &'a UnpackLimits,
    summary: UnpackSummary,
    /// Directories we created; nothing can replace them later, so they need no second `lstat`.
    known_dirs: HashSet<PathBuf>,
    buffer: Vec<u8>,
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, entry: &mut Entry<'_, R>) -> Result<(), UnpackError> {
        self.summary.entries += 1;
        if self.summary.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries { limit: self.limits.max_entries });
        }
        let raw = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        match entry.header().entry_type() {
            // Global PAX headers carry archive-wide metadata (GNU tar names them with an absolute
            // path); we apply none of it, so they are skipped before path validation.
            EntryType::XGlobalHeader => return Ok(()),
            EntryType::Link => return Err(UnpackError::HardLink { path: raw }),
            EntryType::Regular | EntryType::Directory | EntryType::Symlink => {}
            other => return Err(UnpackError::UnsupportedEntryType { path: raw, kind: describe(other) }),
        }
        let rel = normalise(&raw)?;
        match entry.header().entry_type() {
            // `tar -C dir .` lists the root itself as `./`, which already exists.
            EntryType::Directory if rel.as_os_str().is_empty() => Ok(()),
            _ if rel.as_os_str().is_empty() => Err(UnpackError::EmptyPath { path: raw }),
            EntryType::Directory => {
                self.parents(&raw, &rel)?;
                self.ensure_dir(&raw, &rel, false)
            }
            EntryType::Symlink => self.symlink(entry, &raw, &rel),
            _ => self.file(entry, &raw, &rel),
        }
    }

    fn file<R: Read>(&mut self, entry: &mut Entry<'_, R>, raw: &Path, rel: &Path) -> Result<(), UnpackError> {
        self.parents(raw, rel)?;
        let declared = entry.size();
        // Fail fast on an honest header; the copy below still counts every byte it writes.
        if declared > self.limits.max_total_bytes.saturating_sub(self.summary.total_bytes) {
            return Err(UnpackError::TooLarge { limit_bytes: self.limits.max_total_bytes });
        }
        let header_mode = entry.header().mode().map_err(|e| corrupt(format!("mode of {raw:?}"), e))?;
        let mode = if header_mode & 0o111 != 0 { 0o755 } else { 0o644 };
        let path = self.root.join(rel);
        // create_new (O_EXCL) neither overwrites an earlier entry nor follows a symlink there.
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&path).map_err(|source| {
            match source.kind() {
                io::ErrorKind::AlreadyExists => UnpackError::DuplicateEntry { path: raw.to_path_buf() },
                _ => io_error(format!("creating {}", path.display()), source),
            }
        })?;
        let copied = self.copy(entry, &mut file, raw, &path)?;
        if copied != declared {
            let source = io::Error::from(io::ErrorKind::UnexpectedEof);
            return Err(corrupt(format!("{raw:?} holds {copied} of its {declared} bytes"), source));
        }
        // The umask may have narrowed the creation mode; the release must not depend on it.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|source| io_error(format!("setting permissions on {}", path.display()), source))?;
        self.summary.files += 1;
        Ok(())
    }

    fn copy(&mut self, src: &mut impl Read, dst: &mut File, raw: &Path, path: &Path) -> Result<u64, UnpackError> {
        let mut copied = 0u64;
        loop {
            let read = match src.read(&mut self.buffer) {
                Ok(0) => return Ok(copied),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(archive_error(error, format!("reading {raw:?}"), self.limits)),
            };
            let total = self.summary.total_bytes.saturating_add(read as u64);
            if total > self.limits.max_total_bytes {
                return Err(UnpackError::TooLarge { limit_bytes: self.limits.max_total_bytes });
            }
            let chunk = self.buffer.get(..read).unwrap_or_default();
            dst.write_all(chunk).map_err(|source| io_error(format!("writing {}", path.display()), source))?;
            self.summary.total_bytes = total;
            copied += read as u64;
        }
    }

    fn symlink<R: Read>(&mut self, entry: &Entry<'_, R>, raw: &Path, rel: &Path) -> Result<(), UnpackError> {
        let target = entry.link_name_bytes().map(|bytes| bytes.into_owned()).unwrap_or_default();
        check_link_target(raw, rel, &target)?;
        self.parents(raw, rel)?;
        let path = self.root.join(rel);
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => UnpackError::DuplicateEntry { path: raw.to_path_buf() },
            _ => io_error(format!("creating symlink {}", path.display()), source),
        })
    }

    /// Archives often omit directory entries, so missing parents are created; an existing parent
    /// must be a real directory, never a symlink an earlier entry planted.
    fn parents(&mut self, raw: &Path, rel: &Path) -> Result<(), UnpackError> {
        let mut prefix = PathBuf::new();
        for component in rel.parent().into_iter().flat_map(Path::components) {
            prefix.push(component);
            self.ensure_dir(raw, &prefix, true)?;
        }
        Ok(())
    }

    fn ensure_dir(&mut self, raw: &Path, rel: &Path, is_parent: bool) -> Result<(), UnpackError> {
        if self.known_dirs.contains(rel) {
            return Ok(());
        }
        let path = self.root.join(rel);
        let conflict = |through_symlink: bool| match (is_parent, through_symlink) {
            (true, true) => UnpackError::WriteThroughSymlink { path: raw.to_path_buf(), symlink: rel.to_path_buf() },
            (true, false) => UnpackError::NotADirectory { path: raw.to_path_buf(), parent: rel.to_path_buf() },
            (false, _) => UnpackError::DuplicateEntry { path: raw.to_path_buf() },
        };
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(meta) => return Err(conflict(meta.file_type().is_symlink())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(|source| io_error(format!("creating {}", path.display()), source))?;
                fs::set_permissions(&path, Permissions::from_mode(0o755))
                    .map_err(|source| io_error(format!("setting permissions on {}", path.display()), source))?;
            }
            Err(source) => return Err(io_error(format!("inspecting {}", path.display()), source)),
        }
        self.known_dirs.insert(rel.to_path_buf());
        Ok(())
    }
}

/// Turns an entry path into a relative path of plain names, refusing anything that could point
/// elsewhere. `\` counts as a separator for these checks so an archive cannot smuggle `..\` to a
/// runtime that interprets it.
fn normalise(raw: &Path) -> Result<PathBuf, UnpackError> {
    let bytes = raw.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(UnpackError::EmptyPath { path: raw.to_path_buf() });
    }
    if is_absolute(bytes) {
        return Err(UnpackError::AbsolutePath { path: raw.to_path_buf() });
    }
    if bytes.split(|b| *b == b'/' || *b == b'\\').any(|part| part == b"..") {
        return Err(UnpackError::ParentTraversal { path: raw.to_path_buf() });
    }
    if bytes.contains(&0) {
        return Err(corrupt(format!("{raw:?} contains a NUL byte"), io::ErrorKind::InvalidData.into()));
    }
    let mut rel = PathBuf::new();
    for part in bytes.split(|b| *b == b'/').filter(|part| !part.is_empty() && *part != b".") {
        rel.push(OsStr::from_bytes(part));
    }
    Ok(rel)
}

/// Unix roots plus Windows drive (`C:`) and UNC/root (`\`) prefixes.
fn is_absolute(bytes: &[u8]) -> bool {
    match bytes {
        [b'/' | b'\\', ..] => true,
        [drive, b':', ..] => drive.is_ascii_alphabetic(),
        _ => false,
    }
}

/// Resolves the target lexically from the link's parent. A `..` is only accepted before the first
/// name: after a name it would step out of whatever that name resolves to, and if the name is
/// itself a symlink (say to `../..`), the kernel would walk out of the release even though the
/// lexical path stays inside. With leading `..`s only, every link lands inside by induction.
fn check_link_target(raw: &Path, rel: &Path, target: &[u8]) -> Result<(), UnpackError> {
    let escapes =
        || UnpackError::LinkEscapes { path: raw.to_path_buf(), target: PathBuf::from(OsStr::from_bytes(target)) };
    if target.is_empty() {
        return Err(UnpackError::EmptyLinkTarget { path: raw.to_path_buf() });
    }
    if is_absolute(target) || target.contains(&0) {
        return Err(escapes());
    }
    let mut depth = rel.components().count().saturating_sub(1);
    let mut descended = false;
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if !descended && depth > 0 => depth -= 1,
            b".." => return Err(escapes()),
            _ => descended = true,
        }
    }
    Ok(())
}

fn describe(kind: EntryType) -> String {
    match kind {
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "fifo".into(),
        EntryType::Continuous => "contiguous file".into(),
        EntryType::GNUSparse => "GNU sparse file".into(),
        EntryType::GNULongName | EntryType::GNULongLink => "GNU long-name header in a non-GNU archive".into(),
        EntryType::XHeader => "PAX header in a non-PAX archive".into(),
        other => format!("entry of type {:?}", char::from(other.as_byte())),
    }
}

/// Errors from the archive stream are the archive's fault, except hitting our own stream cap.
fn archive_error(source: io::Error, context: String, limits: &UnpackLimits) -> UnpackError {
    if source.get_ref().is_some_and(|inner| inner.is::<StreamCapExceeded>()) {
        return UnpackError::TooLarge { limit_bytes: limits.max_total_bytes };
    }
    corrupt(context, source)
}

fn corrupt(context: String, source: io::Error) -> UnpackError {
    UnpackError::Corrupt { context, source }
}

fn io_error(context: String, source: io::Error) -> UnpackError {
    UnpackError::Io { context, source }
}

#[derive(Debug)]
struct StreamCapExceeded;

impl fmt::Display for StreamCapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decompressed archive exceeds its size cap")
    }
}

impl std::error::Error for StreamCapExceeded {}

/// Bounds the decompressed stream as a whole, including data the `tar` crate reads on its own.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Exactly at the cap is fine; only data beyond it is an error.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(StreamCapExceeded)),
            };
        }
        let len = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(buf.get_mut(..len).unwrap_or_default())?;
        self.remaining = self.remaining.saturating_sub(read as u64);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_drops_dot_and_empty_components() {
        let rel = normalise(Path::new("./a//./b/")).ok();
        assert_eq!(rel, Some(PathBuf::from("a/b")));
    }

    #[test]
    fn windows_prefixes_are_absolute() {
        for raw in ["C:\\x", "c:x", "\\\\server\\share", "\\x", "/x"] {
            assert!(matches!(normalise(Path::new(raw)), Err(UnpackError::AbsolutePath { .. })), "{raw}");
        }
        assert!(matches!(normalise(Path::new("a\\..\\b")), Err(UnpackError::ParentTraversal { .. })));
    }

    #[test]
    fn an_incompressible_archive_at_the_limits_fits_the_archive_bound() {
        let limits = UnpackLimits { max_total_bytes: 1 << 20, max_entries: 4 };
        let noise: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(noise.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "noise.bin", noise.as_slice()).ok();
        let tar = tar.into_inner().unwrap_or_default();
        // Level 0 stores every block: the worst case for size.
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        gzip.write_all(&tar).ok();
        let archive = gzip.finish().unwrap_or_default();
        assert!(archive.len() as u64 > limits.max_total_bytes);
        assert!((archive.len() as u64) <= limits.max_archive_bytes(), "{} bytes", archive.len());
    }

    #[test]
    fn link_targets_may_only_climb_before_descending() {
        let link = Path::new("a/b/l");
        assert!(check_link_target(link, link, b"../../x/y").is_ok());
        assert!(check_link_target(link, link, b"./c").is_ok());
        assert!(matches!(check_link_target(link, link, b"../../../x"), Err(UnpackError::LinkEscapes { .. })));
        assert!(matches!(check_link_target(link, link, b"s/../x"), Err(UnpackError::LinkEscapes { .. })));
        assert!(matches!(check_link_target(link, link, b"/etc"), Err(UnpackError::LinkEscapes { .. })));
    }
}
