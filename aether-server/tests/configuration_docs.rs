#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `docs/configuration.md` names every variable the server reads, so the operators' table
//! cannot drift from the code.

use std::path::Path;

/// Every `"AETHER_..."` / `"AWS_..."` / `"DATABASE_URL"` string literal in the server's sources.
fn variables_in_code() -> Vec<String> {
    let mut found = Vec::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // Test support reads its own variables (where to find s3s-fs), not the server's.
            if path.components().any(|c| c.as_os_str() == "testing") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for literal in text.split('"').skip(1).step_by(2) {
                let is_variable =
                    literal.starts_with("AETHER_") || literal.starts_with("AWS_") || literal == "DATABASE_URL";
                if is_variable && literal.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                    found.push(literal.to_owned());
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_variable_the_server_reads_is_documented() {
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md")).unwrap();
    let variables = variables_in_code();
    assert!(variables.len() > 20, "the scan found too few variables: {variables:?}");
    let missing: Vec<&String> = variables.iter().filter(|v| !docs.contains(&format!("`{v}`"))).collect();
    assert!(missing.is_empty(), "docs/configuration.md does not document {missing:?}");
}
