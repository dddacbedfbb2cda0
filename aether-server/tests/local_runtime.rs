#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The local-process runtime with real `npm start` and `node`: artifacts are packed by core
//! from small apps written here, stored in a local artifact store, and run on loopback ports.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_core::signing::SigningKey;
use aether_server::artifacts::local::LocalArtifactStore;
use aether_server::ports::{ArtifactStore, LogQuery, ReleaseSpec, RolloutProgress, Runtime};
use aether_server::runtime::local::{LocalRuntime, LocalRuntimeConfig};
use futures_util::StreamExt as _;

#[path = "support/node_app.rs"]
mod node_app;

use node_app::{pack_app, server_js as server};

const APP: &str = "web";

struct Fixture {
    dir: tempfile::TempDir,
    blobs: Arc<LocalArtifactStore>,
    runtime: LocalRuntime<LocalArtifactStore>,
}

/// A stored artifact: its digest and key.
struct Stored {
    digest: String,
    key: String,
}

impl Fixture {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut LocalRuntimeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let blobs =
            Arc::new(LocalArtifactStore::new(dir.path().join("artifacts"), "http://unused".into(), [1; 32]).unwrap());
        let mut config = LocalRuntimeConfig::new(dir.path(), Duration::from_secs(20));
        tune(&mut config);
        let runtime = LocalRuntime::new(Arc::clone(&blobs), config).unwrap();
        Self { dir, blobs, runtime }
    }

    fn releases(&self) -> PathBuf {
        self.dir.path().join("releases")
    }

    /// A file path the apps may write to (their pids), outside any release directory.
    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Packs a Node app whose `server.js` is `server_js` and stores the artifact.
    async fn store(&self, server_js: &str) -> Stored {
        let (bytes, digest) = pack_app(server_js);
        let key = format!("artifacts/sha256/{digest}.tar.gz");
        let upload_id = uuid::Uuid::new_v4().to_string();
        self.blobs.put_staged(&upload_id, &mut bytes.as_slice(), u64::MAX, &digest).await.unwrap();
        self.blobs.publish(&upload_id, &key).await.unwrap();
        Stored { digest, key }
    }

    fn spec(&self, id: &str, stored: &Stored) -> ReleaseSpec {
        ReleaseSpec {
            deployment_id: id.to_owned(),
            app_name: APP.to_owned(),
            digest: stored.digest.clone(),
            storage_key: stored.key.clone(),
            signature: None,
            public_keys: Vec::new(),
            port: None,
            env: std::collections::BTreeMap::new(),
        }
    }

    async fn apply(&self, id: &str, stored: &Stored) -> Result<String, String> {
        self.roll_out(&self.spec(id, stored)).await
    }

    /// Starts the release and follows it to its end: its URL, or why it failed.
    async fn roll_out(&self, spec: &ReleaseSpec) -> Result<String, String> {
        Ok(self.roll_out_reporting(spec).await?.1)
    }

    /// [`Self::roll_out`], with the steps reported on the way.
    async fn roll_out_reporting(&self, spec: &ReleaseSpec) -> Result<(Vec<String>, String), String> {
        self.runtime.start(spec).await.map_err(|e| e.to_string())?;
        let reports: Vec<RolloutProgress> = self.runtime.watch(spec).await.unwrap().collect().await;
        let mut steps = Vec::new();
        for report in reports {
            match report {
                RolloutProgress::Step(step) => steps.push(step),
                RolloutProgress::Ready { url } => return Ok((steps, url.expect("a URL"))),
                RolloutProgress::Failed { reason } => return Err(reason),
            }
        }
        panic!("the rollout of {} ended without an outcome", spec.deployment_id)
    }

    /// A release known only by its id: enough to stop it or ask whether it serves.
    fn by_id(&self, id: &str) -> ReleaseSpec {
        self.spec(id, &Stored { digest: String::new(), key: String::new() })
    }

    async fn stop(&self, id: &str) {
        self.runtime.stop(&self.by_id(id), None).await.unwrap();
    }

    /// The URL the release serves at, if it serves.
    async fn serving(&self, id: &str) -> Option<String> {
        let reports: Vec<RolloutProgress> = self.runtime.watch(&self.by_id(id)).await.unwrap().collect().await;
        match reports.as_slice() {
            [RolloutProgress::Ready { url }] => url.clone(),
            _ => None,
        }
    }

    async fn logs(&self, query: LogQuery) -> Vec<String> {
        let lines: Vec<_> = self.runtime.logs(APP, &query).await.unwrap().collect().await;
        lines.into_iter().map(|line| line.unwrap().render()).collect()
    }
}

