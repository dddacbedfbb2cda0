//! Node project detection: what `package.json` and the files next to it say about the app.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::selection::{EntryKind, PackEntry};

/// The start command npm itself runs when `scripts.start` is absent.
pub const DEFAULT_START_COMMAND: &str = "npm start";

/// Lockfiles in the order npm and the other package managers prefer them.
const LOCKFILES: [(&str, LockfileKind); 4] = [
    ("npm-shrinkwrap.json", LockfileKind::NpmShrinkwrap),
    ("package-lock.json", LockfileKind::PackageLock),
    ("yarn.lock", LockfileKind::Yarn),
    ("pnpm-lock.yaml", LockfileKind::Pnpm),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockfileKind {
    PackageLock,
    NpmShrinkwrap,
    Yarn,
    Pnpm,
}

impl LockfileKind {
    /// npm can install from its own lockfiles only; the others are reported, not used.
    pub fn is_npm(self) -> bool {
        matches!(self, Self::PackageLock | Self::NpmShrinkwrap)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lockfile {
    pub kind: LockfileKind,
    pub file_name: &'static str,
    pub path: PathBuf,
}

/// A detected Node project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeProject {
    pub root: PathBuf,
    pub name: String,
    pub version: String,
    pub start_command: String,
    pub engines_node: Option<String>,
    pub lockfile: Option<Lockfile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no package.json in {dir}: not a Node project (run `aether deploy PATH` on the project's directory)")]
    NoPackageJson { dir: PathBuf },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON")]
    InvalidPackageJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(serde::Deserialize, Default)]
struct PackageJson {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    scripts: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    engines: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Reads `<dir>/package.json` and finds the lockfile next to it.
pub fn detect(dir: &Path) -> Result<NodeProject, ProjectError> {
    let path = dir.join("package.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProjectError::NoPackageJson { dir: dir.to_path_buf() });
        }
        Err(source) => return Err(ProjectError::Io { path, source }),
    };
    let package: PackageJson =
        serde_json::from_slice(&bytes).map_err(|source| ProjectError::InvalidPackageJson { path, source })?;
    let start_command = match package.scripts.get("start") {
        Some(serde_json::Value::String(script)) if !script.trim().is_empty() => script.clone(),
        _ => DEFAULT_START_COMMAND.to_owned(),
    };
    let fallback_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("app").to_owned();
    let lockfile = LOCKFILES.iter().find_map(|(file_name, kind)| {
        let path = dir.join(file_name);
        path.is_file().then_some(Lockfile { kind: *kind, file_name, path })
    });
    Ok(NodeProject {
        root: dir.to_path_buf(),
        name: package.name.filter(|n| !n.is_empty()).unwrap_or(fallback_name),
        version: package.version.unwrap_or_else(|| "0.0.0".to_owned()),
        start_command,
        engines_node: package.engines.get("node").and_then(|v| v.as_str()).map(str::to_owned),
        lockfile,
    })
}

/// Native addons are built for one platform and Node ABI; the app may not start elsewhere.
/// Called for each packed entry; returns the warning for a `*.node` or `binding.gyp` file.
pub fn native_module_warning(entry: &PackEntry) -> Option<String> {
    let path = entry.archive_path.as_str();
    let native = path.ends_with(".node") || path.rsplit('/').next() == Some("binding.gyp");
    (native && matches!(entry.kind, EntryKind::File { .. })).then(|| {
        format!("native module {path}: compiled for this machine's platform and Node ABI; the runtime must match")
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    #[test]
    fn reads_name_version_start_engines_and_lockfile() {
        let dir = project(&[
            (
                "package.json",
                r#"{"name":"api","version":"1.2.3","scripts":{"start":"node server.js"},"engines":{"node":">=20"}}"#,
            ),
            ("package-lock.json", "{}"),
        ]);
        let p = detect(dir.path()).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("api", "1.2.3"));
        assert_eq!(p.start_command, "node server.js");
        assert_eq!(p.engines_node.as_deref(), Some(">=20"));
        assert_eq!(p.lockfile.unwrap().kind, LockfileKind::PackageLock);
    }

    #[test]
    fn defaults_to_npm_start_and_detects_other_lockfiles() {
        let dir = project(&[("package.json", r#"{"name":"web"}"#), ("yarn.lock", "")]);
        let p = detect(dir.path()).unwrap();
        assert_eq!(p.start_command, DEFAULT_START_COMMAND);
        assert_eq!(p.version, "0.0.0");
        assert_eq!(p.lockfile.as_ref().unwrap().kind, LockfileKind::Yarn);
        assert!(!p.lockfile.unwrap().kind.is_npm());
        let dir = project(&[("package.json", "{}"), ("pnpm-lock.yaml", "")]);
        assert_eq!(detect(dir.path()).unwrap().lockfile.unwrap().kind, LockfileKind::Pnpm);
    }

    #[test]
    fn missing_and_invalid_package_json_are_errors() {
        let dir = project(&[]);
        assert!(matches!(detect(dir.path()), Err(ProjectError::NoPackageJson { .. })));
        let dir = project(&[("package.json", "{not json")]);
        assert!(matches!(detect(dir.path()), Err(ProjectError::InvalidPackageJson { .. })));
    }

    #[test]
    fn flags_native_modules() {
        let entry = |p: &str| PackEntry {
            archive_path: p.into(),
            source: p.into(),
            kind: EntryKind::File { size: 1, executable: false },
        };
        let warnings: Vec<_> = [
            entry("node_modules/bcrypt/build/Release/bcrypt.node"),
            entry("node_modules/bcrypt/binding.gyp"),
            entry("src/node.js"),
        ]
        .iter()
        .filter_map(native_module_warning)
        .collect();
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("bcrypt.node"));
    }
}
