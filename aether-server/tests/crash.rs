#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A server killed at any point of an upload leaves no artifact row without its blob and no
//! blob counted as stored without its row.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aether_core::digest::sha256_hex;
use futures_util::StreamExt as _;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(data: &std::path::Path, port: u16) -> Server {
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_aether-server"))
            .env("AETHER_LISTEN", format!("127.0.0.1:{port}"))
            .env("AETHER_DATA_DIR", data)
            .env("AETHER_API_TOKENS", "t:admin")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..400 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not start");
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

async fn head(client: &reqwest::Client, port: u16, digest: &str) -> u16 {
    client.head(url(port, &format!("/artifacts/{digest}"))).bearer_auth("t").send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn killed_mid_upload_or_before_complete_nothing_counts_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = reqwest::Client::new();
    let mut server = start(dir.path(), port).await;
    let app = client.post(url(port, "/apps")).bearer_auth("t").json(&serde_json::json!({"name": "web"})).send().await;
    assert_eq!(app.unwrap().status(), 201);

    // 1. Killed while the legacy upload's body is still streaming.
    let bytes: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256_hex(&bytes);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let slow = futures_util::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        chunk
    });
    let upload = client
        .post(url(port, "/artifacts?app_name=web"))
        .bearer_auth("t")
        .header("x-aether-artifact-digest", &digest)
        .body(reqwest::Body::wrap_stream(slow))
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert!(upload.await.unwrap().is_err(), "the connection died with the server");

    // 2. Killed after the presigned PUT stored the bytes but before complete registered them.
    let server = start(dir.path(), port).await;
    let small = b"registered only by complete".to_vec();
    let small_digest = sha256_hex(&small);
    let presign = serde_json::json!({"app_name": "web", "digest": small_digest, "size_bytes": small.len()});
    let presigned: serde_json::Value = client
        .post(url(port, "/artifacts/presign"))
        .bearer_auth("t")
        .json(&presign)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = client.put(presigned["upload_url"].as_str().unwrap()).body(small.clone()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    drop(server);

    let _server = start(dir.path(), port).await;
    assert_eq!(head(&client, port, &digest).await, 404, "a half-received upload is not stored");
    assert_eq!(head(&client, port, &small_digest).await, 404, "a blob without its row is not counted as stored");
    let listed: serde_json::Value =
        client.get(url(port, "/artifacts")).bearer_auth("t").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "no artifact row exists: {listed}");
    let object = dir.path().join(format!("artifacts/objects/artifacts/sha256/{digest}.tar.gz"));
    assert!(!object.exists(), "the killed upload never became an object");
}