fn all() -> LogQuery {
    LogQuery { tail: 1000, ..LogQuery::default() }
}

async fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
    let response = client.get(url).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Whether the process runs (a zombie waiting for its reaper does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

async fn read_pids(path: &Path) -> Vec<u32> {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.split_whitespace().map(|p| p.parse().unwrap()).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} was never written", path.display());
}

fn port_of(url: &str) -> u16 {
    url.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn refuses(url: &str) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port_of(url))).is_err()
}

#[tokio::test]
async fn a_release_serves_in_production_mode_and_its_output_is_logged() {
    let fx = Fixture::new();
    let stored = fx.store(&server("v1")).await;
    let url = fx.apply("11111111-aaaa", &stored).await.unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(get(&url).await.unwrap(), (200, "v1 production".to_owned()));
    assert_eq!(fx.serving("11111111-aaaa").await.as_deref(), Some(url.as_str()));
    assert!(fx.releases().join(APP).join("11111111-aaaa").join("server.js").is_file());

    let lines = fx.logs(all()).await;
    let expected = format!(" 11111111 stdout: v1 listening on {}", port_of(&url));
    assert!(lines.iter().any(|l| l.ends_with(&expected)), "{lines:?}");
    assert!(lines.iter().all(|l| l.as_bytes().get(23) == Some(&b'Z')), "RFC 3339 ms timestamps: {lines:?}");

    fx.stop("11111111-aaaa").await;
    assert!(refuses(&url), "the release still listens after stop");
    assert_eq!(fx.serving("11111111-aaaa").await, None);
    assert!(!fx.releases().join(APP).join("11111111-aaaa").exists(), "the release directory was kept");
    fx.stop("11111111-aaaa").await;
}

#[tokio::test]
async fn a_replacing_release_keeps_serving_after_the_first_stops() {
    let fx = Fixture::new();
    let first = fx.apply("first", &fx.store(&server("v1")).await).await.unwrap();
    let second = fx.apply("second", &fx.store(&server("v2")).await).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(get(&first).await.unwrap().1, "v1 production");
    fx.stop("first").await;
    assert!(refuses(&first));
    assert_eq!(get(&second).await.unwrap(), (200, "v2 production".to_owned()));
    assert!(fx.serving("second").await.is_some());
}

#[tokio::test]
async fn a_release_exiting_at_start_fails_with_its_status_and_output_while_the_old_one_serves() {
    let fx = Fixture::new();
    let first = fx.apply("first", &fx.store(&server("v1")).await).await.unwrap();
    let crashing = fx.store("console.log(\"starting\");\nconsole.error(\"boom\");\nprocess.exit(1);\n").await;
    let Err(reason) = fx.apply("crashing", &crashing).await else { panic!("it started") };
    assert!(reason.contains("exited with status 1"), "{reason}");
    assert!(reason.contains("boom") && reason.contains("starting"), "{reason}");
    assert_eq!(get(&first).await.unwrap(), (200, "v1 production".to_owned()));
    assert_eq!(fx.serving("crashing").await, None);
    assert!(!fx.releases().join(APP).join("crashing").exists(), "the failed release directory was kept");
}

#[tokio::test]
async fn a_release_that_never_listens_fails_after_the_health_timeout_and_is_killed() {
    let fx = Fixture::with(|c| c.health_timeout = Duration::from_millis(1500));
    let pids = fx.scratch("silent.pids");
    let script = format!(
        "require(\"fs\").writeFileSync({:?}, process.pid + \"\\n\");\nconsole.log(\"thinking\");\nsetInterval(() => {{}}, 1000);\n",
        pids.display().to_string()
    );
    let started = Instant::now();
    let Err(reason) = fx.apply("silent", &fx.store(&script).await).await else {
        panic!("a release that never listens started")
    };
    let waited = started.elapsed();
    assert!(reason.contains("did not listen on port") && reason.contains("within 1500 ms"), "{reason}");
    assert!(reason.contains("thinking"), "{reason}");
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10), "{waited:?}");
    let pid = read_pids(&pids).await[0];
    assert!(!alive(pid), "the release's node process {pid} survived its failed start");
}

