#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Kubernetes runtime end to end, as a user meets it: the real `aether-server` binary
//! (`AETHER_RUNTIME=kubernetes`, embedded SQLite, local artifact store) reaching the fake
//! Kubernetes API server over HTTP through a kubeconfig, and the real `aether` CLI on a copy of
//! `examples/sample-node`. Nothing runs pods here: each test plays the cluster, driving pod and
//! Deployment statuses once the server's rollout has reached the fake, and every wait is on an
//! event (an object applied, a line printed, a process ending) bounded by [`PATIENCE`].

mod common;

use common::{aether_bin, sample_project, server_bin};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use aether_server::testing::kube::FakeKube;
use aether_server::testing::kube::k8s_openapi::api::apps::v1::Deployment;
use aether_server::testing::kube::k8s_openapi::api::core::v1::{Secret, Service};
use aether_server::testing::process::ServerProcess;
use serde_json::Value;

const TOKEN: &str = "kubernetes-e2e-admin-token";
/// Where the server runs apps: its `AETHER_DEFAULT_NAMESPACE` and the kubeconfig's context.
const NAMESPACE: &str = "apps";
const APP: &str = "sample-node";
/// Every wait ends within this, so a hang is a failure; it covers a first `npm ci`.
const PATIENCE: Duration = Duration::from_secs(20);

/// The fake API server, on a runtime the test owns for as long as the cluster lives.
struct Cluster {
    fake: FakeKube,
    runtime: tokio::runtime::Runtime,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let fake = runtime.block_on(FakeKube::start());
        fake.add_namespace(NAMESPACE);
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, fake.kubeconfig(NAMESPACE)).unwrap();
        Self { fake, runtime, kubeconfig }
    }

    /// Waits until the app's object of type `K` satisfies `condition`.
    fn wait_for<K>(&self, what: &str, condition: impl FnMut(&K) -> bool) -> K
    where
        K: aether_server::testing::kube::k8s_openapi::Resource + serde::de::DeserializeOwned,
    {
        // The timer belongs to the runtime, so the timeout is made inside it.
        let wait = async { tokio::time::timeout(PATIENCE, self.fake.wait_for(NAMESPACE, APP, condition)).await };
        self.runtime.block_on(wait).unwrap_or_else(|_| panic!("waited {PATIENCE:?} for {what}"))
    }

    /// Waits until the server has applied a release of the app other than `previous`.
    fn applied_other_than(&self, previous: Option<&str>) -> Deployment {
        self.wait_for("a new release applied", |d: &Deployment| release_of(d).as_deref() != previous)
    }

    /// Waits until the app's Deployment rolls out `release`.
    fn applied(&self, release: &str) -> Deployment {
        self.wait_for(&format!("release {release} applied"), |d: &Deployment| release_of(d).as_deref() == Some(release))
    }
}

/// The deployment id the Deployment's pod template carries: what it rolls out.
fn release_of(deployment: &Deployment) -> Option<String> {
    deployment.spec.template.metadata.as_ref()?.labels.as_ref()?.get("deployment_id").cloned()
}

fn digest_of(deployment: &Deployment) -> String {
    deployment.metadata.annotations.as_ref().unwrap()["aether.dev/artifact-digest"].clone()
}

/// The fetcher's arguments, in the Deployment's init container.
fn fetcher_args(deployment: &Deployment) -> Vec<String> {
    let pod = deployment.spec.template.spec.as_ref().unwrap();
    pod.init_containers.as_ref().unwrap()[0].args.clone().unwrap()
}

fn argument<'a>(args: &'a [String], flag: &str) -> &'a str {
    let at = args.iter().position(|arg| arg == flag).unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[at + 1]
}

fn hex(digest: &Value) -> &str {
    digest.as_str().unwrap().trim_start_matches("sha256:")
}

