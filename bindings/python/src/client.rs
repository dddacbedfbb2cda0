//! `aether.Client`: the control plane from Python. Requests run on a tokio runtime the client
//! owns while the calling thread waits without the GIL, waking up regularly to pass progress
//! events to `on_event` and to let Ctrl-C (`KeyboardInterrupt`) stop the wait.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use aether_core::wire::AppName;
use aether_sdk::client::{Client as SdkClient, LogsQuery};
use aether_sdk::config::Paths;
use aether_sdk::connect::{Overrides, client_config};
use aether_sdk::deploy::{DeployOptions, wait_for_rollout};
use aether_sdk::{DeployEvent, settings};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::deployment::{App, AppStatus, DeployResult, Deployment, event_json};
use crate::errors::{self, AetherError};

/// How long a waiting call goes without checking for Ctrl-C.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

type EventSink = Box<dyn FnMut(DeployEvent) + Send>;

/// What a request running on the runtime tells the waiting thread.
enum Message<T> {
    Event(DeployEvent),
    Done(Result<T, aether_sdk::Error>),
}

/// A connection to the control plane. Settings left out are found as the `aether` CLI finds
/// them: `AETHER_API_BASE` / `AETHER_TOKEN`, the session `aether login` saved (its token only
/// for its own server), `api_base` in config.toml, then `http://127.0.0.1:8080`.
/// `insecure=True` (or `AETHER_INSECURE=1`) allows a token over plain HTTP to a host that is not
/// loopback. Calls block without holding the GIL; Ctrl-C interrupts them.
///
/// >>> client = aether.Client("http://127.0.0.1:8080", token="...")  # doctest: +SKIP
/// >>> result = client.deploy("examples/sample-node", on_event=print)  # doctest: +SKIP
/// >>> result.status, result.url  # doctest: +SKIP
/// ('running', 'http://127.0.0.1:41234')
#[pyclass(frozen, module = "aether")]
#[derive(Debug)]
pub struct Client {
    inner: SdkClient,
    /// Always `Some` until dropped; shut down without waiting for abandoned work.
    runtime: Option<Runtime>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (api_base=None, token=None, *, insecure=false))]
    fn new(py: Python<'_>, api_base: Option<String>, token: Option<String>, insecure: bool) -> PyResult<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let overrides = Overrides { api_base, token, insecure };
        let config = client_config(&overrides, env, &Paths::from_env(env)).map_err(|e| errors::sdk_error(py, &e))?;
        let inner = SdkClient::new(config).map_err(|e| errors::sdk_error(py, &e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aether-client")
            .enable_all()
            .build()?;
        Ok(Self { inner, runtime: Some(runtime) })
    }

    /// The control plane's URL.
    #[getter]
    fn api_base(&self) -> &str {
        self.inner.base_url()
    }

    /// Builds the project at `path` (as `aether.pack` with its defaults), uploads it unless the
    /// server has the digest, and rolls it out to `app` (default: the package.json name as a
    /// DNS label), creating the app if needed. `env` is the release's whole environment. With
    /// `wait`, follows the rollout until it runs or fails, for at most `timeout` seconds;
    /// `force` rolls out even when the app already runs this artifact. `on_event` is called
    /// (with the GIL held) with a dict per progress event: its `type` is `phase_started`,
    /// `pack_progress`, `phase_finished`, `upload_started`, `upload_progress`,
    /// `upload_skipped`, `deployment_created` or `status`. A release that fails to start is
    /// not an exception: the result's `status` is `failed`, with a `failure_reason`.
    #[pyo3(signature = (path, app=None, *, env=None, wait=true, timeout=300.0, force=false, on_event=None))]
    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &self,
        py: Python<'_>,
        path: PathBuf,
        app: Option<String>,
        env: Option<BTreeMap<String, String>>,
        wait: bool,
        timeout: f64,
        force: bool,
        on_event: Option<Bound<'_, PyAny>>,
    ) -> PyResult<DeployResult> {
        let lookup = |name: &str| std::env::var(name).ok();
        let sdk_error = |e: aether_sdk::Error| errors::sdk_error(py, &e);
        let mut options =
            DeployOptions::new(settings::build_options(path, lookup, &Paths::from_env(lookup)).map_err(sdk_error)?);
        settings::apply_upload_settings(&mut options, lookup).map_err(sdk_error)?;
        options.app = app.as_deref().map(app_name).transpose()?;
        options.env = env.unwrap_or_default();
        options.wait = wait;
        options.timeout = seconds(timeout)?;
        options.force = force;
        let client = self.inner.clone();
        let report = self.run(py, on_event.as_ref(), move |events| async move {
            aether_sdk::deploy(&client, options, events).await
        })?;
        Ok(DeployResult(report))
    }

    /// Every app, each with its running deployment (else its newest), like `aether list`.
    fn list_apps(&self, py: Python<'_>) -> PyResult<Vec<App>> {
        let client = self.inner.clone();
        let apps = self.run(py, None, move |_| async move { aether_sdk::status::apps(&client).await })?;
        Ok(apps.into_iter().map(App).collect())
    }

    /// The app's deployments, newest first.
    fn deployments(&self, py: Python<'_>, app: String) -> PyResult<Vec<Deployment>> {
        let (client, app) = (self.inner.clone(), app_name(&app)?);
        let deployments = self.run(py, None, move |_| async move { client.app_deployments(&app).await })?;
        Ok(deployments.into_iter().map(Deployment).collect())
    }

    /// The app's running deployment and its newest one, with its events, like `aether status`.
    fn status(&self, py: Python<'_>, app: String) -> PyResult<AppStatus> {
        let (client, app) = (self.inner.clone(), app_name(&app)?);
        let status = self.run(py, None, move |_| async move { aether_sdk::status::app_status(&client, &app).await })?;
        Ok(AppStatus(status))
    }

    /// The app's most recent `tail` log lines (at most 10000), oldest first, as
    /// `"<time> <deployment> <stream>: <text>"`; only `deployment`'s lines when given.
    #[pyo3(signature = (app, tail=100, *, deployment=None))]
    fn logs(&self, py: Python<'_>, app: String, tail: usize, deployment: Option<String>) -> PyResult<Vec<String>> {
        let (client, app) = (self.inner.clone(), app_name(&app)?);
        let query = LogsQuery { tail: Some(tail), since_ms: None, deployment };
        self.run(py, None, move |_| async move { client.app_logs(&app, &query).await })
    }

    /// Rolls the app back to the release before the current one, or to deployment `to`, and
    /// (with `wait`) follows it for at most `timeout` seconds. Returns the new deployment as it
    /// last read it.
    #[pyo3(signature = (app, to=None, *, wait=true, timeout=300.0))]
    fn rollback(
        &self,
        py: Python<'_>,
        app: String,
        to: Option<String>,
        wait: bool,
        timeout: f64,
    ) -> PyResult<Deployment> {
        let (client, app, timeout) = (self.inner.clone(), app_name(&app)?, seconds(timeout)?);
        let deployment = self.run(py, None, move |mut events| async move {
            let deployment = client.rollback(&app, to.as_deref()).await?;
            if !wait {
                return Ok(deployment);
            }
            Ok(wait_for_rollout(&client, &deployment.id, timeout, &mut events).await?.deployment)
        })?;
        Ok(Deployment(deployment))
    }

    fn __repr__(&self) -> String {
        format!("Client(api_base={:?})", self.inner.base_url())
    }
}

