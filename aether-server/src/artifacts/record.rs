//! What the local store measured when it wrote a blob, kept beside it so completing an upload
//! does not read the whole object again.
//!
//! A record names the exact file it describes (inode, size and modification time). A blob
//! replaced by a later write, or changed in any way the file system can see, no longer matches
//! its record and is hashed again, so a stale record can never vouch for other bytes.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::ports::BlobInfo;

/// The identity of one version of a file.
fn identity(meta: &std::fs::Metadata) -> String {
    format!("{}:{}:{}:{}", meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())
}

/// Records `info` for the blob now at `object`, written to a temp name then renamed into
/// `record`. Failing to record only costs a later re-read, so callers may ignore errors.
pub(super) async fn write(object: &Path, record: &Path, info: &BlobInfo) -> io::Result<()> {
    let meta = tokio::fs::metadata(object).await?;
    let text = format!("{} {} {}\n", identity(&meta), info.size_bytes, info.sha256);
    if let Some(parent) = record.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let temp = record.with_extension(format!("{}.tmp", uuid::Uuid::new_v4()));
    tokio::fs::write(&temp, text).await?;
    tokio::fs::rename(&temp, record).await
}

/// The recorded size and SHA-256 of `object`, when a record exists and still describes the
/// file that is there now.
pub(super) async fn read(object: &Path, record: &Path) -> Option<BlobInfo> {
    let text = tokio::fs::read_to_string(record).await.ok()?;
    let meta = tokio::fs::metadata(object).await.ok()?;
    let mut fields = text.split_whitespace();
    let (recorded_identity, size, sha256) = (fields.next()?, fields.next()?, fields.next()?);
    if recorded_identity != identity(&meta) || !meta.is_file() {
        return None;
    }
    let size_bytes: u64 = size.parse().ok()?;
    let valid_sha = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (size_bytes == meta.size() && valid_sha).then(|| BlobInfo { size_bytes, sha256: sha256.to_owned() })
}
