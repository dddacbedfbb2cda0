//! Which files go into the artifact.
//!
//! The source tree follows `.gitignore` (nested ones too) and `.aetherignore` with git's own
//! semantics through the `ignore` crate. The installed production `node_modules` always ships,
//! even though nearly every project gitignores it; only `.aetherignore` at the project root can
//! exclude parts of it. `.git` and the output directory are never selected.

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{AtFlags, Mode, OFlags, RawMode};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{WalkBuilder, WalkState};

/// The ignore file that can exclude anything, `node_modules` content included.
pub const AETHERIGNORE: &str = ".aetherignore";

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File {
        size: u64,
        executable: bool,
    },
    Dir,
    /// The target exactly as stored in the link; always relative and inside the tree.
    Symlink {
        target: String,
    },
}

/// One entry of the artifact: where it comes from and what it is called inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// Relative, `/`-separated, no trailing slash.
    pub archive_path: String,
    pub source: PathBuf,
    pub kind: EntryKind,
}

/// Where to select from.
#[derive(Debug, Clone)]
pub struct SelectionOptions {
    pub root: PathBuf,
    /// The installed production dependencies. `None` packs `<root>/node_modules` when present.
    pub node_modules: Option<PathBuf>,
    /// Paths never packed (the output directory, for one).
    pub exclude: Vec<PathBuf>,
}

/// The selected entries, sorted bytewise by archive path, plus what was skipped and why.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub entries: Vec<PackEntry>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("symlink {path} points outside the packed tree (target {target:?})")]
    SymlinkEscapes { path: String, target: String },
    #[error("path {path:?} is not valid UTF-8; rename it or list it in .aetherignore")]
    NonUtf8Path { path: PathBuf },
    #[error("invalid {AETHERIGNORE}: {message}")]
    InvalidIgnoreFile { message: String },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("walking the project tree failed")]
    Walk(#[source] ignore::Error),
}

/// Selects the project's files and its installed `node_modules`.
///
/// The tree is walked on several threads (the walk is mostly system calls, one `lstat` per
/// entry); the result does not depend on the order they find things in: entries and warnings
/// are sorted, and of several errors the same one is always reported.
pub fn select(options: &SelectionOptions) -> Result<Selection, SelectionError> {
    let root = canonical(&options.root)?;
    let exclude = options.exclude.iter().filter_map(|p| std::fs::canonicalize(p).ok()).collect::<Vec<_>>();
    let found = Mutex::new(Found::default());
    walk_sources(&root, &exclude, &found);

    let node_modules = match &options.node_modules {
        Some(dir) => Some(canonical(dir)?),
        None => Some(root.join("node_modules")).filter(|p| p.is_dir()),
    };
    if let Some(dir) = node_modules {
        let rules = root_aetherignore(&root)?;
        walk_node_modules(&root, &dir, &rules, &exclude, &found);
    }
    let Found { mut entries, mut warnings, errors } = found.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(error) = errors.into_iter().min_by_key(ToString::to_string) {
        return Err(error);
    }
    entries.sort_unstable_by(|a, b| a.archive_path.as_bytes().cmp(b.archive_path.as_bytes()));
    entries.dedup_by(|a, b| a.archive_path == b.archive_path);
    // Growth left up to half the vector unused; large trees have tens of thousands of entries.
    entries.shrink_to_fit();
    warnings.sort_unstable();
    Ok(Selection { entries, warnings })
}

/// What the walking threads found, in no particular order.
#[derive(Default)]
struct Found {
    entries: Vec<PackEntry>,
    warnings: Vec<String>,
    errors: Vec<SelectionError>,
}

impl Found {
    fn record(found: &Mutex<Found>, result: Result<Inspected, SelectionError>) {
        let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(Inspected::Entry(entry)) => found.entries.push(entry),
            Ok(Inspected::Skipped(warning)) => found.warnings.push(warning),
            Err(error) => found.errors.push(error),
        }
    }
}

