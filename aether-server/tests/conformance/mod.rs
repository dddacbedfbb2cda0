//! Conformance suite of the artifact store: the contract as generic cases over any
//! `ArtifactStore` and a client for its presigned URLs, so every adapter runs the same cases.
//! `artifact_store_conformance.rs` runs them on the local store, `s3_store.rs` on a real
//! S3-compatible server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use aether_server::ports::{ArtifactStore, BlobError, BlobInfo, BlobResult, Measured, PresignedRequest, StagedUpload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// How long the presigned URLs made by the cases stay valid.
pub const EXPIRY: Duration = Duration::from_secs(300);

/// What the cases run against: a store, a client for its presigned URLs, a key prefix unique
/// to the run, and the multipart part size (at least the store's minimum, e.g. S3's 5 MiB for
/// all but the last part).
#[derive(Debug)]
pub struct Target<'a, S, C> {
    pub store: &'a S,
    pub client: &'a C,
    pub prefix: &'a str,
    pub part_size: usize,
}

/// Every case, in turn.
pub async fn run_all<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    staged_round_trip(t).await;
    wrong_bytes_are_refused(t).await;
    reused_urls_write_nothing(t).await;
    direct_put(t).await;
    invalid_keys_rejected(t).await;
    multipart_out_of_order(t).await;
    multipart_rejects_bad_parts(t).await;
    multipart_discard(t).await;
}

/// The response's `ETag` if any, or why the request failed (`<status>: <body>`).
pub type Sent = Result<Option<String>, String>;

/// Performs presigned requests the way clients do.
pub trait PresignedClient: Sync {
    fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> impl Future<Output = Sent> + Send;
    fn fetch(&self, request: &PresignedRequest) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// Sends presigned requests over HTTP, as real clients do.
#[derive(Debug, Default)]
pub struct HttpClient(pub reqwest::Client);

impl PresignedClient for HttpClient {
    async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> Sent {
        let response = self.build(request).body(body).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if !status.is_success() {
            return Err(format!("{status}: {}", response.text().await.unwrap_or_default()));
        }
        Ok(etag)
    }

    async fn fetch(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        let response = self.build(request).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        Ok(bytes.to_vec())
    }
}

impl HttpClient {
    fn build(&self, request: &PresignedRequest) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
        let mut builder = self.0.request(method, &request.url);
        // The body's own length goes out, as with any client: a body longer or shorter than
        // the signed length must meet the store's refusal, not be cut to size here.
        for (name, value) in request.headers.iter().filter(|(name, _)| !name.eq_ignore_ascii_case("content-length")) {
            builder = builder.header(name, value);
        }
        builder
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic bytes that differ per `seed` and do not repeat at buffer boundaries.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8 ^ seed).collect()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn info(bytes: &[u8]) -> BlobInfo {
    BlobInfo { size_bytes: bytes.len() as u64, sha256: sha256_hex(bytes) }
}

/// What a store that checks everything measures of `bytes`.
pub fn measured(bytes: &[u8]) -> Measured {
    Measured { size_bytes: Some(bytes.len() as u64), sha256: Some(sha256_hex(bytes)) }
}

pub async fn read_all<S: ArtifactStore>(store: &S, key: &str) -> Vec<u8> {
    let mut reader = store.open(key).await.unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.unwrap();
    bytes
}

/// Presigns an upload of `bytes` under a fresh id, PUTs them, and returns the id.
pub async fn stage<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>, bytes: &[u8]) -> String {
    let id = new_id();
    let digest = sha256_hex(bytes);
    let upload = StagedUpload { id: &id, size_bytes: bytes.len() as u64, sha256: &digest };
    let request = t.store.presign_upload(&upload, EXPIRY).await.unwrap();
    assert_eq!(request.method, "PUT");
    t.client.send(&request, bytes.to_vec()).await.unwrap();
    id
}

fn is_not_found<T>(result: &BlobResult<T>) -> bool {
    matches!(result, Err(BlobError::NotFound(_)))
}

