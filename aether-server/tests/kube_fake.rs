//! The fake Kubernetes API server, exercised through a real `kube::Client` over HTTP: what the
//! Kubernetes runtime's tests rely on it for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aether_server::testing::kube::FakeKube;
use futures_util::io::AsyncBufReadExt as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, ValidationDirective, WatchEvent,
    WatchParams,
};
use kube::core::Status;
use kube::runtime::watcher;
use serde_json::{Value, json};

const NS: &str = "apps";
const MANAGER: &str = "aether";

/// Waits for a stream item or a log line; a hang fails the test instead of stalling it.
async fn soon<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), future).await.expect("the fake answered in time")
}

async fn fake() -> (FakeKube, kube::Client) {
    let fake = FakeKube::start().await;
    fake.add_namespace(NS);
    let client = fake.client();
    (fake, client)
}

fn deployment(name: &str, image: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "volumes": [{ "name": "release", "emptyDir": {} }],
                    "initContainers": [{
                        "name": "fetch",
                        "image": "aether/fetch:1",
                        "volumeMounts": [{ "name": "release", "mountPath": "/release" }],
                    }],
                    "containers": [{
                        "name": "app",
                        "image": image,
                        "ports": [{ "containerPort": 8080 }],
                        "volumeMounts": [{ "name": "release", "mountPath": "/release" }],
                    }],
                },
            },
        },
    })
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

async fn apply<K>(api: &Api<K>, name: &str, object: &Value) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &apply_params(), &Patch::Apply(object)).await
}

/// The `Status` of a refused request.
fn status(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn applied_objects_come_back_from_get_and_from_lists_filtered_by_labels() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let web = apply(&deployments, "web", &deployment("web", "node:20", json!({ "app": "web", "tier": "front" })))
        .await
        .unwrap();
    apply(&deployments, "worker", &deployment("worker", "node:20", json!({ "app": "worker" }))).await.unwrap();

    let metadata = &web.metadata;
    assert!(metadata.uid.as_deref().is_some_and(|uid| uid.len() == 36));
    assert!(metadata.creation_timestamp.is_some());
    assert_eq!(metadata.generation, Some(1));
    assert_eq!(metadata.namespace.as_deref(), Some(NS));
    assert_eq!(metadata.managed_fields.as_ref().unwrap()[0].manager.as_deref(), Some(MANAGER));
    let spec = &web.spec;
    assert_eq!(spec.replicas, Some(1), "defaulted like the real server");
    assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("RollingUpdate"));

    let got = deployments.get("web").await.unwrap();
    assert_eq!(got.metadata.resource_version, web.metadata.resource_version);

    let names = |selector: &'static str| {
        let deployments = deployments.clone();
        async move {
            let list = deployments.list(&ListParams::default().labels(selector)).await.unwrap();
            list.items.into_iter().map(|d| d.metadata.name.unwrap()).collect::<Vec<_>>()
        }
    };
    assert_eq!(names("app=web").await, ["web"]);
    assert_eq!(names("app!=web").await, ["worker"]);
    assert_eq!(names("tier").await, ["web"]);
    assert_eq!(names("!tier").await, ["worker"]);
    assert_eq!(names("app in (web,worker),tier notin (back)").await, ["web", "worker"]);
    assert_eq!(names("").await, ["web", "worker"]);
    let everywhere: Api<Deployment> = Api::all(client.clone());
    assert_eq!(everywhere.list(&ListParams::default()).await.unwrap().items.len(), 2);
    let paged = deployments.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(paged.items.len(), 1);
    let rest = deployments
        .list(&ListParams::default().limit(1).continue_token(paged.metadata.continue_.as_deref().unwrap()))
        .await
        .unwrap();
    assert_eq!(rest.items[0].metadata.name.as_deref(), Some("worker"));

    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
    });
    let applied = apply(&services, "web", &service).await.unwrap();
    let cluster_ip = applied.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let again = apply(&services, "web", &service).await.unwrap();
    assert_eq!(again.spec.unwrap().cluster_ip.unwrap(), cluster_ip, "the cluster IP survives a re-apply");

    let secrets: Api<Secret> = Api::namespaced(client, NS);
    let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "web-env" }, "stringData": { "TOKEN": "s3cr3t" } });
    apply(&secrets, "web-env", &secret).await.unwrap();

    assert_eq!(fake.deployments(NS).len(), 2);
    assert_eq!(fake.services(NS)[0].spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, 80);
    let stored = &fake.secrets(NS)[0];
    assert_eq!(stored.data.as_ref().unwrap()["TOKEN"].0, b"s3cr3t");
    assert!(stored.string_data.is_none(), "stringData is folded into data");
    assert_eq!(fake.apply_count(), 5);
    assert!(fake.requests().iter().any(|r| r.param("fieldManager").as_deref() == Some(MANAGER) && r.param("force").as_deref() == Some("true")));
}

