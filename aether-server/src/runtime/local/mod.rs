//! The embedded runtime: each release runs as local processes on this machine.
//!
//! A release is fetched from the artifact store, re-verified, unpacked into
//! `<releases_dir>/<app>/<deployment id>/` and started with `npm start`, `PORT` set to a free
//! loopback port. It counts as started once that port accepts connections; the previous
//! release of the app keeps serving until then, and is stopped by the deployer afterwards.
//! Output is kept in memory only (see [`crate::runtime::logs`]).

mod fetch;
mod groups;
mod process;

pub use groups::MARKER;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::ports::{
    ArtifactStore, Health, LogLines, LogQuery, ReleaseSpec, Rollout, RolloutProgress, Runtime, RuntimeError,
};
use crate::runtime::logs::LogBook;
use groups::GroupRecords;
use process::{Launch, NotListening, ReleaseProcess};

/// Lines of output quoted in the reason of a release that failed to start.
const LAST_OUTPUT_LINES: usize = 5;

#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    /// Where releases are unpacked: `<data dir>/releases`.
    pub releases_dir: PathBuf,
    /// Where the process groups of running releases are recorded: `<data dir>/release-groups`.
    pub groups_dir: PathBuf,
    /// How long a release may take to accept connections on its port (`AETHER_HEALTH_TIMEOUT_MS`).
    pub health_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a release is stopped.
    pub stop_grace: Duration,
    /// Log lines kept per app, across its releases.
    pub log_lines_per_app: usize,
}

impl LocalRuntimeConfig {
    pub fn new(data_dir: &Path, health_timeout: Duration) -> Self {
        Self {
            releases_dir: data_dir.join("releases"),
            groups_dir: data_dir.join("release-groups"),
            health_timeout,
            stop_grace: Duration::from_secs(5),
            log_lines_per_app: 10_000,
        }
    }
}

#[derive(Debug)]
struct Release {
    app_name: String,
    dir: PathBuf,
    port: u16,
    process: ReleaseProcess,
}

impl Release {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A release between `apply` and serving. `stop` only marks it; `apply` then tears it down, so
/// a release superseded while it starts never lingers.
#[derive(Debug, Default)]
struct Starting {
    port: Option<u16>,
    cancelled: bool,
}

#[derive(Debug, Default)]
struct Releases {
    running: HashMap<String, Release>,
    starting: HashMap<String, Starting>,
    closed: bool,
}

impl Releases {
    fn ports_in_use(&self) -> HashSet<u16> {
        self.running.values().map(|r| r.port).chain(self.starting.values().filter_map(|s| s.port)).collect()
    }
}

/// Reports of a rollout started by [`Runtime::start`], until [`Runtime::watch`] takes them.
type Reports = mpsc::UnboundedReceiver<RolloutProgress>;

#[derive(Debug)]
pub struct LocalRuntime<B> {
    blobs: Arc<B>,
    config: LocalRuntimeConfig,
    book: Arc<LogBook>,
    releases: Arc<Mutex<Releases>>,
    rollouts: Arc<Mutex<HashMap<String, Reports>>>,
    records: GroupRecords,
}

// A handle: clones share every release, so a rollout can run on its own task.
impl<B> Clone for LocalRuntime<B> {
    fn clone(&self) -> Self {
        Self {
            blobs: Arc::clone(&self.blobs),
            config: self.config.clone(),
            book: Arc::clone(&self.book),
            releases: Arc::clone(&self.releases),
            rollouts: Arc::clone(&self.rollouts),
            records: self.records.clone(),
        }
    }
}

fn lock(releases: &Mutex<Releases>) -> MutexGuard<'_, Releases> {
    releases.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_rollouts(rollouts: &Mutex<HashMap<String, Reports>>) -> MutexGuard<'_, HashMap<String, Reports>> {
    rollouts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a deployment from `starting` however `apply` ends, including when it is dropped.
struct StartingGuard<'a> {
    releases: &'a Mutex<Releases>,
    deployment_id: &'a str,
}

