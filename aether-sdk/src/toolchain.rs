//! Asking the local Node toolchain what it is, within a time budget.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a probe gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The deadline passed first; the child was killed.
    #[error("it did not answer in time")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// Runs `program args` and returns its trimmed stdout, killing it at `deadline`.
pub fn probe(program: &str, args: &[&str], deadline: Instant) -> Result<String, ProbeError> {
    if Instant::now() >= deadline {
        return Err(ProbeError::Timeout);
    }
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ProbeError::Failed(format!("cannot run {program}: {e}")))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(status)) => return Err(ProbeError::Failed(format!("{program} exited with {status}"))),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(ProbeError::Failed(e.to_string())),
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read as _;
        stdout.read_to_string(&mut out).map_err(|e| ProbeError::Failed(e.to_string()))?;
    }
    Ok(out.trim().to_owned())
}

/// `node --version`, e.g. `v20.20.2`.
pub fn node_version(deadline: Instant) -> Result<String, ProbeError> {
    probe("node", &["--version"], deadline)
}

/// `npm --version`, e.g. `11.19.1`.
pub fn npm_version(deadline: Instant) -> Result<String, ProbeError> {
    probe("npm", &["--version"], deadline)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn returns_stdout_and_times_out() {
        let far = Instant::now() + Duration::from_secs(10);
        assert_eq!(probe("echo", &["hi"], far).unwrap(), "hi");
        assert_eq!(probe("sleep", &["5"], Instant::now() + Duration::from_millis(50)), Err(ProbeError::Timeout));
        assert_eq!(probe("echo", &["hi"], Instant::now()), Err(ProbeError::Timeout));
        assert!(matches!(probe("false", &[], far), Err(ProbeError::Failed(_))));
        assert!(matches!(probe("no-such-program-aether", &[], far), Err(ProbeError::Failed(_))));
    }
}
