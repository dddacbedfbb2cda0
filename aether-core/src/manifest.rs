//! The per-file manifest: what is inside an artifact, without unpacking it.

use std::io::Write;

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

/// What a finished pack knows besides its entries; the manifest ends with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// SHA-256 of the `.tar.gz` bytes: the artifact's identity.
    pub digest: String,
    /// SHA-256 of the uncompressed tar stream.
    pub tar_sha256: String,
    pub size_bytes: u64,
    pub total_files: u64,
    /// Sum of the regular files' sizes.
    pub total_file_bytes: u64,
    /// Compressed blocks in the artifact (see [`crate::blocks`]); 0 in manifests written
    /// before blocks were indexed.
    #[serde(default)]
    pub block_count: u64,
    /// SHA-256 of the block index written beside the artifact; empty in manifests written
    /// before blocks were indexed.
    #[serde(default)]
    pub block_index_sha256: String,
}

/// A manifest read back whole, for tools and tests; [`ManifestWriter`] writes one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub entries: Vec<ManifestEntry>,
    #[serde(flatten)]
    pub summary: Summary,
}

impl Manifest {
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The bytes [`ManifestWriter`] writes for these entries and summary.
    pub fn to_json(&self) -> std::io::Result<Vec<u8>> {
        let mut writer = ManifestWriter::new(Vec::new())?;
        for entry in &self.entries {
            writer.entry(entry)?;
        }
        writer.finish(&self.summary)
    }
}

/// Writes a manifest while its entries are being packed, one line per entry, so a large tree's
/// manifest (tens of megabytes) is never held in memory. Digests and totals are known only once
/// the pack ends, so they follow the entries.
#[derive(Debug)]
pub struct ManifestWriter<W: Write> {
    out: W,
    entries: u64,
}

impl<W: Write> ManifestWriter<W> {
    pub fn new(mut out: W) -> std::io::Result<Self> {
        write!(out, "{{\n  \"schema\": \"{MANIFEST_SCHEMA}\",\n  \"entries\": [")?;
        Ok(Self { out, entries: 0 })
    }

    pub fn entry(&mut self, entry: &ManifestEntry) -> std::io::Result<()> {
        self.out.write_all(if self.entries == 0 { b"\n    " } else { b",\n    " })?;
        serde_json::to_writer(&mut self.out, entry)?;
        self.entries += 1;
        Ok(())
    }

    /// Writes the summary and the closing brace; returns the inner writer, not flushed.
    pub fn finish(mut self, summary: &Summary) -> std::io::Result<W> {
        self.out.write_all(if self.entries == 0 { b"],\n" } else { b"\n  ],\n" })?;
        let fields = serde_json::to_string_pretty(summary)?;
        // `{\n  "digest": ...\n}`: the summary's fields continue the manifest's object.
        let fields = fields.strip_prefix("{\n").unwrap_or(&fields);
        self.out.write_all(fields.as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(self.out)
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
            let summary = Summary {
                digest: "a".repeat(64),
                tar_sha256: "b".repeat(64),
                size_bytes: size,
                total_files: entries.len() as u64,
                total_file_bytes: 0,
                block_count: 3,
                block_index_sha256: "c".repeat(64),
            };
            let manifest = Manifest { schema: MANIFEST_SCHEMA.into(), entries, summary };
            let json = manifest.to_json().unwrap();
            prop_assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
        }
    }

    #[test]
    fn entries_come_one_per_line_before_the_summary() {
        let mut writer = ManifestWriter::new(Vec::new()).unwrap();
        writer.entry(&ManifestEntry::Dir { path: "src".into(), mode: mode_string(0o755) }).unwrap();
        writer.entry(&ManifestEntry::Symlink { path: "src/l".into(), target: "x".into() }).unwrap();
        let summary = Summary {
            digest: "d".into(),
            tar_sha256: "t".into(),
            size_bytes: 1,
            total_files: 0,
            total_file_bytes: 0,
            block_count: 1,
            block_index_sha256: "i".into(),
        };
        let json = String::from_utf8(writer.finish(&summary).unwrap()).unwrap();
        let expected = r#"{
  "schema": "aether-manifest-v1",
  "entries": [
    {"type":"dir","path":"src","mode":"0755"},
    {"type":"symlink","path":"src/l","target":"x"}
  ],
  "digest": "d",
  "tar_sha256": "t",
  "size_bytes": 1,
  "total_files": 0,
  "total_file_bytes": 0,
  "block_count": 1,
  "block_index_sha256": "i"
}
"#;
        assert_eq!(json, expected);
        let empty = ManifestWriter::new(Vec::new()).unwrap().finish(&summary).unwrap();
        assert_eq!(Manifest::from_json(&empty).unwrap().entries, vec![]);
    }

    #[test]
    fn modes_are_four_octal_digits() {
        assert_eq!(mode_string(0o644), "0644");
        assert_eq!(mode_string(0o755), "0755");
    }
}