#[tokio::test]
async fn wrong_digests_and_signatures_fail_before_anything_runs() {
    let fx = Fixture::new();
    let pids = fx.scratch("never.pids");
    let script =
        format!("require(\"fs\").writeFileSync({:?}, \"ran\\n\");\n{}", pids.display().to_string(), server("x"));
    let stored = fx.store(&script).await;

    let tampered = ReleaseSpec { digest: "0".repeat(64), ..fx.spec("tampered", &stored) };
    let Err(reason) = fx.roll_out(&tampered).await else { panic!("a wrong digest ran") };
    assert!(reason.contains(&stored.digest) && reason.contains(&"0".repeat(64)), "{reason}");

    let key = SigningKey::from_seed([7; 32]);
    let stranger = SigningKey::from_seed([9; 32]);
    let forged = ReleaseSpec {
        signature: Some(stranger.sign_digest(&stored.digest)),
        public_keys: vec![key.public_key_hex()],
        ..fx.spec("forged", &stored)
    };
    let Err(reason) = fx.roll_out(&forged).await else { panic!("a forged signature ran") };
    assert!(reason.contains("signature"), "{reason}");

    // Verification comes before the start: once the rollout failed, nothing can run any more.
    assert!(!pids.exists(), "the artifact ran although it failed verification");
    assert!(fx.logs(all()).await.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(fx.releases().join(APP))
        .map(|dir| dir.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "files left in the releases directory: {leftovers:?}");

    let signed = ReleaseSpec {
        signature: Some(key.sign_digest(&stored.digest)),
        public_keys: vec![stranger.public_key_hex(), key.public_key_hex()],
        ..fx.spec("signed", &stored)
    };
    let url = fx.roll_out(&signed).await.unwrap();
    assert_eq!(get(&url).await.unwrap().0, 200);
    assert!(pids.exists());
}

#[tokio::test]
async fn stop_kills_the_whole_process_group_even_when_it_ignores_sigterm() {
    let fx = Fixture::with(|c| c.stop_grace = Duration::from_millis(500));
    let pids = fx.scratch("group.pids");
    let script = format!(
        r#"process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
const child = require("child_process").spawn(process.execPath, ["-e", "process.on('SIGTERM', () => {{}}); setInterval(() => {{}}, 1000)"], {{ stdio: "ignore" }});
require("fs").writeFileSync({:?}, process.pid + " " + child.pid + "\n");
{}"#,
        pids.display().to_string(),
        server("stubborn")
    );
    let url = fx.apply("stubborn", &fx.store(&script).await).await.unwrap();
    let pids = read_pids(&pids).await;
    assert!(pids.iter().all(|pid| alive(*pid)), "{pids:?}");
    let started = Instant::now();
    fx.stop("stubborn").await;
    assert!(started.elapsed() >= Duration::from_millis(500), "SIGKILL came before the grace period ended");
    assert!(refuses(&url), "the release still listens after stop");
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the release survived stop");
    }
    let lines = fx.logs(all()).await;
    assert!(lines.iter().any(|l| l.ends_with("stdout: ignoring SIGTERM")), "SIGTERM came first: {lines:?}");
}

#[tokio::test]
async fn shutdown_stops_every_release_and_refuses_new_ones() {
    let fx = Fixture::new();
    let one = fx.apply("one", &fx.store(&server("one")).await).await.unwrap();
    let two = fx.apply("two", &fx.store(&server("two")).await).await.unwrap();
    fx.runtime.shutdown().await;
    assert!(refuses(&one) && refuses(&two), "a release survived shutdown");
    let Err(reason) = fx.apply("three", &fx.store(&server("three")).await).await else {
        panic!("a release started after shutdown")
    };
    assert!(reason.contains("shutting down"), "{reason}");
}

