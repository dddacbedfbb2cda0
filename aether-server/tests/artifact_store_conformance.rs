#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Conformance suite of the artifact store: `conformance` states the contract as generic cases
//! over any `ArtifactStore` and a client for its presigned URLs, so every adapter runs the same
//! cases. Below it, they run against `LocalArtifactStore`, then what only the local store does.

pub mod conformance {
    use std::future::Future;
    use std::time::Duration;

    use aether_server::ports::{ArtifactStore, BlobError, BlobInfo, BlobResult, PresignedRequest};
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncReadExt;

    /// How long the presigned URLs made by the cases stay valid.
    pub const EXPIRY: Duration = Duration::from_secs(300);

    /// What the cases run against: a store, a client for its presigned URLs, a key prefix
    /// unique to the run, and the multipart part size (at least the store's minimum, e.g.
    /// S3's 5 MiB for all but the last part).
    #[derive(Debug)]
    pub struct Target<'a, S, C> {
        pub store: &'a S,
        pub client: &'a C,
        pub prefix: &'a str,
        pub part_size: usize,
    }

    /// Every case, in turn.
    pub async fn run_all<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        round_trip(t).await;
        too_large_leaves_nothing(t).await;
        digest_mismatch_leaves_nothing(t).await;
        invalid_keys_rejected(t).await;
        overwrite_replaces(t).await;
        presigned_put(t).await;
        multipart_out_of_order(t).await;
        multipart_rejects_bad_parts(t).await;
        multipart_abort(t).await;
    }

    /// The response's `ETag`, if any, or why the request failed.
    pub type Sent = Result<Option<String>, String>;

    /// Performs a presigned request the way an uploading client would.
    pub trait PresignedClient: Sync {
        fn send(
            &self,
            request: &PresignedRequest,
            body: Vec<u8>,
        ) -> impl Future<Output = Result<Option<String>, String>> + Send;
    }

    /// Sends presigned requests over HTTP, as real clients do.
    #[derive(Debug, Default)]
    pub struct HttpClient(pub reqwest::Client);

    impl PresignedClient for HttpClient {
        async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> Sent {
            let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| e.to_string())?;
            let mut builder = self.0.request(method, &request.url);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            let response = builder.body(body).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
            if !status.is_success() {
                return Err(format!("{status}: {}", response.text().await.unwrap_or_default()));
            }
            Ok(etag)
        }
    }

    pub fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Deterministic bytes that differ per `seed` and do not repeat at buffer boundaries.
    pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8 ^ seed).collect()
    }

    pub async fn put_bytes<S: ArtifactStore>(store: &S, key: &str, bytes: &[u8], max: u64) -> BlobResult<BlobInfo> {
        store.put(key, &mut &bytes[..], max, None).await
    }

    pub async fn read_all<S: ArtifactStore>(store: &S, key: &str) -> Vec<u8> {
        let mut reader = store.open(key).await.unwrap();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    fn info(bytes: &[u8]) -> BlobInfo {
        BlobInfo { size_bytes: bytes.len() as u64, sha256: sha256_hex(bytes) }
    }

    /// put, stat, open and delete agree on the exact bytes, including an empty blob and one
    /// spanning several read buffers.
    pub async fn round_trip<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, prefix) = (t.store, t.prefix);
        for (name, bytes) in [("big", pattern(200_000, 1)), ("empty", Vec::new())] {
            let key = format!("{prefix}/round-trip/{name}");
            assert_eq!(put_bytes(store, &key, &bytes, 1 << 20).await.unwrap(), info(&bytes));
            assert_eq!(store.stat(&key).await.unwrap(), Some(info(&bytes)));
            assert_eq!(store.recorded(&key).await.unwrap(), Some(info(&bytes)));
            assert_eq!(read_all(store, &key).await, bytes);
            store.delete(&key).await.unwrap();
            assert_eq!(store.stat(&key).await.unwrap(), None);
            assert_eq!(store.recorded(&key).await.unwrap(), None);
            assert!(matches!(store.open(&key).await, Err(BlobError::NotFound(_))));
            // Deleting again is not an error.
            store.delete(&key).await.unwrap();
        }
    }

    /// A body one byte over the limit fails and leaves nothing; exactly the limit is fine.
    pub async fn too_large_leaves_nothing<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, prefix) = (t.store, t.prefix);
        let key = format!("{prefix}/too-large");
        let bytes = pattern(100_000, 2);
        let err = put_bytes(store, &key, &bytes, 99_999).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit_bytes: 99_999 }), "{err:?}");
        assert_eq!(store.stat(&key).await.unwrap(), None);
        assert!(matches!(store.open(&key).await, Err(BlobError::NotFound(_))));
        assert_eq!(put_bytes(store, &key, &bytes, 100_000).await.unwrap(), info(&bytes));
        store.delete(&key).await.unwrap();
    }

    /// A declared digest that the bytes do not match fails and leaves nothing.
    pub async fn digest_mismatch_leaves_nothing<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, prefix) = (t.store, t.prefix);
        let key = format!("{prefix}/digest");
        let bytes = pattern(1000, 3);
        let (wrong, right) = (sha256_hex(b"something else"), sha256_hex(&bytes));
        let err = store.put(&key, &mut &bytes[..], 1 << 20, Some(&wrong)).await.unwrap_err();
        let matched =
            matches!(&err, BlobError::DigestMismatch { expected, actual } if *expected == wrong && *actual == right);
        assert!(matched, "{err:?}");
        assert_eq!(store.stat(&key).await.unwrap(), None);
        assert_eq!(store.put(&key, &mut &bytes[..], 1 << 20, Some(&right)).await.unwrap(), info(&bytes));
        store.delete(&key).await.unwrap();
    }

    /// Keys that could escape a directory or confuse a URL are refused by every operation.
    pub async fn invalid_keys_rejected<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let store = t.store;
        let too_long = "k".repeat(513);
        for key in ["", "/abs", "a/../b", "..", "a\\b", "a b", "a?b", "a//b", too_long.as_str()] {
            let invalid = |r: &BlobResult<()>| matches!(r, Err(BlobError::Invalid(_)));
            assert!(invalid(&put_bytes(store, key, b"x", 10).await.map(drop)), "put {key:?}");
            assert!(invalid(&store.stat(key).await.map(drop)), "stat {key:?}");
            assert!(invalid(&store.open(key).await.map(drop)), "open {key:?}");
            assert!(invalid(&store.delete(key).await), "delete {key:?}");
            assert!(invalid(&store.presign_put(key, EXPIRY).await.map(drop)), "presign_put {key:?}");
            assert!(invalid(&store.create_multipart(key).await.map(drop)), "create_multipart {key:?}");
        }
    }

    /// A second put to a key replaces the first.
    pub async fn overwrite_replaces<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, prefix) = (t.store, t.prefix);
        let key = format!("{prefix}/overwrite");
        put_bytes(store, &key, &pattern(5000, 4), 1 << 20).await.unwrap();
        let second = pattern(300, 5);
        assert_eq!(put_bytes(store, &key, &second, 1 << 20).await.unwrap(), info(&second));
        assert_eq!(store.stat(&key).await.unwrap(), Some(info(&second)));
        assert_eq!(read_all(store, &key).await, second);
        store.delete(&key).await.unwrap();
    }

    /// A presigned PUT stores the object it names.
    pub async fn presigned_put<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, prefix) = (t.store, t.prefix);
        let key = format!("{prefix}/presigned");
        let bytes = pattern(70_000, 6);
        let request = store.presign_put(&key, EXPIRY).await.unwrap();
        assert_eq!(request.method, "PUT");
        t.client.send(&request, bytes.clone()).await.unwrap();
        assert_eq!(store.stat(&key).await.unwrap(), Some(info(&bytes)));
        store.delete(&key).await.unwrap();
    }

    /// Uploads `parts` (number, bytes) in the given order; returns the ETags by part number.
    pub async fn upload_parts<S: ArtifactStore, C: PresignedClient>(
        store: &S,
        client: &C,
        key: &str,
        upload_id: &str,
        parts: &[(u32, &[u8])],
    ) -> Vec<(u32, String)> {
        let mut etags = Vec::new();
        for (number, bytes) in parts {
            let request = store.presign_part(key, upload_id, *number, EXPIRY).await.unwrap();
            let etag = client.send(&request, bytes.to_vec()).await.unwrap().expect("a part upload returns an ETag");
            assert!(!etag.is_empty());
            etags.push((*number, etag));
        }
        etags.sort();
        etags
    }

    /// Parts uploaded out of order and completed in order give their concatenation, which is
    /// invisible until completion.
    pub async fn multipart_out_of_order<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, client, prefix, part_size) = (t.store, t.client, t.prefix, t.part_size);
        let key = format!("{prefix}/multipart");
        let (one, two, three) = (pattern(part_size, 7), pattern(part_size, 8), pattern(part_size / 2 + 1, 9));
        let upload_id = store.create_multipart(&key).await.unwrap();
        let etags = upload_parts(store, client, &key, &upload_id, &[(3, &three), (1, &one), (2, &two)]).await;
        assert_eq!(store.stat(&key).await.unwrap(), None);
        store.complete_multipart(&key, &upload_id, &etags).await.unwrap();
        let whole = [one, two, three].concat();
        assert_eq!(store.stat(&key).await.unwrap(), Some(info(&whole)));
        assert_eq!(store.recorded(&key).await.unwrap(), Some(info(&whole)));
        assert_eq!(read_all(store, &key).await, whole);
        store.delete(&key).await.unwrap();
    }

    /// Wrong ETags, missing parts, unordered or empty lists and another key are refused without
    /// publishing anything, and the upload can still be completed correctly afterwards.
    pub async fn multipart_rejects_bad_parts<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, client, prefix, part_size) = (t.store, t.client, t.prefix, t.part_size);
        let key = format!("{prefix}/multipart-bad");
        let (one, two) = (pattern(part_size, 10), pattern(part_size / 3 + 1, 11));
        let upload_id = store.create_multipart(&key).await.unwrap();
        let etags = upload_parts(store, client, &key, &upload_id, &[(1, &one), (2, &two)]).await;
        let (e1, e2) = (etags[0].1.clone(), etags[1].1.clone());
        let bad_lists = [
            vec![(1, e1.clone()), (2, e1.clone())],
            vec![(1, e1.clone()), (2, e2.clone()), (3, e2.clone())],
            vec![(2, e2.clone()), (1, e1.clone())],
            vec![(1, e1.clone()), (1, e1.clone())],
            vec![],
        ];
        for parts in &bad_lists {
            let err = store.complete_multipart(&key, &upload_id, parts).await.unwrap_err();
            assert!(matches!(err, BlobError::Invalid(_)), "{parts:?}: {err:?}");
            assert_eq!(store.stat(&key).await.unwrap(), None, "{parts:?}");
        }
        let other = format!("{prefix}/multipart-other");
        assert!(store.complete_multipart(&other, &upload_id, &etags).await.is_err());
        assert_eq!(store.stat(&other).await.unwrap(), None);
        store.complete_multipart(&key, &upload_id, &etags).await.unwrap();
        assert_eq!(read_all(store, &key).await, [one, two].concat());
        store.delete(&key).await.unwrap();
    }

    /// An aborted upload cannot be completed and publishes nothing; aborting twice is fine.
    pub async fn multipart_abort<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
        let (store, client, prefix) = (t.store, t.client, t.prefix);
        let key = format!("{prefix}/multipart-abort");
        let upload_id = store.create_multipart(&key).await.unwrap();
        let etags = upload_parts(store, client, &key, &upload_id, &[(1, &pattern(1000, 12))]).await;
        store.abort_multipart(&key, &upload_id).await.unwrap();
        store.abort_multipart(&key, &upload_id).await.unwrap();
        assert!(store.complete_multipart(&key, &upload_id, &etags).await.is_err());
        assert_eq!(store.stat(&key).await.unwrap(), None);
    }
}

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aether_server::artifacts::presign::{self, PresignClaim};
use aether_server::artifacts::{LocalArtifactStore, PresignedWrite};
use aether_server::ports::{ArtifactStore, BlobError, PresignedRequest};
use conformance::{EXPIRY, PresignedClient, Sent, Target, pattern, sha256_hex};

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

