#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! API tests of deployments: rollout through the fake runtime, supersession, failures,
//! idempotency, required signatures and rollbacks.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{DEPLOYER, READER, TestServer, blob, digest_of, send, signing_key, stranger_key};

/// A server with app `web` and two uploaded artifacts; returns their digests.
async fn server_with_two_artifacts(env: &[(&str, &str)]) -> (TestServer, String, String) {
    let server = TestServer::start(env).await;
    server.create_app("web").await;
    let first = server.upload_ok("web", &blob("release-1", 200)).await;
    let second = server.upload_ok("web", &blob("release-2", 200)).await;
    (server, first, second)
}

fn pair(from: Value, to: &str) -> (Value, Value) {
    (from, Value::from(to))
}

#[tokio::test]
async fn a_deployment_goes_pending_deploying_running() {
    let (server, digest, _) = server_with_two_artifacts(&[]).await;
    let created = server.create_deployment("web", &digest, json!({})).await.expect(201);
    assert_eq!(created.json["status"], "pending", "{}", created.text);
    assert_eq!(created.json["app_name"], "web");
    assert_eq!(created.json["digest"], digest.as_str());
    assert!(created.json["url"].is_null());
    assert!(created.json.get("events").is_none(), "{}", created.text);
    let id = created.str("id");

    let running = server.wait_status(&id, "running").await;
    assert_eq!(running["url"], format!("http://fake.invalid/{id}"));
    assert!(running["failure_reason"].is_null());
    // What the runtime reports while rolling out is recorded as deploying -> deploying.
    assert_eq!(
        server.transitions(&id).await,
        [
            pair(Value::Null, "pending"),
            pair("pending".into(), "deploying"),
            pair("deploying".into(), "deploying"),
            pair("deploying".into(), "running")
        ]
    );
    assert_eq!(running["events"][2]["reason"], "starting");
    assert_eq!(running["events"][0]["at"].as_str().map(|at| at.ends_with('Z')), Some(true));
    assert_eq!(server.runtime().history().0, std::slice::from_ref(&id));

    let list = server.get("/apps/web/deployments", Some(READER)).await.expect(200);
    let items = list.json.as_array().expect("an array");
    assert_eq!(items.len(), 1, "{}", list.text);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["status"], "running");
    assert!(items[0].get("events").is_none(), "lists carry no events: {}", list.text);
}

#[tokio::test]
async fn a_new_deployment_supersedes_the_running_one() {
    let (server, first, second) = server_with_two_artifacts(&[]).await;
    let old = server.deploy_running("web", &first).await;
    let new = server.deploy_running("web", &second).await;
    server.wait_status(&old, "superseded").await;
    assert_eq!(server.transitions(&old).await.last(), Some(&pair("running".into(), "superseded")));
    assert_eq!(server.deployment(&new).await["status"], "running");
    assert!(server.runtime().history().1.contains(&old), "the superseded release was not stopped");

    let list = server.get("/apps/web/deployments", Some(READER)).await.expect(200).json;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [new.as_str(), old.as_str()], "not newest first");
}

#[tokio::test]
async fn a_failed_rollout_keeps_the_previous_release_running() {
    let (server, good, bad) = server_with_two_artifacts(&[]).await;
    let running = server.deploy_running("web", &good).await;
    server.runtime().fail_digest(&bad);
    let id = server.create_deployment("web", &bad, json!({})).await.expect(201).str("id");
    let failed = server.wait_status(&id, "failed").await;
    assert!(failed["failure_reason"].as_str().is_some_and(|r| !r.is_empty()), "{failed}");
    assert!(failed["url"].is_null(), "{failed}");
    assert_eq!(server.transitions(&id).await.last(), Some(&pair("deploying".into(), "failed")));
    assert_eq!(server.deployment(&running).await["status"], "running");
}

