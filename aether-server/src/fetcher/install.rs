//! Putting a verified release into the destination directory.
//!
//! In a pod the destination is the mount point of an `emptyDir` volume: it exists, it is empty,
//! and it cannot be renamed over or replaced (`rename(2)` answers `EBUSY` for a mount point).
//! So the work happens inside it. A private work directory `DIR/.aether-fetch-XXXXXX` holds the
//! download and the unpacked tree (core's unpacker stages that and renames it into place, so
//! it is whole or absent); only once everything was accepted is each top-level entry renamed up
//! into `DIR`. Those renames stay in one directory of one filesystem, so they cannot run out of
//! space or leave a file half-copied; if one fails anyway, the entries already moved are
//! removed again. The app's container starts only after the fetcher exited 0, so it never sees
//! `DIR` filling up. Keeping everything inside `DIR` also means the fetcher needs no writable
//! parent (pods often have a read-only root filesystem), but the volume must hold both the
//! download and the unpacked tree.
//!
//! A `DIR` that does not exist is created (its parent must exist) and removed again on failure.
//! A `DIR` with contents is refused unless `replace` is set: a mistyped `--dest` must never cost
//! anyone their files. The control plane passes `--replace`, because a pod that restarts runs
//! its init containers again over an `emptyDir` that still holds the previous release. Work
//! directories a killed fetcher left behind are removed either way: their names say whose they
//! are.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use aether_core::unpack::{UnpackError, UnpackLimits, UnpackSummary, unpack_tar_gz};
use tempfile::TempDir;

use super::FetchError;

const WORK_PREFIX: &str = ".aether-fetch-";
const DOWNLOAD_NAME: &str = "artifact.tar.gz";
const RELEASE_NAME: &str = "release";

/// A destination being filled; dropping it before [`Install::commit`] succeeded undoes
/// everything it did.
#[derive(Debug)]
pub(super) struct Install {
    dest: PathBuf,
    created_dest: bool,
    work: Option<TempDir>,
    committed: bool,
}

impl Install {
    /// Checks and clears `dest` as the module doc says, and creates the work directory.
    pub(super) fn prepare(dest: &Path, replace: bool) -> Result<Self, FetchError> {
        let created_dest = match fs::metadata(dest) {
            Ok(meta) if meta.is_dir() => false,
            Ok(_) => {
                let source = io::Error::from(io::ErrorKind::NotADirectory);
                return Err(FetchError::local(format!("cannot unpack into {}", dest.display()))(source));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(dest).map_err(FetchError::local(format!("cannot create {}", dest.display())))?;
                true
            }
            Err(source) => return Err(FetchError::local(format!("cannot inspect {}", dest.display()))(source)),
        };
        let mut install = Self { dest: dest.to_path_buf(), created_dest, work: None, committed: false };
        if !created_dest {
            clear(dest, replace)?;
        }
        let work = tempfile::Builder::new()
            .prefix(WORK_PREFIX)
            .tempdir_in(dest)
            .map_err(FetchError::local(format!("cannot create a work directory in {}", dest.display())))?;
        install.work = Some(work);
        Ok(install)
    }

    pub(super) fn download_path(&self) -> PathBuf {
        self.work_dir().join(DOWNLOAD_NAME)
    }

    fn work_dir(&self) -> &Path {
        self.work.as_ref().map_or(&self.dest, TempDir::path)
    }

    /// Unpacks the verified download and moves the release into place.
    pub(super) fn commit(mut self, limits: &UnpackLimits) -> Result<UnpackSummary, FetchError> {
        let download = self.download_path();
        let archive =
            File::open(&download).map_err(FetchError::local(format!("cannot open {}", download.display())))?;
        let release = self.work_dir().join(RELEASE_NAME);
        let summary = unpack_tar_gz(BufReader::new(archive), &release, limits).map_err(unpack_error)?;
        move_entries(&release, &self.dest)?;
        self.committed = true;
        Ok(summary)
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        // The work directory goes in every case: after a commit it only holds the download.
        if let Some(work) = self.work.take()
            && let Err(error) = work.close()
        {
            tracing::warn!(%error, "cannot remove the work directory");
        }
        if !self.committed && self.created_dest {
            let _ = fs::remove_dir(&self.dest);
        }
    }
}

