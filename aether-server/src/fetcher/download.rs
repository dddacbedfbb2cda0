//! The artifact over HTTP(S), hashed while it is written to disk so it is never held in memory
//! or read twice, and retried when a later attempt may get what this one did not.

use std::io::Write as _;
use std::time::Duration;

use aether_core::digest::HashingWriter;
use aether_core::wire::ErrorEnvelope;
use reqwest::StatusCode;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use super::{DownloadUrl, FetchError};

/// How often and how patiently to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// How long an attempt may wait for a connection, or for the next bytes of the answer. A
    /// deadline on the whole transfer would cut off large artifacts on slow links instead.
    pub stall_timeout: Duration,
    /// Pause after the first failed attempt, doubled after each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// About 8 s of pauses in all: enough to ride out a restarting control plane or a store's
    /// throttling; beyond that the kubelet restarts the init container with its own backoff.
    fn default() -> Self {
        Self {
            attempts: 5,
            stall_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// What went wrong with one attempt. Servers appear by origin only.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("HTTP {status} from {origin}{detail}")]
    Status { status: StatusCode, origin: String, detail: String },
    #[error("request to {origin} failed")]
    Request {
        origin: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the answer from {origin} broke off after {received_bytes} bytes")]
    Body {
        origin: String,
        received_bytes: u64,
        #[source]
        source: reqwest::Error,
    },
}

/// The downloaded file's digest and size.
#[derive(Debug)]
pub(super) struct Downloaded {
    pub sha256: String,
    pub size_bytes: u64,
}

enum Failure {
    /// Another attempt may succeed.
    Transient(DownloadError),
    Permanent(FetchError),
}

pub(super) fn client(policy: &RetryPolicy) -> Result<reqwest::Client, FetchError> {
    reqwest::Client::builder()
        .connect_timeout(policy.stall_timeout)
        .read_timeout(policy.stall_timeout)
        .user_agent(concat!("aether-server-fetch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Local {
            context: "cannot set up the HTTP client".into(),
            source: std::io::Error::other(e),
        })
}

/// Downloads `url` into `file` (rewritten from the start on each attempt), stopping past
/// `max_bytes`.
pub(super) async fn download(
    client: &reqwest::Client,
    url: &DownloadUrl,
    file: &mut tokio::fs::File,
    policy: &RetryPolicy,
    max_bytes: u64,
) -> Result<Downloaded, FetchError> {
    let attempts = policy.attempts.max(1);
    let mut delay = policy.initial_backoff;
    let mut attempt = 1;
    loop {
        let error = match attempt_once(client, url, file, max_bytes).await {
            Ok(downloaded) => return Ok(downloaded),
            Err(Failure::Permanent(error)) => return Err(error),
            Err(Failure::Transient(error)) => error,
        };
        if attempt >= attempts {
            return Err(FetchError::Exhausted { attempts, last: error });
        }
        // Jitter, so the pods of a large rollout do not retry in lockstep.
        let pause = delay.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        tracing::warn!(
            attempt,
            attempts,
            retry_in_ms = pause.as_millis(),
            error = format!("{:#}", anyhow::Error::from(error)),
            "download attempt failed"
        );
        tokio::time::sleep(pause).await;
        delay = delay.saturating_mul(2).min(policy.max_backoff);
        attempt += 1;
    }
}

async fn attempt_once(
    client: &reqwest::Client,
    url: &DownloadUrl,
    file: &mut tokio::fs::File,
    max_bytes: u64,
) -> Result<Downloaded, Failure> {
    let origin = url.origin();
    let local = |context: &str| {
        let context = context.to_owned();
        move |source| Failure::Permanent(FetchError::Local { context, source })
    };
    file.set_len(0).await.map_err(local("cannot truncate the download file"))?;
    file.rewind().await.map_err(local("cannot rewind the download file"))?;
    let mut response = client.get(url.0.clone()).send().await.map_err(|source| {
        // Builder and redirect errors come from the URL or the server's setup, not from chance.
        let permanent = source.is_builder() || source.is_redirect();
        let error = DownloadError::Request { origin: origin.clone(), source: source.without_url() };
        if permanent { Failure::Permanent(FetchError::Refused(error)) } else { Failure::Transient(error) }
    })?;
    let status = response.status();
    if !status.is_success() {
        let error = DownloadError::Status { status, origin, detail: detail(response).await };
        return Err(if transient(status) {
            Failure::Transient(error)
        } else {
            Failure::Permanent(FetchError::Refused(error))
        });
    }
    let too_large = || Failure::Permanent(FetchError::TooLarge { limit_bytes: max_bytes });
    if response.content_length().is_some_and(|length| length > max_bytes) {
        return Err(too_large());
    }
    let mut hasher = HashingWriter::new(std::io::sink());
    let mut received = 0u64;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // A connection that breaks mid-body, or a body shorter than its Content-Length.
            Err(source) => {
                let source = source.without_url();
                return Err(Failure::Transient(DownloadError::Body { origin, received_bytes: received, source }));
            }
        };
        received = received.saturating_add(chunk.len() as u64);
        if received > max_bytes {
            return Err(too_large());
        }
        hasher.write_all(&chunk).map_err(local("cannot hash the download"))?;
        file.write_all(&chunk).await.map_err(local("cannot write the download file"))?;
    }
    file.flush().await.map_err(local("cannot write the download file"))?;
    let (_, sha256, size_bytes) = hasher.finish();
    Ok(Downloaded { sha256, size_bytes })
}

/// Server errors, timeouts and throttling pass; other client errors (a 404, an expired
/// presigned URL's 403) would be answered the same way again.
fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
}

/// Most of what a refusal means is in its body: the control plane's envelope, or an object
/// store's XML error ("Request has expired"). Only the code and message are shown, on one
/// line: other fields of an S3 error can echo the request.
async fn detail(mut response: reqwest::Response) -> String {
    const MAX_BODY: usize = 4096;
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    explain(&body).map(|text| format!(": {text}")).unwrap_or_default()
}

fn explain(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let (code, message) = match serde_json::from_str::<ErrorEnvelope>(&text) {
        Ok(envelope) => (Some(envelope.code), Some(envelope.message)),
        Err(_) => (xml_element(&text, "Code"), xml_element(&text, "Message")),
    };
    let joined = match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => return None,
    };
    let line: String = joined.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    Some(line.trim().to_owned()).filter(|line| !line.is_empty())
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let length = text.get(start..)?.find(&format!("</{name}>"))?;
    text.get(start..start + length).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_explained_by_code_and_message_only() {
        let s3 = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires></Error>"#;
        assert_eq!(explain(s3).as_deref(), Some("AccessDenied: Request has expired"));
        let envelope = br#"{"code":"not_found","message":"no such download"}"#;
        assert_eq!(explain(envelope).as_deref(), Some("not_found: no such download"));
        assert_eq!(explain(b"<html>oops</html>"), None);
        assert_eq!(explain(b"<Message>two\nlines</Message>").as_deref(), Some("two lines"));
    }

    #[test]
    fn only_server_errors_timeouts_and_throttling_are_retried() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(transient(StatusCode::from_u16(status).unwrap_or_default()), "{status}");
        }
        for status in [400, 401, 403, 404, 410] {
            assert!(!transient(StatusCode::from_u16(status).unwrap_or_default()), "{status}");
        }
    }
}
