//! `aether-server fetch`, the real binary, against an HTTP server on 127.0.0.1 that serves
//! prepared bytes and misbehaves on cue: failing statuses, bodies cut short, silence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aether_core::digest::sha256_hex;
use aether_core::signing::SigningKey;
use aether_core::unpack::UnpackLimits;
use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{Builder, EntryType, Header};
use tempfile::TempDir;

#[path = "support/node_app.rs"]
mod node_app;

const BINARY: &str = env!("CARGO_BIN_EXE_aether-server");
/// Stands for the credentials a presigned URL carries in its path and query.
const SECRET: &str = "S3CR3T-PRESIGNED-CREDENTIAL";

// ---------------------------------------------------------------------------------------------
// A scripted HTTP server
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Reply {
    /// 200 with these bytes.
    Body(Arc<Vec<u8>>),
    /// Any status, with a body.
    Status(u16, &'static str, &'static str),
    /// 200 announcing the full length, then half of the bytes and a closed connection.
    CutShort(Arc<Vec<u8>>),
    /// Reads the request and never answers.
    Silent,
}

/// Answers the n-th request with the n-th reply of its script (the last one repeats).
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start(script: Vec<Reply>) -> Self {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counter, script) = (Arc::clone(&counter), Arc::clone(&script));
                std::thread::spawn(move || answer(stream, &counter, &script));
            }
        });
        Self { base, requests }
    }

    /// A presigned-looking URL: a token in the path, a signature in the query.
    fn url(&self) -> String {
        format!("{}/downloads/{SECRET}?X-Amz-Credential={SECRET}&X-Amz-Signature={SECRET}", self.base)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(mut stream: TcpStream, counter: &AtomicUsize, script: &[Reply]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
    }
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let head = |status: &str, length: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n").into_bytes()
    };
    let _ = match &script[n.min(script.len() - 1)] {
        Reply::Body(bytes) => stream.write_all(&[head("200 OK", bytes.len()), bytes.to_vec()].concat()),
        Reply::Status(code, reason, body) => {
            stream.write_all(&[head(&format!("{code} {reason}"), body.len()), body.as_bytes().to_vec()].concat())
        }
        Reply::CutShort(bytes) => {
            stream.write_all(&[head("200 OK", bytes.len()), bytes[..bytes.len() / 2].to_vec()].concat())
        }
        // Held open until the client gives up and closes it.
        Reply::Silent => reader.read_to_end(&mut Vec::new()).map(drop),
    };
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// A destination that exists and is empty, like the `emptyDir` mount point of a pod.
struct Fixture {
    parent: TempDir,
    dest: PathBuf,
    logs: TempDir,
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    termination_log: Option<String>,
}

impl Fixture {
    fn new() -> Self {
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("app");
        std::fs::create_dir(&dest).unwrap();
        Self { parent, dest, logs: tempfile::tempdir().unwrap() }
    }

    fn termination_log(&self) -> PathBuf {
        self.logs.path().join("termination-log")
    }