/// Starts `aether-server` on the cluster, on `dir`'s data; killed when dropped (workloads
/// outlive it anyway).
fn start_server(dir: &Path, cluster: &Cluster) -> ServerProcess {
    let vars = [
        ("HOME", dir.display().to_string()),
        ("AETHER_DATA_DIR", dir.join("data").display().to_string()),
        ("AETHER_API_TOKENS", format!("{TOKEN}:admin")),
        ("AETHER_RUNTIME", "kubernetes".to_owned()),
        ("KUBECONFIG", cluster.kubeconfig.display().to_string()),
        ("AETHER_DEFAULT_NAMESPACE", NAMESPACE.to_owned()),
        ("AETHER_FETCHER_IMAGE", "aether-server:e2e".to_owned()),
        ("AETHER_ROLLOUT_TIMEOUT_SECS", "3600".to_owned()),
    ]
    .map(|(name, value)| (name.to_owned(), value));
    ServerProcess::start(&server_bin(), &vars)
}

/// A copy of the sample app and a private home for the CLI, which reaches the server through
/// `AETHER_API_BASE` and `AETHER_TOKEN`.
struct User {
    home: PathBuf,
    project: PathBuf,
    api: String,
}

impl User {
    fn new(dir: &Path, server: &ServerProcess) -> Self {
        let (home, project) = sample_project(dir);
        Self { home, project, api: server.url.clone() }
    }

    /// `aether <args> --format json`, not started yet.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(aether_bin());
        command
            .args(args)
            .args(["--format", "json"])
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("AETHER_API_BASE", &self.api)
            .env("AETHER_TOKEN", TOKEN)
            .stdin(Stdio::null());
        command
    }

    /// Runs a command to its end: its exit code and JSON.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        self.spawn(args).finish()
    }

    /// Starts a command that waits on the cluster (`deploy`, `rollback`).
    fn spawn(&self, args: &[&str]) -> Running {
        let child = self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (sender, output) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        Running { pid, output, args: args.join(" "), done: false }
    }

    /// `aether logs --follow`, its stdout lines arriving on a channel.
    fn follow_logs(&self) -> Follower {
        let mut child = self
            .command(&["logs", "--app", APP, "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Follower { child, lines }
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.project.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    fn status(&self) -> Value {
        let (code, status) = self.json(&["status", "--app", APP]);
        assert_eq!(code, 0, "{status}");
        status
    }
}

/// A CLI command running on its own; killed if the test ends before it does.
struct Running {
    pid: u32,
    output: Receiver<std::io::Result<Output>>,
    args: String,
    done: bool,
}

impl Running {
    /// Waits for the command to end: its exit code and JSON.
    fn finish(mut self) -> (i32, Value) {
        let output = self.output.recv_timeout(PATIENCE);
        self.done = output.is_ok();
        let output = output.unwrap_or_else(|_| panic!("`aether {}` still runs after {PATIENCE:?}", self.args)).unwrap();
        common::assert_no_secret_printed(&output, &[TOKEN.to_owned()], &self.args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("`aether {}`: {e}\nstdout: {stdout}\nstderr: {}", self.args, String::from_utf8_lossy(&output.stderr))
        });
        (output.status.code().unwrap_or(-1), value)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        }
    }
}

/// `aether logs --follow` running.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    /// The next line printed, `None` once the command closed its output.
    fn next(&self) -> Option<Value> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the follower printed nothing for {PATIENCE:?}"),
        }
    }

    fn line(&self) -> String {
        let next = self.next().expect("a followed line");
        next["line"].as_str().unwrap_or_else(|| panic!("not a log line: {next}")).to_owned()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster, a server on it and a user with the sample app, in one temporary directory.
struct Setup {
    user: User,
    server: ServerProcess,
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(dir.path());
        let server = start_server(dir.path(), &cluster);
        let user = User::new(dir.path(), &server);
        Self { user, server, cluster, dir }
    }

    /// `aether deploy` (which waits), the cluster making the new release ready once applied.
    fn deploy_ready(&self, previous: Option<&str>) -> Value {
        let deploy = self.user.spawn(&["deploy"]);
        let applied = self.cluster.applied_other_than(previous);
        self.cluster.fake.set_ready(NAMESPACE, APP);
        let (code, report) = deploy.finish();
        assert_eq!(code, 0, "{report}\n{}", self.server.log());
        assert_eq!(report["status"], "running", "{report}");
        assert_eq!(report["deployment_id"].as_str(), release_of(&applied).as_deref(), "{report}");
        report
    }
}

