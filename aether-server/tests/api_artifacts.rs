#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! API tests of artifact metadata and the deprecated direct upload (`POST /artifacts`).

mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{ADMIN, DEPLOYER, READER, TestServer, blob, digest_of, send, signing_key, stranger_key};

#[tokio::test]
async fn legacy_upload_checks_the_digest_header() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("legacy-header", 500);
    let post = |digest: Option<String>| {
        let mut request = server.request(Method::POST, "/artifacts?app_name=web", Some(DEPLOYER)).body(bytes.clone());
        if let Some(digest) = digest {
            request = request.header("x-aether-artifact-digest", digest);
        }
        send(request)
    };
    post(None).await.expect_error(400, "missing_digest");
    post(Some("sha256:xyz".into())).await.expect_error(400, "invalid_digest");
    post(Some(digest_of(&bytes).to_ascii_uppercase())).await.expect_error(400, "invalid_digest");

    let claimed = digest_of(b"other bytes");
    post(Some(claimed.clone())).await.expect_error(400, "digest_mismatch");
    assert_eq!(server.head_artifact(&claimed).await, 404, "a mismatching upload was stored");
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 404, "a mismatching upload was stored");
    server.get(&format!("/artifacts/{claimed}"), Some(READER)).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn legacy_upload_stores_once_and_reports_duplicates() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("legacy-ok", 1234);
    let digest = digest_of(&bytes);
    let first = server.legacy_upload(Some("web"), &bytes, None).await.expect(200);
    assert_eq!(
        first.json,
        json!({
            "artifact_url": format!("{}/artifacts/{digest}", server.base),
            "digest": digest,
            "duplicate": false,
            "app_linked": true,
            "verified": false,
        })
    );
    assert_eq!(first.header("deprecation").as_deref(), Some("true"));
    let again = server.legacy_upload(Some("web"), &bytes, None).await.expect(200);
    assert_eq!(again.json["duplicate"], true, "{}", again.text);
    assert_eq!(again.json["digest"], digest.as_str());

    // The `sha256:` prefix is accepted in the header.
    let prefixed = blob("legacy-prefixed", 10);
    let request = server
        .request(Method::POST, "/artifacts", Some(DEPLOYER))
        .header("x-aether-artifact-digest", format!("sha256:{}", digest_of(&prefixed)))
        .body(prefixed.clone());
    let reply = send(request).await.expect(200);
    assert_eq!(reply.json["digest"], digest_of(&prefixed).as_str());
}

#[tokio::test]
async fn legacy_upload_verifies_signatures_against_the_apps_keys() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    server.add_key("web", &signing_key()).await;

    let signed = blob("legacy-signed", 200);
    let signature = signing_key().sign_digest(&digest_of(&signed));
    let reply = server.legacy_upload(Some("web"), &signed, Some(&signature)).await.expect(200);
    assert_eq!(reply.json["verified"], true, "{}", reply.text);
    let meta = server.get(&format!("/artifacts/{}", digest_of(&signed)), Some(READER)).await.expect(200);
    assert_eq!(meta.json["signed"], true);

    let forged = blob("legacy-forged", 200);
    let by_stranger = stranger_key().sign_digest(&digest_of(&forged));
    let reply = server.legacy_upload(Some("web"), &forged, Some(&by_stranger)).await.expect(200);
    assert_eq!(reply.json["verified"], false, "{}", reply.text);
    let other_digest = blob("legacy-other-digest", 200);
    let reply = server.legacy_upload(Some("web"), &other_digest, Some(&signature)).await.expect(200);
    assert_eq!(reply.json["verified"], false, "{}", reply.text);
    let garbage = blob("legacy-garbage-signature", 200);
    let reply = server.legacy_upload(Some("web"), &garbage, Some("not-hex")).await.expect(200);
    assert_eq!(reply.json["verified"], false, "{}", reply.text);
}