#[tokio::test]
async fn deployments_of_unknown_things_are_rejected() {
    let (server, digest, _) = server_with_two_artifacts(&[]).await;
    server.create_deployment("ghost", &digest, json!({})).await.expect_error(404, "not_found");
    server.create_deployment("web", &digest_of(b"never uploaded"), json!({})).await.expect_error(404, "not_found");
    server.create_deployment("web", "xyz", json!({})).await.expect_error(400, "bad_request");
    server.create_deployment("Bad_Name", &digest, json!({})).await.expect_error(400, "bad_request");
    server.create_deployment("web", &digest, json!({ "replicas": 2 })).await.expect_error(400, "bad_request");
    server.get("/deployments/no-such-deployment", Some(READER)).await.expect_error(404, "not_found");
    assert_eq!(server.get("/apps/web/deployments", Some(READER)).await.expect(200).json, json!([]));
}

#[tokio::test]
async fn deployments_are_idempotent_per_key() {
    let (server, first, second) = server_with_two_artifacts(&[]).await;
    let key = json!({ "idempotency_key": "deploy-1" });
    let created = server.create_deployment("web", &first, key.clone()).await.expect(201);
    let replay = server.create_deployment("web", &first, key.clone()).await.expect(201);
    assert_eq!(replay.json["id"], created.json["id"], "{}", replay.text);
    server.create_deployment("web", &second, key).await.expect_error(409, "idempotency_conflict");
    server.wait_status(&created.str("id"), "running").await;
    let list = server.get("/apps/web/deployments", Some(READER)).await.expect(200);
    assert_eq!(list.json.as_array().unwrap().len(), 1, "{}", list.text);
}

#[tokio::test]
async fn required_signatures_must_verify() {
    let server = TestServer::start(&[("AETHER_REQUIRE_SIGNATURE", "1")]).await;
    server.create_app("web").await;
    server.add_key("web", &signing_key()).await;
    let digest = server.upload_ok("web", &blob("unsigned", 200)).await;

    server.create_deployment("web", &digest, json!({})).await.expect_error(400, "signature_required");
    let by_stranger = json!({ "signature": stranger_key().sign_digest(&digest) });
    server.create_deployment("web", &digest, by_stranger).await.expect_error(403, "signature_unverified");
    let garbage = json!({ "signature": "00" });
    server.create_deployment("web", &digest, garbage).await.expect_error(403, "signature_unverified");
    assert_eq!(server.get("/apps/web/deployments", Some(READER)).await.expect(200).json, json!([]));

    let signed = json!({ "signature": signing_key().sign_digest(&digest) });
    let id = server.create_deployment("web", &digest, signed).await.expect(201).str("id");
    server.wait_status(&id, "running").await;

    // A signature given at upload time is used when the deployment names none.
    let bytes = blob("signed-at-upload", 200);
    let signature = signing_key().sign_digest(&digest_of(&bytes));
    server.upload("web", &bytes, Some(&signature)).await.expect(200);
    let id = server.create_deployment("web", &digest_of(&bytes), json!({})).await.expect(201).str("id");
    server.wait_status(&id, "running").await;
}

#[tokio::test]
async fn rollback_redeploys_the_previous_release() {
    let (server, first, second) = server_with_two_artifacts(&[]).await;
    let old = server.deploy_running("web", &first).await;
    let current = server.deploy_running("web", &second).await;
    server.wait_status(&old, "superseded").await;

    let rollback = server.request(Method::POST, "/apps/web/rollback", Some(DEPLOYER));
    let created = send(rollback).await.expect(201);
    assert_eq!(created.json["digest"], first.as_str(), "{}", created.text);
    assert_eq!(created.json["status"], "pending");
    let restored = created.str("id");
    assert_ne!(restored, old);
    server.wait_status(&restored, "running").await;
    server.wait_status(&current, "rolled_back").await;
    assert_eq!(server.transitions(&current).await.last(), Some(&pair("running".into(), "rolled_back")));

    // `to` picks the release explicitly.
    let to = json!({ "to": current });
    let targeted = server.post("/apps/web/rollback", Some(DEPLOYER), &to).await.expect(201);
    assert_eq!(targeted.json["digest"], second.as_str(), "{}", targeted.text);
    server.wait_status(&targeted.str("id"), "running").await;
    server.wait_status(&restored, "rolled_back").await;

    let list = server.get("/apps/web/deployments", Some(READER)).await.expect(200).json;
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
}