#[test]
fn deploy_applies_the_release_and_runs_once_the_cluster_is_ready() {
    let setup = Setup::new();
    let (cluster, user) = (&setup.cluster, &setup.user);
    let deploy = user.spawn(&["deploy", "--env", "GREETING=hello-from-the-secret"]);
    let deployment = cluster.applied_other_than(None);
    let id = release_of(&deployment).unwrap();

    let labels = deployment.metadata.labels.clone().unwrap();
    assert_eq!((labels["app"].as_str(), labels["app_name"].as_str()), ("aether", APP), "{labels:?}");
    assert_eq!(labels["deployment_id"], id);
    let digest = digest_of(&deployment);
    assert_eq!(digest.len(), 64, "{digest}");
    let args = fetcher_args(&deployment);
    assert_eq!(argument(&args, "--sha256"), digest, "{args:?}");
    let url = argument(&args, "--url");
    assert!(url.starts_with(&format!("{}/downloads/", setup.server.url)), "{url}");
    // The environment reaches the pods through the deployment's own Secret, never in clear.
    let pod = deployment.spec.template.spec.clone().unwrap();
    let env_from = pod.containers[0].env_from.clone().unwrap();
    let secret_name = format!("{APP}-env-{id}");
    assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, secret_name);
    assert!(!serde_json::to_string(&deployment).unwrap().contains("hello-from-the-secret"));
    let secret = cluster.fake.get::<Secret>(NAMESPACE, &secret_name).expect("the environment Secret");
    assert_eq!(secret.data.unwrap()["GREETING"].0, b"hello-from-the-secret");
    let service = cluster.wait_for("the Service applied", |_: &Service| true);
    assert_eq!(service.spec.unwrap().selector.unwrap()["app_name"], APP);

    cluster.fake.set_progressing(NAMESPACE, APP);
    cluster.fake.set_ready(NAMESPACE, APP);
    let (code, report) = deploy.finish();
    assert_eq!(code, 0, "{report}\n{}", setup.server.log());
    assert_eq!(report["status"], "running", "{report}");
    assert_eq!(report["deployment_id"], id.as_str());
    assert_eq!(hex(&report["digest"]), digest);
    assert_eq!(report["url"], format!("http://{APP}.{NAMESPACE}.svc.cluster.local:8080"));

    let status = user.status();
    assert_eq!(status["running"]["id"], id.as_str(), "{status}");
    let events = status["latest"]["events"].as_array().unwrap();
    let steps: Vec<&str> = events
        .iter()
        .filter(|event| event["from"] == "deploying" && event["to"] == "deploying")
        .filter_map(|event| event["reason"].as_str())
        .collect();
    // The watch reports where it stands from its first list on, before it sees the Deployment.
    assert_eq!(steps.first(), Some(&"waiting for the Deployment"), "{status}");
    let known = ["waiting for the Deployment", "scheduling", "pulling artifact", "verifying", "starting"];
    assert!(steps.iter().all(|step| known.contains(step)), "{steps:?}");
    assert_eq!(events.last().unwrap()["to"], "running", "{status}");
}