/// Hands presigned requests straight to `accept_presigned`, as the upload route does.
struct Direct<'a>(&'a LocalArtifactStore);

impl PresignedClient for Direct<'_> {
    async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> Sent {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.headers, [("content-type".to_owned(), "application/octet-stream".to_owned())]);
        let token = request.url.strip_prefix(&format!("{BASE_URL}/uploads/")).expect("a URL of this server");
        let written = self.0.accept_presigned(token, now(), &mut &body[..], MAX).await.map_err(|e| e.to_string())?;
        Ok(written.etag)
    }
}

/// Every regular file below `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    // `records/` only appears with the first published blob.
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let paths = entries.map(|entry| entry.unwrap().path());
    paths.flat_map(|path| if path.is_dir() { files_under(&path) } else { vec![path] }).collect()
}

/// No blob, temp file or multipart upload is left.
fn assert_no_leftovers(store: &LocalArtifactStore) {
    for dir in ["objects", "records", "tmp", "multipart"] {
        assert_eq!(files_under(&store.root().join(dir)), Vec::<PathBuf>::new(), "{dir}");
    }
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
    round_trip, too_large_leaves_nothing, digest_mismatch_leaves_nothing, invalid_keys_rejected, overwrite_replaces,
    presigned_put, multipart_out_of_order, multipart_rejects_bad_parts, multipart_abort,
}
/// A record describes one version of the blob's file: bytes changed behind the store's back,
/// in place or by replacing the file, are measured again rather than vouched for.
#[tokio::test]
async fn records_never_vouch_for_changed_bytes() {
    let (_dir, store) = local();
    let (original, forged) = (pattern(70_000, 1), pattern(70_000, 2));
    conformance::put_bytes(&store, "k/blob", &original, 1 << 20).await.unwrap();
    let object = store.root().join("objects/k/blob");
    assert_eq!(store.recorded("k/blob").await.unwrap().unwrap().sha256, sha256_hex(&original));

    // Same inode and size, new bytes and a new modification time.
    std::fs::write(&object, &forged).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options().write(true).open(&object).unwrap().set_modified(later).unwrap();
    assert_eq!(store.recorded("k/blob").await.unwrap().unwrap().sha256, sha256_hex(&forged));

    // A different file renamed over it.
    let replacement = store.root().join("replacement");
    std::fs::write(&replacement, &original).unwrap();
    std::fs::rename(&replacement, &object).unwrap();
    assert_eq!(store.recorded("k/blob").await.unwrap().unwrap().sha256, sha256_hex(&original));

    // A record that is not a record.
    std::fs::write(store.root().join("records/k/blob"), "garbage").unwrap();
    assert_eq!(store.recorded("k/blob").await.unwrap().unwrap().sha256, sha256_hex(&original));
}

