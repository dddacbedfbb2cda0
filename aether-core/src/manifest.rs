//! The per-file manifest: what is inside an artifact, without unpacking it.

use serde::{Deserialize, Serialize};

/// Format tag, so readers can tell future versions apart.
pub const MANIFEST_SCHEMA: &str = "aether-manifest-v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManifestEntry {
    File { path: String, size: u64, mode: String, sha256: String },
    Dir { path: String, mode: String },
    Symlink { path: String, target: String },
}

impl ManifestEntry {
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Dir { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    /// SHA-256 of the `.tar.gz` bytes: the artifact's identity.
    pub digest: String,
    /// SHA-256 of the uncompressed tar stream.
    pub tar_sha256: String,
    pub size_bytes: u64,
    pub total_files: u64,
    /// Sum of the regular files' sizes.
    pub total_file_bytes: u64,
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Pretty JSON with a trailing newline; deterministic because every collection is ordered.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        self.write_json(&mut out)?;
        Ok(out)
    }

    /// The same bytes as [`Manifest::to_json`], streamed: a manifest of a large tree is tens of
    /// megabytes, which need not be held in memory at once.
    pub fn write_json<W: std::io::Write>(&self, mut out: W) -> Result<(), serde_json::Error> {
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n").map_err(serde_json::Error::io)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Octal mode as `ls -l` users and tar listings show it.
pub fn mode_string(mode: u32) -> String {
    format!("{mode:04o}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = ManifestEntry> {
        prop_oneof![
            ("[a-z/]{1,20}", any::<u64>(), "[0-9a-f]{64}").prop_map(|(path, size, sha256)| ManifestEntry::File {
                path,
                size,
                mode: mode_string(0o644),
                sha256
            }),
            "[a-z/]{1,20}".prop_map(|path| ManifestEntry::Dir { path, mode: mode_string(0o755) }),
            ("[a-z/]{1,20}", "[a-z./]{1,20}").prop_map(|(path, target)| ManifestEntry::Symlink { path, target }),
        ]
    }

    proptest! {
        #[test]
        fn json_round_trips(entries in proptest::collection::vec(entry(), 0..20), size in any::<u64>()) {
            let manifest = Manifest {
                schema: MANIFEST_SCHEMA.into(),
                digest: "a".repeat(64),
                tar_sha256: "b".repeat(64),
                size_bytes: size,
                total_files: entries.len() as u64,
                total_file_bytes: 0,
                entries,
            };
            let json = manifest.to_json().unwrap();
            prop_assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
        }
    }

    #[test]
    fn modes_are_four_octal_digits() {
        assert_eq!(mode_string(0o644), "0644");
        assert_eq!(mode_string(0o755), "0755");
    }
}
