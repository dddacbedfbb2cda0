#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The artifact-store conformance suite on the local store, then what only the local store
//! does (its presigned-URL tokens, its records, its temp-file collection).

mod conformance;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aether_server::artifacts::LocalArtifactStore;
use aether_server::artifacts::presign::{self, Grant, PresignClaim};
use aether_server::ports::{ArtifactStore, BlobError, PresignedRequest, StagedUpload};
use conformance::{EXPIRY, PresignedClient, Sent, Target, new_id, pattern, sha256_hex};

const BASE_URL: &str = "http://aether.test";
const SECRET: [u8; 32] = [42; 32];
const MAX: u64 = 1 << 20;
/// Small parts keep the local cases fast while still spanning several read buffers.
const PART_SIZE: usize = 70_000;

/// A store in a fresh temp dir, which lives as long as the returned guard.
fn local() -> (tempfile::TempDir, LocalArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    // A missing root must be created by the store.
    let store = LocalArtifactStore::new(dir.path().join("blobs"), format!("{BASE_URL}/"), SECRET).unwrap();
    (dir, store)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Hands presigned requests straight to the store, as the upload and download routes do.
struct Direct<'a>(&'a LocalArtifactStore);

impl PresignedClient for Direct<'_> {
    async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> Sent {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.headers, [("content-type".to_owned(), "application/octet-stream".to_owned())]);
        let token = request.url.strip_prefix(&format!("{BASE_URL}/uploads/")).expect("an upload URL of this server");
        let (_, etag) = self.0.accept_upload_at(token, now(), &mut &body[..], MAX).await.map_err(|e| e.to_string())?;
        Ok(etag)
    }

    async fn fetch(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        use tokio::io::AsyncReadExt as _;
        let token = request.url.strip_prefix(&format!("{BASE_URL}/downloads/")).expect("a download URL");
        let (size, mut reader) = self.0.serve_download_at(token, now()).await.map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(bytes.len() as u64, size);
        Ok(bytes)
    }
}

/// Every regular file below `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let paths = entries.map(|entry| entry.unwrap().path());
    paths.flat_map(|path| if path.is_dir() { files_under(&path) } else { vec![path] }).collect()
}

/// No blob, staging area or temp file is left.
fn assert_no_leftovers(store: &LocalArtifactStore) {
    for dir in ["objects", "tmp"] {
        assert_eq!(files_under(&store.root().join(dir)), Vec::<PathBuf>::new(), "{dir}");
    }
    let staging: Vec<_> = std::fs::read_dir(store.root().join("staging")).unwrap().collect();
    assert!(staging.is_empty(), "staging areas left: {staging:?}");
}

fn token_of(request: &PresignedRequest) -> String {
    request.url.rsplit_once('/').unwrap().1.to_owned()
}

/// Each contract case on a fresh local store, which must then hold no stray files.
macro_rules! local_cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let (_dir, store) = local();
            let client = Direct(&store);
            conformance::$case(&Target { store: &store, client: &client, prefix: "c", part_size: PART_SIZE }).await;
            assert_no_leftovers(&store);
        }
    )*};
}

local_cases! {
    staged_round_trip, wrong_bytes_are_refused, reused_urls_write_nothing, direct_put, invalid_keys_rejected,
    multipart_out_of_order, multipart_rejects_bad_parts, multipart_discard,
}

/// The whole contract again, over real HTTP through minimal upload and download routes.
#[tokio::test]
async fn presigned_requests_over_http() {
    use axum::extract::{Path as UrlPath, State};
    use axum::response::{IntoResponse, Response};
    use futures_util::TryStreamExt as _;

    type Shared = State<Arc<LocalArtifactStore>>;
    async fn upload(State(store): Shared, UrlPath(token): UrlPath<String>, body: axum::body::Body) -> Response {
        let mut reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
        match ArtifactStore::accept_upload(store.as_ref(), &token, &mut reader, MAX).await {
            Ok((_, etag)) => (etag.map(|etag| [("etag", etag)]), "").into_response(),
            Err(err) => (axum::http::StatusCode::BAD_REQUEST, err.to_string()).into_response(),
        }
    }
    async fn download(State(store): Shared, UrlPath(token): UrlPath<String>) -> Response {
        match ArtifactStore::serve_download(store.as_ref(), &token).await {
            Ok((_, reader)) => axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader)).into_response(),
            Err(err) => (axum::http::StatusCode::NOT_FOUND, err.to_string()).into_response(),
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let store = Arc::new(LocalArtifactStore::new(dir.path().to_owned(), base_url, SECRET).unwrap());
    let app = axum::Router::new()
        .route("/uploads/{token}", axum::routing::put(upload))
        .route("/downloads/{token}", axum::routing::get(download))
        .with_state(Arc::clone(&store));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = conformance::HttpClient::default();
    conformance::run_all(&Target { store: store.as_ref(), client: &client, prefix: "http", part_size: PART_SIZE })
        .await;
    assert_no_leftovers(&store);

    // A tampered token is refused by the route.
    let id = new_id();
    let upload = StagedUpload { id: &id, size_bytes: 1, sha256: &sha256_hex(b"x") };
    let mut request = store.presign_upload(&upload, EXPIRY).await.unwrap();
    request.url.push('A');
    let err = client.send(&request, b"x".to_vec()).await.unwrap_err();
    assert!(err.starts_with("400"), "{err}");
    server.abort();
}

