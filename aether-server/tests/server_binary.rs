//! The real `aether-server` binary, started as a user would: environment variables, a data
//! directory, signals, and HTTP on a loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aether_core::digest::sha256_hex;
use aether_server::testing::postgres::TestPostgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "support/node_app.rs"]
mod node_app;

const BINARY: &str = env!("CARGO_BIN_EXE_aether-server");

/// How long a request may take before the server counts as hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variables for a run.
type Vars<'a> = &'a [(&'a str, String)];

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build().unwrap()
}

/// A child process whose stdout and stderr are collected as they arrive; killed when dropped.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// The address from its "aether-server listening" line, once it logs it.
    listening: std::sync::mpsc::Receiver<String>,
}

impl Proc {
    /// Runs the binary in `cwd` with `vars`, and without any `AETHER_*` or `DATABASE_URL`
    /// inherited from the environment running the tests.
    fn spawn(args: &[&str], cwd: &Path, vars: &[(&str, String)]) -> Self {
        let mut command = Command::new(BINARY);
        command.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("AETHER_") || name == "DATABASE_URL" {
                command.env_remove(name.as_ref());
            }
        }
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn aether-server");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let (address, listening) = std::sync::mpsc::channel();
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout), None),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr), Some(address)),
        ];
        Self { child, stdout, stderr, readers, listening }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to exit, then for its output to be read to the end.
    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit_status() {
                for reader in self.readers.drain(..) {
                    reader.join().unwrap();
                }
                return status;
            }
            if started.elapsed() > limit {
                panic!("aether-server did not exit within {limit:?}\nstderr:\n{}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Collects `pipe` line by line; with `address`, passes on the address of the "aether-server
/// listening" line (after the line is collected, so the output then has it).
fn collect(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    address: Option<std::sync::mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(std::io::BufRead::read_until(&mut lines, b'\n', &mut line), Ok(n) if n > 0) {
            into.lock().unwrap().extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            if let Some(address) = &address
                && text.contains("aether-server listening")
                && let Some(found) = text.split_whitespace().find_map(|word| word.strip_prefix("address="))
            {
                let _ = address.send(found.to_owned());
            }
            line.clear();
        }
    })
}

/// A serving `aether-server` on `127.0.0.1:<port>` with its data in `data_dir`.
struct Server {
    proc: Proc,
    base: String,
}

