#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Uploads that are started and never completed are garbage-collected after their TTL.

mod support;

use serde_json::json;
use support::{TestServer, blob, digest_of};

#[tokio::test]
async fn expired_pending_uploads_and_their_blobs_are_collected() {
    let server = TestServer::start(&[("AETHER_PENDING_TTL_SECS", "0")]).await;
    server.create_app("web").await;
    let bytes = blob("abandoned", 4096);
    let digest = digest_of(&bytes);
    let presigned = server.presign("web", &digest, bytes.len()).await.expect(200);
    server.put_presigned(&presigned.str("upload_url"), &bytes).await.expect(200);
    let object = server.data_dir().join(format!("artifacts/objects/artifacts/sha256/{digest}.tar.gz"));
    assert!(object.is_file(), "the PUT stored the object at {}", object.display());

    let removed = aether_server::gc::collect_once(&server.state).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!object.exists(), "an uploaded but never completed object is removed");
    // Completing now finds nothing: the attempt is gone, and nothing was ever registered.
    let late = server.complete("web", &bytes, json!({})).await;
    late.expect_error(400, "bad_request");
    assert_eq!(server.head_artifact(&digest).await, 404);
    assert_eq!(aether_server::gc::collect_once(&server.state).await.unwrap(), 0);
}

#[tokio::test]
async fn completed_uploads_are_never_collected() {
    let server = TestServer::start(&[("AETHER_PENDING_TTL_SECS", "0")]).await;
    server.create_app("web").await;
    let bytes = blob("kept", 2048);
    server.upload_ok("web", &bytes).await;
    assert_eq!(aether_server::gc::collect_once(&server.state).await.unwrap(), 0);
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 200);
}

#[tokio::test]
async fn abandoned_multipart_uploads_are_aborted() {
    let server = TestServer::start(&[("AETHER_PENDING_TTL_SECS", "0")]).await;
    server.create_app("web").await;
    let digest = digest_of(b"never sent");
    let body = json!({"app_name": "web", "digest": digest, "size_bytes": 10});
    let init = server.post("/artifacts/multipart/init", Some("deploy-token"), &body).await.expect(200);
    let multipart = server.data_dir().join("artifacts/multipart").join(init.str("upload_id"));
    assert!(multipart.is_dir());
    assert_eq!(aether_server::gc::collect_once(&server.state).await.unwrap(), 1);
    assert!(!multipart.exists());
}
