#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! SBOM end to end: a realistic npm install -> installed packages -> CycloneDX 1.5 JSON that is
//! byte-stable and passes the official schema in strict mode (via scripts/validate_cyclonedx.py).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use aether_core::lockfile::{InstalledPackage, installed_packages, root_dependencies};
use aether_core::sbom::{SbomSubject, cyclonedx_json, legacy_json};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha512};

/// sha256 of "aether fixture artifact".
const DIGEST: &str = "11a85cf8ac34c533f6d035072562322fa23864bb2c39f28ff0e4fa0ce8965857";
/// uuid5(be254a75-2de6-51f8-8640-3d4fd85cc911, DIGEST), computed with Python's `uuid` module.
const SERIAL: &str = "urn:uuid:3a51dbf4-66da-5f4e-939c-6ab0ad96cc3c";
const TIMESTAMP: i64 = 1_700_000_000;

fn subject() -> SbomSubject<'static> {
    SbomSubject { name: "fixture-app", version: "2.3.4", artifact_digest: DIGEST, dependencies: &[] }
}

/// The tarball bytes a package's integrity is computed over (any stable bytes will do).
fn tarball(name: &str, version: &str) -> Vec<u8> {
    format!("{name}@{version}").into_bytes()
}

fn integrity(name: &str, version: &str) -> String {
    format!("sha512-{}", STANDARD.encode(Sha512::digest(tarball(name, version))))
}

fn sha512_hex(name: &str, version: &str) -> String {
    hex::encode(Sha512::digest(tarball(name, version)))
}

/// (lockfile key, name, version, license, dependencies, installed, dev)
type Entry = (&'static str, &'static str, &'static str, &'static str, &'static [&'static str], bool, bool);

const ENTRIES: &[Entry] = &[
    ("node_modules/@acme/logger", "@acme/logger", "1.2.0", "MIT", &["ms"], true, false),
    ("node_modules/debug", "debug", "4.3.4", "MIT", &["ms"], true, false),
    ("node_modules/debug/node_modules/ms", "ms", "2.1.2", "MIT", &[], true, false),
    (
        "node_modules/express-lite",
        "express-lite",
        "1.0.0",
        "MIT OR Apache-2.0",
        &["debug", "@acme/logger", "send"],
        true,
        false,
    ),
    ("node_modules/ms", "ms", "2.1.3", "MIT", &[], true, false),
    ("node_modules/send", "send", "0.18.0", "MIT", &["ms", "debug"], true, false),
    ("node_modules/send/node_modules/ms", "ms", "2.1.2", "MIT", &[], true, false),
    ("node_modules/weird", "weird", "0.1.0", "SEE LICENSE IN LICENSE.txt", &[], true, false),
    ("node_modules/jest", "jest", "29.7.0", "MIT", &["ms"], false, true),
];

