//! Artifact store adapters: a local directory (the embedded default) and S3-compatible object
//! storage, chosen at start through [`AnyArtifactStore`].

mod any;
mod fsio;
pub mod local;
mod multipart;
/// The local store's presigned-URL tokens; the codec lives in `aether-core`, where it is fuzzed.
pub use aether_core::presign;
mod record;
pub mod s3;

pub use any::AnyArtifactStore;
pub use local::{LocalArtifactStore, MAX_KEY_BYTES};
pub use multipart::MAX_PART_NUMBER;
pub use presign::{PresignClaim, PresignError};

use crate::ports::{BlobError, BlobResult};

/// Accepts relative keys of `[A-Za-z0-9._/-]`, at most [`MAX_KEY_BYTES`] long, whose
/// `/`-separated segments are neither empty, `.` nor `..`, so a key can only ever name a file
/// inside a store's directory and means the same thing in a URL.
pub fn validate_key(key: &str) -> BlobResult<()> {
    if key.is_empty() {
        return Err(BlobError::Invalid("object key is empty".to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(BlobError::Invalid(format!("object key is longer than {MAX_KEY_BYTES} bytes")));
    }
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))) {
        return Err(BlobError::Invalid(format!("object key contains {c:?}")));
    }
    if key.starts_with('/') {
        return Err(BlobError::Invalid("object key is absolute".to_owned()));
    }
    if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err(BlobError::Invalid("object key has an empty, '.' or '..' segment".to_owned()));
    }
    Ok(())
}

/// Upload ids name staging areas: only canonical (lowercase, hyphenated) UUIDs are accepted, so
/// an id can never climb out of a store's staging area or alias another upload's.
pub fn validate_upload_id(upload_id: &str) -> BlobResult<()> {
    let canonical = uuid::Uuid::try_parse(upload_id).map(|id| id.to_string()).ok();
    if canonical.as_deref() == Some(upload_id) {
        Ok(())
    } else {
        Err(BlobError::Invalid(format!("malformed upload id {upload_id:?}")))
    }
}
