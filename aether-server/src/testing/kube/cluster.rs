//! Everything the fake holds, behind one lock: objects, logs, rollout bookkeeping, and what the
//! test asked for or wants to inspect (injected failures, recorded requests, warnings).

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::error::ApiError;
use super::logs::Logs;
use super::resource::Kind;
use super::store::Store;
use super::workload::{self, Rollout};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    pub content_type: Option<String>,
}

impl RecordedRequest {
    /// The value of query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        let uri: axum::http::Uri = format!("/?{}", self.query).parse().ok()?;
        let axum::extract::Query(params) = axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(&uri).ok()?;
        params.get(name).cloned()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub store: Store,
    pub logs: Logs,
    /// Per deployment `(namespace, name)`.
    pub rollouts: BTreeMap<(String, String), Rollout>,
    /// HTTP codes the next requests fail with, one request each.
    pub failures: VecDeque<u16>,
    pub requests: Vec<RecordedRequest>,
    /// Successful server-side apply requests (no-ops included).
    pub applies: usize,
    /// `Warning` headers sent, e.g. for unknown fields.
    pub warnings: Vec<String>,
}

/// Now, to the nanosecond.
pub(crate) fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_nanosecond(i128::try_from(since_epoch.as_nanos()).unwrap_or_default())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Now, as object timestamps are written: RFC 3339 in whole seconds.
pub(crate) fn now_seconds() -> String {
    Timestamp::from_second(now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH).to_string()
}

impl Cluster {
    pub fn new() -> Self {
        let mut cluster = Self::default();
        for namespace in ["default", "kube-system"] {
            cluster.add_namespace(namespace);
        }
        cluster
    }

    pub fn add_namespace(&mut self, name: &str) {
        let namespace = serde_json::json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
        let now = now_seconds();
        let target = super::writes::Target {
            kind: Kind::Namespace,
            namespace: "",
            name,
            subresource: None,
            manager: "fake-kube",
            now: &now,
        };
        // Refused only when it exists already, which is what the caller wants anyway.
        let _ = self.store.create(target, namespace);
    }

    /// DELETE with the cascade the garbage collector would do: a deployment's pods (unless
    /// `propagationPolicy` is `Orphan`), a namespace's contents, a pod's logs.
    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str, options: &Value) -> Result<Value, ApiError> {
        let orphan = options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan");
        let pods = match kind {
            Kind::Deployment if !orphan => workload::pods_of(&self.store, namespace, name),
            _ => Vec::new(),
        };
        let deleted = self.store.delete(kind, namespace, name, options)?;
        for pod in pods {
            self.delete_pod(namespace, &pod);
        }
        match kind {
            Kind::Pod => self.logs.forget(namespace, name),
            Kind::Deployment => {
                self.rollouts.remove(&(namespace.to_owned(), name.to_owned()));
            }
            Kind::Namespace => {
                for kind in Kind::ALL.into_iter().filter(|kind| kind.namespaced()) {
                    let names: Vec<String> = self.store.list(kind, Some(name)).filter_map(object_name).collect();
                    for object in names {
                        let _ = self.delete(kind, name, &object, &Value::Null);
                    }
                }
            }
            _ => {}
        }
        Ok(deleted)
    }

    pub fn delete_pod(&mut self, namespace: &str, pod: &str) {
        let _ = self.store.delete(Kind::Pod, namespace, pod, &Value::Null);
        self.logs.forget(namespace, pod);
    }
}

pub(crate) fn object_name(object: &Value) -> Option<String> {
    object.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned)
}
