//! The real `aether-server` binary on the embedded store (SQLite and the local artifact store
//! in `AETHER_DATA_DIR`, the local runtime), driven over HTTP, and what must hold after it was
//! killed and started again.
//!
//! Every release a test deploys carries `AETHER_CRASH_TEST=<tag>` (a deployment variable), so
//! the test finds its app processes in `/proc` whoever started them, and ends them when it
//! ends, even when it fails.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_core::digest::sha256_hex;
use aether_server::testing::process::ServerProcess;
use serde_json::{Value, json};

pub const TOKEN: &str = "crash-admin";
pub const APP: &str = "web";
/// Every wait ends within this, so a hang is a failure.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One data directory, the servers started on it one after another, and the test's tag.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub tag: String,
    extra: Vec<(String, String)>,
}

/// A process of one of the test's releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppProcess {
    pub pid: i32,
    /// Its `AETHER_DEPLOYMENT_ID`, if it has one.
    pub deployment_id: Option<String>,
}

impl Site {
    pub fn new(extra: &[(&str, &str)]) -> Self {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
        let extra = extra.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        Self { dir: tempfile::tempdir().unwrap(), http, tag: uuid::Uuid::new_v4().to_string(), extra }
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// A server on the data directory; killed (SIGKILL) when dropped.
    pub fn start(&self) -> ServerProcess {
        let mut vars = vec![
            ("AETHER_DATA_DIR".to_owned(), self.data().display().to_string()),
            ("AETHER_API_TOKENS".to_owned(), format!("{TOKEN}:admin")),
            ("AETHER_RUNTIME".to_owned(), "local".to_owned()),
        ];
        vars.extend(self.extra.iter().cloned());
        ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_aether-server")), &vars)
    }

    pub async fn call(
        &self,
        server: &ServerProcess,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        server.call(&self.http, TOKEN, method, path, body).await
    }

    pub async fn create_app(&self, server: &ServerProcess) {
        let (status, body) = self.call(server, reqwest::Method::POST, "/apps", Some(json!({ "name": APP }))).await;
        assert_eq!(status, 201, "{body}");
    }

    /// Uploads `bytes` (presign, PUT, complete); returns the digest.
    pub async fn upload(&self, server: &ServerProcess, bytes: &[u8]) -> String {
        let digest = sha256_hex(bytes);
        let declared = json!({ "app_name": APP, "digest": digest, "size_bytes": bytes.len() });
        let (status, presign) = self.call(server, reqwest::Method::POST, "/artifacts/presign", Some(declared)).await;
        assert_eq!(status, 200, "{presign}");
        let put = self.http.put(presign["upload_url"].as_str().unwrap()).body(bytes.to_vec()).send().await.unwrap();
        assert!(put.status().is_success(), "PUT answered {}", put.status());
        let body =
            json!({ "app_name": APP, "digest": digest, "size_bytes": bytes.len(), "upload_id": presign["upload_id"] });
        let (status, done) = self.call(server, reqwest::Method::POST, "/artifacts/complete", Some(body)).await;
        assert_eq!(status, 200, "{done}");
        digest
    }

    /// Deploys `digest` with the test's tag in its environment; returns the deployment id.
    pub async fn deploy(&self, server: &ServerProcess, digest: &str) -> String {
        let env: BTreeMap<&str, &str> = [("AETHER_CRASH_TEST", self.tag.as_str())].into();
        let body = json!({ "app_name": APP, "digest": digest, "env": env });
        let (status, created) = self.call(server, reqwest::Method::POST, "/deployments", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The deployment once `check` holds for it.
    pub async fn deployment_until(&self, server: &ServerProcess, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, deployment) = self.call(server, reqwest::Method::GET, &format!("/deployments/{id}"), None).await;
            if check(&deployment) {
                return deployment;
            }
            assert!(Instant::now() < deadline, "deployment {id} never got there: {deployment}\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The live processes of the test's releases.
    pub fn app_processes(&self) -> Vec<AppProcess> {
        let wanted = format!("AETHER_CRASH_TEST={}", self.tag);
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !vars.contains(&wanted.as_bytes()) || !alive(pid) {
                continue;
            }
            let deployment_id = vars
                .iter()
                .find_map(|v| v.strip_prefix(b"AETHER_DEPLOYMENT_ID="))
                .map(|id| String::from_utf8_lossy(id).into_owned());
            found.push(AppProcess { pid, deployment_id });
        }
        found
    }

    /// Waits until a process of deployment `id` runs.
    pub async fn app_started(&self, id: &str) -> Vec<AppProcess> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let of_it: Vec<AppProcess> =
                self.app_processes().into_iter().filter(|p| p.deployment_id.as_deref() == Some(id)).collect();
            if !of_it.is_empty() {
                return of_it;
            }
            assert!(Instant::now() < deadline, "no process of deployment {id} ever ran: {:?}", self.app_processes());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What must hold after a crash and a restart: nothing stays pending or deploying, every
    /// artifact row has its blob, every app process belongs to `server` and to a running
    /// deployment; then a new release deploys and serves.
    pub async fn assert_recovered(&self, server: &ServerProcess) {
        let deployments = self.settled(server).await;
        self.assert_artifacts_have_blobs(server).await;
        self.assert_processes_owned(server, &deployments);
        let digest = self.upload(server, &crate::node_app::pack_app(&crate::node_app::server_js("after")).0).await;
        let id = self.deploy(server, &digest).await;
        let running = self.deployment_until(server, &id, |d| d["status"] == "running").await;
        let answer = self.http.get(running["url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
        assert_eq!(answer, "after production");
    }

    /// Every deployment of the app, once none is pending or deploying.
    async fn settled(&self, server: &ServerProcess) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, list) =
                self.call(server, reqwest::Method::GET, &format!("/apps/{APP}/deployments"), None).await;
            assert_eq!(status, 200, "{list}");
            let list = list.as_array().unwrap().clone();
            if list.iter().all(|d| d["status"] != "pending" && d["status"] != "deploying") {
                return list;
            }
            assert!(Instant::now() < deadline, "deployments stay unsettled: {list:?}\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn assert_artifacts_have_blobs(&self, server: &ServerProcess) {
        let (status, listed) = self.call(server, reqwest::Method::GET, "/artifacts", None).await;
        assert_eq!(status, 200, "{listed}");
        for artifact in listed["items"].as_array().unwrap() {
            let blob = self.blob_path(artifact["storage_key"].as_str().unwrap());
            assert!(blob.is_file(), "artifact {} has no blob at {}", artifact["digest"], blob.display());
        }
    }

    /// Where the local store keeps the object `key`.
    pub fn blob_path(&self, key: &str) -> PathBuf {
        self.data().join("artifacts/objects").join(key)
    }

    fn assert_processes_owned(&self, server: &ServerProcess, deployments: &[Value]) {
        let running: Vec<&str> =
            deployments.iter().filter(|d| d["status"] == "running").filter_map(|d| d["id"].as_str()).collect();
        let server_pid = i32::try_from(server.pid()).unwrap();
        for process in self.app_processes() {
            assert!(
                descends_from(process.pid, server_pid),
                "process {process:?} is not the server's: left behind by its predecessor"
            );
            let id = process.deployment_id.as_deref();
            assert!(id.is_some_and(|id| running.contains(&id)), "process {process:?} runs for no running deployment");
        }
    }
}

impl Drop for Site {
    /// Ends whatever the test's releases left, so a failed test does not leak servers.
    fn drop(&mut self) {
        for process in self.app_processes() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(process.pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Runs and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| !matches!(f[0].as_str(), "Z" | "X" | "x"))
}

fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut current = pid;
    for _ in 0..64 {
        let Some(parent) = stat_fields(current).and_then(|f| f.get(1)?.parse::<i32>().ok()) else { return false };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        current = parent;
    }
    false
}
