//! The compressed-block cache on disk (`<cache dir>/blocks/`), so that a repack after a small
//! change compresses only the blocks that changed. Each entry is one file named by its
//! [`BlockKey`]: the SHA-256 of the compressed bytes, then the bytes. An entry that does not
//! match its hash (a torn write, a flipped bit) is removed and its block compressed again, so a
//! corrupted entry never reaches an artifact. The least recently used entries go first once the
//! cache outgrows its limit.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aether_core::gzip::{BlockCache, BlockKey};
use sha2::{Digest as _, Sha256};

/// Default bound of the cache.
pub const DEFAULT_LIMIT_BYTES: u64 = 2 << 30;
const HASH_LEN: usize = 32;

#[derive(Debug, Clone)]
pub struct DiskBlockCache {
    dir: PathBuf,
    limit_bytes: u64,
}

impl DiskBlockCache {
    /// A cache in `dir` (created on first write), bounded to `limit_bytes` by [`Self::trim`].
    pub fn new(dir: impl Into<PathBuf>, limit_bytes: u64) -> Self {
        Self { dir: dir.into(), limit_bytes }
    }

    fn path(&self, key: &BlockKey) -> PathBuf {
        let hex = key.to_hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.blk"))
    }

    /// Removes the least recently used entries until the cache holds at most its limit.
    /// Returns how many bytes went.
    pub fn trim(&self) -> u64 {
        let mut entries = entries(&self.dir);
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        if total <= self.limit_bytes {
            return 0;
        }
        entries.sort_by_key(|(used, _, _)| *used);
        let mut removed = 0;
        for (_, size, path) in entries {
            if total <= self.limit_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(size);
                removed += size;
            }
        }
        removed
    }
}

impl BlockCache for DiskBlockCache {
    fn get(&self, key: &BlockKey) -> Option<Vec<u8>> {
        let path = self.path(key);
        let mut stored = std::fs::read(&path).ok()?;
        let intact = stored.len() >= HASH_LEN && Sha256::digest(&stored[HASH_LEN..])[..] == stored[..HASH_LEN];
        if !intact {
            tracing::warn!(path = %path.display(), "a cached block is corrupt; compressing it again");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Its modification time is its last use, for trimming.
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(stored.split_off(HASH_LEN))
    }

    fn put(&self, key: &BlockKey, compressed: &[u8]) {
        let path = self.path(key);
        if let Err(error) = write_entry(&path, compressed) {
            tracing::debug!(path = %path.display(), %error, "cannot cache a block");
        }
    }
}

/// Written to a temporary file and renamed, so a reader never sees half an entry.
fn write_entry(path: &Path, compressed: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&Sha256::digest(compressed))?;
    file.write_all(compressed)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Every entry: (last use, size, path).
fn entries(dir: &Path) -> Vec<(SystemTime, u64, PathBuf)> {
    let Ok(shards) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found = Vec::new();
    for shard in shards.map_while(Result::ok) {
        let Ok(files) = std::fs::read_dir(shard.path()) else { continue };
        for file in files.map_while(Result::ok) {
            let Ok(meta) = file.metadata() else { continue };
            if meta.is_file() {
                found.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), file.path()));
            }
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(n: u8) -> BlockKey {
        BlockKey([n; 32])
    }

    #[test]
    fn a_stored_block_comes_back_and_a_corrupt_one_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskBlockCache::new(dir.path(), DEFAULT_LIMIT_BYTES);
        assert_eq!(cache.get(&key(1)), None);
        cache.put(&key(1), b"compressed bytes");
        assert_eq!(cache.get(&key(1)).as_deref(), Some(&b"compressed bytes"[..]));

        let path = cache.path(&key(1));
        let mut stored = std::fs::read(&path).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        std::fs::write(&path, stored).unwrap();
        assert_eq!(cache.get(&key(1)), None, "a flipped bit was served");
        assert!(!path.exists(), "the corrupt entry was kept");
        std::fs::write(&path, b"short").unwrap();
        assert_eq!(cache.get(&key(1)), None);
    }

    #[test]
    fn trimming_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let entry = vec![7u8; 1000];
        // Room for two entries and their hashes.
        let cache = DiskBlockCache::new(dir.path(), 2 * (1000 + 32));
        for n in 1..=3 {
            cache.put(&key(n), &entry);
            let then = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 * u64::from(n));
            std::fs::File::options().append(true).open(cache.path(&key(n))).unwrap().set_modified(then).unwrap();
        }
        // Using the oldest makes it the newest.
        assert!(cache.get(&key(1)).is_some());
        assert_eq!(cache.trim(), 1032);
        assert!(cache.path(&key(1)).exists() && cache.path(&key(3)).exists());
        assert!(!cache.path(&key(2)).exists(), "the least recently used entry stayed");
        assert_eq!(cache.trim(), 0);
    }
}
