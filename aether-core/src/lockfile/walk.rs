//! The fallback without a usable lockfile: read every installed package root's `package.json`.
//!
//! Only package roots are visited (`node_modules/<name>`, `node_modules/@scope/<name>`, and the
//! same inside nested `node_modules`), never arbitrary `package.json` files deeper in a package,
//! which are test fixtures or sub-entry points, not installed packages. Dot entries (`.bin`,
//! `.cache`, `.package-lock.json`, pnpm's `.pnpm`) are skipped. A symlink is followed only when
//! it resolves inside `node_modules_dir`, so a link cannot make the SBOM describe files outside
//! the artifact, and each real directory's nested `node_modules` is walked once, so link cycles
//! terminate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{InstalledPackage, LockfileError, Manifest, dependency_names, license_from_manifest, read_manifest};

/// State of one walk: the canonical root, the directories already descended into, and the
/// manifests found so far by lockfile-style path.
struct Walk {
    root: PathBuf,
    descended: BTreeSet<PathBuf>,
    found: BTreeMap<String, Manifest>,
}

/// Lists the packages installed under `node_modules_dir` from their `package.json` files.
pub(super) fn walk(node_modules_dir: &Path) -> Result<Vec<InstalledPackage>, LockfileError> {
    let Ok(root) = node_modules_dir.canonicalize() else {
        tracing::debug!(dir = %node_modules_dir.display(), "no node_modules directory; no packages");
        return Ok(Vec::new());
    };
    let mut state = Walk { root: root.clone(), descended: BTreeSet::from([root]), found: BTreeMap::new() };
    state.walk_dir(node_modules_dir, "node_modules")?;
    let installed: BTreeSet<String> = state.found.keys().cloned().collect();
    let packages = state
        .found
        .into_iter()
        .map(|(path, manifest)| {
            let names = dependency_names([
                &manifest.dependencies,
                &manifest.optional_dependencies,
                &manifest.peer_dependencies,
            ]);
            let dependencies = super::resolve_all(&path, &names, &installed);
            let name = manifest.name.as_ref().and_then(|v| v.as_str()).map(str::to_owned);
            InstalledPackage {
                name: name.unwrap_or_else(|| super::name_from_path(&path).to_owned()),
                version: manifest.version.as_ref().and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                integrity: None,
                license: license_from_manifest(manifest.license.as_ref(), manifest.licenses.as_ref()),
                dependencies,
                path,
            }
        })
        .collect();
    Ok(packages)
}

impl Walk {
    /// Visits the package roots of one `node_modules` directory whose lockfile path is `logical`.
    fn walk_dir(&mut self, dir: &Path, logical: &str) -> Result<(), LockfileError> {
        for name in child_names(dir)? {
            let child = dir.join(&name);
            if !name.starts_with('@') {
                self.visit_package(&child, &format!("{logical}/{name}"))?;
                continue;
            }
            if self.followable_dir(&child).is_none() {
                continue;
            }
            for inner in child_names(&child)? {
                self.visit_package(&child.join(&inner), &format!("{logical}/{name}/{inner}"))?;
            }
        }
        Ok(())
    }

    /// Records one package root and descends into its nested `node_modules`.
    fn visit_package(&mut self, dir: &Path, logical: &str) -> Result<(), LockfileError> {
        let Some(canonical) = self.followable_dir(dir) else { return Ok(()) };
        let Some(manifest) = read_manifest(&dir.join("package.json"))? else {
            tracing::debug!(path = %logical, "no package.json; not a package root");
            return Ok(());
        };
        self.found.insert(logical.to_owned(), manifest);
        let nested = dir.join("node_modules");
        if self.followable_dir(&nested).is_some() && self.descended.insert(canonical) {
            self.walk_dir(&nested, &format!("{logical}/node_modules"))?;
        }
        Ok(())
    }

    /// The canonical path of `path` when it is a directory (directly or through a symlink) that
    /// stays inside the walked root.
    fn followable_dir(&self, path: &Path) -> Option<PathBuf> {
        let canonical = path.canonicalize().ok()?;
        if !canonical.starts_with(&self.root) {
            tracing::warn!(path = %path.display(), "not following a symlink out of node_modules");
            return None;
        }
        canonical.is_dir().then_some(canonical)
    }
}

/// The sorted, non-dot, UTF-8 entry names of `dir` (sorted so the walk order is deterministic).
fn child_names(dir: &Path) -> Result<Vec<String>, LockfileError> {
    let io_error = |source| LockfileError::Io { path: dir.to_owned(), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        match entry.file_name().into_string() {
            Ok(name) if !name.starts_with('.') => names.push(name),
            Ok(_) => {}
            Err(name) => tracing::warn!(dir = %dir.display(), name = ?name, "skipping a non-UTF-8 entry"),
        }
    }
    names.sort();
    Ok(names)
}
