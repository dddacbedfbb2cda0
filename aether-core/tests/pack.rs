#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Packing: deterministic bytes, the right files, and honest digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

use aether_core::digest::sha256_hex;
use aether_core::manifest::{Manifest, ManifestEntry};
use aether_core::pack::{DEFAULT_MTIME, PackOptions, pack};
use aether_core::selection::{SelectionError, SelectionOptions, Walker, select};
use proptest::prelude::*;

fn write(root: &Path, rel: &str, body: &str, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn options(root: &Path) -> SelectionOptions {
    SelectionOptions { root: root.to_path_buf(), node_modules: None, exclude: vec![root.join(".aether")] }
}

fn pack_dir(root: &Path, threads: usize, mtime: u64) -> (Vec<u8>, Manifest) {
    let mut out = Vec::new();
    let opts = PackOptions { mtime, level: 6, threads, block_cache: None };
    let walker = Walker::new(&options(root)).unwrap();
    let packed = pack(walker, &opts, &mut out, Vec::new(), &mut |_| {}).unwrap();
    (out, Manifest::from_json(&packed.manifest).unwrap())
}

fn paths(root: &Path) -> Vec<String> {
    select(&options(root)).unwrap().entries.into_iter().map(|e| e.archive_path).collect()
}

/// A small but realistic project: sources, a gitignored node_modules with a .bin symlink.
fn sample(root: &Path, files: &[(&str, &str)], mode_bits: (u32, u32)) {
    for (rel, body) in files {
        let mode = if rel.ends_with(".sh") { mode_bits.1 } else { mode_bits.0 };
        write(root, rel, body, mode);
    }
    fs::create_dir_all(root.join("node_modules/.bin")).unwrap();
    symlink("../tool/cli.js", root.join("node_modules/.bin/tool")).unwrap();
}

const FILES: [(&str, &str); 6] = [
    ("package.json", r#"{"name":"demo","version":"1.0.0"}"#),
    (".gitignore", "node_modules/\n*.log\n"),
    ("src/index.js", "console.log('hi')\n"),
    ("scripts/run.sh", "#!/bin/sh\necho run\n"),
    ("node_modules/tool/cli.js", "#!/usr/bin/env node\n"),
    ("node_modules/tool/package.json", r#"{"name":"tool","version":"2.0.0"}"#),
];

#[test]
fn same_tree_gives_identical_bytes_whatever_path_mtime_order_umask_or_threads() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let b_root = b.path().join("deeper/checkout");
    sample(a.path(), &FILES, (0o644, 0o755));
    let mut reversed = FILES;
    reversed.reverse();
    // Another umask: group/other bits differ, owner bits decide what ships.
    sample(&b_root, &reversed, (0o600, 0o700));
    let old = fs::File::options().write(true).open(b_root.join("src/index.js")).unwrap();
    old.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)).unwrap();
    let (bytes_a, manifest_a) = pack_dir(a.path(), 1, DEFAULT_MTIME);
    let (bytes_b, _) = pack_dir(&b_root, 4, DEFAULT_MTIME);
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(manifest_a.summary.digest, sha256_hex(&bytes_a));
    assert_eq!(manifest_a.summary.size_bytes, bytes_a.len() as u64);
    let (bytes_c, _) = pack_dir(a.path(), 1, 1_700_000_000);
    assert_ne!(bytes_a, bytes_c, "SOURCE_DATE_EPOCH must reach the entries");
}

#[test]
fn archive_entries_are_normalised_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path(), &FILES, (0o640, 0o750));
    let (bytes, manifest) = pack_dir(dir.path(), 2, 1_234_567_890);
    assert_eq!(&bytes[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], "gzip header: mtime 0, no name");
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar_bytes).unwrap();
    assert_eq!(manifest.summary.tar_sha256, sha256_hex(&tar_bytes));
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    let mut modes = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mtime().unwrap(), 1_234_567_890);
        assert_eq!(h.username().unwrap().unwrap_or(""), "");
        assert_eq!(h.groupname().unwrap().unwrap_or(""), "");
        let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_owned();
        if h.entry_type().is_symlink() {
            assert_eq!(path, "node_modules/.bin/tool");
            assert_eq!(entry.link_name().unwrap().unwrap().to_str().unwrap(), "../tool/cli.js");
        }
        modes.insert(path.clone(), h.mode().unwrap());
        seen.push(path);
    }
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(seen, sorted);
    assert!(seen.iter().all(|p| !p.starts_with('/') && !p.contains("..")));
    assert_eq!(modes["src/index.js"], 0o644);
    assert_eq!(modes["scripts/run.sh"], 0o755);
    assert_eq!(modes["src"], 0o755);
    assert_eq!(modes["node_modules/.bin/tool"], 0o755);
    assert!(modes.values().all(|m| *m == 0o644 || *m == 0o755), "{modes:?}");
    let file = manifest.entries.iter().find(|e| e.path() == "src/index.js").unwrap();
    assert_eq!(
        file,
        &ManifestEntry::File {
            path: "src/index.js".into(),
            size: 18,
            mode: "0644".into(),
            sha256: sha256_hex(b"console.log('hi')\n")
        }
    );
    assert_eq!(manifest.summary.total_files, 6);
}

