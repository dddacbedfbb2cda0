//! The whole deploy as one call: build (detect, install, pack, describe, sign) -> upload ->
//! create the deployment -> follow it until it runs, fails or the wait times out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aether_core::api::{AppResponse, CreateDeploymentRequest};
use aether_core::deployment::DeploymentStatus;
use aether_core::digest::sha256_hex;
use aether_core::wire::{AppName, Digest};
use serde::Serialize;

use crate::build::{BuildEvent, BuildOptions, BuildReport, Phase, build};
use crate::client::Client;
use crate::error::Error;
use crate::upload::{UploadProgress, UploadRequest, upload_artifact};

/// How long to wait for a rollout when the caller has no opinion.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the deployment's status is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct DeployOptions {
    pub build: BuildOptions,
    /// `None`: the package.json name, normalised to a DNS-1123 label.
    pub app: Option<AppName>,
    /// Follow the rollout until it ends (or `timeout` passes); `false` returns once created.
    pub wait: bool,
    pub timeout: Duration,
    /// Roll the artifact out again even when it is what already runs.
    pub force: bool,
    /// Environment variables the release runs with (checked with
    /// [`aether_core::api::validate_env`] before anything is built).
    pub env: BTreeMap<String, String>,
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
}

impl DeployOptions {
    /// Waits up to [`DEFAULT_WAIT_TIMEOUT`], default multipart settings.
    pub fn new(build: BuildOptions) -> Self {
        Self {
            build,
            app: None,
            wait: true,
            timeout: DEFAULT_WAIT_TIMEOUT,
            force: false,
            env: BTreeMap::new(),
            multipart_threshold_bytes: crate::upload::DEFAULT_MULTIPART_THRESHOLD_BYTES,
            part_size_bytes: crate::upload::DEFAULT_PART_SIZE_BYTES,
        }
    }
}

/// Progress, for frontends to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployEvent {
    Build(BuildEvent),
    UploadStarted {
        bytes_total: u64,
    },
    Upload(UploadProgress),
    /// The server already stores the digest: nothing is sent.
    UploadSkipped,
    DeploymentCreated {
        id: String,
    },
    Status(DeploymentStatus),
    /// What the runtime reported while rolling out (`pulling artifact`, `waiting for
    /// readiness`, `CrashLoopBackOff: ...`), as recorded in the deployment's events.
    Progress(String),
}

/// Wall time of each phase of a deploy, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhaseDurations {
    pub install: u64,
    pub pack: u64,
    pub describe: u64,
    pub upload: u64,
    pub rollout: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub build: BuildReport,
    pub app: AppName,
    pub app_created: bool,
    pub deployment_id: String,
    pub status: DeploymentStatus,
    pub url: Option<String>,
    pub failure_reason: Option<String>,
    pub uploaded_bytes: u64,
    /// The artifact was already running, so no new deployment was made.
    pub unchanged: bool,
    /// The wait ended before the rollout did.
    pub timed_out: bool,
    pub durations_ms: PhaseDurations,
}

/// Builds the project and deploys it through `client`, reporting progress through `events`.
pub async fn deploy(
    client: &Client,
    options: DeployOptions,
    mut events: impl FnMut(DeployEvent) + Send,
) -> Result<DeployReport, Error> {
    let started = Instant::now();
    if options.build.dry_run {
        return Err(Error::Usage { message: "a dry run builds nothing to deploy".into() });
    }
    aether_core::api::validate_env(&options.env).map_err(|message| Error::Usage { message })?;
    // A directory that is not a Node project is a usage error wherever the server is.
    crate::build::detect(&options.build.project_dir)?;
    // Then ask the server: a wrong token or an unreachable server should fail in
    // milliseconds, not after the install and pack.
    let existing_apps = client.list_apps().await?;
    let build_report = run_build(options.build, &mut events).await?;
    let app = match options.app {
        Some(app) => app,
        None => AppName::normalise(&build_report.project.name).map_err(|e| Error::Usage {
            message: format!(
                "package.json name {:?} cannot name an app ({e}); pass an app name",
                build_report.project.name
            ),
        })?,
    };
    let app_created = ensure_app(client, &app, &existing_apps).await?;
    let digest = Digest::parse(&build_report.digest).map_err(|e| Error::Protocol {
        url: String::new(),
        message: format!("the build produced a bad digest: {e}"),
    })?;
    let signature = read_signature(&build_report)?;

    let upload_started = Instant::now();
    let artifact =
        build_report.artifact.clone().ok_or_else(|| Error::Usage { message: "no artifact was written".into() })?;
    let mut request = UploadRequest::new(app.clone(), artifact, digest.clone(), build_report.size_bytes);
    request.signature = signature.clone();
    request.multipart_threshold_bytes = options.multipart_threshold_bytes;
    request.part_size_bytes = options.part_size_bytes;
    request.idempotency_key = Some(idempotency_key("upload", &app, &digest));
    events(DeployEvent::UploadStarted { bytes_total: build_report.size_bytes });
    let uploaded = upload_artifact(client, &request, |p| events(DeployEvent::Upload(p))).await?;
    if uploaded.skipped {
        events(DeployEvent::UploadSkipped);
    }
    let upload_ms = elapsed_ms(upload_started);

    let rollout_started = Instant::now();
    let env_sha256 = aether_core::api::env_sha256(&options.env);
    let running = if options.force { None } else { running_same(client, &app, &digest, env_sha256.as_deref()).await? };
    let unchanged = running.is_some();
    let mut deployment = match running {
        Some(deployment) => deployment,
        None => {
            let create = CreateDeploymentRequest {
                app_name: app.clone(),
                digest: digest.clone(),
                runtime: None,
                signature,
                idempotency_key: Some(idempotency_key("deploy", &app, &digest)),
                env: options.env.clone(),
            };
            client.create_deployment(&create).await?
        }
    };
    events(DeployEvent::DeploymentCreated { id: deployment.id.clone() });
    let mut timed_out = false;
    if !options.wait || unchanged {
        events(DeployEvent::Status(deployment.status));
    } else {
        let outcome = wait_for_rollout(client, &deployment.id, options.timeout, &mut events).await?;
        timed_out = outcome.timed_out;
        deployment = outcome.deployment;
    }
    let durations_ms = PhaseDurations {
        install: phase_ms(&build_report, &[Phase::Install]),
        pack: phase_ms(&build_report, &[Phase::Detect, Phase::Pack]),
        describe: phase_ms(&build_report, &[Phase::Describe, Phase::Write]),
        upload: upload_ms,
        rollout: elapsed_ms(rollout_started),
        total: elapsed_ms(started),
    };
    Ok(DeployReport {
        build: build_report,
        app,
        app_created,
        deployment_id: deployment.id,
        status: deployment.status,
        url: deployment.url,
        failure_reason: deployment.failure_reason,
        uploaded_bytes: uploaded.uploaded_bytes,
        unchanged,
        timed_out,
        durations_ms,
    })
}