impl Client {
    /// Runs the future `work` makes on the runtime and waits for it without the GIL, passing
    /// the events it reports to `on_event`. Ctrl-C or an exception raised by `on_event` stops
    /// the wait and abandons the work (a build already running finishes in the background).
    fn run<T, F>(
        &self,
        py: Python<'_>,
        on_event: Option<&Bound<'_, PyAny>>,
        work: impl FnOnce(EventSink) -> F,
    ) -> PyResult<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, aether_sdk::Error>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or_else(|| AetherError::new_err("the client is closed"))?;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let events = sender.clone();
        let future = work(Box::new(move |event| drop(events.send(Message::Event(event)))));
        let task = runtime.spawn(async move { drop(sender.send(Message::Done(future.await))) });
        let _abandon = AbortOnDrop(task.abort_handle());
        loop {
            py.check_signals()?;
            // The timer is made inside the runtime, which drives it.
            let wait = async { tokio::time::timeout(SIGNAL_CHECK_INTERVAL, receiver.recv()).await };
            let received = py.detach(|| runtime.block_on(wait));
            match received {
                Err(_elapsed) => {}
                Ok(Some(Message::Event(event))) => {
                    if let Some(callback) = on_event {
                        callback.call1((crate::convert::json_to_py(py, &event_json(&event))?,))?;
                    }
                }
                Ok(Some(Message::Done(result))) => return result.map_err(|e| errors::sdk_error(py, &e)),
                Ok(None) => return Err(AetherError::new_err("the request stopped unexpectedly")),
            }
        }
    }
}

/// Aborts the task when the wait ends early; a no-op once it has finished.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn app_name(raw: &str) -> PyResult<AppName> {
    AppName::parse(raw).map_err(|e| PyValueError::new_err(format!("invalid app name {raw:?}: {e}")))
}

fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("timeout must be a non-negative number of seconds, not {value}")))
}