#[test]
fn a_failed_fetch_fails_the_deploy_and_puts_the_previous_release_back() {
    let setup = Setup::new();
    let (cluster, user) = (&setup.cluster, &setup.user);
    let first = setup.deploy_ready(None);
    let first_id = first["deployment_id"].as_str().unwrap();

    user.edit("server.js", "'1.0.0'", "'2.0.0'");
    let deploy = user.spawn(&["deploy"]);
    let second = cluster.applied_other_than(Some(first_id));
    let second_id = release_of(&second).unwrap();
    let message = format!("digest mismatch: expected {}, got {}", digest_of(&second), "0".repeat(64));
    cluster.fake.fail_init(NAMESPACE, APP, &message);
    let (code, failed) = deploy.finish();
    assert_eq!(code, 20, "{failed}\n{}", setup.server.log());
    assert_eq!(failed["error"]["code"], "deployment_failed", "{failed}");
    assert_eq!(failed["error"]["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["deployment_id"], second_id.as_str(), "{failed}");
    let reason = format!("the artifact fetcher failed: {message}");
    assert!(failed["error"]["message"].as_str().unwrap().contains(&reason), "{failed}");

    // The Deployment is set back to the first release, whose pods kept serving meanwhile.
    let restored = cluster.applied(first_id);
    assert_eq!(digest_of(&restored), hex(&first["digest"]));
    assert_eq!(argument(&fetcher_args(&restored), "--sha256"), hex(&first["digest"]));
    let serving = cluster.fake.pods_of(NAMESPACE, APP).into_iter().filter(|pod| {
        pod.metadata.labels.as_ref().is_some_and(|labels| labels["deployment_id"] == first_id)
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|condition| condition.type_ == "Ready" && condition.status == "True"))
    });
    assert_eq!(serving.count(), 1, "the first release's pod is gone");
    assert!(cluster.fake.get::<Secret>(NAMESPACE, &format!("{APP}-env-{first_id}")).is_some());

    let status = user.status();
    assert_eq!(status["running"]["id"], first_id, "{status}");
    assert_eq!(status["latest"]["id"], second_id.as_str(), "{status}");
    assert_eq!(status["latest"]["status"], "failed", "{status}");
    assert_eq!(status["latest"]["failure_reason"], reason.as_str(), "{status}");
}

#[test]
fn rollback_puts_the_first_artifact_back_on_the_cluster() {
    let setup = Setup::new();
    let (cluster, user) = (&setup.cluster, &setup.user);
    let first = setup.deploy_ready(None);
    user.edit("server.js", "'1.0.0'", "'2.0.0'");
    let second = setup.deploy_ready(first["deployment_id"].as_str());
    assert_ne!(second["digest"], first["digest"]);
    let second_id = second["deployment_id"].as_str().unwrap();

    let rollback = user.spawn(&["rollback", "--app", APP]);
    let applied = cluster.applied_other_than(Some(second_id));
    assert_eq!(digest_of(&applied), hex(&first["digest"]));
    assert_eq!(argument(&fetcher_args(&applied), "--sha256"), hex(&first["digest"]));
    cluster.fake.set_ready(NAMESPACE, APP);
    let (code, report) = rollback.finish();
    assert_eq!(code, 0, "{report}\n{}", setup.server.log());
    assert_eq!(report["status"], "running", "{report}");
    assert_eq!(report["digest"], first["digest"], "{report}");
    assert_eq!(report["deployment_id"].as_str(), release_of(&applied).as_deref(), "{report}");
    assert_eq!(report["url"], format!("http://{APP}.{NAMESPACE}.svc.cluster.local:8080"));

    let status = user.status();
    assert_eq!(status["running"]["id"], report["deployment_id"], "{status}");
    assert_eq!(status["running"]["digest"], status["latest"]["digest"], "{status}");
    assert_eq!(hex(&status["running"]["digest"]), hex(&first["digest"]), "{status}");
}

