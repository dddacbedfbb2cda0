//! Streaming a byte range of a file to a presigned URL. The file is read chunk by chunk as
//! the request goes out, so artifacts of any size upload in constant memory.

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt as _;
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, ETAG, HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::watch;
use tokio_util::io::ReaderStream;

use super::{Client, INITIAL_BACKOFF, check, retryable};
use crate::error::Error;

/// Size of the reads that feed the request body.
const CHUNK_BYTES: usize = 256 * 1024;
/// Slowest transfer rate an upload may have before it counts as stalled: a fixed timeout
/// would either cut off large artifacts on slow links or never fire on small ones.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 128 * 1024;

/// Bytes sent so far by every PUT of one upload; the body streams report into it from
/// whichever task the HTTP client polls them on, and the uploader watches it.
#[derive(Debug, Clone)]
pub(crate) struct Progress(Arc<watch::Sender<u64>>);

impl Progress {
    pub(crate) fn new() -> (Self, watch::Receiver<u64>) {
        let (sender, receiver) = watch::channel(0);
        (Self(Arc::new(sender)), receiver)
    }

    fn add(&self, bytes: u64) {
        self.0.send_modify(|done| *done = done.saturating_add(bytes));
    }

    fn remove(&self, bytes: u64) {
        self.0.send_modify(|done| *done = done.saturating_sub(bytes));
    }
}

/// One PUT of `len` bytes of `path`, starting at `offset`, to a presigned URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilePut<'a> {
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub path: &'a Path,
    pub offset: u64,
    pub len: u64,
}

impl Client {
    /// Streams the range to its presigned URL and returns the answer's `ETag`, if any. The
    /// bearer token is not sent: the URL carries its own authorisation, and it may point at
    /// another host (an object store). PUTs replace, so failed attempts are repeated like
    /// idempotent API calls, reading the range afresh each time.
    pub(crate) async fn put_file(&self, put: &FilePut<'_>, progress: &Progress) -> Result<Option<String>, Error> {
        let url = Url::parse(put.url).map_err(|e| Error::Protocol {
            url: put.url.split('?').next().unwrap_or_default().to_owned(),
            message: format!("invalid upload URL: {e}"),
        })?;
        let shown = shown_url(&url);
        let mut headers = header_map(put.headers, &shown)?;
        // An explicit length keeps the body from being sent chunked, which object stores refuse.
        // Inserted, not appended: presigned URLs may sign it, and a repeated header breaks that.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(put.len));
        let timeout = self.timeout.saturating_add(Duration::from_secs(put.len / MIN_UPLOAD_BYTES_PER_SEC));
        let mut delay = INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = Arc::new(AtomicU64::new(0));
            let body = file_body(put, progress.clone(), Arc::clone(&sent)).await?;
            let request = self.http.put(url.clone()).headers(headers.clone()).timeout(timeout);
            let result = request.body(body).send().await;
            if attempt <= self.retries && retryable(&result) {
                // Those bytes go out again with the next attempt.
                progress.remove(sent.load(Ordering::Relaxed));
                tracing::debug!(url = %shown, attempt, delay_ms = delay.as_millis(), "retrying upload");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                continue;
            }
            let response = result.map_err(|source| Error::Http { url: shown.clone(), source: source.without_url() })?;
            // Object stores refuse a second write of a staged upload (`If-None-Match: *`): after
            // a retry, that means an earlier attempt landed. Completing verifies the bytes.
            if attempt > 1 && response.status() == reqwest::StatusCode::PRECONDITION_FAILED {
                return Ok(None);
            }
            let response = check(response).await?;
            let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(etag);
        }
    }
}

/// The file range as a request body that counts each chunk as it is handed to the connection.
async fn file_body(put: &FilePut<'_>, progress: Progress, sent: Arc<AtomicU64>) -> Result<reqwest::Body, Error> {
    let mut file = tokio::fs::File::open(put.path).await.map_err(Error::io("cannot open the artifact", put.path))?;
    if put.offset > 0 {
        file.seek(SeekFrom::Start(put.offset)).await.map_err(Error::io("cannot read the artifact", put.path))?;
    }
    let stream = ReaderStream::with_capacity(file.take(put.len), CHUNK_BYTES).inspect_ok(move |chunk| {
        let bytes = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        sent.fetch_add(bytes, Ordering::Relaxed);
        progress.add(bytes);
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

fn header_map(headers: &BTreeMap<String, String>, shown: &str) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let invalid = || Error::Protocol { url: shown.to_owned(), message: format!("invalid upload header {name:?}") };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The URL for messages: presigned URLs carry their signature in the query, which must not
/// end up in logs or terminals.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}