/// The whole contract again, over real HTTP through a minimal `PUT /uploads/{token}` route.
#[tokio::test]
async fn presigned_requests_over_http() {
    use axum::extract::{Path as UrlPath, State};
    use axum::response::{IntoResponse, Response};
    use futures_util::TryStreamExt as _;

    type Shared = State<Arc<LocalArtifactStore>>;
    async fn upload(State(store): Shared, UrlPath(token): UrlPath<String>, body: axum::body::Body) -> Response {
        let mut reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
        match ArtifactStore::accept_presigned(store.as_ref(), &token, &mut reader, MAX).await {
            Ok((_, etag)) => (etag.map(|etag| [("etag", etag)]), "").into_response(),
            Err(err) => (axum::http::StatusCode::BAD_REQUEST, err.to_string()).into_response(),
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let store = Arc::new(LocalArtifactStore::new(dir.path().to_owned(), base_url, SECRET).unwrap());
    let app = axum::Router::new().route("/uploads/{token}", axum::routing::put(upload)).with_state(Arc::clone(&store));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = conformance::HttpClient::default();
    conformance::run_all(&Target { store: store.as_ref(), client: &client, prefix: "http", part_size: PART_SIZE })
        .await;
    assert_no_leftovers(&store);

    // A tampered token is refused by the route.
    let mut request = store.presign_put("http/tampered", EXPIRY).await.unwrap();
    request.url.push('A');
    let err = client.send(&request, b"x".to_vec()).await.unwrap_err();
    assert!(err.starts_with("400"), "{err}");
    server.abort();
}

#[tokio::test]
async fn accept_presigned_writes_the_named_object() {
    let (_dir, store) = local();
    let request = store.presign_put("app/blob", EXPIRY).await.unwrap();
    assert!(request.url.starts_with(&format!("{BASE_URL}/uploads/")), "{}", request.url);
    let bytes = pattern(1234, 1);
    let written = store.accept_presigned(&token_of(&request), now(), &mut &bytes[..], MAX).await.unwrap();
    let info = aether_server::ports::BlobInfo { size_bytes: 1234, sha256: sha256_hex(&bytes) };
    assert_eq!(written, PresignedWrite { key: "app/blob".to_owned(), info: info.clone(), etag: None });
    assert_eq!(store.stat("app/blob").await.unwrap(), Some(info));
    // The limit applies to presigned writes too.
    let err = store.accept_presigned(&token_of(&request), now(), &mut &bytes[..], 1000).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { limit_bytes: 1000 }));
}

