//! The npm packages installed in a project's `node_modules`, as the SBOM describes them.
//!
//! The lockfile (`package-lock.json` / `npm-shrinkwrap.json`, lockfileVersion 2 or 3) is the
//! preferred source because it records the exact `integrity` npm verified at install time, which
//! is what makes the SBOM hashes trustworthy. Without a usable lockfile (none, or lockfile v1,
//! which has no `packages` map) the installed `package.json` files are walked instead.
//!
//! Decisions (documented because the brief left them open):
//! - Only lockfile keys under `node_modules/` are installed packages. Keys such as `packages/foo`
//!   are workspace sources (link targets); a `link: true` entry is reported at its
//!   `node_modules/...` path with the name, version, license and dependencies of its target and
//!   no integrity (nothing was downloaded). Packages nested under a link target's own
//!   `node_modules` live outside `node_modules_dir` and are not listed.
//! - Entries flagged `dev`, `devOptional` or `optional` that are absent from `node_modules_dir`
//!   are left out: they were pruned (`--omit=dev`) or skipped for this platform, so they are not
//!   in the artifact. Unflagged entries are kept even when absent, since the lockfile says the
//!   app needs them.
//! - Keys with `.`/`..`/empty segments or backslashes are skipped: they never come from npm and
//!   would otherwise make the existence check look outside `node_modules_dir`.
//! - A missing `license` in the lockfile falls back to the installed `package.json`, as npm's
//!   CycloneDX tooling does.

mod walk;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One package installed under `node_modules`, identified by its lockfile-style path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// Lockfile-style path, e.g. `node_modules/@scope/a/node_modules/b`; unique in a result.
    pub path: String,
    pub name: String,
    pub version: String,
    /// As in the lockfile, e.g. `sha512-<base64>`; `None` without a lockfile or for links.
    pub integrity: Option<String>,
    pub license: Option<String>,
    /// Paths of the installed packages this one resolves its dependencies to (sorted, unique).
    pub dependencies: Vec<String>,
}

/// Why the installed packages could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    /// The lockfile bytes are not JSON of the expected shape. The caller passed the bytes, so it
    /// knows which file (`package-lock.json` or `npm-shrinkwrap.json`) they came from.
    #[error("the lockfile is malformed: {source}")]
    MalformedLockfile {
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is malformed: {source}")]
    MalformedPackageJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Lists the packages installed under `node_modules_dir`, sorted by path.
///
/// `node_modules_dir` may live outside the project (e.g. an install cache), so every lockfile
/// key is resolved against it rather than against the lockfile's directory.
pub fn installed_packages(
    lockfile_json: Option<&[u8]>,
    node_modules_dir: &Path,
) -> Result<Vec<InstalledPackage>, LockfileError> {
    if let Some(bytes) = lockfile_json {
        let lockfile: Lockfile =
            serde_json::from_slice(bytes).map_err(|source| LockfileError::MalformedLockfile { source })?;
        if let Some(entries) = lockfile.packages {
            return from_lockfile(&entries, node_modules_dir);
        }
        tracing::debug!("lockfile has no `packages` map (lockfileVersion 1); walking node_modules");
    }
    walk::walk(node_modules_dir)
}

/// The installed paths the app itself resolves its direct dependencies to: those of the
/// lockfile's root entry (`packages[""]`), or of the project's `package.json` when there is no
/// lockfile with one. Hoisted dependencies of dependencies are not among them.
pub fn root_dependencies(
    lockfile_json: Option<&[u8]>,
    package_json: &[u8],
    packages: &[InstalledPackage],
) -> Vec<String> {
    let installed: BTreeSet<String> = packages.iter().map(|p| p.path.clone()).collect();
    let root_entry = lockfile_json
        .and_then(|bytes| serde_json::from_slice::<Lockfile>(bytes).ok())
        .and_then(|lockfile| lockfile.packages)
        .and_then(|mut entries| entries.remove(""));
    // Development dependencies count when they are installed (a tree packed as found may hold
    // them); resolving drops the ones that are not.
    let names = match root_entry {
        Some(root) => {
            let mut names = root.dependency_names();
            names.extend(dependency_names([&root.dev_dependencies]));
            names
        }
        None => serde_json::from_slice::<Manifest>(package_json)
            .map(|m| {
                let declared = [&m.dependencies, &m.optional_dependencies, &m.peer_dependencies, &m.dev_dependencies];
                dependency_names(declared)
            })
            .unwrap_or_default(),
    };
    resolve_all("", &names, &installed)
}

/// The part of a lockfile this module reads; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Lockfile {
    #[serde(default)]
    packages: Option<BTreeMap<String, LockEntry>>,
}

