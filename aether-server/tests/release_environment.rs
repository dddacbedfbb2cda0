#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A release never sees the control plane's secrets: the server runs on PostgreSQL with API
//! tokens and S3 credentials in its environment, and an app that answers with its whole
//! environment shows none of them.

#[path = "support/black_box.rs"]
mod black_box;
#[path = "support/node_app.rs"]
mod node_app;

use aether_server::testing::postgres::TestPostgres;
use black_box::Site;

const PRINT_ENV_JS: &str = r#"const http = require("http");
http.createServer((req, res) => res.end(JSON.stringify(process.env)))
  .listen(Number(process.env.PORT), "127.0.0.1");
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_sees_none_of_the_servers_secrets() {
    let pg = TestPostgres::start().expect("PostgreSQL for this test");
    let database_url = pg.create_database("aether_release_env").unwrap();
    let secrets = [
        ("DATABASE_URL", database_url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAENVTESTKEYID0001"),
        ("AWS_SECRET_ACCESS_KEY", "env-test-secret-access-key-0123456789"),
        ("AWS_SESSION_TOKEN", "env-test-session-token"),
        ("AETHER_S3_SSE_KMS_KEY", "env-test-kms-key"),
    ];
    let site = Site::new(&secrets);
    let server = site.start();
    site.create_app(&server).await;
    let digest = site.upload(&server, &node_app::pack_app(PRINT_ENV_JS).0).await;
    let id = site.deploy(&server, &digest).await;
    let running = site.deployment_until(&server, &id, |d| d["status"] != "deploying" && d["status"] != "pending").await;
    assert_eq!(running["status"], "running", "{running}\n{}", server.log());

    let url = running["url"].as_str().unwrap();
    let seen: serde_json::Value = site.http.get(url).send().await.unwrap().json().await.unwrap();
    let text = seen.to_string();
    assert_eq!(seen["AETHER_DEPLOYMENT_ID"], id.as_str(), "the release knows its deployment: {text}");
    assert_eq!(seen["AETHER_CRASH_TEST"], site.tag.as_str(), "the deployment's own variables arrive: {text}");
    for (name, value) in secrets.iter().chain([("AETHER_API_TOKENS", black_box::TOKEN)].iter()) {
        assert!(seen.get(name).is_none(), "{name} leaked into the release's environment: {text}");
        assert!(!text.contains(value), "the value of {name} leaked into the release's environment: {text}");
    }
    let leaked: Vec<&String> = seen
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("AETHER_") && !["AETHER_DEPLOYMENT_ID", "AETHER_CRASH_TEST"].contains(&k.as_str()))
        .collect();
    assert!(leaked.is_empty(), "server variables leaked: {leaked:?}");
}
