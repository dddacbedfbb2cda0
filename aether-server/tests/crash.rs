#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A server killed at any point of an upload leaves no artifact row without its blob and no
//! blob counted as stored without its row.

use std::path::Path;

use aether_core::digest::sha256_hex;
use aether_server::testing::process::ServerProcess;
use futures_util::StreamExt as _;

const TOKEN: &str = "crash-admin-token";

/// The server on `data`, killed (SIGKILL) when dropped.
fn start(data: &Path) -> ServerProcess {
    let vars = [("AETHER_DATA_DIR", data.display().to_string()), ("AETHER_API_TOKENS", format!("{TOKEN}:admin"))];
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_aether-server")), &vars.map(|(n, v)| (n.to_owned(), v)))
}

async fn head(client: &reqwest::Client, server: &ServerProcess, digest: &str) -> u16 {
    let url = format!("{}/artifacts/{digest}", server.url);
    client.head(url).bearer_auth(TOKEN).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn killed_mid_upload_or_before_complete_nothing_counts_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = start(dir.path());
    let app =
        client.post(format!("{}/apps", server.url)).bearer_auth(TOKEN).json(&serde_json::json!({"name": "web"})).send();
    assert_eq!(app.await.unwrap().status(), 201);

    // 1. Killed while the legacy upload's body is still streaming: the first 1 MiB is sent,
    // then the body waits, and the server is killed once the client has handed that much over.
    let bytes: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256_hex(&bytes);
    let (sent, handed_over) = tokio::sync::oneshot::channel::<()>();
    let first_mib: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).take(16).map(|c| Ok(c.to_vec())).collect();
    let rest = futures_util::stream::once(async move {
        let _ = sent.send(());
        std::future::pending::<Result<Vec<u8>, std::io::Error>>().await
    });
    let upload = client
        .post(format!("{}/artifacts?app_name=web", server.url))
        .bearer_auth(TOKEN)
        .header("x-aether-artifact-digest", &digest)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(first_mib).chain(rest)))
        .send();
    let upload = tokio::spawn(upload);
    handed_over.await.unwrap();
    server.kill();
    assert!(upload.await.unwrap().is_err(), "the connection died with the server");

    // 2. Killed after the presigned PUT stored the bytes but before complete registered them.
    let mut server = start(dir.path());
    let small = b"registered only by complete".to_vec();
    let small_digest = sha256_hex(&small);
    let presign = serde_json::json!({"app_name": "web", "digest": small_digest, "size_bytes": small.len()});
    let presigned: serde_json::Value = client
        .post(format!("{}/artifacts/presign", server.url))
        .bearer_auth(TOKEN)
        .json(&presign)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = client.put(presigned["upload_url"].as_str().unwrap()).body(small.clone()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    server.kill();

    let server = start(dir.path());
    assert_eq!(head(&client, &server, &digest).await, 404, "a half-received upload is not stored");
    assert_eq!(head(&client, &server, &small_digest).await, 404, "a blob without its row is not counted as stored");
    let listed: serde_json::Value =
        client.get(format!("{}/artifacts", server.url)).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "no artifact row exists: {listed}");
    let object = dir.path().join(format!("artifacts/objects/artifacts/sha256/{digest}.tar.gz"));
    assert!(!object.exists(), "the killed upload never became an object");
}