/// One `packages` entry. Dependency maps are kept as raw JSON because only their keys matter.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LockEntry {
    name: Option<String>,
    version: Option<String>,
    integrity: Option<String>,
    license: Option<Value>,
    resolved: Option<String>,
    link: bool,
    dependencies: Option<Value>,
    optional_dependencies: Option<Value>,
    peer_dependencies: Option<Value>,
    dev_dependencies: Option<Value>,
}

impl LockEntry {
    fn dependency_names(&self) -> BTreeSet<String> {
        dependency_names([&self.dependencies, &self.optional_dependencies, &self.peer_dependencies])
    }
}

/// Builds the package list from a lockfile's `packages` map.
fn from_lockfile(
    entries: &BTreeMap<String, LockEntry>,
    node_modules_dir: &Path,
) -> Result<Vec<InstalledPackage>, LockfileError> {
    // path -> (the entry at that path, the entry describing the package: itself or a link target)
    let mut kept: BTreeMap<&str, (&LockEntry, &LockEntry)> = BTreeMap::new();
    for (key, entry) in entries {
        let Some(relative) = installed_relative_path(key) else {
            if key.starts_with("node_modules/") {
                tracing::warn!(key = %key, "skipping lockfile entry with an unsafe path");
            }
            continue;
        };
        let target = if entry.link { entry.resolved.as_deref().and_then(|r| entries.get(r)) } else { None };
        let described = target.unwrap_or(entry);
        // Only what is installed ships: omitted dev and optional entries, and everything when
        // the tree is packed without its dependencies, are left out.
        if !node_modules_dir.join(relative).exists() {
            continue;
        }
        kept.insert(key.as_str(), (entry, described));
    }
    let installed: BTreeSet<String> = kept.keys().map(|k| (*k).to_owned()).collect();
    let mut packages = Vec::with_capacity(kept.len());
    for (path, (entry, described)) in kept {
        let license = match license_from_manifest(described.license.as_ref(), None) {
            Some(license) => Some(license),
            None => installed_license(node_modules_dir, path)?,
        };
        packages.push(InstalledPackage {
            path: path.to_owned(),
            name: described.name.clone().unwrap_or_else(|| name_from_path(path).to_owned()),
            version: described.version.clone().unwrap_or_default(),
            integrity: if entry.link { None } else { entry.integrity.clone() },
            license,
            dependencies: resolve_all(path, &described.dependency_names(), &installed),
        });
    }
    Ok(packages)
}

/// The license recorded in the installed `package.json`, when the lockfile has none.
fn installed_license(node_modules_dir: &Path, path: &str) -> Result<Option<String>, LockfileError> {
    let Some(relative) = installed_relative_path(path) else { return Ok(None) };
    let manifest_path = node_modules_dir.join(relative).join("package.json");
    Ok(read_manifest(&manifest_path)?.and_then(|m| license_from_manifest(m.license.as_ref(), m.licenses.as_ref())))
}

/// The fields of an installed `package.json` this module reads, all kept lenient (raw JSON)
/// because published manifests in the wild carry odd types (e.g. `"dependencies": []`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Manifest {
    name: Option<Value>,
    version: Option<Value>,
    license: Option<Value>,
    licenses: Option<Value>,
    dependencies: Option<Value>,
    optional_dependencies: Option<Value>,
    peer_dependencies: Option<Value>,
    dev_dependencies: Option<Value>,
}

