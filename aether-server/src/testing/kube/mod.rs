//! A fake Kubernetes API server for tests, over real HTTP on 127.0.0.1: the Kubernetes runtime
//! talks to it through a real `kube::Client` (or, for the `aether-server` binary, through a
//! kubeconfig written by [`FakeKube::write_kubeconfig`]).
//!
//! What it does like the real server:
//! - namespaced `apps/v1` deployments (and `/status`), `v1` services (and `/status`), `v1`
//!   secrets, `v1` pods (and `/status`, `/log`), and `v1` namespaces; cluster-wide lists and
//!   watches (`/apis/apps/v1/deployments`);
//! - every write decodes into the `k8s-openapi` type: bodies that do not decode, names that are
//!   missing or malformed, kind, apiVersion, name or namespace mismatches, invalid labels,
//!   selectors that miss their template, and similar field errors are refused with a `Status`
//!   (400 BadRequest, 404 NotFound, 409 Conflict/AlreadyExists, 422 Invalid); fields the type
//!   does not declare are dropped with a `Warning` header, or refused under
//!   `fieldValidation=Strict`;
//! - server-set metadata: `uid`, `creationTimestamp`, one `resourceVersion` counter for all
//!   objects, `generation` bumped on spec changes, `managedFields`; server defaults (replicas,
//!   rolling-update strategy, cluster IPs, protocols, `stringData` folded into `data`);
//! - server-side apply (`application/apply-patch+yaml`, `fieldManager` required, `force`)
//!   with field ownership per top-level field, label and annotation; JSON merge patches; PUT
//!   with `resourceVersion` preconditions; POST; DELETE (a deployment's pods go with it unless
//!   `propagationPolicy=Orphan`);
//! - LIST with label selectors (`k=v`, `k!=v`, `k`, `!k`, `k in (..)`, `k notin (..)`), field
//!   selectors on any dotted path, `limit`/`continue`; WATCH from a `resourceVersion` without
//!   losing events, from the current state (`resourceVersion` unset or 0), or as a streaming
//!   list (`sendInitialEvents=true`, ended by a bookmark), with `timeoutSeconds`;
//! - pod logs with `container`, `follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
//!   `timestamps`, `limitBytes`.
//!
//! Where it differs from a real cluster (test against a real one before relying on these):
//! - No controller loop, scheduler or kubelet: nothing changes on its own. A test drives
//!   statuses ([`FakeKube::set_ready`], [`FakeKube::fail_init`], ..., [`FakeKube::modify`]);
//!   the drivers create the deployment's pods. ReplicaSets, Endpoints and Events are not
//!   served (pods name a ReplicaSet owner that does not exist as an object).
//! - Only the resources above; other paths answer 404. No discovery (`/api`, `/apis`);
//!   `/version` answers a fixed version.
//! - Validation covers the common rules only (names, labels, annotations, containers' names,
//!   images, ports and volume mounts, selector against template labels, service ports, secret
//!   keys, a few immutable fields). A required field left out of a body decodes as its default
//!   in `k8s-openapi`, so it is refused only where one of those rules checks it.
//! - Server-side apply tracks ownership of a whole top-level field (all of `spec`), each label
//!   and each annotation: two managers cannot share a spec, and list merge keys are not
//!   modelled. Strategic merge patches are applied as JSON merge patches (lists replaced);
//!   JSON patches are refused (415); `dryRun` is refused.
//! - Deletion is immediate: no grace period, finalizers or `deletionTimestamp`; foreground and
//!   background propagation behave alike.
//! - Watches send no periodic bookmarks (only the one ending a streaming list's initial
//!   events). History is kept until [`FakeKube::compact`]. Lists always show the latest state
//!   (`resourceVersionMatch` is ignored) and a `continue` token is a position, not a snapshot.
//! - Any bearer token other than [`TOKEN`] is refused, none is accepted; no RBAC, plain HTTP.

mod admission;
mod cluster;
mod defaults;
mod error;
mod logs;
mod ownership;
mod pod_status;
mod resource;
mod routes;
mod selector;
mod store;
mod watch;
mod workload;
mod writes;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use serde::de::DeserializeOwned;

pub use cluster::RecordedRequest;
/// The object types this server stores, for tests in crates that do not depend on
/// `k8s-openapi` themselves.
pub use k8s_openapi;
pub use routes::TOKEN;

