#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Unpacking: hostile artifacts are refused without leaving anything behind, honest ones land intact.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use aether_core::unpack::{UnpackError, UnpackLimits, UnpackSummary, unpack_tar_gz};
use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{Builder, EntryType, Header};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Archive construction
// ---------------------------------------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn tar_bytes(build: impl FnOnce(&mut Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = Builder::new(Vec::new());
    build(&mut builder);
    builder.into_inner().unwrap()
}

fn targz(build: impl FnOnce(&mut Builder<Vec<u8>>)) -> Vec<u8> {
    gzip(&tar_bytes(build))
}

fn header(kind: EntryType, size: u64, mode: u32) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header
}

fn add_file(builder: &mut Builder<Vec<u8>>, path: &str, body: &[u8], mode: u32) {
    let mut header = header(EntryType::Regular, body.len() as u64, mode);
    builder.append_data(&mut header, path, body).unwrap();
}

fn add_dir(builder: &mut Builder<Vec<u8>>, path: &str) {
    let mut header = header(EntryType::Directory, 0, 0o755);
    builder.append_data(&mut header, path, std::io::empty()).unwrap();
}

fn add_symlink(builder: &mut Builder<Vec<u8>>, path: &str, target: &str) {
    let mut header = header(EntryType::Symlink, 0, 0o777);
    builder.append_link(&mut header, path, target).unwrap();
}

/// Writes the name bytes verbatim, bypassing the checks `set_path` applies to `..` and `/`.
fn add_raw(builder: &mut Builder<Vec<u8>>, name: &[u8], kind: EntryType, body: &[u8]) {
    let mut header = header(kind, body.len() as u64, 0o644);
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, body).unwrap();
}

