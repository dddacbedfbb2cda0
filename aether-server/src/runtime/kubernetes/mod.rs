//! The Kubernetes runtime (`AETHER_RUNTIME=kubernetes`): each app is one `Deployment` and one
//! `Service` in the apps' namespace, applied with server-side apply (field manager `aether`);
//! an init container (the fetcher, `aether-server fetch`) downloads the artifact through a
//! presigned URL, verifies and unpacks it, and the app's container runs `npm start` on it.
//!
//! Workloads outlive the control plane: shutting the server down leaves them running, and a
//! restarted server follows rollouts again ([`Runtime::resume`]) and checks running releases
//! by their pods ([`Runtime::check`]).

mod logs;
pub mod objects;
pub mod settings;
mod status;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::ports::{ArtifactStore, Health, LogLines, LogQuery, ReleaseSpec, Rollout, Runtime, RuntimeError};
use objects::{DEPLOYMENT_LABEL, release_objects, secret_name};
pub use settings::{KubernetesSettings, Strategy};

/// The field manager of every object the control plane applies.
pub const FIELD_MANAGER: &str = "aether";

pub struct KubernetesRuntime<B> {
    client: Client,
    blobs: Arc<B>,
    settings: KubernetesSettings,
    /// Lifetime of the artifact URLs handed to fetchers: at least the rollout timeout.
    url_lifetime: Duration,
}

impl<B> std::fmt::Debug for KubernetesRuntime<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl<B: ArtifactStore> KubernetesRuntime<B> {
    pub fn new(client: Client, blobs: Arc<B>, settings: KubernetesSettings, url_lifetime: Duration) -> Self {
        Self { client, blobs, settings, url_lifetime }
    }

    /// A client from `KUBECONFIG` / `~/.kube/config`, or the in-cluster service account.
    pub async fn connect(
        blobs: Arc<B>,
        settings: KubernetesSettings,
        url_lifetime: Duration,
    ) -> Result<Self, RuntimeError> {
        let client = Client::try_default()
            .await
            .map_err(|e| RuntimeError::transient("cannot configure the Kubernetes client", e))?;
        Ok(Self::new(client, blobs, settings, url_lifetime))
    }

    pub fn settings(&self) -> &KubernetesSettings {
        &self.settings
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// Applies the release's Secret, Deployment and Service, in that order (the pods need the
    /// Secret).
    async fn apply(&self, release: &ReleaseSpec) -> Result<(), RuntimeError> {
        let download = self
            .blobs
            .presign_get(&release.storage_key, self.url_lifetime)
            .await
            .map_err(|e| RuntimeError::transient("cannot presign the artifact's download", e))?;
        let objects = release_objects(release, &download.url, &self.settings);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = release.app_name.as_str();
        self.api::<Secret>()
            .patch(&secret_name(release), &params, &Patch::Apply(&objects.secret))
            .await
            .map_err(|e| kube_error("apply the environment Secret", e))?;
        self.api::<Deployment>()
            .patch(name, &params, &Patch::Apply(&objects.deployment))
            .await
            .map_err(|e| kube_error("apply the Deployment", e))?;
        self.api::<Service>()
            .patch(name, &params, &Patch::Apply(&objects.service))
            .await
            .map_err(|e| kube_error("apply the Service", e))?;
        tracing::info!(app = name, deployment = %release.deployment_id, namespace = %self.settings.namespace, "applied the release");
        Ok(())
    }

    /// The deployment id the app's Deployment currently rolls out, if it exists.
    async fn current_release(&self, app_name: &str) -> Result<Option<String>, RuntimeError> {
        let deployment =
            self.api::<Deployment>().get_opt(app_name).await.map_err(|e| kube_error("read the Deployment", e))?;
        Ok(deployment.and_then(|d| status::template_release(&d)))
    }

    async fn delete<K>(&self, name: &str, what: &str) -> Result<(), RuntimeError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        match self.api::<K>().delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(kube_error(what, error)),
        }
    }
}

impl<B: ArtifactStore> Runtime for KubernetesRuntime<B> {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn start(&self, release: &ReleaseSpec) -> Result<(), RuntimeError> {
        self.apply(release).await
    }

    async fn watch(&self, release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        Ok(watch::rollout(self.client.clone(), &self.settings, release))
    }

    /// The rollout may have gone on without the control plane: it is followed where it is,
    /// and applied first only if it never reached the cluster.
    async fn resume(&self, release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        if self.current_release(&release.app_name).await?.as_deref() != Some(release.deployment_id.as_str()) {
            self.apply(release).await?;
        }
        self.watch(release).await
    }

    /// Serving while a ready pod of this release exists, whatever the Deployment rolls out now.
    async fn check(&self, release: &ReleaseSpec) -> Result<Health, RuntimeError> {
        let selector = format!("{DEPLOYMENT_LABEL}={}", release.deployment_id);
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_error("list the release's pods", e))?;
        if pods.items.iter().any(status::pod_ready) {
            return Ok(Health::Serving { url: Some(self.settings.url(&release.app_name)) });
        }
        Ok(Health::Gone {
            reason: format!(
                "no ready pod of deployment {} in namespace {}",
                release.deployment_id, self.settings.namespace
            ),
        })
    }

    /// A failed or cancelled rollout puts `fallback` back in the Deployment, so the app goes on
    /// serving it; with no fallback the app's objects go. A retired release (superseded, rolled
    /// back) only loses its environment Secret: the Deployment already runs its successor.
    async fn stop(&self, release: &ReleaseSpec, fallback: Option<&ReleaseSpec>) -> Result<(), RuntimeError> {
        let current = self.current_release(&release.app_name).await?;
        if current.as_deref() == Some(release.deployment_id.as_str()) {
            match fallback {
                Some(fallback) => self.apply(fallback).await?,
                None => {
                    self.delete::<Deployment>(&release.app_name, "delete the Deployment").await?;
                    self.delete::<Service>(&release.app_name, "delete the Service").await?;
                }
            }
        }
        self.delete::<Secret>(&secret_name(release), "delete the environment Secret").await
    }

    async fn logs(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        logs::tail(self.api::<Pod>(), app_name, query).await
    }

    async fn follow(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        logs::follow(self.api::<Pod>(), app_name, query).await
    }
}

/// A Kubernetes API failure: conflicts, throttling and server errors may pass; the rest is the
/// request's or the configuration's fault.
fn kube_error(what: &str, error: kube::Error) -> RuntimeError {
    let retryable = match &error {
        kube::Error::Api(status) => status.code == 409 || status.code == 429 || status.code >= 500,
        _ => true,
    };
    let message = format!("cannot {what}: {error}");
    RuntimeError::Failed { message, retryable, source: Some(Box::new(error)) }
}
