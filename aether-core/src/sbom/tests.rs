#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha512};

use super::fields::{licenses, npm_purl, rfc3339_utc, serial_uuid, sha512_hex, split_scope};
use super::*;

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn subject() -> SbomSubject<'static> {
    SbomSubject { name: "@acme/app", version: "1.0.0", artifact_digest: DIGEST, dependencies: &[] }
}

fn package(path: &str, name: &str, version: &str, dependencies: &[&str]) -> InstalledPackage {
    InstalledPackage {
        path: path.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        integrity: None,
        license: None,
        dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn integrity_base64_becomes_lowercase_hex() {
    let digest = Sha512::digest(b"hello");
    let integrity = format!("sha512-{}", STANDARD.encode(digest));
    assert_eq!(sha512_hex(&integrity), Some(hex::encode(digest)));
    // Several hashes and SRI options: the sha512 one is used, options are ignored.
    let mixed = format!("sha1-AAAA {integrity}?foo");
    assert_eq!(sha512_hex(&mixed), Some(hex::encode(digest)));
}

#[test]
fn malformed_or_other_integrities_are_ignored() {
    let sha256 = format!("sha256-{}", STANDARD.encode([0u8; 32]));
    assert_eq!(sha512_hex(&sha256), None);
    assert_eq!(sha512_hex("sha512-not base64!"), None);
    assert_eq!(sha512_hex("sha512-@@@@"), None);
    // Valid base64 but not 64 bytes long.
    assert_eq!(sha512_hex(&format!("sha512-{}", STANDARD.encode([1u8; 32]))), None);
    assert_eq!(sha512_hex(""), None);
    assert_eq!(sha512_hex("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk="), None);
}

#[test]
fn purls_encode_the_scope_and_special_characters() {
    assert_eq!(npm_purl("lodash", "4.17.21"), "pkg:npm/lodash@4.17.21");
    assert_eq!(npm_purl("@babel/core", "7.0.0"), "pkg:npm/%40babel/core@7.0.0");
    assert_eq!(npm_purl("a", "1.0.0-rc.1+build.5"), "pkg:npm/a@1.0.0-rc.1%2Bbuild.5");
    assert_eq!(npm_purl("no-version", ""), "pkg:npm/no-version");
    assert_eq!(npm_purl("@scope-only", "1.0.0"), "pkg:npm/%40scope-only@1.0.0");
}

#[test]
fn scoped_names_split_into_group_and_name() {
    assert_eq!(split_scope("@types/node"), (Some("@types"), "node"));
    assert_eq!(split_scope("express"), (None, "express"));
    assert_eq!(split_scope("@/x"), (None, "@/x"));
    assert_eq!(split_scope("@s/"), (None, "@s/"));
}

#[test]
fn licenses_prefer_spdx_ids_then_expressions_then_names() {
    let license = |text: &str| serde_json::to_value(licenses_json(text)).unwrap();
    assert_eq!(license("MIT"), json!([{ "license": { "id": "MIT" } }]));
    assert_eq!(license("MIT OR Apache-2.0"), json!([{ "expression": "MIT OR Apache-2.0" }]));
    assert_eq!(license("Apache-2.0+"), json!([{ "expression": "Apache-2.0+" }]));
    // The strict SPDX parser rejects `+` on GNU ids (`-or-later` is the spelling): kept by name.
    assert_eq!(license("GPL-2.0+"), json!([{ "license": { "name": "GPL-2.0+" } }]));
    assert_eq!(license("Bugroff"), json!([{ "expression": "Bugroff" }]));
    assert_eq!(license("SEE LICENSE IN LICENSE.md"), json!([{ "license": { "name": "SEE LICENSE IN LICENSE.md" } }]));
    assert_eq!(license("mit"), json!([{ "license": { "name": "mit" } }]));
    assert!(licenses("NOASSERTION").is_none());
    assert!(licenses("  ").is_none());
}

/// The `licenses` JSON of a component carrying `license`, as the crate writes it.
fn licenses_json(license: &str) -> Value {
    let mut only = package("node_modules/x", "x", "1.0.0", &[]);
    only.license = Some(license.to_owned());
    let document = parse(&cyclonedx_json(&subject(), &[only], 0).unwrap());
    document["components"][0].get("licenses").cloned().unwrap_or(Value::Null)
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(rfc3339_utc(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(rfc3339_utc(1_700_000_000).as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(rfc3339_utc(951_782_400).as_deref(), Some("2000-02-29T00:00:00Z"));
    assert_eq!(rfc3339_utc(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(rfc3339_utc(253_402_300_799).as_deref(), Some("9999-12-31T23:59:59Z"));
    assert_eq!(rfc3339_utc(253_402_300_800), None);
    assert_eq!(rfc3339_utc(i64::MIN), None);
    assert_eq!(rfc3339_utc(i64::MAX), None);
}

#[test]
fn serial_number_is_a_uuid_v5_of_the_digest() {
    let uuid = serial_uuid(DIGEST);
    assert_eq!(uuid.get_version_num(), 5);
    assert_eq!(uuid, serial_uuid(DIGEST));
    assert_ne!(uuid, serial_uuid(&"f".repeat(64)));
    let document = parse(&cyclonedx_json(&subject(), &[], 0).unwrap());
    assert_eq!(document["serialNumber"], format!("urn:uuid:{uuid}"));
}

#[test]
fn duplicate_name_versions_use_their_paths_as_bom_refs() {
    let packages = [
        package("node_modules/a", "a", "1.0.0", &["node_modules/a/node_modules/b"]),
        package("node_modules/a/node_modules/b", "b", "1.0.0", &[]),
        package("node_modules/c/node_modules/b", "b", "1.0.0", &[]),
        package("node_modules/c", "c", "2.0.0", &["node_modules/c/node_modules/b"]),
    ];
    let direct = ["node_modules/a".to_owned(), "node_modules/c".to_owned(), "node_modules/not-installed".to_owned()];
    let subject = SbomSubject { dependencies: &direct, ..subject() };
    let document = parse(&cyclonedx_json(&subject, &packages, 0).unwrap());
    let refs: Vec<&str> =
        document["components"].as_array().unwrap().iter().map(|c| c["bom-ref"].as_str().unwrap()).collect();
    assert_eq!(
        refs,
        ["node_modules/a/node_modules/b", "node_modules/c/node_modules/b", "pkg:npm/a@1.0.0", "pkg:npm/c@2.0.0"]
    );
    let graph = &document["dependencies"];
    assert_eq!(graph[0], json!({ "ref": "app:@acme/app@1.0.0", "dependsOn": ["pkg:npm/a@1.0.0", "pkg:npm/c@2.0.0"] }));
    assert!(
        graph
            .as_array()
            .unwrap()
            .contains(&json!({ "ref": "pkg:npm/a@1.0.0", "dependsOn": ["node_modules/a/node_modules/b"] }))
    );
    assert!(graph.as_array().unwrap().contains(&json!({ "ref": "node_modules/c/node_modules/b" })));
}

#[test]
fn root_component_is_the_app() {
    let document = parse(&cyclonedx_json(&subject(), &[], 1_700_000_000).unwrap());
    let metadata = &document["metadata"];
    assert_eq!(metadata["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(metadata["tools"]["components"][0]["name"], "aether");
    assert_eq!(metadata["tools"]["components"][0]["version"], env!("CARGO_PKG_VERSION"));
    let root = &metadata["component"];
    assert_eq!(root["type"], "application");
    assert_eq!((&root["group"], &root["name"]), (&json!("@acme"), &json!("app")));
    assert_eq!(root["purl"], "pkg:npm/%40acme/app@1.0.0");
    assert_eq!(root["hashes"], json!([{ "alg": "SHA-256", "content": DIGEST }]));
    assert_eq!(document["specVersion"], "1.5");
}

#[test]
fn bad_inputs_are_refused() {
    let bad = SbomSubject { artifact_digest: "ABC", ..subject() };
    assert!(matches!(cyclonedx_json(&bad, &[], 0), Err(SbomError::InvalidDigest { .. })));
    assert!(matches!(legacy_json(&bad, &[]), Err(SbomError::InvalidDigest { .. })));
    assert!(matches!(cyclonedx_json(&subject(), &[], i64::MAX), Err(SbomError::InvalidTimestamp { .. })));
    let twice = [package("node_modules/a", "a", "1.0.0", &[]), package("node_modules/a", "a", "1.0.1", &[])];
    assert!(matches!(cyclonedx_json(&subject(), &twice, 0), Err(SbomError::DuplicatePackagePath { .. })));
}

#[test]
fn legacy_format_is_stable() {
    let mut b = package("node_modules/b", "b", "2.0.0", &[]);
    b.license = Some("MIT".to_owned());
    b.integrity = Some("sha512-xyz".to_owned());
    let packages = [b, package("node_modules/a", "a", "1.0.0", &[])];
    let first = legacy_json(&subject(), &packages).unwrap();
    assert_eq!(first, legacy_json(&subject(), &packages).unwrap());
    assert_eq!(
        parse(&first),
        json!({
            "schema": "aether-sbom-v1",
            "artifact_digest": DIGEST,
            "app": { "name": "@acme/app", "version": "1.0.0" },
            "packages": [
                { "name": "a", "version": "1.0.0", "path": "node_modules/a", "license": null, "integrity": null },
                { "name": "b", "version": "2.0.0", "path": "node_modules/b", "license": "MIT", "integrity": "sha512-xyz" }
            ]
        })
    );
    assert!(first.ends_with(b"}\n"));
}
