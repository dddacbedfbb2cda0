#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! API tests of apps, their public keys and their logs.

mod support;

use reqwest::Method;
use serde_json::json;
use support::{ADMIN, DEPLOYER, READER, TestServer, send, signing_key};

#[tokio::test]
async fn apps_are_created_once_and_listed() {
    let server = TestServer::start(&[]).await;
    let created = server.post("/apps", Some(DEPLOYER), &json!({ "name": "web" })).await.expect(201);
    let fields: Vec<&str> = created.json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["created_at", "id", "name"], "{}", created.text);
    assert_eq!(created.json["name"], "web");
    assert!(!created.str("id").is_empty());
    assert!(created.str("created_at").ends_with('Z'), "{}", created.text);

    server.post("/apps", Some(DEPLOYER), &json!({ "name": "web" })).await.expect_error(409, "conflict");
    server.create_app("api").await;
    let longest = "a".repeat(63);
    server.create_app(&longest).await;

    let list = server.get("/apps", Some(READER)).await.expect(200);
    let apps = list.json.as_array().expect("an array of apps");
    assert_eq!(apps.len(), 3, "{}", list.text);
    let web = apps.iter().find(|a| a["name"] == "web").expect("web is listed");
    assert_eq!(web, &created.json);
    for name in ["api", longest.as_str()] {
        assert!(apps.iter().any(|a| a["name"] == name), "{name} missing from {}", list.text);
    }
}

#[tokio::test]
async fn invalid_app_names_are_400() {
    let server = TestServer::start(&[]).await;
    let too_long = "a".repeat(64);
    for name in ["Bad_Name", "-x", "x-", too_long.as_str(), "app-é", "", "a b", "a.b"] {
        let reply = server.post("/apps", Some(DEPLOYER), &json!({ "name": name })).await;
        reply.expect_error(400, "bad_request");
    }
    server.post("/apps", Some(DEPLOYER), &json!({ "name": 7 })).await.expect_error(400, "bad_request");
    let list = server.get("/apps", Some(READER)).await.expect(200);
    assert_eq!(list.json, json!([]), "an invalid app was created");
}

#[tokio::test]
async fn malformed_bodies_are_rejected_with_envelopes() {
    let server = TestServer::start(&[]).await;
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = server.request(Method::POST, "/apps", Some(DEPLOYER)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        send(request)
    };
    post(r#"{"name":"web","extra":1}"#, Some("application/json")).await.expect_error(400, "bad_request");
    post(r#"{"name":"#, Some("application/json")).await.expect_error(400, "bad_request");
    post("", Some("application/json")).await.expect_error(400, "bad_request");
    post("{}", Some("application/json")).await.expect_error(400, "bad_request");
    post(r#"{"name":"web"}"#, Some("text/plain")).await.expect_error(415, "unsupported_media_type");
    post(r#"{"name":"web"}"#, None).await.expect_error(415, "unsupported_media_type");

    // JSON bodies are capped (1 MiB).
    let huge = format!(r#"{{"name":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let request = server.request(Method::POST, "/apps", Some(DEPLOYER)).header("content-type", "application/json");
    send(request.body(huge)).await.expect_error(413, "payload_too_large");

    assert_eq!(server.get("/apps", Some(READER)).await.expect(200).json, json!([]));
}

#[tokio::test]
async fn public_keys_are_registered_by_admins() {
    let server = TestServer::start(&[]).await;
    let app = server.create_app("web").await;
    let key = signing_key().public_key_hex();
    let added = server.post("/apps/web/public-keys", Some(ADMIN), &json!({ "public_key_hex": key })).await.expect(201);
    assert_eq!(added.json, json!({ "app_id": app["id"], "public_key_hex": key, "active": true }));

    // The same key again, even spelled in uppercase, is a conflict.
    let upper = json!({ "public_key_hex": key.to_ascii_uppercase() });
    server.post("/apps/web/public-keys", Some(ADMIN), &upper).await.expect_error(409, "conflict");

    for bad in ["", "zz", "abc", &"g".repeat(64), &"ab".repeat(33)] {
        let reply = server.post("/apps/web/public-keys", Some(ADMIN), &json!({ "public_key_hex": bad })).await;
        reply.expect_error(400, "bad_request");
    }
    let unknown_field = json!({ "public_key_hex": key, "active": false });
    server.post("/apps/web/public-keys", Some(ADMIN), &unknown_field).await.expect_error(400, "bad_request");
    let body = json!({ "public_key_hex": key });
    server.post("/apps/nope/public-keys", Some(ADMIN), &body).await.expect_error(404, "not_found");
    server.post("/apps/Bad_Name/public-keys", Some(ADMIN), &body).await.expect_error(400, "bad_request");
}

#[tokio::test]
async fn logs_come_from_the_runtime() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let logs = server.get("/apps/web/logs", Some(READER)).await.expect(200);
    let lines = logs.json.as_array().expect("an array of lines");
    assert_eq!(lines.len(), 1, "{}", logs.text);
    assert!(lines[0].as_str().unwrap().contains("web"), "{}", logs.text);
    assert_eq!(server.get("/apps/web/logs?tail=0", Some(READER)).await.expect(200).json, json!([]));
    server.get("/apps/web/logs?tail=many", Some(READER)).await.expect_error(400, "bad_request");
    server.get("/apps/nope/logs", Some(READER)).await.expect_error(404, "not_found");
    server.get("/apps/Bad_Name/logs", Some(READER)).await.expect_error(400, "bad_request");
    server.get("/apps/web/logs", None).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn deployment_lists_of_unknown_or_invalid_apps() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    assert_eq!(server.get("/apps/web/deployments", Some(READER)).await.expect(200).json, json!([]));
    server.get("/apps/nope/deployments", Some(READER)).await.expect_error(404, "not_found");
    server.get("/apps/Bad_Name/deployments", Some(READER)).await.expect_error(400, "bad_request");
}