/// Reads a `package.json`; `Ok(None)` when it does not exist.
fn read_manifest(path: &Path) -> Result<Option<Manifest>, LockfileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LockfileError::Io { path: path.to_owned(), source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| LockfileError::MalformedPackageJson { path: path.to_owned(), source })
}

/// Whether an archive path is where an installed package lives (`node_modules/<name>`,
/// `node_modules/@scope/<name>`, or the same in a nested `node_modules`): the paths
/// [`InstalledPackage::path`] uses.
pub fn is_package_path(path: &str) -> bool {
    installed_relative_path(path).is_some()
}

/// The key of `node_modules/<...>` below `node_modules_dir`, or `None` when the key is not an
/// installed package root or could escape the directory.
fn installed_relative_path(key: &str) -> Option<&str> {
    let relative = key.strip_prefix("node_modules/")?;
    let safe = !key.contains('\\') && relative.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    (safe && package_name_at(key).is_some()).then_some(relative)
}

/// The package folder name at the end of a lockfile path (`@scope/name` or `name`).
fn package_name_at(path: &str) -> Option<&str> {
    let tail = path.rsplit_once("/node_modules/").map(|(_, t)| t).or_else(|| path.strip_prefix("node_modules/"))?;
    let slashes = tail.matches('/').count();
    let well_formed = if tail.starts_with('@') { slashes == 1 } else { slashes == 0 };
    (well_formed && !tail.is_empty()).then_some(tail)
}

fn name_from_path(path: &str) -> &str {
    package_name_at(path).unwrap_or(path)
}

/// The keys of the given dependency maps; non-object values (seen in the wild) count as empty.
fn dependency_names<'a>(maps: impl IntoIterator<Item = &'a Option<Value>>) -> BTreeSet<String> {
    maps.into_iter().flatten().filter_map(Value::as_object).flat_map(|m| m.keys().cloned()).collect()
}

/// Resolves every dependency name of the package at `from` to an installed path, dropping the
/// ones that are not installed (omitted optional or peer dependencies).
fn resolve_all(from: &str, names: &BTreeSet<String>, installed: &BTreeSet<String>) -> Vec<String> {
    let resolved: BTreeSet<String> =
        names.iter().filter_map(|name| resolve_dependency(from, name, installed)).collect();
    resolved.into_iter().collect()
}

/// npm's node resolution over lockfile paths: `<from>/node_modules/<name>`, then the same under
/// each ancestor package, then the top-level `node_modules/<name>`.
fn resolve_dependency(from: &str, name: &str, installed: &BTreeSet<String>) -> Option<String> {
    let mut base = Some(from);
    while let Some(current) = base {
        let candidate =
            if current.is_empty() { format!("node_modules/{name}") } else { format!("{current}/node_modules/{name}") };
        if installed.contains(&candidate) {
            return Some(candidate);
        }
        base = parent_package_path(current);
    }
    None
}

/// `node_modules/a/node_modules/b` -> `node_modules/a` -> `` (the project root) -> none.
fn parent_package_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(path.rfind("/node_modules/").map_or("", |index| &path[..index]))
}

/// A license from `license` (a string, or the legacy `{ "type": ... }` object) or the legacy
/// `licenses` array (several become an SPDX `OR` expression, which is what they meant).
fn license_from_manifest(license: Option<&Value>, licenses: Option<&Value>) -> Option<String> {
    if let Some(found) = license.and_then(license_name) {
        return Some(found);
    }
    let names: Vec<String> = licenses?.as_array()?.iter().filter_map(license_name).collect();
    match names.len() {
        0 => None,
        1 => names.into_iter().next(),
        _ => Some(format!("({})", names.join(" OR "))),
    }
}

fn license_name(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Object(object) => object.get("type")?.as_str()?,
        _ => return None,
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