#[tokio::test]
async fn generation_follows_spec_changes_and_a_repeated_apply_changes_nothing() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let first = apply(&deployments, "web", &deployment("web", "node:20", json!({ "app": "web" }))).await.unwrap();
    let again = apply(&deployments, "web", &deployment("web", "node:20", json!({ "app": "web" }))).await.unwrap();
    assert_eq!(again.metadata.resource_version, first.metadata.resource_version, "a no-op apply stores nothing");
    assert_eq!(fake.apply_count(), 2);

    let new_image = apply(&deployments, "web", &deployment("web", "node:22", json!({ "app": "web" }))).await.unwrap();
    assert_eq!(new_image.metadata.generation, Some(2));
    let relabelled =
        apply(&deployments, "web", &deployment("web", "node:22", json!({ "app": "web", "release": "r2" })))
            .await
            .unwrap();
    assert_eq!(relabelled.metadata.generation, Some(2), "metadata changes leave the generation alone");
    let version = |d: &Deployment| d.metadata.resource_version.as_deref().unwrap().parse::<u64>().unwrap();
    assert!(version(&relabelled) > version(&new_image) && version(&new_image) > version(&first));

    let dropped = apply(&deployments, "web", &deployment("web", "node:22", json!({ "app": "web" }))).await.unwrap();
    assert!(!dropped.metadata.labels.unwrap().contains_key("release"), "a label left out of an apply is removed");

    fake.set_ready(NS, "web");
    let other = PatchParams::apply("someone-else");
    let conflict = status(
        deployments.patch("web", &other, &Patch::Apply(&deployment("web", "node:18", json!({ "app": "web" })))).await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    let kept = deployments.get("web").await.unwrap();
    assert!(kept.status.unwrap().ready_replicas == Some(1), "applies keep the status");
}

#[tokio::test]
async fn malformed_objects_are_refused_with_a_status() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let good = deployment("web", "node:20", json!({ "app": "web" }));
    let with = |pointer: &str, value: Value| good.clone().tap_set(pointer, value);
    let refused = [
        (with("/spec/replicas", json!("three")), 400, "BadRequest"),
        (with("/kind", json!("Service")), 400, "BadRequest"),
        (with("/metadata/name", json!("other")), 400, "BadRequest"),
        (with("/metadata/namespace", json!("elsewhere")), 400, "BadRequest"),
        (with("/spec/template/metadata/labels", json!({ "app": "api" })), 422, "Invalid"),
        (with("/spec/template/spec/containers/0/image", json!("")), 422, "Invalid"),
        (with("/metadata/labels", json!({ "digest": "sha256:0123" })), 422, "Invalid"),
        (with("/spec/template/spec/containers/0/volumeMounts/0/name", json!("missing")), 422, "Invalid"),
    ];
    for (object, code, reason) in refused {
        let refusal = status(apply(&deployments, "web", &object).await);
        assert_eq!((refusal.code, refusal.reason.as_str()), (code, reason), "{object}: {}", refusal.message);
    }
    assert!(fake.deployments(NS).is_empty());

    let unnamed: Deployment = serde_json::from_value(with("/metadata/name", Value::Null)).unwrap();
    let refusal = status(deployments.create(&PostParams::default(), &unnamed).await);
    assert_eq!((refusal.code, refusal.reason.as_str()), (422, "Invalid"), "{}", refusal.message);

    let nowhere: Api<Deployment> = Api::namespaced(client.clone(), "nowhere");
    assert_eq!(status(apply(&nowhere, "web", &good).await).code, 404);
    assert_eq!(status(deployments.get("absent").await).reason, "NotFound");

    let typo = with("/spec/template/spec/containers/0/imagePullPolice", json!("Always"));
    let mut strict = apply_params();
    strict.field_validation = Some(ValidationDirective::Strict);
    let refusal = status(deployments.patch("web", &strict, &Patch::Apply(&typo)).await);
    assert!(
        refusal.message.contains("unknown field \"spec.template.spec.containers[0].imagePullPolice\""),
        "{}",
        refusal.message
    );
    apply(&deployments, "web", &typo).await.unwrap();
    assert_eq!(fake.warnings(), ["unknown field \"spec.template.spec.containers[0].imagePullPolice\""]);

    let selector_change = with("/spec/selector/matchLabels", json!({ "app": "web", "v": "2" }))
        .tap_set("/spec/template/metadata/labels", json!({ "app": "web", "v": "2" }));
    let refusal = status(apply(&deployments, "web", &selector_change).await);
    assert!(refusal.message.contains("spec.selector: field is immutable"), "{}", refusal.message);
}

