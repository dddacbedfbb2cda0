//! The objects a release becomes on a cluster, built as plain values from the release and the
//! settings: one `Deployment` and one `Service` per app, and one `Secret` per deployment
//! holding its environment. `aether-server render-k8s` prints exactly these.
//!
//! Nothing from a request is ever pasted into a shell command line: the fetcher gets its
//! inputs as separate arguments, and the app's environment goes through a `Secret`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretEnvSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::settings::{KubernetesSettings, Strategy};
use crate::ports::ReleaseSpec;

/// The port every release listens on (`PORT`), in its pod and on its Service.
pub const APP_PORT: i32 = 8080;
/// Annotation carrying the artifact's digest on every object.
pub const DIGEST_ANNOTATION: &str = "aether.dev/artifact-digest";
/// The label values the control plane selects its objects by.
pub const MANAGED_BY: (&str, &str) = ("app", "aether");
pub const APP_LABEL: &str = "app_name";
pub const DEPLOYMENT_LABEL: &str = "deployment_id";
/// Container names, for logs and status.
pub const FETCH_CONTAINER: &str = "fetch";
pub const APP_CONTAINER: &str = "app";
/// The non-root user of both images.
const USER_ID: i64 = 1000;
/// Where the release is unpacked, and mounted read-only for the app.
const RELEASE_DIR: &str = "/app";

/// A release's objects, in the order they are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseObjects {
    pub secret: Secret,
    pub deployment: Deployment,
    pub service: Service,
}

/// Builds the objects of `release`, whose artifact the fetcher downloads from `artifact_url`.
pub fn release_objects(release: &ReleaseSpec, artifact_url: &str, settings: &KubernetesSettings) -> ReleaseObjects {
    ReleaseObjects {
        secret: env_secret(release, settings),
        deployment: deployment(release, artifact_url, settings),
        service: service(release, settings),
    }
}

/// `<app>-env-<deployment id>`: each deployment keeps its own environment, so a rollback runs
/// with the one it had.
pub fn secret_name(release: &ReleaseSpec) -> String {
    format!("{}-env-{}", release.app_name, release.deployment_id)
}

/// Labels selecting every pod of an app, whatever its deployment (the Service's selector).
pub fn app_selector(app_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()), (APP_LABEL.to_owned(), app_name.to_owned())])
}

fn labels(release: &ReleaseSpec) -> BTreeMap<String, String> {
    let mut labels = app_selector(&release.app_name);
    labels.insert(DEPLOYMENT_LABEL.to_owned(), release.deployment_id.clone());
    labels
}

fn metadata(name: String, release: &ReleaseSpec, settings: &KubernetesSettings) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(release)),
        annotations: Some(BTreeMap::from([(DIGEST_ANNOTATION.to_owned(), release.digest.clone())])),
        ..ObjectMeta::default()
    }
}

