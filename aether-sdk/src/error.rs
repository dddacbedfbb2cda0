//! One error type for the SDK, classified so frontends can pick exit codes and messages.

use std::path::PathBuf;

/// Broad classes of failure; the CLI maps each to a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something that cannot work (no package.json, bad flag value).
    Usage,
    /// A configuration file, variable or key is wrong.
    Config,
    /// A tool or process Aether ran failed (npm, node).
    Runtime,
    /// Reading or writing local files failed.
    Io,
    /// Talking to the control plane failed.
    Network,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Project(#[from] aether_core::project::ProjectError),
    #[error(transparent)]
    Selection(#[from] aether_core::selection::SelectionError),
    #[error(transparent)]
    Pack(aether_core::pack::PackError),
    #[error("cannot describe the installed packages")]
    Lockfile(#[from] aether_core::lockfile::LockfileError),
    #[error("cannot build the SBOM")]
    Sbom(#[from] aether_core::sbom::SbomError),
    #[error("invalid signing key ({origin})")]
    SigningKey {
        origin: String,
        #[source]
        source: aether_core::signing::KeyError,
    },
    #[error("cannot read signing key file {path}")]
    SigningKeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid {variable}={value:?}: {message}")]
    InvalidVariable { variable: &'static str, value: String, message: String },
    #[error("`{command}` failed ({status}){}", output_excerpt(.stderr_tail))]
    CommandFailed { command: String, status: String, stderr_tail: String },
    #[error("cannot run `{command}`: is it installed and on PATH?")]
    CommandNotFound {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("provenance could not be produced: {reason}")]
    Provenance { reason: String },
    #[error("{context}: {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The control plane answered with an error envelope (or a non-2xx status without one).
    #[error("the server refused the request: {message} ({code}, HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The request never got an answer: connection refused, TLS failure, timeout, bad body.
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 2xx but with something the client cannot use.
    #[error("unexpected answer from {url}: {message}")]
    Protocol { url: String, message: String },
    /// A followed stream ended with the server's `error` event: what it followed broke.
    #[error("the stream from {url} broke: {message}")]
    StreamBroken { url: String, message: String },
    #[error("invalid server URL {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
    /// A bearer token would travel unencrypted to another machine.
    #[error(
        "refusing to send a token over plain HTTP to {url}: use https://, a loopback address, or allow insecure transport explicitly"
    )]
    InsecureTransport { url: String },
    #[error("cannot set up the HTTP client: {message}")]
    ClientSetup { message: String },
    /// The request cannot work as given (e.g. no usable app name).
    #[error("{message}")]
    Usage { message: String },
}

/// The error and its sources on one line ("cannot read X: permission denied"), skipping
/// sources whose text the outer message already contains; how frontends show an error.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

fn output_excerpt(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!("; its error output:\n{stderr}") }
}

impl From<aether_core::pack::PackError> for Error {
    /// A selection error met while packing is reported as the selection error it is.
    fn from(error: aether_core::pack::PackError) -> Self {
        match error {
            aether_core::pack::PackError::Select(error) => Self::Selection(error),
            error => Self::Pack(error),
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        use aether_core::project::ProjectError;
        match self {
            Self::Project(ProjectError::NoPackageJson { .. }) => ErrorKind::Usage,
            Self::Project(ProjectError::InvalidPackageJson { .. }) => ErrorKind::Usage,
            Self::Selection(aether_core::selection::SelectionError::SymlinkEscapes { .. }) => ErrorKind::Usage,
            Self::Selection(aether_core::selection::SelectionError::InvalidIgnoreFile { .. }) => ErrorKind::Usage,
            Self::Usage { .. } => ErrorKind::Usage,
            Self::SigningKey { .. } | Self::SigningKeyFile { .. } => ErrorKind::Config,
            Self::Config { .. } | Self::InvalidVariable { .. } => ErrorKind::Config,
            Self::CommandFailed { .. } | Self::CommandNotFound { .. } | Self::Provenance { .. } => ErrorKind::Runtime,
            Self::Lockfile(_) | Self::Sbom(_) => ErrorKind::Runtime,
            Self::Project(_) | Self::Selection(_) | Self::Pack(_) | Self::Io { .. } => ErrorKind::Io,
            // Credentials the server rejects are the user's configuration to fix; other 4xx
            // answers refuse what was asked; 5xx means the server could not serve it.
            Self::Api { status: 401 | 403, .. } => ErrorKind::Config,
            Self::Api { status: 400..=499, .. } => ErrorKind::Usage,
            Self::Api { .. } | Self::Http { .. } | Self::Protocol { .. } | Self::StreamBroken { .. } => {
                ErrorKind::Network
            }
            Self::InvalidUrl { .. } | Self::InsecureTransport { .. } | Self::ClientSetup { .. } => ErrorKind::Config,
        }
    }

    /// A stable, machine-readable code for JSON output.
    pub fn code(&self) -> &'static str {
        use aether_core::project::ProjectError;
        use aether_core::selection::SelectionError;
        match self {
            Self::Project(ProjectError::NoPackageJson { .. }) => "no_package_json",
            Self::Project(ProjectError::InvalidPackageJson { .. }) => "invalid_package_json",
            Self::Selection(SelectionError::SymlinkEscapes { .. }) => "symlink_escapes_tree",
            Self::Selection(SelectionError::InvalidIgnoreFile { .. }) => "invalid_ignore_file",
            Self::Usage { .. } => "usage",
            Self::SigningKey { .. } | Self::SigningKeyFile { .. } => "invalid_signing_key",
            Self::Config { .. } => "invalid_config",
            Self::InvalidVariable { .. } => "invalid_variable",
            Self::CommandFailed { .. } => "command_failed",
            Self::CommandNotFound { .. } => "command_not_found",
            Self::Provenance { .. } => "provenance_failed",
            Self::Lockfile(_) => "invalid_lockfile",
            Self::Sbom(_) => "sbom_failed",
            Self::Project(_) | Self::Selection(_) | Self::Pack(_) | Self::Io { .. } => "io",
            Self::Api { .. } => "api_error",
            Self::Http { .. } => "network_error",
            Self::Protocol { .. } => "protocol_error",
            Self::StreamBroken { .. } => "stream_broken",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::InsecureTransport { .. } => "insecure_transport",
            Self::ClientSetup { .. } => "client_setup_failed",
        }
    }

    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { context, path, source }
    }
}