impl Drop for StartingGuard<'_> {
    fn drop(&mut self) {
        lock(self.releases).starting.remove(self.deployment_id);
    }
}

impl<B: ArtifactStore> LocalRuntime<B> {
    /// Processes an earlier run left behind (it was killed without stopping them) are ended
    /// and its release directories removed: nothing of this runtime runs yet, and whatever
    /// should run again is fetched anew when the control plane checks its running releases and
    /// resumes its rollouts at start. Blocks while orphans stop (at most `stop_grace` + 2 s).
    pub fn new(blobs: Arc<B>, config: LocalRuntimeConfig) -> std::io::Result<Self> {
        let records = GroupRecords::new(config.groups_dir.clone())?;
        let ended = records.end_orphans(config.stop_grace);
        if ended > 0 {
            tracing::info!(groups = ended, "ended the releases a previous server left running");
        }
        match std::fs::remove_dir_all(&config.releases_dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        std::fs::create_dir_all(&config.releases_dir)?;
        let book = Arc::new(LogBook::new(config.log_lines_per_app));
        Ok(Self { blobs, config, book, releases: Arc::default(), rollouts: Arc::default(), records })
    }

    fn release_dir(&self, release: &ReleaseSpec) -> Result<PathBuf, RuntimeError> {
        let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
        if !plain(&release.app_name) || !plain(&release.deployment_id) {
            return Err(RuntimeError::failed(format!(
                "invalid release {:?} of app {:?}",
                release.deployment_id, release.app_name
            )));
        }
        Ok(self.config.releases_dir.join(&release.app_name).join(&release.deployment_id))
    }

    /// Registers the deployment as starting; returns its URL instead if it already runs.
    fn begin(&self, deployment_id: &str) -> Result<Option<String>, RuntimeError> {
        let mut releases = lock(&self.releases);
        if releases.closed {
            return Err(RuntimeError::failed("the runtime is shutting down"));
        }
        if let Some(running) = releases.running.get(deployment_id).filter(|r| r.process.exited().is_none()) {
            return Ok(Some(running.url()));
        }
        if releases.starting.contains_key(deployment_id) {
            return Err(RuntimeError::failed(format!("release {deployment_id} is already starting")));
        }
        releases.starting.insert(deployment_id.to_owned(), Starting::default());
        Ok(None)
    }

    fn cancelled(&self, deployment_id: &str) -> bool {
        lock(&self.releases).starting.get(deployment_id).is_none_or(|s| s.cancelled)
    }

    /// `preferred` when it is free, else any free loopback port; either way reserved for the
    /// deployment until it stops.
    fn reserve_port(&self, deployment_id: &str, preferred: Option<u16>) -> Result<u16, RuntimeError> {
        let mut releases = lock(&self.releases);
        let taken = releases.ports_in_use();
        let bindable = |port: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).and_then(|l| l.local_addr());
        let preferred = preferred.filter(|p| *p != 0 && !taken.contains(p) && bindable(*p).is_ok());
        let port = match preferred {
            Some(port) => port,
            None => (0..16)
                .filter_map(|_| bindable(0).ok().map(|a| a.port()))
                .find(|p| !taken.contains(p))
                .ok_or_else(|| RuntimeError::failed("no free port on 127.0.0.1"))?,
        };
        if let Some(starting) = releases.starting.get_mut(deployment_id) {
            starting.port = Some(port);
        }
        Ok(port)
    }

