#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End to end, as a user does it: the real `aether-server` binary (embedded SQLite, and once
//! on a real PostgreSQL), the real `aether` binary, real npm on `examples/sample-node`, and the
//! deployed app answering HTTP on localhost through the local-process runtime.

mod common;

use common::{User, aether_bin, server_bin};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aether_server::testing::postgres::TestPostgres;
use aether_server::testing::process::ServerProcess;
use aether_server::testing::s3::TestS3;
use serde_json::Value;

const TOKEN: &str = "e2e-admin-token";

/// A running `aether-server`; stopped with SIGTERM when dropped, so its releases stop too.
struct Server(ServerProcess);

impl Server {
    fn start(dir: &Path, database_url: Option<String>) -> Self {
        let env: Vec<(String, String)> = database_url.map(|url| ("DATABASE_URL".to_owned(), url)).into_iter().collect();
        Self::start_with(dir, &env)
    }

    fn start_with(dir: &Path, env: &[(String, String)]) -> Self {
        let mut vars: Vec<(String, String)> = [
            ("HOME", dir.display().to_string()),
            ("AETHER_DATA_DIR", dir.join("data").display().to_string()),
            ("AETHER_API_TOKENS", format!("{TOKEN}:admin")),
            ("AETHER_HEALTH_TIMEOUT_MS", "20000".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value))
        .into();
        vars.extend_from_slice(env);
        Self(ServerProcess::start(&server_bin(), &vars))
    }
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test is already unwinding: a second panic would abort and hide the first.
        if !std::thread::panicking() {
            self.0.terminate();
        }
    }
}

/// A plain HTTP/1.1 GET: (status, body), or `None` when nothing answers.
fn http_get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn app_version(url: &str) -> String {
    let (status, body) = http_get(url).unwrap_or_else(|| panic!("nothing answers at {url}"));
    assert_eq!(status, 200, "{body}");
    // The body may be chunked; the JSON object is on its own line.
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in {body:?}"));
    serde_json::from_str::<Value>(json).unwrap()["version"].as_str().unwrap().to_owned()
}

