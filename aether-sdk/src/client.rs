//! The async client of the control-plane API: one typed method per endpoint (see
//! [`Client`]), every failure mapped to [`Error`], and retries only where repeating a request
//! cannot do anything twice.

mod endpoints;
mod logs;
mod transfer;

pub use logs::{LogStream, LogsQuery};

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use aether_core::wire::ErrorEnvelope;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::error::Error;

pub(crate) use transfer::{FilePut, Progress};

/// Per-request timeout when the caller has no opinion.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times an idempotent request is repeated after a 503 or a connection failure.
pub const DEFAULT_RETRIES: u32 = 3;
/// First pause before a retry; it doubles with every further attempt.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const USER_AGENT: &str = concat!("aether-sdk/", env!("CARGO_PKG_VERSION"));

/// How to reach the control plane.
#[derive(Clone)]
pub struct ClientConfig {
    /// E.g. `https://aether.example.com`; a path prefix (`https://host/aether`) is kept.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <token>` to the API, never to presigned upload URLs.
    pub token: Option<String>,
    /// Timeout of each API request; uploads get more time in proportion to their size.
    pub timeout: Duration,
    /// Allows sending the token over plain HTTP to a host that is not loopback. It does not
    /// weaken TLS: certificates are always verified.
    pub insecure: bool,
    /// Extra trusted root certificates (PEM, one or more), on top of the system's roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Retries of idempotent requests (GET, HEAD, POSTs with an idempotency key, upload PUTs).
    pub retries: u32,
}

impl ClientConfig {
    /// A configuration with no token, the default timeout and retries, and strict transport.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            insecure: false,
            ca_cert_pem: None,
            retries: DEFAULT_RETRIES,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("insecure", &self.insecure)
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(|pem| format!("<{} bytes>", pem.len())))
            .field("retries", &self.retries)
            .finish()
    }
}

/// A handle on the control plane. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    timeout: Duration,
    retries: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl Client {
    /// Validates the configuration and builds the client; no request is sent.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let base = parse_base_url(&config.base_url)?;
        if config.token.is_some() && !config.insecure && base.scheme() == "http" && !is_loopback(&base) {
            return Err(Error::InsecureTransport { url: base.to_string() });
        }
        let mut builder = reqwest::Client::builder().user_agent(USER_AGENT).connect_timeout(config.timeout);
        if let Some(pem) = &config.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::ClientSetup { message: format!("invalid CA certificate PEM: {}", chain(&e)) })?;
            if certs.is_empty() {
                return Err(Error::ClientSetup { message: "the CA certificate PEM holds no certificate".into() });
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| Error::ClientSetup { message: chain(&e) })?;
        Ok(Self { http, base, token: config.token, timeout: config.timeout, retries: config.retries })
    }

    /// The control plane's URL, as configured (normalised).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of an API path given as segments; each segment is percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidUrl { url: self.base.to_string(), message: "cannot hold a path".into() })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// An API request with the timeout and, when configured, the bearer token.
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url).timeout(self.timeout);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends an API request (repeating it when `idempotent`) and turns a non-2xx answer into
    /// [`Error::Api`]; returns the response with the URL it came from.
    async fn send(&self, request: RequestBuilder, idempotent: bool) -> Result<(Response, String), Error> {
        let request = request.build().map_err(|source| Error::Http {
            url: source.url().map(ToString::to_string).unwrap_or_default(),
            source: source.without_url(),
        })?;
        let url = request.url().to_string();
        let response = self
            .execute(request, idempotent)
            .await
            .map_err(|source| Error::Http { url: url.clone(), source: source.without_url() })?;
        Ok((check(response).await?, url))
    }

    /// Sends an API request and decodes its JSON answer.
    async fn fetch<T: DeserializeOwned>(&self, request: RequestBuilder, idempotent: bool) -> Result<T, Error> {
        let (response, url) = self.send(request, idempotent).await?;
        response.json::<T>().await.map_err(|source| {
            if source.is_decode() {
                Error::Protocol { url, message: format!("the answer is not the expected JSON: {}", chain(&source)) }
            } else {
                Error::Http { url, source: source.without_url() }
            }
        })
    }

    /// Runs `request`, repeating it with exponential backoff after a 503 or a failed
    /// connection while attempts remain and the request may safely be repeated.
    async fn execute(&self, request: reqwest::Request, idempotent: bool) -> Result<Response, reqwest::Error> {
        let attempts = if idempotent { self.retries.saturating_add(1) } else { 1 };
        let mut delay = INITIAL_BACKOFF;
        for attempt in 1..attempts {
            // Only bodies held in memory can be replayed; a stream goes out once.
            let Some(copy) = request.try_clone() else { break };
            let result = self.http.execute(copy).await;
            if !retryable(&result) {
                return result;
            }
            tracing::debug!(url = %request.url(), attempt, delay_ms = delay.as_millis(), "retrying");
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        self.http.execute(request).await
    }
}

