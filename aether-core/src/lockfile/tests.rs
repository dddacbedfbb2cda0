#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;

use serde_json::json;

use super::*;

/// Writes `node_modules/<rel>/package.json` under `root`.
fn install(node_modules: &Path, rel: &str, manifest: serde_json::Value) {
    let dir = node_modules.join(rel);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("package.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
}

fn by_path<'a>(packages: &'a [InstalledPackage], path: &str) -> &'a InstalledPackage {
    packages.iter().find(|p| p.path == path).unwrap_or_else(|| panic!("{path} missing from {packages:#?}"))
}

fn paths(packages: &[InstalledPackage]) -> Vec<&str> {
    packages.iter().map(|p| p.path.as_str()).collect()
}

fn lockfile_v3() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "name": "app", "version": "1.0.0", "lockfileVersion": 3,
        "packages": {
            "": { "name": "app", "version": "1.0.0", "dependencies": { "a": "^1", "@s/b": "^2" } },
            "node_modules/a": {
                "version": "1.0.0", "integrity": "sha512-AAAA", "license": "MIT",
                "dependencies": { "c": "^1", "missing-optional": "^1" }
            },
            "node_modules/@s/b": { "version": "2.0.0", "license": "ISC", "peerDependencies": { "a": "*" } },
            "node_modules/c": { "version": "2.0.0" },
            "node_modules/a/node_modules/c": { "version": "1.0.0" },
            "node_modules/dev-absent": { "version": "1.0.0", "dev": true },
            "node_modules/dev-present": { "version": "1.0.0", "dev": true },
            "node_modules/devopt-absent": { "version": "1.0.0", "devOptional": true },
            "node_modules/opt-absent": { "version": "1.0.0", "optional": true },
            "node_modules/alias": { "name": "real-name", "version": "3.0.0" },
            "node_modules/../escape": { "version": "1.0.0", "dev": true },
            "node_modules/ws": { "resolved": "packages/ws", "link": true },
            "packages/ws": { "name": "ws-pkg", "version": "0.1.0", "license": "Apache-2.0", "dependencies": { "a": "1" } }
        }
    }))
    .unwrap()
}

fn lockfile_fixture() -> (tempfile::TempDir, Vec<InstalledPackage>) {
    let dir = tempfile::tempdir().unwrap();
    let nm = dir.path().join("node_modules");
    for rel in ["a", "@s/b", "c", "a/node_modules/c", "dev-present", "alias", "ws"] {
        install(&nm, rel, json!({}));
    }
    // The license of `c` comes from the installed manifest because the lockfile has none.
    install(&nm, "c", json!({ "name": "c", "version": "2.0.0", "license": { "type": "BSD-3-Clause" } }));
    let packages = installed_packages(Some(&lockfile_v3()), &nm).unwrap();
    (dir, packages)
}

#[test]
fn lockfile_lists_installed_packages_sorted_by_path() {
    let (_dir, packages) = lockfile_fixture();
    assert_eq!(
        paths(&packages),
        [
            "node_modules/@s/b",
            "node_modules/a",
            "node_modules/a/node_modules/c",
            "node_modules/alias",
            "node_modules/c",
            "node_modules/dev-present",
            "node_modules/ws",
        ]
    );
}

#[test]
fn dev_entries_are_kept_only_when_installed() {
    let (_dir, packages) = lockfile_fixture();
    assert!(packages.iter().any(|p| p.path == "node_modules/dev-present"));
    for absent in ["dev-absent", "devopt-absent", "opt-absent"] {
        assert!(!packages.iter().any(|p| p.name == absent), "{absent} must be excluded");
    }
}

#[test]
fn names_come_from_entry_or_key() {
    let (_dir, packages) = lockfile_fixture();
    assert_eq!(by_path(&packages, "node_modules/@s/b").name, "@s/b");
    assert_eq!(by_path(&packages, "node_modules/alias").name, "real-name");
    let a = by_path(&packages, "node_modules/a");
    assert_eq!((a.name.as_str(), a.version.as_str()), ("a", "1.0.0"));
    assert_eq!(a.integrity.as_deref(), Some("sha512-AAAA"));
    assert_eq!(a.license.as_deref(), Some("MIT"));
    assert_eq!(by_path(&packages, "node_modules/c").license.as_deref(), Some("BSD-3-Clause"));
}

