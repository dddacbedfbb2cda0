//! Artifact store adapters.

mod fsio;
pub mod local;
mod multipart;
pub mod presign;
mod record;

pub use local::{LocalArtifactStore, MAX_KEY_BYTES, PresignedWrite, validate_key};
pub use multipart::MAX_PART_NUMBER;
pub use presign::{PresignClaim, PresignError};