#[tokio::test]
async fn invalid_rollbacks() {
    let (server, first, _) = server_with_two_artifacts(&[]).await;
    server.create_app("empty").await;
    let empty = send(server.request(Method::POST, "/apps/empty/rollback", Some(DEPLOYER))).await;
    empty.expect_error(409, "conflict");
    server.deploy_running("web", &first).await;
    // Nothing ran before the current release.
    send(server.request(Method::POST, "/apps/web/rollback", Some(DEPLOYER))).await.expect_error(409, "conflict");
    let malformed_id = json!({ "to": "no-such-deployment" });
    server.post("/apps/web/rollback", Some(DEPLOYER), &malformed_id).await.expect_error(400, "bad_request");
    let unknown = json!({ "to": "00000000-0000-4000-8000-000000000000" });
    server.post("/apps/web/rollback", Some(DEPLOYER), &unknown).await.expect_error(409, "conflict");
    let malformed = server.request(Method::POST, "/apps/web/rollback", Some(DEPLOYER)).body("{");
    send(malformed).await.expect_error(400, "bad_request");
    let unknown_field = json!({ "to": null, "force": true });
    server.post("/apps/web/rollback", Some(DEPLOYER), &unknown_field).await.expect_error(400, "bad_request");
    send(server.request(Method::POST, "/apps/ghost/rollback", Some(DEPLOYER))).await.expect_error(404, "not_found");
    send(server.request(Method::POST, "/apps/Bad_Name/rollback", Some(DEPLOYER)))
        .await
        .expect_error(400, "bad_request");
    send(server.request(Method::POST, "/apps/web/rollback", None)).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn environments_are_validated_fingerprinted_and_never_shown() {
    let (server, first, _) = server_with_two_artifacts(&[]).await;
    for bad in [json!({ "PORT": "80" }), json!({ "1X": "v" }), json!({ "A-B": "v" }), json!({ "A": 1 })] {
        server.create_deployment("web", &first, json!({ "env": bad })).await.expect_error(400, "bad_request");
    }
    let env = json!({ "env": { "APP_VERSION": "3", "API_SECRET": "hunter2-very-secret" } });
    let created = server.create_deployment("web", &first, env).await.expect(201);
    let fingerprint = created.json["env_sha256"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 64);
    let id = created.str("id");
    server.wait_status(&id, "running").await;
    let fetched = server.get(&format!("/deployments/{id}"), Some(READER)).await.expect(200);
    assert_eq!(fetched.json["env_sha256"], fingerprint.as_str());
    let listed = server.get("/apps/web/deployments", Some(READER)).await.expect(200);
    for text in [&created.text, &fetched.text, &listed.text] {
        assert!(!text.contains("hunter2"), "an environment value leaked: {text}");
    }
    let plain = server.create_deployment("web", &first, json!({})).await.expect(201);
    assert!(plain.json.get("env_sha256").is_none(), "{}", plain.text);

    // The environment is part of what an idempotency key stands for.
    let keyed = json!({ "idempotency_key": "env-1", "env": { "A": "1" } });
    server.create_deployment("web", &first, keyed).await.expect(201);
    let changed = json!({ "idempotency_key": "env-1", "env": { "A": "2" } });
    server.create_deployment("web", &first, changed).await.expect_error(409, "idempotency_conflict");
}

/// Regression: four identical `POST /deployments` with one idempotency key sent at the same
/// moment created two to four deployments in most rounds. Exactly one is created now.
#[tokio::test]
async fn concurrent_identical_requests_create_one_deployment() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let digest = server.upload_ok("web", &blob("raced-deploy", 200)).await;
    for round in 0..10 {
        let key = format!("race-{round}");
        let body = json!({ "idempotency_key": key });
        let replies =
            futures_util::future::join_all((0..4).map(|_| server.create_deployment("web", &digest, body.clone())))
                .await;
        let ids: std::collections::BTreeSet<String> =
            replies.into_iter().map(|reply| reply.expect(201).str("id")).collect();
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
    }
    let listed = server.get("/apps/web/deployments", Some(READER)).await.expect(200);
    let count =
        listed.json.as_array().map_or_else(|| listed.json["deployments"].as_array().map_or(0, Vec::len), Vec::len);
    assert_eq!(count, 10, "{}", listed.text);
}
