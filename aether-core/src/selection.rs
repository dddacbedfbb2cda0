//! Which files go into the artifact.
//!
//! The source tree follows `.gitignore` (nested ones too) and `.aetherignore` with git's own
//! semantics through the `ignore` crate. The installed production `node_modules` always ships,
//! even though nearly every project gitignores it; only `.aetherignore` at the project root can
//! exclude parts of it. `.git` and the output directory are never selected.

use std::path::{Component, Path, PathBuf};

use ignore::WalkBuilder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

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
pub fn select(options: &SelectionOptions) -> Result<Selection, SelectionError> {
    let root = canonical(&options.root)?;
    let exclude = options.exclude.iter().filter_map(|p| std::fs::canonicalize(p).ok()).collect::<Vec<_>>();
    let mut selection = Selection::default();
    walk_sources(&root, &exclude, &mut selection)?;

    let node_modules = match &options.node_modules {
        Some(dir) => Some(canonical(dir)?),
        None => Some(root.join("node_modules")).filter(|p| p.is_dir()),
    };
    if let Some(dir) = node_modules {
        let rules = root_aetherignore(&root)?;
        walk_node_modules(&root, &dir, &rules, &exclude, &mut selection)?;
    }
    selection.entries.sort_by(|a, b| a.archive_path.as_bytes().cmp(b.archive_path.as_bytes()));
    selection.entries.dedup_by(|a, b| a.archive_path == b.archive_path);
    // Growth left up to half the vector unused; large trees have tens of thousands of entries.
    selection.entries.shrink_to_fit();
    Ok(selection)
}

fn walk_sources(root: &Path, exclude: &[PathBuf], out: &mut Selection) -> Result<(), SelectionError> {
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
        .build();
    for entry in walker {
        let entry = entry.map_err(SelectionError::Walk)?;
        if entry.depth() == 0 {
            continue;
        }
        add_entry(root, entry.path(), entry.path(), out)?;
    }
    Ok(())
}

fn walk_node_modules(
    root: &Path,
    dir: &Path,
    rules: &Gitignore,
    exclude: &[PathBuf],
    out: &mut Selection,
) -> Result<(), SelectionError> {
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
            let Ok(rel) = path.strip_prefix(&dir_for_filter) else { return false };
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !rules_for_filter.matched_path_or_any_parents(top_for_filter.join(rel), is_dir).is_ignore()
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(SelectionError::Walk)?;
        let rel = entry.path().strip_prefix(dir).unwrap_or(Path::new(""));
        add_entry(root, &virtual_top.join(rel), entry.path(), out)?;
    }
    Ok(())
}

/// Records one path. `virtual_path` is where it sits in the packed tree (under `root`);
/// `source` is where it is read from (they differ for a cached `node_modules`).
fn add_entry(root: &Path, virtual_path: &Path, source: &Path, out: &mut Selection) -> Result<(), SelectionError> {
    let archive_path = archive_path(root, virtual_path)?;
    let meta = std::fs::symlink_metadata(source).map_err(|e| io_error(source, e))?;
    let kind = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(source).map_err(|e| io_error(source, e))?;
        let target = target.to_str().ok_or_else(|| SelectionError::NonUtf8Path { path: target.clone() })?.to_owned();
        if !symlink_stays_inside(&archive_path, &target) {
            return Err(SelectionError::SymlinkEscapes { path: archive_path, target });
        }
        EntryKind::Symlink { target }
    } else if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        use std::os::unix::fs::PermissionsExt as _;
        EntryKind::File { size: meta.len(), executable: meta.permissions().mode() & 0o111 != 0 }
    } else {
        out.warnings.push(format!("skipped {archive_path}: not a regular file, directory or symlink"));
        return Ok(());
    };
    out.entries.push(PackEntry { archive_path, source: source.to_path_buf(), kind });
    Ok(())
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
mod tests {
    use super::*;

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
