//! Runtime adapters: [`local::LocalRuntime`] runs releases as local processes (the embedded
//! default), [`NoRuntime`] refuses to run anything, and tests use the in-memory [`FakeRuntime`].

pub mod local;
pub mod logs;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ports::{LogLine, LogLines, LogQuery, LogStream, ReleaseSpec, ReleaseStatus, Runtime, RuntimeError};
use crate::runtime::logs::LogBook;

/// Refuses to run anything, honestly: deployments fail with a clear reason and logs are 501.
#[derive(Debug, Default)]
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn apply(&self, _release: &ReleaseSpec) -> Result<Option<String>, RuntimeError> {
        Err(RuntimeError::Failed("no runtime is configured on this server".into()))
    }

    async fn stop(&self, _deployment_id: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn status(&self, _deployment_id: &str) -> Result<ReleaseStatus, RuntimeError> {
        Ok(ReleaseStatus { running: false, url: None })
    }

    async fn logs(&self, _app_name: &str, _query: &LogQuery) -> Result<Vec<String>, RuntimeError> {
        Err(RuntimeError::Unsupported("logs"))
    }

    async fn follow(&self, _app_name: &str, _query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Err(RuntimeError::Unsupported("logs"))
    }
}

/// In-memory runtime for tests: releases "run" instantly at a fake URL, unless the digest was
/// marked to fail. Its logs are what tests write with [`FakeRuntime::log`]; an app nobody logged
/// for shows one placeholder line.
#[derive(Debug)]
pub struct FakeRuntime {
    state: Mutex<FakeState>,
    book: LogBook,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self { state: Mutex::default(), book: LogBook::new(10_000) }
    }
}

#[derive(Debug, Default)]
struct FakeState {
    running: HashMap<String, String>,
    failing_digests: Vec<String>,
    applied: Vec<String>,
    stopped: Vec<String>,
}

impl FakeRuntime {
    /// Makes every later release of `digest` fail to start.
    pub fn fail_digest(&self, digest: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.failing_digests.push(digest.to_owned());
        }
    }

    /// Records a line as if a release of `app_name` had printed it at `at_ms`.
    pub fn log(&self, app_name: &str, deployment_id: &str, at_ms: i64, text: &str) {
        let line = LogLine {
            at_ms,
            deployment_id: deployment_id.to_owned(),
            stream: LogStream::Stdout,
            text: text.to_owned(),
        };
        self.book.push(app_name, line);
    }

    /// Deployment ids that were applied and stopped, in order.
    pub fn history(&self) -> (Vec<String>, Vec<String>) {
        self.state.lock().map(|s| (s.applied.clone(), s.stopped.clone())).unwrap_or_default()
    }
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn apply(&self, release: &ReleaseSpec) -> Result<Option<String>, RuntimeError> {
        let mut state = self.state.lock().map_err(|_| RuntimeError::Failed("fake runtime poisoned".into()))?;
        state.applied.push(release.deployment_id.clone());
        if state.failing_digests.contains(&release.digest) {
            return Err(RuntimeError::Failed(format!("release {} exited at start", release.deployment_id)));
        }
        let url = format!("http://fake.invalid/{}", release.deployment_id);
        state.running.insert(release.deployment_id.clone(), url.clone());
        Ok(Some(url))
    }

    async fn stop(&self, deployment_id: &str) -> Result<(), RuntimeError> {
        if let Ok(mut state) = self.state.lock() {
            state.running.remove(deployment_id);
            state.stopped.push(deployment_id.to_owned());
        }
        Ok(())
    }

    async fn status(&self, deployment_id: &str) -> Result<ReleaseStatus, RuntimeError> {
        let url = self.state.lock().ok().and_then(|s| s.running.get(deployment_id).cloned());
        Ok(ReleaseStatus { running: url.is_some(), url })
    }

    async fn logs(&self, app_name: &str, query: &LogQuery) -> Result<Vec<String>, RuntimeError> {
        if !self.book.has_lines(app_name) {
            return Ok(vec![format!("{app_name}: fake runtime log line")].into_iter().take(query.tail).collect());
        }
        Ok(self.book.query(app_name, query))
    }

    async fn follow(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Ok(self.book.follow(app_name, query))
    }
}
