#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real binary serves HTTPS with the PEM certificate and key it is given.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_aether-server"))
            .env("AETHER_LISTEN", format!("127.0.0.1:{port}"))
            .env("AETHER_DATA_DIR", dir.path().join("data"))
            .env("AETHER_API_TOKENS", "secret:admin")
            .env("AETHER_TLS_CERT", &cert_path)
            .env("AETHER_TLS_KEY", &key_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}");
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{url}/healthz")).send().await {
            answered = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answered, Some(reqwest::StatusCode::OK), "HTTPS /healthz must answer");
    let apps = client.get(format!("{url}/apps")).bearer_auth("secret").send().await.unwrap();
    assert_eq!(apps.status(), reqwest::StatusCode::OK);
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/healthz")).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}