/// Sets a field of a JSON object in a chain.
trait TapSet {
    fn tap_set(self, pointer: &str, value: Value) -> Self;
}

impl TapSet for Value {
    fn tap_set(mut self, pointer: &str, value: Value) -> Self {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        self.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.to_owned(), value);
        self
    }
}

#[tokio::test]
async fn a_watcher_sees_the_deployment_added_then_modified_when_it_becomes_ready() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    for config in [watcher::Config::default(), watcher::Config::default().streaming_lists()] {
        let name =
            if config.initial_list_strategy == watcher::InitialListStrategy::ListWatch { "listed" } else { "streamed" };
        apply(&deployments, name, &deployment(name, "node:20", json!({ "app": name }))).await.unwrap();
        let mut events = watcher(deployments.clone(), config.labels(&format!("app={name}"))).boxed();
        assert!(matches!(soon(events.try_next()).await.unwrap(), Some(watcher::Event::Init)));
        let Some(watcher::Event::InitApply(added)) = soon(events.try_next()).await.unwrap() else {
            panic!("the object first")
        };
        assert_eq!(added.metadata.name.as_deref(), Some(name));
        assert!(added.status.is_none());
        assert!(matches!(soon(events.try_next()).await.unwrap(), Some(watcher::Event::InitDone)));

        fake.set_ready(NS, name);
        let Some(watcher::Event::Apply(modified)) = soon(events.try_next()).await.unwrap() else {
            panic!("a modification")
        };
        let status = modified.status.unwrap();
        assert_eq!(status.observed_generation, modified.metadata.generation);
        assert_eq!((status.replicas, status.ready_replicas, status.available_replicas), (Some(1), Some(1), Some(1)));
        let conditions = status.conditions.unwrap();
        let progressing = conditions.iter().find(|c| c.type_.as_deref() == Some("Progressing")).unwrap();
        assert_eq!(
            (progressing.status.as_deref(), progressing.reason.as_deref()),
            (Some("True"), Some("NewReplicaSetAvailable"))
        );
        assert!(
            conditions.iter().any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True"))
        );
    }
}

