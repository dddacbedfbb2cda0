#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Uploads that are started and never completed are garbage-collected after their TTL, and so
//! are staging areas that no upload owns.

mod support;

use std::time::{Duration, SystemTime};

use aether_server::gc::collect_at;
use serde_json::json;
use support::{DEPLOYER, TestServer, blob, digest_of};

/// Past every TTL of the test servers (one hour by default).
fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(2 * 3600)
}

#[tokio::test]
async fn expired_uploads_and_their_staged_bytes_are_collected() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("abandoned", 4096);
    let digest = digest_of(&bytes);
    let presigned = server.presign("web", &digest, bytes.len()).await.expect(200);
    server.put_presigned(&presigned.str("upload_url"), &bytes).await.expect(200);
    let staged = server.data_dir().join("artifacts/staging").join(presigned.str("upload_id"));
    assert!(staged.join("blob").is_file(), "the PUT staged the object at {}", staged.display());
    assert_eq!(collect_at(&server.state, SystemTime::now()).await.unwrap(), 0, "collected before its TTL");
    assert!(staged.is_dir());

    assert_eq!(collect_at(&server.state, later()).await.unwrap(), 1);
    assert!(!staged.exists(), "an uploaded but never completed object is removed");
    // Completing now finds nothing: the upload is gone, and nothing was ever registered.
    let late = server.complete("web", &bytes, json!({ "upload_id": presigned.str("upload_id") })).await;
    late.expect_error(404, "not_found");
    server.complete("web", &bytes, json!({})).await.expect_error(404, "not_found");
    assert_eq!(server.head_artifact(&digest).await, 404);
    assert_eq!(collect_at(&server.state, later()).await.unwrap(), 0);
}

#[tokio::test]
async fn completed_uploads_are_never_collected() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("kept", 2048);
    server.upload_ok("web", &bytes).await;
    assert_eq!(collect_at(&server.state, later()).await.unwrap(), 0);
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 200);
}

#[tokio::test]
async fn abandoned_multipart_uploads_are_removed() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let digest = digest_of(b"never sent");
    let body = json!({"app_name": "web", "digest": digest, "size_bytes": 10});
    let init = server.post("/artifacts/multipart/init", Some(DEPLOYER), &body).await.expect(200);
    let staged = server.data_dir().join("artifacts/staging").join(init.str("upload_id"));
    assert!(staged.join("parts").is_dir());
    assert_eq!(collect_at(&server.state, later()).await.unwrap(), 1);
    assert!(!staged.exists());
}

/// A staging area whose upload row is gone (a crash between the two) is removed after the TTL.
#[tokio::test]
async fn orphaned_staging_areas_are_removed_after_the_ttl() {
    let server = TestServer::start(&[]).await;
    let orphan = server.data_dir().join("artifacts/staging").join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("blob"), b"left behind").unwrap();
    assert_eq!(collect_at(&server.state, SystemTime::now()).await.unwrap(), 0, "removed while young");
    assert_eq!(collect_at(&server.state, later()).await.unwrap(), 1);
    assert!(!orphan.exists());
}
