//! Private S3-compatible servers for tests, on 127.0.0.1 at a port they pick themselves:
//! `s3s-fs` (over a temporary directory; it checks SigV4 signatures and presigned URLs' expiry)
//! and, as a second implementation that catches what one server's habits hide, `moto` (in
//! memory; it checks neither signatures, expiry nor the checksum signed into a URL, and behaves
//! like AWS where s3s-fs cuts corners: ETags in `ListParts`, `ListMultipartUploads`).
//!
//! `s3s-fs` comes from `AETHER_TEST_S3S_FS`, then `PATH`, then
//! `${XDG_CACHE_HOME:-~/.cache}/aether-ci/s3s-fs/bin/s3s-fs` (where `scripts/test.sh` installs
//! it); `moto` is run as `python3 -m moto.server` (`AETHER_TEST_PYTHON` names another
//! interpreter), installed by `scripts/test.sh` from `requirements-dev.txt`. [`TestS3::stop`] and
//! [`TestS3::resume`] take the server down and bring it back on the same port (and, for
//! `s3s-fs`, the same data), to test how the control plane lives through an outage.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::artifacts::s3::{S3ArtifactStore, S3Settings, StaticCredentials, Verification};

pub const ACCESS_KEY: &str = "aether-test-access";
pub const SECRET_KEY: &str = "aether-test-secret-key";

#[derive(Debug, thiserror::Error)]
pub enum TestS3Error {
    #[error("s3s-fs not found (set AETHER_TEST_S3S_FS, put it on PATH, or run scripts/test.sh, which installs it)")]
    NotInstalled,
    #[error("{0} did not report its address; it printed: {1}")]
    NoAddress(&'static str, String),
    #[error("I/O error while starting the S3 server")]
    Io(#[from] std::io::Error),
}

/// Which S3 implementation a [`TestS3`] runs.
#[derive(Debug, Clone)]
enum Server {
    S3sFs(PathBuf),
    /// The Python interpreter that has `moto[server]`.
    Moto(OsString),
}

impl Server {
    fn name(&self) -> &'static str {
        match self {
            Self::S3sFs(_) => "s3s-fs",
            Self::Moto(_) => "moto",
        }
    }

    /// The server's command, listening on `port` and storing under `dir`.
    fn command(&self, port: &str, dir: &std::path::Path) -> Command {
        match self {
            Self::S3sFs(binary) => {
                let mut command = Command::new(binary);
                command
                    .args([
                        "--host",
                        "127.0.0.1",
                        "--port",
                        port,
                        "--access-key",
                        ACCESS_KEY,
                        "--secret-key",
                        SECRET_KEY,
                    ])
                    .arg(dir)
                    .env("RUST_LOG", "info")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                command
            }
            Self::Moto(python) => {
                let mut command = Command::new(python);
                command
                    .args(["-m", "moto.server", "--host", "127.0.0.1", "--port", port])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                command
            }
        }
    }

    /// Where the server says it listens, from one line of its output.
    fn address_in(&self, line: &str) -> Option<String> {
        let marker = match self {
            Self::S3sFs(_) => "server is running at ",
            Self::Moto(_) => "Running on ",
        };
        let (_, rest) = line.split_once(marker)?;
        Some(rest.split_whitespace().next()?.trim_end_matches('/').to_owned())
    }
}

/// A running server; stopped, and its data removed, when dropped.
#[derive(Debug)]
pub struct TestS3 {
    server: Server,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl TestS3 {
    /// `s3s-fs`, the strict one: signatures and expiry checked.
    pub fn start() -> Result<Self, TestS3Error> {
        Self::launch(Server::S3sFs(find_binary().ok_or(TestS3Error::NotInstalled)?))
    }

    /// `moto`, the second implementation.
    pub fn start_moto() -> Result<Self, TestS3Error> {
        let python = std::env::var_os("AETHER_TEST_PYTHON").unwrap_or_else(|| "python3".into());
        Self::launch(Server::Moto(python))
    }

    fn launch(server: Server) -> Result<Self, TestS3Error> {
        let dir = tempfile::Builder::new().prefix("aether-s3-").tempdir()?;
        let mut server = Self { server, dir, child: None, endpoint: String::new() };
        server.spawn("0")?;
        Ok(server)
    }

    /// Kills the server; its data stays for [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&mut self) -> Result<(), TestS3Error> {
        let port = self.endpoint.rsplit(':').next().unwrap_or("0").to_owned();
        self.spawn(&port)
    }

    fn spawn(&mut self, port: &str) -> Result<(), TestS3Error> {
        let mut child = self.server.command(port, self.dir.path()).stdin(Stdio::null()).spawn()?;
        let output: Box<dyn Read + Send> = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), _) => Box::new(stdout),
            (None, Some(stderr)) => Box::new(stderr),
            (None, None) => return Err(TestS3Error::NoAddress(self.server.name(), "no output".into())),
        };
        let mut lines = BufReader::new(output).lines();
        let mut seen = String::new();
        // The address is logged once the listener is bound: the event this waits on.
        let address = loop {
            let Some(line) = lines.next().transpose()? else {
                let _ = child.kill();
                return Err(TestS3Error::NoAddress(self.server.name(), seen));
            };
            if let Some(address) = self.server.address_in(&line) {
                break address;
            }
            seen.push_str(&line);
            seen.push('\n');
        };
        // Keep draining its output so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        self.endpoint = address;
        self.child = Some(child);
        Ok(())
    }

    /// Settings of an S3 store on `bucket` of this server, checking everything.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.to_owned(),
            endpoint_url: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            credentials: Some(StaticCredentials {
                access_key_id: ACCESS_KEY.to_owned(),
                secret_access_key: SECRET_KEY.to_owned(),
                session_token: None,
            }),
            encryption: None,
            verification: Verification::default(),
        }
    }

    /// The `AETHER_*` and `AWS_*` variables of a server storing artifacts in `bucket` here.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("AETHER_STORAGE_MODE", "s3"),
            ("AETHER_ARTIFACT_BUCKET", bucket),
            ("AETHER_S3_ENDPOINT_URL", &self.endpoint),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
    }

    /// Creates `bucket` and returns a store on it.
    ///
    /// # Panics
    /// When the bucket cannot be created: this is test support, where that is a failed test.
    #[allow(clippy::expect_used)]
    pub async fn bucket(&self, bucket: &str) -> S3ArtifactStore {
        let store = S3ArtifactStore::connect(self.settings(bucket)).await;
        store.client().create_bucket().bucket(bucket).send().await.expect("create the test bucket");
        store
    }
}

impl TestS3 {
    /// A plain S3 client of this server, for tests that act behind the control plane's back.
    pub async fn bucket_client(&self) -> aws_sdk_s3::Client {
        S3ArtifactStore::connect(self.settings("unused")).await.client().clone()
    }

    /// Every key in `bucket`, sorted.
    ///
    /// # Panics
    /// When the bucket cannot be listed.
    #[allow(clippy::expect_used)]
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let client = self.bucket_client().await;
        let listed = client.list_objects_v2().bucket(bucket).send().await.expect("list the bucket");
        let mut keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        keys.sort();
        keys
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AETHER_TEST_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(cache.join("aether-ci/s3s-fs/bin/s3s-fs")).filter(|path| path.is_file())
    })
}
