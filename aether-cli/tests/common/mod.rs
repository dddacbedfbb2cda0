//! What the end-to-end tests share: where the binaries under test are, and a copy of the sample app.

use std::path::PathBuf;

pub fn aether_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aether"))
}

/// `aether-server` is built next to `aether` by a workspace build (`cargo nextest run --workspace`).
pub fn server_bin() -> PathBuf {
    let path = aether_bin().with_file_name("aether-server");
    assert!(path.exists(), "{} is missing: build the workspace (cargo build -p aether-server)", path.display());
    path
}

/// A copy of `examples/sample-node` at `dir/sample-node` and an empty `dir/home` for the CLI:
/// `(home, project)`.
pub fn sample_project(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let project = dir.join("sample-node");
    std::fs::create_dir_all(&project).unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-node");
    for name in ["package.json", "package-lock.json", "server.js"] {
        std::fs::copy(sample.join(name), project.join(name)).unwrap();
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    (home, project)
}
