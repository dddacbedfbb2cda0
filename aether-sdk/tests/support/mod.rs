#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A real control plane for SDK tests: the server's router on 127.0.0.1:0, SQLite, the local
//! artifact store and the in-memory runtime (no processes are started).

use std::time::Duration;

use aether_core::wire::AppName;
use aether_sdk::client::{Client, ClientConfig};
use aether_server::state::AppState;
use aether_server::testing::server::InProcessServer;
pub use aether_server::testing::server::{ADMIN, DEPLOYER, READER, TestPorts};

pub struct TestServer {
    pub base: String,
    pub state: AppState<TestPorts>,
    _server: InProcessServer,
}

impl TestServer {
    pub async fn start() -> Self {
        let server = InProcessServer::start(&[]).await;
        Self { base: server.base.clone(), state: server.state.clone(), _server: server }
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