    fn fetch(&self, url: &str, sha256: &str, extra: &[&str]) -> Outcome {
        let dest = self.dest.to_str().unwrap();
        let mut args = vec!["fetch", "--url", url, "--sha256", sha256, "--dest", dest];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let mut command = Command::new(BINARY);
        command.args(args).env("AETHER_TERMINATION_LOG", self.termination_log());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.to_ascii_lowercase().ends_with("_proxy") || name == "RUST_LOG" {
                command.env_remove(name.as_ref());
            }
        }
        let output = command.output().expect("run aether-server fetch");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            termination_log: std::fs::read_to_string(self.termination_log()).ok(),
        }
    }

    fn dest_listing(&self) -> Vec<String> {
        listing(&self.dest)
    }

    /// Nothing was written next to the destination nor left inside it.
    fn assert_untouched(&self) {
        assert_eq!(listing(self.parent.path()), ["app"], "nothing may appear next to the destination");
        assert_eq!(self.dest_listing(), Vec::<String>::new(), "the destination must be left empty");
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

impl Outcome {
    fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert_eq!(self.termination_log, None, "a success writes no termination message");
        self.assert_no_secret();
    }

    /// Fails with `code`, and one line containing `fragment` on stderr and in the termination
    /// log; returns that line.
    fn assert_failure(&self, code: i32, fragment: &str) -> String {
        assert_eq!(self.code, Some(code), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        let last = self.stderr.lines().last().unwrap_or_default();
        let reason = last.strip_prefix("error: ").unwrap_or_else(|| panic!("no error line in:\n{}", self.stderr));
        eprintln!("exit {code}: {reason}");
        assert!(reason.contains(fragment), "{fragment:?} not in {reason:?}");
        assert_eq!(self.termination_log.as_deref(), Some(format!("{reason}\n").as_str()));
        self.assert_no_secret();
        reason.to_owned()
    }

    fn assert_no_secret(&self) {
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(!text.contains(SECRET), "the URL's credentials leaked into {name}:\n{text}");
        }
        assert!(!self.termination_log.as_deref().unwrap_or_default().contains(SECRET));
    }
}

/// Serves `script`, and fetches from it into a fresh fixture.
fn fetch_from(script: Vec<Reply>, sha256: &str, extra: &[&str]) -> (Fixture, Server, Outcome) {
    let server = Server::start(script);
    let fx = Fixture::new();
    let outcome = fx.fetch(&server.url(), sha256, extra);
    (fx, server, outcome)
}

fn app() -> (Vec<u8>, String) {
    node_app::pack_app(&node_app::server_js("v1"))
}

fn assert_app_installed(dest: &Path) {
    assert_eq!(listing(dest), ["package.json", "server.js"]);
    assert_eq!(std::fs::read_to_string(dest.join("server.js")).unwrap(), node_app::server_js("v1"));
}

// ---------------------------------------------------------------------------------------------
// Honest artifacts
// ---------------------------------------------------------------------------------------------

#[test]
fn a_good_artifact_is_unpacked_into_the_existing_destination_itself() {
    let (bytes, digest) = app();
    let server = Server::start(vec![Reply::Body(Arc::new(bytes))]);
    let fx = Fixture::new();
    // A mount point cannot be renamed over: the directory itself must stay the same one.
    let inode = std::fs::metadata(&fx.dest).unwrap().ino();
    let outcome = fx.fetch(&server.url(), &digest, &[]);
    outcome.assert_success();
    assert_app_installed(&fx.dest);
    assert_eq!(std::fs::metadata(&fx.dest).unwrap().ino(), inode);
    assert_eq!(listing(fx.parent.path()), ["app"]);
    assert!(outcome.stdout.contains(&digest), "{}", outcome.stdout);
    assert_eq!(server.requests(), 1);
}

#[test]
fn a_signature_by_one_of_several_keys_is_accepted_and_a_missing_destination_created() {
    let (bytes, digest) = app();
    let server = Server::start(vec![Reply::Body(Arc::new(bytes))]);
    let fx = Fixture::new();
    std::fs::remove_dir(&fx.dest).unwrap();
    let (retired, active) = (SigningKey::from_seed([1; 32]), SigningKey::from_seed([2; 32]));
    let signature = active.sign_digest(&digest);
    let keys = [retired.public_key_hex(), active.public_key_hex()];
    let args = ["--signature", &signature, "--public-key", &keys[0], "--public-key", &keys[1]];
    fx.fetch(&server.url(), &digest, &args).assert_success();
    assert_app_installed(&fx.dest);
}

