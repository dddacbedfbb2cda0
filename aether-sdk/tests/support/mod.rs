#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A real control plane for SDK tests: the server's router on 127.0.0.1:0, SQLite, the local
//! artifact store and the in-memory runtime (no processes are started).

use std::collections::HashMap;
use std::time::Duration;

use aether_core::wire::AppName;
use aether_sdk::client::{Client, ClientConfig};
use aether_server::artifacts::local::LocalArtifactStore;
use aether_server::config::ServerConfig;
use aether_server::runtime::FakeRuntime;
use aether_server::state::{AppState, Ports};
use aether_server::store::SqlStore;

pub const ADMIN: &str = "admin-token";
pub const DEPLOYER: &str = "deploy-token";
pub const READER: &str = "read-token";

pub struct TestPorts;

impl Ports for TestPorts {
    type Store = SqlStore;
    type Blobs = LocalArtifactStore;
    type Runtime = FakeRuntime;
}

pub struct TestServer {
    pub base: String,
    pub state: AppState<TestPorts>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let env: HashMap<&str, String> = HashMap::from([
            ("AETHER_API_TOKENS", format!("{ADMIN}:admin,{DEPLOYER}:deployer,{READER}:reader")),
            ("AETHER_LISTEN", addr.to_string()),
            ("AETHER_PUBLIC_URL", base.clone()),
            ("AETHER_DATA_DIR", dir.path().display().to_string()),
        ]);
        let config = ServerConfig::from_env(|name| env.get(name).cloned()).unwrap();
        let store = SqlStore::open_sqlite(&dir.path().join("aether.db")).await.unwrap();
        store.migrate().await.unwrap();
        let blobs = LocalArtifactStore::new(dir.path().join("artifacts"), base.clone(), [0x5a; 32]).unwrap();
        let state = AppState::<TestPorts>::new(store, blobs, FakeRuntime::default(), config);
        let router = aether_server::api::router(state.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base, state, task, _dir: dir }
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        client_for(&self.base, token, 3)
    }

    /// A counter of the server's Prometheus text, 0 when absent.
    pub fn metric(&self, line_prefix: &str) -> u64 {
        let text = self.state.metrics.render();
        let line = text.lines().find(|line| line.starts_with(line_prefix));
        line.and_then(|l| l.rsplit(' ').next()).map_or(0, |n| n.parse().unwrap())
    }
}

pub fn client_for(base: &str, token: Option<&str>, retries: u32) -> Client {
    let config = ClientConfig {
        token: token.map(str::to_owned),
        timeout: Duration::from_secs(10),
        retries,
        ..ClientConfig::new(base)
    };
    Client::new(config).unwrap()
}

pub fn app(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}
