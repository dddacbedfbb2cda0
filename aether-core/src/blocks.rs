//! The block index: where each independently compressed block of an artifact lies, so that a
//! client and a server can tell which blocks of a new artifact they already hold. Written beside
//! the artifact (`app.tar.gz.blocks.json`); the manifest's totals carry its SHA-256.

use serde::{Deserialize, Serialize};

pub use crate::gzip::BlockEntry;

/// Format tag, so readers can tell future versions apart.
pub const BLOCK_INDEX_SCHEMA: &str = "aether-block-index-v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    pub schema: String,
    /// The artifact the blocks belong to: SHA-256 of the whole `.tar.gz`.
    pub digest: String,
    pub size_bytes: u64,
    /// In file order; they tile the file from the end of the 10-byte gzip header to the final
    /// empty deflate block and the 8-byte trailer.
    pub blocks: Vec<BlockEntry>,
}

impl BlockIndex {
    pub fn new(digest: String, size_bytes: u64, blocks: Vec<BlockEntry>) -> Self {
        Self { schema: BLOCK_INDEX_SCHEMA.to_owned(), digest, size_bytes, blocks }
    }

    /// Compact JSON, one block per line: what is written beside the artifact and hashed into
    /// the manifest.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = format!(
            "{{\"schema\":{},\"digest\":{},\"size_bytes\":{},\"blocks\":[",
            json_string(&self.schema),
            json_string(&self.digest),
            self.size_bytes
        );
        for (i, block) in self.blocks.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&serde_json::to_string(block).unwrap_or_default());
        }
        out.push_str("\n]}\n");
        out.into_bytes()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_one_block_per_line() {
        let block = |offset, length| BlockEntry { offset, length, sha256: "a".repeat(64), input_length: 3 * length };
        let index = BlockIndex::new("d".repeat(64), 40, vec![block(10, 12), block(22, 8)]);
        let json = index.to_json();
        assert_eq!(BlockIndex::from_json(&json).unwrap(), index);
        assert_eq!(String::from_utf8(json).unwrap().lines().count(), 4);
    }
}