/// Presign, PUT, measure, publish, read back (directly and through a presigned GET), delete.
/// Nothing is visible under the key before it is published.
pub async fn staged_round_trip<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let store = t.store;
    store.ping().await.unwrap();
    for (name, bytes) in [("big", pattern(200_000, 1)), ("small", b"x".to_vec())] {
        let key = format!("{}/round-trip/{name}", t.prefix);
        let id = stage(t, &bytes).await;
        let digest = sha256_hex(&bytes);
        let upload = StagedUpload { id: &id, size_bytes: bytes.len() as u64, sha256: &digest };
        assert!(store.list_staged().await.unwrap().iter().any(|e| e.upload_id == id), "{id} is not listed");
        assert_eq!(store.measure_staged(&upload).await.unwrap(), measured(&bytes));
        assert_eq!(store.head(&key).await.unwrap(), None, "visible before publishing");
        assert!(is_not_found(&store.open(&key).await.map(drop)));
        store.publish(&id, &key).await.unwrap();
        assert_eq!(store.head(&key).await.unwrap(), Some(bytes.len() as u64));
        assert_eq!(read_all(store, &key).await, bytes);
        let download = store.presign_get(&key, EXPIRY).await.unwrap();
        assert_eq!(download.method, "GET");
        assert_eq!(t.client.fetch(&download).await.unwrap(), bytes);
        assert!(is_not_found(&store.measure_staged(&upload).await), "the staging area outlived publishing");
        store.delete(&key).await.unwrap();
        assert_eq!(store.head(&key).await.unwrap(), None);
        assert!(is_not_found(&store.open(&key).await.map(drop)));
        assert!(t.client.fetch(&download).await.is_err(), "a deleted blob is still served");
        // Deleting again is not an error.
        store.delete(&key).await.unwrap();
    }
}

/// A URL accepts only the declared bytes: other bytes of the same size, more bytes or fewer
/// are refused. A store may keep what it refused (some S3-compatible servers write before they
/// check), but then measuring the staged object must show that it is not what was declared.
pub async fn wrong_bytes_are_refused<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let store = t.store;
    let declared = pattern(10_000, 2);
    let digest = sha256_hex(&declared);
    for (what, sent) in [
        ("other bytes", pattern(10_000, 3)),
        ("one byte more", pattern(10_001, 2)),
        ("one byte less", declared[..9_999].to_vec()),
    ] {
        let id = new_id();
        let upload = StagedUpload { id: &id, size_bytes: declared.len() as u64, sha256: &digest };
        let request = store.presign_upload(&upload, EXPIRY).await.unwrap();
        assert!(t.client.send(&request, sent).await.is_err(), "{what} were accepted");
        match store.measure_staged(&upload).await {
            Err(BlobError::NotFound(_)) => {}
            Ok(kept) => assert_ne!(kept, measured(&declared), "{what} were staged as if they were the declared bytes"),
            Err(error) => panic!("measuring after refused {what}: {error:?}"),
        }
        store.discard(&id, None).await.unwrap();
    }
}

/// Once an upload was published or discarded, its URL writes nothing that is read: the
/// request is refused, and the published blob keeps its bytes.
pub async fn reused_urls_write_nothing<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let store = t.store;
    let key = format!("{}/reuse", t.prefix);
    let bytes = pattern(50_000, 4);
    let digest = sha256_hex(&bytes);
    let id = new_id();
    let upload = StagedUpload { id: &id, size_bytes: bytes.len() as u64, sha256: &digest };
    let request = store.presign_upload(&upload, EXPIRY).await.unwrap();
    t.client.send(&request, bytes.clone()).await.unwrap();
    store.publish(&id, &key).await.unwrap();
    let again = t.client.send(&request, bytes.clone()).await;
    assert!(again.is_err(), "a completed upload's URL was accepted again");
    assert!(is_not_found(&store.measure_staged(&upload).await), "a completed upload's URL staged bytes again");
    assert_eq!(read_all(store, &key).await, bytes);

    let discarded = new_id();
    let upload = StagedUpload { id: &discarded, size_bytes: bytes.len() as u64, sha256: &digest };
    let request = store.presign_upload(&upload, EXPIRY).await.unwrap();
    store.discard(&discarded, None).await.unwrap();
    store.discard(&discarded, None).await.unwrap();
    assert!(t.client.send(&request, bytes.clone()).await.is_err(), "a discarded upload's URL was accepted");
    assert!(is_not_found(&store.measure_staged(&upload).await));
    store.delete(&key).await.unwrap();
}

