#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real binary serves HTTPS with the PEM certificate and key it is given.

use std::path::Path;
use std::time::Duration;

use aether_server::testing::process::ServerProcess;

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let path = |p: &Path| p.display().to_string();
    let vars = [
        ("AETHER_DATA_DIR", path(&dir.path().join("data"))),
        ("AETHER_API_TOKENS", "tls-admin-token:admin".to_owned()),
        ("AETHER_TLS_CERT", path(&cert_path)),
        ("AETHER_TLS_KEY", path(&key_path)),
    ];
    // Returns once the server logs that it listens, with the port it chose.
    let server =
        ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_aether-server")), &vars.map(|(n, v)| (n.to_owned(), v)));
    assert!(server.log().contains("tls=true"), "{}", server.log());
    let port: u16 = server.url.rsplit_once(':').unwrap().1.parse().unwrap();
    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}");
    let health = client.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK, "HTTPS /healthz must answer");
    let apps = client.get(format!("{url}/apps")).bearer_auth("tls-admin-token").send().await.unwrap();
    assert_eq!(apps.status(), reqwest::StatusCode::OK);
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/healthz")).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}
