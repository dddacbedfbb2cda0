//! The real `aether-server` binary as a child process for tests: started with the variables
//! given (nothing `AETHER_*` inherited), on port 0, and known to be up when it logs the address
//! it listens on, which is read from its output rather than guessed.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to stop on SIGTERM (it stops the releases it runs first).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// `http://<address it listens on>`, e.g. `http://127.0.0.1:<port>`.
    pub url: String,
    log: Arc<Mutex<String>>,
    /// What it must never write: the tokens and keys it was started with.
    secrets: Vec<String>,
    /// Its `/metrics` as read just before it was stopped, scanned for secrets with its log.
    last_metrics: String,
}

impl ServerProcess {
    /// Starts `binary` with `vars` and `AETHER_LISTEN=127.0.0.1:0` (unless `vars` sets it), and
    /// returns once it listens.
    ///
    /// # Panics
    /// When it exits or does not listen in time: this is test support, where that is a failure.
    pub fn start(binary: &Path, vars: &[(String, String)]) -> Self {
        Self::start_command(Command::new(binary), vars)
    }

    /// Like [`ServerProcess::start`], for a command that ends up executing the server, e.g.
    /// `ip netns exec NAME aether-server` to run it inside a network namespace.
    ///
    /// # Panics
    /// As [`ServerProcess::start`].
    #[allow(clippy::expect_used, clippy::panic)]
    pub fn start_command(mut command: Command, vars: &[(String, String)]) -> Self {
        let secrets = crate::testing::secrets::in_server_environment(vars);
        // A shorter one would be found in any log by chance.
        if let Some(short) = secrets.iter().find(|secret| secret.len() < 8) {
            panic!("test tokens need at least 8 characters to be scanned for; {short:?} is shorter");
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("AETHER_") || name == "DATABASE_URL" || name == "KUBECONFIG" {
                command.env_remove(name);
            }
        }
        command.env("AETHER_LISTEN", "127.0.0.1:0").env("RUST_LOG", "info");
        command.envs(vars.iter().map(|(name, value)| (name, value)));
        let mut child = command.spawn().expect("spawn aether-server");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged before the address is passed on: once started, the log has the line.
                {
                    let mut log = collected.lock().unwrap_or_else(PoisonError::into_inner);
                    log.push_str(&line);
                    log.push('\n');
                }
                if line.contains("aether-server listening")
                    && let Some(address) = field(&line, "address")
                {
                    let _ = address_tx.send(address.to_owned());
                }
            }
        });
        let Ok(address) = address_rx.recv_timeout(START_TIMEOUT) else {
            let _ = child.kill();
            let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
            panic!("aether-server did not start listening:\n{log}");
        };
        Self { child, url: format!("http://{address}"), log, secrets, last_metrics: String::new() }
    }

    /// The replica id it announced when it started listening (what the `leases` table calls it).
    pub fn replica_id(&self) -> Option<String> {
        let log = self.log();
        let listening = log.lines().find(|line| line.contains("aether-server listening"))?;
        field(listening, "replica").map(|id| id.trim_matches('"').to_owned())
    }

    /// Its process id, e.g. to tell its descendants from processes it no longer owns.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `method path` with a bearer token and an optional JSON body: the status and the JSON
    /// answer (`null` when the answer is not JSON).
    ///
    /// # Panics
    /// When the request cannot be sent: this is test support, where that is a failure.
    #[allow(clippy::expect_used)]
    pub async fn call(
        &self,
        http: &reqwest::Client,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = http.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("a request to aether-server");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// SIGTERM, then the exit: a graceful stop, as a service manager does it.
    ///
    /// # Panics
    /// When it is still running after [`STOP_TIMEOUT`] (it is then killed).
    #[allow(clippy::panic)]
    pub fn terminate(&mut self) -> ExitStatus {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        self.read_metrics();
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        // A watchdog ends a stop that hangs, so that this wait always returns.
        let (stopped, told) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let hung = matches!(told.recv_timeout(STOP_TIMEOUT), Err(mpsc::RecvTimeoutError::Timeout));
            if hung {
                let _ = kill(pid, Signal::SIGKILL);
            }
            hung
        });
        let status = self.child.wait();
        let _ = stopped.send(());
        if watchdog.join().unwrap_or(true) {
            panic!("aether-server did not stop on SIGTERM within {STOP_TIMEOUT:?}:\n{}", self.log());
        }
        match status {
            Ok(status) => status,
            Err(error) => panic!("waiting for aether-server failed: {error}"),
        }
    }

    /// `kill -9`: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Keeps the metrics as they are now (plain HTTP only), for the secret scan on drop.
    fn read_metrics(&mut self) {
        if let Some(text) = self.url.strip_prefix("http://").and_then(|address| plain_get(address, "/metrics")) {
            self.last_metrics = text;
        }
    }
}

impl Drop for ServerProcess {
    /// Kills the server, then fails the test if its log or metrics showed a secret.
    #[allow(clippy::panic)]
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && !std::thread::panicking() {
            self.read_metrics();
        }
        self.kill();
        // A failing test is already unwinding: a second panic would abort and hide the first.
        if std::thread::panicking() {
            return;
        }
        let written = format!("{}\n{}", self.log(), self.last_metrics);
        if let Some(secret) = crate::testing::secrets::first_shown(&written, &self.secrets) {
            panic!(
                "aether-server wrote a secret ({} characters, starting {:?})",
                secret.len(),
                &secret[..4.min(secret.len())]
            );
        }
    }
}

/// A plain HTTP/1.1 GET's whole answer, or `None` when nothing answers in time.
fn plain_get(address: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// The value of `name=value` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
}
