#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Kubernetes runtime against the fake API server over real HTTP on 127.0.0.1 (no real
//! cluster can run here): what it applies, how it follows a rollout to ready or failed, what
//! it does on failure, after a restart, and how it reads pod logs.

use std::sync::Arc;
use std::time::Duration;

use aether_server::artifacts::LocalArtifactStore;
use aether_server::ports::{Health, LogQuery, ReleaseSpec, Rollout, RolloutProgress, Runtime};
use aether_server::runtime::kubernetes::objects::{DEPLOYMENT_LABEL, secret_name};
use aether_server::runtime::kubernetes::{KubernetesRuntime, KubernetesSettings};
use aether_server::testing::kube::FakeKube;
use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;

const NS: &str = "aether";
const APP: &str = "web";
/// Every wait on the runtime's reports ends within this, so a hang is a failure.
const PATIENCE: Duration = Duration::from_secs(20);

struct Fixture {
    fake: FakeKube,
    runtime: KubernetesRuntime<LocalArtifactStore>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let fake = FakeKube::start().await;
        fake.add_namespace(NS);
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalArtifactStore::new(dir.path().to_owned(), "http://aether.test".into(), [3; 32]).unwrap();
        let settings =
            KubernetesSettings { fetcher_image: "aether-server:test".into(), ..KubernetesSettings::default() };
        let runtime = KubernetesRuntime::new(fake.client(), Arc::new(blobs), settings, Duration::from_secs(600));
        Self { fake, runtime, _dir: dir }
    }

    /// A second runtime on the same cluster: a restarted control plane.
    fn restarted(&self) -> KubernetesRuntime<LocalArtifactStore> {
        let blobs = LocalArtifactStore::new(self._dir.path().to_owned(), "http://aether.test".into(), [3; 32]).unwrap();
        let settings =
            KubernetesSettings { fetcher_image: "aether-server:test".into(), ..KubernetesSettings::default() };
        KubernetesRuntime::new(self.fake.client(), Arc::new(blobs), settings, Duration::from_secs(600))
    }

    fn deployment(&self) -> Deployment {
        self.fake.get::<Deployment>(NS, APP).expect("the app's Deployment")
    }

    fn rolling_out(&self) -> String {
        let labels = self.deployment().spec.template.metadata.unwrap().labels.unwrap();
        labels[DEPLOYMENT_LABEL].clone()
    }
}

fn release(id: &str) -> ReleaseSpec {
    ReleaseSpec {
        deployment_id: id.to_owned(),
        app_name: APP.to_owned(),
        digest: "ab".repeat(32),
        storage_key: format!("artifacts/sha256/{}.tar.gz", "ab".repeat(32)),
        signature: None,
        public_keys: Vec::new(),
        port: None,
        env: [("GREETING".to_owned(), "hello".to_owned())].into(),
    }
}

/// The next report of the rollout.
async fn next(rollout: &mut Rollout) -> RolloutProgress {
    tokio::time::timeout(PATIENCE, rollout.next()).await.expect("a report in time").expect("the rollout went on")
}

/// Reports until the rollout ends; returns the steps and the end.
async fn until_end(rollout: &mut Rollout) -> (Vec<String>, RolloutProgress) {
    let mut steps = Vec::new();
    loop {
        match next(rollout).await {
            RolloutProgress::Step(step) => steps.push(step),
            end => return (steps, end),
        }
    }
}

