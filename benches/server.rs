//! The real `aether-server` binary, started for one benchmark on a private port and data
//! directory, so uploads go through exactly the code and configuration users run.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aether_sdk::client::{Client, ClientConfig};
use anyhow::{Context as _, Result, bail};

/// How long a fresh server may take to answer `/healthz` (it creates and migrates SQLite).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server; killed and reaped when dropped, so its CPU time is accounted to the
/// benchmark and no process outlives it.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    pub url: String,
    pub token: String,
    log: PathBuf,
}

impl LocalServer {
    /// Starts `bin` with its data under `data_dir` (which must exist) and only the variables
    /// given here (plus `extra_env`), so nothing from the caller's environment changes what is
    /// measured.
    pub fn start(bin: &Path, data_dir: &Path, max_artifact_bytes: u64, extra_env: &[(String, String)]) -> Result<Self> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let token = format!("bench-{:x}-{}", std::process::id(), nanos());
        let log = data_dir.join("server.log");
        let stderr = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(bin);
        command
            .env_clear()
            .envs(["PATH", "HOME"].iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
            .env("AETHER_LISTEN", format!("127.0.0.1:{port}"))
            .env("AETHER_DATA_DIR", data_dir.join("data"))
            .env("AETHER_API_TOKENS", format!("{token}:admin"))
            .env("AETHER_MAX_ARTIFACT_SIZE_BYTES", max_artifact_bytes.to_string())
            .envs(extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Self { child, url, token, log })
    }

    /// An SDK client for the API, authenticated with the admin token.
    pub fn client(&self) -> Result<Client> {
        let mut config = ClientConfig::new(&self.url);
        config.token = Some(self.token.clone());
        Ok(Client::new(config)?)
    }

    /// Polls `/healthz` until it answers, failing early when the process exits.
    pub async fn wait_healthy(&mut self, client: &Client) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("aether-server exited during start-up ({status}):\n{}", self.log_tail());
            }
            if client.health().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("aether-server did not answer /healthz within {START_TIMEOUT:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the kernel just handed out on loopback. Another process could take it before the
/// server binds it; on an otherwise idle benchmark machine that does not happen.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Makes the token differ between runs. It guards a server that listens on loopback only and
/// lives for a few minutes, so it need not come from a cryptographic generator.
fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
