//! SLSA Provenance v1 in an in-toto Statement v1: how an artifact was built, from what.

use serde::Serialize;
use serde_json::{Value, json};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Identifies how Aether builds: `npm ci --omit=dev` then a deterministic tar.gz.
pub const BUILD_TYPE: &str = "https://aether.dev/build/node-pack/v1";

/// `internalParameters.install` when nothing was installed (`--no-install`).
pub const NOT_INSTALLED: &str = "none: the tree was packed as found";

/// A file referred to by name and SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NamedDigest {
    pub name: String,
    pub sha256: String,
}

/// Everything the statement says; gathered by the caller, so this stays pure.
#[derive(Debug, Clone, Default)]
pub struct ProvenanceInput {
    pub artifact: NamedDigest,
    pub project_name: String,
    pub project_version: String,
    pub start_command: String,
    /// The lockfile's exact bytes, hashed.
    pub lockfile: Option<NamedDigest>,
    pub node_version: Option<String>,
    pub npm_version: Option<String>,
    /// The command that installed `node_modules`; `None` when the tree was packed as found.
    pub install_command: Option<String>,
    /// e.g. `https://aether.dev/builder/aether-cli@0.1.0`.
    pub builder_id: String,
    /// The SBOM and manifest files as written.
    pub byproducts: Vec<NamedDigest>,
    pub source_date_epoch: Option<u64>,
    pub namespace: Option<String>,
}

fn descriptor(named: &NamedDigest) -> Value {
    json!({ "name": named.name, "digest": { "sha256": named.sha256 } })
}

fn tool(name: &str, version: &str) -> Value {
    json!({ "name": name, "uri": format!("pkg:generic/{name}@{}", version.trim_start_matches('v')) })
}

/// The statement as a JSON value (keys sorted by serde_json's map, so the bytes are stable).
pub fn statement(input: &ProvenanceInput) -> Value {
    let mut dependencies: Vec<Value> = input.lockfile.iter().map(descriptor).collect();
    dependencies.extend(input.node_version.as_deref().map(|v| tool("node", v)));
    dependencies.extend(input.npm_version.as_deref().map(|v| tool("npm", v)));
    let mut external = json!({
        "project": { "name": input.project_name, "version": input.project_version },
        "startCommand": input.start_command,
    });
    if let Some(epoch) = input.source_date_epoch {
        external["sourceDateEpoch"] = json!(epoch);
    }
    if let Some(namespace) = &input.namespace {
        external["namespace"] = json!(namespace);
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [descriptor(&input.artifact)],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {
                    "install": input.install_command.as_deref().unwrap_or(NOT_INSTALLED),
                    "archive": "tar+gzip, sorted, mtime fixed, uid/gid 0",
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": { "id": input.builder_id },
                "byproducts": input.byproducts.iter().map(descriptor).collect::<Vec<_>>(),
            },
        },
    })
}

/// Compact JSON bytes of the statement: the exact payload that gets signed.
pub fn statement_json(input: &ProvenanceInput) -> Vec<u8> {
    // Serialising a `Value` cannot fail: every key is a string.
    serde_json::to_vec(&statement(input)).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn input() -> ProvenanceInput {
        ProvenanceInput {
            artifact: NamedDigest { name: "app.tar.gz".into(), sha256: "a".repeat(64) },
            project_name: "api".into(),
            project_version: "1.0.0".into(),
            start_command: "npm start".into(),
            lockfile: Some(NamedDigest { name: "package-lock.json".into(), sha256: "b".repeat(64) }),
            node_version: Some("v20.20.2".into()),
            npm_version: Some("11.19.1".into()),
            install_command: Some("npm ci --omit=dev".into()),
            builder_id: "https://aether.dev/builder/aether-cli@0.1.0".into(),
            byproducts: vec![NamedDigest { name: "app.tar.gz.sbom.json".into(), sha256: "c".repeat(64) }],
            source_date_epoch: Some(0),
            namespace: None,
        }
    }

    #[test]
    fn statement_has_the_in_toto_and_slsa_shape() {
        let s = statement(&input());
        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["predicateType"], SLSA_PROVENANCE_V1);
        assert_eq!(s["subject"][0]["name"], "app.tar.gz");
        assert_eq!(s["subject"][0]["digest"]["sha256"], "a".repeat(64));
        let deps = &s["predicate"]["buildDefinition"]["resolvedDependencies"];
        assert_eq!(deps[0]["digest"]["sha256"], "b".repeat(64));
        assert_eq!(deps[1]["uri"], "pkg:generic/node@20.20.2");
        assert_eq!(deps[2]["uri"], "pkg:generic/npm@11.19.1");
        assert_eq!(s["predicate"]["runDetails"]["builder"]["id"], "https://aether.dev/builder/aether-cli@0.1.0");
        assert_eq!(s["predicate"]["runDetails"]["byproducts"][0]["digest"]["sha256"], "c".repeat(64));
        assert_eq!(s["predicate"]["buildDefinition"]["internalParameters"]["install"], "npm ci --omit=dev");
        let packed_as_found = statement(&ProvenanceInput { install_command: None, ..input() });
        assert_eq!(packed_as_found["predicate"]["buildDefinition"]["internalParameters"]["install"], NOT_INSTALLED);
    }

    #[test]
    fn bytes_are_stable() {
        assert_eq!(statement_json(&input()), statement_json(&input()));
    }
}