#[test]
fn contents_are_replaced_only_when_asked() {
    let (bytes, digest) = app();
    let server = Server::start(vec![Reply::Body(Arc::new(bytes))]);
    let fx = Fixture::new();
    std::fs::write(fx.dest.join("previous.js"), "the last release").unwrap();
    let reason = fx.fetch(&server.url(), &digest, &[]).assert_failure(1, "is not empty; pass --replace");
    assert!(reason.contains(fx.dest.to_str().unwrap()), "{reason}");
    assert_eq!(fx.dest_listing(), ["previous.js"]);
    assert_eq!(server.requests(), 0, "refused before downloading");

    std::fs::remove_file(fx.termination_log()).unwrap();
    fx.fetch(&server.url(), &digest, &["--replace"]).assert_success();
    assert_app_installed(&fx.dest);
}

#[test]
fn a_killed_fetch_leaves_nothing_that_blocks_the_next_one() {
    let (bytes, digest) = app();
    let server = Server::start(vec![Reply::Body(Arc::new(bytes))]);
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.dest.join(".aether-fetch-Xy12ab/release")).unwrap();
    std::fs::write(fx.dest.join(".aether-fetch-Xy12ab/artifact.tar.gz"), "partial").unwrap();
    fx.fetch(&server.url(), &digest, &[]).assert_success();
    assert_app_installed(&fx.dest);
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

#[test]
fn corrupt_bytes_fail_the_digest_check_and_leave_the_destination_empty() {
    let (mut bytes, digest) = app();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let actual = sha256_hex(&bytes);
    let (fx, server, outcome) = fetch_from(vec![Reply::Body(Arc::new(bytes))], &digest, &[]);
    outcome.assert_failure(4, &format!("digest mismatch: expected {digest}, got {actual}"));
    fx.assert_untouched();
    assert_eq!(server.requests(), 1, "complete but wrong bytes are not retried");
}

#[test]
fn a_signature_by_an_unknown_key_is_rejected_before_downloading() {
    let (bytes, digest) = app();
    let signature = SigningKey::from_seed([1; 32]).sign_digest(&digest);
    let other = SigningKey::from_seed([2; 32]).public_key_hex();
    let args = ["--signature", &signature, "--public-key", &other];
    let (fx, server, outcome) = fetch_from(vec![Reply::Body(Arc::new(bytes))], &digest, &args);
    outcome.assert_failure(4, "signature rejected: it does not verify against any of the 1 given public key");
    fx.assert_untouched();
    assert_eq!(server.requests(), 0);
}

#[test]
fn a_signature_of_another_digest_is_rejected() {
    let (bytes, digest) = app();
    let key = SigningKey::from_seed([1; 32]);
    let signature = key.sign_digest(&sha256_hex(b"some other artifact"));
    let args = ["--signature", &signature, "--public-key", &key.public_key_hex()];
    let (fx, _, outcome) = fetch_from(vec![Reply::Body(Arc::new(bytes))], &digest, &args);
    outcome.assert_failure(4, "signature rejected");
    fx.assert_untouched();
}

#[test]
fn a_signature_and_keys_only_come_together() {
    let (bytes, digest) = app();
    let server = Server::start(vec![Reply::Body(Arc::new(bytes))]);
    let fx = Fixture::new();
    let key = SigningKey::from_seed([1; 32]);
    let signature = key.sign_digest(&digest);
    fx.fetch(&server.url(), &digest, &["--signature", &signature]).assert_failure(2, "needs at least one --public-key");
    fx.fetch(&server.url(), &digest, &["--public-key", &key.public_key_hex()])
        .assert_failure(2, "--public-key given without --signature");
    fx.assert_untouched();
    assert_eq!(server.requests(), 0);
}

