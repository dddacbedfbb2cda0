//! Runtime adapters: [`local::LocalRuntime`] runs releases as local processes (the embedded
//! default), [`NoRuntime`] refuses to run anything, and tests use the in-memory [`FakeRuntime`].

mod any;
pub mod kubernetes;
pub mod local;
pub mod logs;

pub use any::AnyRuntime;

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::StreamExt as _;

use crate::ports::{
    Health, LogLine, LogLines, LogQuery, LogStream, ReleaseSpec, Rollout, RolloutProgress, Runtime, RuntimeError,
};
use crate::runtime::logs::LogBook;

/// Refuses to run anything, honestly: deployments fail with a clear reason and logs are 501.
#[derive(Debug, Default)]
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn start(&self, _release: &ReleaseSpec) -> Result<(), RuntimeError> {
        Err(RuntimeError::failed("no runtime is configured on this server (AETHER_RUNTIME=none)"))
    }

    async fn watch(&self, _release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        Err(RuntimeError::Unsupported("rollouts"))
    }

    async fn check(&self, _release: &ReleaseSpec) -> Result<Health, RuntimeError> {
        Err(RuntimeError::Unsupported("checking releases"))
    }

    async fn stop(&self, _release: &ReleaseSpec, _fallback: Option<&ReleaseSpec>) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn logs(&self, _app_name: &str, _query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Err(RuntimeError::Unsupported("logs"))
    }

    async fn follow(&self, _app_name: &str, _query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Err(RuntimeError::Unsupported("logs"))
    }
}

/// In-memory runtime for tests: releases "run" at once at a fake URL, unless the digest was
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

    /// Deployment ids that were started and stopped, in order.
    pub fn history(&self) -> (Vec<String>, Vec<String>) {
        self.state.lock().map(|s| (s.applied.clone(), s.stopped.clone())).unwrap_or_default()
    }
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn start(&self, release: &ReleaseSpec) -> Result<(), RuntimeError> {
        let mut state = self.state.lock().map_err(|_| RuntimeError::failed("fake runtime poisoned"))?;
        state.applied.push(release.deployment_id.clone());
        if !state.failing_digests.contains(&release.digest) {
            let url = format!("http://fake.invalid/{}", release.deployment_id);
            state.running.insert(release.deployment_id.clone(), url);
        }
        Ok(())
    }

    async fn watch(&self, release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        let url = self.state.lock().ok().and_then(|s| s.running.get(&release.deployment_id).cloned());
        let end = match url {
            Some(url) => RolloutProgress::Ready { url: Some(url) },
            None => RolloutProgress::Failed { reason: format!("release {} exited at start", release.deployment_id) },
        };
        Ok(futures_util::stream::iter([RolloutProgress::Step("starting".to_owned()), end]).boxed())
    }

    async fn check(&self, release: &ReleaseSpec) -> Result<Health, RuntimeError> {
        let url = self.state.lock().ok().and_then(|s| s.running.get(&release.deployment_id).cloned());
        Ok(match url {
            Some(url) => Health::Serving { url: Some(url) },
            None => Health::Gone { reason: "the fake runtime does not run it".to_owned() },
        })
    }

    async fn stop(&self, release: &ReleaseSpec, _fallback: Option<&ReleaseSpec>) -> Result<(), RuntimeError> {
        if let Ok(mut state) = self.state.lock() {
            state.running.remove(&release.deployment_id);
            state.stopped.push(release.deployment_id.clone());
        }
        Ok(())
    }

    async fn logs(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        if !self.book.has_lines(app_name) {
            let placeholder = LogLine {
                at_ms: 0,
                deployment_id: String::new(),
                stream: LogStream::Stdout,
                text: format!("{app_name}: fake runtime log line"),
            };
            let lines: Vec<_> = std::iter::once(Ok(placeholder)).take(query.tail).collect();
            return Ok(futures_util::stream::iter(lines).boxed());
        }
        Ok(futures_util::stream::iter(self.book.lines(app_name, query).into_iter().map(Ok)).boxed())
    }

    async fn follow(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        Ok(self.book.follow(app_name, query).map(Ok).boxed())
    }
}