    /// Starts the unpacked release and waits until it listens; on failure nothing is left running.
    async fn launch(
        &self,
        release: &ReleaseSpec,
        dir: &Path,
        port: u16,
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<ReleaseProcess, RuntimeError> {
        let launch = Launch {
            app_name: release.app_name.clone(),
            deployment_id: release.deployment_id.clone(),
            port,
            env: release.env.clone(),
            book: Arc::clone(&self.book),
            records: self.records.clone(),
        };
        report("starting");
        let mut process = process::spawn(dir, &launch)
            .map_err(|e| RuntimeError::failed(format!("cannot run npm start: {e} (is npm on the server's PATH?)")))?;
        report("waiting for readiness");
        let outcome = process.wait_listening(port, self.config.health_timeout).await;
        let Err(failure) = outcome else { return Ok(process) };
        process.terminate(Duration::ZERO).await;
        let query =
            LogQuery { tail: LAST_OUTPUT_LINES, since_ms: None, deployment_id: Some(release.deployment_id.clone()) };
        let last: Vec<String> = self.book.lines(&release.app_name, &query).into_iter().map(|l| l.text).collect();
        let output =
            if last.is_empty() { "no output".to_owned() } else { format!("last output: {}", last.join(" | ")) };
        let reason = match failure {
            NotListening::Exited(how) => format!("release exited with {how} before listening on port {port}; {output}"),
            NotListening::TimedOut => format!(
                "release did not listen on port {port} within {}; {output}",
                seconds(self.config.health_timeout)
            ),
        };
        Err(RuntimeError::failed(reason))
    }

    /// Warns when a serving release exits without being asked to.
    fn watch_exit(&self, deployment_id: &str, app_name: &str, process: &ReleaseProcess) {
        let mut exit = process.exit_watch();
        let releases = Arc::clone(&self.releases);
        let (deployment_id, app_name) = (deployment_id.to_owned(), app_name.to_owned());
        tokio::spawn(async move {
            let Ok(how) = exit.wait_for(Option::is_some).await.map(|how| how.clone()) else { return };
            if lock(&releases).running.contains_key(&deployment_id) {
                let how = how.unwrap_or_default();
                tracing::warn!(app = %app_name, deployment = %deployment_id, exit = %how, "a running release exited on its own");
            }
        });
    }

    async fn retire(&self, mut release: Release) {
        release.process.terminate(self.config.stop_grace).await;
        if let Err(error) = tokio::fs::remove_dir_all(&release.dir).await {
            tracing::warn!(dir = %release.dir.display(), %error, "cannot remove a stopped release");
        }
    }
}

fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

impl<B: ArtifactStore> LocalRuntime<B> {
    /// Fetches, verifies, unpacks and starts the release, reporting each step; returns its URL
    /// once it listens.
    async fn roll_out(&self, release: &ReleaseSpec, report: &(dyn Fn(&str) + Sync)) -> Result<String, RuntimeError> {
        let dir = self.release_dir(release)?;
        if let Some(url) = self.begin(&release.deployment_id)? {
            return Ok(url);
        }
        let _guard = StartingGuard { releases: &self.releases, deployment_id: &release.deployment_id };
        let stale = lock(&self.releases).running.remove(&release.deployment_id);
        if let Some(stale) = stale {
            self.retire(stale).await;
        }
        report("pulling artifact");
        fetch::prepare(self.blobs.as_ref(), release, &dir).await?;
        let started = async {
            let port = self.reserve_port(&release.deployment_id, release.port)?;
            if self.cancelled(&release.deployment_id) {
                return Err(RuntimeError::failed("release was stopped while it started"));
            }
            self.launch(release, &dir, port, report).await.map(|process| (port, process))
        };
        let (port, process) = match started.await {
            Ok(started) => started,
            Err(error) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(error);
            }
        };
        let running = Release { app_name: release.app_name.clone(), dir, port, process };
        let url = running.url();
        self.watch_exit(&release.deployment_id, &release.app_name, &running.process);
        let refused = {
            let mut releases = lock(&self.releases);
            if releases.starting.get(&release.deployment_id).is_none_or(|s| s.cancelled) {
                Some(running)
            } else {
                releases.running.insert(release.deployment_id.clone(), running);
                None
            }
        };
        if let Some(refused) = refused {
            self.retire(refused).await;
            return Err(RuntimeError::failed("release was stopped while it started"));
        }
        tracing::info!(app = %release.app_name, deployment = %release.deployment_id, %url, "release is serving");
        Ok(url)
    }

