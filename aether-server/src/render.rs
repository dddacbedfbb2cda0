//! `aether-server render-k8s`: the objects the Kubernetes runtime would apply for a release,
//! as multi-document YAML, without a cluster (for review and GitOps).

use std::collections::BTreeMap;

use aether_core::wire::{AppName, Digest};

use crate::config::ConfigError;
use crate::ports::ReleaseSpec;
use crate::runtime::kubernetes::KubernetesSettings;
use crate::runtime::kubernetes::objects::release_objects;

/// What was asked for on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderRequest {
    pub app: AppName,
    pub digest: Digest,
    pub artifact_url: String,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

impl RenderRequest {
    /// Checks what was given on the command line.
    pub fn parse(app: &str, digest: &str, artifact_url: Option<String>, env: &[String]) -> Result<Self, RenderError> {
        let usage = RenderError::Usage;
        let app = AppName::parse(app).map_err(|e| usage(format!("invalid --app: {e}")))?;
        let digest =
            Digest::parse(digest.trim_start_matches("sha256:")).map_err(|e| usage(format!("invalid --digest: {e}")))?;
        let mut pairs = BTreeMap::new();
        for pair in env {
            let (name, value) =
                pair.split_once('=').ok_or_else(|| usage(format!("--env {pair:?} is not KEY=VALUE")))?;
            pairs.insert(name.to_owned(), value.to_owned());
        }
        aether_core::api::validate_env(&pairs).map_err(|e| usage(format!("invalid --env: {e}")))?;
        let artifact_url =
            artifact_url.unwrap_or_else(|| "https://artifacts.invalid/presigned-download-url".to_owned());
        Ok(Self { app, digest, artifact_url, env: pairs })
    }
}

/// The objects as YAML documents, in the order they are applied.
pub fn render(request: &RenderRequest, settings: &KubernetesSettings) -> Result<String, RenderError> {
    let seed = format!("{}\n{}", request.app, request.digest);
    let release = ReleaseSpec {
        deployment_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes()).to_string(),
        app_name: request.app.as_str().to_owned(),
        digest: request.digest.as_str().to_owned(),
        storage_key: crate::service::storage_key(request.digest.as_str()),
        signature: None,
        public_keys: Vec::new(),
        port: None,
        env: request.env.clone(),
    };
    let objects = release_objects(&release, &request.artifact_url, settings);
    let documents = [
        serde_yaml::to_string(&objects.secret)?,
        serde_yaml::to_string(&objects.deployment)?,
        serde_yaml::to_string(&objects.service)?,
    ];
    Ok(documents.iter().map(|doc| format!("---\n{doc}")).collect())
}