#[test]
fn unparsable_arguments_still_leave_a_termination_message() {
    let fx = Fixture::new();
    let outcome = fx.run(&["fetch", "--url", "http://127.0.0.1:9/x"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    let message = outcome.termination_log.unwrap();
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("--sha256") && message.contains("--dest"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[test]
fn transient_503s_are_retried_until_the_artifact_arrives() {
    let (bytes, digest) = app();
    let unavailable = Reply::Status(503, "Service Unavailable", "");
    let (fx, server, outcome) =
        fetch_from(vec![unavailable.clone(), unavailable, Reply::Body(Arc::new(bytes))], &digest, &[]);
    outcome.assert_success();
    assert_app_installed(&fx.dest);
    assert_eq!(server.requests(), 3);
    assert!(outcome.stderr.contains("download attempt failed"), "{}", outcome.stderr);
}

#[test]
fn a_body_cut_short_is_downloaded_again() {
    let (bytes, digest) = app();
    let bytes = Arc::new(bytes);
    let (fx, server, outcome) = fetch_from(vec![Reply::CutShort(Arc::clone(&bytes)), Reply::Body(bytes)], &digest, &[]);
    outcome.assert_success();
    assert_app_installed(&fx.dest);
    assert_eq!(server.requests(), 2);
    assert!(outcome.stderr.contains("broke off after"), "{}", outcome.stderr);
}

#[test]
fn transient_errors_give_up_after_the_last_attempt() {
    let (bytes, digest) = app();
    let server = Server::start(vec![Reply::Status(503, "Service Unavailable", "")]);
    let fx = Fixture::new();
    let reason = fx.fetch(&server.url(), &digest, &["--attempts", "3"]).assert_failure(
        3,
        &format!("download failed after 3 attempts: HTTP 503 Service Unavailable from {}", server.base),
    );
    assert!(!reason.contains("/downloads"), "only the origin is shown: {reason}");
    assert_eq!(server.requests(), 3);
    fx.assert_untouched();

    let server = Server::start(vec![Reply::CutShort(Arc::new(bytes))]);
    fx.fetch(&server.url(), &digest, &["--attempts", "2"]).assert_failure(3, "after 2 attempts: the answer from");
    assert_eq!(server.requests(), 2);
    fx.assert_untouched();
}

#[test]
fn a_server_that_never_answers_times_out_each_attempt() {
    let (_, digest) = app();
    let (fx, server, outcome) = fetch_from(vec![Reply::Silent], &digest, &["--attempts", "2", "--timeout", "1"]);
    let reason = outcome.assert_failure(3, "download failed after 2 attempts");
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(server.requests(), 2);
    fx.assert_untouched();
}

#[test]
fn not_found_fails_at_once() {
    let (_, digest) = app();
    let body = r#"{"code":"not_found","message":"no such artifact"}"#;
    let (fx, server, outcome) = fetch_from(vec![Reply::Status(404, "Not Found", body)], &digest, &[]);
    outcome.assert_failure(3, "download refused: HTTP 404 Not Found from http://127.0.0.1:");
    outcome.assert_failure(3, "not_found: no such artifact");
    assert_eq!(server.requests(), 1);
    fx.assert_untouched();
}

#[test]
fn an_expired_url_fails_at_once_with_the_stores_reason() {
    let (_, digest) = app();
    let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message>\
        <X-Amz-Expires>60</X-Amz-Expires></Error>";
    let (fx, server, outcome) = fetch_from(vec![Reply::Status(403, "Forbidden", body)], &digest, &[]);
    outcome.assert_failure(3, "403 Forbidden from http://127.0.0.1:");
    assert!(fx.termination_log().exists());
    let message = std::fs::read_to_string(fx.termination_log()).unwrap();
    assert!(message.ends_with(": AccessDenied: Request has expired\n"), "{message}");
    assert_eq!(server.requests(), 1);
    fx.assert_untouched();
}

// ---------------------------------------------------------------------------------------------
// Hostile archives (the cases of aether-core/tests/unpack_hostile.rs, through the fetcher)
// ---------------------------------------------------------------------------------------------

fn targz(build: impl FnOnce(&mut Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = Builder::new(Vec::new());
    build(&mut builder);
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&builder.into_inner().unwrap()).unwrap();
    encoder.finish().unwrap()
}

fn header(kind: EntryType, size: u64, mode: u32) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header
}

fn add_file(builder: &mut Builder<Vec<u8>>, path: &str, body: &[u8]) {
    builder.append_data(&mut header(EntryType::Regular, body.len() as u64, 0o644), path, body).unwrap();
}

/// Writes the name verbatim, past the checks `set_path` applies to `..` and `/`.
fn add_raw(builder: &mut Builder<Vec<u8>>, name: &[u8], body: &[u8]) {
    let mut header = header(EntryType::Regular, body.len() as u64, 0o644);
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, body).unwrap();
}

/// The archive matches its digest, so it is the unpacker that must refuse it.
fn assert_archive_refused(archive: Vec<u8>, fragment: &str) {
    let digest = sha256_hex(&archive);
    let (fx, _, outcome) = fetch_from(vec![Reply::Body(Arc::new(archive))], &digest, &[]);
    outcome.assert_failure(5, &format!("archive refused: {fragment}"));
    fx.assert_untouched();
}

#[test]
fn path_traversal_is_refused() {
    let archive = targz(|b| {
        // Accepted entries before the bad one must not stay behind either.
        add_file(b, "package.json", b"{}");
        add_raw(b, b"../escaped.txt", b"outside");
    });
    assert_archive_refused(archive, "entry \"../escaped.txt\" contains a `..` component");
}

#[test]
fn absolute_paths_are_refused() {
    let archive = targz(|b| add_raw(b, b"/tmp/aether-fetcher-absolute.txt", b"owned"));
    assert_archive_refused(archive, "entry \"/tmp/aether-fetcher-absolute.txt\" has an absolute path");
    assert!(!Path::new("/tmp/aether-fetcher-absolute.txt").exists());
}

#[test]
fn symlinks_escaping_the_release_are_refused() {
    let archive = targz(|b| {
        let mut link = header(EntryType::Symlink, 0, 0o777);
        b.append_link(&mut link, "a/link", "../../..").unwrap();
        add_file(b, "a/link/escaped.txt", b"through the link");
    });
    assert_archive_refused(archive, "symlink \"a/link\" points outside the release");
}

#[test]
fn device_files_are_refused() {
    let archive = targz(|b| {
        let mut device = header(EntryType::Char, 0, 0o666);
        device.set_device_major(1).unwrap();
        device.set_device_minor(3).unwrap();
        b.append_data(&mut device, "dev/null", std::io::empty()).unwrap();
    });
    assert_archive_refused(archive, "entry \"dev/null\" is a character device");
}

#[test]
fn too_many_entries_are_refused() {
    let limit = UnpackLimits::default().max_entries;
    // The same directory over and over: cheap to unpack, yet every entry counts.
    let archive = targz(|b| {
        for _ in 0..=limit {
            b.append_data(&mut header(EntryType::Directory, 0, 0o755), "d/", std::io::empty()).unwrap();
        }
    });
    assert_archive_refused(archive, &format!("archive has more than {limit} entries"));
}

#[test]
fn a_gzip_stream_that_is_not_an_archive_is_refused() {
    assert_archive_refused(b"not gzip at all".to_vec(), "archive is corrupt or truncated");
}

// ---------------------------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------------------------

#[test]
fn help_names_every_command_and_fetch_flag() {
    let fx = Fixture::new();
    let top = fx.run(&["--help"]);
    assert_eq!(top.code, Some(0));
    for word in ["migrate", "fetch", "AETHER_"] {
        assert!(top.stdout.contains(word), "{word} missing from:\n{}", top.stdout);
    }
    let fetch = fx.run(&["fetch", "--help"]);
    assert_eq!(fetch.code, Some(0));
    for flag in ["--url", "--sha256", "--dest", "--signature", "--public-key", "--replace", "--attempts", "--timeout"] {
        assert!(fetch.stdout.contains(flag), "{flag} missing from:\n{}", fetch.stdout);
    }
    assert!(fetch.stdout.contains("Exit codes"), "{}", fetch.stdout);
    assert!(!fetch.stdout.contains("--termination-log"), "the test-only flag is hidden");
}