#[tokio::test]
async fn a_watch_resumes_from_a_listed_version_without_losing_events() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    apply(&deployments, "web", &deployment("web", "node:20", json!({ "app": "web", "team": "a" }))).await.unwrap();
    let listed = deployments.list(&ListParams::default().labels("team=a")).await.unwrap();
    let version = listed.metadata.resource_version.unwrap();

    // Changes between the LIST and the WATCH are replayed from the listed version.
    apply(&deployments, "api", &deployment("api", "node:20", json!({ "app": "api", "team": "a" }))).await.unwrap();
    apply(&deployments, "web", &deployment("web", "node:20", json!({ "app": "web", "team": "b" }))).await.unwrap();
    let mut events = deployments.watch(&WatchParams::default().labels("team=a"), &version).await.unwrap().boxed();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(match soon(events.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(d) => format!("ADDED {}", d.metadata.name.unwrap()),
            WatchEvent::Deleted(d) => format!("DELETED {}", d.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED api", "DELETED web"], "web left the selector's view");

    deployments.delete("api", &DeleteParams::default()).await.unwrap();
    assert!(matches!(soon(events.try_next()).await.unwrap().unwrap(), WatchEvent::Deleted(_)));

    fake.compact();
    assert!(soon(events.try_next()).await.unwrap().is_none(), "compaction closes the watch");
    let mut expired = deployments.watch(&WatchParams::default(), &version).await.unwrap().boxed();
    let WatchEvent::Error(gone) = soon(expired.try_next()).await.unwrap().unwrap() else { panic!("410 Gone") };
    assert_eq!(gone.code, 410);
}

async fn running_pod(fake: &FakeKube, client: &kube::Client, name: &str) -> String {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    apply(&deployments, name, &deployment(name, "node:20", json!({ "app": name }))).await.unwrap();
    fake.set_ready(NS, name);
    fake.pods_of(NS, name)[0].metadata.name.clone().unwrap()
}

#[tokio::test]
async fn pod_logs_can_be_tailed_and_followed() {
    let (fake, client) = fake().await;
    let pod = running_pod(&fake, &client, "web").await;
    for n in 1..=3 {
        fake.push_log(NS, "web", &format!("line {n}"));
    }
    let pods: Api<Pod> = Api::namespaced(client, NS);
    assert_eq!(pods.logs(&pod, &LogParams::default()).await.unwrap(), "line 1\nline 2\nline 3\n");
    assert_eq!(pods.logs(&pod, &LogParams { tail_lines: Some(1), ..LogParams::default() }).await.unwrap(), "line 3\n");
    let stamped = pods
        .logs(&pod, &LogParams { timestamps: true, since_seconds: Some(3600), ..LogParams::default() })
        .await
        .unwrap();
    assert!(stamped.lines().all(|line| line.split_once(' ').is_some_and(|(time, _)| time.ends_with('Z'))), "{stamped}");
    let init = LogParams { container: Some("fetch".into()), ..LogParams::default() };
    assert_eq!(pods.logs(&pod, &init).await.unwrap(), "");
    assert_eq!(
        status(pods.logs(&pod, &LogParams { container: Some("nope".into()), ..LogParams::default() }).await).code,
        400
    );

    let follow = LogParams { follow: true, tail_lines: Some(1), ..LogParams::default() };
    let mut lines = pods.log_stream(&pod, &follow).await.unwrap().lines();
    assert_eq!(soon(lines.next()).await.unwrap().unwrap(), "line 3");
    // The line above arrived, so the stream is registered: this one is delivered live.
    assert_eq!(fake.log_followers(NS, &pod), 1);
    fake.push_log(NS, &pod, "line 4");
    assert_eq!(soon(lines.next()).await.unwrap().unwrap(), "line 4");
    fake.break_logs(NS, "web");
    assert!(soon(lines.next()).await.unwrap().is_err(), "a broken stream ends with an error");

    let mut lines = pods
        .log_stream(&pod, &LogParams { follow: true, tail_lines: Some(0), ..LogParams::default() })
        .await
        .unwrap()
        .lines();
    fake.push_log(NS, &pod, "line 5");
    assert_eq!(soon(lines.next()).await.unwrap().unwrap(), "line 5");
    fake.crash_loop(NS, "web", &["boom", "Error: listen EADDRINUSE"]);
    assert!(soon(lines.next()).await.is_none(), "the container stopped: the stream ends");
    let previous = LogParams { previous: true, ..LogParams::default() };
    assert_eq!(pods.logs(&pod, &previous).await.unwrap(), "boom\nError: listen EADDRINUSE\n");
}

#[tokio::test]
async fn driven_pod_states_are_visible_through_the_typed_api() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    apply(&deployments, "web", &deployment("web", "registry.example/web:1", json!({ "app": "web" }))).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let only_pod = || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
        assert_eq!(list.items.len(), 1);
        list.items.into_iter().next().unwrap()
    };
    let condition = |d: &Deployment, kind: &str| -> (String, String) {
        let conditions = d.status.as_ref().unwrap().conditions.as_ref().unwrap();
        let c = conditions.iter().find(|c| c.type_.as_deref() == Some(kind)).unwrap();
        (c.status.clone().unwrap_or_default(), c.reason.clone().unwrap_or_default())
    };

    fake.fail_init(NS, "web", "digest mismatch: expected sha256:aaa");
    let pod = only_pod().await;
    assert!(pod.metadata.name.as_deref().unwrap().starts_with("web-"));
    assert!(pod.metadata.labels.as_ref().unwrap().contains_key("pod-template-hash"));
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let init = &status.init_container_statuses.unwrap()[0];
    let terminated = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (1, Some("Error")));
    assert_eq!(terminated.message.as_deref(), Some("digest mismatch: expected sha256:aaa"));
    let web = deployments.get("web").await.unwrap();
    assert_eq!(condition(&web, "Available"), ("False".into(), "MinimumReplicasUnavailable".into()));

    fake.image_pull_backoff(NS, "web", "registry.example/web:1");
    let app = &only_pod().await.status.unwrap().container_statuses.unwrap()[0];
    let waiting = app.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
    assert!(waiting.message.as_deref().unwrap().contains("registry.example/web:1"));

    fake.crash_loop(NS, "web", &["TypeError: x is not a function"]);
    let app = &only_pod().await.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(app.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(app.restart_count > 0);
    assert_eq!(app.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);

    fake.progress_deadline_exceeded(NS, "web");
    let web = deployments.get("web").await.unwrap();
    assert_eq!(condition(&web, "Progressing"), ("False".into(), "ProgressDeadlineExceeded".into()));

    fake.set_ready(NS, "web");
    let pod = only_pod().await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.container_statuses.unwrap()[0].ready);
    let web = deployments.get("web").await.unwrap();
    assert_eq!(condition(&web, "Progressing"), ("True".into(), "NewReplicaSetAvailable".into()));
    assert_eq!(web.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"], "1");

    // A new template rolls out next to the old pods until it is ready.
    apply(&deployments, "web", &deployment("web", "registry.example/web:2", json!({ "app": "web" }))).await.unwrap();
    fake.set_progressing(NS, "web");
    assert_eq!(fake.pods_of(NS, "web").len(), 2);
    let web = deployments.get("web").await.unwrap();
    assert_eq!(web.status.as_ref().unwrap().observed_generation, Some(2));
    assert_eq!(condition(&web, "Available"), ("True".into(), "MinimumReplicasAvailable".into()));
    fake.set_ready(NS, "web");
    assert_eq!(fake.pods_of(NS, "web").len(), 1);

    deployments.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(fake.pods(NS).is_empty(), "the deployment's pods go with it");
}

