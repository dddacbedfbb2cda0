//! Which files go into the artifact, streamed in archive order.
//!
//! The source tree follows `.gitignore` (nested ones too) and `.aetherignore` with git's own
//! semantics, matched by the `ignore` crate's gitignore matcher: in each directory the nearest
//! file with a matching rule decides, and `.aetherignore` outranks `.gitignore`. The installed
//! production `node_modules` always ships, even though nearly every project gitignores it; only
//! `.aetherignore` at the project root can exclude parts of it. `.git` and the output directory
//! are never selected.
//!
//! The tree is walked depth first, one directory listing at a time, and entries come out already
//! sorted bytewise by archive path: a pack holds one listing per directory level in memory, not
//! the whole tree, so its memory does not grow with the number of files. Within a directory a
//! child directory `d` is emitted at key `d` but its contents at key `d/`, because every path
//! below `d` sorts against `d`'s siblings exactly as `d/` does:
//! `es` < `es-abstract` < `es-abstract/index.js` < `es.js` < `es/index.js`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

/// The ignore file that can exclude anything, `node_modules` content included.
pub const AETHERIGNORE: &str = ".aetherignore";
const GITIGNORE: &str = ".gitignore";
const NODE_MODULES: &str = "node_modules";

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
    #[error("{}", escape_message(.path, .target))]
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
}

/// Collects the whole selection; [`Walker`] streams it instead.
pub fn select(options: &SelectionOptions) -> Result<Selection, SelectionError> {
    let mut walker = Walker::new(options)?;
    let entries = walker.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok(Selection { entries, warnings: walker.into_warnings() })
}

/// Yields the selected entries in archive order (bytewise by path); stops after the first error.
///
/// Entries that cannot be packed but need not stop the pack (sockets, fifos, devices) are left
/// out and described in [`Walker::warnings`].
#[derive(Debug)]
pub struct Walker {
    stack: Vec<Frame>,
    /// The root `.aetherignore`, the only rules that apply inside `node_modules`.
    node_modules_rules: Gitignore,
    /// Where `node_modules` is read from, when it ships.
    node_modules: Option<PathBuf>,
    root: PathBuf,
    /// Excluded paths as (parent, name): a walk prunes at the excluded path itself.
    exclude: Vec<(PathBuf, OsString)>,
    warnings: Vec<String>,
    failed: bool,
}

/// One directory being walked.
#[derive(Debug)]
struct Frame {
    /// Its archive path; empty at the root.
    prefix: String,
    source: PathBuf,
    rules: Rules,
    /// Children still to visit, sorted so that `pop` yields the next in archive order.
    pending: Vec<Pending>,
}

/// The ignore rules a directory adds for what lies below it.
#[derive(Debug)]
enum Rules {
    Sources(Box<SourceRules>),
    /// Inside `node_modules`, where only the root `.aetherignore` applies.
    NodeModules,
}

/// A source directory's own `.aetherignore` and `.gitignore` (empty when absent).
#[derive(Debug)]
struct SourceRules {
    aetherignore: Gitignore,
    gitignore: Gitignore,
}

#[derive(Debug)]
struct Pending {
    /// The child's name, with `/` appended for the step into a directory.
    key: Vec<u8>,
    step: Step,
}

#[derive(Debug)]
enum Step {
    Emit(Listed),
    Descend { source: PathBuf, node_modules: bool },
}

/// A directory entry as its listing (plus one `lstat` or `readlink`) describes it.
#[derive(Debug)]
enum Listed {
    Dir,
    File { size: u64, executable: bool },
    Symlink { target: OsString },
    Other,
}

impl Walker {
    /// Starts a walk: resolves the root and `node_modules` and lists the root directory.
    pub fn new(options: &SelectionOptions) -> Result<Self, SelectionError> {
        let root = canonical(&options.root)?;
        let exclude = options
            .exclude
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .filter_map(|p| Some((p.parent()?.to_path_buf(), p.file_name()?.to_os_string())))
            .collect();
        // A `node_modules` that is a symlink is packed as the symlink it is (and refused when it
        // leaves the tree), never followed.
        let local = root.join(NODE_MODULES);
        let node_modules = match &options.node_modules {
            Some(dir) => Some(canonical(dir)?),
            None => std::fs::symlink_metadata(&local).is_ok_and(|m| m.is_dir()).then_some(local),
        };
        let node_modules_rules = match root.join(AETHERIGNORE) {
            file if file.is_file() => ignore_rules(&root, AETHERIGNORE)?,
            _ => Gitignore::empty(),
        };
        let mut walker = Self {
            stack: Vec::new(),
            node_modules_rules,
            node_modules,
            root: root.clone(),
            exclude,
            warnings: Vec::new(),
            failed: false,
        };
        walker.enter(String::new(), root, false)?;
        Ok(walker)
    }

