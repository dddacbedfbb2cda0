//! File-system helpers for the local store: temp files that clean up after themselves, hashed
//! streaming copies and directory syncs.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::ports::BlobInfo;

/// Read size for uploads, copies and hashing: each read is a round trip to tokio's blocking
/// pool, so larger reads go markedly faster.
pub(crate) const BUF_SIZE: usize = 1024 * 1024;

/// A file under the store's `tmp/` that is removed unless it was persisted.
///
/// Removal happens in `Drop` so that a write abandoned half-way (an error, or the request
/// future being dropped when the client disconnects) never leaves bytes behind; the blocking
/// `remove_file` is a single short syscall.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    pub(crate) async fn create(tmp_dir: &Path) -> io::Result<(Self, File)> {
        let path = tmp_dir.join(format!("{}.tmp", uuid::Uuid::new_v4()));
        let file = OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok((Self { path, persisted: false }, file))
    }

    /// Atomically renames the (already synced) file to `dest`, whose parent must exist, and
    /// syncs that directory so the rename survives a crash.
    pub(crate) async fn persist(mut self, dest: &Path) -> io::Result<()> {
        tokio::fs::rename(&self.path, dest).await?;
        self.persisted = true;
        if let Some(parent) = dest.parent() {
            sync_dir(parent).await?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why a hashed copy stopped.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// The source failed (for an upload: the client's body).
    Read(io::Error),
    Write(io::Error),
    /// The source had more than the allowed number of bytes.
    TooLarge,
}

/// Copies `src` to the end of `dst`, returning the byte count and SHA-256 of what was copied.
pub(crate) async fn copy_hashing(
    src: &mut (dyn AsyncRead + Send + Unpin),
    dst: &mut File,
    max_bytes: u64,
) -> Result<BlobInfo, CopyError> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    loop {
        let n = src.read(&mut buf).await.map_err(CopyError::Read)?;
        if n == 0 {
            break;
        }
        total = total.saturating_add(n as u64);
        if total > max_bytes {
            return Err(CopyError::TooLarge);
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).await.map_err(CopyError::Write)?;
    }
    Ok(BlobInfo { size_bytes: total, sha256: hex::encode(hasher.finalize()) })
}

/// Flushes tokio's write-behind buffer and fsyncs, so a later rename publishes complete bytes.
pub(crate) async fn finish(mut file: File) -> io::Result<()> {
    file.flush().await?;
    file.sync_all().await
}

/// Size and SHA-256 of a regular file; `None` when absent or not a regular file (a key that
/// is only a prefix of other keys is a directory, not a blob).
pub(crate) async fn hash_file(path: &Path) -> io::Result<Option<BlobInfo>> {
    let Some(mut file) = open_regular(path).await? else {
        return Ok(None);
    };
    let mut buf = vec![0u8; BUF_SIZE];
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total = total.saturating_add(n as u64);
        hasher.update(&buf[..n]);
    }
    Ok(Some(BlobInfo { size_bytes: total, sha256: hex::encode(hasher.finalize()) }))
}

/// Opens a regular file for reading; `None` when absent or not a regular file.
pub(crate) async fn open_regular(path: &Path) -> io::Result<Option<File>> {
    let file = match File::open(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if file.metadata().await?.is_file() { Ok(Some(file)) } else { Ok(None) }
}

/// Treats "already gone" as success, for idempotent deletes.
pub(crate) fn ignore_not_found(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(unix)]
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).await?.sync_all().await
}

/// Directories cannot be opened for syncing on other platforms; renames there are as durable
/// as the file system makes them.
#[cfg(not(unix))]
pub(crate) async fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
