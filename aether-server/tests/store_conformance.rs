#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Conformance suite of the metadata store: every case runs once on a fresh SQLite file and
//! once on a fresh database of a private PostgreSQL cluster, so both backends keep the same
//! contract. PostgreSQL failing to start fails the `postgres::*` tests.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use aether_core::deployment::DeploymentStatus;
use aether_server::model::{
    App, Artifact, Deployment, DeploymentEvent, IdempotencyRecord, PublicKey, Role, Token, Upload,
};
use aether_server::ports::{MetadataStore, StoreError};
use aether_server::store::{Backend, SqlStore};
use aether_server::testing::postgres::{TestPostgres, TestPostgresError};

struct Harness {
    store: SqlStore,
    /// Whatever holds the database (its directory or cluster), kept alive for the test and
    /// dropped after the store.
    _guard: Box<dyn std::any::Any>,
}

async fn sqlite(case: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    // A missing parent directory must be created by the store.
    let path = dir.path().join("state").join(format!("{case}.db"));
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    Harness { store, _guard: Box::new(dir) }
}

/// One cluster shared by the tests of this process that overlap in time; it stops when the
/// last of them drops it (a `static` holding it would never be dropped, leaking the server).
static CLUSTER: Mutex<Weak<TestPostgres>> = Mutex::new(Weak::new());

fn cluster() -> Result<Arc<TestPostgres>, TestPostgresError> {
    let mut slot = CLUSTER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(running) = slot.upgrade() {
        return Ok(running);
    }
    let started = Arc::new(TestPostgres::start()?);
    *slot = Arc::downgrade(&started);
    Ok(started)
}

/// With `DATABASE_URL` set, each case gets a fresh database on that server instead of a
/// cluster of its own.
async fn external_database(base: &str, name: &str) -> String {
    let pool = sqlx::postgres::PgPool::connect(base).await.unwrap();
    for sql in [format!("DROP DATABASE IF EXISTS \"{name}\""), format!("CREATE DATABASE \"{name}\"")] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let (prefix, rest) = base.rsplit_once('/').unwrap();
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

async fn postgres(case: &str) -> Harness {
    if let Ok(base) = std::env::var("DATABASE_URL") {
        let store = SqlStore::connect(&external_database(&base, &format!("store_{case}")).await).await.unwrap();
        store.migrate().await.unwrap();
        return Harness { store, _guard: Box::new(()) };
    }
    let pg = tokio::task::spawn_blocking(cluster)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("PostgreSQL did not start: {e}: {e:?}"));
    let url = pg.create_database(&format!("store_{case}")).unwrap();
    // Goes through `connect` so the URL dispatch is covered too.
    let store = SqlStore::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    store.migrate().await.unwrap();
    Harness { store, _guard: Box::new(pg) }
}

/// `mod $backend` with one test per case, each on a fresh store from `super::$backend`.
macro_rules! backend_tests {
    ($backend:ident: $($case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let harness = super::$backend(stringify!($case)).await;
                    super::$case(&harness.store).await;
                }
            )*
        }
    };
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        backend_tests!(sqlite: $($case),*);
        backend_tests!(postgres: $($case),*);
    };
}

conformance!(
    ping,
    migrate_twice_is_a_noop,
    apps_create_get_list,
    duplicate_app_name_conflicts,
    public_keys_add_duplicate_and_active,
    artifact_insert_is_idempotent_on_digest,
    artifact_list_paginates_newest_first,
    artifact_delete,
    link_artifact_is_idempotent_and_ordered,
    artifact_in_use_follows_status,
    uploads_lifecycle,
    deployments_claim_their_idempotency_key,
    leases_go_to_one_owner_at_a_time,
    idempotency_first_write_wins,
    deployments_insert_get_list_and_events,
    apply_transition_is_compare_and_set,
    running_deployment_per_app,
    running_deployments_across_apps,
    tokens_lifecycle,
);

