//! Request and response bodies of the control-plane API, shared by the SDK and the server so
//! both always agree on field names. Field names are the API's contract; do not rename.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::deployment::DeploymentStatus;
use crate::wire::{AppName, Digest};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "web"})))]
pub struct CreateAppRequest {
    pub name: AppName,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::AppName))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Timestamp))]
    pub created_at: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPublicKeyRequest {
    /// The 32-byte Ed25519 public key, hex; it must be a point of the curve.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub public_key_hex: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub app_id: String,
    pub public_key_hex: String,
    pub active: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Digest))]
    pub digest: String,
    pub size_bytes: u64,
    pub storage_key: String,
    pub signed: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Timestamp))]
    pub created_at: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactPage {
    pub items: Vec<ArtifactResponse>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Reply to the legacy direct upload, `POST /artifacts`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyUploadResponse {
    pub artifact_url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Digest))]
    pub digest: String,
    pub duplicate: bool,
    pub app_linked: bool,
    pub verified: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({
        "app_name": "web",
        "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "size_bytes": 4_194_304
    }))
)]
pub struct PresignRequest {
    pub app_name: AppName,
    pub digest: Digest,
    #[serde(deserialize_with = "crate::wire::integer::u64")]
    pub size_bytes: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignResponse {
    /// Empty when `method` is `NONE`.
    pub upload_url: String,
    /// Where the artifact will live once the upload is completed and verified; the upload
    /// itself writes to a staging area private to it.
    pub storage_key: String,
    /// Names the upload when completing it; absent when `method` is `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::wire::Id>))]
    pub upload_id: Option<String>,
    /// `PUT`, or `NONE` when the digest is already stored and nothing needs uploading.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::UploadMethod))]
    pub method: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub app_name: AppName,
    pub digest: Digest,
    #[serde(deserialize_with = "crate::wire::integer::u64")]
    pub size_bytes: u64,
    /// The `storage_key` presign returned; it must be the digest's.
    #[cfg_attr(feature = "openapi", schema(pattern = "^artifacts/sha256/[0-9a-f]{64}\\.tar\\.gz$"))]
    pub storage_key: Option<String>,
    /// The `upload_id` presign returned. Without it the app's newest upload of the digest is
    /// completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::wire::Id>))]
    pub upload_id: Option<String>,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub artifact_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Digest))]
    pub digest: String,
    /// The digest was stored already (by this app or another); nothing new was written.
    pub duplicate: bool,
    /// The `signature` verified against an active public key of the app. The bytes' size and
    /// SHA-256 are always verified: a mismatch is refused (`digest_mismatch`), never stored.
    pub verified: bool,
    pub storage_key: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::CompleteStatus))]
    pub status: String,
    pub idempotency_key: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipartInitRequest {
    pub app_name: AppName,
    pub digest: Digest,
    #[serde(deserialize_with = "crate::wire::integer::u64")]
    pub size_bytes: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartInitResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub upload_id: String,
    pub storage_key: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignPartRequest {
    pub app_name: AppName,
    pub digest: Digest,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub upload_id: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    #[serde(deserialize_with = "crate::wire::integer::u32")]
    pub part_number: u32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignPartResponse {
    pub url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::PartMethod))]
    pub method: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    #[serde(deserialize_with = "crate::wire::integer::u32")]
    pub part_number: u32,
    pub etag: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipartCompleteRequest {
    pub app_name: AppName,
    pub digest: Digest,
    #[serde(deserialize_with = "crate::wire::integer::u64")]
    pub size_bytes: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub upload_id: String,
    /// Every part, by ascending part number.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10000))]
    pub parts: Vec<CompletedPart>,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({
        "app_name": "web",
        "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "idempotency_key": "deploy-2026-12-07-1",
        "env": {"NODE_ENV": "production"}
    }))
)]
pub struct CreateDeploymentRequest {
    pub app_name: AppName,
    pub digest: Digest,
    /// The runtime to run on; it must be the server's (the document lists it).
    pub runtime: Option<String>,
    pub signature: Option<String>,
    /// Replaying a request with the same key answers the deployment it created.
    pub idempotency_key: Option<String>,
    /// Environment variables the release runs with; see [`validate_env`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = env_schema))]
    pub env: BTreeMap<String, String>,
}

/// The schema of a deployment's environment: exactly what [`validate_env`] accepts.
#[cfg(feature = "openapi")]
fn env_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let name = ObjectBuilder::new().schema_type(Type::String).pattern(Some(ENV_NAME_PATTERN));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_ENV_VALUE_CHARS))
        .pattern(Some("^[^\\x00]*$"));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(name))
        .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
        .max_properties(Some(MAX_ENV_VARS))
        .description(Some("Variable names as in a shell, not `PORT` (the runtime sets it)."))
        .build()
}

/// What [`validate_env`] accepts as a name: a shell variable name of at most 256 characters
/// other than `PORT`.
pub const ENV_NAME_PATTERN: &str = "^(?!PORT$)[A-Za-z_][A-Za-z0-9_]{0,255}$";

/// Most variables one deployment may set.
pub const MAX_ENV_VARS: usize = 256;
/// Longest value of one variable, in characters (Unicode scalar values, as JSON Schema counts).
pub const MAX_ENV_VALUE_CHARS: usize = 32 * 1024;

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
        if value.chars().count() > MAX_ENV_VALUE_CHARS || value.contains('\0') {
            return Err(format!(
                "the value of {name} is longer than {MAX_ENV_VALUE_CHARS} characters or holds a NUL byte"
            ));
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentEventResponse {
    pub from: Option<DeploymentStatus>,
    pub to: DeploymentStatus,
    pub reason: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Timestamp))]
    pub at: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::AppName))]
    pub app_name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Digest))]
    pub digest: String,
    pub status: DeploymentStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Timestamp))]
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Timestamp))]
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({})))]
pub struct RollbackRequest {
    /// The deployment whose release to run again; by default the one before the current one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::wire::Id>))]
    pub to: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"role": "deployer", "name": "ci", "ttl_secs": 86400})))]
pub struct CreateTokenRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^(admin|deployer|reader)$"))]
    pub role: String,
    pub name: Option<String>,
    /// Lifetime; without it the token lasts until revoked.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 31_536_000))]
    #[serde(default, deserialize_with = "crate::wire::integer::option_u64")]
    pub ttl_secs: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTokenResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::Id))]
    pub id: String,
    /// The secret, shown this once; only its hash is stored.
    pub token: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::wire::RoleName))]
    pub role: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::wire::Timestamp>))]
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
        assert!(validate_env(&env(&[("A", &"x".repeat(MAX_ENV_VALUE_CHARS + 1))])).is_err());
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
