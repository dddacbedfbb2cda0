//! The unpacker on arbitrary `.tar.gz` bytes: it may refuse them, but never panics, never
//! writes outside the destination, and leaves nothing behind when it refuses.
#![no_main]

use std::path::Path;

use aether_core::unpack::{UnpackLimits, unpack_tar_gz};
use libfuzzer_sys::fuzz_target;

/// Small bounds, so that one input cannot spend the run's time or memory.
const LIMITS: UnpackLimits = UnpackLimits { max_total_bytes: 8 << 20, max_entries: 4096 };

fuzz_target!(|archive: &[u8]| {
    let Ok(parent) = tempfile::tempdir() else { return };
    let dest = parent.path().join("release");
    let accepted = unpack_tar_gz(archive, &dest, &LIMITS).is_ok();
    let names: Vec<_> = std::fs::read_dir(parent.path())
        .map(|dir| dir.filter_map(Result::ok).map(|entry| entry.file_name()).collect())
        .unwrap_or_default();
    if accepted {
        assert_eq!(names, ["release"], "only the destination may appear beside it");
        assert_inside(&dest, &dest);
    } else {
        assert!(names.is_empty(), "a refused archive left {names:?}");
    }
});

/// Every symlink under `dir` resolves inside `root`.
fn assert_inside(root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::canonicalize(&path) {
                let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
                assert!(target.starts_with(&root), "{} points outside: {}", path.display(), target.display());
            }
        } else if meta.is_dir() {
            assert_inside(root, &path);
        }
    }
}