#[tokio::test]
async fn accept_presigned_rejects_expired_and_tampered_tokens() {
    let (_dir, store) = local();
    let token = token_of(&store.presign_put("app/blob", Duration::from_secs(60)).await.unwrap());
    let expect_invalid = async |token: &str, now: u64, needle: &str| {
        let err = store.accept_presigned(token, now, &mut &b"bytes"[..], MAX).await.unwrap_err();
        assert!(matches!(&err, BlobError::Invalid(m) if m.contains(needle)), "{err:?}");
    };
    expect_invalid(&token, now() + 3600, "expired").await;
    let (claim, mac) = token.split_once('.').unwrap();
    // Changes one character of the claim or of the MAC.
    let flip = |s: &str| format!("{}{}{}", &s[..2], if &s[2..3] == "A" { "B" } else { "A" }, &s[3..]);
    expect_invalid(&format!("{claim}.{}", flip(mac)), now(), "signature").await;
    expect_invalid(&format!("{}.{mac}", flip(claim)), now(), "signature").await;
    let foreign =
        PresignClaim { key: "app/blob".to_owned(), upload_id: None, part_number: None, expires_at_unix_s: now() + 60 };
    expect_invalid(&presign::sign(&foreign, &[1; 32]), now(), "signature").await;
    expect_invalid("not-a-token", now(), "malformed").await;
    assert_eq!(store.stat("app/blob").await.unwrap(), None);
    assert_no_leftovers(&store);
}

