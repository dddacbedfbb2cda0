//! Leases held by this replica: work that exactly one live replica must do at a time (following
//! a rollout) is done under a lease in the metadata store, renewed while the work goes on.
//! A replica that dies stops renewing; once its lease expires, another replica's reconciler
//! takes the work over. PostgreSQL is the only coordinator: no replica talks to another.
//!
//! Timing, for a lease of `L` (`AETHER_LEASE_SECS`): a claim or renewal runs until `2L/3` from
//! now and is renewed every `L/4`, and reconcilers look for expired work every `L/6`, so work
//! whose owner died is taken over within `2L/3 + L/6 < L`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ports::MetadataStore;
use crate::state::now_ms;

/// This replica's identity and what it holds.
#[derive(Debug)]
pub struct Leases {
    /// Random per process: a restarted server is a new owner.
    replica_id: String,
    duration: Duration,
    held: Mutex<HashSet<String>>,
}

impl Leases {
    pub fn new(duration: Duration) -> Self {
        Self { replica_id: uuid::Uuid::new_v4().to_string(), duration, held: Mutex::default() }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// How long a claim or renewal lasts.
    fn validity(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn renew_every(&self) -> Duration {
        (self.duration / 4).max(Duration::from_millis(100))
    }

    /// How often reconcilers look for work whose owner is gone.
    pub fn poll_every(&self) -> Duration {
        (self.duration / 6).max(Duration::from_millis(100))
    }

    /// Whether this process already does the work named `name`.
    pub fn holds(&self, name: &str) -> bool {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).contains(name)
    }

    /// Takes the lease `name` unless another live replica (or this process) holds it; the
    /// returned guard renews it until dropped, and says when it was lost.
    pub async fn claim<M: MetadataStore>(self: &Arc<Self>, store: &Arc<M>, name: &str) -> Option<LeaseGuard> {
        {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if !held.insert(name.to_owned()) {
                return None;
            }
        }
        let now = now_ms();
        let until = now.saturating_add(millis(self.validity()));
        match store.try_lease(name, &self.replica_id, now, until).await {
            Ok(true) => Some(self.guard(Arc::clone(store), name)),
            Ok(false) => {
                self.forget(name);
                None
            }
            Err(error) => {
                self.forget(name);
                tracing::warn!(lease = name, %error, "cannot claim a lease; will retry");
                None
            }
        }
    }

    fn forget(&self, name: &str) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }

    fn guard<M: MetadataStore>(self: &Arc<Self>, store: Arc<M>, name: &str) -> LeaseGuard {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let (leases, lease, lost_signal, stopped) = (Arc::clone(self), name.to_owned(), lost.clone(), stop.clone());
        tokio::spawn(async move {
            let mut deadline = now_ms().saturating_add(millis(leases.validity()));
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    () = tokio::time::sleep(leases.renew_every()) => {}
                }
                let now = now_ms();
                let until = now.saturating_add(millis(leases.validity()));
                match store.try_lease(&lease, &leases.replica_id, now, until).await {
                    Ok(true) => deadline = until,
                    Ok(false) => {
                        tracing::warn!(lease = %lease, "another replica took over a lease");
                        lost_signal.cancel();
                        break;
                    }
                    // A passing database outage: the lease holds until its deadline.
                    Err(error) if now < deadline => {
                        tracing::warn!(lease = %lease, %error, "cannot renew a lease; will retry")
                    }
                    Err(error) => {
                        tracing::warn!(lease = %lease, %error, "a lease expired while it could not be renewed");
                        lost_signal.cancel();
                        break;
                    }
                }
            }
            let _ = store.release_lease(&lease, &leases.replica_id).await;
            leases.forget(&lease);
        });
        LeaseGuard { lost, stop }
    }
}

/// A lease this replica holds: renewed in the background until dropped, then given up.
#[derive(Debug)]
pub struct LeaseGuard {
    lost: CancellationToken,
    stop: CancellationToken,
}

impl LeaseGuard {
    /// Resolves if the lease is lost (another replica took the work over): stop working on it.
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
