//! A real server on 127.0.0.1 for API tests: SQLite and artifacts in a temporary directory, the
//! in-memory fake runtime, and helpers for authenticated requests.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aether_core::digest::sha256_hex;
use aether_core::signing::SigningKey;
use aether_server::runtime::FakeRuntime;
use aether_server::state::AppState;
use aether_server::testing::s3::TestS3;
use aether_server::testing::server::InProcessServer;
pub use aether_server::testing::server::{ADMIN, DEPLOYER, READER, TestPorts};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// What the fallback answers for a path no route matches.
pub const NO_SUCH_ROUTE: &str = "no such route";

/// Where a test server keeps its artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The local directory store (the default).
    Local,
    /// A real S3-compatible server that the test starts (`s3s-fs`), bucket `artifacts`.
    S3,
}

/// The in-process server plus a plain HTTP client and request helpers.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, also the server's public URL.
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState<TestPorts>,
    server: InProcessServer,
    /// The S3 server, for [`Storage::S3`]; dropped after the control plane.
    pub s3: Option<TestS3>,
}

/// A response, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, `Null` when it is not JSON.
    pub json: Value,
}

impl Reply {
    /// Asserts the status and returns the reply.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts an error envelope `{"code", "message"}` with this status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.json["code"], code, "unexpected envelope: {}", self.text);
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "envelope without a message: {}", self.text);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "envelope content type {content_type:?}");
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// A string field of the JSON body.
    #[track_caller]
    pub fn str(&self, field: &str) -> String {
        self.json[field].as_str().unwrap_or_else(|| panic!("no string {field:?} in {}", self.text)).to_owned()
    }
}

pub async fn send(request: RequestBuilder) -> Reply {
    let response = request.send().await.expect("request failed");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("reading the body failed");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, text, json }
}

/// Distinct, deterministic artifact bytes: `tag`, a newline, then filler up to `len`.
pub fn blob(tag: &str, len: usize) -> Vec<u8> {
    let mut bytes = format!("{tag}\n").into_bytes();
    let filler = len.saturating_sub(bytes.len());
    bytes.extend((0..filler).map(|i| b'a' + u8::try_from(i % 26).unwrap()));
    bytes
}

