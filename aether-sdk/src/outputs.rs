//! Writing files so that readers see either the old file or the whole new one, never half.

use std::io::Write as _;
use std::path::Path;

use crate::error::Error;

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(Error::io("cannot create a file in", dir))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(Error::io("cannot set permissions of", path))?;
    }
    file.write_all(bytes).map_err(Error::io("cannot write", path))?;
    file.as_file().sync_all().map_err(Error::io("cannot write", path))?;
    file.persist(path).map_err(|e| Error::io("cannot write", path)(e.error))?;
    Ok(())
}