/// The legacy direct upload: verified before anything is staged, then published like any other.
pub async fn direct_put<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let store = t.store;
    let key = format!("{}/direct", t.prefix);
    let bytes = pattern(100_000, 5);
    let digest = sha256_hex(&bytes);
    let size = bytes.len() as u64;
    let too_large = new_id();
    let err = store.put_staged(&too_large, &mut &bytes[..], 99_999, &digest).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { limit_bytes: 99_999 }), "{err:?}");
    let staged = StagedUpload { id: &too_large, size_bytes: size, sha256: &digest };
    assert!(is_not_found(&store.measure_staged(&staged).await));
    let mismatch = new_id();
    let wrong = sha256_hex(b"something else");
    let err = store.put_staged(&mismatch, &mut &bytes[..], 1 << 20, &wrong).await.unwrap_err();
    assert!(matches!(&err, BlobError::DigestMismatch { expected, actual } if *expected == wrong && *actual == digest));
    assert!(is_not_found(
        &store.measure_staged(&StagedUpload { id: &mismatch, size_bytes: size, sha256: &wrong }).await
    ));
    let good = new_id();
    assert_eq!(store.put_staged(&good, &mut &bytes[..], 100_000, &digest).await.unwrap(), info(&bytes));
    let staged = StagedUpload { id: &good, size_bytes: size, sha256: &digest };
    assert_eq!(store.measure_staged(&staged).await.unwrap(), measured(&bytes));
    store.publish(&good, &key).await.unwrap();
    assert_eq!(read_all(store, &key).await, bytes);
    store.delete(&key).await.unwrap();
    for id in [too_large, mismatch] {
        store.discard(&id, None).await.unwrap();
    }
}

/// Keys that could escape a directory or confuse a URL are refused by every operation.
pub async fn invalid_keys_rejected<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let store = t.store;
    let too_long = "k".repeat(513);
    let invalid = |r: &BlobResult<()>| matches!(r, Err(BlobError::Invalid(_)));
    for key in ["", "/abs", "a/../b", "..", "a\\b", "a b", "a?b", "a//b", too_long.as_str()] {
        assert!(invalid(&store.head(key).await.map(drop)), "head {key:?}");
        assert!(invalid(&store.open(key).await.map(drop)), "open {key:?}");
        assert!(invalid(&store.delete(key).await), "delete {key:?}");
        assert!(invalid(&store.presign_get(key, EXPIRY).await.map(drop)), "presign_get {key:?}");
        assert!(invalid(&store.publish(&new_id(), key).await), "publish {key:?}");
    }
    for id in ["..", "../objects", "not-a-uuid", ""] {
        let upload = StagedUpload { id, size_bytes: 1, sha256: &sha256_hex(b"x") };
        assert!(invalid(&store.presign_upload(&upload, EXPIRY).await.map(drop)), "presign_upload {id:?}");
        assert!(invalid(&store.discard(id, None).await), "discard {id:?}");
    }
}

/// Uploads `parts` (number, bytes) in the given order; returns the ETags by part number.
pub async fn upload_parts<S: ArtifactStore, C: PresignedClient>(
    t: &Target<'_, S, C>,
    upload_id: &str,
    multipart_id: &str,
    parts: &[(u32, &[u8])],
) -> Vec<(u32, String)> {
    let mut etags = Vec::new();
    for (number, bytes) in parts {
        let request = t.store.presign_part(upload_id, multipart_id, *number, EXPIRY).await.unwrap();
        let etag = t.client.send(&request, bytes.to_vec()).await.unwrap().expect("a part upload returns an ETag");
        assert!(!etag.is_empty());
        etags.push((*number, etag));
    }
    etags.sort();
    etags
}

/// Starts a multipart upload of `whole`; returns its upload and multipart ids.
async fn start_multipart<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>, whole: &[u8]) -> (String, String) {
    let id = new_id();
    let digest = sha256_hex(whole);
    let upload = StagedUpload { id: &id, size_bytes: whole.len() as u64, sha256: &digest };
    let multipart_id = t.store.create_multipart(&upload).await.unwrap();
    (id, multipart_id)
}

