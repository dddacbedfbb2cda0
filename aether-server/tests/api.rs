#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! API tests over real HTTP: health, metrics, authentication and tokens, the OpenAPI document
//! and the fallbacks. Apps, artifacts, uploads and deployments have their own files.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{ADMIN, DEPLOYER, NO_SUCH_ROUTE, READER, TestServer, blob, digest_of, send};

/// True when `text` holds 64 or more consecutive hex characters, i.e. something like a digest.
fn contains_hex_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 64 {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let server = TestServer::start(&[]).await;
    let health = server.get("/healthz", None).await.expect(200);
    assert_eq!(health.text.trim(), "ok");
    let ready = server.get("/readyz", None).await.expect(200);
    assert_eq!(ready.text.trim(), "ready");
}

#[tokio::test]
async fn an_unreachable_database_is_503() {
    let server = TestServer::start(&[]).await;
    server.state.store.close().await;
    server.get("/readyz", None).await.expect_error(503, "service_unavailable");
    server.get("/apps", Some(READER)).await.expect_error(503, "service_unavailable");
    server.get("/apps", Some("not-a-configured-token")).await.expect_error(503, "service_unavailable");
    server.get("/healthz", None).await.expect(200);
}

#[tokio::test]
async fn metrics_label_route_templates_never_digests() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let legacy = blob("metrics-legacy", 300);
    server.legacy_upload(Some("web"), &legacy, None).await.expect(200);
    let two_phase = blob("metrics-presigned", 300);
    server.upload_ok("web", &two_phase).await;
    for digest in [digest_of(&legacy), digest_of(&blob("never-stored", 10))] {
        server.get(&format!("/artifacts/{digest}"), Some(READER)).await;
        server.head_artifact(&digest).await;
        // Unmatched paths must not become labels either.
        server.get(&format!("/nothing/{digest}"), Some(READER)).await.expect(404);
    }

    let reply = server.get("/metrics", None).await.expect(200);
    assert!(reply.header("content-type").unwrap_or_default().starts_with("text/plain"));
    let text = reply.text;
    assert!(text.contains("artifact_uploads_total"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("artifact_uploads_total{result=\"stored\"}")), "{text}");
    let requests: Vec<&str> = text.lines().filter(|l| l.starts_with("http_requests_total{")).collect();
    assert!(
        requests.iter().any(|l| l.contains("route=\"/artifacts/{digest}\"") && l.contains("method=\"GET\"")),
        "no templated GET /artifacts/{{digest}} series:\n{text}"
    );
    assert!(requests.iter().any(|l| l.contains("route=\"/artifacts/{digest}\"") && l.contains("method=\"HEAD\"")));
    assert!(requests.iter().any(|l| l.contains("route=\"/uploads/{token}\"")), "{text}");
    assert!(!contains_hex_run(&text), "a digest leaked into the metrics:\n{text}");
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let server = TestServer::start(&[]).await;
    server.get("/apps", None).await.expect_error(401, "unauthorized");
    server.get("/apps", Some("not-a-token")).await.expect_error(401, "unauthorized");
    let basic = server.request(Method::GET, "/apps", None).header("authorization", format!("Basic {ADMIN}"));
    send(basic).await.expect_error(401, "unauthorized");
    let empty = server.request(Method::GET, "/apps", None).header("authorization", "Bearer ");
    send(empty).await.expect_error(401, "unauthorized");
    // Writes are refused before their body is looked at.
    server.post("/apps", None, &json!({ "name": "web" })).await.expect_error(401, "unauthorized");
    server.head(&format!("/artifacts/{}", digest_of(b"x")), None).await.expect(401);
}

#[tokio::test]
async fn roles_limit_what_a_token_may_do() {
    let server = TestServer::start(&[]).await;
    server.get("/apps", Some(READER)).await.expect(200);
    server.get("/artifacts", Some(READER)).await.expect(200);
    server.post("/apps", Some(READER), &json!({ "name": "web" })).await.expect_error(403, "forbidden");
    server.create_app("web").await;
    server.post("/apps", Some(ADMIN), &json!({ "name": "admin-app" })).await.expect(201);
    let mint = json!({ "role": "reader" });
    server.post("/tokens", Some(DEPLOYER), &mint).await.expect_error(403, "forbidden");
    server.post("/tokens", Some(READER), &mint).await.expect_error(403, "forbidden");
    server.delete("/tokens/some-id", Some(DEPLOYER)).await.expect_error(403, "forbidden");
    let key = json!({ "public_key_hex": support::signing_key().public_key_hex() });
    server.post("/apps/web/public-keys", Some(DEPLOYER), &key).await.expect_error(403, "forbidden");
    let deploy = json!({ "app_name": "web", "digest": digest_of(b"x") });
    server.post("/deployments", Some(READER), &deploy).await.expect_error(403, "forbidden");
    server.post("/apps/web/rollback", Some(READER), &json!({})).await.expect_error(403, "forbidden");
}

