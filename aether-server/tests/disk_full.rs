#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real server with its data directory on a small tmpfs that the test fills: an upload
//! that does not fit is refused with an error envelope (507 `insufficient_storage`),
//! nothing of it is registered, and once space is freed the same upload succeeds, without a
//! restart. Needs permission to mount (root); skipped, saying so, without it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use aether_core::digest::sha256_hex;
use aether_server::testing::process::ServerProcess;
use serde_json::{Value, json};

const TOKEN: &str = "disk-admin";
const MOUNT_BYTES: usize = 48 * 1024 * 1024;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={MOUNT_BYTES}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the server may still hold files open if the test failed before stopping it.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the disk completely, then frees `leave` bytes, so small writes (the database's)
/// still fit and large ones do not.
fn fill(path: &Path, leave: u64) -> PathBuf {
    let filler = path.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0xa5u8; 1024 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let size = file.metadata().unwrap().len();
    file.set_len(size.saturating_sub(leave)).unwrap();
    filler
}

async fn call(http: &reqwest::Client, server: &ServerProcess, path: &str, body: Value) -> (u16, Value) {
    let response = http.post(format!("{}{path}", server.url)).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Presign, PUT, complete; returns the PUT's and the completion's answers.
async fn upload(http: &reqwest::Client, server: &ServerProcess, bytes: &[u8]) -> ((u16, Value), (u16, Value)) {
    let declared = json!({ "app_name": "web", "digest": sha256_hex(bytes), "size_bytes": bytes.len() });
    let (status, presign) = call(http, server, "/artifacts/presign", declared).await;
    assert_eq!(status, 200, "{presign}");
    let put = http.put(presign["upload_url"].as_str().unwrap()).body(bytes.to_vec()).send().await.unwrap();
    let put = (put.status().as_u16(), put.json().await.unwrap_or(Value::Null));
    let body = json!({ "app_name": "web", "digest": sha256_hex(bytes), "size_bytes": bytes.len(), "upload_id": presign["upload_id"] });
    (put, call(http, server, "/artifacts/complete", body).await)
}

#[tokio::test]
async fn an_upload_that_does_not_fit_is_refused_and_fits_once_space_is_freed() {
    let disk = match SmallDisk::mount() {
        Ok(disk) => disk,
        Err(reason) => {
            println!("skipped: cannot mount a size-limited tmpfs for the data directory ({reason})");
            return;
        }
    };
    let vars = [
        ("AETHER_DATA_DIR", disk.path().display().to_string()),
        ("AETHER_API_TOKENS", format!("{TOKEN}:admin")),
        ("AETHER_RUNTIME", "none".to_owned()),
    ]
    .map(|(name, value)| (name.to_owned(), value));
    let mut server = ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_aether-server")), &vars);
    let http = reqwest::Client::new();
    assert_eq!(call(&http, &server, "/apps", json!({ "name": "web" })).await.0, 201);

    let filler = fill(disk.path(), 2 * 1024 * 1024);
    let bytes: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let ((put_status, put), (complete_status, completed)) = upload(&http, &server, &bytes).await;
    println!("PUT on a full disk answered {put_status} {put}; complete answered {complete_status} {completed}");
    assert_eq!(put_status, 507, "{put}\n{}", server.log());
    assert_eq!(put["code"], "insufficient_storage", "an error envelope: {put}");
    assert!(complete_status >= 400, "nothing to complete: {complete_status} {completed}");
    let head = http.head(format!("{}/artifacts/{}", server.url, sha256_hex(&bytes))).bearer_auth(TOKEN).send();
    assert_eq!(head.await.unwrap().status(), 404, "nothing half-registered");

    std::fs::remove_file(filler).unwrap();
    let ((put_status, _), (complete_status, completed)) = upload(&http, &server, &bytes).await;
    assert_eq!((put_status, complete_status), (200, 200), "{completed}");
    let head = http.head(format!("{}/artifacts/{}", server.url, sha256_hex(&bytes))).bearer_auth(TOKEN).send();
    assert_eq!(head.await.unwrap().status(), 200);
    server.terminate();
}
