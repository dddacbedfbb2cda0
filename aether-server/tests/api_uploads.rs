#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! API tests of two-phase and multipart uploads, quotas and retention.

mod support;

use serde_json::{Value, json};
use support::{DEPLOYER, READER, Reply, TestServer, blob, digest_of, signing_key};

#[tokio::test]
async fn two_phase_upload_presign_put_complete() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("two-phase", 5000);
    let digest = digest_of(&bytes);

    let presign = server.presign("web", &digest, bytes.len()).await.expect(200);
    assert_eq!(presign.str("method"), "PUT");
    assert!(presign.str("storage_key").contains(&digest), "{}", presign.text);
    let upload_url = presign.str("upload_url");
    assert!(upload_url.starts_with(&format!("{}/uploads/", server.base)), "{upload_url}");
    assert_eq!(server.head_artifact(&digest).await, 404, "visible before completion");
    let put = server.put_presigned(&upload_url, &bytes).await.expect(200);
    assert!(put.header("etag").is_none(), "whole-object uploads have no ETag");
    assert_eq!(server.head_artifact(&digest).await, 404, "visible before completion");

    let complete = server.complete("web", &bytes, json!({ "storage_key": presign.str("storage_key") })).await;
    let complete = complete.expect(200);
    let fields: Vec<&str> = complete.json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        ["artifact_id", "digest", "duplicate", "idempotency_key", "status", "storage_key", "verified"],
        "{}",
        complete.text
    );
    assert_eq!(complete.json["digest"], digest.as_str());
    assert_eq!(complete.json["duplicate"], false);
    assert_eq!(complete.json["verified"], false);
    assert_eq!(complete.json["status"], "stored");
    assert_eq!(complete.json["storage_key"], presign.json["storage_key"]);
    assert!(complete.json["idempotency_key"].is_null());
    assert_eq!(server.head_artifact(&digest).await, 200);
    let meta = server.get(&format!("/artifacts/{digest}"), Some(READER)).await.expect(200);
    assert_eq!(meta.json["id"], complete.json["artifact_id"]);
    assert_eq!(meta.json["size_bytes"], 5000);

    // Stored already: nothing to upload.
    let again = server.presign("web", &digest, bytes.len()).await.expect(200);
    assert_eq!(again.str("method"), "NONE");
    assert_eq!(again.str("upload_url"), "");
    // Completing again reports a duplicate of the same artifact.
    let duplicate = server.complete("web", &bytes, json!({})).await.expect(200);
    assert_eq!(duplicate.json["duplicate"], true);
    assert_eq!(duplicate.json["artifact_id"], complete.json["artifact_id"]);
}

#[tokio::test]
async fn two_phase_upload_verifies_signatures() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    server.add_key("web", &signing_key()).await;
    let bytes = blob("two-phase-signed", 100);
    let signature = signing_key().sign_digest(&digest_of(&bytes));
    let reply = server.upload("web", &bytes, Some(&signature)).await.expect(200);
    assert_eq!(reply.json["verified"], true, "{}", reply.text);
    let unsigned = server.upload("web", &blob("two-phase-unverified", 100), Some(&signature)).await.expect(200);
    assert_eq!(unsigned.json["verified"], false, "{}", unsigned.text);
}

#[tokio::test]
async fn complete_is_idempotent_per_key() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("idempotent", 300);
    let presign = server.presign("web", &digest_of(&bytes), bytes.len()).await.expect(200);
    server.put_presigned(&presign.str("upload_url"), &bytes).await.expect(200);
    let key = json!({ "idempotency_key": "upload-1" });
    let first = server.complete("web", &bytes, key.clone()).await.expect(200);
    assert_eq!(first.json["idempotency_key"], "upload-1");
    let replay = server.complete("web", &bytes, key.clone()).await.expect(200);
    assert_eq!(replay.json["artifact_id"], first.json["artifact_id"], "{}", replay.text);
    assert_eq!(replay.json["digest"], first.json["digest"]);

    let other = blob("idempotent-other", 300);
    server.complete("web", &other, key).await.expect_error(409, "idempotency_conflict");
    assert_eq!(server.head_artifact(&digest_of(&other)).await, 404);
}