#[tokio::test]
async fn admins_mint_and_revoke_tokens() {
    let server = TestServer::start(&[]).await;
    let minted = server
        .post("/tokens", Some(ADMIN), &json!({ "role": "deployer", "name": "ci", "ttl_secs": 3600 }))
        .await
        .expect(201);
    let fields: Vec<&str> = minted.json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["expires_at", "id", "role", "token"], "{}", minted.text);
    assert_eq!(minted.json["role"], "deployer");
    assert!(minted.str("expires_at").ends_with('Z'), "{}", minted.text);
    let (id, token) = (minted.str("id"), minted.str("token"));
    assert!(!id.is_empty() && token.len() > 32, "{}", minted.text);

    // The minted token has its role: it may create apps but not mint tokens.
    server.post("/apps", Some(&token), &json!({ "name": "minted" })).await.expect(201);
    server.get("/apps", Some(&token)).await.expect(200);
    server.post("/tokens", Some(&token), &json!({ "role": "reader" })).await.expect_error(403, "forbidden");

    let forever = server.post("/tokens", Some(ADMIN), &json!({ "role": "reader" })).await.expect(201);
    assert!(forever.json["expires_at"].is_null(), "{}", forever.text);
    assert_ne!(forever.str("token"), token);

    let revoked = server.delete(&format!("/tokens/{id}"), Some(ADMIN)).await.expect(204);
    assert!(revoked.text.is_empty());
    server.get("/apps", Some(&token)).await.expect_error(401, "unauthorized");
    server.get("/apps", Some(&forever.str("token"))).await.expect(200);
    server.delete("/tokens/no-such-token", Some(ADMIN)).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn minted_tokens_expire() {
    let server = TestServer::start(&[]).await;
    let minted = server.post("/tokens", Some(ADMIN), &json!({ "role": "reader", "ttl_secs": 1 })).await.expect(201);
    let token = minted.str("token");
    server.get("/apps", Some(&token)).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.get("/apps", Some(&token)).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn invalid_token_requests_are_400() {
    let server = TestServer::start(&[]).await;
    for body in [
        json!({ "role": "root" }),
        json!({ "role": "Admin" }),
        json!({ "role": "reader", "ttl_secs": 0 }),
        json!({ "role": "reader", "ttl_secs": 10 * 365 * 24 * 3600 }),
        json!({ "role": "reader", "scopes": [] }),
        json!({ "name": "no role" }),
    ] {
        let reply = server.post("/tokens", Some(ADMIN), &body).await;
        reply.expect_error(400, "bad_request");
    }
}

#[tokio::test]
async fn openapi_documents_every_route_and_every_documented_route_answers() {
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let digest = server.upload_ok("web", &blob("openapi", 100)).await;
    let deployment = server.deploy_running("web", &digest).await;

    let document = server.get("/openapi.json", None).await.expect(200).json;
    let bearer = &document["components"]["securitySchemes"]["bearer_auth"];
    assert!(bearer.is_object(), "no bearer_auth scheme in {document}");
    assert_eq!(bearer["scheme"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("bearer"));
    let paths = document["paths"].as_object().expect("paths");
    let documented: usize = paths.values().map(|item| item.as_object().map_or(0, |ops| ops.len())).sum();
    assert_eq!(documented, aether_server::openapi::ROUTES.len(), "the document lists other operations than ROUTES");

    for route in aether_server::openapi::ROUTES {
        let method = route.method.to_ascii_lowercase();
        let operation = &document["paths"][route.path][&method];
        assert!(operation.is_object(), "{} {} is not in the document", route.method, route.path);
        assert_eq!(operation["security"].is_array(), route.authenticated(), "{} {} security", route.method, route.path);

        let id = if route.path.starts_with("/deployments") { deployment.as_str() } else { "no-such-id" };
        let path = route
            .path
            .replace("{app}", "web")
            .replace("{digest}", &digest)
            .replace("{id}", id)
            .replace("{token}", "not-a-token");
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let mut request = server.request(method.clone(), &path, Some(ADMIN));
        if matches!(route.request, aether_server::openapi::Body::Json(_)) {
            request = request.json(&json!({}));
        }
        let reply = send(request).await;
        let what = format!("{} {path} answered {}: {}", route.method, reply.status, reply.text);
        assert_ne!(reply.status.as_u16(), 405, "{what}");
        if method == Method::HEAD {
            // No body to tell a handler's 404 from the fallback's: the digest exists, so 200.
            assert_eq!(reply.status.as_u16(), 200, "{what}");
        } else if reply.status.as_u16() == 404 {
            assert_eq!(reply.json["code"], "not_found", "{what}");
            assert_ne!(reply.json["message"], NO_SUCH_ROUTE, "{what}");
        }
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_envelopes() {
    let server = TestServer::start(&[]).await;
    let unknown = server.get("/no/such/thing", None).await;
    unknown.expect_error(404, "not_found");
    assert_eq!(unknown.json["message"], NO_SUCH_ROUTE);
    let nested = server.get("/apps/web/nope", Some(ADMIN)).await;
    nested.expect_error(404, "not_found");
    assert_eq!(nested.json["message"], NO_SUCH_ROUTE);

    send(server.request(Method::PUT, "/healthz", None)).await.expect_error(405, "method_not_allowed");
    send(server.request(Method::POST, "/openapi.json", None)).await.expect_error(405, "method_not_allowed");
    send(server.request(Method::DELETE, "/apps", Some(ADMIN))).await.expect_error(405, "method_not_allowed");
    send(server.request(Method::PUT, "/deployments/x", Some(ADMIN))).await.expect_error(405, "method_not_allowed");
    send(server.request(Method::GET, "/uploads/x", None)).await.expect_error(405, "method_not_allowed");
}

/// Every route of the table × every role, and no token at all: a token below the route's role is
/// refused with 403 before the handler runs, one at or above it is let through (whatever the
/// handler then says), and authenticated routes refuse a missing token with 401. Generated from
/// the route table, so a new route cannot skip it.
#[tokio::test]
async fn every_route_checks_every_role() {
    use aether_server::model::Role;
    let server = TestServer::start(&[]).await;
    server.create_app("web").await;
    let digest = digest_of(b"matrix");
    let tokens = [(Role::Reader, READER), (Role::Deployer, DEPLOYER), (Role::Admin, ADMIN)];
    let mut checked = 0;
    for route in aether_server::openapi::ROUTES {
        let path = route
            .path
            .replace("{app}", "web")
            .replace("{digest}", &digest)
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{token}", "not-a-token");
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let call = |token: Option<&str>| {
            let request = server.request(method.clone(), &path, token);
            // An empty JSON object: enough for the role check, which comes before the body's.
            send(if route.method == "POST" { request.json(&json!({})) } else { request })
        };
        let Some(needed) = route.role else {
            let reply = call(None).await;
            assert_ne!(reply.status.as_u16(), 401, "{} {path} is public: {}", route.method, reply.text);
            continue;
        };
        let anonymous = call(None).await;
        assert_eq!(anonymous.status.as_u16(), 401, "{} {path} without a token: {}", route.method, anonymous.text);
        for (role, token) in tokens {
            let reply = call(Some(token)).await;
            let what = format!("{} {path} as {}: {} {}", route.method, role.as_str(), reply.status, reply.text);
            if role < needed {
                assert_eq!(reply.status.as_u16(), 403, "{what}");
                if route.method != "HEAD" {
                    assert_eq!(reply.json["code"], "forbidden", "{what}");
                    assert!(reply.text.contains(needed.as_str()), "the refusal names the role needed: {what}");
                }
            } else {
                assert!(![401, 403].contains(&reply.status.as_u16()), "{what}");
            }
            checked += 1;
        }
    }
    let authenticated = aether_server::openapi::ROUTES.iter().filter(|r| r.authenticated()).count();
    assert_eq!(checked, authenticated * tokens.len());
}