/// Whether an attempt of an idempotent request failed in a way a later, identical attempt may
/// not: the server said it is unavailable, or the transport failed (no connection, a reset
/// or a stall mid-request). Repeating is safe because the caller only retries requests whose
/// repetition changes nothing: reads, PUTs that replace, and POSTs carrying an idempotency key.
fn retryable(result: &Result<Response, reqwest::Error>) -> bool {
    match result {
        Ok(response) => response.status() == StatusCode::SERVICE_UNAVAILABLE,
        Err(error) => error.is_connect() || error.is_timeout() || error.is_request() || error.is_body(),
    }
}

/// Passes 2xx answers through; anything else becomes [`Error::Api`].
async fn check(response: Response) -> Result<Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // The status alone still says what went wrong when the body cannot be read.
    let body = response.bytes().await.unwrap_or_default();
    Err(api_error(status, &body))
}

/// Reads the `{code, message}` envelope; answers without one (HEAD, proxies, object stores)
/// get a code derived from the status.
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return Error::Api { status: status.as_u16(), code: envelope.code, message: envelope.message };
    }
    let reason = status.canonical_reason().unwrap_or("unexpected status").to_ascii_lowercase();
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() { reason.clone() } else { text.chars().take(300).collect() };
    Error::Api { status: status.as_u16(), code: reason.replace([' ', '-'], "_"), message }
}

fn parse_base_url(raw: &str) -> Result<Url, Error> {
    let invalid = |message: &str| Error::InvalidUrl { url: raw.to_owned(), message: message.to_owned() };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(invalid("a host is required"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials belong in the token, not in the URL"));
    }
    Ok(url)
}

/// Traffic to these hosts never leaves the machine, so plain HTTP cannot expose the token.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// An error and its causes on one line; reqwest keeps the useful part in the causes.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in ["http://127.0.0.1:8080", "http://127.1.2.3", "http://[::1]:3000", "http://LOCALHOST/x"] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in ["http://10.0.0.1", "http://example.com", "http://localhost.example.com", "http://[::2]"] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn base_urls_are_validated() {
        for bad in ["ftp://host", "not a url", "http://host/?q=1", "http://user:pw@host", "file:///tmp"] {
            assert!(matches!(parse_base_url(bad), Err(Error::InvalidUrl { .. })), "{bad}");
        }
        assert!(parse_base_url("https://host/prefix/").is_ok());
    }

    #[test]
    fn envelopes_and_bare_statuses_become_api_errors() {
        let body = br#"{"code":"conflict","message":"app web already exists"}"#;
        let Error::Api { status, code, message } = api_error(StatusCode::CONFLICT, body) else { panic!() };
        assert_eq!((status, code.as_str(), message.as_str()), (409, "conflict", "app web already exists"));
        let Error::Api { code, message, .. } = api_error(StatusCode::BAD_GATEWAY, b"") else { panic!() };
        assert_eq!((code.as_str(), message.as_str()), ("bad_gateway", "bad gateway"));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let config = ClientConfig { token: Some("s3cret".into()), ..ClientConfig::new("https://h") };
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(!format!("{:?}", Client::new(config).unwrap()).contains("s3cret"));
    }
}