    /// Stops a release by id (idempotent), or cancels it while it starts.
    async fn stop_release(&self, deployment_id: &str) {
        let release = {
            let mut releases = lock(&self.releases);
            if let Some(starting) = releases.starting.get_mut(deployment_id) {
                starting.cancelled = true;
            }
            releases.running.remove(deployment_id)
        };
        if let Some(release) = release {
            tracing::info!(app = %release.app_name, deployment = %deployment_id, "stopping release");
            self.retire(release).await;
        }
    }

    fn serving_url(&self, deployment_id: &str) -> Option<String> {
        let releases = lock(&self.releases);
        releases.running.get(deployment_id).filter(|r| r.process.exited().is_none()).map(Release::url)
    }
}

impl<B: ArtifactStore> Runtime for LocalRuntime<B> {
    fn name(&self) -> &'static str {
        "local"
    }

    /// The rollout runs on its own task; its reports wait for [`Runtime::watch`].
    async fn start(&self, release: &ReleaseSpec) -> Result<(), RuntimeError> {
        let (sender, reports) = mpsc::unbounded_channel();
        lock_rollouts(&self.rollouts).insert(release.deployment_id.clone(), reports);
        let (runtime, release) = (self.clone(), release.clone());
        tokio::spawn(async move {
            let report = |step: &str| {
                let _ = sender.send(RolloutProgress::Step(step.to_owned()));
            };
            let end = match runtime.roll_out(&release, &report).await {
                Ok(url) => RolloutProgress::Ready { url: Some(url) },
                Err(error) => RolloutProgress::Failed { reason: error.to_string() },
            };
            let _ = sender.send(end);
        });
        Ok(())
    }

    async fn watch(&self, release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        if let Some(reports) = lock_rollouts(&self.rollouts).remove(&release.deployment_id) {
            let stream = futures_util::stream::unfold(reports, |mut reports| async move {
                reports.recv().await.map(|report| (report, reports))
            });
            return Ok(stream.boxed());
        }
        // Nothing started here is rolling out: either it already serves, or it never ran on
        // this server (whose releases end with it).
        let end = match self.serving_url(&release.deployment_id) {
            Some(url) => RolloutProgress::Ready { url: Some(url) },
            None => RolloutProgress::Failed {
                reason: format!("release {} is not rolling out on this server", release.deployment_id),
            },
        };
        Ok(futures_util::stream::iter([end]).boxed())
    }

    /// Local releases end with the server: a release recorded as running is started again, on
    /// the port of its recorded URL when that port is free.
    async fn check(&self, release: &ReleaseSpec) -> Result<Health, RuntimeError> {
        match self.roll_out(release, &|_| {}).await {
            Ok(url) => Ok(Health::Serving { url: Some(url) }),
            Err(error) => Ok(Health::Gone { reason: format!("could not be restored after a restart: {error}") }),
        }
    }

    async fn stop(&self, release: &ReleaseSpec, _fallback: Option<&ReleaseSpec>) -> Result<(), RuntimeError> {
        // The app's previous release is a process of its own, still serving: nothing to restore.
        self.stop_release(&release.deployment_id).await;
        Ok(())
    }

    async fn logs(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Ok(futures_util::stream::iter(self.book.lines(app_name, query).into_iter().map(Ok)).boxed())
    }

    async fn follow(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Ok(self.book.follow(app_name, query).map(Ok).boxed())
    }

    /// Refuses new releases, cancels those starting, and stops every running one concurrently.
    async fn shutdown(&self) {
        let running: Vec<Release> = {
            let mut releases = lock(&self.releases);
            releases.closed = true;
            releases.starting.values_mut().for_each(|s| s.cancelled = true);
            releases.running.drain().map(|(_, release)| release).collect()
        };
        tracing::info!(releases = running.len(), "stopping every release");
        futures_util::future::join_all(running.into_iter().map(|release| self.retire(release))).await;
    }
}
