//! Exit codes and the error shape every command reports.

use std::process::ExitCode;

use aether_sdk::ErrorKind;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Usage = 2,
    Config = 10,
    Runtime = 20,
    Io = 30,
    Network = 40,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// An error as the user sees it: an exit code, a stable code string and a message, plus
/// structured details for JSON output (e.g. the failed deployment and its last log lines).
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub code: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl CliError {
    pub fn new(exit: Exit, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { exit, code: code.into(), message: message.into(), details: None }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, "usage", message)
    }

    pub fn io(message: impl Into<String>) -> Self {
        Self::new(Exit::Io, "io", message)
    }
}

impl From<aether_sdk::Error> for CliError {
    fn from(error: aether_sdk::Error) -> Self {
        let exit = match error.kind() {
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Config => Exit::Config,
            ErrorKind::Runtime => Exit::Runtime,
            ErrorKind::Io => Exit::Io,
            ErrorKind::Network => Exit::Network,
        };
        let mut message = aether_sdk::error::error_chain(&error);
        // The server's own code says more than "api_error" (`unauthorized`, `not_found`...).
        let code = match &error {
            aether_sdk::Error::Api { code, status, .. } => {
                if *status == 401 {
                    message.push_str("; check the token (`aether login`, or AETHER_TOKEN)");
                }
                code.clone()
            }
            other => other.code().to_owned(),
        };
        Self::new(exit, code, message)
    }
}