#[test]
fn nested_node_modules_win_resolution() {
    let (_dir, packages) = lockfile_fixture();
    // `a` sees its own nested `c` (1.0.0), not the top-level one; `missing-optional` is dropped.
    assert_eq!(by_path(&packages, "node_modules/a").dependencies, ["node_modules/a/node_modules/c"]);
    // Peer dependencies resolve through the ancestors to the top level.
    assert_eq!(by_path(&packages, "node_modules/@s/b").dependencies, ["node_modules/a"]);
}

#[test]
fn link_entries_take_their_targets_metadata() {
    let (_dir, packages) = lockfile_fixture();
    let ws = by_path(&packages, "node_modules/ws");
    assert_eq!((ws.name.as_str(), ws.version.as_str()), ("ws-pkg", "0.1.0"));
    assert_eq!(ws.license.as_deref(), Some("Apache-2.0"));
    assert_eq!(ws.integrity, None);
    assert_eq!(ws.dependencies, ["node_modules/a"]);
    assert!(!packages.iter().any(|p| p.path.starts_with("packages/")));
}

#[test]
fn resolution_walks_up_ancestors() {
    let installed: BTreeSet<String> =
        ["node_modules/x", "node_modules/@s/a/node_modules/x", "node_modules/@s/a/node_modules/y"]
            .into_iter()
            .map(String::from)
            .collect();
    let from = "node_modules/@s/a/node_modules/y/node_modules/z";
    assert_eq!(resolve_dependency(from, "x", &installed).as_deref(), Some("node_modules/@s/a/node_modules/x"));
    assert_eq!(resolve_dependency("node_modules/q", "x", &installed).as_deref(), Some("node_modules/x"));
    assert_eq!(resolve_dependency("node_modules/q", "nope", &installed), None);
}

#[test]
fn key_paths_are_validated() {
    assert_eq!(installed_relative_path("node_modules/@s/a/node_modules/b"), Some("@s/a/node_modules/b"));
    assert_eq!(installed_relative_path(""), None);
    assert_eq!(installed_relative_path("packages/ws"), None);
    assert_eq!(installed_relative_path("node_modules/../x"), None);
    assert_eq!(installed_relative_path("node_modules/a//b"), None);
    assert_eq!(installed_relative_path("node_modules/@s"), None);
    assert_eq!(installed_relative_path("node_modules/a/lib"), None);
}

#[test]
fn v1_lockfile_falls_back_to_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let nm = dir.path().join("node_modules");
    install(&nm, "a", json!({ "name": "a", "version": "1.2.3", "license": "MIT" }));
    let v1 = json!({ "lockfileVersion": 1, "dependencies": { "a": { "version": "1.2.3" } } });
    let packages = installed_packages(Some(&serde_json::to_vec(&v1).unwrap()), &nm).unwrap();
    assert_eq!(paths(&packages), ["node_modules/a"]);
    assert_eq!(packages[0].integrity, None);
    assert_eq!(packages[0].license.as_deref(), Some("MIT"));
}

#[test]
fn walk_without_lockfile_reads_package_roots() {
    let dir = tempfile::tempdir().unwrap();
    let nm = dir.path().join("node_modules");
    install(&nm, "a", json!({ "name": "a", "version": "1.0.0", "dependencies": { "b": "1", "gone": "1" } }));
    install(&nm, "a/node_modules/b", json!({ "name": "b", "version": "1.0.0", "licenses": [{ "type": "MIT" }] }));
    install(&nm, "b", json!({ "name": "b", "version": "2.0.0", "dependencies": [] }));
    install(
        &nm,
        "@s/c",
        json!({ "name": "@s/c", "version": "3.0.0", "license": "ISC", "peerDependencies": { "a": "*" } }),
    );
    install(&nm, "a/lib/sub", json!({ "name": "not-a-root", "version": "9.9.9" }));
    install(&nm, ".bin/x", json!({ "name": "x", "version": "1.0.0" }));
    install(&nm, ".cache/y", json!({ "name": "y", "version": "1.0.0" }));
    let packages = installed_packages(None, &nm).unwrap();
    assert_eq!(
        paths(&packages),
        ["node_modules/@s/c", "node_modules/a", "node_modules/a/node_modules/b", "node_modules/b"]
    );
    assert_eq!(by_path(&packages, "node_modules/a").dependencies, ["node_modules/a/node_modules/b"]);
    assert_eq!(by_path(&packages, "node_modules/@s/c").dependencies, ["node_modules/a"]);
    assert_eq!(by_path(&packages, "node_modules/a/node_modules/b").license.as_deref(), Some("MIT"));
    assert_eq!(by_path(&packages, "node_modules/b").dependencies, Vec::<String>::new());
}

