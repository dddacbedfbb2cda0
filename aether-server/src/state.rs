//! Shared server state, generic over the ports; `main` picks the concrete adapters once.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::ports::{ArtifactStore, MetadataStore, Runtime};

/// The adapters a server runs with.
pub trait Ports: Send + Sync + 'static {
    type Store: MetadataStore;
    type Blobs: ArtifactStore;
    type Runtime: Runtime;
}

pub struct AppState<P: Ports> {
    pub store: Arc<P::Store>,
    pub blobs: Arc<P::Blobs>,
    pub runtime: Arc<P::Runtime>,
    pub config: Arc<ServerConfig>,
    /// Bounds concurrent uploads (`AETHER_MAX_CONCURRENT_UPLOADS`).
    pub upload_slots: Arc<Semaphore>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This replica's identity and the leases it holds.
    pub leases: Arc<crate::lease::Leases>,
    /// Cancelled when the server starts shutting down, so responses that would otherwise never
    /// end (log streams) finish and let the graceful shutdown complete.
    pub shutdown: CancellationToken,
}

impl<P: Ports> std::fmt::Debug for AppState<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<P: Ports> Clone for AppState<P> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            blobs: Arc::clone(&self.blobs),
            runtime: Arc::clone(&self.runtime),
            config: Arc::clone(&self.config),
            upload_slots: Arc::clone(&self.upload_slots),
            metrics: Arc::clone(&self.metrics),
            leases: Arc::clone(&self.leases),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<P: Ports> AppState<P> {
    /// `blobs` may be shared already: the local runtime reads artifacts from the same store.
    pub fn new(store: P::Store, blobs: impl Into<Arc<P::Blobs>>, runtime: P::Runtime, config: ServerConfig) -> Self {
        Self {
            store: Arc::new(store),
            blobs: blobs.into(),
            runtime: Arc::new(runtime),
            upload_slots: Arc::new(Semaphore::new(config.max_concurrent_uploads)),
            leases: Arc::new(crate::lease::Leases::new(config.lease)),
            config: Arc::new(config),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            shutdown: CancellationToken::new(),
        }
    }
}

/// Wall-clock time in Unix milliseconds; the only place the server reads the clock for records.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