fn run_scenario(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), database_url);
    let user = User::new(dir.path());

    // A wrong token is refused, clearly, with the configuration exit code; nothing is saved.
    let (code, wrong) = user.json(&["login", "--token", "not-the-token", "--api", &server.url]);
    assert_eq!(code, 10, "{wrong}");
    assert_eq!(wrong["error"]["code"], "unauthorized", "{wrong}");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("aether login"), "{wrong}");
    let session = user.home.join("cache/aether/session.json");
    assert!(!session.exists());

    let (code, login) = user.json(&["login", "--token", TOKEN, "--api", &server.url]);
    assert_eq!(code, 0, "{login}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&session).unwrap().permissions().mode() & 0o777, 0o600);

    // First deploy: everything uploaded, the app runs and answers.
    let (code, first) = user.json(&["deploy"]);
    assert_eq!(code, 0, "{first}\n{}", server.log());
    assert_eq!(first["status"], "running", "{first}");
    assert_eq!(first["app"], "sample-node");
    assert!(first["uploaded_bytes"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["uploaded_bytes"], first["size_bytes"]);
    let first_url = first["url"].as_str().unwrap().to_owned();
    assert!(first_url.starts_with("http://127.0.0.1:"), "{first_url}");
    assert_eq!(app_version(&first_url), "1.0.0");
    for phase in ["install", "pack", "describe", "upload", "rollout", "total"] {
        assert!(first["phase_durations_ms"][phase].is_u64(), "{phase}: {first}");
    }

    // Unchanged: nothing uploaded, nothing rolled out again.
    let (code, again) = user.json(&["deploy"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!((again["uploaded_bytes"].as_u64(), again["unchanged"].as_bool()), (Some(0), Some(true)), "{again}");
    assert_eq!(again["deployment_id"], first["deployment_id"]);

    // A change: a new artifact, uploaded and rolled out; the new version answers.
    user.edit("server.js", "'1.0.0'", "'2.0.0'");
    let (code, second) = user.json(&["deploy"]);
    assert_eq!(code, 0, "{second}\n{}", server.log());
    assert_ne!(second["digest"], first["digest"]);
    assert!(second["uploaded_bytes"].as_u64().unwrap() > 0);
    let second_url = second["url"].as_str().unwrap().to_owned();
    assert_eq!(app_version(&second_url), "2.0.0");

    // The environment is part of a deployment: same artifact, new variables, new rollout.
    let (code, with_env) = user.json(&["deploy", "--env", "APP_VERSION=2.0.0-env"]);
    assert_eq!(code, 0, "{with_env}\n{}", server.log());
    assert_eq!((with_env["unchanged"].as_bool(), with_env["uploaded_bytes"].as_u64()), (Some(false), Some(0)));
    assert_eq!(app_version(with_env["url"].as_str().unwrap()), "2.0.0-env");
    let (code, same_env) = user.json(&["deploy", "--env", "APP_VERSION=2.0.0-env"]);
    assert_eq!((code, same_env["unchanged"].as_bool()), (0, Some(true)), "{same_env}");
    let (code, port) = user.json(&["deploy", "--env", "PORT=1"]);
    assert_eq!((code, port["error"]["code"].as_str()), (2, Some("usage")), "{port}");

    // The app's own output is in its logs.
    let (code, logs) = user.json(&["logs", "--app", "sample-node", "--tail", "50"]);
    assert_eq!(code, 0, "{logs}");
    let lines: Vec<&str> = logs["lines"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(lines.iter().any(|l| l.contains("sample-node listening on port")), "{lines:?}");

    // A follower sees the lines of the release that rollback starts, as they are printed.
    let mut follower = user
        .command(&["logs", "--app", "sample-node", "--follow", "--tail", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // The tail arriving means the server follows the app's output from here on.
    lines_rx.recv_timeout(Duration::from_secs(10)).expect("the followed tail");

    // Rollback brings 1.0.0 back.
    let (code, rollback) = user.json(&["rollback", "--app", "sample-node"]);
    assert_eq!(code, 0, "{rollback}\n{}", server.log());
    assert_eq!(rollback["status"], "running");
    assert_eq!(rollback["digest"], first["digest"]);
    let rolled_back_url = rollback["url"].as_str().unwrap().to_owned();
    assert_eq!(app_version(&rolled_back_url), "1.0.0");
    let port = rolled_back_url.rsplit(':').next().unwrap().to_owned();
    let listening = format!("listening on port {port}");
    let followed = std::iter::from_fn(|| lines_rx.recv_timeout(Duration::from_secs(10)).ok())
        .find(|line| line.contains(&listening));
    assert!(followed.is_some(), "the follower never printed {listening:?}");
    let _ = follower.kill();
    let _ = follower.wait();

    // A release that exits at start fails; the error carries its output; 1.0.0 keeps serving.
    user.edit(
        "server.js",
        "'use strict';",
        "'use strict';\nconsole.error('boom: refusing to start');\nprocess.exit(3);",
    );
    let (code, broken) = user.json(&["deploy"]);
    assert_eq!(code, 20, "{broken}");
    assert_eq!(broken["error"]["code"], "deployment_failed", "{broken}");
    assert_eq!(broken["error"]["status"], "failed");
    assert!(broken["error"]["message"].as_str().unwrap().contains("boom"), "{broken}");
    assert_eq!(app_version(&rolled_back_url), "1.0.0");

    let (code, list) = user.json(&["list"]);
    assert_eq!(code, 0, "{list}");
    let app = &list["apps"][0];
    assert_eq!((app["name"].as_str(), app["deployment"]["status"].as_str()), (Some("sample-node"), Some("running")));
    let (code, status) = user.json(&["status", "--app", "sample-node"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["running"]["digest"], first["digest"]);
    assert_eq!(status["latest"]["status"], "failed");

    // Logging out forgets the token: the server then refuses the CLI.
    let (code, logout) = user.json(&["logout"]);
    assert_eq!((code, logout["logged_out"].as_bool()), (0, Some(true)), "{logout}");
    assert!(!session.exists());
    let (code, anonymous) = user.json_with(&["list"], &[("AETHER_API_BASE", &server.url)]);
    assert_eq!((code, anonymous["error"]["code"].as_str()), (10, Some("unauthorized")), "{anonymous}");
    user.json(&["login", "--token", TOKEN, "--api", &server.url]);

    // Stopping the server stops the app it runs.
    server.terminate();
    assert!(http_get(&rolled_back_url).is_none(), "the release outlived the server");
    let (code, down) = user.json(&["list"]);
    assert_eq!(code, 40, "{down}");
    assert!(down["error"]["message"].as_str().unwrap().contains(&server.url), "{down}");
}

#[test]
fn deploy_redeploy_logs_rollback_and_failure_on_sqlite() {
    run_scenario(None);
}

#[test]
fn deploy_redeploy_logs_rollback_and_failure_on_postgres() {
    let pg = TestPostgres::start().expect("PostgreSQL for this test");
    let url = pg.create_database("aether_e2e").unwrap();
    run_scenario(Some(url));
}

/// `scripts/smoke_e2e.sh` with the binaries this build made: a report of every phase, p50/p95
/// over the runs, the Markdown summary, and the dry run that stops before the upload.
#[test]
fn smoke_script_reports_each_phase() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let markdown = dir.path().join("smoke.md");
    let smoke = |dry_run: &str| {
        let output = Command::new(root.join("scripts/smoke_e2e.sh"))
            .arg(root.join("examples/sample-node"))
            .env("AETHER_BIN", aether_bin())
            .env("AETHER_SERVER_BIN", server_bin())
            .env("SMOKE_RUNS", "2")
            .env("SMOKE_DRY_RUN", dry_run)
            .env("SMOKE_MARKDOWN_OUT", &markdown)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str::<Value>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };

    let report = smoke("0");
    assert_eq!((report["runs"].as_u64(), report["dry_run"].as_bool()), (Some(2), Some(false)));
    for phase in ["install", "pack", "describe", "upload", "rollout", "total"] {
        let summary = &report["phases_ms"][phase];
        assert!(summary["p50"].as_u64().unwrap() <= summary["p95"].as_u64().unwrap(), "{phase}: {report}");
    }
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for result in results {
        assert_eq!(result["status"], "running", "{result}");
        assert_eq!(result["uploaded_bytes"], result["size_bytes"], "each run uploads to a fresh server");
    }
    let summary = std::fs::read_to_string(&markdown).unwrap();
    assert!(summary.contains("| rollout |") && summary.contains("sha256:"), "{summary}");

    let dry = smoke("1");
    assert_eq!(dry["dry_run"], true);
    assert!(dry["phases_ms"]["upload"].is_null() && dry["phases_ms"]["rollout"].is_null(), "{dry}");
    assert!(dry["phases_ms"]["pack"]["p50"].is_u64(), "{dry}");
}

/// The same user journey with artifacts on a real S3-compatible server: a single presigned PUT,
/// then a multipart upload (small parts forced), each released and answering; a rollback
/// fetches the earlier artifact back from the bucket. Nothing is left staged.
#[test]
fn deploy_single_and_multipart_through_s3() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = TestS3::start().expect("the S3 server for this test");
    runtime.block_on(s3.bucket("artifacts"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &s3.env("artifacts"));
    let user = User::new(dir.path());
    let (code, login) = user.json(&["login", "--token", TOKEN, "--api", &server.url]);
    assert_eq!(code, 0, "{login}");

    let (code, single) = user.json(&["deploy"]);
    assert_eq!(code, 0, "{single}\n{}", server.log());
    assert_eq!(single["uploaded_bytes"], single["size_bytes"], "{single}");
    assert_eq!(app_version(single["url"].as_str().unwrap()), "1.0.0");

    // A bigger artifact in 5 MiB parts (S3's smallest): incompressible bytes make it ~12 MiB.
    let noise: Vec<u8> = (0u32..3 * 1024 * 1024).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    std::fs::write(user.project.join("noise.bin"), noise).unwrap();
    user.edit("server.js", "'1.0.0'", "'2.0.0'");
    let multipart = [("AETHER_MULTIPART_THRESHOLD_BYTES", "1"), ("AETHER_MULTIPART_PART_SIZE_BYTES", "5242880")];
    let (code, parts) = user.json_with(&["deploy"], &multipart);
    assert_eq!(code, 0, "{parts}\n{}", server.log());
    assert!(parts["size_bytes"].as_u64().unwrap() > 10 * 1024 * 1024, "{parts}");
    assert_eq!(parts["uploaded_bytes"], parts["size_bytes"], "{parts}");
    assert_eq!(app_version(parts["url"].as_str().unwrap()), "2.0.0");

    let (code, rollback) = user.json(&["rollback", "--app", "sample-node"]);
    assert_eq!(code, 0, "{rollback}\n{}", server.log());
    assert_eq!(app_version(rollback["url"].as_str().unwrap()), "1.0.0");

    let keys = runtime.block_on(s3.keys("artifacts"));
    for deployed in [&single, &parts] {
        let digest = deployed["digest"].as_str().unwrap().trim_start_matches("sha256:");
        assert!(keys.contains(&format!("artifacts/sha256/{digest}.tar.gz")), "{digest} not in {keys:?}");
    }
    let staged: Vec<&String> = keys.iter().filter(|key| key.starts_with("staging/")).collect();
    let client = runtime.block_on(s3.bucket_client());
    for key in staged {
        let head = runtime.block_on(client.head_object().bucket("artifacts").key(key.as_str()).send()).unwrap();
        assert_eq!(head.content_length(), Some(0), "{key} still holds staged bytes");
    }
}