#[tokio::test]
async fn completing_with_other_bytes_than_declared_discards_them() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("wrong-size", 400);
    let digest = digest_of(&bytes);
    let presign = server.presign("web", &digest, bytes.len()).await.expect(200);
    server.put_presigned(&presign.str("upload_url"), &bytes).await.expect(200);
    let body = json!({ "app_name": "web", "digest": digest, "size_bytes": 399 });
    server.post("/artifacts/complete", Some(DEPLOYER), &body).await.expect_error(400, "digest_mismatch");
    assert_eq!(server.head_artifact(&digest).await, 404);
    // The upload is gone: completing correctly now finds nothing.
    server.complete("web", &bytes, json!({})).await.expect_error(404, "not_found");
    let named = json!({ "upload_id": presign.str("upload_id") });
    server.complete("web", &bytes, named).await.expect_error(404, "not_found");

    // Bytes that do not hash to the digest are refused by the URL itself and staged nowhere.
    let declared = blob("declared", 10);
    let presign = server.presign("web", &digest_of(&declared), 10).await.expect(200);
    let put = server.put_presigned(&presign.str("upload_url"), &blob("actual", 10)).await;
    put.expect_error(400, "digest_mismatch");
    server.complete("web", &declared, json!({})).await.expect_error(409, "conflict");
    assert_eq!(server.head_artifact(&digest_of(&declared)).await, 404);
    // The right bytes through the same URL still work.
    server.put_presigned(&presign.str("upload_url"), &declared).await.expect(200);
    server.complete("web", &declared, json!({})).await.expect(200);
}

#[tokio::test]
async fn invalid_two_phase_requests() {
    let server = TestServer::start(&[("AETHER_MAX_ARTIFACT_SIZE_BYTES", "1000")]).await;
    server.create_app("web").await;
    let bytes = blob("invalid-two-phase", 500);
    let digest = digest_of(&bytes);
    server.presign("ghost", &digest, 500).await.expect_error(404, "not_found");
    server.presign("Bad_Name", &digest, 500).await.expect_error(400, "bad_request");
    server.presign("web", "xyz", 500).await.expect_error(400, "bad_request");
    server.presign("web", &digest, 2000).await.expect_error(413, "payload_too_large");
    server.complete("web", &bytes, json!({})).await.expect_error(404, "not_found");
    server.complete("ghost", &bytes, json!({})).await.expect_error(404, "not_found");
    let wrong_key = json!({ "storage_key": "artifacts/sha256/other.tar.gz" });
    server.complete("web", &bytes, wrong_key).await.expect_error(400, "bad_request");

    let presign = server.presign("web", &digest, 500).await.expect(200);
    let url = presign.str("upload_url");
    // More bytes than the server accepts.
    server.put_presigned(&url, &blob("too-big", 2000)).await.expect_error(413, "payload_too_large");
    // A token that was tampered with is refused and stores nothing.
    let (prefix, token) = url.rsplit_once('/').unwrap();
    let (claim, mac) = token.split_once('.').unwrap();
    let flipped = |s: &str| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    for forged in [format!("{claim}.{}", flipped(mac)), format!("{}.{mac}", flipped(claim)), "garbage".to_owned()] {
        let reply = server.put_presigned(&format!("{prefix}/{forged}"), &bytes).await;
        reply.expect_error(403, "forbidden");
    }
    server.complete("web", &bytes, json!({})).await.expect_error(409, "conflict");
    assert_eq!(server.head_artifact(&digest).await, 404);
}