impl Server {
    /// Starts the server on a port of its choosing and returns once it logs that it listens.
    async fn start(cwd: &Path, data_dir: &Path, extra: &[(&str, String)]) -> Self {
        let mut vars = vec![("AETHER_LISTEN", "127.0.0.1:0".to_owned()), ("AETHER_DATA_DIR", path_string(data_dir))];
        vars.extend(extra.iter().cloned());
        let proc = Proc::spawn(&[], cwd, &vars);
        // The log line comes once the socket is bound, or never: its reader ends with the process.
        match proc.listening.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => Self { base: format!("http://{address}"), proc },
            Err(_) => panic!("aether-server did not start listening\nstderr:\n{}", proc.stderr()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then the exit status and everything the process printed.
    async fn shut_down(mut self) -> (ExitStatus, String, String) {
        self.proc.sigterm();
        let status = self.proc.wait_exit(Duration::from_secs(15)).await;
        (status, self.proc.stdout(), self.proc.stderr())
    }
}

fn path_string(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Every `aether_<hex>` token in `text`.
fn tokens_in(text: &str) -> Vec<String> {
    text.match_indices("aether_")
        .filter_map(|(at, prefix)| {
            let hex: String = text[at + prefix.len()..].chars().take_while(char::is_ascii_hexdigit).collect();
            (hex.len() >= 32).then(|| format!("aether_{hex}"))
        })
        .collect()
}

/// Every regular file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                // A file removed since the listing (a finished temp file) is simply gone.
                match std::fs::read(entry.path()) {
                    Ok(bytes) => files.push((entry.path(), bytes)),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => panic!("{}: {error}", entry.path().display()),
                }
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Fails if any form of the token's secret is stored under `dir`.
fn assert_secret_not_stored(dir: &Path, token: &str) {
    let hex_part = token.strip_prefix("aether_").unwrap();
    let raw = hex::decode(hex_part).unwrap();
    let upper = hex_part.to_uppercase();
    let forms: [&[u8]; 4] = [token.as_bytes(), hex_part.as_bytes(), upper.as_bytes(), &raw];
    for (path, bytes) in files_under(dir) {
        for form in forms {
            assert!(!contains(&bytes, form), "{} holds the token's secret", path.display());
        }
    }
}

/// Reads a response expected to be the JSON error envelope with `status` and `code`.
async fn assert_envelope(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert!(
        content_type.as_deref().is_some_and(|t| t.starts_with("application/json")),
        "content-type {content_type:?}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

async fn app_names(http: &reqwest::Client, server: &Server, token: &str) -> Vec<String> {
    let response = http.get(server.url("/apps")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let apps: Vec<Value> = response.json().await.unwrap();
    apps.iter().map(|app| app["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn embedded_first_start_prints_one_admin_token_stored_only_as_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = client();

    let server = Server::start(dir.path(), &data, &[]).await;
    let started = Instant::now();
    let token = loop {
        if let Some(token) = tokens_in(&server.proc.stdout()).pop() {
            break token;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no token on stdout: {:?}", server.proc.stdout());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    let response = http.post(server.url("/apps")).bearer_auth(&token).json(&json!({"name": "web"})).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::CREATED);
    assert_eq!(app_names(&http, &server, &token).await, ["web"]);
    let wrong = format!("aether_{}", "0".repeat(64));
    let response = http.get(server.url("/apps")).bearer_auth(&wrong).send().await.unwrap();
    assert_envelope(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = http.get(server.url("/apps")).send().await.unwrap();
    assert_envelope(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let database = std::fs::read(data.join("aether.db")).expect("the SQLite database is in the data dir");
    assert!(database.starts_with(b"SQLite format 3\0"));
    assert_secret_not_stored(&data, &token);

    let (status, stdout, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert_eq!(tokens_in(&stdout), std::slice::from_ref(&token), "exactly one token on stdout:\n{stdout}");
    assert_secret_not_stored(&data, &token);
    // What is stored instead: the hash, which proves the scan above read the database.
    let hash = sha256_hex(token.as_bytes());
    let hash_raw = hex::decode(&hash).unwrap();
    assert!(
        files_under(&data).iter().any(|(_, bytes)| contains(bytes, hash.as_bytes()) || contains(bytes, &hash_raw)),
        "the token's hash is stored nowhere in the data dir"
    );

    let server = Server::start(dir.path(), &data, &[]).await;
    assert_eq!(app_names(&http, &server, &token).await, ["web"]);
    let (status, stdout, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(tokens_in(&stdout).is_empty(), "a token was printed again on restart:\n{stdout}");
    assert_secret_not_stored(&data, &token);
}

#[tokio::test]
async fn migrate_creates_the_database_and_exits_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The port is taken for the whole run: a `migrate` that tried to serve could not bind it
    // and would fail; one that served elsewhere would never exit.
    let occupied = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port();
    let vars = [("AETHER_LISTEN", format!("127.0.0.1:{port}")), ("AETHER_DATA_DIR", path_string(&data))];
    let mut migrate = Proc::spawn(&["migrate"], dir.path(), &vars);
    let status = migrate.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", migrate.stderr());
    drop(occupied);

    let database = std::fs::read(data.join("aether.db")).expect("migrate creates the SQLite database");
    assert!(database.starts_with(b"SQLite format 3\0"));
    let files = files_under(&data);
    assert!(
        files.iter().any(|(_, bytes)| contains(bytes, b"_sqlx_migrations")),
        "no migration bookkeeping in {:?}",
        files.iter().map(|(path, _)| path).collect::<Vec<_>>()
    );
    assert!(tokens_in(&migrate.stdout()).is_empty(), "migrate printed a token:\n{}", migrate.stdout());

    // Serving the migrated database afterwards is a first start: the admin token comes now.
    let server = Server::start(dir.path(), &data, &[]).await;
    let (status, stdout, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert_eq!(tokens_in(&stdout).len(), 1, "{stdout}");
}

#[tokio::test]
async fn postgres_outage_turns_into_503_and_recovers_without_a_restart() {
    const TOKEN: &str = "pg-admin-token";
    let pg = TestPostgres::start().expect("PostgreSQL for this test");
    let url = pg.create_database("aether_binary").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = client();
    let vars = [("DATABASE_URL", url), ("AETHER_API_TOKENS", format!("{TOKEN}:admin"))];
    let server = Server::start(dir.path(), &data, &vars).await;

    let response = http.post(server.url("/apps")).bearer_auth(TOKEN).json(&json!({"name": "billing"})).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::CREATED);
    assert_eq!(http.get(server.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    assert!(!data.join("aether.db").exists(), "PostgreSQL mode created a SQLite database");

    pg.stop().unwrap();
    let mut flipped = false;
    for _ in 0..100 {
        let response = http.get(server.url("/readyz")).send().await.unwrap_or_else(|error| {
            panic!(
                "GET /readyz with PostgreSQL down gave no answer within {REQUEST_TIMEOUT:?} (timed out: {}): {error}",
                error.is_timeout()
            )
        });
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_envelope(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
            flipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(flipped, "/readyz stayed 200 with PostgreSQL down");
    let response = http.get(server.url("/apps")).bearer_auth(TOKEN).send().await.unwrap_or_else(|error| {
        panic!(
            "GET /apps with PostgreSQL down gave no answer within {REQUEST_TIMEOUT:?} (timed out: {}): {error}",
            error.is_timeout()
        )
    });
    assert_envelope(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;

    pg.resume().unwrap();
    let started = Instant::now();
    loop {
        let status = http.get(server.url("/readyz")).send().await.map(|r| r.status());
        if matches!(status, Ok(StatusCode::OK)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "/readyz did not recover: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app_names(&http, &server, TOKEN).await, ["billing"]);

    let (status, stdout, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(tokens_in(&stdout).is_empty(), "a token was generated although tokens are configured:\n{stdout}");
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish_then_exits_cleanly() {
    const TOKEN: &str = "upload-admin-token";
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 64;
    const SIGNAL_AFTER: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vars = [("AETHER_API_TOKENS", format!("{TOKEN}:admin"))];
    let server = Server::start(dir.path(), &data, &vars).await;

    let payload: Arc<Vec<u8>> = Arc::new((0..CHUNK * CHUNKS).map(|i| (i * 31 + i / 4093) as u8).collect());
    let digest = sha256_hex(&payload);
    let tmp_dir = data.join("artifacts").join("tmp");
    let pid = server.proc.child.id();
    let (signalled, upload_seen) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let body = {
        let (payload, tmp_dir) = (Arc::clone(&payload), tmp_dir.clone());
        let (signalled, upload_seen) = (Arc::clone(&signalled), Arc::clone(&upload_seen));
        futures_util::stream::unfold(0usize, move |index| {
            let (payload, tmp_dir) = (Arc::clone(&payload), tmp_dir.clone());
            let (signalled, upload_seen) = (Arc::clone(&signalled), Arc::clone(&upload_seen));
            async move {
                if index == CHUNKS {
                    return None;
                }
                if index == SIGNAL_AFTER {
                    // Signal only once the server is visibly writing this upload.
                    for _ in 0..200 {
                        if files_under(&tmp_dir).iter().any(|(_, bytes)| !bytes.is_empty()) {
                            upload_seen.store(true, Ordering::SeqCst);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
                    signalled.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
                let chunk = payload[index * CHUNK..(index + 1) * CHUNK].to_vec();
                Some((Ok::<_, std::io::Error>(chunk), index + 1))
            }
        })
    };
    let uploader = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap();
    let response = uploader
        .post(server.url("/artifacts"))
        .bearer_auth(TOKEN)
        .header("x-aether-artifact-digest", format!("sha256:{digest}"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("the upload in flight at SIGTERM gets its answer");
    assert!(signalled.load(Ordering::SeqCst), "SIGTERM was never sent");
    assert!(upload_seen.load(Ordering::SeqCst), "the upload never reached artifacts/tmp before SIGTERM");
    assert_eq!(response.status(), StatusCode::OK);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["digest"], digest.as_str(), "{uploaded}");

    let (status, _, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert_eq!(
        files_under(&tmp_dir).iter().map(|(path, _)| path.clone()).collect::<Vec<_>>(),
        Vec::<PathBuf>::new(),
        "temp files left behind"
    );
    assert!(
        files_under(&data.join("artifacts")).iter().any(|(_, bytes)| bytes.as_slice() == payload.as_slice()),
        "the uploaded bytes are not in the artifact store"
    );

    let server = Server::start(dir.path(), &data, &vars).await;
    let http = client();
    let response = http.head(server.url(&format!("/artifacts/sha256:{digest}"))).bearer_auth(TOKEN).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let size = response.headers().get("x-aether-artifact-size").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(size, Some(payload.len().to_string()));
    let (status, _, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
}

/// Opens a legacy upload of `declared` bytes on a raw connection and sends the first `sent`.
async fn start_raw_upload(server: &Server, token: &str, declared: usize, sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let digest = "0".repeat(64);
    let head = format!(
        "POST /artifacts HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         x-aether-artifact-digest: sha256:{digest}\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![7u8; sent]).await.unwrap();
    stream
}

#[tokio::test]
async fn an_upload_that_stops_sending_fails_after_the_idle_timeout_and_leaves_nothing() {
    use tokio::io::AsyncReadExt as _;
    const TOKEN: &str = "idle-admin-token";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vars = [("AETHER_API_TOKENS", format!("{TOKEN}:admin")), ("AETHER_BODY_IDLE_TIMEOUT_SECS", "1".to_owned())];
    let server = Server::start(dir.path(), &data, &vars).await;

    // A client that sends part of its body, then nothing, and keeps the connection open.
    let mut stream = start_raw_upload(&server, TOKEN, 1024 * 1024, 64 * 1024).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the stalled upload is still open after 30 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("within the designated timeout"), "the answer does not say why: {answer}");
    assert_eq!(files_under(&data.join("artifacts").join("tmp")), Vec::new(), "the stalled upload left a file");

    let (status, _, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
}

#[tokio::test]
async fn a_request_still_running_after_the_shutdown_grace_is_cut_off() {
    use tokio::io::AsyncWriteExt as _;
    const TOKEN: &str = "grace-admin-token";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vars = [("AETHER_API_TOKENS", format!("{TOKEN}:admin")), ("AETHER_SHUTDOWN_GRACE_SECS", "1".to_owned())];
    let mut server = Server::start(dir.path(), &data, &vars).await;

    // A client trickling its body never finishes; the server must not wait for it forever.
    let mut stream = start_raw_upload(&server, TOKEN, 1024 * 1024, 1).await;
    let trickle = tokio::spawn(async move {
        while stream.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // SIGTERM only once the server is visibly handling the upload (its temporary file exists):
    // a connection it has not accepted yet would just be closed.
    let tmp_dir = data.join("artifacts").join("tmp");
    for _ in 0..400 {
        if !files_under(&tmp_dir).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!files_under(&tmp_dir).is_empty(), "the upload never reached artifacts/tmp");
    server.proc.sigterm();
    let status = server.proc.wait_exit(Duration::from_secs(15)).await;
    trickle.abort();
    let stderr = server.proc.stderr();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("did not finish within the shutdown grace period"), "{stderr}");
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = path_string(&dir.path().join("data"));
    let listen = || "127.0.0.1:0".to_owned();
    let missing_cert = path_string(&dir.path().join("missing-cert.pem"));
    let missing_key = path_string(&dir.path().join("missing-key.pem"));
    let cases: [(Vars<'_>, &[&str]); 7] = [
        (&[("AETHER_LISTEN", "nonsense".into())], &["AETHER_LISTEN", "nonsense"]),
        (&[("AETHER_LISTEN", listen()), ("AETHER_API_TOKENS", "x:root".into())], &["AETHER_API_TOKENS", "root"]),
        (
            &[("AETHER_LISTEN", listen()), ("AETHER_TLS_CERT", "cert.pem".into())],
            &["AETHER_TLS_CERT", "AETHER_TLS_KEY"],
        ),
        (&[("AETHER_LISTEN", listen()), ("AETHER_TLS_KEY", "key.pem".into())], &["AETHER_TLS_CERT", "AETHER_TLS_KEY"]),
        (
            &[("AETHER_LISTEN", listen()), ("AETHER_TLS_CERT", missing_cert.clone()), ("AETHER_TLS_KEY", missing_key)],
            &["AETHER_TLS_CERT", &missing_cert],
        ),
        (
            &[("AETHER_LISTEN", listen()), ("AETHER_MAX_ARTIFACT_SIZE_BYTES", "big".into())],
            &["AETHER_MAX_ARTIFACT_SIZE_BYTES"],
        ),
        (&[("AETHER_LISTEN", listen()), ("AETHER_RUNTIME", "docker".into())], &["AETHER_RUNTIME", "docker"]),
    ];
    for (vars, expected) in cases {
        let mut vars = vars.to_vec();
        vars.push(("AETHER_DATA_DIR", data.clone()));
        let mut proc = Proc::spawn(&[], dir.path(), &vars);
        let status = proc.wait_exit(Duration::from_secs(20)).await;
        let stderr = proc.stderr();
        assert!(!status.success() && status.code().is_some(), "{vars:?}: {status}\n{stderr}");
        for word in expected {
            assert!(stderr.contains(word), "{vars:?}: stderr does not name {word}:\n{stderr}");
        }
    }
}

#[tokio::test]
async fn a_start_that_fails_does_not_use_up_the_one_time_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_var = ("AETHER_DATA_DIR", path_string(&data));
    let missing = |name: &str| path_string(&dir.path().join(name));
    let occupied = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = occupied.local_addr().unwrap().to_string();
    let failing: [Vars<'_>; 2] = [
        &[
            ("AETHER_LISTEN", "127.0.0.1:0".to_owned()),
            ("AETHER_TLS_CERT", missing("cert.pem")),
            ("AETHER_TLS_KEY", missing("key.pem")),
            data_var.clone(),
        ],
        &[("AETHER_LISTEN", busy.clone()), data_var.clone()],
    ];
    for vars in failing {
        let mut proc = Proc::spawn(&[], dir.path(), vars);
        let status = proc.wait_exit(Duration::from_secs(20)).await;
        assert!(!status.success(), "{vars:?}: {status}");
        assert!(
            tokens_in(&proc.stdout()).is_empty(),
            "{vars:?}: a start that failed ({}) printed the one-time admin token:\n{}",
            proc.stderr().trim(),
            proc.stdout()
        );
    }
    assert!(TcpListener::bind(&busy).is_err(), "the port stayed occupied");
    drop(occupied);

    // The first start that serves is the one that hands the admin token out.
    let server = Server::start(dir.path(), &data, &[]).await;
    let (status, stdout, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert_eq!(tokens_in(&stdout).len(), 1, "the first serving start printed no admin token:\n{stdout}");
}

/// Polls `GET /deployments/{id}` until it leaves `pending`/`deploying`; returns it.
async fn settled_deployment(http: &reqwest::Client, server: &Server, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let response = http.get(server.url(&format!("/deployments/{id}"))).bearer_auth(token).send().await.unwrap();
        let deployment: Value = response.json().await.unwrap();
        if !matches!(deployment["status"].as_str(), Some("pending" | "deploying")) {
            return deployment;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "deployment {id} never settled: {deployment}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `url` until it answers 200; returns the body.
async fn serving(http: &reqwest::Client, url: &str, server: &Server) -> String {
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status() == StatusCode::OK
        {
            return response.text().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{url} never served\nstderr:\n{}", server.proc.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn refuses(url: &str) -> bool {
    let port: u16 = url.rsplit_once(':').unwrap().1.parse().unwrap();
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[tokio::test]
async fn a_running_release_is_stopped_on_shutdown_and_restored_at_its_url_after_a_restart() {
    const TOKEN: &str = "runtime-admin-token";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vars = [("AETHER_API_TOKENS", format!("{TOKEN}:admin"))];
    let http = client();
    let server = Server::start(dir.path(), &data, &vars).await;

    let id = deploy_node_app(&http, &server, TOKEN, "restored").await;
    let deployment = settled_deployment(&http, &server, TOKEN, &id).await;
    assert_eq!(deployment["status"], "running", "{deployment}");
    let url = deployment["url"].as_str().unwrap().to_owned();
    assert_eq!(serving(&http, &url, &server).await, "restored production");

    // An open log stream must not hold the shutdown up.
    let follower = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut stream = follower.get(server.url("/apps/web/logs?follow=true")).bearer_auth(TOKEN).send().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("stdout: restored listening on"), "{first:?}");
    let (status, _, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(refuses(&url), "the release outlived the server");

    let server = Server::start(dir.path(), &data, &vars).await;
    assert_eq!(serving(&http, &url, &server).await, "restored production", "not restored at its recorded URL");
    let deployment = settled_deployment(&http, &server, TOKEN, &id).await;
    assert_eq!((deployment["status"].as_str(), deployment["url"].as_str()), (Some("running"), Some(url.as_str())));
    let response = http.get(server.url("/apps/web/logs")).bearer_auth(TOKEN).send().await.unwrap();
    let lines: Vec<String> = response.json().await.unwrap();
    assert!(lines.iter().any(|l| l.contains(&id[..8]) && l.contains("restored listening on")), "{lines:?}");
    let (status, _, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(refuses(&url), "the restored release outlived the server");
}

#[tokio::test]
async fn with_no_runtime_deployments_fail_and_logs_are_not_implemented() {
    const TOKEN: &str = "none-admin-token";
    let dir = tempfile::tempdir().unwrap();
    let vars = [("AETHER_API_TOKENS", format!("{TOKEN}:admin")), ("AETHER_RUNTIME", "none".to_owned())];
    let http = client();
    let server = Server::start(dir.path(), &dir.path().join("data"), &vars).await;
    let id = deploy_node_app(&http, &server, TOKEN, "never").await;
    let deployment = settled_deployment(&http, &server, TOKEN, &id).await;
    assert_eq!(deployment["status"], "failed", "{deployment}");
    assert!(deployment["failure_reason"].as_str().unwrap().contains("no runtime"), "{deployment}");
    for path in ["/apps/web/logs", "/apps/web/logs?follow=true"] {
        let response = http.get(server.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_envelope(response, StatusCode::NOT_IMPLEMENTED, "not_implemented").await;
    }
    let (status, _, stderr) = server.shut_down().await;
    assert!(status.success(), "{status}\n{stderr}");
}

/// Creates app `web`, uploads a Node app answering `greeting` and deploys it; returns the
/// deployment id.
async fn deploy_node_app(http: &reqwest::Client, server: &Server, token: &str, greeting: &str) -> String {
    let response = http.post(server.url("/apps")).bearer_auth(token).json(&json!({"name": "web"})).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::CREATED);
    let (bytes, digest) = node_app::pack_app(&node_app::server_js(greeting));
    let response = http
        .post(server.url("/artifacts?app_name=web"))
        .bearer_auth(token)
        .header("x-aether-artifact-digest", &digest)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json!({"app_name": "web", "digest": digest});
    let response = http.post(server.url("/deployments")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// The embedded database serves one replica: a second server on the same data directory is
/// refused at start, naming the directory, while the first keeps serving.
#[tokio::test]
async fn a_second_server_on_the_same_sqlite_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = ("AETHER_API_TOKEN", "one-replica-token".to_owned());
    let first = Server::start(dir.path(), &data, std::slice::from_ref(&token)).await;
    let vars = [("AETHER_LISTEN", "127.0.0.1:0".to_owned()), ("AETHER_DATA_DIR", path_string(&data)), token];
    let mut second = Proc::spawn(&[], dir.path(), &vars);
    let status = second.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "a second server started on the same SQLite database");
    let stderr = second.stderr();
    assert!(stderr.contains("another aether-server uses") && stderr.contains(&path_string(&data)), "{stderr}");
    let healthy = client().get(first.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
}

/// During an upgrade an older replica meets migrations newer than itself: it starts and serves
/// instead of refusing the database.
#[tokio::test]
async fn a_server_serves_on_a_database_migrated_by_a_newer_version() {
    let pg = TestPostgres::start().expect("PostgreSQL for this test");
    let url = pg.create_database("aether_newer").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vars = [("DATABASE_URL", url.clone()), ("AETHER_DATA_DIR", path_string(&dir.path().join("data")))];
    let mut migrate = Proc::spawn(&["migrate"], dir.path(), &vars);
    assert!(migrate.wait_exit(Duration::from_secs(60)).await.success(), "{}", migrate.stderr());
    // What a newer release's migration leaves behind: a version this binary does not know.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (99991231000001, 'from a newer release', now(), true, '\\x00'::bytea, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let token = ("AETHER_API_TOKEN", "older-replica".to_owned());
    let mut extra = vars.to_vec();
    extra.push(token);
    let server = Server::start(dir.path(), &dir.path().join("data"), &extra).await;
    let ready = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