/// Removes what `dest` holds: leftover work directories always, anything else only when
/// `replace` is set (and then nothing is removed unless everything may be).
fn clear(dest: &Path, replace: bool) -> Result<(), FetchError> {
    let listing = || FetchError::local(format!("cannot list {}", dest.display()));
    let mut entries = Vec::new();
    for entry in fs::read_dir(dest).map_err(listing())? {
        let entry = entry.map_err(listing())?;
        let ours = entry.file_name().as_bytes().starts_with(WORK_PREFIX.as_bytes());
        if !ours && !replace {
            return Err(FetchError::DestinationNotEmpty { path: dest.to_path_buf() });
        }
        entries.push(entry.path());
    }
    for path in entries {
        remove(&path).map_err(FetchError::local(format!("cannot remove {}", path.display())))?;
    }
    Ok(())
}

/// Renames every entry of `from` into `dest`, which holds nothing but the work directory; on
/// failure the entries moved so far are removed again.
fn move_entries(from: &Path, dest: &Path) -> Result<(), FetchError> {
    let mut moved = Vec::new();
    let result = (|| -> Result<(), (String, io::Error)> {
        let mut names = fs::read_dir(from)
            .and_then(|entries| {
                entries.map(|entry| entry.map(|e| e.file_name())).collect::<io::Result<Vec<OsString>>>()
            })
            .map_err(|e| (format!("cannot list {}", from.display()), e))?;
        names.sort();
        for name in names {
            let target = dest.join(&name);
            // rename(2) silently replaces a file or an empty directory; the only thing that can
            // be in the way is the work directory, if the archive named an entry after it.
            if fs::symlink_metadata(&target).is_ok() {
                return Err((format!("cannot move into {}", target.display()), io::ErrorKind::AlreadyExists.into()));
            }
            fs::rename(from.join(&name), &target).map_err(|e| (format!("cannot move into {}", target.display()), e))?;
            moved.push(target);
        }
        Ok(())
    })();
    result.map_err(|(context, source)| {
        for path in &moved {
            if let Err(error) = remove(path) {
                tracing::warn!(path = %path.display(), %error, "cannot remove a partly installed entry");
            }
        }
        FetchError::Local { context, source }
    })
}

fn remove(path: &Path) -> io::Result<()> {
    // symlink_metadata: a symlink is removed itself, never what it points to.
    if fs::symlink_metadata(path)?.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) }
}

/// Local trouble (a full disk) is not the archive's fault; everything else the unpacker
/// refuses is.
fn unpack_error(error: UnpackError) -> FetchError {
    match error {
        UnpackError::Io { context, source } => {
            FetchError::Local { context: format!("cannot unpack: {context}"), source }
        }
        other => FetchError::Archive(other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_created_destination_is_removed_again_when_nothing_was_installed() {
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("app");
        let install = Install::prepare(&dest, false).unwrap();
        assert!(install.download_path().starts_with(&dest));
        drop(install);
        assert!(listing(parent.path()).is_empty());
    }

    #[test]
    fn leftover_work_directories_are_removed_but_other_contents_need_replace() {
        let dest = tempfile::tempdir().unwrap();
        fs::create_dir_all(dest.path().join(".aether-fetch-old/release")).unwrap();
        drop(Install::prepare(dest.path(), false).unwrap());
        assert!(listing(dest.path()).is_empty());

        fs::create_dir_all(dest.path().join(".aether-fetch-old")).unwrap();
        fs::write(dest.path().join("server.js"), "previous").unwrap();
        assert!(matches!(Install::prepare(dest.path(), false), Err(FetchError::DestinationNotEmpty { .. })));
        assert_eq!(listing(dest.path()), [".aether-fetch-old", "server.js"], "a refusal removes nothing");
        drop(Install::prepare(dest.path(), true).unwrap());
        assert!(listing(dest.path()).is_empty());
    }

    #[test]
    fn replacing_removes_symlinks_not_their_targets() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "x").unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("link")).unwrap();
        drop(Install::prepare(dest.path(), true).unwrap());
        assert!(listing(dest.path()).is_empty());
        assert_eq!(listing(outside.path()), ["keep"]);
    }

    #[test]
    fn a_failed_move_takes_back_what_it_moved() {
        let dest = tempfile::tempdir().unwrap();
        let from = tempfile::tempdir().unwrap();
        fs::write(from.path().join("a"), "a").unwrap();
        fs::write(from.path().join("b"), "b").unwrap();
        fs::create_dir(dest.path().join("b")).unwrap();
        fs::write(dest.path().join("b/occupied"), "").unwrap();
        assert!(matches!(move_entries(from.path(), dest.path()), Err(FetchError::Local { .. })));
        assert_eq!(listing(dest.path()), ["b"]);
    }
}