fn artifact(n: u32, created_at_ms: i64) -> Artifact {
    Artifact {
        id: format!("art-{n:02}"),
        digest: format!("{n:064x}"),
        size_bytes: 1000 + i64::from(n),
        storage_key: format!("blobs/{n:064x}"),
        signature: n.is_multiple_of(2).then(|| format!("sig-{n}")),
        created_at_ms,
    }
}

fn deployment(id: &str, app: &App, artifact: &Artifact, status: DeploymentStatus, created_at_ms: i64) -> Deployment {
    Deployment {
        id: id.to_owned(),
        app_id: app.id.clone(),
        app_name: app.name.clone(),
        artifact_id: artifact.id.clone(),
        digest: artifact.digest.clone(),
        status,
        runtime: "process".to_owned(),
        url: None,
        failure_reason: None,
        signature: artifact.signature.clone(),
        verified: artifact.signature.is_some(),
        env: std::collections::BTreeMap::new(),
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}

fn created_event(deployment: &Deployment) -> DeploymentEvent {
    DeploymentEvent {
        deployment_id: deployment.id.clone(),
        from_status: None,
        to_status: deployment.status,
        reason: Some("requested".to_owned()),
        at_ms: deployment.created_at_ms,
    }
}

async fn insert_artifact<S: MetadataStore>(store: &S, n: u32, created_at_ms: i64) -> Artifact {
    let (stored, created) = store.insert_artifact(&artifact(n, created_at_ms)).await.unwrap();
    assert!(created);
    stored
}

async fn insert_deployment<S: MetadataStore>(store: &S, deployment: &Deployment) {
    assert_eq!(store.insert_deployment(deployment, &created_event(deployment), None).await.unwrap(), None);
}

/// Names the error of a call expected to fail, with the message where it is part of the contract.
fn failure<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(what)) => format!("conflict: {what}"),
        Err(StoreError::NotFound(what)) => format!("not found: {what}"),
        Err(StoreError::Database(_)) => "database".to_owned(),
        Ok(value) => panic!("expected an error, got {value:?}"),
    }
}

fn ids(artifacts: &[Artifact]) -> Vec<&str> {
    artifacts.iter().map(|a| a.id.as_str()).collect()
}

async fn ping(store: &SqlStore) {
    store.ping().await.unwrap();
}

async fn migrate_twice_is_a_noop(store: &SqlStore) {
    let app = store.create_app("app-1", "web", 10).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.get_app("web").await.unwrap(), Some(app));
}

async fn apps_create_get_list<S: MetadataStore>(store: &S) {
    let web = store.create_app("app-1", "web", 10).await.unwrap();
    assert_eq!(web, App { id: "app-1".to_owned(), name: "web".to_owned(), created_at_ms: 10 });
    let api = store.create_app("app-2", "api", 20).await.unwrap();
    assert_eq!(store.get_app("web").await.unwrap(), Some(web.clone()));
    assert_eq!(store.get_app("nope").await.unwrap(), None);
    assert_eq!(store.list_apps().await.unwrap(), vec![api, web]);
}

async fn duplicate_app_name_conflicts<S: MetadataStore>(store: &S) {
    let web = store.create_app("app-1", "web", 10).await.unwrap();
    assert_eq!(failure(store.create_app("app-2", "web", 20).await), "conflict: app 'web'");
    assert_eq!(store.list_apps().await.unwrap(), vec![web]);
}