use cluster::{Cluster, object_name};
use logs::LogLine;
use resource::Kind;
use store::EventType;
use workload::Scenario;

/// State shared by the HTTP handlers and the test's handle.
#[derive(Debug)]
pub(crate) struct Shared {
    cluster: Mutex<Cluster>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Cluster> {
        // A panicking test thread must not take the server down with it.
        self.cluster.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake API server; it stops, ending every open watch and log stream, when dropped.
#[derive(Debug)]
pub struct FakeKube {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
        let mut cluster = self.shared.lock();
        cluster.store.close_watches();
        cluster.logs = logs::Logs::default();
    }
}

impl FakeKube {
    /// Starts the server on 127.0.0.1 at a free port, with namespaces `default` and
    /// `kube-system`.
    ///
    /// # Panics
    /// When it cannot listen: this is test support, where that is a failed test.
    #[allow(clippy::expect_used)]
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API server");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Arc::new(Shared { cluster: Mutex::new(Cluster::new()) });
        let router = routes::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, shared, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client configuration for this server with `default` as its namespace.
    ///
    /// # Panics
    /// Never in practice: the URL is always valid.
    #[allow(clippy::expect_used)]
    pub fn config(&self) -> ::kube::Config {
        ::kube::Config::new(self.url.parse().expect("the fake's URL is a valid URI"))
    }

    /// A client of this server whose default namespace is `default`.
    ///
    /// # Panics
    /// When the client cannot be built.
    #[allow(clippy::expect_used)]
    pub fn client(&self) -> ::kube::Client {
        ::kube::Client::try_from(self.config()).expect("a kube client for the fake API server")
    }