#[tokio::test]
async fn injected_failures_surface_unless_the_client_retries_them() {
    let (fake, client) = fake().await;
    let namespaces: Api<Namespace> = Api::all(client);
    fake.fail_next(1, 500);
    assert_eq!(status(namespaces.get(NS).await).reason, "InternalError");
    fake.fail_next(2, 503);
    assert_eq!(namespaces.get(NS).await.unwrap().metadata.name.as_deref(), Some(NS), "kube retries 503 by default");
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn a_kubeconfig_points_a_client_at_the_fake() {
    let (fake, _) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    assert_eq!(namespaces.get(NS).await.unwrap().status.unwrap().phase.as_deref(), Some("Active"));
}

#[tokio::test]
async fn replace_and_merge_patch_honour_resource_versions_and_keep_the_status_apart() {
    let (fake, client) = fake().await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let created = apply(&deployments, "web", &deployment("web", "node:20", json!({ "app": "web" }))).await.unwrap();

    let annotate = json!({ "metadata": { "annotations": { "aether.dev/restarted-at": "now" } } });
    let patched = deployments.patch("web", &PatchParams::default(), &Patch::Merge(&annotate)).await.unwrap();
    assert_eq!(patched.metadata.generation, Some(1));
    assert_eq!(patched.metadata.annotations.as_ref().unwrap()["aether.dev/restarted-at"], "now");

    let refusal = status(deployments.replace("web", &PostParams::default(), &created).await);
    assert_eq!((refusal.code, refusal.reason.as_str()), (409, "Conflict"), "{}", refusal.message);
    let mut current = patched.clone();
    current.spec.replicas = Some(3);
    let replaced = deployments.replace("web", &PostParams::default(), &current).await.unwrap();
    assert_eq!((replaced.metadata.generation, replaced.spec.replicas), (Some(2), Some(3)));

    let status_patch = json!({ "status": { "observedGeneration": 2, "replicas": 3 } });
    let with_status =
        deployments.patch_status("web", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().replicas, Some(3));
    assert_eq!(with_status.metadata.generation, Some(2), "a status write is not a spec change");
    let ignored = json!({ "status": { "replicas": 9 } });
    let unchanged = deployments.patch("web", &PatchParams::default(), &Patch::Merge(&ignored)).await.unwrap();
    assert_eq!(unchanged.status.unwrap().replicas, Some(3), "the main resource does not write the status");
    assert_eq!(fake.deployments(NS)[0].status.as_ref().unwrap().observed_generation, Some(2));
}