async fn public_keys_add_duplicate_and_active<S: MetadataStore>(store: &S) {
    store.create_app("app-1", "web", 1).await.unwrap();
    store.create_app("app-2", "api", 1).await.unwrap();
    let key = |id: &str, app_id: &str, hex: &str, active: bool, at: i64| PublicKey {
        id: id.to_owned(),
        app_id: app_id.to_owned(),
        public_key_hex: hex.to_owned(),
        active,
        created_at_ms: at,
    };
    let newer = key("key-1", "app-1", "aa", true, 30);
    let older = key("key-2", "app-1", "bb", true, 20);
    let retired = key("key-3", "app-1", "cc", false, 10);
    for k in [&newer, &older, &retired] {
        store.add_public_key(k).await.unwrap();
    }
    let again = key("key-4", "app-1", "aa", true, 40);
    assert_eq!(failure(store.add_public_key(&again).await), "conflict: public key aa of app app-1");
    // The same key may belong to another app.
    let shared = key("key-5", "app-2", "aa", true, 50);
    store.add_public_key(&shared).await.unwrap();
    assert_eq!(store.active_public_keys("app-1").await.unwrap(), vec![older, newer]);
    assert_eq!(store.active_public_keys("app-2").await.unwrap(), vec![shared]);
    assert_eq!(store.active_public_keys("app-3").await.unwrap(), vec![]);
}

async fn artifact_insert_is_idempotent_on_digest<S: MetadataStore>(store: &S) {
    let first = artifact(1, 100);
    assert_eq!(store.insert_artifact(&first).await.unwrap(), (first.clone(), true));
    // Same bytes uploaded again under another id: the first row wins.
    let again = Artifact { id: "art-other".to_owned(), created_at_ms: 200, ..first.clone() };
    assert_eq!(store.insert_artifact(&again).await.unwrap(), (first.clone(), false));
    let signed = artifact(2, 300);
    assert_eq!(store.insert_artifact(&signed).await.unwrap(), (signed.clone(), true));
    assert_eq!(signed.signature.as_deref(), Some("sig-2"));

    assert_eq!(store.get_artifact(&first.digest).await.unwrap(), Some(first.clone()));
    assert_eq!(store.get_artifact_by_id("art-02").await.unwrap(), Some(signed));
    assert_eq!(store.get_artifact_by_id("art-other").await.unwrap(), None);
    assert_eq!(store.get_artifact(&"f".repeat(64)).await.unwrap(), None);
    // Another digest under a taken id is a real conflict.
    assert_eq!(
        failure(store.insert_artifact(&Artifact { digest: "e".repeat(64), ..first }).await),
        "conflict: artifact art-01"
    );
}

async fn artifact_list_paginates_newest_first<S: MetadataStore>(store: &S) {
    // Two pairs share a timestamp, so the id has to break the ties.
    for (n, at) in [(1, 100), (2, 200), (3, 200), (4, 300), (5, 300)] {
        insert_artifact(store, n, at).await;
    }
    let all = store.list_artifacts(None, 10).await.unwrap();
    assert_eq!(ids(&all), ["art-05", "art-04", "art-03", "art-02", "art-01"]);

    let page1 = store.list_artifacts(None, 2).await.unwrap();
    assert_eq!(ids(&page1), ["art-05", "art-04"]);
    let cursor = |page: &[Artifact]| page.last().map(|a| (a.created_at_ms, a.id.clone()));
    let page2 = store.list_artifacts(cursor(&page1), 2).await.unwrap();
    assert_eq!(ids(&page2), ["art-03", "art-02"]);
    let page3 = store.list_artifacts(cursor(&page2), 2).await.unwrap();
    assert_eq!(ids(&page3), ["art-01"]);
    assert_eq!(store.list_artifacts(cursor(&page3), 2).await.unwrap(), vec![]);
    assert_eq!(page3, vec![artifact(1, 100)]);
}

