//! The resources the fake serves, with what the real API server knows about each: where it
//! lives in the URL space, whether it is namespaced, and whether it tracks `generation`.

/// A served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Namespace,
    Deployment,
    Service,
    Secret,
    Pod,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Namespace, Kind::Deployment, Kind::Service, Kind::Secret, Kind::Pod];

    /// The resource named by a URL's group/version (`v1`, `apps/v1`) and plural.
    pub fn from_path(group_version: &str, plural: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|kind| kind.api_version() == group_version && kind.plural() == plural)
    }

    /// The resource of a `k8s-openapi` type.
    pub fn of<K: k8s_openapi::Resource>() -> Option<Kind> {
        Self::ALL.into_iter().find(|kind| kind.name() == K::KIND && kind.api_version() == K::API_VERSION)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
            Kind::Secret => "Secret",
            Kind::Pod => "Pod",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Deployment => "deployments",
            Kind::Service => "services",
            Kind::Secret => "secrets",
            Kind::Pod => "pods",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment => "apps",
            _ => "",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment => "apps/v1",
            _ => "v1",
        }
    }

    /// `deployments.apps`, `services`: how messages name the resource.
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    /// `Deployment.apps`, `Service`: how `Invalid` messages name the kind.
    pub fn title(self) -> String {
        match self.group() {
            "" => self.name().to_owned(),
            group => format!("{}.{group}", self.name()),
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    /// Whether the server keeps `metadata.generation` (bumped on every spec change).
    pub fn has_generation(self) -> bool {
        self == Kind::Deployment
    }

    /// Whether the resource has a `status` that writes to the main resource leave alone.
    pub fn has_status(self) -> bool {
        self != Kind::Secret
    }

    /// Names must be DNS-1123 labels (no dots) rather than subdomains.
    pub fn name_is_label(self) -> bool {
        matches!(self, Kind::Namespace | Kind::Service)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};

    #[test]
    fn every_kind_matches_its_k8s_openapi_type() {
        assert_eq!(Kind::of::<Deployment>(), Some(Kind::Deployment));
        assert_eq!(Kind::of::<Service>(), Some(Kind::Service));
        assert_eq!(Kind::of::<Secret>(), Some(Kind::Secret));
        assert_eq!(Kind::of::<Pod>(), Some(Kind::Pod));
        assert_eq!(Kind::of::<Namespace>(), Some(Kind::Namespace));
        assert_eq!(Kind::from_path("apps/v1", "deployments"), Some(Kind::Deployment));
        assert_eq!(Kind::from_path("v1", "deployments"), None);
    }
}