#[tokio::test]
async fn presigned_urls_expire() {
    // URLs that expire the second they are issued.
    let server = TestServer::start(&[("AETHER_PRESIGN_EXPIRE_SECS", "0")]).await;
    server.create_app("web").await;
    let bytes = blob("expiring", 100);
    let presign = server.presign("web", &digest_of(&bytes), bytes.len()).await.expect(200);
    let reply = server.put_presigned(&presign.str("upload_url"), &bytes).await;
    reply.expect_error(403, "forbidden");
    assert!(reply.text.contains("expired"), "{}", reply.text);
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 404);
}

#[tokio::test]
async fn artifact_count_quota() {
    let server = TestServer::start(&[("AETHER_MAX_ARTIFACTS_PER_APP", "1")]).await;
    server.create_app("web").await;
    server.create_app("api").await;
    let first = blob("count-1", 100);
    server.upload_ok("web", &first).await;
    let second = blob("count-2", 100);
    server.presign("web", &digest_of(&second), 100).await.expect_error(403, "quota_exceeded");
    let multipart = json!({ "app_name": "web", "digest": digest_of(&second), "size_bytes": 100 });
    server.post("/artifacts/multipart/init", Some(DEPLOYER), &multipart).await.expect_error(403, "quota_exceeded");
    // The quota is per app, and re-uploading a stored artifact takes nothing more.
    assert_eq!(server.presign("web", &digest_of(&first), 100).await.expect(200).str("method"), "NONE");
    server.upload_ok("api", &second).await;
}

#[tokio::test]
async fn artifact_bytes_quota() {
    let server = TestServer::start(&[("AETHER_MAX_TOTAL_BYTES_PER_APP", "100")]).await;
    server.create_app("web").await;
    server.upload_ok("web", &blob("bytes-1", 60)).await;
    let too_much = blob("bytes-2", 60);
    server.presign("web", &digest_of(&too_much), 60).await.expect_error(403, "quota_exceeded");
    server.upload_ok("web", &blob("bytes-3", 40)).await;
    let one_more = blob("bytes-4", 1);
    server.presign("web", &digest_of(&one_more), 1).await.expect_error(403, "quota_exceeded");
}

#[tokio::test]
async fn retention_keeps_the_latest_and_live_artifacts() {
    let server = TestServer::start(&[("AETHER_RETAIN_LATEST_PER_APP", "1")]).await;
    server.create_app("web").await;
    let old = server.upload_ok("web", &blob("retain-old", 100)).await;
    let live = server.upload_ok("web", &blob("retain-live", 100)).await;
    assert_eq!(server.head_artifact(&old).await, 404, "the older artifact was kept");
    server.get(&format!("/artifacts/{old}"), Some(READER)).await.expect_error(404, "not_found");
    assert_eq!(server.head_artifact(&live).await, 200);

    server.deploy_running("web", &live).await;
    let newest = server.upload_ok("web", &blob("retain-newest", 100)).await;
    assert_eq!(server.head_artifact(&live).await, 200, "the running deployment's artifact was removed");
    assert_eq!(server.head_artifact(&newest).await, 200);
}

#[tokio::test]
async fn retention_survives_artifacts_of_finished_deployments() {
    let server = TestServer::start(&[("AETHER_RETAIN_LATEST_PER_APP", "1")]).await;
    server.create_app("web").await;
    let first = server.upload_ok("web", &blob("finished-1", 100)).await;
    let first_id = server.deploy_running("web", &first).await;
    let second = server.upload_ok("web", &blob("finished-2", 100)).await;
    server.deploy_running("web", &second).await;
    server.wait_status(&first_id, "superseded").await;
    // The first artifact is no longer live; a later upload must still succeed.
    let third = server.upload("web", &blob("finished-3", 100), None).await.expect(200);
    assert_eq!(server.head_artifact(&third.str("digest")).await, 200);
    assert_eq!(server.head_artifact(&second).await, 200, "the running deployment's artifact was removed");
    // Finished deployments do not pin their artifact: it went, and cannot be rolled back to.
    assert_eq!(server.head_artifact(&first).await, 404);
    assert_eq!(server.deployment(&first_id).await["status"], "superseded");
    let rollback = json!({ "to": first_id });
    server.post("/apps/web/rollback", Some(DEPLOYER), &rollback).await.expect_error(404, "not_found");
}

