//! The deploy pipeline as a Rust program embeds it, against a real control plane on
//! 127.0.0.1:0 (its in-memory runtime stands in for processes; the real runtime is covered by
//! the CLI's end-to-end test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use aether_core::deployment::DeploymentStatus;
use aether_sdk::deploy::{DeployEvent, DeployOptions, deploy};
use aether_sdk::{BuildOptions, ErrorKind};

mod support;
use support::{DEPLOYER, READER, TestServer, app};

/// A dependency-free Node project, so no npm run is needed.
fn project(dir: &Path, body: &str) -> std::path::PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("package.json"),
        r#"{"name":"@team/Hello_App","version":"1.2.3","scripts":{"start":"node index.js"}}"#,
    )
    .unwrap();
    std::fs::write(root.join("index.js"), body).unwrap();
    root
}

fn options(root: &Path, cache: &Path) -> DeployOptions {
    let mut build = BuildOptions::new(root, cache);
    build.install = false;
    DeployOptions::new(build)
}

#[tokio::test]
async fn deploys_then_skips_an_unchanged_redeploy_then_rolls_out_a_change() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path(), "console.log('v1')\n");
    let client = server.client(Some(DEPLOYER));

    let mut events = Vec::new();
    let first = deploy(&client, options(&root, &dir.path().join("cache")), |e| events.push(e)).await.unwrap();
    assert_eq!(first.app.as_str(), "team-hello-app", "the package name, normalised");
    assert!(first.app_created);
    assert_eq!(first.status, DeploymentStatus::Running);
    assert_eq!(first.url.as_deref(), Some(format!("http://fake.invalid/{}", first.deployment_id).as_str()));
    assert_eq!(first.uploaded_bytes, first.build.size_bytes);
    assert!(!first.unchanged && !first.timed_out);
    assert!(first.durations_ms.total >= first.durations_ms.upload);
    assert!(events.iter().any(|e| matches!(e, DeployEvent::Upload(p) if p.bytes_done == p.bytes_total)));
    assert!(events.contains(&DeployEvent::Status(DeploymentStatus::Running)));

    let again = deploy(&client, options(&root, &dir.path().join("cache")), |_| {}).await.unwrap();
    assert_eq!((again.uploaded_bytes, again.unchanged, again.app_created), (0, true, false));
    assert_eq!(again.deployment_id, first.deployment_id);

    let mut forced = options(&root, &dir.path().join("cache"));
    forced.force = true;
    let forced = deploy(&client, forced, |_| {}).await.unwrap();
    assert_eq!((forced.uploaded_bytes, forced.unchanged), (0, false));
    assert_ne!(forced.deployment_id, first.deployment_id);

    std::fs::write(root.join("index.js"), "console.log('v2')\n").unwrap();
    let changed = deploy(&client, options(&root, &dir.path().join("cache")), |_| {}).await.unwrap();
    assert_ne!(changed.build.digest, first.build.digest);
    assert!(changed.uploaded_bytes > 0);
    assert_eq!(changed.status, DeploymentStatus::Running);
    // The old release is marked superseded right after the new one is recorded running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let history = client.app_deployments(&app("team-hello-app")).await.unwrap();
        let running: Vec<_> = history.iter().filter(|d| d.status == DeploymentStatus::Running).collect();
        if running.len() == 1 {
            assert_eq!(running[0].id, changed.deployment_id);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new release never superseded the old: {history:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_release_that_fails_is_reported_not_hidden() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path(), "process.exit(1)\n");
    let client = server.client(Some(DEPLOYER));
    // Learn the digest first, then tell the runtime to fail it.
    let mut dry = BuildOptions::new(&root, dir.path().join("cache"));
    dry.install = false;
    dry.dry_run = true;
    let digest = aether_sdk::build(&dry, &mut |_| {}).unwrap().digest;
    server.state.runtime.fail_digest(&digest);

    let mut named = options(&root, &dir.path().join("cache"));
    named.app = Some(app("broken"));
    let report = deploy(&client, named, |_| {}).await.unwrap();
    assert_eq!(report.status, DeploymentStatus::Failed);
    assert!(report.failure_reason.unwrap().contains("exited at start"));
    assert_eq!(report.app.as_str(), "broken");
}

#[tokio::test]
async fn no_wait_returns_before_the_rollout_and_readers_cannot_deploy() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path(), "console.log('hi')\n");

    let mut quick = options(&root, &dir.path().join("cache"));
    quick.wait = false;
    let report = deploy(&server.client(Some(DEPLOYER)), quick, |_| {}).await.unwrap();
    assert!(!report.timed_out);
    assert!(!report.deployment_id.is_empty());

    let std::result::Result::Err(error) =
        deploy(&server.client(Some(READER)), options(&root, &dir.path().join("cache")), |_| {}).await
    else {
        panic!("a reader token deployed");
    };
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");

    let mut dry = options(&root, &dir.path().join("cache"));
    dry.build.dry_run = true;
    let error = deploy(&server.client(Some(DEPLOYER)), dry, |_| {}).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Usage);
}