#[test]
fn selection_follows_gitignore_but_node_modules_always_ships() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sample(root, &FILES, (0o644, 0o755));
    write(root, "debug.log", "x", 0o644);
    write(root, "src/app-config.js", "x", 0o644);
    write(root, "src/artifact-x.js", "x", 0o644);
    write(root, "src/generated/.gitignore", "*.tmp\n!keep.tmp\n", 0o644);
    write(root, "src/generated/a.tmp", "x", 0o644);
    write(root, "src/generated/keep.tmp", "x", 0o644);
    write(root, ".git/HEAD", "ref: refs/heads/main\n", 0o644);
    write(root, "vendor/.git", "gitdir: ../.git/modules/vendor\n", 0o644);
    write(root, ".aether/app.tar.gz", "old artifact", 0o644);
    write(root, ".env.example", "PORT=3000\n", 0o644);
    let p = paths(root);
    for shipped in [
        "node_modules/tool/cli.js",
        "node_modules/.bin/tool",
        "src/app-config.js",
        "src/artifact-x.js",
        "src/generated/keep.tmp",
        ".env.example",
        ".gitignore",
    ] {
        assert!(p.contains(&shipped.to_owned()), "{shipped} must ship: {p:?}");
    }
    for dropped in
        ["debug.log", "src/generated/a.tmp", ".git/HEAD", ".git", "vendor/.git", ".aether/app.tar.gz", ".aether"]
    {
        assert!(!p.contains(&dropped.to_owned()), "{dropped} must not ship: {p:?}");
    }
}

#[test]
fn aetherignore_can_exclude_node_modules_content_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sample(root, &FILES, (0o644, 0o755));
    write(root, "node_modules/tool/README.md", "docs", 0o644);
    write(root, "node_modules/tool/test/spec.js", "x", 0o644);
    write(root, "docs/guide.md", "x", 0o644);
    write(root, ".aetherignore", "node_modules/**/README.md\nnode_modules/tool/test/\ndocs/\n", 0o644);
    let p = paths(root);
    assert!(p.contains(&"node_modules/tool/cli.js".to_owned()));
    for dropped in
        ["node_modules/tool/README.md", "node_modules/tool/test/spec.js", "node_modules/tool/test", "docs/guide.md"]
    {
        assert!(!p.contains(&dropped.to_owned()), "{dropped} must not ship: {p:?}");
    }
}

#[test]
fn node_modules_can_come_from_elsewhere() {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write(project.path(), "index.js", "x", 0o644);
    write(project.path(), "node_modules/dev-only/index.js", "dev", 0o644);
    write(cache.path(), "node_modules/prod/index.js", "prod", 0o644);
    let selection = select(&SelectionOptions {
        root: project.path().to_path_buf(),
        node_modules: Some(cache.path().join("node_modules")),
        exclude: vec![],
    })
    .unwrap();
    let p: Vec<_> = selection.entries.iter().map(|e| e.archive_path.as_str()).collect();
    assert_eq!(p, ["index.js", "node_modules", "node_modules/prod", "node_modules/prod/index.js"]);
}

#[test]
fn symlink_escaping_the_tree_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.js", "x", 0o644);
    fs::create_dir_all(dir.path().join("lib")).unwrap();
    symlink("../../etc/passwd", dir.path().join("lib/passwd")).unwrap();
    match select(&options(dir.path())) {
        Err(SelectionError::SymlinkEscapes { path, target }) => {
            assert_eq!(path, "lib/passwd");
            assert_eq!(target, "../../etc/passwd");
        }
        other => panic!("expected SymlinkEscapes, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    symlink("/etc/hosts", dir.path().join("hosts")).unwrap();
    let err = select(&options(dir.path())).unwrap_err();
    assert!(err.to_string().contains("hosts"), "{err}");
    assert!(err.to_string().contains("absolute target"), "{err}");
}

fn file_tree() -> impl Strategy<Value = BTreeMap<String, String>> {
    // File names end in .js and directories never do, so no path is both a file and a directory.
    proptest::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}\\.js", "[a-z ]{0,40}", 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_creation_order_gives_the_same_bytes(files in file_tree(), rotate in any::<usize>()) {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut list: Vec<_> = files.iter().collect();
        for (rel, body) in &list { write(a.path(), rel, body, 0o644); }
        let len = list.len();
        list.rotate_left(rotate % len);
        list.reverse();
        for (rel, body) in &list { write(b.path(), rel, body, 0o600); }
        let (x, _) = pack_dir(a.path(), 1, DEFAULT_MTIME);
        let (y, _) = pack_dir(b.path(), 3, DEFAULT_MTIME);
        prop_assert_eq!(x, y);
    }
}

#[test]
fn a_node_modules_symlink_is_packed_as_a_symlink_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "pkg/index.js", "x", 0o644);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.js", "x", 0o644);
    symlink(outside.path(), dir.path().join("node_modules")).unwrap();
    match select(&options(dir.path())) {
        Err(SelectionError::SymlinkEscapes { path, .. }) => assert_eq!(path, "node_modules"),
        other => panic!("expected SymlinkEscapes, got {other:?}"),
    }
    // One that stays in the tree ships as the link it is, its target once.
    fs::remove_file(dir.path().join("node_modules")).unwrap();
    write(dir.path(), "vendor/nm/pkg/index.js", "x", 0o644);
    write(dir.path(), ".gitignore", "node_modules\n", 0o644);
    symlink("vendor/nm", dir.path().join("node_modules")).unwrap();
    let selection = select(&options(dir.path())).unwrap();
    let link = selection.entries.iter().find(|e| e.archive_path == "node_modules").unwrap();
    assert_eq!(link.kind, aether_core::selection::EntryKind::Symlink { target: "vendor/nm".into() });
    assert!(!selection.entries.iter().any(|e| e.archive_path.starts_with("node_modules/")));
}
