//! The client and the uploader against a real control plane on 127.0.0.1 (SQLite and
//! artifacts in a temporary directory, the fake runtime), plus a stub that only answers 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aether_core::api::{CreateDeploymentRequest, CreateTokenRequest, PresignRequest};
use aether_core::deployment::DeploymentStatus;
use aether_core::digest::sha256_hex;
use aether_core::signing::SigningKey;
use aether_core::wire::{AppName, Digest};
use aether_sdk::client::{Client, ClientConfig, LogsQuery};
use aether_sdk::upload::{UploadProgress, UploadRequest, upload_artifact};
use aether_sdk::{Error, ErrorKind};

mod support;
use support::{ADMIN, DEPLOYER, TestServer, app, client_for};

/// Distinct, deterministic artifact bytes.
fn blob(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i * 31 + usize::from(tag) * 7) % 251).unwrap()).collect()
}

fn digest(bytes: &[u8]) -> Digest {
    Digest::parse(&sha256_hex(bytes)).unwrap()
}

#[track_caller]
fn assert_api(error: &Error, status: u16, code: &str) {
    match error {
        Error::Api { status: s, code: c, message } => {
            assert_eq!((*s, c.as_str()), (status, code), "{message}");
            assert!(!message.is_empty());
            let kind = match status {
                401 | 403 => ErrorKind::Config,
                400..=499 => ErrorKind::Usage,
                _ => ErrorKind::Network,
            };
            assert_eq!(error.kind(), kind);
        }
        other => panic!("expected an API error {status} {code}, got {other:?}"),
    }
}

/// Presign, PUT and complete by hand; returns the digest.
async fn upload_by_hand(client: &Client, app_name: &AppName, bytes: &[u8]) -> Digest {
    let digest = digest(bytes);
    let size_bytes = bytes.len() as u64;
    let request = PresignRequest { app_name: app_name.clone(), digest: digest.clone(), size_bytes };
    let presigned = client.presign(&request).await.unwrap();
    assert_eq!(presigned.method, "PUT");
    let put = reqwest::Client::new().put(&presigned.upload_url).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let complete = aether_core::api::CompleteRequest {
        app_name: app_name.clone(),
        digest: digest.clone(),
        size_bytes,
        storage_key: Some(presigned.storage_key),
        upload_id: presigned.upload_id,
        signature: None,
        idempotency_key: None,
    };
    let stored = client.complete(&complete).await.unwrap();
    assert_eq!((stored.digest.as_str(), stored.duplicate, stored.status.as_str()), (digest.as_str(), false, "stored"));
    let again = client.presign(&request).await.unwrap();
    assert_eq!((again.method.as_str(), again.upload_url.as_str()), ("NONE", ""));
    digest
}

async fn wait_running(client: &Client, id: &str) {
    for _ in 0..100 {
        if client.get_deployment(id).await.unwrap().status == DeploymentStatus::Running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment {id} never started");
}

#[tokio::test]
async fn apps_keys_logs_and_errors() {
    let server = TestServer::start().await;
    let deployer = server.client(Some(DEPLOYER));
    deployer.health().await.unwrap();
    deployer.ready().await.unwrap();

    let created = deployer.create_app(&app("web")).await.unwrap();
    assert_eq!(created.name, "web");
    let duplicate = deployer.create_app(&app("web")).await.unwrap_err();
    assert_api(&duplicate, 409, "conflict");
    let names: Vec<String> = deployer.list_apps().await.unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["web"]);

    let key = SigningKey::from_seed([7; 32]).public_key_hex();
    let registered = server.client(Some(ADMIN)).add_public_key(&app("web"), &key).await.unwrap();
    assert_eq!((registered.app_id.as_str(), registered.public_key_hex.as_str()), (created.id.as_str(), key.as_str()));
    assert!(registered.active);

    let lines = deployer.app_logs(&app("web"), &LogsQuery { tail: Some(5), ..LogsQuery::default() }).await.unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with("stdout: web: fake runtime log line"), "{lines:?}");
    assert!(
        deployer.app_logs(&app("web"), &LogsQuery { tail: Some(0), ..LogsQuery::default() }).await.unwrap().is_empty()
    );
    assert_api(&deployer.app_deployments(&app("nope")).await.unwrap_err(), 404, "not_found");

    let wrong = server.client(Some("wrong-token")).list_apps().await.unwrap_err();
    assert_api(&wrong, 401, "unauthorized");
    assert_api(&server.client(None).list_apps().await.unwrap_err(), 401, "unauthorized");
    // Without a bearer token the health endpoints still answer.
    server.client(None).health().await.unwrap();
}