    /// A kubeconfig (YAML) pointing at this server over plain HTTP with [`TOKEN`], whose context
    /// uses `namespace`.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: {namespace}
current-context: fake
users:
- name: fake
  user:
    token: {TOKEN}
",
            url = self.url
        )
    }

    /// Writes [`Self::kubeconfig`] for namespace `default` to `path`, for `KUBECONFIG`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig("default"))
    }

    /// Creates a namespace (a no-op when it exists).
    pub fn add_namespace(&self, name: &str) {
        self.shared.lock().add_namespace(name);
    }

    /// The stored object `name` of type `K` in `namespace` (`""` for namespaces themselves).
    ///
    /// # Panics
    /// When `K` is not a type this server stores.
    #[track_caller]
    pub fn get<K: k8s_openapi::Resource + DeserializeOwned>(&self, namespace: &str, name: &str) -> Option<K> {
        let object = self.shared.lock().store.get(kind_of::<K>(), namespace, name).cloned()?;
        Some(typed(object))
    }

    /// Every stored object of type `K` in `namespace`, ordered by name.
    ///
    /// # Panics
    /// When `K` is not a type this server stores.
    #[track_caller]
    pub fn list<K: k8s_openapi::Resource + DeserializeOwned>(&self, namespace: &str) -> Vec<K> {
        let cluster = self.shared.lock();
        let kind = kind_of::<K>();
        let namespace = kind.namespaced().then_some(namespace);
        cluster.store.list(kind, namespace).cloned().map(typed).collect()
    }

    pub fn deployments(&self, namespace: &str) -> Vec<Deployment> {
        self.list(namespace)
    }

    pub fn services(&self, namespace: &str) -> Vec<Service> {
        self.list(namespace)
    }

    pub fn secrets(&self, namespace: &str) -> Vec<Secret> {
        self.list(namespace)
    }

    pub fn pods(&self, namespace: &str) -> Vec<Pod> {
        self.list(namespace)
    }

    /// The pods of a deployment (of every template), ordered by name.
    pub fn pods_of(&self, namespace: &str, deployment: &str) -> Vec<Pod> {
        let names = workload::pods_of(&self.shared.lock().store, namespace, deployment);
        names.iter().filter_map(|name| self.get(namespace, name)).collect()
    }

    /// Waits until the object `name` of type `K` in `namespace` exists and `condition` holds
    /// for it, and returns it: checked on the stored object, then on each later change of it.
    /// A test driving a control plane from outside (the `aether-server` binary) waits this way
    /// for what that process applies, without polling. It never gives up on its own: wrap it in
    /// a timeout. While it waits it counts among [`Self::watch_count`].
    ///
    /// # Panics
    /// When `K` is not a type this server stores, or the watches are closed
    /// ([`Self::close_watches`], [`Self::compact`]) before the condition holds.
    pub async fn wait_for<K>(&self, namespace: &str, name: &str, mut condition: impl FnMut(&K) -> bool) -> K
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        let kind = kind_of::<K>();
        // Read and subscribe under one lock: no change falls between the two.
        let (mut candidate, mut changes) = {
            let mut cluster = self.shared.lock();
            let stored = cluster.store.get(kind, namespace, name).cloned();
            (stored, cluster.store.subscribe(kind, kind.namespaced().then_some(namespace)))
        };
        loop {
            if let Some(object) = candidate.take().map(typed::<K>)
                && condition(&object)
            {
                return object;
            }
            let Some(change) = changes.recv().await else {
                fail(&format!("the watches closed while waiting for {}/{name}", kind.name()));
            };
            if change.event != EventType::Deleted && object_name(&change.object).as_deref() == Some(name) {
                candidate = Some(change.object.clone());
            }
        }
    }

    /// Server-side apply requests served so far (no-op applies included).
    pub fn apply_count(&self) -> usize {
        self.shared.lock().applies
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Warnings sent so far (e.g. `unknown field "spec.foo"`).
    pub fn warnings(&self) -> Vec<String> {
        self.shared.lock().warnings.clone()
    }

    /// The current resource version of the whole store.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.revision()
    }

    #[track_caller]
    fn drive(&self, namespace: &str, name: &str, scenario: Scenario) {
        if let Err(error) = self.shared.lock().drive(namespace, name, scenario) {
            fail(&format!("cannot drive deployment {namespace}/{name}: {}", error.message));
        }
    }

    /// Creates the deployment's pods for its current template, pending: the first init
    /// container running, containers not started. The deployment is progressing, and available
    /// only while enough pods of an older template are still ready.
    ///
    /// # Panics
    /// When the deployment does not exist (as do the other drivers).
    #[track_caller]
    pub fn set_progressing(&self, namespace: &str, name: &str) {
        self.drive(namespace, name, Scenario::Progressing);
    }

    /// Every pod of the current template running and ready, older pods gone; the deployment
    /// reports `observedGeneration` = `generation`, all replica counts = `spec.replicas`,
    /// `Available=True` and `Progressing=True` with reason `NewReplicaSetAvailable`.
    #[track_caller]
    pub fn set_ready(&self, namespace: &str, name: &str) {
        self.drive(namespace, name, Scenario::Ready);
    }

    /// The first init container of each current pod terminated with exit code 1, reason
    /// `Error` and `message` as its termination message; the pods stay pending.
    ///
    /// # Panics
    /// Also when the pod template has no init container.
    #[track_caller]
    pub fn fail_init(&self, namespace: &str, name: &str, message: &str) {
        self.drive(namespace, name, Scenario::InitFailed(message.to_owned()));
    }

    /// The container (init or main) whose image is `image`, else the first container, waits
    /// with reason `ImagePullBackOff` and message `Back-off pulling image "<image>"`.
    #[track_caller]
    pub fn image_pull_backoff(&self, namespace: &str, name: &str, image: &str) {
        self.drive(namespace, name, Scenario::ImagePullBackOff(image.to_owned()));
    }

    /// The first container of each current pod waits in `CrashLoopBackOff` with one more
    /// restart and a terminated last state (exit code 1); its previous log (`previous=true`)
    /// holds `last_lines`, and its open log streams end.
    #[track_caller]
    pub fn crash_loop(&self, namespace: &str, name: &str, last_lines: &[&str]) {
        let lines = last_lines.iter().map(|line| (*line).to_owned()).collect();
        self.drive(namespace, name, Scenario::CrashLoop(lines));
    }

    /// The deployment's `Progressing` condition turns `False` with reason
    /// `ProgressDeadlineExceeded`, until its current template is made ready.
    #[track_caller]
    pub fn progress_deadline_exceeded(&self, namespace: &str, name: &str) {
        self.drive(namespace, name, Scenario::DeadlineExceeded);
    }

    /// Changes a stored object through `change` (any field, status included), as the cluster
    /// would, and emits a MODIFIED event: for states the drivers above do not cover. Fields it
    /// changes then belong to the manager `fake-kube`, so an apply without `force` that changes
    /// them again conflicts, as it would with any other writer.
    ///
    /// # Panics
    /// When the object does not exist or the change makes it invalid.
    #[track_caller]
    pub fn modify<K>(&self, namespace: &str, name: &str, change: impl FnOnce(&mut K))
    where
        K: k8s_openapi::Resource + DeserializeOwned + serde::Serialize,
    {
        let kind = kind_of::<K>();
        let now = cluster::now_seconds();
        let target = writes::Target { kind, namespace, name, subresource: None, manager: "fake-kube", now: &now };
        let mut failure = None;
        let result = self.shared.lock().store.update_with(target, |object| {
            let mut value: K = typed(object.clone());
            change(&mut value);
            match serde_json::to_value(&value) {
                Ok(changed) => *object = changed,
                Err(error) => failure = Some(error.to_string()),
            }
        });
        if let Some(message) = failure.or_else(|| result.err().map(|error| error.message)) {
            fail(&format!("cannot modify {}/{name}: {message}", kind.name()));
        }
    }

    /// Appends a line to the log of pod `target`'s only or first container, or, when `target`
    /// names a deployment, to that of each of its current pods (created pending if needed).
    /// Followers of those logs receive it.
    #[track_caller]
    pub fn push_log(&self, namespace: &str, target: &str, line: &str) {
        self.push_container_log(namespace, target, None, line);
    }

    /// [`Self::push_log`] to the named container (an init container's, for instance).
    ///
    /// # Panics
    /// When neither a pod nor a deployment is called `target`.
    #[track_caller]
    pub fn push_container_log(&self, namespace: &str, target: &str, container: Option<&str>, line: &str) {
        let mut cluster = self.shared.lock();
        match cluster.log_targets(namespace, target, container) {
            Ok(targets) => {
                for (pod, container) in targets {
                    let line = LogLine { time: cluster::now(), text: line.to_owned() };
                    cluster.logs.push(namespace, &pod, &container, line);
                }
            }
            Err(error) => {
                drop(cluster);
                fail(&format!("cannot log to {namespace}/{target}: {}", error.message));
            }
        }
    }

    /// Breaks every open log stream of pod `target` (or of a deployment's pods): the response
    /// ends with an error instead of a clean end, as when a connection drops.
    pub fn break_logs(&self, namespace: &str, target: &str) {
        let mut cluster = self.shared.lock();
        let mut pods = workload::pods_of(&cluster.store, namespace, target);
        pods.push(target.to_owned());
        for pod in pods {
            cluster.logs.break_streams(namespace, &pod);
        }
    }

    /// Open follow streams on a pod's logs.
    pub fn log_followers(&self, namespace: &str, pod: &str) -> usize {
        self.shared.lock().logs.followers(namespace, pod)
    }

    /// Makes the next `count` requests (of any kind) fail with HTTP `code` and the matching
    /// `Status` reason. The client retries 429, 503 and 504 by itself.
    pub fn fail_next(&self, count: usize, code: u16) {
        self.shared.lock().failures.extend(std::iter::repeat_n(code, count));
    }

    /// Ends every open watch stream cleanly, as the real server does at a watch's timeout;
    /// watchers resume from their last resource version.
    pub fn close_watches(&self) {
        self.shared.lock().store.close_watches();
    }

    /// Open watch streams.
    pub fn watch_count(&self) -> usize {
        self.shared.lock().store.watch_count()
    }

    /// Forgets the change history: a watch resuming from an older resource version gets
    /// `410 Gone` and has to list again. Open watches are closed.
    pub fn compact(&self) {
        let mut cluster = self.shared.lock();
        cluster.store.compact();
        cluster.store.close_watches();
    }
}

#[track_caller]
fn kind_of<K: k8s_openapi::Resource>() -> Kind {
    match Kind::of::<K>() {
        Some(kind) => kind,
        None => fail(&format!("the fake API server does not store {}/{}", K::API_VERSION, K::KIND)),
    }
}

/// A stored object as its type; stored objects always decode, they were decoded to be stored.
#[track_caller]
fn typed<K: DeserializeOwned>(object: serde_json::Value) -> K {
    match serde_json::from_value(object) {
        Ok(typed) => typed,
        Err(error) => fail(&format!("a stored object does not decode: {error}")),
    }
}

/// Test support fails the test on misuse.
#[track_caller]
#[allow(clippy::panic)]
fn fail(message: &str) -> ! {
    panic!("{message}")
}