async fn artifact_delete<S: MetadataStore>(store: &S) {
    let app = store.create_app("app-1", "web", 1).await.unwrap();
    let linked = insert_artifact(store, 1, 10).await;
    let deployed = insert_artifact(store, 2, 20).await;
    store.link_artifact(&app.id, &linked.id, 30).await.unwrap();
    store.link_artifact(&app.id, &deployed.id, 31).await.unwrap();
    insert_deployment(store, &deployment("dep-1", &app, &deployed, DeploymentStatus::Failed, 40)).await;

    // The link goes with the artifact.
    store.delete_artifact(&linked.id).await.unwrap();
    assert_eq!(store.get_artifact_by_id(&linked.id).await.unwrap(), None);
    assert_eq!(store.app_artifacts(&app.id).await.unwrap(), vec![deployed.clone()]);
    assert_eq!(failure(store.delete_artifact(&linked.id).await), "not found: artifact art-01");
    // A finished deployment does not pin its artifact (retention may remove it); the
    // deployment row stays as history.
    store.delete_artifact(&deployed.id).await.unwrap();
    assert_eq!(store.get_artifact_by_id(&deployed.id).await.unwrap(), None);
    assert_eq!(store.get_deployment("dep-1").await.unwrap().map(|d| d.digest), Some(deployed.digest));
    // A live deployment does: the row stays, whoever asks.
    let live = insert_artifact(store, 3, 50).await;
    insert_deployment(store, &deployment("dep-2", &app, &live, DeploymentStatus::Running, 60)).await;
    assert_eq!(failure(store.delete_artifact(&live.id).await), "not found: artifact art-03");
    assert_eq!(store.get_artifact_by_id(&live.id).await.unwrap(), Some(live));
}

/// Two replicas may want one lease at once: exactly one gets it; it can renew it; another gets
/// it only once it expired or was released.
async fn leases_go_to_one_owner_at_a_time<S: MetadataStore>(store: &S) {
    let racing = futures_util::future::join_all(
        ["r1", "r2", "r3", "r4"].map(|owner| store.try_lease("rollout:d1", owner, 1_000, 2_000)),
    )
    .await;
    let won: Vec<bool> = racing.into_iter().map(Result::unwrap).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let owner = ["r1", "r2", "r3", "r4"][won.iter().position(|w| *w).unwrap()];
    let other = if owner == "r1" { "r2" } else { "r1" };
    assert!(store.try_lease("rollout:d1", owner, 1_500, 3_000).await.unwrap(), "renewal");
    assert!(!store.try_lease("rollout:d1", other, 2_999, 4_000).await.unwrap(), "taken while valid");
    assert!(store.try_lease("rollout:d1", other, 3_000, 5_000).await.unwrap(), "expired leases go to the next");
    store.release_lease("rollout:d1", owner).await.unwrap();
    assert!(!store.try_lease("rollout:d1", owner, 3_500, 6_000).await.unwrap(), "released by a non-owner");
    store.release_lease("rollout:d1", other).await.unwrap();
    assert!(store.try_lease("rollout:d1", owner, 3_500, 6_000).await.unwrap());
    assert!(store.try_lease("job:gc", other, 3_500, 6_000).await.unwrap(), "leases are per name");
    store.clear_leases().await.unwrap();
    assert!(store.try_lease("rollout:d1", other, 0, 1).await.unwrap());
}

async fn link_artifact_is_idempotent_and_ordered<S: MetadataStore>(store: &S) {
    store.create_app("app-1", "web", 1).await.unwrap();
    store.create_app("app-2", "api", 1).await.unwrap();
    let a1 = insert_artifact(store, 1, 1).await;
    let a2 = insert_artifact(store, 2, 2).await;
    store.link_artifact("app-1", &a2.id, 10).await.unwrap();
    store.link_artifact("app-1", &a1.id, 20).await.unwrap();
    // Relinking keeps the first link time, so a2 stays first.
    store.link_artifact("app-1", &a2.id, 30).await.unwrap();
    assert_eq!(store.app_artifacts("app-1").await.unwrap(), vec![a2, a1]);
    assert_eq!(store.app_artifacts("app-2").await.unwrap(), vec![]);
}