fn walk_sources(root: &Path, exclude: &[PathBuf], found: &Mutex<Found>) {
    let top_node_modules = root.join("node_modules");
    let exclude = exclude.to_vec();
    let walker = WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .git_ignore(true)
        .require_git(false)
        .add_custom_ignore_filename(AETHERIGNORE)
        .follow_links(false)
        .filter_entry(move |entry| {
            let path = entry.path();
            entry.file_name() != ".git" && path != top_node_modules && !exclude.iter().any(|x| path.starts_with(x))
        })
        .build_parallel();
    walker.run(|| {
        let mut dirs = DirCache::default();
        Box::new(move |entry| {
            match entry {
                Err(error) => Found::record(found, Err(SelectionError::Walk(error))),
                Ok(entry) if entry.depth() == 0 => {}
                Ok(entry) => {
                    Found::record(found, inspect(root, entry.path(), entry.path(), entry.file_type(), &mut dirs));
                }
            }
            WalkState::Continue
        })
    });
}

fn walk_node_modules(root: &Path, dir: &Path, rules: &Gitignore, exclude: &[PathBuf], found: &Mutex<Found>) {
    let virtual_top = root.join("node_modules");
    let exclude = exclude.to_vec();
    let (dir_for_filter, top_for_filter, rules_for_filter) = (dir.to_path_buf(), virtual_top.clone(), rules.clone());
    let walker = WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .filter_entry(move |entry| {
            let path = entry.path();
            if exclude.iter().any(|x| path.starts_with(x)) {
                return false;
            }
            if rules_for_filter.is_empty() {
                return true;
            }
            let Ok(rel) = path.strip_prefix(&dir_for_filter) else { return false };
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !rules_for_filter.matched_path_or_any_parents(top_for_filter.join(rel), is_dir).is_ignore()
        })
        .build_parallel();
    let virtual_top = &virtual_top;
    walker.run(|| {
        let mut dirs = DirCache::default();
        Box::new(move |entry| {
            match entry {
                Err(error) => Found::record(found, Err(SelectionError::Walk(error))),
                Ok(entry) => {
                    let rel = entry.path().strip_prefix(dir).unwrap_or(Path::new(""));
                    let inspected = inspect(root, &virtual_top.join(rel), entry.path(), entry.file_type(), &mut dirs);
                    Found::record(found, inspected);
                }
            }
            WalkState::Continue
        })
    });
}

enum Inspected {
    Entry(PackEntry),
    /// Not packed, with the reason.
    Skipped(String),
}

/// Describes one path. `virtual_path` is where it sits in the packed tree (under `root`);
/// `source` is where it is read from (they differ for a cached `node_modules`). `file_type`,
/// when the walk already knows it, saves a system call for directories and symlinks.
fn inspect(
    root: &Path,
    virtual_path: &Path,
    source: &Path,
    file_type: Option<std::fs::FileType>,
    dirs: &mut DirCache,
) -> Result<Inspected, SelectionError> {
    let archive_path = archive_path(root, virtual_path)?;
    let file_type = match file_type {
        Some(t) => t,
        None => std::fs::symlink_metadata(source).map_err(|e| io_error(source, e))?.file_type(),
    };
    let kind = if file_type.is_symlink() {
        let target = std::fs::read_link(source).map_err(|e| io_error(source, e))?;
        let target = target.to_str().ok_or_else(|| SelectionError::NonUtf8Path { path: target.clone() })?.to_owned();
        if !symlink_stays_inside(&archive_path, &target) {
            return Err(SelectionError::SymlinkEscapes { path: archive_path, target });
        }
        EntryKind::Symlink { target }
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        let (size, mode) = dirs.lstat(source).map_err(|e| io_error(source, e))?;
        if rustix::fs::FileType::from_raw_mode(mode) != rustix::fs::FileType::RegularFile {
            // Replaced since the directory was read; report it as it is now.
            let meta = std::fs::symlink_metadata(source).map_err(|e| io_error(source, e))?;
            return inspect(root, virtual_path, source, Some(meta.file_type()), dirs);
        }
        EntryKind::File { size, executable: mode & 0o111 != 0 }
    } else {
        return Ok(Inspected::Skipped(format!("skipped {archive_path}: not a regular file, directory or symlink")));
    };
    Ok(Inspected::Entry(PackEntry { archive_path, source: source.to_path_buf(), kind }))
}

