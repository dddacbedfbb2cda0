//! How the Kubernetes runtime shapes releases (`AETHER_K8S_*` and friends).

/// How a new release replaces the app's running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `RollingUpdate` with `maxUnavailable: 0`: the previous release serves until the new one
    /// is ready (the default).
    Rolling,
    /// `Recreate` (`AETHER_K8S_STRATEGY=replace`): the previous release stops first.
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// Where apps run (`AETHER_DEFAULT_NAMESPACE`, default `aether`).
    pub namespace: String,
    pub strategy: Strategy,
    /// The init container's image: the server's own image, which holds the fetcher
    /// (`AETHER_FETCHER_IMAGE`).
    pub fetcher_image: String,
    /// The image that runs the app (`AETHER_NODE_IMAGE`, default `aether-nodejs:20-slim`).
    pub node_image: String,
    /// Requests and limits of each container (`AETHER_K8S_CPU`, `AETHER_K8S_MEMORY`).
    pub cpu: String,
    pub memory: String,
    /// Pods per app (`AETHER_K8S_REPLICAS`, default 1).
    pub replicas: i32,
    /// The Deployment's `progressDeadlineSeconds`: the rollout timeout.
    pub progress_deadline_secs: i32,
    /// The deployment URL (`AETHER_K8S_URL_TEMPLATE`): `{app}`, `{namespace}` and `{port}` are
    /// replaced.
    pub url_template: String,
}

impl KubernetesSettings {
    pub const DEFAULT_NAMESPACE: &str = "aether";
    pub const DEFAULT_NODE_IMAGE: &str = "aether-nodejs:20-slim";
    pub const DEFAULT_CPU: &str = "500m";
    pub const DEFAULT_MEMORY: &str = "512Mi";
    pub const DEFAULT_URL_TEMPLATE: &str = "http://{app}.{namespace}.svc.cluster.local:{port}";

    /// The fetcher image matching this build of the server.
    pub fn default_fetcher_image() -> String {
        format!("aether-server:{}", env!("CARGO_PKG_VERSION"))
    }

    /// The URL of `app`'s Service, from the template.
    pub fn url(&self, app: &str) -> String {
        self.url_template
            .replace("{app}", app)
            .replace("{namespace}", &self.namespace)
            .replace("{port}", &super::objects::APP_PORT.to_string())
    }
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            namespace: Self::DEFAULT_NAMESPACE.to_owned(),
            strategy: Strategy::Rolling,
            fetcher_image: Self::default_fetcher_image(),
            node_image: Self::DEFAULT_NODE_IMAGE.to_owned(),
            cpu: Self::DEFAULT_CPU.to_owned(),
            memory: Self::DEFAULT_MEMORY.to_owned(),
            replicas: 1,
            progress_deadline_secs: 300,
            url_template: Self::DEFAULT_URL_TEMPLATE.to_owned(),
        }
    }
}