/// Starts a multipart upload and PUTs `parts`; returns the upload id and each part's ETag.
async fn multipart_upload(server: &TestServer, bytes: &[u8], parts: &[&[u8]]) -> (String, Vec<String>) {
    let init = json!({ "app_name": "web", "digest": digest_of(bytes), "size_bytes": bytes.len() });
    let init = server.post("/artifacts/multipart/init", Some(DEPLOYER), &init).await.expect(200);
    assert!(init.str("storage_key").contains(&digest_of(bytes)), "{}", init.text);
    let upload_id = init.str("upload_id");
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let body =
            json!({ "app_name": "web", "digest": digest_of(bytes), "upload_id": upload_id, "part_number": i + 1 });
        let presigned = server.post("/artifacts/multipart/presign-part", Some(DEPLOYER), &body).await.expect(200);
        assert_eq!(presigned.str("method"), "PUT");
        let put = server.put_presigned(&presigned.str("url"), part).await.expect(200);
        let etag = put.header("etag").unwrap_or_else(|| panic!("part {} has no ETag", i + 1));
        assert_eq!(etag.trim_matches('"'), digest_of(part));
        etags.push(etag);
    }
    (upload_id, etags)
}

async fn multipart_complete(server: &TestServer, bytes: &[u8], upload_id: &str, parts: Value, extra: Value) -> Reply {
    let mut body = json!({
        "app_name": "web", "digest": digest_of(bytes), "size_bytes": bytes.len(), "upload_id": upload_id, "parts": parts,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    server.post("/artifacts/multipart/complete", Some(DEPLOYER), &body).await
}

fn part_list(etags: &[String]) -> Value {
    etags.iter().enumerate().map(|(i, etag)| json!({ "part_number": i + 1, "etag": etag })).collect()
}

#[tokio::test]
async fn multipart_upload_assembles_parts() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("multipart", 3000);
    let parts: Vec<&[u8]> = vec![&bytes[..1200], &bytes[1200..2500], &bytes[2500..]];
    let (upload_id, etags) = multipart_upload(&server, &bytes, &parts).await;
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 404, "visible before completion");

    let key = json!({ "idempotency_key": "multi-1" });
    let done = multipart_complete(&server, &bytes, &upload_id, part_list(&etags), key.clone()).await.expect(200);
    assert_eq!(done.json["digest"], digest_of(&bytes).as_str());
    assert_eq!(done.json["duplicate"], false);
    assert_eq!(done.json["status"], "stored");
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 200);
    let meta = server.get(&format!("/artifacts/{}", digest_of(&bytes)), Some(READER)).await.expect(200);
    assert_eq!(meta.json["size_bytes"], 3000);
    assert_eq!(meta.json["id"], done.json["artifact_id"]);
    let replay = multipart_complete(&server, &bytes, &upload_id, part_list(&etags), key).await.expect(200);
    assert_eq!(replay.json["artifact_id"], done.json["artifact_id"], "{}", replay.text);
}