#[test]
fn logs_and_follow_read_the_pods_and_a_broken_stream_ends_the_follower() {
    let setup = Setup::new();
    let (cluster, user) = (&setup.cluster, &setup.user);
    let deployed = setup.deploy_ready(None);
    let prefix = &deployed["deployment_id"].as_str().unwrap()[..8];
    cluster.fake.push_log(NAMESPACE, APP, "sample-node listening on port 8080");
    cluster.fake.push_log(NAMESPACE, APP, "GET /");

    let (code, logs) = user.json(&["logs", "--app", APP]);
    assert_eq!(code, 0, "{logs}");
    let lines: Vec<&str> = logs["lines"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(&format!(" {prefix} stdout: sample-node listening on port 8080")), "{lines:?}");
    assert!(lines[1].ends_with(&format!(" {prefix} stdout: GET /")), "{lines:?}");

    let follower = user.follow_logs();
    // The tail arriving means the server follows the pod's log stream from here on.
    assert!(follower.line().ends_with("stdout: sample-node listening on port 8080"));
    assert!(follower.line().ends_with("stdout: GET /"));
    cluster.fake.push_log(NAMESPACE, APP, "GET /healthz");
    assert!(follower.line().ends_with(&format!(" {prefix} stdout: GET /healthz")));

    // A broken pod log stream ends the follow with an error, not with one more log line.
    cluster.fake.break_logs(NAMESPACE, APP);
    let mut rest = Vec::new();
    while let Some(printed) = follower.next() {
        rest.push(printed);
    }
    let mut follower = follower;
    let code = follower.child.wait().unwrap().code();
    let error = rest.iter().find(|printed| printed.get("error").is_some());
    let error = error.unwrap_or_else(|| panic!("the follower ended without an error: {rest:?}, exit {code:?}"));
    assert!(error["error"]["message"].as_str().unwrap().contains("broke"), "{error}");
    assert!(rest.iter().all(|printed| printed.get("line").is_none()), "{rest:?}");
    assert_eq!(code, Some(40), "{rest:?}");
}

#[test]
fn a_restarted_server_follows_the_rollout_it_left_without_applying_it_again() {
    let mut setup = Setup::new();
    let (code, created) = setup.user.json(&["deploy", "--no-wait"]);
    assert_eq!(code, 0, "{created}\n{}", setup.server.log());
    let id = created["deployment_id"].as_str().unwrap().to_owned();
    // The Service is applied last: the release has reached the cluster whole.
    setup.cluster.wait_for("the Service applied", |_: &Service| true);
    assert_eq!(setup.cluster.applied(&id).metadata.name.as_deref(), Some(APP));
    let applies = setup.cluster.fake.apply_count();
    assert_eq!(applies, 3, "Secret, Deployment and Service");
    assert_eq!(setup.user.status()["latest"]["status"], "deploying");

    setup.server.kill();
    let requests_before = setup.cluster.fake.requests().len();
    setup.server = start_server(setup.dir.path(), &setup.cluster);
    setup.user.api = setup.server.url.clone();
    let status = setup.user.status();
    assert_eq!((status["latest"]["id"].as_str(), status["latest"]["status"].as_str()), (Some(&*id), Some("deploying")));

    setup.cluster.fake.set_ready(NAMESPACE, APP);
    // Deploying the same tree again names the same deployment, and waits for it to run.
    let (code, again) = setup.user.json(&["deploy", "--timeout", "120s"]);
    assert_eq!(code, 0, "{again}\n{}", setup.server.log());
    assert_eq!((again["deployment_id"].as_str(), again["status"].as_str()), (Some(&*id), Some("running")), "{again}");
    let status = setup.user.status();
    assert_eq!(status["running"]["id"], id.as_str(), "{status}");
    assert_eq!(status["running"]["url"], format!("http://{APP}.{NAMESPACE}.svc.cluster.local:8080"));

    assert_eq!(setup.cluster.fake.apply_count(), applies, "the restarted server applied the release again");
    let after: Vec<_> = setup.cluster.fake.requests().split_off(requests_before);
    assert!(after.iter().all(|request| request.method != "PATCH"), "{after:?}");
    let watched = after.iter().any(|request| {
        request.param("watch").as_deref() == Some("true")
            && request.param("labelSelector").is_some_and(|selector| selector.contains(&id))
    });
    assert!(watched, "the restarted server never watched the release's pods: {after:?}");
}
