//! What the end-to-end tests share: where the binaries under test are.

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