#[tokio::test]
async fn legacy_upload_for_an_unknown_app_is_refused_and_without_one_is_not_linked() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let ghost = blob("legacy-ghost", 50);
    server.legacy_upload(Some("ghost"), &ghost, None).await.expect_error(404, "not_found");
    assert_eq!(server.head_artifact(&digest_of(&ghost)).await, 404, "nothing stored for an unknown app");
    let reply = server.legacy_upload(None, &blob("legacy-no-app", 50), None).await.expect(200);
    assert_eq!(reply.json["app_linked"], false, "{}", reply.text);
    // The app may also be named in a header.
    let bytes = blob("legacy-app-header", 50);
    let request = server
        .request(Method::POST, "/artifacts", Some(DEPLOYER))
        .header("x-aether-artifact-digest", digest_of(&bytes))
        .header("x-aether-app", "web")
        .body(bytes);
    assert_eq!(send(request).await.expect(200).json["app_linked"], true);
}

#[tokio::test]
async fn legacy_upload_enforces_the_size_limit() {
    let server = TestServer::start(&[("AETHER_MAX_ARTIFACT_SIZE_BYTES", "1000")]).await;
    server.create_app("web").await;
    let big = blob("legacy-big", 2000);
    server.legacy_upload(Some("web"), &big, None).await.expect_error(413, "payload_too_large");
    assert_eq!(server.head_artifact(&digest_of(&big)).await, 404);

    // Without a Content-Length the limit is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(300).map(|c| Ok(c.to_vec())).collect();
    let request = server
        .request(Method::POST, "/artifacts?app_name=web", Some(DEPLOYER))
        .header("x-aether-artifact-digest", digest_of(&big))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)));
    send(request).await.expect_error(413, "payload_too_large");
    assert_eq!(server.head_artifact(&digest_of(&big)).await, 404);

    let fits = blob("legacy-fits", 1000);
    server.legacy_upload(Some("web"), &fits, None).await.expect(200);
    assert_eq!(server.head_artifact(&digest_of(&fits)).await, 200);
}

#[tokio::test]
async fn legacy_upload_is_refused_when_presign_is_required() {
    let server = TestServer::start(&[("AETHER_REQUIRE_PRESIGN", "1")]).await;
    server.create_app("web").await;
    let bytes = blob("legacy-refused", 100);
    server.legacy_upload(Some("web"), &bytes, None).await.expect_error(403, "presign_required");
    assert_eq!(server.head_artifact(&digest_of(&bytes)).await, 404);
    server.upload_ok("web", &bytes).await;
}

#[tokio::test]
async fn legacy_upload_respects_the_artifact_quota() {
    let server = TestServer::start(&[("AETHER_MAX_ARTIFACTS_PER_APP", "1")]).await;
    server.create_app("web").await;
    server.legacy_upload(Some("web"), &blob("quota-one", 100), None).await.expect(200);
    let second = blob("quota-two", 100);
    server.legacy_upload(Some("web"), &second, None).await.expect_error(403, "quota_exceeded");
    assert_eq!(server.head_artifact(&digest_of(&second)).await, 404);
}