    /// What was left out so far and why, in archive order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn into_warnings(self) -> Vec<String> {
        self.warnings
    }

    /// Lists a directory, keeps the children the rules select and pushes them as a new frame.
    fn enter(&mut self, prefix: String, source: PathBuf, in_node_modules: bool) -> Result<(), SelectionError> {
        let io = |e: rustix::io::Errno| io_error(&source, e.into());
        let fd = rustix::fs::open(&source, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io)?;
        let mut stream = Dir::new(fd).map_err(io)?;
        let mut children = Vec::new();
        while let Some(entry) = stream.read() {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if name != c"." && name != c".." && name != c".git" {
                children.push((OsString::from_vec(name.to_bytes().to_vec()), entry.file_type()));
            }
        }
        let dir = stream.fd().map_err(io)?;
        let at_root = prefix.is_empty() && !in_node_modules;
        let rules = if in_node_modules {
            Rules::NodeModules
        } else {
            let has = |file: &str| children.iter().any(|(name, t)| name == file && *t != FileType::Directory);
            let aetherignore = match () {
                () if at_root => self.node_modules_rules.clone(),
                () if has(AETHERIGNORE) => ignore_rules(&source, AETHERIGNORE)?,
                () => Gitignore::empty(),
            };
            let gitignore = if has(GITIGNORE) { ignore_rules(&source, GITIGNORE)? } else { Gitignore::empty() };
            Rules::Sources(Box::new(SourceRules { aetherignore, gitignore }))
        };

        let mut pending = Vec::with_capacity(children.len() + 2);
        for (name, file_type) in children {
            // `node_modules` at the root is the installed one, added below wherever it lives.
            let top_node_modules = at_root && name == NODE_MODULES;
            if (top_node_modules && self.node_modules.is_some()) || self.is_excluded(&source, &name) {
                continue;
            }
            let path = source.join(&name);
            let listed = describe(&dir, &name, file_type).map_err(|e| io_error(&path, e))?;
            let is_dir = matches!(listed, Listed::Dir);
            // Gitignore rules select sources; `node_modules` (here: a link) always ships.
            let ignored = if in_node_modules || top_node_modules {
                self.node_modules_ignores(&prefix, &name, is_dir)
            } else {
                self.source_ignores(&rules, &path, is_dir)
            };
            if ignored {
                continue;
            }
            if is_dir {
                pending.push(Pending::descend(&name, path, in_node_modules));
            }
            pending.push(Pending { key: name.into_vec(), step: Step::Emit(listed) });
        }
        if at_root && let Some(node_modules) = self.node_modules.clone() {
            let excluded = node_modules
                .file_name()
                .is_some_and(|n| node_modules.parent().is_some_and(|parent| self.is_excluded(parent, n)));
            if !excluded && !self.node_modules_ignores("", OsStr::new(NODE_MODULES), true) {
                pending.push(Pending::descend(OsStr::new(NODE_MODULES), node_modules, true));
                pending.push(Pending { key: NODE_MODULES.as_bytes().to_vec(), step: Step::Emit(Listed::Dir) });
            }
        }
        pending.sort_unstable_by(|a, b| b.key.cmp(&a.key));
        self.stack.push(Frame { prefix, source, rules, pending });
        Ok(())
    }

    fn is_excluded(&self, parent: &Path, name: &OsStr) -> bool {
        self.exclude.iter().any(|(p, n)| n == name && p == parent)
    }

    /// Git's precedence: for each kind of ignore file the nearest directory with a matching rule
    /// decides, and `.aetherignore` outranks `.gitignore`. `own` are the rules of the directory
    /// being listed, which apply to its children.
    fn source_ignores(&self, own: &Rules, path: &Path, is_dir: bool) -> bool {
        let (mut aether, mut git) = (Match::None, Match::None);
        for rules in std::iter::once(own).chain(self.stack.iter().rev().map(|frame| &frame.rules)) {
            if let Rules::Sources(rules) = rules {
                if aether.is_none() {
                    aether = rules.aetherignore.matched(path, is_dir);
                }
                if git.is_none() {
                    git = rules.gitignore.matched(path, is_dir);
                }
            }
        }
        aether.or(git).is_ignore()
    }

    /// Inside `node_modules` the root `.aetherignore` matches the path the entry will have in
    /// the project, wherever the installed tree is read from.
    fn node_modules_ignores(&self, prefix: &str, name: &OsStr, is_dir: bool) -> bool {
        if self.node_modules_rules.is_empty() {
            return false;
        }
        let path = self.root.join(prefix).join(name);
        self.node_modules_rules.matched(path, is_dir).is_ignore()
    }

    fn emit(
        &mut self,
        archive_path: String,
        source: PathBuf,
        listed: Listed,
    ) -> Result<Option<PackEntry>, SelectionError> {
        let kind = match listed {
            Listed::Dir => EntryKind::Dir,
            Listed::File { size, executable } => EntryKind::File { size, executable },
            Listed::Symlink { target } => {
                let target = target.into_string().map_err(|t| SelectionError::NonUtf8Path { path: t.into() })?;
                if !symlink_stays_inside(&archive_path, &target) {
                    return Err(SelectionError::SymlinkEscapes { path: archive_path, target });
                }
                EntryKind::Symlink { target }
            }
            Listed::Other => {
                self.warnings.push(format!("skipped {archive_path}: not a regular file, directory or symlink"));
                return Ok(None);
            }
        };
        Ok(Some(PackEntry { archive_path, source, kind }))
    }

    fn step(&mut self) -> Option<Result<PackEntry, SelectionError>> {
        loop {
            let frame = self.stack.last_mut()?;
            let Some(Pending { key, step }) = frame.pending.pop() else {
                self.stack.pop();
                continue;
            };
            let name = OsStr::from_bytes(key.strip_suffix(b"/").unwrap_or(&key));
            let archive_path = match name.to_str() {
                Some(name) if frame.prefix.is_empty() => name.to_owned(),
                Some(name) => format!("{}/{name}", frame.prefix),
                None => return Some(Err(SelectionError::NonUtf8Path { path: frame.source.join(name) })),
            };
            let emit_source = matches!(step, Step::Emit(_)).then(|| frame.source.join(name));
            let result = match step {
                Step::Descend { source, node_modules } => self.enter(archive_path, source, node_modules).map(|()| None),
                Step::Emit(listed) => self.emit(archive_path, emit_source.unwrap_or_default(), listed),
            };
            match result {
                Ok(None) => {}
                Ok(Some(entry)) => return Some(Ok(entry)),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

impl Iterator for Walker {
    type Item = Result<PackEntry, SelectionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.step();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

impl Pending {
    /// The step into a directory, keyed `name/` so its contents sort where they belong.
    fn descend(name: &OsStr, source: PathBuf, node_modules: bool) -> Self {
        let mut key = name.as_bytes().to_vec();
        key.push(b'/');
        Self { key, step: Step::Descend { source, node_modules } }
    }
}

/// Describes a listed entry: the listing's type says what it is, one `lstat` gives a file's size
/// and mode, one `readlink` a link's target (both relative to the open directory).
fn describe(dir: &impl std::os::fd::AsFd, name: &OsStr, listed_type: FileType) -> std::io::Result<Listed> {
    let mut file_type = listed_type;
    let mut stat = None;
    if matches!(file_type, FileType::RegularFile | FileType::Unknown) {
        let s = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        // Possibly replaced since the directory was read: describe it as it is now.
        file_type = FileType::from_raw_mode(s.st_mode);
        stat = Some(s);
    }
    Ok(match (file_type, stat) {
        (FileType::RegularFile, Some(s)) => {
            Listed::File { size: u64::try_from(s.st_size).unwrap_or(0), executable: s.st_mode & 0o111 != 0 }
        }
        (FileType::Directory, _) => Listed::Dir,
        (FileType::Symlink, _) => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            Listed::Symlink { target: OsString::from_vec(target.into_bytes()) }
        }
        _ => Listed::Other,
    })
}

fn escape_message(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        // Even a target inside the tree: the tree is unpacked somewhere else.
        format!("symlink {path} has an absolute target {target:?}; only relative links that stay in the tree can ship")
    } else {
        format!("symlink {path} points outside the packed tree (target {target:?})")
    }
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

/// The rules of one ignore file. A file that cannot be read is skipped, as git does; one with an
/// invalid pattern is an error, so a typo never silently ships what it meant to exclude.
fn ignore_rules(dir: &Path, file_name: &str) -> Result<Gitignore, SelectionError> {
    let mut builder = GitignoreBuilder::new(dir);
    if let Some(err) = builder.add(dir.join(file_name))
        && !err.is_io()
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
