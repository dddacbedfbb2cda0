//! One release's processes: `npm start` in its own process group, its output captured line by
//! line, and the whole group signalled when it has to stop.
//!
//! The group matters because `npm start` is the parent of a shell that is the parent of the
//! app: signalling only the direct child would leave the app serving on its port.

use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ports::{LogLine, LogStream};
use crate::runtime::logs::LogBook;
use crate::state::now_ms;

use super::groups::{self, GroupRecords, MARKER};

/// Variables a release gets from the server's environment; nothing else leaks into it (the
/// server's own tokens and database URL least of all).
const INHERITED: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];
/// Longer lines are cut here, so one endless line cannot exhaust the server's memory.
const MAX_LINE_BYTES: usize = 8 * 1024;
const POLL: Duration = Duration::from_millis(100);
/// How long a SIGKILLed group may take to disappear before the runtime stops waiting for it.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Who started a process and where its output goes.
#[derive(Debug, Clone)]
pub(super) struct Launch {
    pub app_name: String,
    pub deployment_id: String,
    pub port: u16,
    /// The deployment's own variables; they may override `NODE_ENV`, never `PORT` or the
    /// marker.
    pub env: std::collections::BTreeMap<String, String>,
    pub book: Arc<LogBook>,
    /// Where the started group is recorded until it stops.
    pub records: GroupRecords,
}

/// Why a release never became reachable.
#[derive(Debug)]
pub(super) enum NotListening {
    /// How it exited, e.g. `status 1` or `signal 9`.
    Exited(String),
    TimedOut,
}

/// A running (or exited but not yet stopped) release. Dropping it SIGKILLs the group unless
/// [`ReleaseProcess::terminate`] already stopped it, so a panic cannot leak an app.
#[derive(Debug)]
pub(super) struct ReleaseProcess {
    pgid: Pid,
    /// `None` while the group leader runs, then how it exited.
    exit: watch::Receiver<Option<String>>,
    pumps: Vec<JoinHandle<()>>,
    stopped: bool,
    records: GroupRecords,
}

/// Starts `npm start` in `dir`. npm runs `scripts.start`, or `node server.js` when there is
/// none; its own messages are silenced so the output is the app's alone.
pub(super) fn spawn(dir: &Path, launch: &Launch) -> io::Result<ReleaseProcess> {
    let mut command = Command::new("npm");
    command.arg("start").current_dir(dir).env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("NODE_ENV", "production")
        .envs(&launch.env)
        .env("PORT", launch.port.to_string())
        .env(MARKER, &launch.deployment_id)
        .env("npm_config_loglevel", "silent")
        .env("npm_config_update_notifier", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).ok_or_else(|| io::Error::other("no process id"))?;
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(stdout, launch.clone(), LogStream::Stdout)));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(stderr, launch.clone(), LogStream::Stderr)));
    }
    let pgid = Pid::from_raw(pid);
    if let Err(error) = launch.records.record(pgid, &launch.deployment_id) {
        tracing::warn!(deployment = %launch.deployment_id, pgid = pid, %error, "cannot record a release's processes; a crash of the server would leave them running");
    }
    let (exited, exit) = watch::channel(None);
    tokio::spawn(async move {
        let how = match child.wait().await {
            Ok(status) => describe(status),
            Err(error) => format!("an unknown status ({error})"),
        };
        let _ = exited.send(Some(how));
    });
    Ok(ReleaseProcess { pgid, exit, pumps, stopped: false, records: launch.records.clone() })
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

impl ReleaseProcess {
    /// How the group leader exited, if it did.
    pub(super) fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Resolves once the group leader has exited.
    pub(super) fn exit_watch(&self) -> watch::Receiver<Option<String>> {
        self.exit.clone()
    }

    /// Polls `127.0.0.1:port` until it accepts a TCP connection, the leader exits, or `limit`
    /// passes.
    pub(super) async fn wait_listening(&mut self, port: u16, limit: Duration) -> Result<(), NotListening> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(how) = self.exited() {
                return Err(NotListening::Exited(how));
            }
            let connect = tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port));
            if let Ok(Ok(_)) = tokio::time::timeout(POLL * 5, connect).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NotListening::TimedOut);
            }
            // Wakes early when the leader exits, so a crash is reported at once.
            if let Ok(Err(_)) = tokio::time::timeout(POLL, self.exit.changed()).await {
                return Err(NotListening::Exited(self.exited().unwrap_or_else(|| "an unknown status".into())));
            }
        }
    }

    /// SIGTERM to the group, SIGKILL once `grace` has passed, then waits for the output to end.
    pub(super) async fn terminate(&mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        if !self.wait_gone(grace).await {
            self.signal(Signal::SIGKILL);
            if !self.wait_gone(KILL_WAIT).await {
                tracing::warn!(pgid = self.pgid.as_raw(), "release processes did not exit after SIGKILL");
            }
        }
        self.stopped = true;
        self.records.forget(self.pgid);
        for pump in self.pumps.drain(..) {
            // A descendant that escaped the group may still hold the pipe; stop reading then.
            let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
        }
    }

    fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => tracing::warn!(pgid = self.pgid.as_raw(), %error, ?signal, "cannot signal a release"),
        }
    }

    /// The group is gone once its leader was reaped and no member runs any more.
    async fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.exited().is_some() && !group_runs(self.pgid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Whether a member of the group still runs. A member whose parent died before reaping it
/// stays a zombie until the system's init reaps it, and some container inits never do; it
/// still counts as a group member for `kill`, so where `/proc` exists zombies are told apart.
fn group_runs(pgid: Pid) -> bool {
    if std::fs::metadata("/proc/self").is_err() {
        return killpg(pgid, None) != Err(Errno::ESRCH);
    }
    !groups::members(pgid).is_empty()
}

impl Drop for ReleaseProcess {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = killpg(self.pgid, Signal::SIGKILL);
            self.records.forget(self.pgid);
        }
    }
}

/// Copies one output of the release into the log book, a line at a time.
async fn pump(output: impl AsyncRead + Unpin, launch: Launch, stream: LogStream) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line_capped(&mut reader, &mut line).await {
            Ok(true) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\r').unwrap_or(&text).to_owned();
                let record = LogLine { at_ms: now_ms(), deployment_id: launch.deployment_id.clone(), stream, text };
                launch.book.push(&launch.app_name, record);
            }
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(app = %launch.app_name, deployment = %launch.deployment_id, %error, "reading release output failed");
                return;
            }
        }
    }
}

/// Reads one line into `line` without its newline, keeping its first [`MAX_LINE_BYTES`];
/// returns false at the end of the output.
async fn read_line_capped(reader: &mut (impl AsyncBufRead + Unpin), line: &mut Vec<u8>) -> io::Result<bool> {
    let mut read_any = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (chunk, used, complete) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..end], end + 1, true),
            None => (buffer, buffer.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if complete {
            return Ok(true);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        let long = "x".repeat(MAX_LINE_BYTES + 100);
        let input = format!("one\r\ntwo\n{long}\nlast without newline");
        let mut reader = BufReader::with_capacity(64, input.as_bytes());
        let mut lines = Vec::new();
        let mut line = Vec::new();
        while read_line_capped(&mut reader, &mut line).await.unwrap() {
            lines.push(String::from_utf8(std::mem::take(&mut line)).unwrap());
        }
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "one\r");
        assert_eq!(lines[1], "two");
        assert_eq!(lines[2].len(), MAX_LINE_BYTES);
        assert_eq!(lines[3], "last without newline");
    }
}
