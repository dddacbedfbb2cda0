//! What the control plane reports: apps, deployments and their events, deploy results, and the
//! progress events `Client.deploy` passes to `on_event`.

use std::collections::BTreeMap;

use aether_core::api::{DeploymentEventResponse, DeploymentResponse};
use aether_sdk::DeployEvent;
use aether_sdk::build::BuildEvent;
use aether_sdk::deploy::DeployReport;
use aether_sdk::status::{AppStatus as SdkAppStatus, AppSummary};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::artifact::PackResult;

/// One deployment of an app: a digest rolled out with an environment.
#[pyclass(frozen, module = "aether")]
#[derive(Debug, Clone)]
pub struct Deployment(pub DeploymentResponse);

#[pymethods]
impl Deployment {
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }
    #[getter]
    fn app(&self) -> &str {
        &self.0.app_name
    }
    #[getter]
    fn digest(&self) -> &str {
        &self.0.digest
    }
    /// `pending`, `deploying`, `running`, `failed`, `superseded`, `rolled_back` or `cancelled`.
    #[getter]
    fn status(&self) -> &'static str {
        self.0.status.as_str()
    }
    /// Where the release answers, once it runs.
    #[getter]
    fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }
    #[getter]
    fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }
    /// RFC 3339.
    #[getter]
    fn created_at(&self) -> &str {
        &self.0.created_at
    }
    #[getter]
    fn updated_at(&self) -> &str {
        &self.0.updated_at
    }
    /// Fingerprint of the release's environment variables (the server never shows them).
    #[getter]
    fn env_sha256(&self) -> Option<&str> {
        self.0.env_sha256.as_deref()
    }
    /// Status changes, oldest first; `None` in lists, which leave them out.
    #[getter]
    fn events(&self) -> Option<Vec<DeploymentEvent>> {
        self.0.events.as_ref().map(|events| events.iter().cloned().map(DeploymentEvent).collect())
    }
    fn __repr__(&self) -> String {
        format!("Deployment(id={:?}, app={:?}, status={:?})", self.0.id, self.0.app_name, self.status())
    }
}

/// A recorded status change of a deployment.
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct DeploymentEvent(DeploymentEventResponse);

#[pymethods]
impl DeploymentEvent {
    /// The status before; `None` for the first event.
    #[getter(from_status)]
    fn previous_status(&self) -> Option<&'static str> {
        self.0.from.map(|s| s.as_str())
    }
    #[getter]
    fn to_status(&self) -> &'static str {
        self.0.to.as_str()
    }
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// RFC 3339.
    #[getter]
    fn at(&self) -> &str {
        &self.0.at
    }
    fn __repr__(&self) -> String {
        format!("DeploymentEvent(from_status={:?}, to_status={:?})", self.previous_status(), self.to_status())
    }
}

/// An app and the deployment that represents it: the running one, else the newest.
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct App(pub AppSummary);

#[pymethods]
impl App {
    #[getter]
    fn name(&self) -> &str {
        &self.0.app.name
    }
    #[getter]
    fn id(&self) -> &str {
        &self.0.app.id
    }
    #[getter]
    fn created_at(&self) -> &str {
        &self.0.app.created_at
    }
    #[getter]
    fn deployment(&self) -> Option<Deployment> {
        self.0.deployment.clone().map(Deployment)
    }
    fn __repr__(&self) -> String {
        format!("App(name={:?})", self.0.app.name)
    }
}

/// An app's running deployment and its newest one (with events); the same one when the newest
/// runs.
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct AppStatus(pub SdkAppStatus);

#[pymethods]
impl AppStatus {
    #[getter]
    fn running(&self) -> Option<Deployment> {
        self.0.running.clone().map(Deployment)
    }
    #[getter]
    fn latest(&self) -> Option<Deployment> {
        self.0.latest.clone().map(Deployment)
    }
    fn __repr__(&self) -> String {
        let id = |d: &Option<DeploymentResponse>| d.as_ref().map(|d| d.id.clone());
        format!("AppStatus(running={:?}, latest={:?})", id(&self.0.running), id(&self.0.latest))
    }
}

/// The outcome of `Client.deploy`. A release that did not start has `status` `failed` and a
/// `failure_reason`; `timed_out` says the wait ended before the rollout did.
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct DeployResult(pub DeployReport);

#[pymethods]
impl DeployResult {
    #[getter]
    fn deployment_id(&self) -> &str {
        &self.0.deployment_id
    }
    #[getter]
    fn app(&self) -> &str {
        self.0.app.as_str()
    }
    /// The deploy created the app.
    #[getter]
    fn app_created(&self) -> bool {
        self.0.app_created
    }
    #[getter]
    fn status(&self) -> &'static str {
        self.0.status.as_str()
    }
    #[getter]
    fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }
    #[getter]
    fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }
    #[getter]
    fn digest(&self) -> &str {
        &self.0.build.digest
    }
    /// Bytes sent: 0 when the server already had the artifact.
    #[getter]
    fn uploaded_bytes(&self) -> u64 {
        self.0.uploaded_bytes
    }
    /// The app already ran this artifact with this environment, so nothing was rolled out.
    #[getter]
    fn unchanged(&self) -> bool {
        self.0.unchanged
    }
    #[getter]
    fn timed_out(&self) -> bool {
        self.0.timed_out
    }
    /// Milliseconds per phase: `install`, `pack`, `describe`, `upload`, `rollout`, `total`.
    #[getter]
    fn durations_ms(&self) -> BTreeMap<&'static str, u64> {
        let d = &self.0.durations_ms;
        BTreeMap::from([
            ("install", d.install),
            ("pack", d.pack),
            ("describe", d.describe),
            ("upload", d.upload),
            ("rollout", d.rollout),
            ("total", d.total),
        ])
    }
    /// What the build wrote, as `pack` reports it.
    #[getter]
    fn build(&self) -> PackResult {
        PackResult(self.0.build.clone())
    }
    fn __repr__(&self) -> String {
        format!("DeployResult(deployment_id={:?}, status={:?})", self.0.deployment_id, self.status())
    }
}

/// A progress event as the dict `on_event` receives; `type` says which.
pub fn event_json(event: &DeployEvent) -> Value {
    match event {
        DeployEvent::Build(BuildEvent::PhaseStarted { phase, detail }) => {
            json!({ "type": "phase_started", "phase": phase, "detail": detail })
        }
        DeployEvent::Build(BuildEvent::PackProgress { files_done, bytes_done }) => {
            json!({ "type": "pack_progress", "files_done": files_done, "bytes_done": bytes_done })
        }
        DeployEvent::Build(BuildEvent::PhaseFinished { phase, duration_ms }) => {
            json!({ "type": "phase_finished", "phase": phase, "duration_ms": duration_ms })
        }
        DeployEvent::UploadStarted { bytes_total } => json!({ "type": "upload_started", "bytes_total": bytes_total }),
        DeployEvent::Upload(progress) => {
            json!({ "type": "upload_progress", "bytes_done": progress.bytes_done, "bytes_total": progress.bytes_total })
        }
        DeployEvent::UploadSkipped => json!({ "type": "upload_skipped" }),
        DeployEvent::DeploymentCreated { id } => json!({ "type": "deployment_created", "id": id }),
        DeployEvent::Status(status) => json!({ "type": "status", "status": status }),
        DeployEvent::Progress(step) => json!({ "type": "progress", "step": step }),
    }
}
