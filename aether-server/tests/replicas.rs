#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two real `aether-server` processes against one PostgreSQL, one S3-compatible server and one
//! (fake) Kubernetes API server, all started by the test, behave as one control plane: requests
//! may land on either, a rollout is followed by exactly one of them and taken over when that
//! one is killed, and background work runs on both without being done twice.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use aether_core::digest::sha256_hex;
use aether_server::testing::kube::FakeKube;
use aether_server::testing::postgres::TestPostgres;
use aether_server::testing::process::ServerProcess;
use aether_server::testing::s3::TestS3;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

const TOKEN: &str = "replicas-admin-token";
const NS: &str = "aether";
const APP: &str = "web";
const LEASE_SECS: u64 = 3;
/// Every wait for the control plane ends within this, so a hang is a failure.
const PATIENCE: Duration = Duration::from_secs(45);

/// Everything the replicas share.
struct Cluster {
    _pg: TestPostgres,
    /// The replicas' database, for what only it can tell (who holds a lease).
    database: String,
    _s3: TestS3,
    kube: FakeKube,
    vars: Vec<(String, String)>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let pg = TestPostgres::start().expect("PostgreSQL for this test");
        let database = pg.create_database("aether_replicas").unwrap();
        let s3 = TestS3::start().expect("the S3 server for this test");
        s3.bucket("artifacts").await;
        let kube = FakeKube::start().await;
        kube.add_namespace(NS);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig).unwrap();
        let mut vars = s3.env("artifacts");
        vars.extend(
            [
                ("DATABASE_URL", database.as_str()),
                ("AETHER_API_TOKENS", &format!("{TOKEN}:admin")),
                ("AETHER_RUNTIME", "kubernetes"),
                ("KUBECONFIG", &kubeconfig.display().to_string()),
                ("AETHER_DEFAULT_NAMESPACE", NS),
                ("AETHER_LEASE_SECS", &LEASE_SECS.to_string()),
                ("AETHER_ROLLOUT_TIMEOUT_SECS", "600"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        vars.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
        Self { _pg: pg, database, _s3: s3, kube, vars, http, _dir: dir }
    }

    /// A replica with its own data directory (it keeps nothing there but the presign key).
    fn replica(&self, name: &str) -> ServerProcess {
        let data = self._dir.path().join(name);
        let mut vars = self.vars.clone();
        vars.push(("AETHER_DATA_DIR".into(), data.display().to_string()));
        ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_aether-server")), &vars)
    }

    async fn call(
        &self,
        server: &ServerProcess,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        server.call(&self.http, TOKEN, method, path, body).await
    }

    /// Uploads `bytes`: presigned on one replica, PUT to S3, completed on the other.
    async fn upload(&self, presign_on: &ServerProcess, complete_on: &ServerProcess, bytes: &[u8]) -> String {
        let digest = sha256_hex(bytes);
        let body = json!({ "app_name": APP, "digest": digest, "size_bytes": bytes.len() });
        let (status, presign) = self.call(presign_on, reqwest::Method::POST, "/artifacts/presign", Some(body)).await;
        assert_eq!(status, 200, "{presign}");
        let mut put = self.http.put(presign["upload_url"].as_str().unwrap());
        for (name, value) in presign["headers"].as_object().unwrap() {
            put = put.header(name.as_str(), value.as_str().unwrap());
        }
        assert!(put.body(bytes.to_vec()).send().await.unwrap().status().is_success());
        let body =
            json!({ "app_name": APP, "digest": digest, "size_bytes": bytes.len(), "upload_id": presign["upload_id"] });
        let (status, done) = self.call(complete_on, reqwest::Method::POST, "/artifacts/complete", Some(body)).await;
        assert_eq!(status, 200, "{done}");
        digest
    }

    async fn deploy(&self, on: &ServerProcess, digest: &str, key: &str) -> String {
        let body = json!({ "app_name": APP, "digest": digest, "idempotency_key": key });
        let (status, created) = self.call(on, reqwest::Method::POST, "/deployments", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The deployment as `on` sees it, once `check` holds for it.
    async fn deployment_until(&self, on: &ServerProcess, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, deployment) = self.call(on, reqwest::Method::GET, &format!("/deployments/{id}"), None).await;
            if check(&deployment) {
                return deployment;
            }
            assert!(Instant::now() < deadline, "deployment {id} never got there: {deployment}\n{}", on.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The replica holding the lease `name`.
    async fn lease_owner(&self, name: &str) -> String {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.database).await.unwrap();
        sqlx::query_scalar("SELECT owner FROM leases WHERE name = $1").bind(name).fetch_one(&pool).await.unwrap()
    }

    /// Waits until the cluster's Deployment rolls out `id`: the rollout reached the cluster.
    async fn applied(&self, id: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let current = self
                .kube
                .get::<Deployment>(NS, APP)
                .and_then(|d| d.spec.template.metadata?.labels?.get("deployment_id").cloned());
            if current.as_deref() == Some(id) {
                return;
            }
            assert!(Instant::now() < deadline, "deployment {id} never reached the cluster (now {current:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |deployment| deployment["status"] == status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_are_one_control_plane_and_take_over_from_each_other() {
    let cluster = Cluster::start(&[]).await;
    // Started together: the migrations run once, under PostgreSQL's advisory lock.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| cluster.replica("a"));
        let b = scope.spawn(|| cluster.replica("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut a = a;
    let mut b = b;
    let (status, _) = cluster.call(&a, reqwest::Method::POST, "/apps", Some(json!({ "name": APP }))).await;
    assert_eq!(status, 201);
    let (status, apps) = cluster.call(&b, reqwest::Method::GET, "/apps", None).await;
    assert_eq!(status, 200, "the app made on one replica is not seen on the other: {apps}");

    // Deploys alternate between replicas; uploads cross them.
    let v1 = cluster.upload(&a, &b, b"release one").await;
    let first = cluster.deploy(&b, &v1, "deploy-1").await;
    cluster.applied(&first).await;
    cluster.kube.set_ready(NS, APP);
    let running = cluster.deployment_until(&a, &first, status_is("running")).await;
    assert_eq!(running["url"], format!("http://{APP}.{NS}.svc.cluster.local:8080"));

    // The same request four times at once, two per replica: one deployment.
    let v2 = cluster.upload(&b, &a, b"release two").await;
    let racing = [&a, &b, &a, &b].map(|server| cluster.deploy(server, &v2, "deploy-2"));
    let ids: BTreeSet<String> = futures_util::future::join_all(racing).await.into_iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let second = ids.into_iter().next().unwrap();
    // The first step reported means the release is applied whole and being watched.
    let watched = |d: &Value| d["events"].as_array().is_some_and(|events| events.iter().any(|e| e["from"] == e["to"]));
    cluster.deployment_until(&a, &second, watched).await;
    let applies = cluster.kube.apply_count();

    // The replica following the rollout is killed; the other takes it over within the lease.
    let follower = cluster.lease_owner(&format!("rollout:{second}")).await;
    let following_is_a = Some(&follower) == a.replica_id().as_ref();
    assert!(following_is_a || Some(&follower) == b.replica_id().as_ref(), "{follower} is neither replica");
    let (survivor, victim) = if following_is_a { (&b, &mut a) } else { (&a, &mut b) };
    victim.kill();
    let killed_at = Instant::now();
    cluster.kube.set_ready(NS, APP);
    let done = cluster.deployment_until(survivor, &second, status_is("running")).await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(LEASE_SECS) + Duration::from_secs(2), "taken over after {took:?}");
    eprintln!("the survivor finished the rollout {took:?} after the kill (lease {LEASE_SECS} s)");
    assert_eq!(cluster.kube.apply_count(), applies, "the survivor applied the release again");
    let (_, old) = cluster.call(survivor, reqwest::Method::GET, &format!("/deployments/{first}"), None).await;
    assert_eq!(old["status"], "superseded", "{old}");
    assert!(done["events"].as_array().is_some_and(|events| events.len() >= 3), "{done}");
    drop(a);
    drop(b);

    // Both replicas restarted while a deployment is deploying: one of them finishes it.
    let c = cluster.replica("c");
    let v3 = cluster.upload(&c, &c, b"release three").await;
    let third = cluster.deploy(&c, &v3, "deploy-3").await;
    cluster.deployment_until(&c, &third, watched).await;
    drop(c);
    let (c, d) = (cluster.replica("c"), cluster.replica("d"));
    cluster.kube.set_ready(NS, APP);
    cluster.deployment_until(&d, &third, status_is("running")).await;
    let resumed = |server: &ServerProcess| {
        server
            .log()
            .lines()
            .any(|line| line.contains("following a rollout nobody follows") && line.contains(third.as_str()))
    };
    let followers = [&c, &d].into_iter().filter(|server| resumed(server)).count();
    assert_eq!(followers, 1, "the rollout was resumed by {followers} replicas\n{}\n{}", c.log(), d.log());
}

/// The pending-upload collector runs on both replicas: abandoned uploads are collected once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_runs_on_both_replicas_without_doing_anything_twice() {
    let cluster = Cluster::start(&[
        ("AETHER_PENDING_TTL_SECS", "1"),
        ("AETHER_PRESIGN_EXPIRE_SECS", "1"),
        ("AETHER_PENDING_GC_INTERVAL_SECS", "1"),
        ("AETHER_RETAIN_LATEST_PER_APP", "1"),
    ])
    .await;
    let (a, b) = (cluster.replica("a"), cluster.replica("b"));
    cluster.call(&a, reqwest::Method::POST, "/apps", Some(json!({ "name": APP }))).await;
    for n in 0..6 {
        let server = if n % 2 == 0 { &a } else { &b };
        let bytes = format!("abandoned {n}");
        let body = json!({ "app_name": APP, "digest": sha256_hex(bytes.as_bytes()), "size_bytes": bytes.len() });
        let (status, _) = cluster.call(server, reqwest::Method::POST, "/artifacts/presign", Some(body)).await;
        assert_eq!(status, 200);
    }
    let deleted = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("artifact_pending_gc_deleted_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut total = 0;
        for server in [&a, &b] {
            total += deleted(
                &cluster.http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap(),
            );
        }
        if total >= 6 {
            assert_eq!(total, 6, "an abandoned upload was collected twice");
            break;
        }
        assert!(Instant::now() < deadline, "only {total} of 6 abandoned uploads were collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Retention on both replicas keeps the latest artifact, removing each older one once.
    for n in 0..4 {
        let (on, other) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        cluster.upload(on, other, format!("kept {n}").as_bytes()).await;
    }
    let (_, listed) = cluster.call(&b, reqwest::Method::GET, "/artifacts", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
}
