//! Rows of the metadata store, as the rest of the server sees them.

use aether_core::deployment::DeploymentStatus;
use serde::{Deserialize, Serialize};

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET and HEAD only.
    Reader,
    /// Readers' rights plus creating apps, uploading and deploying.
    Deployer,
    /// Everything, including tokens and keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Deployer => "deployer",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "reader" => Some(Self::Reader),
            "deployer" => Some(Self::Deployer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub id: String,
    /// Lowercase hex SHA-256 of the blob; unique.
    pub digest: String,
    pub size_bytes: i64,
    pub storage_key: String,
    pub signature: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: String,
    pub app_id: String,
    pub public_key_hex: String,
    pub active: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub artifact_id: String,
    pub digest: String,
    pub status: DeploymentStatus,
    pub runtime: String,
    pub url: Option<String>,
    pub failure_reason: Option<String>,
    pub signature: Option<String>,
    pub verified: bool,
    /// Variables the release runs with (besides `PORT`); may hold secrets, so never shown.
    pub env: std::collections::BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentEvent {
    pub deployment_id: String,
    /// `None` for the event that created the deployment.
    pub from_status: Option<DeploymentStatus>,
    pub to_status: DeploymentStatus,
    pub reason: Option<String>,
    pub at_ms: i64,
}

/// A token as stored: only its SHA-256, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub name: Option<String>,
    pub role: Role,
    pub token_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// An upload that was presigned (or started as multipart) and not completed yet. Its bytes
/// go to a staging area private to it, named by `id`, never to the artifact's own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// A UUID: the client names the upload with it, the artifact store its staging area.
    pub id: String,
    pub app_id: String,
    /// What the client declared at the start.
    pub digest: String,
    pub size_bytes: u64,
    /// The artifact store's id of the multipart assembly, for multipart uploads.
    pub multipart_id: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Upload {
    /// The declaration the artifact store checks the staged bytes against.
    pub fn staged(&self) -> crate::ports::StagedUpload<'_> {
        crate::ports::StagedUpload { id: &self.id, size_bytes: self.size_bytes, sha256: &self.digest }
    }
}

/// The outcome of a request made with an `idempotency_key`, remembered so replays get it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Which operation: `complete`, `multipart_complete`, `deployment`.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the request body's meaningful fields; a reuse with other fields is a conflict.
    pub request_hash: String,
    /// Id of the artifact or deployment the first request produced.
    pub resource_id: String,
    pub created_at_ms: i64,
}