/// `lstat` relative to the directory of the previous call, kept open: a walking thread reports a
/// directory's entries one after another, so the kernel resolves one name instead of the whole
/// absolute path for each.
#[derive(Debug, Default)]
struct DirCache {
    dir: Option<(PathBuf, OwnedFd)>,
}

impl DirCache {
    /// Size and mode of `path`, not following a final symlink.
    fn lstat(&mut self, path: &Path) -> std::io::Result<(u64, RawMode)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            use std::os::unix::fs::MetadataExt as _;
            let meta = std::fs::symlink_metadata(path)?;
            return Ok((meta.len(), meta.mode()));
        };
        if self.dir.as_ref().is_none_or(|(dir, _)| dir != parent) {
            self.dir = None;
            let fd = rustix::fs::open(parent, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
            self.dir = Some((parent.to_path_buf(), fd));
        }
        let Some((_, dir)) = &self.dir else { return Err(std::io::ErrorKind::NotFound.into()) };
        let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok((u64::try_from(stat.st_size).unwrap_or(0), stat.st_mode))
    }
}

fn archive_path(root: &Path, path: &Path) -> Result<String, SelectionError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => {
                parts.push(part.to_str().ok_or_else(|| SelectionError::NonUtf8Path { path: path.to_path_buf() })?)
            }
            _ => return Err(SelectionError::NonUtf8Path { path: path.to_path_buf() }),
        }
    }
    Ok(parts.join("/"))
}

/// Lexically resolves `target` against the link's directory; absolute targets never stay inside,
/// because the tree is unpacked somewhere else.
pub fn symlink_stays_inside(link_archive_path: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') {
        return false;
    }
    let mut depth: i64 = link_archive_path.split('/').count() as i64 - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

fn root_aetherignore(root: &Path) -> Result<Gitignore, SelectionError> {
    let mut builder = GitignoreBuilder::new(root);
    let file = root.join(AETHERIGNORE);
    if file.is_file()
        && let Some(err) = builder.add(&file)
    {
        return Err(SelectionError::InvalidIgnoreFile { message: err.to_string() });
    }
    builder.build().map_err(|e| SelectionError::InvalidIgnoreFile { message: e.to_string() })
}

fn canonical(path: &Path) -> Result<PathBuf, SelectionError> {
    std::fs::canonicalize(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: std::io::Error) -> SelectionError {
    SelectionError::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn of_several_errors_the_same_one_is_always_reported() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a", "b", "c", "d"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::os::unix::fs::symlink("../../outside", dir.path().join(d).join("link")).unwrap();
        }
        let options = SelectionOptions { root: dir.path().to_path_buf(), node_modules: None, exclude: vec![] };
        for _ in 0..5 {
            match select(&options) {
                Err(SelectionError::SymlinkEscapes { path, .. }) => assert_eq!(path, "a/link"),
                other => panic!("expected SymlinkEscapes, got {other:?}"),
            }
        }
    }

    #[test]
    fn entries_come_sorted_bytewise_whatever_the_walk_order() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["es/x.js", "es-abstract/y.js", "es.js", "node_modules/react/i.js", "node_modules/react-dom/j.js"] {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let options = SelectionOptions { root: dir.path().to_path_buf(), node_modules: None, exclude: vec![] };
        let paths: Vec<_> = select(&options).unwrap().entries.into_iter().map(|e| e.archive_path).collect();
        let mut sorted = paths.clone();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(paths, sorted);
        assert_eq!(paths.len(), 10);
    }

    #[test]
    fn symlink_targets_are_resolved_lexically() {
        assert!(symlink_stays_inside("node_modules/.bin/tool", "../tool/cli.js"));
        assert!(symlink_stays_inside("a", "b"));
        assert!(symlink_stays_inside("a/b/c", "../../x"));
        assert!(!symlink_stays_inside("a/b/c", "../../../x"));
        assert!(!symlink_stays_inside("link", "../outside"));
        assert!(!symlink_stays_inside("link", "/etc/passwd"));
        assert!(!symlink_stays_inside("a/link", "x/../../.."));
    }
}
