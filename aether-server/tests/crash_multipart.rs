#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real server killed (SIGKILL) during a multipart upload: between its parts, while
//! `multipart/complete` assembles the parts, and right after the assembled object is published,
//! where the artifact is registered and retention deletes older ones. Whatever the point, after
//! a restart nothing stays pending or deploying, no artifact row lacks its blob, no app process
//! is left behind, and uploads and deploys work again.
//!
//! A kill "during" a step is aimed at a file that appears when the step starts; a step that is
//! over before the kill lands is tested as "just after" instead, and the test says which.

#[path = "support/black_box.rs"]
mod black_box;
#[path = "support/node_app.rs"]
mod node_app;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_core::digest::sha256_hex;
use aether_server::testing::process::ServerProcess;
use black_box::{APP, PATIENCE, Site};
use serde_json::{Value, json};

const PART_BYTES: usize = 16 * 1024 * 1024;

/// Bytes that do not repeat within a part, so no layer could shortcut them.
fn artifact(parts: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed) + 1;
    (0..parts * PART_BYTES)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// `multipart/init`; returns the upload id.
async fn init(site: &Site, server: &ServerProcess, bytes: &[u8]) -> String {
    let body = json!({ "app_name": APP, "digest": sha256_hex(bytes), "size_bytes": bytes.len() });
    let (status, init) = site.call(server, reqwest::Method::POST, "/artifacts/multipart/init", Some(body)).await;
    assert_eq!(status, 200, "{init}");
    init["upload_id"].as_str().unwrap().to_owned()
}

/// Presigns and PUTs part `number` (1-based) of `bytes`; returns its ETag.
async fn put_part(site: &Site, server: &ServerProcess, bytes: &[u8], upload_id: &str, number: usize) -> String {
    let body = json!({ "app_name": APP, "digest": sha256_hex(bytes), "upload_id": upload_id, "part_number": number });
    let (status, presigned) =
        site.call(server, reqwest::Method::POST, "/artifacts/multipart/presign-part", Some(body)).await;
    assert_eq!(status, 200, "{presigned}");
    let part = bytes[(number - 1) * PART_BYTES..(number * PART_BYTES).min(bytes.len())].to_vec();
    let put = site.http.put(presigned["url"].as_str().unwrap()).body(part).send().await.unwrap();
    assert_eq!(put.status(), 200);
    put.headers()["etag"].to_str().unwrap().to_owned()
}

fn complete_body(bytes: &[u8], upload_id: &str, etags: &[String]) -> Value {
    let parts: Vec<Value> =
        etags.iter().enumerate().map(|(i, etag)| json!({ "part_number": i + 1, "etag": etag })).collect();
    json!({ "app_name": APP, "digest": sha256_hex(bytes), "size_bytes": bytes.len(), "upload_id": upload_id, "parts": parts })
}

async fn head(site: &Site, server: &ServerProcess, digest: &str) -> u16 {
    let url = format!("{}/artifacts/{digest}", server.url);
    site.http.head(url).bearer_auth(black_box::TOKEN).send().await.unwrap().status().as_u16()
}

/// Starts `multipart/complete` and kills the server once `appeared` holds for a file of the
/// data directory, or once the request is answered, whichever comes first; returns whether
/// the kill cut the request off.
async fn kill_when(site: &Site, server: &mut ServerProcess, body: Value, appeared: impl Fn(&Path) -> bool) -> bool {
    let request = site.http.post(format!("{}/artifacts/multipart/complete", server.url)).bearer_auth(black_box::TOKEN);
    let completing = tokio::spawn(request.json(&body).send());
    let data: PathBuf = site.data().to_path_buf();
    let deadline = Instant::now() + PATIENCE;
    // A tight poll on its own thread: the window is milliseconds wide.
    while !appeared(&data) && !completing.is_finished() {
        assert!(Instant::now() < deadline, "the completion neither started nor ended");
        std::thread::sleep(Duration::from_micros(200));
    }
    let in_flight = !completing.is_finished();
    server.kill();
    let answer = completing.await.unwrap();
    // An answer may still slip out between the check and the kill: that counts as "after".
    assert!(in_flight || answer.is_ok(), "answered before the kill, yet failed: {answer:?}");
    answer.is_err()
}