#[tokio::test]
async fn upload_tokens_reject_expiry_tampering_and_other_grants() {
    let (_dir, store) = local();
    let id = new_id();
    let digest = sha256_hex(b"bytes");
    let upload = StagedUpload { id: &id, size_bytes: 5, sha256: &digest };
    let token = token_of(&store.presign_upload(&upload, Duration::from_secs(60)).await.unwrap());
    let expect_invalid = async |token: &str, now: u64, needle: &str| {
        let err = store.accept_upload_at(token, now, &mut &b"bytes"[..], MAX).await.unwrap_err();
        assert!(matches!(&err, BlobError::Denied(m) if m.contains(needle)), "{err:?}");
    };
    expect_invalid(&token, now() + 3600, "expired").await;
    let (claim, mac) = token.split_once('.').unwrap();
    // Changes one character of the claim or of the MAC.
    let flip = |s: &str| format!("{}{}{}", &s[..2], if &s[2..3] == "A" { "B" } else { "A" }, &s[3..]);
    expect_invalid(&format!("{claim}.{}", flip(mac)), now(), "signature").await;
    expect_invalid(&format!("{}.{mac}", flip(claim)), now(), "signature").await;
    let foreign = PresignClaim {
        grant: Grant::Upload { upload_id: id.clone(), size_bytes: 5, sha256: digest.clone() },
        expires_at_unix_s: now() + 60,
    };
    expect_invalid(&presign::sign(&foreign, &[1; 32]), now(), "signature").await;
    expect_invalid("not-a-token", now(), "malformed").await;
    // A download token cannot upload, an upload token cannot download.
    let download = token_of(&store.presign_get("k", EXPIRY).await.unwrap());
    expect_invalid(&download, now(), "downloading").await;
    assert!(matches!(store.serve_download_at(&token, now()).await, Err(BlobError::Denied(_))));
    // Correctly signed, but naming no staging area of this store.
    let escaping = PresignClaim {
        grant: Grant::Part { upload_id: "../objects".to_owned(), part_number: 1 },
        expires_at_unix_s: now() + 60,
    };
    let err = store.accept_upload_at(&presign::sign(&escaping, &SECRET), now(), &mut &b"bytes"[..], MAX).await;
    assert!(matches!(&err, Err(BlobError::Invalid(m)) if m.contains("malformed upload id")), "{err:?}");
    store.discard(&id, None).await.unwrap();
    assert_no_leftovers(&store);
}

#[tokio::test]
async fn download_tokens_expire() {
    let (_dir, store) = local();
    let id = new_id();
    let bytes = pattern(100, 1);
    store.put_staged(&id, &mut &bytes[..], MAX, &sha256_hex(&bytes)).await.unwrap();
    store.publish(&id, "app/blob").await.unwrap();
    let token = token_of(&store.presign_get("app/blob", Duration::from_secs(60)).await.unwrap());
    assert!(store.serve_download_at(&token, now()).await.is_ok());
    assert!(
        matches!(store.serve_download_at(&token, now() + 61).await, Err(BlobError::Denied(m)) if m.contains("expired"))
    );
}