/// Where a wait for a deployment ended.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    pub deployment: aether_core::api::DeploymentResponse,
    pub timed_out: bool,
}

/// Reads the deployment until it leaves `pending`/`deploying` or `timeout` passes, reporting
/// each status change. Used after a deploy and after a rollback.
pub async fn wait_for_rollout(
    client: &Client,
    id: &str,
    timeout: Duration,
    events: &mut (impl FnMut(DeployEvent) + Send),
) -> Result<WaitOutcome, Error> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut seen) = (None, 0);
    loop {
        let deployment = client.get_deployment(id).await?;
        if last != Some(deployment.status) {
            last = Some(deployment.status);
            events(DeployEvent::Status(deployment.status));
        }
        let recorded = deployment.events.as_deref().unwrap_or_default();
        for event in recorded.iter().skip(seen) {
            let progress = event.from == Some(DeploymentStatus::Deploying) && event.to == DeploymentStatus::Deploying;
            if let Some(step) = event.reason.as_ref().filter(|_| progress) {
                events(DeployEvent::Progress(step.clone()));
            }
        }
        seen = seen.max(recorded.len());
        let settled = !matches!(deployment.status, DeploymentStatus::Pending | DeploymentStatus::Deploying);
        if settled || Instant::now() >= deadline {
            return Ok(WaitOutcome { timed_out: !settled, deployment });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Runs the synchronous, CPU-bound build on a blocking thread, passing its events on.
async fn run_build(options: BuildOptions, events: &mut (impl FnMut(DeployEvent) + Send)) -> Result<BuildReport, Error> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::task::spawn_blocking(move || build(&options, &mut |event| drop(sender.send(event))));
    while let Some(event) = receiver.recv().await {
        events(DeployEvent::Build(event));
    }
    task.await.map_err(|e| Error::Usage { message: format!("the build stopped unexpectedly: {e}") })?
}

/// Creates the app unless it exists; true when it was created. A token that may not create
/// apps still deploys to existing ones.
async fn ensure_app(client: &Client, app: &AppName, existing: &[AppResponse]) -> Result<bool, Error> {
    if existing.iter().any(|a| a.name == app.as_str()) {
        return Ok(false);
    }
    match client.create_app(app).await {
        Ok(_) => Ok(true),
        // Created concurrently by someone else: just as good.
        Err(Error::Api { status: 409, .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The app's running deployment when it runs exactly this artifact with exactly this
/// environment (compared by fingerprint: the server never shows the values).
async fn running_same(
    client: &Client,
    app: &AppName,
    digest: &Digest,
    env_sha256: Option<&str>,
) -> Result<Option<aether_core::api::DeploymentResponse>, Error> {
    let deployments = client.app_deployments(app).await?;
    Ok(deployments.into_iter().find(|d| {
        d.status == DeploymentStatus::Running && d.digest == digest.as_str() && d.env_sha256.as_deref() == env_sha256
    }))
}

fn read_signature(report: &BuildReport) -> Result<Option<String>, Error> {
    let Some(path) = &report.signature else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(Error::io("cannot read the signature", path))?;
    Ok(Some(text.trim().to_owned()))
}

/// Unique per deploy attempt, so a retried request after a lost answer is recognised by the
/// server instead of acting twice.
fn idempotency_key(scope: &str, app: &AppName, digest: &Digest) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let seed = format!("{scope}\n{app}\n{digest}\n{now}\n{}", std::process::id());
    format!("{scope}-{}", &sha256_hex(seed.as_bytes())[..32])
}

fn phase_ms(report: &BuildReport, phases: &[Phase]) -> u64 {
    phases.iter().filter_map(|p| report.durations_ms.get(p)).sum()
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
