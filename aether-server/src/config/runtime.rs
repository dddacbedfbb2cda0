//! What runs releases: `AETHER_RUNTIME` and the Kubernetes runtime's settings.

use std::time::Duration;

use super::{ConfigError, parse_number};
use crate::runtime::kubernetes::{KubernetesSettings, Strategy};

/// The runtimes the binary can be started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Releases run as processes on this machine (the default).
    Local,
    /// Releases run on a Kubernetes cluster.
    Kubernetes(KubernetesSettings),
    /// Nothing runs; deployments fail with a clear reason.
    None,
}

pub(super) fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    rollout_timeout: Duration,
) -> Result<RuntimeKind, ConfigError> {
    match get("AETHER_RUNTIME").as_deref().map(str::trim) {
        None | Some("local") => Ok(RuntimeKind::Local),
        Some("none") => Ok(RuntimeKind::None),
        Some("kubernetes") => Ok(RuntimeKind::Kubernetes(kubernetes(get, rollout_timeout)?)),
        Some(other) => Err(ConfigError {
            variable: "AETHER_RUNTIME",
            message: format!("unknown runtime {other:?} (local, kubernetes, none)"),
        }),
    }
}

/// The Kubernetes settings from the environment (also what `render-k8s` renders with).
pub fn kubernetes(
    get: &dyn Fn(&str) -> Option<String>,
    rollout_timeout: Duration,
) -> Result<KubernetesSettings, ConfigError> {
    let defaults = KubernetesSettings::default();
    let strategy = match get("AETHER_K8S_STRATEGY").as_deref().map(str::trim) {
        None | Some("rolling") => Strategy::Rolling,
        Some("replace") => Strategy::Replace,
        Some(other) => {
            return Err(ConfigError {
                variable: "AETHER_K8S_STRATEGY",
                message: format!("unknown strategy {other:?} (rolling, replace)"),
            });
        }
    };
    let namespace = get("AETHER_DEFAULT_NAMESPACE").unwrap_or(defaults.namespace);
    if aether_core::wire::AppName::parse(&namespace).is_err() {
        return Err(ConfigError {
            variable: "AETHER_DEFAULT_NAMESPACE",
            message: format!("{namespace:?} is not a Kubernetes namespace name"),
        });
    }
    let replicas = parse_number("AETHER_K8S_REPLICAS", get("AETHER_K8S_REPLICAS"))?.unwrap_or(1);
    let replicas = i32::try_from(replicas).ok().filter(|n| *n >= 1).ok_or_else(|| ConfigError {
        variable: "AETHER_K8S_REPLICAS",
        message: format!("{replicas} is not a replica count between 1 and {}", i32::MAX),
    })?;
    let url_template = get("AETHER_K8S_URL_TEMPLATE").unwrap_or(defaults.url_template);
    if !url_template.contains("{app}") {
        return Err(ConfigError {
            variable: "AETHER_K8S_URL_TEMPLATE",
            message: "the template must contain {app} (also {namespace} and {port} if wanted)".into(),
        });
    }
    Ok(KubernetesSettings {
        namespace,
        strategy,
        fetcher_image: get("AETHER_FETCHER_IMAGE").unwrap_or(defaults.fetcher_image),
        node_image: get("AETHER_NODE_IMAGE").unwrap_or(defaults.node_image),
        cpu: get("AETHER_K8S_CPU").unwrap_or(defaults.cpu),
        memory: get("AETHER_K8S_MEMORY").unwrap_or(defaults.memory),
        replicas,
        progress_deadline_secs: i32::try_from(rollout_timeout.as_secs()).unwrap_or(i32::MAX),
        url_template,
    })
}