#[tokio::test]
async fn follow_sends_the_tail_then_lines_printed_later() {
    let fx = Fixture::new();
    let url = fx.apply("talker", &fx.store(&server("talk")).await).await.unwrap();
    let mut lines = fx.runtime.follow(APP, &LogQuery { tail: 1, ..LogQuery::default() }).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), lines.next()).await.unwrap().unwrap().unwrap().render();
    assert!(first.ends_with(&format!("talk listening on {}", port_of(&url))), "{first}");
    get(&format!("{url}/say?hello")).await.unwrap();
    let said = tokio::time::timeout(Duration::from_secs(5), lines.next()).await.unwrap().unwrap().unwrap().render();
    assert!(said.ends_with("stdout: said hello"), "{said}");
}

#[tokio::test]
async fn logs_filter_by_deployment_and_time() {
    let fx = Fixture::new();
    let one = fx.apply("aaaaaaaa-one", &fx.store(&server("one")).await).await.unwrap();
    let two = fx.apply("bbbbbbbb-two", &fx.store(&server("two")).await).await.unwrap();
    get(&format!("{one}/say?early")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let boundary = aether_server::state::now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    get(&format!("{two}/say?late")).await.unwrap();
    get(&format!("{one}/say?later")).await.unwrap();
    // The apps print before they answer; their output reaches the log as each pipe is read.
    // Subscribed first, then checked: a line arrives in one or the other.
    let mut follow = fx.runtime.follow(APP, &LogQuery { tail: 0, ..all() }).await.unwrap();
    let present = fx.logs(all()).await;
    let mut missing: Vec<&str> = ["said late", "said later"]
        .into_iter()
        .filter(|text| !present.iter().any(|line| line.ends_with(text)))
        .collect();
    let arrived = async {
        while !missing.is_empty() {
            let line = follow.next().await.expect("the log stream ended").unwrap().render();
            missing.retain(|text| !line.ends_with(text));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), arrived).await.expect("the lines never reached the log");

    let only_one = fx.logs(LogQuery { deployment_id: Some("aaaaaaaa-one".into()), ..all() }).await;
    assert!(only_one.iter().all(|l| l.contains(" aaaaaaaa stdout: ")), "{only_one:?}");
    assert!(only_one.iter().any(|l| l.ends_with("said early")) && only_one.iter().any(|l| l.ends_with("said later")));
    let recent = fx.logs(LogQuery { since_ms: Some(boundary), ..all() }).await;
    let texts: Vec<&str> = recent.iter().map(|l| l.rsplit_once(": ").unwrap().1).collect();
    assert_eq!(texts, ["said late", "said later"]);
    assert_eq!(fx.logs(LogQuery { tail: 1, ..all() }).await.len(), 1);
}

#[tokio::test]
async fn a_restored_release_gets_its_preferred_port_when_free() {
    let fx = Fixture::new();
    let stored = fx.store(&server("again")).await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = fx.roll_out(&ReleaseSpec { port: Some(free), ..fx.spec("kept", &stored) }).await.unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{free}"));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().port();
    let url = fx.roll_out(&ReleaseSpec { port: Some(taken), ..fx.spec("moved", &stored) }).await.unwrap();
    assert_ne!(port_of(&url), taken);
    assert_eq!(get(&url).await.unwrap().0, 200);
    // Starting a release that already runs answers its URL without starting it twice.
    let again = fx.roll_out(&fx.spec("moved", &stored)).await.unwrap();
    assert_eq!(again, url);
}

#[tokio::test]
async fn a_rollout_reports_its_steps_before_it_serves() {
    let fx = Fixture::new();
    let (steps, url) = fx.roll_out_reporting(&fx.spec("steps", &fx.store(&server("v1")).await)).await.unwrap();
    assert_eq!(steps, ["pulling artifact", "starting", "waiting for readiness"]);
    assert_eq!(get(&url).await.unwrap().0, 200);
    // Nothing started on this server, nothing to follow: the answer says so.
    let reports: Vec<RolloutProgress> = fx.runtime.watch(&fx.by_id("never")).await.unwrap().collect().await;
    assert!(
        matches!(reports.as_slice(), [RolloutProgress::Failed { reason }] if reason.contains("not rolling out")),
        "{reports:?}"
    );
}
