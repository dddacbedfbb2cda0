#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The artifact-store conformance suite against two real S3-compatible servers the test starts
//! (`s3s-fs`, which checks SigV4 signatures and presign expiry, and `moto`, which behaves like
//! AWS where s3s-fs cuts corners but checks no signatures), then, on `s3s-fs`, what only the S3
//! adapter does: signed headers, expiry, server-side verification, encryption headers, retention and
//! garbage collection of objects, and readiness while the object store is down.

mod conformance;
mod support;

use std::time::{Duration, SystemTime};

use aether_server::artifacts::s3::{Encryption, S3ArtifactStore, Verification};
use aether_server::ports::{ArtifactStore, BlobError, StagedUpload};
use aether_server::testing::s3::TestS3;
use conformance::{EXPIRY, HttpClient, PresignedClient, Target, new_id, pattern, sha256_hex};
use serde_json::json;
use support::{Storage, TestServer, blob, digest_of};

/// S3's smallest part (but the last).
const PART_SIZE: usize = 5 * 1024 * 1024;

async fn store(s3: &TestS3) -> S3ArtifactStore {
    s3.bucket(&format!("conformance-{}", &new_id()[..8])).await
}

/// Each contract case on a fresh bucket of a server `start`ed for it.
macro_rules! s3_cases {
    ($start:path: $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let s3 = $start().unwrap();
            let store = store(&s3).await;
            let client = HttpClient::default();
            conformance::$case(&Target { store: &store, client: &client, prefix: "c", part_size: PART_SIZE }).await;
        }
    )*};
}

mod s3s_fs {
    use super::*;

    s3_cases! { TestS3::start:
        staged_round_trip, wrong_bytes_are_refused, reused_urls_write_nothing, direct_put, invalid_keys_rejected,
        multipart_out_of_order, multipart_rejects_bad_parts, multipart_discard,
    }
}

mod moto {
    use super::*;

    // moto does not check the checksum signed into a URL (AWS and s3s-fs do): wrong bytes are
    // refused later, when the staged object is measured, which `wrong_bytes_are_measured` shows.
    s3_cases! { TestS3::start_moto:
        staged_round_trip, reused_urls_write_nothing, direct_put, invalid_keys_rejected,
        multipart_out_of_order, multipart_rejects_bad_parts, multipart_discard,
    }

    /// Bytes a server let through the door never pass as the declared ones: measuring the
    /// staged object, which `complete` does before publishing, tells them apart.
    #[tokio::test]
    async fn wrong_bytes_are_measured() {
        let s3 = TestS3::start_moto().unwrap();
        let store = store(&s3).await;
        let client = HttpClient::default();
        let declared = pattern(10_000, 2);
        let (id, digest) = super::declared(&declared);
        let upload = StagedUpload { id: &id, size_bytes: declared.len() as u64, sha256: &digest };
        let request = store.presign_upload(&upload, EXPIRY).await.unwrap();
        for sent in [pattern(10_000, 3), pattern(10_001, 2), declared[..9_999].to_vec()] {
            if client.send(&request, sent.clone()).await.is_ok() {
                assert_eq!(store.measure_staged(&upload).await.unwrap(), conformance::measured(&sent));
            }
        }
    }
}

/// A declared upload of `bytes` under a fresh id.
fn declared(bytes: &[u8]) -> (String, String) {
    (new_id(), sha256_hex(bytes))
}

#[tokio::test]
async fn presigned_urls_pin_what_was_declared() {
    let s3 = TestS3::start().unwrap();
    let mut settings = s3.settings("signed-headers");
    settings.encryption = Some(Encryption::Aes256);
    let store = S3ArtifactStore::connect(settings).await;
    store.client().create_bucket().bucket("signed-headers").send().await.unwrap();
    let bytes = pattern(1000, 1);
    let (id, digest) = declared(&bytes);
    let upload = StagedUpload { id: &id, size_bytes: 1000, sha256: &digest };
    let request = store.presign_upload(&upload, EXPIRY).await.unwrap();
    let signed = request.url.split("X-Amz-SignedHeaders=").nth(1).unwrap().split('&').next().unwrap();
    for header in ["content-length", "x-amz-checksum-sha256", "if-none-match", "x-amz-server-side-encryption"] {
        assert!(signed.contains(header), "{header} is not signed: {signed}");
        assert!(request.headers.iter().any(|(name, _)| name == header), "{header} is not returned to the client");
    }
    let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("x-amz-server-side-encryption"), Some("AES256"));
    assert_eq!(header("content-length"), Some("1000"));
    // Leaving a signed header out, or changing it, breaks the signature.
    let client = HttpClient::default();
    let mut without = request.clone();
    without.headers.retain(|(name, _)| name != "x-amz-server-side-encryption");
    assert!(client.send(&without, bytes.clone()).await.unwrap_err().starts_with("403"));
    client.send(&request, bytes).await.unwrap();
}

