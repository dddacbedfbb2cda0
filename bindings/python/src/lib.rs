//! The `aether` Python module: a thin adapter over aether-core and aether-sdk, like the CLI.
//! Each class wraps one Rust type; `errors` decides which exception each error becomes.

mod artifact;
mod client;
mod convert;
mod deployment;
mod errors;
mod signing;

use pyo3::prelude::*;

/// Aether for Python build scripts and CI jobs: pack a Node.js service into a deterministic,
/// signed artifact exactly as `aether deploy --pack-only` does, verify signatures and
/// provenance, and deploy through a control plane.
#[pymodule]
mod aether {
    #[pymodule_export]
    use crate::artifact::{Manifest, ManifestEntry, PackResult, digest_file, pack, read_manifest};
    #[pymodule_export]
    use crate::client::Client;
    #[pymodule_export]
    use crate::deployment::{App, AppStatus, DeployResult, Deployment, DeploymentEvent};
    #[pymodule_export]
    use crate::errors::{AetherError, ApiError, ConfigError, IntegrityError, NetworkError, PackError};
    #[pymodule_export]
    use crate::signing::{generate_keypair, sign, verify, verify_provenance};
}
