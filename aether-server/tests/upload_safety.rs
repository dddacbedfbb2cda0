#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Regression tests: no upload request can destroy or change a registered artifact. Black-box
//! through the HTTP API, each on the local store and on a real S3-compatible server.
//!
//! Before uploads were staged, completing a registered digest with a wrong `size_bytes`
//! answered `digest_mismatch` and deleted the registered blob, and a presigned URL kept
//! writing the artifact's own key after `complete`.

mod support;

use serde_json::json;
use support::{DEPLOYER, READER, Storage, TestServer, blob, digest_of};

/// One `#[tokio::test]` per store for each case.
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Storage::Local).await;
            })*
        }
        mod s3 {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Storage::S3).await;
            })*
        }
    };
}

on_every_store! {
    wrong_size_completion_of_a_registered_digest_leaves_its_blob,
    wrong_size_multipart_completion_of_a_registered_digest_leaves_its_blob,
    presigned_url_used_again_after_complete_writes_nothing,
    presigned_url_of_an_abandoned_upload_writes_nothing,
    staged_bytes_are_invisible_until_complete,
}

/// Uploads `bytes` for `app` and checks the artifact is served whole.
async fn registered(server: &TestServer, app: &str, bytes: &[u8]) -> String {
    let digest = server.upload_ok(app, bytes).await;
    assert_eq!(server.stored_bytes(&digest).await, bytes);
    digest
}

/// The artifact is still registered, with its bytes, and deployable.
async fn intact(server: &TestServer, digest: &str, bytes: &[u8]) {
    assert_eq!(server.head_artifact(digest).await, 200);
    assert_eq!(server.stored_bytes(digest).await, bytes, "the registered blob changed");
    let meta = server.get(&format!("/artifacts/{digest}"), Some(READER)).await.expect(200);
    assert_eq!(meta.json["size_bytes"], bytes.len());
    server.deploy_running("web", digest).await;
}

async fn wrong_size_completion_of_a_registered_digest_leaves_its_blob(storage: Storage) {
    let server = TestServer::start_with(storage, &[]).await;
    server.create_app("web").await;
    server.create_app("intruder").await;
    let bytes = blob("registered", 5000);
    let digest = registered(&server, "web", &bytes).await;
    for (app, size) in [("intruder", 4999), ("web", 5001), ("intruder", 0)] {
        let body = json!({ "app_name": app, "digest": digest, "size_bytes": size });
        server.post("/artifacts/complete", Some(DEPLOYER), &body).await.expect_error(400, "digest_mismatch");
    }
    intact(&server, &digest, &bytes).await;
}

async fn wrong_size_multipart_completion_of_a_registered_digest_leaves_its_blob(storage: Storage) {
    let server = TestServer::start_with(storage, &[]).await;
    server.create_app("web").await;
    server.create_app("intruder").await;
    let bytes = blob("registered-multipart", 5000);
    let digest = registered(&server, "web", &bytes).await;
    let init = json!({ "app_name": "intruder", "digest": digest, "size_bytes": 10 });
    let upload_id = server.post("/artifacts/multipart/init", Some(DEPLOYER), &init).await.expect(200).str("upload_id");
    let complete = json!({
        "app_name": "intruder", "digest": digest, "size_bytes": 10, "upload_id": upload_id,
        "parts": [{ "part_number": 1, "etag": "\"whatever\"" }],
    });
    server.post("/artifacts/multipart/complete", Some(DEPLOYER), &complete).await.expect_error(400, "digest_mismatch");
    intact(&server, &digest, &bytes).await;
}

async fn presigned_url_used_again_after_complete_writes_nothing(storage: Storage) {
    let server = TestServer::start_with(storage, &[]).await;
    server.create_app("web").await;
    let bytes = blob("leaked-url", 4000);
    let digest = digest_of(&bytes);
    let presign = server.presign("web", &digest, bytes.len()).await.expect(200);
    let (url, headers) = (presign.str("upload_url"), presign.json["headers"].clone());
    server.put_presigned_with(&url, &headers, &bytes).await.expect(200);
    let upload_id = presign.json["upload_id"].clone();
    server.complete("web", &bytes, json!({ "upload_id": upload_id })).await.expect(200);
    // The leaked URL, replayed with the same bytes or with others, is refused.
    for replay in [bytes.clone(), blob("overwrite", 4000)] {
        let reply = server.put_presigned_with(&url, &headers, &replay).await;
        assert!(reply.status.is_client_error(), "a completed upload's URL answered {}: {}", reply.status, reply.text);
    }
    intact(&server, &digest, &bytes).await;
    // Completing the same upload again registers nothing new and changes nothing.
    let again = server.complete("web", &bytes, json!({ "upload_id": upload_id })).await;
    again.expect_error(404, "not_found");
    intact(&server, &digest, &bytes).await;
}

/// Two uploads of one digest race; the second to complete is dropped without publishing, and
/// its URL is dead from then on.
async fn presigned_url_of_an_abandoned_upload_writes_nothing(storage: Storage) {
    let server = TestServer::start_with(storage, &[]).await;
    server.create_app("web").await;
    let bytes = blob("raced", 3000);
    let digest = digest_of(&bytes);
    let late = server.presign("web", &digest, bytes.len()).await.expect(200);
    let first = server.presign("web", &digest, bytes.len()).await.expect(200);
    server.put_presigned_with(&first.str("upload_url"), &first.json["headers"], &bytes).await.expect(200);
    server.complete("web", &bytes, json!({ "upload_id": first.json["upload_id"] })).await.expect(200);
    // The digest is registered now: completing the other upload links it and drops the upload.
    let reply = server.complete("web", &bytes, json!({ "upload_id": late.json["upload_id"] })).await.expect(200);
    assert_eq!(reply.json["duplicate"], true);
    let put = server.put_presigned_with(&late.str("upload_url"), &late.json["headers"], &bytes).await;
    assert!(put.status.is_client_error(), "an abandoned upload's URL answered {}: {}", put.status, put.text);
    intact(&server, &digest, &bytes).await;
}

async fn staged_bytes_are_invisible_until_complete(storage: Storage) {
    let server = TestServer::start_with(storage, &[]).await;
    server.create_app("web").await;
    let bytes = blob("staged", 2000);
    let digest = digest_of(&bytes);
    let presign = server.presign("web", &digest, bytes.len()).await.expect(200);
    assert!(presign.str("storage_key").contains(&digest));
    assert!(!presign.str("upload_url").contains(&presign.str("storage_key")), "the URL writes the final key");
    server.put_presigned_with(&presign.str("upload_url"), &presign.json["headers"], &bytes).await.expect(200);
    assert_eq!(server.head_artifact(&digest).await, 404);
    use aether_server::ports::ArtifactStore as _;
    assert_eq!(server.state.blobs.head(&presign.str("storage_key")).await.unwrap(), None);
    server.complete("web", &bytes, json!({ "upload_id": presign.json["upload_id"] })).await.expect(200);
    assert_eq!(server.stored_bytes(&digest).await, bytes);
}
