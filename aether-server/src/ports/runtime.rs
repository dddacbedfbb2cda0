//! The runtime port: what runs releases.

use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this runtime does not support {0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    Failed(String),
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatus {
    pub running: bool,
    pub url: Option<String>,
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

/// Rendered log lines as they arrive; ends when the runtime stops publishing them.
pub type LogLines = futures_util::stream::BoxStream<'static, String>;

/// Runs releases. `apply` returns once the release serves (its URL) or failed to start.
pub trait Runtime: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn apply(&self, release: &ReleaseSpec) -> impl Future<Output = Result<Option<String>, RuntimeError>> + Send;
    /// Idempotent: stopping an unknown or already stopped deployment succeeds.
    fn stop(&self, deployment_id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn status(&self, deployment_id: &str) -> impl Future<Output = Result<ReleaseStatus, RuntimeError>> + Send;
    /// The app's recorded log lines that match `query`, oldest first, rendered with
    /// [`LogLine::render`].
    fn logs(&self, app_name: &str, query: &LogQuery) -> impl Future<Output = Result<Vec<String>, RuntimeError>> + Send;
    /// What [`Runtime::logs`] returns for `query`, then every later line of the app that
    /// matches it, with nothing lost or repeated in between.
    fn follow(&self, app_name: &str, query: &LogQuery) -> impl Future<Output = Result<LogLines, RuntimeError>> + Send;
    /// Stops every release this runtime started; called once the server stops serving.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
