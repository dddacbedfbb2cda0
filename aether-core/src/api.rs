//! Request and response bodies of the control-plane API, shared by the SDK and the server so
//! both always agree on field names. Field names are the API's contract; do not rename.

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
    pub storage_key: String,
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
