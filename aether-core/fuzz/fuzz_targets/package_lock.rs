//! `package-lock.json` / `npm-shrinkwrap.json` (lockfile v1 to v3) from arbitrary bytes, read
//! against an empty `node_modules`, then the root dependencies against a fixed package.json:
//! refused or read, never a panic, and never a path outside `node_modules`.
#![no_main]

use aether_core::lockfile::{installed_packages, root_dependencies};
use libfuzzer_sys::fuzz_target;

const PACKAGE_JSON: &[u8] = br#"{"name":"app","version":"1.0.0","dependencies":{"a":"1"}}"#;

fuzz_target!(|lockfile: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let node_modules = dir.path().join("node_modules");
    if std::fs::create_dir(&node_modules).is_err() {
        return;
    }
    let packages = installed_packages(Some(lockfile), &node_modules).unwrap_or_default();
    for package in &packages {
        assert!(!package.path.split('/').any(|part| part == ".."), "{} leaves node_modules", package.path);
    }
    let _ = root_dependencies(Some(lockfile), PACKAGE_JSON, &packages);
});
