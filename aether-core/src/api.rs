//! Request and response bodies of the control-plane API, shared by the SDK and the server so
//! both always agree on field names. Field names are the API's contract; do not rename.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::deployment::DeploymentStatus;
use crate::wire::{AppName, Digest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    pub name: AppName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppResponse {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPublicKeyRequest {
    pub public_key_hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    pub app_id: String,
    pub public_key_hex: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactResponse {
    pub id: String,
    pub digest: String,
    pub size_bytes: u64,
    pub storage_key: String,
    pub signed: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactPage {
    pub items: Vec<ArtifactResponse>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Reply to the legacy direct upload, `POST /artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyUploadResponse {
    pub artifact_url: String,
    pub digest: String,
    pub duplicate: bool,
    pub app_linked: bool,
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    pub app_name: AppName,
    pub digest: Digest,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignResponse {
    /// Empty when `method` is `NONE`.
    pub upload_url: String,
    /// Where the artifact will live once the upload is completed and verified; the upload
    /// itself writes to a staging area private to it.
    pub storage_key: String,
    /// Names the upload when completing it; absent when `method` is `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// `PUT`, or `NONE` when the digest is already stored and nothing needs uploading.
    pub method: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub app_name: AppName,
    pub digest: Digest,
    pub size_bytes: u64,
    pub storage_key: Option<String>,
    /// The `upload_id` presign returned. Without it the app's newest upload of the digest is
    /// completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    pub artifact_id: String,
    pub digest: String,
    pub duplicate: bool,
    pub verified: bool,
    pub storage_key: String,
    pub status: String,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipartInitRequest {
    pub app_name: AppName,
    pub digest: Digest,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartInitResponse {
    pub upload_id: String,
    pub storage_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignPartRequest {
    pub app_name: AppName,
    pub digest: Digest,
    pub upload_id: String,
    pub part_number: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignPartResponse {
    pub url: String,
    pub method: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipartCompleteRequest {
    pub app_name: AppName,
    pub digest: Digest,
    pub size_bytes: u64,
    pub upload_id: String,
    pub parts: Vec<CompletedPart>,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentRequest {
    pub app_name: AppName,
    pub digest: Digest,
    pub runtime: Option<String>,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
    /// Environment variables the release runs with; see [`validate_env`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Most variables one deployment may set.
pub const MAX_ENV_VARS: usize = 256;
/// Longest value of one variable, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// Checks a deployment's environment: names like shell variables (`[A-Za-z_][A-Za-z0-9_]*`),
/// no NUL bytes, bounded sizes, and not `PORT`, which the runtime assigns.
pub fn validate_env(env: &BTreeMap<String, String>) -> Result<(), String> {
    if env.len() > MAX_ENV_VARS {
        return Err(format!("at most {MAX_ENV_VARS} environment variables, got {}", env.len()));
    }
    for (name, value) in env {
        let mut bytes = name.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.len() > 256 {
            return Err(format!("{name:?} is not a valid environment variable name"));
        }
        if name == "PORT" {
            return Err("PORT is set by the runtime and cannot be overridden".to_owned());
        }
        if value.len() > MAX_ENV_VALUE_BYTES || value.contains('\0') {
            return Err(format!("the value of {name} is longer than {MAX_ENV_VALUE_BYTES} bytes or holds a NUL byte"));
        }
    }
    Ok(())
}

/// A fingerprint of an environment, so clients can tell whether a deployment runs with the
/// same variables without the server showing their values; `None` for an empty one.
pub fn env_sha256(env: &BTreeMap<String, String>) -> Option<String> {
    if env.is_empty() {
        return None;
    }
    let canonical = serde_json::to_vec(env).unwrap_or_default();
    Some(crate::digest::sha256_hex(&canonical))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentEventResponse {
    pub from: Option<DeploymentStatus>,
    pub to: DeploymentStatus,
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentResponse {
    pub id: String,
    pub app_name: String,
    pub digest: String,
    pub status: DeploymentStatus,
    pub created_at: String,
    pub updated_at: String,
    pub url: Option<String>,
    pub failure_reason: Option<String>,
    /// [`env_sha256`] of the deployment's environment; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_sha256: Option<String>,
    /// Present on `GET /deployments/{id}`; absent in lists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub events: Option<Vec<DeploymentEventResponse>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub role: String,
    pub name: Option<String>,
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTokenResponse {
    pub id: String,
    /// The secret, shown this once; only its hash is stored.
    pub token: String,
    pub role: String,
    pub expires_at: Option<String>,
}

/// RFC 3339 UTC with millisecond precision, from Unix milliseconds.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    crate::timestamp::rfc3339_millis(unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn environments_are_validated() {
        assert_eq!(
            validate_env(&env(&[("APP_VERSION", "2"), ("_x1", ""), ("DATABASE_URL", "postgres://h/db")])),
            Ok(())
        );
        for bad in ["", "1ABC", "A-B", "A B", "ÄB", "PORT"] {
            assert!(validate_env(&env(&[(bad, "v")])).is_err(), "{bad:?}");
        }
        assert!(validate_env(&env(&[("A", "nul\0byte")])).is_err());
        assert!(validate_env(&env(&[("A", &"x".repeat(MAX_ENV_VALUE_BYTES + 1))])).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_ENV_VARS).map(|i| (format!("V{i}"), String::new())).collect();
        assert!(validate_env(&many).is_err());
    }

    #[test]
    fn fingerprints_depend_on_every_name_and_value_only() {
        assert_eq!(env_sha256(&BTreeMap::new()), None);
        let a = env_sha256(&env(&[("A", "1"), ("B", "2")]));
        assert_eq!(a, env_sha256(&env(&[("B", "2"), ("A", "1")])));
        assert_ne!(a, env_sha256(&env(&[("A", "1"), ("B", "3")])));
        assert_ne!(a, env_sha256(&env(&[("A", "1")])));
    }
}
