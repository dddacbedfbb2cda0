//! A project's `package.json` from arbitrary bytes: detected or refused with an error, never a
//! panic; the root-dependency reader takes the same bytes.
#![no_main]

use aether_core::lockfile::root_dependencies;
use aether_core::project::detect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|package_json: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("package.json"), package_json).is_err() {
        return;
    }
    if let Ok(project) = detect(dir.path()) {
        assert!(!project.start_command.is_empty());
    }
    let _ = root_dependencies(None, package_json, &[]);
});