async fn artifact_in_use_follows_status<S: MetadataStore>(store: &S) {
    let app = store.create_app("app-1", "web", 1).await.unwrap();
    let idle = insert_artifact(store, 99, 1).await;
    assert!(!store.artifact_in_use(&idle.id).await.unwrap());
    assert!(!store.artifact_in_use("no-such-artifact").await.unwrap());
    for (n, status) in (1..).zip(DeploymentStatus::ALL) {
        let art = insert_artifact(store, n, i64::from(n)).await;
        insert_deployment(store, &deployment(&format!("dep-{n}"), &app, &art, status, i64::from(n))).await;
        let live =
            matches!(status, DeploymentStatus::Pending | DeploymentStatus::Deploying | DeploymentStatus::Running);
        assert_eq!(store.artifact_in_use(&art.id).await.unwrap(), live, "status {status}");
    }
}

async fn uploads_lifecycle<S: MetadataStore>(store: &S) {
    store.create_app("app-1", "web", 1).await.unwrap();
    store.create_app("app-2", "api", 1).await.unwrap();
    let upload = |id: &str, app: &str, digest: &str, multipart: Option<&str>, at: i64| Upload {
        id: id.to_owned(),
        app_id: app.to_owned(),
        digest: digest.repeat(64),
        size_bytes: 5 << 40,
        multipart_id: multipart.map(str::to_owned),
        created_at_ms: at,
        expires_at_ms: at * 10,
    };
    let multipart = upload("u-1", "app-1", "a", Some("mpu-1"), 100);
    let older = upload("u-2", "app-1", "a", None, 200);
    let newer = upload("u-3", "app-1", "a", None, 300);
    let other_app = upload("u-4", "app-2", "a", None, 400);
    for row in [&multipart, &older, &newer, &other_app] {
        store.insert_upload(row).await.unwrap();
    }
    assert_eq!(failure(store.insert_upload(&multipart).await), "conflict: upload u-1");
    assert_eq!(store.get_upload("u-1").await.unwrap(), Some(multipart.clone()));
    assert_eq!(store.get_upload("u-9").await.unwrap(), None);
    // The newest single-PUT upload of the app and digest; multipart ones and other apps' never.
    assert_eq!(store.latest_upload("app-1", &"a".repeat(64)).await.unwrap(), Some(newer.clone()));
    assert_eq!(store.latest_upload("app-2", &"a".repeat(64)).await.unwrap(), Some(other_app.clone()));
    assert_eq!(store.latest_upload("app-1", &"b".repeat(64)).await.unwrap(), None);

    assert_eq!(store.expired_uploads(999).await.unwrap(), vec![]);
    // The deadline itself counts as expired.
    assert_eq!(store.expired_uploads(1_000).await.unwrap(), vec![multipart.clone()]);
    assert_eq!(store.expired_uploads(2_000).await.unwrap(), vec![multipart, older.clone()]);

    assert!(store.delete_upload("u-1").await.unwrap());
    assert!(!store.delete_upload("u-1").await.unwrap());
    assert_eq!(store.get_upload("u-1").await.unwrap(), None);
    assert!(store.delete_upload("u-3").await.unwrap());
    assert_eq!(store.latest_upload("app-1", &"a".repeat(64)).await.unwrap(), Some(older));
}

async fn idempotency_first_write_wins<S: MetadataStore>(store: &S) {
    let record = |scope: &str, hash: &str, resource: &str, at: i64| IdempotencyRecord {
        scope: scope.to_owned(),
        key: "key-1".to_owned(),
        request_hash: hash.to_owned(),
        resource_id: resource.to_owned(),
        created_at_ms: at,
    };
    assert_eq!(store.get_idempotency("deployment", "key-1").await.unwrap(), None);
    let first = record("deployment", "hash-1", "dep-1", 10);
    assert_eq!(store.put_idempotency(&first).await.unwrap(), first);
    assert_eq!(store.put_idempotency(&record("deployment", "hash-2", "dep-2", 20)).await.unwrap(), first);
    assert_eq!(store.get_idempotency("deployment", "key-1").await.unwrap(), Some(first.clone()));
    // Keys are per scope.
    let other_scope = record("complete", "hash-3", "art-1", 30);
    assert_eq!(store.put_idempotency(&other_scope).await.unwrap(), other_scope);
    assert_eq!(store.get_idempotency("deployment", "key-1").await.unwrap(), Some(first));
}