pub fn digest_of(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

/// The key the tests register with apps.
pub fn signing_key() -> SigningKey {
    SigningKey::from_seed([7; 32])
}

/// A key no app knows.
pub fn stranger_key() -> SigningKey {
    SigningKey::from_seed([9; 32])
}

impl TestServer {
    /// Starts a server with the three test tokens plus `extra_env` (which may override them).
    pub async fn start(extra_env: &[(&str, &str)]) -> Self {
        Self::start_with(Storage::Local, extra_env).await
    }

    /// Starts a server storing artifacts in `storage`, with the three test tokens plus
    /// `extra_env`.
    pub async fn start_with(storage: Storage, extra_env: &[(&str, &str)]) -> Self {
        let s3 = match storage {
            Storage::Local => None,
            Storage::S3 => {
                let s3 = TestS3::start().expect("start the S3 server");
                s3.bucket("artifacts").await;
                Some(s3)
            }
        };
        let mut env: Vec<(String, String)> = s3.as_ref().map(|s3| s3.env("artifacts")).unwrap_or_default();
        env.extend(extra_env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let server = InProcessServer::start(&env).await;
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        Self { base: server.base.clone(), client, state: server.state.clone(), server, s3 }
    }

    /// The bytes of a stored blob, read from the artifact store itself.
    pub async fn stored_bytes(&self, digest: &str) -> Vec<u8> {
        use aether_server::ports::ArtifactStore as _;
        use tokio::io::AsyncReadExt as _;
        let key = aether_server::service::storage_key(digest);
        let mut reader = self.state.blobs.open(&key).await.expect("the artifact's blob is readable");
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.expect("read the blob");
        bytes
    }

    /// The server's `AETHER_DATA_DIR`.
    pub fn data_dir(&self) -> &std::path::Path {
        self.server.data_dir()
    }

    pub fn runtime(&self) -> &FakeRuntime {
        &self.state.runtime
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with `Authorization: Bearer <token>` when a token is given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        send(self.request(Method::GET, path, token)).await
    }

    pub async fn head(&self, path: &str, token: Option<&str>) -> Reply {
        send(self.request(Method::HEAD, path, token)).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        send(self.request(Method::POST, path, token).json(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        send(self.request(Method::DELETE, path, token)).await
    }

    /// `HEAD /artifacts/{digest}` as a reader; the status.
    pub async fn head_artifact(&self, digest: &str) -> u16 {
        let reply = self.head(&format!("/artifacts/{digest}"), Some(READER)).await;
        assert!(reply.text.is_empty(), "HEAD answered with a body: {}", reply.text);
        reply.status.as_u16()
    }

    /// Creates an app as a deployer; returns its JSON.
    pub async fn create_app(&self, name: &str) -> Value {
        self.post("/apps", Some(DEPLOYER), &json!({ "name": name })).await.expect(201).json
    }

    /// Registers `key` with the app (admins only).
    pub async fn add_key(&self, app: &str, key: &SigningKey) {
        let body = json!({ "public_key_hex": key.public_key_hex() });
        self.post(&format!("/apps/{app}/public-keys"), Some(ADMIN), &body).await.expect(201);
    }

    /// The deprecated direct upload, `POST /artifacts?app_name=...`, as a deployer.
    pub async fn legacy_upload(&self, app: Option<&str>, bytes: &[u8], signature: Option<&str>) -> Reply {
        let path = match app {
            Some(app) => format!("/artifacts?app_name={app}"),
            None => "/artifacts".to_owned(),
        };
        let mut request = self
            .request(Method::POST, &path, Some(DEPLOYER))
            .header("x-aether-artifact-digest", digest_of(bytes))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-aether-signature", signature);
        }
        send(request).await
    }

    /// `POST /artifacts/presign` as a deployer.
    pub async fn presign(&self, app: &str, digest: &str, size: usize) -> Reply {
        let body = json!({ "app_name": app, "digest": digest, "size_bytes": size });
        self.post("/artifacts/presign", Some(DEPLOYER), &body).await
    }

    /// PUTs bytes to a presigned URL, without a bearer token.
    pub async fn put_presigned(&self, url: &str, bytes: &[u8]) -> Reply {
        let headers = Value::Object(serde_json::Map::new());
        self.put_presigned_with(url, &headers, bytes).await
    }

    /// PUTs bytes to a presigned URL with the headers its presign reply listed, as clients do.
    pub async fn put_presigned_with(&self, url: &str, headers: &Value, bytes: &[u8]) -> Reply {
        let ours = url.starts_with(&self.base) || self.s3.as_ref().is_some_and(|s3| url.starts_with(&s3.endpoint));
        assert!(ours, "presigned URL {url} points at neither the server {} nor its object store", self.base);
        // Listed headers replace the defaults: a signed header sent twice breaks the signature.
        let mut map = reqwest::header::HeaderMap::new();
        map.insert("content-type", reqwest::header::HeaderValue::from_static("application/octet-stream"));
        for (name, value) in headers.as_object().into_iter().flatten() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name");
            map.insert(name, value.as_str().unwrap_or_default().parse().expect("header value"));
        }
        send(self.client.put(url).headers(map).body(bytes.to_vec())).await
    }

    /// `POST /artifacts/complete` as a deployer with extra fields merged into the body.
    pub async fn complete(&self, app: &str, bytes: &[u8], extra: Value) -> Reply {
        let mut body = json!({ "app_name": app, "digest": digest_of(bytes), "size_bytes": bytes.len() });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("/artifacts/complete", Some(DEPLOYER), &body).await
    }

    /// A whole two-phase upload; returns the complete response.
    pub async fn upload(&self, app: &str, bytes: &[u8], signature: Option<&str>) -> Reply {
        let presign = self.presign(app, &digest_of(bytes), bytes.len()).await.expect(200);
        if presign.str("method") == "PUT" {
            self.put_presigned_with(&presign.str("upload_url"), &presign.json["headers"], bytes).await.expect(200);
        }
        let upload_id = presign.json["upload_id"].clone();
        self.complete(app, bytes, json!({ "signature": signature, "upload_id": upload_id })).await
    }

    /// Uploads `bytes` for `app` (two-phase) and returns their digest.
    pub async fn upload_ok(&self, app: &str, bytes: &[u8]) -> String {
        let reply = self.upload(app, bytes, None).await.expect(200);
        assert_eq!(reply.str("digest"), digest_of(bytes));
        reply.str("digest")
    }

    /// `POST /deployments` as a deployer with extra fields merged into the body.
    pub async fn create_deployment(&self, app: &str, digest: &str, extra: Value) -> Reply {
        let mut body = json!({ "app_name": app, "digest": digest });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("/deployments", Some(DEPLOYER), &body).await
    }

    /// Deploys and waits until the deployment runs; returns its id.
    pub async fn deploy_running(&self, app: &str, digest: &str) -> String {
        let id = self.create_deployment(app, digest, json!({})).await.expect(201).str("id");
        self.wait_status(&id, "running").await;
        id
    }

    pub async fn deployment(&self, id: &str) -> Value {
        self.get(&format!("/deployments/{id}"), Some(READER)).await.expect(200).json
    }

    /// Polls `GET /deployments/{id}` until its status is `status` (at most ~5 s).
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.deployment(id).await;
            if last["status"] == status {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("deployment {id} never became {status}; last seen: {last}");
    }

    /// The `(from, to)` pairs of a deployment's events, oldest first.
    pub async fn transitions(&self, id: &str) -> Vec<(Value, Value)> {
        let deployment = self.deployment(id).await;
        let events = deployment["events"].as_array().unwrap_or_else(|| panic!("no events in {deployment}"));
        events.iter().map(|e| (e["from"].clone(), e["to"].clone())).collect()
    }

    /// The Prometheus text of `GET /metrics`, fetched without a token.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.expect(200).text
    }
}