#[tokio::test]
async fn a_release_is_a_secret_a_deployment_and_a_service_applied_server_side() {
    let fx = Fixture::new().await;
    fx.runtime.start(&release("11111111-0000-4000-8000-000000000001")).await.unwrap();
    assert_eq!(fx.fake.apply_count(), 3);
    let applies: Vec<_> = fx.fake.requests().into_iter().filter(|r| r.method == "PATCH").collect();
    assert!(applies.iter().all(|r| r.param("fieldManager").as_deref() == Some("aether")), "{applies:?}");
    assert!(applies.iter().all(|r| r.content_type.as_deref() == Some("application/apply-patch+yaml")), "{applies:?}");

    let deployment = fx.deployment();
    let labels = deployment.metadata.labels.clone().unwrap();
    assert_eq!((labels["app"].as_str(), labels["app_name"].as_str()), ("aether", APP));
    assert_eq!(labels[DEPLOYMENT_LABEL], "11111111-0000-4000-8000-000000000001");
    let annotations = deployment.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["aether.dev/artifact-digest"], "ab".repeat(32));
    let strategy = deployment.spec.strategy.clone().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let pod = deployment.spec.template.spec.clone().unwrap();
    let fetch = &pod.init_containers.as_ref().unwrap()[0];
    let args = fetch.args.clone().unwrap();
    assert_eq!(fetch.image.as_deref(), Some("aether-server:test"));
    assert!(args.windows(2).any(|w| w[0] == "--sha256" && w[1] == "ab".repeat(32)), "{args:?}");
    let url = &args[args.iter().position(|a| a == "--url").unwrap() + 1];
    assert!(url.starts_with("http://aether.test/downloads/"), "{url}");
    let app = &pod.containers[0];
    let security = app.security_context.clone().unwrap();
    assert_eq!((security.run_as_user, security.read_only_root_filesystem), (Some(1000), Some(true)));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    // The environment is in the Secret, never in the Deployment's plain env.
    let plain = serde_json::to_string(&deployment).unwrap();
    assert!(!plain.contains("hello"), "an environment value leaked into the Deployment");
    let secret = fx
        .fake
        .secrets(NS)
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(&secret_name(&release("11111111-0000-4000-8000-000000000001"))))
        .unwrap();
    let stored = secret.data.unwrap();
    assert_eq!(stored["GREETING"].0, b"hello");
    assert_eq!(fx.fake.services(NS).len(), 1);
}

#[tokio::test]
async fn a_rollout_reports_its_steps_and_is_ready_at_the_service_url() {
    let fx = Fixture::new().await;
    let spec = release("22222222-0000-4000-8000-000000000002");
    fx.runtime.start(&spec).await.unwrap();
    let mut rollout = fx.runtime.watch(&spec).await.unwrap();
    fx.fake.set_progressing(NS, APP);
    // Until both watches have listed, the first step may be "waiting for the Deployment".
    loop {
        match next(&mut rollout).await {
            RolloutProgress::Step(step) if step == "pulling artifact" => break,
            RolloutProgress::Step(step) => assert_eq!(step, "waiting for the Deployment"),
            end => panic!("the rollout ended early: {end:?}"),
        }
    }
    fx.fake.set_ready(NS, APP);
    let (_, end) = until_end(&mut rollout).await;
    assert_eq!(end, RolloutProgress::Ready { url: Some("http://web.aether.svc.cluster.local:8080".into()) });
    assert_eq!(
        fx.runtime.check(&spec).await.unwrap(),
        Health::Serving { url: Some("http://web.aether.svc.cluster.local:8080".into()) }
    );
    let gone = fx.runtime.check(&release("99999999-0000-4000-8000-000000000009")).await.unwrap();
    assert!(matches!(gone, Health::Gone { .. }), "{gone:?}");
}

#[tokio::test]
async fn a_failed_fetch_fails_with_its_message_and_the_previous_release_comes_back() {
    let fx = Fixture::new().await;
    let v1 = release("33333333-0000-4000-8000-000000000001");
    fx.runtime.start(&v1).await.unwrap();
    fx.fake.set_ready(NS, APP);
    let v2 = ReleaseSpec { digest: "cd".repeat(32), ..release("33333333-0000-4000-8000-000000000002") };
    fx.runtime.start(&v2).await.unwrap();
    let mut rollout = fx.runtime.watch(&v2).await.unwrap();
    fx.fake.fail_init(NS, APP, "digest mismatch: expected cdcd, got abab");
    let (_, end) = until_end(&mut rollout).await;
    let RolloutProgress::Failed { reason } = end else { panic!("{end:?}") };
    assert_eq!(reason, "the artifact fetcher failed: digest mismatch: expected cdcd, got abab");
    fx.runtime.stop(&v2, Some(&v1)).await.unwrap();
    assert_eq!(fx.rolling_out(), v1.deployment_id, "the previous release was not put back");
    assert!(fx.fake.secrets(NS).iter().all(|s| s.metadata.name.as_deref() != Some(&secret_name(&v2))));
}

#[tokio::test]
async fn a_crash_loop_fails_with_the_last_lines() {
    let fx = Fixture::new().await;
    let spec = release("44444444-0000-4000-8000-000000000004");
    fx.runtime.start(&spec).await.unwrap();
    let mut rollout = fx.runtime.watch(&spec).await.unwrap();
    fx.fake.crash_loop(NS, APP, &["starting", "Error: cannot find module 'express'"]);
    let (steps, end) = until_end(&mut rollout).await;
    let expected = "CrashLoopBackOff: starting | Error: cannot find module 'express'";
    assert_eq!(end, RolloutProgress::Failed { reason: expected.into() });
    assert_eq!(steps.last().map(String::as_str), Some(expected));
}