/// Regression: concurrent identical `POST /deployments` created several deployments, because
/// the idempotency record was stored after the deployment. The key is now claimed in the same
/// transaction: of requests racing with one key, exactly one inserts.
async fn deployments_claim_their_idempotency_key<S: MetadataStore>(store: &S) {
    let web = store.create_app("app-1", "web", 1).await.unwrap();
    let art = insert_artifact(store, 4, 1).await;
    let attempts: Vec<(Deployment, IdempotencyRecord)> = (0..8)
        .map(|n| {
            let d = deployment(&format!("racer-{n}"), &web, &art, DeploymentStatus::Pending, 100 + n);
            let record = IdempotencyRecord {
                scope: "deployment".to_owned(),
                key: "same-key".to_owned(),
                request_hash: "same-request".to_owned(),
                resource_id: d.id.clone(),
                created_at_ms: 100 + n,
            };
            (d, record)
        })
        .collect();
    let events: Vec<DeploymentEvent> = attempts.iter().map(|(d, _)| created_event(d)).collect();
    let outcomes = futures_util::future::join_all(
        attempts.iter().zip(&events).map(|((d, record), event)| store.insert_deployment(d, event, Some(record))),
    )
    .await;
    let winners: Vec<&Deployment> =
        attempts.iter().zip(&outcomes).filter(|(_, o)| matches!(o, Ok(None))).map(|((d, _), _)| d).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let Ok(Some(existing)) = outcome {
            assert_eq!(existing.resource_id, winners[0].id);
        }
    }
    assert_eq!(store.list_deployments(&web.id).await.unwrap().len(), 1);
    let stored = store.get_idempotency("deployment", "same-key").await.unwrap().unwrap();
    assert_eq!(stored.resource_id, winners[0].id);
}

