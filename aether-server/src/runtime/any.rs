//! The runtime the server was configured with (`AETHER_RUNTIME`), as one type: the server is
//! built once over it instead of once per adapter.

use super::NoRuntime;
use super::kubernetes::KubernetesRuntime;
use super::local::LocalRuntime;
use crate::ports::{ArtifactStore, Health, LogLines, LogQuery, ReleaseSpec, Rollout, Runtime, RuntimeError};

#[derive(Debug)]
pub enum AnyRuntime<B> {
    Local(LocalRuntime<B>),
    Kubernetes(KubernetesRuntime<B>),
    None(NoRuntime),
}

/// Forwards a call to whichever adapter this is.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Self::Local(runtime) => runtime.$method($($arg),*).await,
            Self::Kubernetes(runtime) => runtime.$method($($arg),*).await,
            Self::None(runtime) => runtime.$method($($arg),*).await,
        }
    };
}

impl<B: ArtifactStore> Runtime for AnyRuntime<B> {
    fn name(&self) -> &'static str {
        match self {
            Self::Local(runtime) => runtime.name(),
            Self::Kubernetes(runtime) => runtime.name(),
            Self::None(runtime) => runtime.name(),
        }
    }

    async fn start(&self, release: &ReleaseSpec) -> Result<(), RuntimeError> {
        dispatch!(self.start(release))
    }

    async fn watch(&self, release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        dispatch!(self.watch(release))
    }

    async fn resume(&self, release: &ReleaseSpec) -> Result<Rollout, RuntimeError> {
        dispatch!(self.resume(release))
    }

    async fn check(&self, release: &ReleaseSpec) -> Result<Health, RuntimeError> {
        dispatch!(self.check(release))
    }

    async fn stop(&self, release: &ReleaseSpec, fallback: Option<&ReleaseSpec>) -> Result<(), RuntimeError> {
        dispatch!(self.stop(release, fallback))
    }

    async fn logs(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        dispatch!(self.logs(app_name, query))
    }

    async fn follow(&self, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
        dispatch!(self.follow(app_name, query))
    }

    async fn shutdown(&self) {
        dispatch!(self.shutdown())
    }
}