#[tokio::test]
async fn artifacts_deployments_and_rollbacks() {
    let server = TestServer::start().await;
    let client = server.client(Some(DEPLOYER));
    let web = app("web");
    client.create_app(&web).await.unwrap();
    let first = upload_by_hand(&client, &web, &blob(1, 1000)).await;
    let second = upload_by_hand(&client, &web, &blob(2, 2000)).await;

    assert!(client.artifact_exists(&first).await.unwrap());
    assert!(!client.artifact_exists(&digest(b"never uploaded")).await.unwrap());
    let meta = client.get_artifact(&second).await.unwrap();
    assert_eq!((meta.digest.as_str(), meta.size_bytes, meta.signed), (second.as_str(), 2000, false));
    let page = client.list_artifacts(None, Some(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let cursor = page.next_cursor.expect("a second page");
    let rest = client.list_artifacts(Some(&cursor), Some(10)).await.unwrap();
    let mut seen: Vec<String> = page.items.iter().chain(&rest.items).map(|a| a.digest.clone()).collect();
    seen.sort();
    let mut expected = vec![first.to_string(), second.to_string()];
    expected.sort();
    assert_eq!((seen, rest.next_cursor), (expected, None));

    let deploy = |digest: &Digest, key: Option<&str>| CreateDeploymentRequest {
        app_name: web.clone(),
        digest: digest.clone(),
        runtime: None,
        signature: None,
        idempotency_key: key.map(str::to_owned),
        env: Default::default(),
    };
    let one = client.create_deployment(&deploy(&first, Some("deploy-1"))).await.unwrap();
    assert_eq!((one.app_name.as_str(), one.digest.as_str()), ("web", first.as_str()));
    let replay = client.create_deployment(&deploy(&first, Some("deploy-1"))).await.unwrap();
    assert_eq!(replay.id, one.id);
    wait_running(&client, &one.id).await;
    let two = client.create_deployment(&deploy(&second, None)).await.unwrap();
    wait_running(&client, &two.id).await;
    let fetched = client.get_deployment(&two.id).await.unwrap();
    let events = fetched.events.expect("events");
    assert_eq!(events.first().map(|e| e.to), Some(DeploymentStatus::Pending));
    assert_eq!(events.last().map(|e| e.to), Some(DeploymentStatus::Running));
    assert!(fetched.url.is_some_and(|url| url.contains(&two.id)));

    let back = client.rollback(&web, None).await.unwrap();
    assert_eq!(back.digest, first.as_str());
    wait_running(&client, &back.id).await;
    let forward = client.rollback(&web, Some(&two.id)).await.unwrap();
    assert_eq!(forward.digest, second.as_str());
    let history: Vec<String> = client.app_deployments(&web).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(history.len(), 4);
    assert_eq!(history.first(), Some(&forward.id), "newest first");
    assert_api(&client.get_deployment("no-such-id").await.unwrap_err(), 404, "not_found");
    // Path segments are escaped, so an id cannot reach another route.
    assert_api(&client.get_deployment("../apps").await.unwrap_err(), 404, "not_found");
    assert_api(&client.rollback(&web, Some("no-such-id")).await.unwrap_err(), 400, "bad_request");
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_api(&client.rollback(&web, Some(unknown)).await.unwrap_err(), 409, "conflict");
}

#[tokio::test]
async fn tokens_are_minted_and_revoked() {
    let server = TestServer::start().await;
    let admin = server.client(Some(ADMIN));
    let request = CreateTokenRequest { role: "reader".into(), name: Some("ci".into()), ttl_secs: Some(600) };
    let minted = admin.create_token(&request).await.unwrap();
    assert_eq!(minted.role, "reader");
    assert!(minted.expires_at.is_some());
    let reader = server.client(Some(&minted.token));
    assert!(reader.list_apps().await.unwrap().is_empty());
    assert_api(&reader.create_app(&app("web")).await.unwrap_err(), 403, "forbidden");

    admin.revoke_token(&minted.id).await.unwrap();
    assert_api(&reader.list_apps().await.unwrap_err(), 401, "unauthorized");
    assert_api(&admin.revoke_token("unknown").await.unwrap_err(), 404, "not_found");
    let bad_role = CreateTokenRequest { role: "root".into(), name: None, ttl_secs: None };
    assert_api(&admin.create_token(&bad_role).await.unwrap_err(), 400, "bad_request");
}

#[tokio::test]
async fn unreachable_servers_are_network_errors_naming_the_url() {
    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_for(&format!("http://{addr}"), Some(DEPLOYER), 1);
    let error = client.list_apps().await.unwrap_err();
    let Error::Http { url, .. } = &error else { panic!("expected an HTTP error, got {error:?}") };
    assert_eq!(url, &format!("http://{addr}/apps"));
    assert_eq!((error.kind(), error.code()), (ErrorKind::Network, "network_error"));
    assert!(error.to_string().contains(&format!("http://{addr}/apps")), "{error}");
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn tokens_never_travel_in_clear_text_to_other_hosts() {
    let config = |url: &str, token: Option<&str>, insecure: bool| ClientConfig {
        token: token.map(str::to_owned),
        insecure,
        ..ClientConfig::new(url)
    };
    let refused = Client::new(config("http://example.invalid", Some("t"), false)).unwrap_err();
    assert!(matches!(&refused, Error::InsecureTransport { url } if url.starts_with("http://example.invalid")));
    assert_eq!(refused.kind(), ErrorKind::Config);
    Client::new(config("http://example.invalid", Some("t"), true)).unwrap();
    Client::new(config("http://example.invalid", None, false)).unwrap();
    Client::new(config("https://example.invalid", Some("t"), false)).unwrap();
    for loopback in ["http://127.0.0.1:1", "http://localhost:8080", "http://[::1]:9"] {
        Client::new(config(loopback, Some("t"), false)).unwrap();
    }
    assert!(matches!(Client::new(config("ftp://example.invalid", None, false)), Err(Error::InvalidUrl { .. })));
    let bad_ca = ClientConfig { ca_cert_pem: Some(b"not a certificate".to_vec()), ..ClientConfig::new("https://h") };
    assert!(matches!(Client::new(bad_ca), Err(Error::ClientSetup { .. })));
    let debug = format!("{:?}", config("https://h", Some("very-secret"), false));
    assert!(debug.contains("<redacted>") && !debug.contains("very-secret"), "{debug}");
}

/// Writes `bytes` to a file and describes its upload to app `web`.
fn upload_request(dir: &tempfile::TempDir, bytes: &[u8]) -> UploadRequest {
    let path = dir.path().join("app.tar.gz");
    std::fs::write(&path, bytes).unwrap();
    UploadRequest::new(app("web"), path, digest(bytes), bytes.len() as u64)
}

#[tokio::test]
async fn single_part_upload_then_skip() {
    let server = TestServer::start().await;
    let client = server.client(Some(DEPLOYER));
    client.create_app(&app("web")).await.unwrap();
    let key = SigningKey::from_seed([7; 32]);
    server.client(Some(ADMIN)).add_public_key(&app("web"), &key.public_key_hex()).await.unwrap();
    let bytes = blob(3, 3 * 1000 * 1000);
    let dir = tempfile::tempdir().unwrap();
    let mut request = upload_request(&dir, &bytes);
    request.signature = Some(key.sign_digest(request.digest.as_str()));
    request.idempotency_key = Some("upload-1".into());

    let mut seen: Vec<UploadProgress> = Vec::new();
    let first = upload_artifact(&client, &request, |p| seen.push(p)).await.unwrap();
    assert_eq!((first.uploaded_bytes, first.skipped, first.duplicate, first.verified), (3_000_000, false, false, true));
    assert_eq!(seen.last(), Some(&UploadProgress { bytes_done: 3_000_000, bytes_total: 3_000_000 }));
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done), "progress went backwards: {seen:?}");
    assert_eq!(server.metric("artifact_upload_bytes_total"), 3_000_000);
    let stored = client.get_artifact(&request.digest).await.unwrap();
    assert_eq!((stored.id.as_str(), stored.size_bytes, stored.signed), (first.artifact_id.as_str(), 3_000_000, true));

    let mut again_seen = Vec::new();
    let again = upload_artifact(&client, &request, |p| again_seen.push(p)).await.unwrap();
    assert_eq!((again.uploaded_bytes, again.skipped, again.duplicate), (0, true, true));
    assert_eq!(again.artifact_id, first.artifact_id);
    assert!(again_seen.is_empty());
    assert_eq!(server.metric("artifact_upload_bytes_total"), 3_000_000, "nothing was sent again");

    // A file that is not what the request declares is refused before anything is sent.
    request.size_bytes += 1;
    let error = upload_artifact(&client, &request, |_| {}).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
}

#[tokio::test]
async fn multipart_upload_in_concurrent_parts() {
    let server = TestServer::start().await;
    let client = server.client(Some(DEPLOYER));
    client.create_app(&app("web")).await.unwrap();
    let size = 3 * 1024 * 1024 + 12_345;
    let bytes = blob(4, size);
    let dir = tempfile::tempdir().unwrap();
    let mut request = upload_request(&dir, &bytes);
    request.multipart_threshold_bytes = 1024 * 1024;
    request.part_size_bytes = 1024 * 1024;
    request.max_concurrent_parts = 2;

    let mut last = None;
    let mut calls = 0;
    let outcome = upload_artifact(&client, &request, |p| {
        calls += 1;
        last = Some(p);
    })
    .await
    .unwrap();
    let total = size as u64;
    assert_eq!((outcome.uploaded_bytes, outcome.skipped, outcome.duplicate), (total, false, false));
    assert_eq!(last, Some(UploadProgress { bytes_done: total, bytes_total: total }));
    assert!(calls > 1, "progress was reported only {calls} time(s)");
    assert_eq!(server.metric("artifact_uploads_total{result=\"stored\"}"), 4, "four parts of at most 1 MiB");
    let stored = client.get_artifact(&request.digest).await.unwrap();
    assert_eq!((stored.size_bytes, stored.id.as_str()), (total, outcome.artifact_id.as_str()));
    // The server re-hashes the assembled object before registering it.
    assert_eq!(stored.digest, sha256_hex(&bytes));

    let skipped = upload_artifact(&client, &request, |_| {}).await.unwrap();
    assert_eq!((skipped.skipped, skipped.uploaded_bytes), (true, 0));
}

/// A server that answers every request with 503, counting requests by method.
async fn unavailable_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use axum::http::StatusCode;
    let gets = Arc::new(AtomicUsize::new(0));
    let posts = Arc::new(AtomicUsize::new(0));
    let unavailable =
        || (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"code": "unavailable", "message": "busy"})));
    let (g, p) = (Arc::clone(&gets), Arc::clone(&posts));
    let router = axum::Router::new().fallback(move |method: axum::http::Method| {
        let counter = if method == axum::http::Method::GET { &g } else { &p };
        counter.fetch_add(1, Ordering::SeqCst);
        async move { unavailable() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, gets, posts)
}

#[tokio::test]
async fn only_idempotent_requests_are_retried_on_503() {
    let (base, gets, posts) = unavailable_server().await;
    let client = client_for(&base, Some(DEPLOYER), 2);
    let started = std::time::Instant::now();
    assert_api(&client.list_apps().await.unwrap_err(), 503, "unavailable");
    assert_eq!(gets.load(Ordering::SeqCst), 3, "one attempt and two retries");
    assert!(started.elapsed() >= Duration::from_millis(300), "backoff of 100 ms, then 200 ms");

    assert_api(&client.create_app(&app("web")).await.unwrap_err(), 503, "unavailable");
    assert_eq!(posts.load(Ordering::SeqCst), 1, "a POST without idempotency key goes out once");

    let keyed = CreateDeploymentRequest {
        app_name: app("web"),
        digest: digest(b"x"),
        runtime: None,
        signature: None,
        idempotency_key: Some("k".into()),
        env: Default::default(),
    };
    assert_api(&client.create_deployment(&keyed).await.unwrap_err(), 503, "unavailable");
    assert_eq!(posts.load(Ordering::SeqCst), 4, "a POST with an idempotency key is retried");
}