fn any_entry(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_parts_the_upload_completes_after_the_restart() {
    let site = Site::new(&[]);
    let mut server = site.start();
    site.create_app(&server).await;
    let bytes = artifact(2, 1);
    let upload_id = init(&site, &server, &bytes).await;
    let first = put_part(&site, &server, &bytes, &upload_id, 1).await;
    server.kill();

    let server = site.start();
    assert_eq!(head(&site, &server, &sha256_hex(&bytes)).await, 404, "half an upload is not an artifact");
    let second = put_part(&site, &server, &bytes, &upload_id, 2).await;
    let body = complete_body(&bytes, &upload_id, &[first, second]);
    let (status, done) = site.call(&server, reqwest::Method::POST, "/artifacts/multipart/complete", Some(body)).await;
    assert_eq!(status, 200, "the upload survives the crash: {done}");
    assert_eq!(head(&site, &server, &sha256_hex(&bytes)).await, 200);
    site.assert_recovered(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_multipart_complete_assembles_nothing_half_registered() {
    let site = Site::new(&[]);
    let mut server = site.start();
    site.create_app(&server).await;
    let bytes = artifact(3, 2);
    let upload_id = init(&site, &server, &bytes).await;
    let mut etags = Vec::new();
    for number in 1..=3 {
        etags.push(put_part(&site, &server, &bytes, &upload_id, number).await);
    }
    let body = complete_body(&bytes, &upload_id, &etags);
    // The assembly writes to a temporary file first.
    let during = kill_when(&site, &mut server, body.clone(), |data| any_entry(&data.join("artifacts/tmp"))).await;
    println!("killed {} the assembly", if during { "during" } else { "after" });

    let server = site.start();
    let stored = head(&site, &server, &sha256_hex(&bytes)).await;
    assert!(stored == 404 || (stored == 200 && !during), "HEAD answered {stored}");
    site.assert_recovered(&server).await;
    // The client's retry of the same completion: it registers the artifact, or (when the parts
    // were already assembled and removed) is refused with an envelope, never a server error.
    let (status, retry) = site.call(&server, reqwest::Method::POST, "/artifacts/multipart/complete", Some(body)).await;
    println!("the retried completion answered {status}: {retry}");
    assert!(status == 200 || (400..500).contains(&status), "{status} {retry}");
    assert!(retry["code"].is_string() || status == 200, "{retry}");
    if status != 200 {
        site.upload(&server, &bytes).await;
    }
    assert_eq!(head(&site, &server, &sha256_hex(&bytes)).await, 200, "the artifact can be stored after all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_as_the_object_is_published_and_retention_runs_no_row_lacks_its_blob() {
    let site = Site::new(&[("AETHER_RETAIN_LATEST_PER_APP", "1")]);
    let mut server = site.start();
    site.create_app(&server).await;
    let older = site.upload(&server, b"an older artifact that retention removes").await;
    let bytes = artifact(2, 3);
    let upload_id = init(&site, &server, &bytes).await;
    let etags =
        [put_part(&site, &server, &bytes, &upload_id, 1).await, put_part(&site, &server, &bytes, &upload_id, 2).await];
    let body = complete_body(&bytes, &upload_id, &etags);
    // Published by a rename; the row, then retention, follow.
    let object = site.blob_path(&format!("artifacts/sha256/{}.tar.gz", sha256_hex(&bytes)));
    let during = kill_when(&site, &mut server, body, |_| object.exists()).await;
    println!("killed {} registration and retention", if during { "before the end of" } else { "after" });

    let server = site.start();
    site.assert_recovered(&server).await;
    // Retention ran again for the deploy above: only the newest artifact is left, with its blob.
    let (_, listed) = site.call(&server, reqwest::Method::GET, "/artifacts", None).await;
    let digests: Vec<&str> = listed["items"].as_array().unwrap().iter().filter_map(|a| a["digest"].as_str()).collect();
    assert!(!digests.contains(&older.as_str()), "{listed}");
}