#[tokio::test]
async fn image_pull_backoff_is_a_step_and_a_stuck_rollout_fails_at_its_deadline() {
    let fx = Fixture::new().await;
    let spec = release("55555555-0000-4000-8000-000000000005");
    fx.runtime.start(&spec).await.unwrap();
    let mut rollout = fx.runtime.watch(&spec).await.unwrap();
    fx.fake.image_pull_backoff(NS, APP, "aether-nodejs:20-slim");
    let step = loop {
        if let RolloutProgress::Step(step) = next(&mut rollout).await
            && step.starts_with("ImagePullBackOff")
        {
            break step;
        }
    };
    assert!(step.contains("aether-nodejs:20-slim"), "{step}");
    fx.fake.progress_deadline_exceeded(NS, APP);
    let (_, end) = until_end(&mut rollout).await;
    assert!(
        matches!(&end, RolloutProgress::Failed { reason } if reason.starts_with("ProgressDeadlineExceeded")),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_restarted_control_plane_follows_the_rollout_without_applying_again() {
    let fx = Fixture::new().await;
    let spec = release("66666666-0000-4000-8000-000000000006");
    fx.runtime.start(&spec).await.unwrap();
    let applied = fx.fake.apply_count();
    let restarted = fx.restarted();
    let mut rollout = restarted.resume(&spec).await.unwrap();
    assert_eq!(fx.fake.apply_count(), applied, "resuming applied the release again");
    fx.fake.set_ready(NS, APP);
    assert!(matches!(until_end(&mut rollout).await.1, RolloutProgress::Ready { .. }));
    // A rollout that never reached the cluster is applied when resumed.
    let lost = release("66666666-0000-4000-8000-000000000007");
    let _rollout = restarted.resume(&lost).await.unwrap();
    assert_eq!(fx.rolling_out(), lost.deployment_id);
}

#[tokio::test]
async fn stopping_a_retired_release_leaves_its_successor_running() {
    let fx = Fixture::new().await;
    let (v1, v2) = (release("77777777-0000-4000-8000-000000000001"), release("77777777-0000-4000-8000-000000000002"));
    fx.runtime.start(&v1).await.unwrap();
    fx.runtime.start(&v2).await.unwrap();
    fx.fake.set_ready(NS, APP);
    fx.runtime.stop(&v1, None).await.unwrap();
    assert_eq!(fx.rolling_out(), v2.deployment_id);
    let secrets: Vec<_> = fx.fake.secrets(NS).into_iter().filter_map(|s| s.metadata.name).collect();
    assert_eq!(secrets, [secret_name(&v2)]);
    // Without a fallback, the app's last release takes its objects with it.
    fx.runtime.stop(&v2, None).await.unwrap();
    assert!(fx.fake.deployments(NS).is_empty() && fx.fake.services(NS).is_empty());
}

#[tokio::test]
async fn logs_come_from_the_pods_with_their_deployment() {
    let fx = Fixture::new().await;
    let spec = release("88888888-0000-4000-8000-000000000008");
    fx.runtime.start(&spec).await.unwrap();
    fx.fake.set_ready(NS, APP);
    fx.fake.push_log(NS, APP, "listening on 8080");
    fx.fake.push_log(NS, APP, "GET /");
    let tail: Vec<_> =
        fx.runtime.logs(APP, &LogQuery { tail: 1, ..LogQuery::default() }).await.unwrap().collect().await;
    let rendered: Vec<String> = tail.into_iter().map(|line| line.unwrap().render()).collect();
    assert_eq!(rendered.len(), 1, "{rendered:?}");
    assert!(rendered[0].ends_with(" 88888888 stdout: GET /"), "{rendered:?}");

    let mut follow = fx.runtime.follow(APP, &LogQuery { tail: 10, ..LogQuery::default() }).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, follow.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.text, "listening on 8080");
    let second = tokio::time::timeout(PATIENCE, follow.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second.text, "GET /");
    fx.fake.push_log(NS, APP, "GET /health");
    let live = tokio::time::timeout(PATIENCE, follow.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((live.text.as_str(), live.deployment_id.as_str()), ("GET /health", spec.deployment_id.as_str()));
    // A broken pod log stream ends the follower's stream with an error.
    fx.fake.break_logs(NS, APP);
    let broken = tokio::time::timeout(PATIENCE, follow.next()).await.unwrap().unwrap();
    assert!(broken.is_err(), "{broken:?}");
}
