//! The runtime port: what runs releases.
//!
//! A rollout is started and then followed: [`Runtime::start`] hands the release to the runtime
//! (spawns processes, applies objects) and returns, [`Runtime::watch`] reports how it goes as
//! [`RolloutProgress`] until it is ready or failed. Runtimes whose workloads outlive the control
//! plane (Kubernetes) are followed again after a restart ([`Runtime::resume`]) and checked
//! ([`Runtime::check`]) rather than started anew.

use std::future::Future;

use futures_util::stream::BoxStream;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this runtime does not support {0}")]
    Unsupported(&'static str),
    #[error("{message}")]
    Failed {
        message: String,
        /// Whether trying again later can help (the runtime's API was unreachable, a conflict),
        /// as opposed to a failure of the release itself.
        retryable: bool,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl RuntimeError {
    /// A failure that repeating the same request will not change.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), retryable: false, source: None }
    }

    /// A failure of the runtime's machinery that a later attempt may not meet.
    pub fn transient(message: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Failed { message: message.into(), retryable: true, source: Some(source.into()) }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed { retryable: true, .. })
    }
}

/// One report of a rollout in progress. A rollout reports any number of steps, then exactly
/// one `Ready` or `Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutProgress {
    /// What is happening now: `pulling artifact`, `verifying`, `starting`, `waiting for
    /// readiness`, `ImagePullBackOff: ...`, `CrashLoopBackOff: <last lines>`...
    Step(String),
    /// The release serves, at this URL when the runtime gives it one.
    Ready {
        url: Option<String>,
    },
    Failed {
        reason: String,
    },
}

/// The reports of one rollout, as they happen.
pub type Rollout = BoxStream<'static, RolloutProgress>;

/// What a runtime found of a release recorded as running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Serving {
        url: Option<String>,
    },
    /// The release is not there (or no longer the app's): recorded as failed with `reason`.
    Gone {
        reason: String,
    },
}

/// What a runtime is asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSpec {
    pub deployment_id: String,
    pub app_name: String,
    /// Lowercase hex SHA-256 of the artifact blob; the runtime re-verifies the bytes it fetches.
    pub digest: String,
    pub storage_key: String,
    /// Hex Ed25519 signature over `digest`, passed only when the control plane verified it when
    /// the deployment was created; the runtime checks it again against `public_keys`.
    pub signature: Option<String>,
    /// Hex public keys of the app's active signing keys.
    pub public_keys: Vec<String>,
    /// The port the release should listen on if it is free: a restored release keeps its URL.
    pub port: Option<u16>,
    /// Variables the release runs with, besides the ones the runtime sets itself (`PORT`).
    pub env: std::collections::BTreeMap<String, String>,
}

/// Which output of a release a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One line a release wrote, stamped when the runtime read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at_ms: i64,
    pub deployment_id: String,
    pub stream: LogStream,
    pub text: String,
}

impl LogLine {
    /// `<RFC 3339 UTC, ms> <first 8 chars of the deployment id> <stdout|stderr>: <text>`, the
    /// form the logs route serves.
    pub fn render(&self) -> String {
        let short: String = self.deployment_id.chars().take(8).collect();
        format!("{} {short} {}: {}", aether_core::api::rfc3339_ms(self.at_ms), self.stream.as_str(), self.text)
    }
}

/// Which of an app's log lines to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many lines, the newest ones.
    pub tail: usize,
    /// Only lines stamped at or after this Unix millisecond.
    pub since_ms: Option<i64>,
    /// Only lines of this deployment.
    pub deployment_id: Option<String>,
}

impl LogQuery {
    pub fn matches(&self, line: &LogLine) -> bool {
        self.since_ms.is_none_or(|since| line.at_ms >= since)
            && self.deployment_id.as_deref().is_none_or(|id| line.deployment_id == id)
    }
}

/// An app's log lines: a finite tail, or a follower's endless stream. A line that cannot be
/// read (a pod's log stream broke) ends the stream with an error rather than silently.
pub type LogLines = BoxStream<'static, Result<LogLine, RuntimeError>>;

/// Runs releases.
pub trait Runtime: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Starts rolling `release` out and returns without waiting for it to serve.
    fn start(&self, release: &ReleaseSpec) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Follows a started rollout: steps as they happen, then `Ready` or `Failed`.
    fn watch(&self, release: &ReleaseSpec) -> impl Future<Output = Result<Rollout, RuntimeError>> + Send;
    /// After a control-plane restart, follows a rollout recorded as deploying. Runtimes whose
    /// rollouts end with the control plane start it again; others watch what is there.
    fn resume(&self, release: &ReleaseSpec) -> impl Future<Output = Result<Rollout, RuntimeError>> + Send {
        async move {
            self.start(release).await?;
            self.watch(release).await
        }
    }
    /// After a control-plane restart, for a release recorded as running: whether it still serves
    /// (restoring it first where releases end with the control plane) or is gone.
    fn check(&self, release: &ReleaseSpec) -> impl Future<Output = Result<Health, RuntimeError>> + Send;
    /// Stops `release`. Idempotent. When the release was the one the app was being switched to
    /// (a failed or cancelled rollout) and `fallback` is given, the app goes on serving
    /// `fallback`, which is still its running release.
    fn stop(
        &self,
        release: &ReleaseSpec,
        fallback: Option<&ReleaseSpec>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// The app's log lines that match `query`, oldest first; the stream ends after them.
    fn logs(&self, app_name: &str, query: &LogQuery) -> impl Future<Output = Result<LogLines, RuntimeError>> + Send;
    /// What [`Runtime::logs`] returns for `query`, then every later line of the app that
    /// matches it, with nothing lost or repeated in between.
    fn follow(&self, app_name: &str, query: &LogQuery) -> impl Future<Output = Result<LogLines, RuntimeError>> + Send;
    /// Called once the server stops serving: local releases stop with it; workloads of a
    /// cluster keep running.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