/// A PAX extended header whose `key=value` record applies to the next entry.
fn add_pax(builder: &mut Builder<Vec<u8>>, kind: EntryType, name: &[u8], key: &str, value: &str) {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    add_raw(builder, name, kind, format!("{len}{body}").as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Unpacking harness
// ---------------------------------------------------------------------------------------------

struct Fixture {
    parent: TempDir,
    dest: PathBuf,
}

fn fixture() -> Fixture {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("release");
    Fixture { parent, dest }
}

impl Fixture {
    fn unpack(&self, archive: &[u8]) -> Result<UnpackSummary, UnpackError> {
        self.unpack_with(archive, &UnpackLimits::default())
    }

    fn unpack_with(&self, archive: &[u8], limits: &UnpackLimits) -> Result<UnpackSummary, UnpackError> {
        unpack_tar_gz(archive, &self.dest, limits)
    }

    fn parent_listing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.parent.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn assert_nothing_left(&self) {
        assert_eq!(self.parent_listing(), Vec::<String>::new(), "a refusal must leave the parent untouched");
    }

    fn refuse(&self, archive: &[u8]) -> UnpackError {
        self.refuse_with(archive, &UnpackLimits::default())
    }

    fn refuse_with(&self, archive: &[u8], limits: &UnpackLimits) -> UnpackError {
        let error = self.unpack_with(archive, limits).expect_err("hostile archive was accepted");
        self.assert_nothing_left();
        error
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------------
// Hostile paths
// ---------------------------------------------------------------------------------------------

#[test]
fn absolute_path_is_refused() {
    let fx = fixture();
    let archive = targz(|b| add_raw(b, b"/etc/cron.d/evil", EntryType::Regular, b"* * * * * root sh"));
    match fx.refuse(&archive) {
        UnpackError::AbsolutePath { path } => assert_eq!(path, Path::new("/etc/cron.d/evil")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn windows_drive_path_is_refused() {
    let fx = fixture();
    let archive = targz(|b| add_raw(b, b"C:\\Windows\\evil.dll", EntryType::Regular, b"MZ"));
    assert!(matches!(fx.refuse(&archive), UnpackError::AbsolutePath { .. }));
}

#[test]
fn parent_traversal_is_refused() {
    let fx = fixture();
    let archive = targz(|b| add_raw(b, b"../escaped.txt", EntryType::Regular, b"out"));
    match fx.refuse(&archive) {
        UnpackError::ParentTraversal { path } => assert_eq!(path, Path::new("../escaped.txt")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!fx.parent.path().join("escaped.txt").exists());
}

#[test]
fn nested_parent_traversal_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "a/ok.txt", b"fine", 0o644);
        add_raw(b, b"a/../../x", EntryType::Regular, b"out");
    });
    match fx.refuse(&archive) {
        UnpackError::ParentTraversal { path } => assert_eq!(path, Path::new("a/../../x")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!fx.parent.path().join("x").exists());
}

#[test]
fn traversal_in_gnu_long_name_is_refused() {
    let fx = fixture();
    let long = format!("{}/../../../../escaped.txt", "d".repeat(120));
    let archive = targz(|b| {
        let mut name = long.clone().into_bytes();
        name.push(0);
        add_raw(b, b"././@LongLink", EntryType::GNULongName, &name);
        add_raw(b, b"innocent.txt", EntryType::Regular, b"out");
    });
    match fx.refuse(&archive) {
        UnpackError::ParentTraversal { path } => assert_eq!(path, PathBuf::from(&long)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn traversal_in_pax_path_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_pax(b, EntryType::XHeader, b"PaxHeaders/innocent.txt", "path", "../../escaped.txt");
        add_raw(b, b"innocent.txt", EntryType::Regular, b"out");
    });
    match fx.refuse(&archive) {
        UnpackError::ParentTraversal { path } => assert_eq!(path, Path::new("../../escaped.txt")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn empty_path_is_refused() {
    let fx = fixture();
    let archive = targz(|b| add_raw(b, b"./", EntryType::Regular, b"data"));
    assert!(matches!(fx.refuse(&archive), UnpackError::EmptyPath { .. }));
}

// ---------------------------------------------------------------------------------------------
// Hostile links
// ---------------------------------------------------------------------------------------------

#[test]
fn symlink_with_absolute_target_is_refused() {
    let fx = fixture();
    let archive = targz(|b| add_symlink(b, "passwd", "/etc/passwd"));
    match fx.refuse(&archive) {
        UnpackError::LinkEscapes { path, target } => {
            assert_eq!(path, Path::new("passwd"));
            assert_eq!(target, Path::new("/etc/passwd"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn symlink_escaping_through_parent_is_refused() {
    let fx = fixture();
    // From `a/`, one `..` reaches the root and the second one leaves it.
    let archive = targz(|b| add_symlink(b, "a/link", "../../outside"));
    match fx.refuse(&archive) {
        UnpackError::LinkEscapes { path, target } => {
            assert_eq!(path, Path::new("a/link"));
            assert_eq!(target, Path::new("../../outside"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn symlink_chained_through_another_symlink_is_refused() {
    let fx = fixture();
    // `a/b/up` -> `../..` is the release root; `t` -> `a/b/up/..` stays inside lexically but the
    // kernel would resolve it to the release's parent.
    let archive = targz(|b| {
        add_symlink(b, "a/b/up", "../..");
        add_symlink(b, "t", "a/b/up/..");
    });
    match fx.refuse(&archive) {
        UnpackError::LinkEscapes { path, .. } => assert_eq!(path, Path::new("t")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn writing_through_extracted_symlink_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_dir(b, "sub/");
        add_symlink(b, "a", "sub");
        add_file(b, "a/x", b"through the link", 0o644);
    });
    match fx.refuse(&archive) {
        UnpackError::WriteThroughSymlink { path, symlink } => {
            assert_eq!(path, Path::new("a/x"));
            assert_eq!(symlink, Path::new("a"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn overwriting_an_extracted_symlink_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "target.txt", b"original", 0o644);
        add_symlink(b, "link", "target.txt");
        add_file(b, "link", b"replaced through the link", 0o644);
    });
    match fx.refuse(&archive) {
        UnpackError::DuplicateEntry { path } => assert_eq!(path, Path::new("link")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn duplicate_file_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "index.js", b"first", 0o644);
        // Verbatim, because `set_path` would strip the `./` that makes the names differ.
        add_raw(b, b"./index.js", EntryType::Regular, b"second");
    });
    match fx.refuse(&archive) {
        UnpackError::DuplicateEntry { path } => assert_eq!(path, Path::new("./index.js")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn file_used_as_directory_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "lib", b"a file", 0o644);
        add_file(b, "lib/x.js", b"under a file", 0o644);
    });
    match fx.refuse(&archive) {
        UnpackError::NotADirectory { path, parent } => {
            assert_eq!(path, Path::new("lib/x.js"));
            assert_eq!(parent, Path::new("lib"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn hardlink_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "a.txt", b"data", 0o644);
        let mut header = header(EntryType::Link, 0, 0o644);
        b.append_link(&mut header, "b.txt", "a.txt").unwrap();
    });
    match fx.refuse(&archive) {
        UnpackError::HardLink { path } => assert_eq!(path, Path::new("b.txt")),
        other => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Special files
// ---------------------------------------------------------------------------------------------

fn device_archive(kind: EntryType, path: &str) -> Vec<u8> {
    targz(|b| {
        let mut header = header(kind, 0, 0o666);
        header.set_device_major(1).unwrap();
        header.set_device_minor(3).unwrap();
        b.append_data(&mut header, path, std::io::empty()).unwrap();
    })
}

fn assert_unsupported(error: UnpackError, expected_path: &str, expected_kind: &str) {
    match error {
        UnpackError::UnsupportedEntryType { path, kind } => {
            assert_eq!(path, Path::new(expected_path));
            assert_eq!(kind, expected_kind);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn character_device_is_refused() {
    let fx = fixture();
    assert_unsupported(fx.refuse(&device_archive(EntryType::Char, "dev/null")), "dev/null", "character device");
}

#[test]
fn block_device_is_refused() {
    let fx = fixture();
    assert_unsupported(fx.refuse(&device_archive(EntryType::Block, "dev/sda")), "dev/sda", "block device");
}

#[test]
fn fifo_is_refused() {
    let fx = fixture();
    assert_unsupported(fx.refuse(&device_archive(EntryType::Fifo, "pipe")), "pipe", "fifo");
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn too_many_entries_is_refused() {
    let fx = fixture();
    let archive = targz(|b| {
        for i in 0..5 {
            add_file(b, &format!("f{i}"), b"", 0o644);
        }
    });
    let limits = UnpackLimits { max_entries: 3, ..UnpackLimits::default() };
    match fx.refuse_with(&archive, &limits) {
        UnpackError::TooManyEntries { limit } => assert_eq!(limit, 3),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn gzip_bomb_is_refused() {
    let fx = fixture();
    let zeros = vec![0u8; 10 << 20];
    let archive = targz(|b| add_file(b, "bomb.bin", &zeros, 0o644));
    assert!(archive.len() < 100 << 10, "the bomb should compress well ({} bytes)", archive.len());
    let limits = UnpackLimits { max_total_bytes: 1 << 20, ..UnpackLimits::default() };
    match fx.refuse_with(&archive, &limits) {
        UnpackError::TooLarge { limit_bytes } => assert_eq!(limit_bytes, 1 << 20),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn many_files_adding_up_past_the_limit_are_refused() {
    let fx = fixture();
    let chunk = vec![7u8; 400 << 10];
    let archive = targz(|b| {
        for i in 0..3 {
            add_file(b, &format!("part{i}.bin"), &chunk, 0o644);
        }
    });
    let limits = UnpackLimits { max_total_bytes: 1 << 20, ..UnpackLimits::default() };
    assert!(
        matches!(fx.refuse_with(&archive, &limits), UnpackError::TooLarge { limit_bytes } if limit_bytes == 1 << 20)
    );
}

#[test]
fn payload_hidden_in_a_directory_entry_is_capped() {
    let fx = fixture();
    // Directory data is never written, but decompressing it still costs; the stream cap bounds it.
    let archive = targz(|b| add_raw(b, b"dir/", EntryType::Directory, &vec![0u8; 8 << 20]));
    let limits = UnpackLimits { max_total_bytes: 1 << 20, max_entries: 4 };
    assert!(matches!(fx.refuse_with(&archive, &limits), UnpackError::TooLarge { .. }));
}

#[test]
fn exactly_at_the_limits_is_accepted() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "a.bin", &[1u8; 600], 0o644);
        add_file(b, "b.bin", &[2u8; 424], 0o644);
    });
    let limits = UnpackLimits { max_total_bytes: 1024, max_entries: 2 };
    let summary = fx.unpack_with(&archive, &limits).unwrap();
    assert_eq!(summary, UnpackSummary { entries: 2, files: 2, total_bytes: 1024 });
}

// ---------------------------------------------------------------------------------------------
// Destination and stream integrity
// ---------------------------------------------------------------------------------------------

#[test]
fn existing_destination_is_refused() {
    let fx = fixture();
    fs::create_dir(&fx.dest).unwrap();
    fs::write(fx.dest.join("keep.txt"), "previous release").unwrap();
    let archive = targz(|b| add_file(b, "keep.txt", b"new", 0o644));
    match fx.unpack(&archive) {
        Err(UnpackError::DestinationExists { path }) => assert_eq!(path, fx.dest),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fx.parent_listing(), vec!["release".to_string()]);
    assert_eq!(fs::read_to_string(fx.dest.join("keep.txt")).unwrap(), "previous release");
}

#[test]
fn dangling_symlink_destination_counts_as_existing() {
    let fx = fixture();
    std::os::unix::fs::symlink("/nonexistent/aether", &fx.dest).unwrap();
    let archive = targz(|b| add_file(b, "a", b"", 0o644));
    assert!(matches!(fx.unpack(&archive), Err(UnpackError::DestinationExists { .. })));
    assert_eq!(fx.parent_listing(), vec!["release".to_string()]);
}

#[test]
fn not_gzip_is_refused() {
    let fx = fixture();
    assert!(matches!(fx.refuse(b"this is not a gzip stream at all"), UnpackError::Corrupt { .. }));
}

#[test]
fn truncated_gzip_is_refused() {
    let fx = fixture();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let archive = targz(|b| add_file(b, "data.bin", &body, 0o644));
    assert!(matches!(fx.refuse(&archive[..archive.len() / 2]), UnpackError::Corrupt { .. }));
}

#[test]
fn truncated_tar_inside_valid_gzip_is_refused() {
    let fx = fixture();
    let tar = tar_bytes(|b| add_file(b, "data.bin", &[9u8; 4096], 0o644));
    // Header plus half of the file's data; gzip itself is intact.
    let archive = gzip(&tar[..512 + 2048]);
    assert!(matches!(fx.refuse(&archive), UnpackError::Corrupt { .. }));
}

#[test]
fn bad_gzip_checksum_is_refused() {
    let fx = fixture();
    let mut archive = targz(|b| add_file(b, "a.txt", b"hello", 0o644));
    let crc_at = archive.len() - 8;
    archive[crc_at] ^= 0xff;
    assert!(matches!(fx.refuse(&archive), UnpackError::Corrupt { .. }));
}

#[test]
fn bad_header_checksum_is_refused() {
    let fx = fixture();
    let mut tar = tar_bytes(|b| add_file(b, "a.txt", b"hello", 0o644));
    tar[0] ^= 0x01;
    assert!(matches!(fx.refuse(&gzip(&tar)), UnpackError::Corrupt { .. }));
}

// ---------------------------------------------------------------------------------------------
// Honest archives
// ---------------------------------------------------------------------------------------------

#[test]
fn normal_archive_with_nested_directories() {
    let fx = fixture();
    let archive = targz(|b| {
        add_dir(b, "./");
        add_dir(b, "app/");
        add_file(b, "app/package.json", br#"{"name":"app"}"#, 0o644);
        // No entry for `app/src/`: parents are created on demand.
        add_file(b, "./app/src/index.js", b"console.log('hi')\n", 0o600);
        add_dir(b, "app/empty/");
    });
    let summary = fx.unpack(&archive).unwrap();
    assert_eq!(summary, UnpackSummary { entries: 5, files: 2, total_bytes: 14 + 18 });
    assert_eq!(fx.parent_listing(), vec!["release".to_string()]);
    assert_eq!(fs::read_to_string(fx.dest.join("app/package.json")).unwrap(), r#"{"name":"app"}"#);
    assert_eq!(fs::read_to_string(fx.dest.join("app/src/index.js")).unwrap(), "console.log('hi')\n");
    assert!(fs::read_dir(fx.dest.join("app/empty")).unwrap().next().is_none());
    for dir in ["", "app", "app/src", "app/empty"] {
        assert_eq!(mode(&fx.dest.join(dir)), 0o755, "{dir:?}");
    }
    assert_eq!(mode(&fx.dest.join("app/src/index.js")), 0o644);
}

#[test]
fn execute_bits_become_0755_and_special_bits_are_dropped() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "bin/server", b"#!/bin/sh\n", 0o755);
        add_file(b, "bin/owner-only", b"#!/bin/sh\n", 0o700);
        add_file(b, "bin/setuid", b"#!/bin/sh\n", 0o4755);
        add_file(b, "data/world-writable", b"x", 0o666);
        add_file(b, "data/setgid-noexec", b"x", 0o2644);
        let mut sticky = header(EntryType::Directory, 0, 0o1777);
        b.append_data(&mut sticky, "tmp/", std::io::empty()).unwrap();
    });
    fx.unpack(&archive).unwrap();
    let expected =
        [("bin/server", 0o755), ("bin/owner-only", 0o755), ("bin/setuid", 0o755), ("data/world-writable", 0o644)];
    for (path, expected) in expected {
        assert_eq!(mode(&fx.dest.join(path)), expected, "{path}");
    }
    assert_eq!(mode(&fx.dest.join("data/setgid-noexec")), 0o644);
    assert_eq!(mode(&fx.dest.join("tmp")), 0o755);
}

#[test]
fn symlink_inside_the_tree_is_extracted_as_a_symlink() {
    let fx = fixture();
    let archive = targz(|b| {
        add_file(b, "node_modules/tool/cli.js", b"#!/usr/bin/env node\n", 0o755);
        add_symlink(b, "node_modules/.bin/tool", "../tool/cli.js");
        add_symlink(b, "current", "./node_modules");
    });
    let summary = fx.unpack(&archive).unwrap();
    assert_eq!(summary, UnpackSummary { entries: 3, files: 1, total_bytes: 20 });
    let link = fx.dest.join("node_modules/.bin/tool");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("../tool/cli.js"));
    assert_eq!(fs::read_to_string(&link).unwrap(), "#!/usr/bin/env node\n");
    assert_eq!(fs::read_link(fx.dest.join("current")).unwrap(), Path::new("./node_modules"));
}

#[test]
fn unicode_names_survive() {
    let fx = fixture();
    let names = ["données/résumé.txt", "日本語/ファイル.js", "emoji-🚀.md"];
    let archive = targz(|b| {
        for name in names {
            add_file(b, name, name.as_bytes(), 0o644);
        }
    });
    fx.unpack(&archive).unwrap();
    for name in names {
        assert_eq!(fs::read_to_string(fx.dest.join(name)).unwrap(), name);
    }
}

#[test]
fn long_paths_and_link_targets_survive() {
    let fx = fixture();
    let long_dir = format!("node_modules/{}/{}", "a".repeat(80), "b".repeat(80));
    let long_file = format!("{long_dir}/index.js");
    let link_path = format!("{long_dir}/alias.js");
    let link_target = format!("../../{}/{}/index.js", "a".repeat(80), "b".repeat(80));
    assert!(long_file.len() > 100 && link_target.len() > 100);
    let archive = targz(|b| {
        add_file(b, &long_file, b"module.exports = 1;\n", 0o644);
        add_symlink(b, &link_path, &link_target);
    });
    let summary = fx.unpack(&archive).unwrap();
    assert_eq!(summary.entries, 2, "GNU long-name headers are not entries of their own");
    assert_eq!(fs::read_to_string(fx.dest.join(&long_file)).unwrap(), "module.exports = 1;\n");
    assert_eq!(fs::read_link(fx.dest.join(&link_path)).unwrap(), PathBuf::from(&link_target));
}

#[test]
fn pax_global_header_is_ignored() {
    let fx = fixture();
    let archive = targz(|b| {
        // GNU tar names global headers with an absolute temporary path; git archive writes one too.
        add_pax(b, EntryType::XGlobalHeader, b"/tmp/GlobalHead.0.1", "comment", "built by ci");
        add_file(b, "index.js", b"ok", 0o644);
    });
    fx.unpack(&archive).unwrap();
    assert_eq!(fs::read_to_string(fx.dest.join("index.js")).unwrap(), "ok");
    assert_eq!(fx.parent_listing(), vec!["release".to_string()]);
}
