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

/// The text part of each line `GET path` returns.
async fn texts(server: &TestServer, path: &str) -> Vec<String> {
    let reply = server.get(path, Some(READER)).await.expect(200);
    let lines = reply.json.as_array().unwrap_or_else(|| panic!("not an array: {}", reply.text));
    lines.iter().map(|l| l.as_str().unwrap().rsplit(": ").next().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn logs_filter_by_deployment_and_time() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let runtime = server.runtime();
    runtime.log("web", "aaaaaaaa-1111", 1_000, "one early");
    runtime.log("web", "bbbbbbbb-2222", 2_000, "two");
    runtime.log("web", "aaaaaaaa-1111", 3_000, "one late");
    let all = server.get("/apps/web/logs", Some(READER)).await.expect(200).json;
    assert_eq!(
        all,
        json!([
            "1970-01-01T00:00:01.000Z aaaaaaaa stdout: one early",
            "1970-01-01T00:00:02.000Z bbbbbbbb stdout: two",
            "1970-01-01T00:00:03.000Z aaaaaaaa stdout: one late",
        ])
    );
    assert_eq!(texts(&server, "/apps/web/logs?deployment=aaaaaaaa-1111").await, ["one early", "one late"]);
    assert_eq!(texts(&server, "/apps/web/logs?since_ms=2000").await, ["two", "one late"]);
    assert_eq!(texts(&server, "/apps/web/logs?since_ms=1500&deployment=aaaaaaaa-1111&tail=5").await, ["one late"]);
    assert_eq!(texts(&server, "/apps/web/logs?tail=1").await, ["one late"]);
    assert!(texts(&server, "/apps/web/logs?deployment=aaaaaaaa").await.is_empty(), "ids match exactly");
    server.get("/apps/web/logs?since_ms=yesterday", Some(READER)).await.expect_error(400, "bad_request");
    server.get("/apps/web/logs?follow=maybe", Some(READER)).await.expect_error(400, "bad_request");
}

/// Reads the event stream until its text contains `needle`; returns everything read.
async fn read_until(response: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} never arrived; got {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {needle:?}; got {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn follow_streams_the_tail_then_new_lines_as_server_sent_events() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let runtime = server.runtime();
    runtime.log("web", "aaaaaaaa-1111", 1_000, "old");
    runtime.log("web", "aaaaaaaa-1111", 2_000, "recent");
    let request = server.request(Method::GET, "/apps/web/logs?follow=true&tail=1", Some(READER));
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut seen = String::new();
    read_until(&mut response, &mut seen, "recent\n\n").await;
    assert_eq!(seen, "data: 1970-01-01T00:00:02.000Z aaaaaaaa stdout: recent\n\n");

    runtime.log("web", "bbbbbbbb-2222", 3_000, "new");
    read_until(&mut response, &mut seen, "new\n\n").await;
    assert!(seen.ends_with("data: 1970-01-01T00:00:03.000Z bbbbbbbb stdout: new\n\n"), "{seen:?}");
    assert!(!seen.contains("old"), "more than the tail was sent: {seen:?}");

    // A deployment filter applies to the live lines too.
    let path = "/apps/web/logs?follow=true&tail=0&deployment=cccccccc-3333";
    let mut filtered = server.request(Method::GET, path, Some(READER)).send().await.unwrap();
    runtime.log("web", "bbbbbbbb-2222", 4_000, "not for this follower");
    runtime.log("web", "cccccccc-3333", 5_000, "for this follower");
    let mut seen = String::new();
    read_until(&mut filtered, &mut seen, "for this follower\n\n").await;
    assert_eq!(seen, "data: 1970-01-01T00:00:05.000Z cccccccc stdout: for this follower\n\n");
    server.get("/apps/nope/logs?follow=true", Some(READER)).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn deployment_lists_of_unknown_or_invalid_apps() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    assert_eq!(server.get("/apps/web/deployments", Some(READER)).await.expect(200).json, json!([]));
    server.get("/apps/nope/deployments", Some(READER)).await.expect_error(404, "not_found");
    server.get("/apps/Bad_Name/deployments", Some(READER)).await.expect_error(400, "bad_request");
}