#[tokio::test]
async fn multipart_complete_checks_etags_and_parts() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("multipart-etag", 2000);
    let parts: Vec<&[u8]> = vec![&bytes[..1000], &bytes[1000..]];
    let (upload_id, etags) = multipart_upload(&server, &bytes, &parts).await;

    let wrong = part_list(&[etags[0].clone(), format!("\"{}\"", digest_of(b"not this part"))]);
    multipart_complete(&server, &bytes, &upload_id, wrong, json!({})).await.expect_error(409, "conflict");
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 404);
    let reversed = json!([
        { "part_number": 2, "etag": etags[1] },
        { "part_number": 1, "etag": etags[0] },
    ]);
    multipart_complete(&server, &bytes, &upload_id, reversed, json!({})).await.expect_error(400, "bad_request");
    let missing = json!([{ "part_number": 1, "etag": etags[0] }, { "part_number": 3, "etag": etags[1] }]);
    multipart_complete(&server, &bytes, &upload_id, missing, json!({})).await.expect_error(409, "conflict");
    multipart_complete(&server, &bytes, &upload_id, json!([]), json!({})).await.expect_error(400, "bad_request");
    let unknown = "00000000-0000-4000-8000-000000000000";
    multipart_complete(&server, &bytes, unknown, part_list(&etags), json!({})).await.expect_error(404, "not_found");
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 404);
    // The failures left the upload intact: the corrected list completes it.
    multipart_complete(&server, &bytes, &upload_id, part_list(&etags), json!({})).await.expect(200);
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 200);

    // Parts that assemble to other bytes than declared are discarded.
    let declared = blob("multipart-partial", 2000);
    let (upload_id, etags) = multipart_upload(&server, &declared, &[&declared[..1000], &declared[1000..]]).await;
    let partial = part_list(&etags[..1]);
    multipart_complete(&server, &declared, &upload_id, partial, json!({})).await.expect_error(400, "digest_mismatch");
    assert_eq!(server.head_artifact(&digest_of(&declared)).await, 404);
}

#[tokio::test]
async fn uploads_can_be_restarted_before_they_complete() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    // A client that lost its presigned URL (or whose PUT failed) asks again.
    let bytes = blob("restarted", 300);
    server.presign("web", &digest_of(&bytes), bytes.len()).await.expect(200);
    server.upload_ok("web", &bytes).await;

    // After a completion that was refused as mismatching, the upload can be redone.
    let retried = blob("retried-after-mismatch", 300);
    let presign = server.presign("web", &digest_of(&retried), retried.len()).await.expect(200);
    server.put_presigned(&presign.str("upload_url"), &retried).await.expect(200);
    let wrong_size = json!({ "app_name": "web", "digest": digest_of(&retried), "size_bytes": 299 });
    server.post("/artifacts/complete", Some(DEPLOYER), &wrong_size).await.expect_error(400, "digest_mismatch");
    server.upload_ok("web", &retried).await;

    // A multipart upload can be started again, too.
    let multi = blob("multipart-restarted", 200);
    let init = json!({ "app_name": "web", "digest": digest_of(&multi), "size_bytes": 200 });
    server.post("/artifacts/multipart/init", Some(DEPLOYER), &init).await.expect(200);
    let (upload_id, etags) = multipart_upload(&server, &multi, &[&multi[..]]).await;
    multipart_complete(&server, &multi, &upload_id, part_list(&etags), json!({})).await.expect(200);
}

#[tokio::test]
async fn multipart_presign_part_rejects_bad_requests() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("multipart-bad", 100);
    let digest = digest_of(&bytes);
    let init = json!({ "app_name": "web", "digest": digest, "size_bytes": 100 });
    let upload_id = server.post("/artifacts/multipart/init", Some(DEPLOYER), &init).await.expect(200).str("upload_id");
    let server = &server;
    let presign = |upload_id: &str, part_number: u32, app: &str| {
        let body = json!({ "app_name": app, "digest": digest, "upload_id": upload_id, "part_number": part_number });
        async move { server.post("/artifacts/multipart/presign-part", Some(DEPLOYER), &body).await }
    };
    presign(&upload_id, 0, "web").await.expect_error(400, "bad_request");
    presign(&upload_id, 10_001, "web").await.expect_error(400, "bad_request");
    presign("not-an-upload", 1, "web").await.expect_error(404, "not_found");
    presign("00000000-0000-4000-8000-000000000000", 1, "web").await.expect_error(404, "not_found");
    presign(&upload_id, 1, "ghost").await.expect_error(404, "not_found");
    presign(&upload_id, 1, "web").await.expect(200);
    let ghost = json!({ "app_name": "ghost", "digest": digest, "size_bytes": 100 });
    server.post("/artifacts/multipart/init", Some(DEPLOYER), &ghost).await.expect_error(404, "not_found");
}