#[tokio::test]
async fn concurrent_uploads_beyond_the_limit_get_429() {
    let server = TestServer::start(&[("AETHER_MAX_CONCURRENT_UPLOADS", "1")]).await;
    server.create_app("web").await;
    let slow = blob("slow-upload", 4000);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(receiver, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let request = server
        .request(Method::POST, "/artifacts?app_name=web", Some(DEPLOYER))
        .header("x-aether-artifact-digest", digest_of(&slow))
        .body(reqwest::Body::wrap_stream(stream));
    let first = tokio::spawn(send(request));
    sender.send(Ok(slow[..1000].to_vec())).await.unwrap();
    let mut in_progress = false;
    for _ in 0..100 {
        if server.metrics().await.lines().any(|l| l == "artifact_uploads_in_progress 1") {
            in_progress = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(in_progress, "the first upload never started");

    let second = blob("blocked-upload", 100);
    server.legacy_upload(Some("web"), &second, None).await.expect_error(429, "too_many_uploads");
    let presign = server.presign("web", &digest_of(&second), second.len()).await.expect(200);
    server.put_presigned(&presign.str("upload_url"), &second).await.expect_error(429, "too_many_uploads");

    sender.send(Ok(slow[1000..].to_vec())).await.unwrap();
    drop(sender);
    first.await.unwrap().expect(200);
    server.legacy_upload(Some("web"), &second, None).await.expect(200);
}

#[tokio::test]
async fn head_and_get_describe_stored_artifacts() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let bytes = blob("metadata", 777);
    let digest = digest_of(&bytes);
    server.legacy_upload(Some("web"), &bytes, None).await.expect(200);

    let head = server.head(&format!("/artifacts/{digest}"), Some(READER)).await.expect(200);
    assert!(head.text.is_empty());
    assert_eq!(head.header("x-aether-artifact-size").as_deref(), Some("777"));
    let missing = digest_of(b"missing");
    assert_eq!(server.head_artifact(&missing).await, 404);
    server.head("/artifacts/xyz", Some(READER)).await.expect(400);

    let meta = server.get(&format!("/artifacts/{digest}"), Some(READER)).await.expect(200);
    let fields: Vec<&str> = meta.json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["created_at", "digest", "id", "signed", "size_bytes", "storage_key"], "{}", meta.text);
    assert_eq!(meta.json["digest"], digest.as_str());
    assert_eq!(meta.json["size_bytes"], 777);
    assert_eq!(meta.json["signed"], false);
    assert!(meta.str("storage_key").contains(&digest), "{}", meta.text);
    let prefixed = server.get(&format!("/artifacts/sha256:{digest}"), Some(READER)).await.expect(200);
    assert_eq!(prefixed.json, meta.json);

    server.get(&format!("/artifacts/{missing}"), Some(READER)).await.expect_error(404, "not_found");
    server.get("/artifacts/xyz", Some(READER)).await.expect_error(400, "invalid_digest");
    server.get(&format!("/artifacts/{}", "A".repeat(64)), Some(ADMIN)).await.expect_error(400, "invalid_digest");
}

#[tokio::test]
async fn artifact_list_paginates_newest_first_without_repeats() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let mut uploaded = HashSet::new();
    for i in 0..5 {
        let bytes = blob(&format!("page-{i}"), 100);
        server.legacy_upload(Some("web"), &bytes, None).await.expect(200);
        uploaded.insert(digest_of(&bytes));
    }

    let mut seen = Vec::new();
    let mut created = Vec::new();
    let mut path = "/artifacts?limit=2".to_owned();
    for page in 0.. {
        assert!(page < 5, "pagination does not end");
        let reply = server.get(&path, Some(READER)).await.expect(200);
        let items = reply.json["items"].as_array().expect("items");
        assert!(items.len() <= 2, "{}", reply.text);
        for item in items {
            seen.push(item["digest"].as_str().unwrap().to_owned());
            created.push(item["created_at"].as_str().unwrap().to_owned());
        }
        match reply.json["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(items.len(), 2, "a short page with a cursor: {}", reply.text);
                path = format!("/artifacts?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), uploaded, "pages repeated or skipped artifacts");
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "not newest first: {created:?}");

    let everything = server.get("/artifacts", Some(READER)).await.expect(200);
    assert_eq!(everything.json["items"].as_array().unwrap().len(), 5);
    assert!(everything.json["next_cursor"].is_null(), "{}", everything.text);

    for bad in ["/artifacts?cursor=nonsense", "/artifacts?cursor=abc.def", "/artifacts?limit=many", "/artifacts?page=2"]
    {
        server.get(bad, Some(READER)).await.expect_error(400, "bad_request");
    }
}