/// Parts uploaded out of order and completed in order give their concatenation, which is
/// staged, then published.
pub async fn multipart_out_of_order<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let (store, part_size) = (t.store, t.part_size);
    let key = format!("{}/multipart", t.prefix);
    let (one, two, three) = (pattern(part_size, 7), pattern(part_size, 8), pattern(part_size / 2 + 1, 9));
    let whole = [one.clone(), two.clone(), three.clone()].concat();
    let (id, multipart_id) = start_multipart(t, &whole).await;
    let etags = upload_parts(t, &id, &multipart_id, &[(3, &three), (1, &one), (2, &two)]).await;
    store.complete_multipart(&id, &multipart_id, &etags).await.unwrap();
    let digest = sha256_hex(&whole);
    let upload = StagedUpload { id: &id, size_bytes: whole.len() as u64, sha256: &digest };
    assert_eq!(store.measure_staged(&upload).await.unwrap(), measured(&whole));
    assert_eq!(store.head(&key).await.unwrap(), None);
    store.publish(&id, &key).await.unwrap();
    assert_eq!(read_all(store, &key).await, whole);
    // The parts' URLs are dead once the upload is assembled.
    let request = store.presign_part(&id, &multipart_id, 1, EXPIRY).await;
    if let Ok(request) = request {
        assert!(t.client.send(&request, one).await.is_err(), "a part was accepted after completion");
    }
    assert_eq!(read_all(store, &key).await, whole);
    store.delete(&key).await.unwrap();
}

/// Missing parts, unordered, repeated or empty lists are refused without staging anything; a
/// wrong ETag is refused too where the store records part ETags (S3 does). The upload can
/// still be completed correctly afterwards.
pub async fn multipart_rejects_bad_parts<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let (store, part_size) = (t.store, t.part_size);
    let (one, two) = (pattern(part_size, 10), pattern(part_size / 3 + 1, 11));
    let whole = [one.clone(), two.clone()].concat();
    let (id, multipart_id) = start_multipart(t, &whole).await;
    let etags = upload_parts(t, &id, &multipart_id, &[(1, &one), (2, &two)]).await;
    let (e1, e2) = (etags[0].1.clone(), etags[1].1.clone());
    // A part never uploaded contradicts the upload (409); the rest are malformed lists (400).
    let missing = [(1, e1.clone()), (2, e2.clone()), (3, e2.clone())];
    let err = store.complete_multipart(&id, &multipart_id, &missing).await.unwrap_err();
    assert!(matches!(err, BlobError::Conflict(_)), "{missing:?}: {err:?}");
    let bad_lists = [vec![(2, e2.clone()), (1, e1.clone())], vec![(1, e1.clone()), (1, e1.clone())], vec![]];
    let digest = sha256_hex(&whole);
    let upload = StagedUpload { id: &id, size_bytes: whole.len() as u64, sha256: &digest };
    for parts in &bad_lists {
        let err = store.complete_multipart(&id, &multipart_id, parts).await.unwrap_err();
        assert!(matches!(err, BlobError::Invalid(_)), "{parts:?}: {err:?}");
        assert!(is_not_found(&store.measure_staged(&upload).await), "{parts:?} staged something");
    }
    let wrong_etag = [(1, e1.clone()), (2, e1.clone())];
    match store.complete_multipart(&id, &multipart_id, &wrong_etag).await {
        Err(BlobError::Conflict(_)) => {
            assert!(is_not_found(&store.measure_staged(&upload).await), "a wrong ETag staged something");
            store.complete_multipart(&id, &multipart_id, &etags).await.unwrap();
        }
        // Accepted by a store that keeps no part ETags: the parts themselves were intact.
        Ok(()) => {}
        Err(error) => panic!("a wrong ETag: {error:?}"),
    }
    assert_eq!(store.measure_staged(&upload).await.unwrap(), measured(&whole));
    store.discard(&id, Some(&multipart_id)).await.unwrap();
    assert!(is_not_found(&store.measure_staged(&upload).await));
}

/// A discarded multipart upload cannot be completed, its part URLs are dead, and discarding
/// twice is fine.
pub async fn multipart_discard<S: ArtifactStore, C: PresignedClient>(t: &Target<'_, S, C>) {
    let store = t.store;
    let part = pattern(1000, 12);
    let (id, multipart_id) = start_multipart(t, &part).await;
    let etags = upload_parts(t, &id, &multipart_id, &[(1, &part)]).await;
    let request = store.presign_part(&id, &multipart_id, 2, EXPIRY).await.unwrap();
    store.discard(&id, Some(&multipart_id)).await.unwrap();
    store.discard(&id, Some(&multipart_id)).await.unwrap();
    assert!(store.complete_multipart(&id, &multipart_id, &etags).await.is_err());
    assert!(t.client.send(&request, part.clone()).await.is_err(), "a discarded upload accepted a part");
    let digest = sha256_hex(&part);
    let upload = StagedUpload { id: &id, size_bytes: part.len() as u64, sha256: &digest };
    assert!(is_not_found(&store.measure_staged(&upload).await));
}
