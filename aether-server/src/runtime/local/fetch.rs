//! From the artifact store to a release directory that is safe to start: the bytes are
//! re-hashed on the way in, the signature re-checked, and the archive unpacked by core's
//! hostile-input unpacker. Nothing runs unless all of that passed.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use aether_core::digest::HashingReader;
use aether_core::project::{DEFAULT_START_COMMAND, detect};
use aether_core::signing::verify_digest_any;
use aether_core::unpack::{UnpackLimits, unpack_tar_gz};
use tokio_util::io::SyncIoBridge;

use crate::ports::{ArtifactStore, ReleaseSpec, RuntimeError};

/// Fetches, verifies and unpacks `release` into `dest` (which appears whole or not at all).
pub(super) async fn prepare<B: ArtifactStore>(
    blobs: &B,
    release: &ReleaseSpec,
    dest: &Path,
) -> Result<(), RuntimeError> {
    check_signature(release).map_err(RuntimeError::failed)?;
    let reader = blobs
        .open(&release.storage_key)
        .await
        .map_err(|e| RuntimeError::failed(format!("cannot fetch artifact {}: {e}", release.digest)))?;
    let bridge = SyncIoBridge::new(reader);
    let (release, dest) = (release.clone(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || unpack_verified(bridge, &release, &dest))
        .await
        .map_err(|e| RuntimeError::failed(format!("preparing the release failed: {e}")))?
        .map_err(RuntimeError::failed)
}

/// Only signatures the control plane verified are passed in; checking them again here means a
/// key revoked since then, or a tampered record, stops the release.
fn check_signature(release: &ReleaseSpec) -> Result<(), String> {
    let Some(signature) = release.signature.as_deref().filter(|_| !release.public_keys.is_empty()) else {
        return Ok(());
    };
    if verify_digest_any(release.public_keys.iter().map(String::as_str), &release.digest, signature).is_ok() {
        return Ok(());
    }
    Err(format!(
        "the artifact's signature does not verify against any active key of app {}; refusing to run it",
        release.app_name
    ))
}

/// Removes the downloaded archive however preparing ends.
struct Download(PathBuf);

impl Drop for Download {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unpack_verified(reader: impl io::Read, release: &ReleaseSpec, dest: &Path) -> Result<(), String> {
    let parent = dest.parent().ok_or_else(|| format!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let download = Download(parent.join(format!(".{}.tar.gz.partial", release.deployment_id)));
    let mut file = File::create(&download.0).map_err(|e| format!("cannot create {}: {e}", download.0.display()))?;
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut file).map_err(|e| format!("cannot fetch artifact {}: {e}", release.digest))?;
    drop(file);
    let (actual, _size) = hashing.finish();
    if actual != release.digest {
        return Err(format!(
            "the stored artifact hashes to {actual}, not the deployed digest {}; refusing to run it",
            release.digest
        ));
    }
    // A directory left by a server that was killed holds a release nobody runs any more.
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| format!("cannot remove the stale {}: {e}", dest.display()))?;
    }
    let archive = File::open(&download.0).map_err(|e| format!("cannot reopen the artifact: {e}"))?;
    unpack_tar_gz(BufReader::new(archive), dest, &UnpackLimits::default())
        .map_err(|e| format!("cannot unpack the artifact: {e}"))?;
    if let Err(reason) = check_start(dest) {
        let _ = std::fs::remove_dir_all(dest);
        return Err(reason);
    }
    Ok(())
}

/// Refuses early, with a reason a user can act on, what `npm start` could only fail at.
fn check_start(dir: &Path) -> Result<(), String> {
    let project = detect(dir).map_err(|e| format!("cannot start the release: {e}"))?;
    if project.start_command == DEFAULT_START_COMMAND && !dir.join("server.js").is_file() {
        return Err("cannot start the release: package.json has no scripts.start and there is no server.js".into());
    }
    Ok(())
}