#[tokio::test]
async fn part_tokens_are_bound_to_their_upload() {
    let (_dir, store) = local();
    let upload_a = store.create_multipart("app/a").await.unwrap();
    let upload_b = store.create_multipart("app/b").await.unwrap();
    let part = |key: &str, upload_id: &str| PresignClaim {
        key: key.to_owned(),
        upload_id: Some(upload_id.to_owned()),
        part_number: Some(1),
        expires_at_unix_s: now() + 60,
    };
    let send = async |token: &str| store.accept_presigned(token, now(), &mut &b"part"[..], MAX).await;
    // Even correctly signed, a claim pairing key A with upload B is refused.
    let err = send(&presign::sign(&part("app/a", &upload_b), &SECRET)).await.unwrap_err();
    assert!(matches!(&err, BlobError::Invalid(m) if m.contains("another key")), "{err:?}");
    let err = send(&presign::sign(&part("app/a", "../../objects/x"), &SECRET)).await.unwrap_err();
    assert!(matches!(err, BlobError::Invalid(_)), "{err:?}");
    // A genuine part token writes exactly its part, with the quoted SHA-256 as ETag.
    let token = token_of(&store.presign_part("app/a", &upload_a, 7, EXPIRY).await.unwrap());
    let written = send(&token).await.unwrap();
    assert_eq!(written.etag, Some(format!("\"{}\"", sha256_hex(b"part"))));
    assert_eq!(std::fs::read(store.root().join(format!("multipart/{upload_a}/00007"))).unwrap(), b"part");
    assert_eq!(store.stat("app/a").await.unwrap(), None);
    // Once the upload is gone, its part tokens are dead.
    store.abort_multipart("app/a", &upload_a).await.unwrap();
    assert!(matches!(send(&token).await, Err(BlobError::NotFound(_))));
    assert!(!store.root().join("multipart").join(&upload_a).exists());
    store.abort_multipart("app/b", &upload_b).await.unwrap();
    assert_no_leftovers(&store);
}

