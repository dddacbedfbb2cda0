//! `aether-server render-k8s`: the objects the Kubernetes runtime would apply for a release,
//! as multi-document YAML, without a cluster (for review and GitOps).

use std::collections::BTreeMap;

use aether_core::wire::{AppName, Digest};

use crate::config::ConfigError;
use crate::ports::ReleaseSpec;
use crate::runtime::kubernetes::KubernetesSettings;
use crate::runtime::kubernetes::objects::release_objects;

pub const USAGE: &str =
    "usage: aether-server render-k8s --app NAME --digest SHA256 [--artifact-url URL] [--env KEY=VALUE]...

Prints the Secret, Deployment and Service the Kubernetes runtime applies for a release of the
artifact, shaped by the same AETHER_* settings the server reads (AETHER_DEFAULT_NAMESPACE,
AETHER_K8S_*, AETHER_FETCHER_IMAGE, AETHER_NODE_IMAGE, AETHER_ROLLOUT_TIMEOUT_SECS). The
deployment id is derived from the app and the digest, so the output is reproducible; the
artifact URL defaults to a placeholder (the server presigns a real one per rollout).";

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
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Parses the arguments after `render-k8s`.
pub fn parse_args(args: &[String]) -> Result<RenderRequest, RenderError> {
    let usage = |message: String| RenderError::Usage(message);
    let (mut app, mut digest, mut artifact_url, mut env) = (None, None, None, BTreeMap::new());
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().cloned().ok_or_else(|| usage(format!("{flag} needs a value")));
        match flag.as_str() {
            "--app" => app = Some(AppName::parse(&value()?).map_err(|e| usage(format!("invalid --app: {e}")))?),
            "--digest" => {
                let raw = value()?;
                digest = Some(
                    Digest::parse(raw.trim_start_matches("sha256:"))
                        .map_err(|e| usage(format!("invalid --digest: {e}")))?,
                );
            }
            "--artifact-url" => artifact_url = Some(value()?),
            "--env" => {
                let pair = value()?;
                let (name, val) =
                    pair.split_once('=').ok_or_else(|| usage(format!("--env {pair:?} is not KEY=VALUE")))?;
                env.insert(name.to_owned(), val.to_owned());
            }
            other => return Err(usage(format!("unknown argument {other:?}"))),
        }
    }
    aether_core::api::validate_env(&env).map_err(|e| usage(format!("invalid --env: {e}")))?;
    Ok(RenderRequest {
        app: app.ok_or_else(|| usage("--app is required".into()))?,
        digest: digest.ok_or_else(|| usage("--digest is required".into()))?,
        artifact_url: artifact_url.unwrap_or_else(|| "https://artifacts.invalid/presigned-download-url".to_owned()),
        env,
    })
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
