//! Installing production dependencies, once per lockfile and Node version.
//!
//! npm runs in a private staging directory holding copies of `package.json`, the lockfile and
//! `.npmrc`, never in the user's project, so their own `node_modules` (dev dependencies and all)
//! is left alone. The result is renamed into the cache in one step; a second deploy with the same
//! lockfile and Node version finds it there and does not run npm at all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aether_core::project::NodeProject;
use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// Lines of npm's stderr shown when it fails.
const STDERR_TAIL_LINES: usize = 20;

/// Where the production `node_modules` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub node_modules: PathBuf,
    /// True when the cache already had it and npm did not run.
    pub cached: bool,
    pub command: String,
    pub cache_key: String,
}

/// The npm invocation for a project: `ci` with an npm lockfile, `install` otherwise.
pub fn npm_args(project: &NodeProject) -> Vec<&'static str> {
    let verb = if project.lockfile.as_ref().is_some_and(|l| l.kind.is_npm()) { "ci" } else { "install" };
    vec![verb, "--omit=dev", "--no-audit", "--no-fund"]
}

/// The cache key: what npm is asked to do, the Node version, the exact lockfile bytes
/// (`package.json` when there is no npm lockfile) and, with a lockfile, the dependency
/// declarations of `package.json`: `npm ci` refuses a lockfile out of sync with them, and a
/// cache hit must not let such a pair through.
pub fn cache_key(project: &NodeProject, node_version: &str) -> Result<String, Error> {
    let package_json = project.root.join("package.json");
    let mut hasher = Sha256::new();
    hasher.update(b"aether-install-v2\n");
    hasher.update(npm_args(project).join(" ").as_bytes());
    hasher.update(format!("\n{node_version}\n").as_bytes());
    match &project.lockfile {
        Some(lockfile) if lockfile.kind.is_npm() => {
            hasher.update(std::fs::read(&lockfile.path).map_err(Error::io("cannot read", &lockfile.path))?);
            let manifest = std::fs::read(&package_json).map_err(Error::io("cannot read", &package_json))?;
            hasher.update(b"\n");
            hasher.update(dependency_declarations(&manifest));
        }
        _ => hasher.update(std::fs::read(&package_json).map_err(Error::io("cannot read", &package_json))?),
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The fields of `package.json` that decide what gets installed, as canonical JSON (keys
/// sorted), so editing anything else (scripts, version) keeps the cache.
fn dependency_declarations(package_json: &[u8]) -> Vec<u8> {
    const FIELDS: [&str; 7] = [
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
        "bundleDependencies",
        "bundledDependencies",
        "overrides",
    ];
    let Ok(serde_json::Value::Object(manifest)) = serde_json::from_slice(package_json) else {
        return package_json.to_vec();
    };
    let picked: serde_json::Map<String, serde_json::Value> =
        manifest.into_iter().filter(|(key, _)| FIELDS.contains(&key.as_str())).collect();
    serde_json::to_vec(&picked).unwrap_or_default()
}

/// Returns the cached production `node_modules` for the project, running npm when needed.
pub fn install(project: &NodeProject, cache_dir: &Path, node_version: &str, npm: &str) -> Result<Installed, Error> {
    let args = npm_args(project);
    let command = format!("npm {}", args.join(" "));
    let key = cache_key(project, node_version)?;
    let entries = cache_dir.join("node_modules");
    let entry = entries.join(&key);
    if entry.join("node_modules").is_dir() {
        tracing::debug!(cache_key = %key, "production dependencies found in the cache");
        return Ok(Installed { node_modules: entry.join("node_modules"), cached: true, command, cache_key: key });
    }
    std::fs::create_dir_all(&entries).map_err(Error::io("cannot create the cache directory", &entries))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&entries)
        .map_err(Error::io("cannot create a staging directory in", &entries))?;
    stage_inputs(project, staging.path())?;
    run_npm(npm, &args, staging.path(), &command)?;
    let node_modules = staging.path().join("node_modules");
    // A project without dependencies gets no node_modules from npm; an empty one is still cached.
    std::fs::create_dir_all(&node_modules).map_err(Error::io("cannot create", &node_modules))?;
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &entry) {
        // Another deploy may have finished the same install first; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staged);
        if !entry.join("node_modules").is_dir() {
            return Err(Error::io("cannot move the installed dependencies to", &entry)(e));
        }
    }
    Ok(Installed { node_modules: entry.join("node_modules"), cached: false, command, cache_key: key })
}

fn stage_inputs(project: &NodeProject, staging: &Path) -> Result<(), Error> {
    let mut files = vec!["package.json", ".npmrc"];
    if let Some(lockfile) = project.lockfile.as_ref().filter(|l| l.kind.is_npm()) {
        files.push(lockfile.file_name);
    }
    for name in files {
        let from = project.root.join(name);
        if from.is_file() {
            std::fs::copy(&from, staging.join(name)).map_err(Error::io("cannot copy", &from))?;
        }
    }
    Ok(())
}

fn run_npm(npm: &str, args: &[&str], dir: &Path, command: &str) -> Result<(), Error> {
    tracing::info!(command, "installing production dependencies");
    let output = Command::new(npm)
        .args(args)
        .current_dir(dir)
        .env("npm_config_update_notifier", "false")
        .env("npm_config_progress", "false")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::CommandNotFound { command: command.to_owned(), source })?;
    if output.status.success() {
        return Ok(());
    }
    let tail = error_excerpt(&String::from_utf8_lossy(&output.stderr));
    Err(Error::CommandFailed { command: command.to_owned(), status: output.status.to_string(), stderr_tail: tail })
}

/// The part of npm's stderr that says why it failed: from its first `npm error` line (npm
/// puts the cause first and may follow it with pages of usage text), else the last lines.
fn error_excerpt(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let first_error = lines.iter().position(|l| l.starts_with("npm error") || l.starts_with("npm ERR!"));
    let start = first_error.unwrap_or(lines.len().saturating_sub(STDERR_TAIL_LINES));
    lines[start..].iter().take(STDERR_TAIL_LINES).copied().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dependency_declarations_of_package_json_matter() {
        let base = br#"{"name":"a","version":"1.0.0","dependencies":{"ms":"2.1.3"},"scripts":{"start":"node ."}}"#;
        let bumped = br#"{"version":"1.0.1","name":"a","scripts":{"start":"node x"},"dependencies":{"ms":"2.1.3"}}"#;
        let added = br#"{"name":"a","version":"1.0.0","dependencies":{"ms":"2.1.3","debug":"4.3.4"}}"#;
        assert_eq!(dependency_declarations(base), dependency_declarations(bumped));
        assert_ne!(dependency_declarations(base), dependency_declarations(added));
    }

    #[test]
    fn the_excerpt_starts_at_npms_first_error_line() {
        let usage: String = (0..40).map(|i| format!("npm error usage line {i}\n")).collect();
        let stderr = format!("npm warn noise\nnpm error code EUSAGE\nnpm error Missing: left-pad@1.3.0\n{usage}");
        let excerpt = error_excerpt(&stderr);
        assert!(excerpt.starts_with("npm error code EUSAGE\nnpm error Missing: left-pad"), "{excerpt}");
        assert_eq!(excerpt.lines().count(), STDERR_TAIL_LINES);
        // No npm error line: the last lines.
        let other: String = (0..30).map(|i| format!("line {i}\n")).collect();
        assert!(error_excerpt(&other).starts_with("line 10\n"));
    }
}
