//! The control plane in process, for tests of this crate and of its clients: the real router on
//! 127.0.0.1 at a free port, SQLite and the local artifact store in a temporary directory (or
//! the S3 store when the environment asks for it), and the in-memory fake runtime (no
//! processes are started).

use std::collections::HashMap;
use std::path::Path;

use crate::artifacts::AnyArtifactStore;
use crate::artifacts::local::LocalArtifactStore;
use crate::artifacts::s3::S3ArtifactStore;
use crate::config::{ServerConfig, StorageConfig};
use crate::runtime::FakeRuntime;
use crate::state::{AppState, Ports};
use crate::store::SqlStore;

/// Static tokens the server accepts, one per role.
pub const ADMIN: &str = "admin-token";
pub const DEPLOYER: &str = "deploy-token";
pub const READER: &str = "read-token";

/// The adapters an in-process server runs with.
#[derive(Debug)]
pub struct TestPorts;

impl Ports for TestPorts {
    type Store = SqlStore;
    type Blobs = AnyArtifactStore;
    type Runtime = FakeRuntime;
}

/// A running server; it stops, and its directory is removed, when dropped.
pub struct InProcessServer {
    /// `http://127.0.0.1:<port>`, also the server's public URL.
    pub base: String,
    pub state: AppState<TestPorts>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for InProcessServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessServer").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InProcessServer {
    /// Starts a server with the three test tokens plus `extra_env` (which may override them).
    ///
    /// # Panics
    /// When the server cannot start: this is test support, where that is a failed test.
    #[allow(clippy::expect_used)]
    pub async fn start(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let mut env: HashMap<String, String> = HashMap::from([
            ("AETHER_API_TOKENS".into(), format!("{ADMIN}:admin,{DEPLOYER}:deployer,{READER}:reader")),
            ("AETHER_LISTEN".into(), addr.to_string()),
            ("AETHER_PUBLIC_URL".into(), base.clone()),
            ("AETHER_DATA_DIR".into(), dir.path().display().to_string()),
        ]);
        env.extend(extra_env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let config = ServerConfig::from_env(|name| env.get(name).cloned()).expect("config");
        let store = SqlStore::open_sqlite(&dir.path().join("aether.db")).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        let blobs: AnyArtifactStore = match &config.storage {
            StorageConfig::Local => LocalArtifactStore::new(dir.path().join("artifacts"), base.clone(), [0x5a; 32])
                .expect("artifact store")
                .into(),
            StorageConfig::S3(settings) => S3ArtifactStore::connect(settings.clone()).await.into(),
        };
        let state = AppState::<TestPorts>::new(store, blobs, FakeRuntime::default(), config);
        let router = crate::api::router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("server failed");
        });
        Self { base, state, task, dir }
    }

    /// The server's `AETHER_DATA_DIR`.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}