/// Writes `package-lock.json` (v3) and the matching `node_modules/**/package.json` under `root`.
fn write_fixture(root: &Path) -> PathBuf {
    let mut packages = serde_json::Map::new();
    packages.insert(
        String::new(),
        json!({ "name": "fixture-app", "version": "2.3.4",
                "dependencies": { "express-lite": "^1.0.0", "@acme/logger": "^1.2.0" },
                "devDependencies": { "jest": "^29.7.0" } }),
    );
    for &(key, name, version, license, deps, installed, dev) in ENTRIES {
        let dependencies: serde_json::Map<String, Value> = deps.iter().map(|d| ((*d).to_owned(), json!("*"))).collect();
        let mut entry = json!({ "version": version, "resolved": format!("https://registry.npmjs.org/{name}/-/x.tgz"),
                                "license": license, "dependencies": dependencies });
        entry["integrity"] =
            if name == "weird" { json!("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=") } else { json!(integrity(name, version)) };
        if dev {
            entry["dev"] = json!(true);
        }
        packages.insert(key.to_owned(), entry);
        if installed {
            let dir = root.join(key);
            fs::create_dir_all(&dir).unwrap();
            let manifest =
                json!({ "name": name, "version": version, "license": license, "dependencies": dependencies });
            fs::write(dir.join("package.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        }
    }
    let lockfile = json!({ "name": "fixture-app", "version": "2.3.4", "lockfileVersion": 3, "requires": true,
                           "packages": packages });
    let path = root.join("package-lock.json");
    fs::write(&path, serde_json::to_vec_pretty(&lockfile).unwrap()).unwrap();
    path
}

fn fixture() -> (tempfile::TempDir, Vec<InstalledPackage>) {
    let dir = tempfile::tempdir().unwrap();
    let lockfile = write_fixture(dir.path());
    let packages = installed_packages(Some(&fs::read(lockfile).unwrap()), &dir.path().join("node_modules")).unwrap();
    (dir, packages)
}

fn component<'a>(document: &'a Value, bom_ref: &str) -> &'a Value {
    let components = document["components"].as_array().unwrap();
    components.iter().find(|c| c["bom-ref"] == bom_ref).unwrap_or_else(|| panic!("no component {bom_ref}"))
}

fn depends_on(document: &Value, bom_ref: &str) -> Value {
    let graph = document["dependencies"].as_array().unwrap();
    let entry = graph.iter().find(|d| d["ref"] == bom_ref).unwrap_or_else(|| panic!("no dependency entry {bom_ref}"));
    entry.get("dependsOn").cloned().unwrap_or(json!([]))
}

#[test]
fn cyclonedx_is_byte_stable_and_describes_the_install() {
    let (_dir, packages) = fixture();
    let first = cyclonedx_json(&subject(), &packages, TIMESTAMP).unwrap();
    let (_again_dir, again) = fixture();
    assert_eq!(first, cyclonedx_json(&subject(), &again, TIMESTAMP).unwrap(), "output must be byte-identical");
    let document: Value = serde_json::from_slice(&first).unwrap();

    assert_eq!(document["specVersion"], "1.5");
    assert_eq!(document["serialNumber"], SERIAL);
    assert_eq!(document["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(document["metadata"]["component"]["bom-ref"], "app:fixture-app@2.3.4");
    assert_eq!(document["metadata"]["component"]["purl"], "pkg:npm/fixture-app@2.3.4");

    let refs: Vec<&str> =
        document["components"].as_array().unwrap().iter().map(|c| c["bom-ref"].as_str().unwrap()).collect();
    assert_eq!(
        refs,
        [
            "node_modules/debug/node_modules/ms",
            "node_modules/send/node_modules/ms",
            "pkg:npm/%40acme/logger@1.2.0",
            "pkg:npm/debug@4.3.4",
            "pkg:npm/express-lite@1.0.0",
            "pkg:npm/ms@2.1.3",
            "pkg:npm/send@0.18.0",
            "pkg:npm/weird@0.1.0",
        ],
        "sorted by bom-ref; the duplicated ms@2.1.2 uses paths; the dev-only jest is absent"
    );

    let logger = component(&document, "pkg:npm/%40acme/logger@1.2.0");
    assert_eq!(
        (&logger["group"], &logger["name"], &logger["version"]),
        (&json!("@acme"), &json!("logger"), &json!("1.2.0"))
    );
    assert_eq!(logger["type"], "library");
    assert_eq!(logger["purl"], "pkg:npm/%40acme/logger@1.2.0");
    assert_eq!(logger["hashes"], json!([{ "alg": "SHA-512", "content": sha512_hex("@acme/logger", "1.2.0") }]));
    assert_eq!(logger["licenses"], json!([{ "license": { "id": "MIT" } }]));

    let nested = component(&document, "node_modules/send/node_modules/ms");
    assert_eq!(nested["purl"], "pkg:npm/ms@2.1.2");
    assert_eq!(nested["hashes"][0]["content"], sha512_hex("ms", "2.1.2"));
    assert_eq!(
        component(&document, "pkg:npm/express-lite@1.0.0")["licenses"],
        json!([{ "expression": "MIT OR Apache-2.0" }])
    );
    let weird = component(&document, "pkg:npm/weird@0.1.0");
    assert_eq!(weird.get("hashes"), None, "sha1 integrities are not reported");
    assert_eq!(weird["licenses"], json!([{ "license": { "name": "SEE LICENSE IN LICENSE.txt" } }]));
}

/// The CycloneDX document of the fixture, the root depending on what the lockfile's root lists.
fn fixture_document() -> Value {
    let (dir, packages) = fixture();
    let lockfile = fs::read(dir.path().join("package-lock.json")).unwrap();
    let direct = root_dependencies(Some(&lockfile), b"{}", &packages);
    let subject = SbomSubject { dependencies: &direct, ..subject() };
    serde_json::from_slice(&cyclonedx_json(&subject, &packages, TIMESTAMP).unwrap()).unwrap()
}

#[test]
fn dependency_graph_follows_node_resolution() {
    let document = fixture_document();
    assert_eq!(
        depends_on(&document, "app:fixture-app@2.3.4"),
        json!(["pkg:npm/%40acme/logger@1.2.0", "pkg:npm/express-lite@1.0.0"]),
        "the app's own dependencies, not the hoisted ones of its dependencies"
    );
    assert_eq!(depends_on(&document, "pkg:npm/debug@4.3.4"), json!(["node_modules/debug/node_modules/ms"]));
    assert_eq!(
        depends_on(&document, "pkg:npm/send@0.18.0"),
        json!(["node_modules/send/node_modules/ms", "pkg:npm/debug@4.3.4"])
    );
    assert_eq!(depends_on(&document, "pkg:npm/%40acme/logger@1.2.0"), json!(["pkg:npm/ms@2.1.3"]));
    assert_eq!(
        depends_on(&document, "pkg:npm/express-lite@1.0.0"),
        json!(["pkg:npm/%40acme/logger@1.2.0", "pkg:npm/debug@4.3.4", "pkg:npm/send@0.18.0"])
    );
    assert_eq!(document["dependencies"].as_array().unwrap().len(), 9, "one entry per component plus the root");
}

#[test]
fn legacy_sbom_is_stable() {
    let (_dir, packages) = fixture();
    let first = legacy_json(&subject(), &packages).unwrap();
    assert_eq!(first, legacy_json(&subject(), &packages).unwrap());
    let document: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(document["schema"], "aether-sbom-v1");
    assert_eq!(document["packages"].as_array().unwrap().len(), 8);
    assert_eq!(document["packages"][0]["path"], "node_modules/@acme/logger");
}

/// Runs scripts/validate_cyclonedx.py; a missing Python package is a failure, never a skip,
/// because a skipped schema check would let an invalid SBOM ship.
fn run_validator(file: &Path) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate_cyclonedx.py");
    let hint = "install the validator with `python3 -m pip install -r requirements-dev.txt` (repository root)";
    let output = Command::new("python3")
        .arg(&script)
        .arg(file)
        .output()
        .unwrap_or_else(|error| panic!("cannot run python3 {}: {error}; {hint}", script.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let code = output.status.code().unwrap_or(-1);
    assert_ne!(code, 2, "the CycloneDX validator could not run: {text}\n{hint}");
    (code, text)
}

#[test]
fn cyclonedx_passes_the_official_schema_in_strict_mode() {
    let (dir, packages) = fixture();
    let file = dir.path().join("sbom.cdx.json");
    fs::write(&file, cyclonedx_json(&subject(), &packages, TIMESTAMP).unwrap()).unwrap();
    let (code, text) = run_validator(&file);
    assert_eq!(code, 0, "CycloneDX strict validation failed: {text}");

    // The validator must actually reject what strict mode forbids, or the check above is void.
    let invalid = dir.path().join("invalid.cdx.json");
    let mut document: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    document["components"][0]["unexpected"] = json!(true);
    fs::write(&invalid, serde_json::to_vec(&document).unwrap()).unwrap();
    let (code, text) = run_validator(&invalid);
    assert_eq!(code, 1, "an unknown property must fail strict validation: {text}");
}