#[tokio::test]
async fn part_tokens_are_bound_to_their_upload() {
    let (_dir, store) = local();
    let (a, b) = (new_id(), new_id());
    let digest = sha256_hex(b"x");
    for id in [&a, &b] {
        store.create_multipart(&StagedUpload { id, size_bytes: 1, sha256: &digest }).await.unwrap();
    }
    assert!(matches!(store.presign_part(&a, &b, 1, EXPIRY).await, Err(BlobError::Conflict(_))));
    for number in [0, 10_001] {
        assert!(matches!(store.presign_part(&a, &a, number, EXPIRY).await, Err(BlobError::Invalid(_))));
    }
    // A genuine part token writes exactly its part, with the quoted SHA-256 as ETag.
    let token = token_of(&store.presign_part(&a, &a, 7, EXPIRY).await.unwrap());
    let (_, etag) = store.accept_upload_at(&token, now(), &mut &b"part"[..], MAX).await.unwrap();
    assert_eq!(etag, Some(format!("\"{}\"", sha256_hex(b"part"))));
    assert_eq!(std::fs::read(store.root().join(format!("staging/{a}/parts/00007"))).unwrap(), b"part");
    // Once the upload is gone, its part tokens are dead.
    store.discard(&a, Some(&a)).await.unwrap();
    let after = store.accept_upload_at(&token, now(), &mut &b"part"[..], MAX).await;
    assert!(matches!(after, Err(BlobError::NotFound(_))), "{after:?}");
    let unknown = new_id();
    assert!(matches!(store.presign_part(&unknown, &unknown, 1, EXPIRY).await, Err(BlobError::NotFound(_))));
    store.discard(&b, Some(&b)).await.unwrap();
    assert_no_leftovers(&store);
}

#[tokio::test]
async fn complete_errors_name_the_part() {
    let (_dir, store) = local();
    let client = Direct(&store);
    let target = Target { store: &store, client: &client, prefix: "c", part_size: PART_SIZE };
    let id = new_id();
    let digest = sha256_hex(b"onetwo");
    store.create_multipart(&StagedUpload { id: &id, size_bytes: 6, sha256: &digest }).await.unwrap();
    let etags = conformance::upload_parts(&target, &id, &id, &[(1, b"one"), (2, b"two")]).await;
    let wrong = vec![etags[0].clone(), (2, etags[0].1.clone())];
    let err = store.complete_multipart(&id, &id, &wrong).await.unwrap_err();
    assert!(matches!(&err, BlobError::Conflict(m) if m.contains("part 2")), "{err:?}");
    let missing = vec![etags[0].clone(), etags[1].clone(), (3, etags[1].1.clone())];
    let err = store.complete_multipart(&id, &id, &missing).await.unwrap_err();
    assert!(matches!(&err, BlobError::Conflict(m) if m.contains("part 3")), "{err:?}");
    // ETags are accepted without their quotes too, as S3 does.
    let unquoted: Vec<_> = etags.iter().map(|(n, e)| (*n, e.trim_matches('"').to_owned())).collect();
    store.complete_multipart(&id, &id, &unquoted).await.unwrap();
    store.publish(&id, "app/a").await.unwrap();
    assert_eq!(conformance::read_all(&store, "app/a").await, b"onetwo");
}

/// A staged object's record describes one version of its file: bytes changed behind the
/// store's back, in place or by replacing the file, are measured again rather than vouched for.
#[tokio::test]
async fn records_never_vouch_for_changed_bytes() {
    let (_dir, store) = local();
    let (original, forged) = (pattern(70_000, 1), pattern(70_000, 2));
    let id = new_id();
    let digest = sha256_hex(&original);
    store.put_staged(&id, &mut &original[..], MAX, &digest).await.unwrap();
    let upload = StagedUpload { id: &id, size_bytes: original.len() as u64, sha256: &digest };
    let measured = async || store.measure_staged(&upload).await.unwrap().sha256.unwrap();
    let object = store.root().join(format!("staging/{id}/blob"));
    assert_eq!(measured().await, digest);

    // Same inode and size, new bytes and a new modification time.
    std::fs::write(&object, &forged).unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&object).unwrap().set_modified(later).unwrap();
    assert_eq!(measured().await, sha256_hex(&forged));

    // A different file renamed over it.
    let replacement = store.root().join("replacement");
    std::fs::write(&replacement, &original).unwrap();
    std::fs::rename(&replacement, &object).unwrap();
    assert_eq!(measured().await, digest);

    // A record that is not a record.
    std::fs::write(store.root().join(format!("staging/{id}/blob.record")), "garbage").unwrap();
    assert_eq!(measured().await, digest);
}

#[tokio::test]
async fn gc_removes_only_stale_temp_files() {
    let (_dir, store) = local();
    let root = store.root();
    std::fs::write(root.join("tmp/stale.tmp"), b"x").unwrap();
    std::fs::write(root.join("tmp/fresh.tmp"), b"x").unwrap();
    let past = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::open(root.join("tmp/stale.tmp")).unwrap().set_modified(past).unwrap();
    assert_eq!(store.gc_stale_temp(Duration::from_secs(3600)).await.unwrap(), 1);
    assert!(!root.join("tmp/stale.tmp").exists());
    assert!(root.join("tmp/fresh.tmp").exists());
    assert_eq!(store.gc_stale_temp(Duration::MAX).await.unwrap(), 0);
}
