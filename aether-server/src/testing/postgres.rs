//! A private PostgreSQL server for tests, started from the machine's own binaries.
//!
//! `initdb` and `pg_ctl` come from PATH or `/usr/lib/postgresql/*/bin`. The cluster lives in a
//! temporary directory with its own port and socket directory and is stopped when dropped. As
//! root, PostgreSQL refuses to run, so the binaries run as the `postgres` user via `runuser`.
//! [`TestPostgres::stop`] and [`TestPostgres::resume`] take the cluster down and bring it back
//! on the same data and port, to test how clients live through a database outage.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum TestPostgresError {
    #[error("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")]
    NotInstalled,
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("I/O error while preparing PostgreSQL")]
    Io(#[from] std::io::Error),
}

/// A running throwaway cluster. Each test asks it for a fresh database.
#[derive(Debug)]
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl TestPostgres {
    pub fn start() -> Result<Self, TestPostgresError> {
        let bin_dir = find_bin_dir().ok_or(TestPostgresError::NotInstalled)?;
        let as_postgres_user = std::fs::metadata("/proc/self")?.uid() == 0;
        let dir = tempfile::Builder::new().prefix("aether-pg-").tempdir()?;
        let (data, sockets) = (dir.path().join("data"), dir.path().join("sockets"));
        std::fs::create_dir_all(&sockets)?;
        if as_postgres_user {
            for path in [dir.path(), sockets.as_path()] {
                run(Command::new("chown").arg("postgres:postgres").arg(path))?;
            }
        }
        let mut pg = Self { dir, bin_dir, port: free_port()?, as_postgres_user };
        pg.run_tool("initdb", &["-D", path_str(&data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])?;
        // PostgreSQL cannot listen on port 0 and tell which port it got, so a free port is
        // picked; when something takes it before PostgreSQL binds it, another one is tried.
        let mut attempts = 1;
        loop {
            match pg.resume() {
                Ok(()) => return Ok(pg),
                Err(error) if attempts < 5 && pg.port_was_taken() => {
                    attempts += 1;
                    pg.port = free_port()?;
                    tracing::debug!(%error, port = pg.port, "the port was taken; trying another");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Shuts the cluster down (`pg_ctl stop -m fast`: open connections are terminated) and
    /// returns once it no longer accepts connections. Its data stays for [`Self::resume`].
    pub fn stop(&self) -> Result<(), TestPostgresError> {
        let data = self.data_dir();
        self.run_tool("pg_ctl", &["-D", path_str(&data), "-m", "fast", "-w", "stop"])
    }

    /// Starts the cluster on its data directory and port, after [`Self::stop`]; returns once it
    /// accepts connections. Databases created before the stop are still there.
    pub fn resume(&self) -> Result<(), TestPostgresError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().join("sockets").display()
        );
        let (data, log) = (self.data_dir(), self.dir.path().join("postgres.log"));
        self.run_tool("pg_ctl", &["-D", path_str(&data), "-o", &options, "-l", path_str(&log), "-w", "start"])
    }

    /// Whether the last start failed because its port was in use.
    fn port_was_taken(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("postgres.log"))
            .is_ok_and(|log| log.lines().rev().take(20).any(|line| line.contains("Address already in use")))
    }

    /// The port the cluster listens on, the same across [`Self::stop`] and [`Self::resume`].
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// URL of the cluster's maintenance database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// URL of a database named `name` (create it first, e.g. with [`Self::create_database`]).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, TestPostgresError> {
        let port = self.port.to_string();
        let psql = self.bin_dir.join("psql");
        let psql = if psql.exists() { psql } else { PathBuf::from("psql") };
        run(Command::new(psql)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE \"{name}\"")))?;
        Ok(self.url(name))
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> Result<(), TestPostgresError> {
        let program = self.bin_dir.join(tool);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        run(command.args(args).current_dir(self.dir.path()))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Fails harmlessly when the cluster is already stopped.
        let data = self.data_dir();
        let _ = self.run_tool("pg_ctl", &["-D", path_str(&data), "-m", "immediate", "-w", "stop"]);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn run(command: &mut Command) -> Result<(), TestPostgresError> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(TestPostgresError::Command {
        command: format!("{command:?}"),
        output: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
            // PATH often holds symlinks; the real directory also has psql and postgres.
            .and_then(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}