#[tokio::test]
async fn tampered_and_expired_urls_are_refused() {
    let s3 = TestS3::start().unwrap();
    let store = store(&s3).await;
    let client = HttpClient::default();
    let bytes = pattern(1000, 2);
    let (id, digest) = declared(&bytes);
    let upload = StagedUpload { id: &id, size_bytes: 1000, sha256: &digest };
    let mut tampered = store.presign_upload(&upload, EXPIRY).await.unwrap();
    let signature_at = tampered.url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &tampered.url[signature_at..=signature_at] == "0" { "1" } else { "0" };
    tampered.url.replace_range(signature_at..=signature_at, flipped);
    assert!(client.send(&tampered, bytes.clone()).await.unwrap_err().starts_with("403"));
    // Valid for an hour, starting two hours ago.
    let start = SystemTime::now() - Duration::from_secs(2 * 3600);
    let expired = store.presign_upload_from(&upload, start, Duration::from_secs(3600)).await.unwrap();
    let refused = client.send(&expired, bytes.clone()).await.unwrap_err();
    assert!(refused.starts_with("403"), "{refused}");
    assert!(matches!(store.measure_staged(&upload).await, Err(BlobError::NotFound(_))));
    let fresh = store.presign_upload(&upload, EXPIRY).await.unwrap();
    client.send(&fresh, bytes).await.unwrap();
}

/// Bytes that reached the staging key without the presigned URL's checks are measured on
/// completion: the mismatch removes only the staged object and answers `digest_mismatch`.
#[tokio::test]
async fn server_side_verification_catches_what_the_door_did_not() {
    let server = TestServer::start_with(Storage::S3, &[]).await;
    server.create_app("web").await;
    let declared = blob("declared", 3000);
    let presign = server.presign("web", &digest_of(&declared), declared.len()).await.expect(200);
    let upload_id = presign.str("upload_id");
    let s3 = server.s3.as_ref().unwrap();
    let raw = s3.bucket_client().await;
    let other = blob("smuggled", 3000);
    raw.put_object().bucket("artifacts").key(format!("staging/{upload_id}")).body(other.into()).send().await.unwrap();
    let reply = server.complete("web", &declared, json!({ "upload_id": upload_id })).await;
    reply.expect_error(400, "digest_mismatch");
    assert_eq!(server.head_artifact(&digest_of(&declared)).await, 404);
    let metrics = server.metrics().await;
    assert!(metrics.lines().any(|l| l == "artifact_digest_mismatch_total 1"), "{metrics}");
}

#[tokio::test]
async fn verification_toggles_choose_what_is_measured() {
    let s3 = TestS3::start().unwrap();
    let bytes = pattern(3000, 3);
    let (id, digest) = declared(&bytes);
    let upload = StagedUpload { id: &id, size_bytes: 3000, sha256: &digest };
    for (verification, size, sha) in [
        (Verification { size: false, digest: false, hash: false, hash_max_bytes: 0 }, false, false),
        (Verification { size: true, digest: true, hash: false, hash_max_bytes: 0 }, true, true),
        (Verification { size: true, digest: false, hash: true, hash_max_bytes: 10 }, true, false),
        (Verification { size: false, digest: false, hash: true, hash_max_bytes: 10_000 }, false, true),
    ] {
        let bucket = format!("toggles-{}", &new_id()[..8]);
        let mut settings = s3.settings(&bucket);
        settings.verification = verification;
        let store = S3ArtifactStore::connect(settings).await;
        store.client().create_bucket().bucket(&bucket).send().await.unwrap();
        store.put_staged(&id, &mut &bytes[..], 1 << 20, &digest).await.unwrap();
        let measured = store.measure_staged(&upload).await.unwrap();
        assert_eq!(measured.size_bytes.is_some(), size, "{verification:?}");
        assert_eq!(measured.sha256.is_some(), sha, "{verification:?}");
        if let Some(sha256) = measured.sha256 {
            assert_eq!(sha256, digest);
        }
    }
}

#[tokio::test]
async fn retention_and_gc_remove_objects() {
    let server = TestServer::start_with(Storage::S3, &[("AETHER_RETAIN_LATEST_PER_APP", "1")]).await;
    server.create_app("web").await;
    let old = server.upload_ok("web", &blob("retained-old", 2000)).await;
    let new = server.upload_ok("web", &blob("retained-new", 2000)).await;
    let keys = server.s3.as_ref().unwrap().keys("artifacts").await;
    assert!(!keys.iter().any(|k| k.contains(&old)), "retention left {old}: {keys:?}");
    assert!(keys.iter().any(|k| k.contains(&new)), "{keys:?}");

    let abandoned = blob("abandoned", 2000);
    let presign = server.presign("web", &digest_of(&abandoned), 2000).await.expect(200);
    server.put_presigned_with(&presign.str("upload_url"), &presign.json["headers"], &abandoned).await.expect(200);
    let staged = format!("staging/{}", presign.str("upload_id"));
    assert!(server.s3.as_ref().unwrap().keys("artifacts").await.contains(&staged));
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    // The expired upload, and the markers left by the two completed ones.
    assert_eq!(aether_server::gc::collect_at(&server.state, later).await.unwrap(), 3);
    let keys = server.s3.as_ref().unwrap().keys("artifacts").await;
    assert!(keys.iter().all(|k| !k.starts_with("staging/")), "staging objects left: {keys:?}");
    assert_eq!(server.stored_bytes(&new).await, blob("retained-new", 2000));
}

#[tokio::test]
async fn readiness_follows_the_object_store() {
    let mut server = TestServer::start_with(Storage::S3, &[]).await;
    server.get("/readyz", None).await.expect(200);
    server.s3.as_mut().unwrap().stop();
    server.get("/readyz", None).await.expect_error(503, "service_unavailable");
    server.s3.as_mut().unwrap().resume().unwrap();
    server.get("/readyz", None).await.expect(200);
}
