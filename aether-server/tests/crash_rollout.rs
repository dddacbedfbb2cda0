#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A server on the local runtime killed (SIGKILL) while one release runs and the next one is
//! starting: its app processes outlive it, in process groups of their own. The server started
//! next on the same data directory must end them before it restores the running release and
//! resumes the rollout, so that afterwards every app process is its own and the resumed
//! deployment settles.

#[path = "support/black_box.rs"]
mod black_box;
#[path = "support/node_app.rs"]
mod node_app;

use black_box::{Site, alive};

/// An app that listens only once `gate` exists: a release that starts slowly, for as long as
/// the test wants.
fn gated_server_js(gate: &std::path::Path) -> String {
    format!(
        r#"const fs = require("fs");
const http = require("http");
const open = () => http.createServer((req, res) => res.end("gated " + process.env.NODE_ENV))
  .listen(Number(process.env.PORT), "127.0.0.1");
const wait = () => (fs.existsSync({gate:?}) ? open() : setTimeout(wait, 20));
wait();
"#,
        gate = gate.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_rollout_the_restarted_server_ends_the_orphans_and_settles() {
    let site = Site::new(&[("AETHER_HEALTH_TIMEOUT_MS", "60000")]);
    let gate = site.data().join("gate");
    let mut server = site.start();
    site.create_app(&server).await;

    let one = site.upload(&server, &node_app::pack_app(&node_app::server_js("one")).0).await;
    let first = site.deploy(&server, &one).await;
    site.deployment_until(&server, &first, |d| d["status"] == "running").await;
    let slow = site.upload(&server, &node_app::pack_app(&gated_server_js(&gate)).0).await;
    let second = site.deploy(&server, &slow).await;
    // Its process runs and cannot listen yet: the rollout is in the middle.
    site.app_started(&second).await;
    let (_, rolling) = site.call(&server, reqwest::Method::GET, &format!("/deployments/{second}"), None).await;
    assert_eq!(rolling["status"], "deploying", "{rolling}");

    server.kill();
    let orphans = site.app_processes();
    assert!(
        orphans.iter().any(|p| p.deployment_id.as_deref() == Some(first.as_str()))
            && orphans.iter().any(|p| p.deployment_id.as_deref() == Some(second.as_str())),
        "both releases outlive the killed server: {orphans:?}"
    );
    // The orphan could now serve too, as it would if the app merely started slowly.
    std::fs::write(&gate, "").unwrap();

    let mut server = site.start();
    let resumed = site.deployment_until(&server, &second, |d| d["status"] != "deploying").await;
    assert_eq!(resumed["status"], "running", "the resumed rollout ends like the first would have: {resumed}");
    for orphan in &orphans {
        assert!(!alive(orphan.pid), "{orphan:?} of the killed server still runs");
    }
    let (_, first_now) = site.call(&server, reqwest::Method::GET, &format!("/deployments/{first}"), None).await;
    assert_eq!(first_now["status"], "superseded", "{first_now}");
    site.assert_recovered(&server).await;

    server.terminate();
    assert_eq!(site.app_processes(), Vec::new(), "a graceful stop leaves no app process");
}