#[cfg(unix)]
#[test]
fn walk_does_not_follow_symlinks_out() {
    let dir = tempfile::tempdir().unwrap();
    let nm = dir.path().join("node_modules");
    install(&nm, "a", json!({ "name": "a", "version": "1.0.0" }));
    install(dir.path(), "outside", json!({ "name": "outside", "version": "1.0.0" }));
    std::os::unix::fs::symlink(dir.path().join("outside"), nm.join("out")).unwrap();
    std::os::unix::fs::symlink(nm.join("a"), nm.join("inside")).unwrap();
    // A cycle: a/node_modules/loop -> a.
    fs::create_dir_all(nm.join("a/node_modules")).unwrap();
    std::os::unix::fs::symlink(nm.join("a"), nm.join("a/node_modules/loop")).unwrap();
    let packages = installed_packages(None, &nm).unwrap();
    assert_eq!(paths(&packages), ["node_modules/a", "node_modules/a/node_modules/loop", "node_modules/inside"]);
}

#[test]
fn missing_node_modules_gives_no_packages() {
    let dir = tempfile::tempdir().unwrap();
    assert!(installed_packages(None, &dir.path().join("node_modules")).unwrap().is_empty());
}

#[test]
fn malformed_json_is_a_structured_error() {
    let dir = tempfile::tempdir().unwrap();
    let nm = dir.path().join("node_modules");
    let error = installed_packages(Some(b"{ not json"), &nm).unwrap_err();
    assert!(matches!(error, LockfileError::MalformedLockfile { .. }), "{error:?}");
    let error = installed_packages(Some(br#"{"packages": []}"#), &nm).unwrap_err();
    assert!(matches!(error, LockfileError::MalformedLockfile { .. }), "{error:?}");

    fs::create_dir_all(nm.join("bad")).unwrap();
    fs::write(nm.join("bad/package.json"), b"{\"name\": ").unwrap();
    match installed_packages(None, &nm).unwrap_err() {
        LockfileError::MalformedPackageJson { path, .. } => assert_eq!(path, nm.join("bad/package.json")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn licenses_are_read_from_all_manifest_shapes() {
    assert_eq!(license_from_manifest(Some(&json!(" MIT ")), None).as_deref(), Some("MIT"));
    assert_eq!(license_from_manifest(Some(&json!({ "type": "ISC" })), None).as_deref(), Some("ISC"));
    assert_eq!(license_from_manifest(Some(&json!("")), None), None);
    let legacy = json!([{ "type": "MIT" }, { "type": "Apache-2.0" }]);
    assert_eq!(license_from_manifest(None, Some(&legacy)).as_deref(), Some("(MIT OR Apache-2.0)"));
    assert_eq!(license_from_manifest(Some(&json!(42)), None), None);
}

#[test]
fn packages_the_tree_does_not_hold_are_left_out_even_when_required() {
    // Packed without installing: the lockfile lists `a`, but nothing is under node_modules.
    let dir = tempfile::tempdir().unwrap();
    let packages = installed_packages(Some(&lockfile_v3()), &dir.path().join("node_modules")).unwrap();
    assert!(packages.is_empty(), "{packages:#?}");
}

#[test]
fn root_dependencies_are_the_apps_own_not_the_hoisted_ones() {
    let (_dir, packages) = lockfile_fixture();
    // `c` is installed at the top level, but only `a` depends on it.
    assert_eq!(root_dependencies(Some(&lockfile_v3()), b"{}", &packages), ["node_modules/@s/b", "node_modules/a"]);
    // Without a lockfile, the project's package.json says; names not installed resolve to nothing.
    let package_json = br#"{"dependencies": {"c": "*", "nope": "*"}, "optionalDependencies": {"alias": "*"}}"#;
    assert_eq!(root_dependencies(None, package_json, &packages), ["node_modules/alias", "node_modules/c"]);
}

#[test]
fn installed_development_dependencies_are_the_apps_own_too() {
    let (_dir, packages) = lockfile_fixture();
    let package_json = br#"{"devDependencies": {"dev-present": "*", "dev-absent": "*"}}"#;
    assert_eq!(root_dependencies(None, package_json, &packages), ["node_modules/dev-present"]);
}