fn env_secret(release: &ReleaseSpec, settings: &KubernetesSettings) -> Secret {
    Secret {
        metadata: metadata(secret_name(release), release, settings),
        string_data: Some(release.env.clone()),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

fn service(release: &ReleaseSpec, settings: &KubernetesSettings) -> Service {
    Service {
        metadata: metadata(release.app_name.clone(), release, settings),
        spec: Some(ServiceSpec {
            selector: Some(app_selector(&release.app_name)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: APP_PORT,
                target_port: Some(IntOrString::Int(APP_PORT)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn deployment(release: &ReleaseSpec, artifact_url: &str, settings: &KubernetesSettings) -> Deployment {
    let strategy = match settings.strategy {
        Strategy::Rolling => DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            // The previous release serves until the new one is ready.
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        },
        Strategy::Replace => DeploymentStrategy { type_: Some("Recreate".to_owned()), rolling_update: None },
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(release)),
            annotations: Some(BTreeMap::from([(DIGEST_ANNOTATION.to_owned(), release.digest.clone())])),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec(release, artifact_url, settings)),
    };
    Deployment {
        metadata: metadata(release.app_name.clone(), release, settings),
        spec: DeploymentSpec {
            replicas: Some(settings.replicas),
            selector: LabelSelector { match_labels: Some(app_selector(&release.app_name)), ..LabelSelector::default() },
            strategy: Some(strategy),
            progress_deadline_seconds: Some(settings.progress_deadline_secs),
            revision_history_limit: Some(3),
            template,
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn pod_spec(release: &ReleaseSpec, artifact_url: &str, settings: &KubernetesSettings) -> PodSpec {
    PodSpec {
        init_containers: Some(vec![fetch_container(release, artifact_url, settings)]),
        containers: vec![app_container(release, settings)],
        volumes: Some(vec![empty_dir("release"), empty_dir("tmp")]),
        // The release has no business with the cluster's API.
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(USER_ID),
            run_as_group: Some(USER_ID),
            fs_group: Some(USER_ID),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// `aether-server fetch` with each value a separate argument: no shell ever sees them.
fn fetch_container(release: &ReleaseSpec, artifact_url: &str, settings: &KubernetesSettings) -> Container {
    let mut args = vec![
        "fetch".to_owned(),
        "--url".to_owned(),
        artifact_url.to_owned(),
        "--sha256".to_owned(),
        release.digest.clone(),
        "--dest".to_owned(),
        RELEASE_DIR.to_owned(),
        // A restarted pod runs its init container again over the release already there.
        "--replace".to_owned(),
    ];
    if let Some(signature) = &release.signature {
        args.extend(["--signature".to_owned(), signature.clone()]);
        for key in &release.public_keys {
            args.extend(["--public-key".to_owned(), key.clone()]);
        }
    }
    Container {
        name: FETCH_CONTAINER.to_owned(),
        image: Some(settings.fetcher_image.clone()),
        command: Some(vec!["aether-server".to_owned()]),
        args: Some(args),
        volume_mounts: Some(vec![mount("release", RELEASE_DIR, false), mount("tmp", "/tmp", false)]),
        security_context: Some(hardened()),
        resources: Some(resources(settings)),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    }
}

fn app_container(release: &ReleaseSpec, settings: &KubernetesSettings) -> Container {
    let mut env = vec![
        env_var("PORT", &APP_PORT.to_string()),
        // npm writes its cache and logs under HOME; the root filesystem is read-only.
        env_var("HOME", "/tmp"),
        env_var("NPM_CONFIG_UPDATE_NOTIFIER", "false"),
    ];
    if !release.env.contains_key("NODE_ENV") {
        env.push(env_var("NODE_ENV", "production"));
    }
    let probe = |initial_delay_seconds: i32| Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(APP_PORT), host: None }),
        initial_delay_seconds: Some(initial_delay_seconds),
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    Container {
        name: APP_CONTAINER.to_owned(),
        image: Some(settings.node_image.clone()),
        // `npm start` runs package.json's `scripts.start`, or `node server.js` without one.
        command: Some(vec!["npm".to_owned(), "start".to_owned()]),
        working_dir: Some(RELEASE_DIR.to_owned()),
        env: Some(env),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource { name: secret_name(release), optional: Some(false) }),
            ..EnvFromSource::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: APP_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe(1)),
        liveness_probe: Some(probe(10)),
        volume_mounts: Some(vec![mount("release", RELEASE_DIR, true), mount("tmp", "/tmp", false)]),
        security_context: Some(hardened()),
        resources: Some(resources(settings)),
        ..Container::default()
    }
}

fn hardened() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(USER_ID),
        run_as_group: Some(USER_ID),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), add: None }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".to_owned(), localhost_profile: None }
}

fn resources(settings: &KubernetesSettings) -> ResourceRequirements {
    let amounts = BTreeMap::from([
        ("cpu".to_owned(), Quantity(settings.cpu.clone())),
        ("memory".to_owned(), Quantity(settings.memory.clone())),
    ]);
    ResourceRequirements { requests: Some(amounts.clone()), limits: Some(amounts), ..ResourceRequirements::default() }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.to_owned(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), value_from: None }
}