#[tokio::test]
async fn presign_part_checks_the_upload() {
    let (_dir, store) = local();
    let upload = store.create_multipart("app/a").await.unwrap();
    assert_eq!(std::fs::read_to_string(store.root().join(format!("multipart/{upload}/key"))).unwrap(), "app/a");
    for number in [0, 10_001] {
        assert!(matches!(store.presign_part("app/a", &upload, number, EXPIRY).await, Err(BlobError::Invalid(_))));
    }
    assert!(store.presign_part("app/a", &upload, 10_000, EXPIRY).await.is_ok());
    assert!(matches!(store.presign_part("app/b", &upload, 1, EXPIRY).await, Err(BlobError::Invalid(_))));
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert!(matches!(store.presign_part("app/a", unknown, 1, EXPIRY).await, Err(BlobError::NotFound(_))));
    for bad in ["..", "x", &upload.to_uppercase()] {
        assert!(matches!(store.presign_part("app/a", bad, 1, EXPIRY).await, Err(BlobError::Invalid(_))), "{bad}");
    }
    // Aborting someone else's upload is refused; an unknown one is already gone.
    assert!(matches!(store.abort_multipart("app/b", &upload).await, Err(BlobError::Invalid(_))));
    store.abort_multipart("app/a", unknown).await.unwrap();
}

#[tokio::test]
async fn complete_errors_name_the_part() {
    let (_dir, store) = local();
    let upload = store.create_multipart("app/a").await.unwrap();
    let etags = conformance::upload_parts(&store, &Direct(&store), "app/a", &upload, &[(1, b"one"), (2, b"two")]).await;
    let wrong = vec![etags[0].clone(), (2, etags[0].1.clone())];
    let err = store.complete_multipart("app/a", &upload, &wrong).await.unwrap_err();
    assert!(matches!(&err, BlobError::Invalid(m) if m.contains("part 2")), "{err:?}");
    let missing = vec![etags[0].clone(), etags[1].clone(), (3, etags[1].1.clone())];
    let err = store.complete_multipart("app/a", &upload, &missing).await.unwrap_err();
    assert!(matches!(&err, BlobError::Invalid(m) if m.contains("part 3")), "{err:?}");
    // ETags are accepted without their quotes too, as S3 does.
    let unquoted: Vec<_> = etags.iter().map(|(n, e)| (*n, e.trim_matches('"').to_owned())).collect();
    store.complete_multipart("app/a", &upload, &unquoted).await.unwrap();
    assert_eq!(conformance::read_all(&store, "app/a").await, b"onetwo");
}

#[tokio::test]
async fn gc_removes_only_stale_temp_files_and_uploads() {
    let (_dir, store) = local();
    let root = store.root();
    let stale_upload = store.create_multipart("app/old").await.unwrap();
    let fresh_upload = store.create_multipart("app/new").await.unwrap();
    std::fs::write(root.join("tmp/stale.tmp"), b"x").unwrap();
    std::fs::write(root.join("tmp/fresh.tmp"), b"x").unwrap();
    let past = SystemTime::now() - Duration::from_secs(7200);
    for path in [root.join("tmp/stale.tmp"), root.join("multipart").join(&stale_upload)] {
        std::fs::File::open(&path).unwrap().set_modified(past).unwrap();
    }
    assert_eq!(store.gc_stale_temp(Duration::from_secs(3600)).await.unwrap(), 2);
    assert!(!root.join("tmp/stale.tmp").exists());
    assert!(!root.join("multipart").join(&stale_upload).exists());
    assert!(root.join("tmp/fresh.tmp").exists());
    assert!(root.join("multipart").join(&fresh_upload).exists());
    assert_eq!(store.gc_stale_temp(Duration::MAX).await.unwrap(), 0);
}