async fn deployments_insert_get_list_and_events<S: MetadataStore>(store: &S) {
    let web = store.create_app("app-1", "web", 1).await.unwrap();
    let api = store.create_app("app-2", "api", 1).await.unwrap();
    let art = insert_artifact(store, 2, 1).await;
    let unsigned = insert_artifact(store, 3, 1).await;
    let d1 = deployment("dep-1", &web, &art, DeploymentStatus::Pending, 100);
    let d2 = deployment("dep-2", &web, &unsigned, DeploymentStatus::Pending, 200);
    let d3 = Deployment {
        url: Some("http://web.local".to_owned()),
        env: [("APP_VERSION", "3"), ("GREETING", "héllo \"quoted\"\nline")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        ..deployment("dep-3", &web, &art, DeploymentStatus::Running, 200)
    };
    let other = deployment("dep-4", &api, &art, DeploymentStatus::Pending, 300);
    for d in [&d1, &d2, &d3, &other] {
        insert_deployment(store, d).await;
    }
    assert!(d1.verified && !d2.verified);
    assert_eq!(store.get_deployment("dep-1").await.unwrap(), Some(d1.clone()));
    assert_eq!(store.get_deployment("dep-2").await.unwrap(), Some(d2.clone()));
    assert_eq!(store.get_deployment("dep-9").await.unwrap(), None);
    // Newest first; dep-2 and dep-3 tie on time and are ordered by id.
    assert_eq!(store.list_deployments("app-1").await.unwrap(), vec![d3, d2, d1.clone()]);
    assert_eq!(store.list_deployments("app-2").await.unwrap(), vec![other]);
    assert_eq!(store.deployment_events("dep-1").await.unwrap(), vec![created_event(&d1)]);

    assert_eq!(failure(store.insert_deployment(&d1, &created_event(&d1), None).await), "conflict: deployment dep-1");
    // The failed insert left no second event behind.
    assert_eq!(store.deployment_events("dep-1").await.unwrap(), vec![created_event(&d1)]);
}

async fn apply_transition_is_compare_and_set<S: MetadataStore>(store: &S) {
    let app = store.create_app("app-1", "web", 1).await.unwrap();
    let art = insert_artifact(store, 1, 1).await;
    let pending = deployment("dep-1", &app, &art, DeploymentStatus::Pending, 100);
    insert_deployment(store, &pending).await;

    let event = |from: DeploymentStatus, to: DeploymentStatus, reason: Option<&str>, at: i64| DeploymentEvent {
        deployment_id: "dep-1".to_owned(),
        from_status: Some(from),
        to_status: to,
        reason: reason.map(str::to_owned),
        at_ms: at,
    };
    let deploying = Deployment { status: DeploymentStatus::Deploying, updated_at_ms: 110, ..pending.clone() };
    let started = event(DeploymentStatus::Pending, DeploymentStatus::Deploying, None, 110);
    assert!(store.apply_transition(&deploying, DeploymentStatus::Pending, &started).await.unwrap());
    assert_eq!(store.get_deployment("dep-1").await.unwrap(), Some(deploying.clone()));

    // A writer that still believes the deployment is pending loses and writes nothing.
    let stale = Deployment {
        status: DeploymentStatus::Cancelled,
        failure_reason: Some("cancelled".to_owned()),
        updated_at_ms: 120,
        ..pending.clone()
    };
    let stale_event = event(DeploymentStatus::Pending, DeploymentStatus::Cancelled, Some("cancelled"), 120);
    assert!(!store.apply_transition(&stale, DeploymentStatus::Pending, &stale_event).await.unwrap());
    assert_eq!(store.get_deployment("dep-1").await.unwrap(), Some(deploying.clone()));

    let running = Deployment {
        status: DeploymentStatus::Running,
        url: Some("http://web.local".to_owned()),
        updated_at_ms: 130,
        ..deploying.clone()
    };
    let succeeded = event(DeploymentStatus::Deploying, DeploymentStatus::Running, Some("healthy"), 130);
    assert!(store.apply_transition(&running, DeploymentStatus::Deploying, &succeeded).await.unwrap());
    assert!(!store.apply_transition(&running, DeploymentStatus::Deploying, &succeeded).await.unwrap());
    assert_eq!(store.get_deployment("dep-1").await.unwrap(), Some(running));
    assert_eq!(store.deployment_events("dep-1").await.unwrap(), vec![created_event(&pending), started, succeeded]);
}

async fn running_deployment_per_app<S: MetadataStore>(store: &S) {
    let web = store.create_app("app-1", "web", 1).await.unwrap();
    let api = store.create_app("app-2", "api", 1).await.unwrap();
    let art = insert_artifact(store, 1, 1).await;
    assert_eq!(store.running_deployment("app-1").await.unwrap(), None);
    let old = deployment("dep-1", &web, &art, DeploymentStatus::Superseded, 10);
    let live = Deployment {
        url: Some("http://web".to_owned()),
        ..deployment("dep-2", &web, &art, DeploymentStatus::Running, 20)
    };
    let next = deployment("dep-3", &web, &art, DeploymentStatus::Deploying, 30);
    let other = deployment("dep-4", &api, &art, DeploymentStatus::Running, 40);
    for d in [&old, &live, &next, &other] {
        insert_deployment(store, d).await;
    }
    assert_eq!(store.running_deployment("app-1").await.unwrap(), Some(live));
    assert_eq!(store.running_deployment("app-2").await.unwrap(), Some(other));
    assert_eq!(store.running_deployment("app-3").await.unwrap(), None);
}

/// What a restarted server reconciles: every app's deployments in one status, oldest first.
async fn running_deployments_across_apps<S: MetadataStore>(store: &S) {
    assert_eq!(store.deployments_with_status(DeploymentStatus::Running).await.unwrap(), Vec::<Deployment>::new());
    let web = store.create_app("app-1", "web", 1).await.unwrap();
    let api = store.create_app("app-2", "api", 1).await.unwrap();
    let art = insert_artifact(store, 1, 1).await;
    let api_live = deployment("dep-1", &api, &art, DeploymentStatus::Running, 10);
    let web_old = deployment("dep-2", &web, &art, DeploymentStatus::Superseded, 20);
    let web_live = deployment("dep-3", &web, &art, DeploymentStatus::Running, 30);
    let web_failed = deployment("dep-4", &web, &art, DeploymentStatus::Failed, 40);
    let web_next = deployment("dep-5", &web, &art, DeploymentStatus::Deploying, 50);
    for d in [&web_live, &web_failed, &api_live, &web_old, &web_next] {
        insert_deployment(store, d).await;
    }
    assert_eq!(store.deployments_with_status(DeploymentStatus::Running).await.unwrap(), vec![api_live, web_live]);
    assert_eq!(store.deployments_with_status(DeploymentStatus::Deploying).await.unwrap(), vec![web_next]);
    assert_eq!(store.deployments_with_status(DeploymentStatus::Pending).await.unwrap(), vec![]);
}

async fn tokens_lifecycle<S: MetadataStore>(store: &S) {
    assert_eq!(store.count_tokens().await.unwrap(), 0);
    let token = |n: u8, name: Option<&str>, role: Role, expires_at_ms: Option<i64>| Token {
        id: format!("tok-{n}"),
        name: name.map(str::to_owned),
        role,
        token_hash: n.to_string().repeat(64),
        created_at_ms: i64::from(n) * 10,
        expires_at_ms,
        revoked_at_ms: None,
    };
    let admin = token(1, Some("ci"), Role::Admin, Some(10_000));
    let reader = token(2, None, Role::Reader, None);
    store.insert_token(&admin).await.unwrap();
    store.insert_token(&reader).await.unwrap();
    let clash = Token { id: "tok-3".to_owned(), role: Role::Deployer, ..admin.clone() };
    assert_eq!(failure(store.insert_token(&clash).await), "conflict: token");
    assert_eq!(store.count_tokens().await.unwrap(), 2);
    assert_eq!(store.find_token(&"1".repeat(64)).await.unwrap(), Some(admin.clone()));
    assert_eq!(store.find_token(&"2".repeat(64)).await.unwrap(), Some(reader));
    assert_eq!(store.find_token(&"3".repeat(64)).await.unwrap(), None);

    assert!(store.revoke_token("tok-1", 500).await.unwrap());
    // Revoking again keeps the first revocation time.
    assert!(store.revoke_token("tok-1", 600).await.unwrap());
    assert!(!store.revoke_token("tok-9", 600).await.unwrap());
    let revoked = Token { revoked_at_ms: Some(500), ..admin };
    assert_eq!(store.find_token(&"1".repeat(64)).await.unwrap(), Some(revoked));
    assert_eq!(store.count_tokens().await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_awkward_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a dir").join("#meta 100%?.db");
    let url = format!("sqlite://{}", path.display());
    // `?` would start URL parameters, which `connect` refuses, so open by path.
    assert!(SqlStore::connect(&url).await.is_err());
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    store.migrate().await.unwrap();
    store.create_app("app-1", "web", 1).await.unwrap();
    assert!(path.is_file());
    assert!(path.with_file_name("#meta 100%?.db-wal").is_file(), "no write-ahead log next to the database");
    store.close().await;

    let reopened =
        SqlStore::connect(&format!("sqlite:{}", dir.path().join("a dir").join("plain.db").display())).await.unwrap();
    assert_eq!(reopened.backend(), Backend::Sqlite);
    let same = SqlStore::open_sqlite(&path).await.unwrap();
    assert_eq!(same.get_app("web").await.unwrap().map(|a| a.id), Some("app-1".to_owned()));
}

#[tokio::test]
async fn unsupported_url_is_refused() {
    assert_eq!(failure(SqlStore::connect("mysql://localhost/aether").await), "database");
    assert_eq!(failure(SqlStore::connect("sqlite::memory:").await), "database");
}
