//! `aether-server fetch`: the init container of every Kubernetes pod the control plane creates.
//!
//! It downloads one artifact from a presigned URL, checks that the deployed digest carries a
//! valid signature by one of the app's keys and that the bytes hash to that digest, and unpacks
//! them with core's hostile-input unpacker into the directory the app's container then mounts
//! read-only. Nothing about the archive is trusted: every entry is read only after the whole
//! file matched the digest, and every rule of [`aether_core::unpack`] applies to it.
//! [`install`] says how the release lands in a directory that may be a mount point.

mod download;
mod install;

use std::fmt;
use std::io;
use std::path::PathBuf;

use aether_core::digest::is_valid_sha256_hex;
use aether_core::signing::{VerifyError, verify_digest_any};
use aether_core::unpack::{UnpackError, UnpackLimits, UnpackSummary};

pub use download::{DownloadError, RetryPolicy};

use install::Install;

/// Where the artifact comes from. Presigned URLs carry their credentials (the object store's
/// signature in the query, the local store's token in the path), so `Display` and `Debug` show
/// only the origin, and only the origin ever reaches a message.
#[derive(Clone)]
pub struct DownloadUrl(reqwest::Url);

impl DownloadUrl {
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        // The parser's messages describe the problem without quoting the input.
        let url = reqwest::Url::parse(text).map_err(|e| FetchError::InvalidUrl { reason: e.to_string() })?;
        match url.scheme() {
            "http" | "https" => Ok(Self(url)),
            other => Err(FetchError::InvalidUrl { reason: format!("unsupported scheme {other:?}") }),
        }
    }

    /// `scheme://host[:port]`: enough to tell which server failed, nothing that grants access.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }
}

impl fmt::Display for DownloadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/…", self.origin())
    }
}

impl fmt::Debug for DownloadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DownloadUrl({self})")
    }
}

/// One fetch, as the control plane describes it in the pod's init container.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub url: DownloadUrl,
    /// SHA-256 of the `.tar.gz` blob, the artifact's identity.
    pub sha256: String,
    pub dest: PathBuf,
    /// Signature over the digest, by one of `public_keys`.
    ///
    /// The control plane passes a signature and the app's active keys together, and only for a
    /// deployment whose signature it verified; so either one without the other means the
    /// request is not what the control plane meant, and it is refused rather than guessed at:
    /// keys without a signature would otherwise let an unsigned artifact through where a signed
    /// one is expected, and a signature without keys cannot be checked.
    pub signature: Option<String>,
    pub public_keys: Vec<String>,
    /// Whether existing contents of `dest` are removed first (see [`install`]).
    pub replace: bool,
    pub retry: RetryPolicy,
}

/// What was fetched and unpacked.
#[derive(Debug, Clone)]
pub struct FetchSummary {
    /// The verified digest, lowercase.
    pub sha256: String,
    pub size_bytes: u64,
    pub unpacked: UnpackSummary,
}

/// Why a fetch failed. `Display` is a one-line summary; the `source` chain adds the cause.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid --url: {reason}")]
    InvalidUrl { reason: String },
    #[error("invalid --sha256 {value:?}: expected 64 hex characters")]
    InvalidDigest { value: String },
    #[error("--signature needs at least one --public-key to verify against")]
    SignatureWithoutKeys,
    #[error("--public-key given without --signature: a signed artifact is expected, refusing an unsigned one")]
    KeysWithoutSignature,
    #[error("signature rejected: {reason}")]
    SignatureRejected { reason: String },
    /// An answer that a later attempt would get again (404, an expired URL's 403, ...).
    #[error("download refused")]
    Refused(#[source] DownloadError),
    #[error("download failed after {attempts} attempts")]
    Exhausted {
        attempts: u32,
        #[source]
        last: DownloadError,
    },
    #[error("artifact is larger than {limit_bytes} bytes, more than the unpack limits can accept")]
    TooLarge { limit_bytes: u64 },
    #[error("digest mismatch: expected {expected}, got {actual} ({size_bytes} bytes from {origin})")]
    DigestMismatch { expected: String, actual: String, size_bytes: u64, origin: String },
    /// The archive broke one of the unpacker's rules.
    #[error("archive refused")]
    Archive(#[source] UnpackError),
    #[error("destination {} is not empty; pass --replace to replace its contents", .path.display())]
    DestinationNotEmpty { path: PathBuf },
    #[error("{context}")]
    Local {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// The process exit code: 1 local trouble (destination, disk), 2 a malformed request,
    /// 3 the download failed, 4 the artifact failed verification (digest or signature),
    /// 5 the archive was refused by the unpacker.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::DestinationNotEmpty { .. } | Self::Local { .. } => 1,
            Self::InvalidUrl { .. }
            | Self::InvalidDigest { .. }
            | Self::SignatureWithoutKeys
            | Self::KeysWithoutSignature => 2,
            Self::Refused(_) | Self::Exhausted { .. } => 3,
            Self::SignatureRejected { .. } | Self::DigestMismatch { .. } => 4,
            Self::TooLarge { .. } | Self::Archive(_) => 5,
        }
    }

    fn local(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Local { context, source }
    }
}

/// Downloads, verifies and unpacks the artifact into `request.dest`, which afterwards holds
/// exactly the release, or, on any error, what it held before minus what `replace` removed.
pub async fn fetch(request: &FetchRequest) -> Result<FetchSummary, FetchError> {
    let digest = check_request(request)?;
    let limits = UnpackLimits::default();
    let client = download::client(&request.retry)?;
    let install = Install::prepare(&request.dest, request.replace)?;
    let path = install.download_path();
    let mut file =
        tokio::fs::File::create(&path).await.map_err(FetchError::local(format!("cannot create {}", path.display())))?;
    let downloaded =
        download::download(&client, &request.url, &mut file, &request.retry, limits.max_archive_bytes()).await?;
    drop(file);
    if downloaded.sha256 != digest {
        return Err(FetchError::DigestMismatch {
            expected: digest,
            actual: downloaded.sha256,
            size_bytes: downloaded.size_bytes,
            origin: request.url.origin(),
        });
    }
    let unpacked = tokio::task::spawn_blocking(move || install.commit(&limits))
        .await
        .map_err(|e| FetchError::Local { context: "unpacking stopped".into(), source: io::Error::other(e) })??;
    tracing::info!(
        digest = %digest,
        size_bytes = downloaded.size_bytes,
        files = unpacked.files,
        unpacked_bytes = unpacked.total_bytes,
        "artifact verified and unpacked"
    );
    Ok(FetchSummary { sha256: digest, size_bytes: downloaded.size_bytes, unpacked })
}

/// Everything that can be refused without a byte of network traffic; returns the digest in
/// the lowercase form signatures are made over.
fn check_request(request: &FetchRequest) -> Result<String, FetchError> {
    let digest = request.sha256.trim().to_ascii_lowercase();
    if !is_valid_sha256_hex(&digest) {
        return Err(FetchError::InvalidDigest { value: request.sha256.clone() });
    }
    let signature = match (&request.signature, request.public_keys.is_empty()) {
        (None, true) => return Ok(digest),
        (None, false) => return Err(FetchError::KeysWithoutSignature),
        (Some(_), true) => return Err(FetchError::SignatureWithoutKeys),
        (Some(signature), false) => signature,
    };
    // The signature is over the digest, so it can be checked before downloading: the bytes
    // must then hash to that digest.
    let keys = request.public_keys.iter().map(String::as_str);
    verify_digest_any(keys, &digest, signature).map_err(|error| FetchError::SignatureRejected {
        reason: match error {
            VerifyError::Mismatch => format!(
                "it does not verify against any of the {} given public key(s) for digest {digest}",
                request.public_keys.len()
            ),
            other => other.to_string(),
        },
    })?;
    Ok(digest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aether_core::digest::sha256_hex;
    use aether_core::signing::SigningKey;

    use super::*;

    fn request(url: &str) -> FetchRequest {
        FetchRequest {
            url: DownloadUrl::parse(url).unwrap(),
            sha256: sha256_hex(b"artifact"),
            dest: PathBuf::from("/nonexistent"),
            signature: None,
            public_keys: Vec::new(),
            replace: false,
            retry: RetryPolicy::default(),
        }
    }

    #[test]
    fn urls_show_only_their_origin() {
        let url =
            DownloadUrl::parse("https://user:pw@bucket.example:9000/downloads/TOKEN?X-Amz-Signature=SIG").unwrap();
        for shown in [url.to_string(), format!("{url:?}"), format!("{:?}", request(url.0.as_ref()))] {
            assert!(shown.contains("https://bucket.example:9000"), "{shown}");
            for secret in ["TOKEN", "SIG", "pw", "user"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        let error = DownloadUrl::parse("ftp://host/TOKEN").unwrap_err().to_string();
        assert!(error.contains("ftp") && !error.contains("TOKEN"), "{error}");
    }

    #[test]
    fn signature_and_keys_come_together() {
        let key = SigningKey::from_seed([3; 32]);
        let mut req = request("http://h/a");
        assert_eq!(check_request(&req).unwrap(), req.sha256);
        req.public_keys = vec![key.public_key_hex()];
        assert!(matches!(check_request(&req), Err(FetchError::KeysWithoutSignature)));
        req.signature = Some(key.sign_digest(&req.sha256));
        assert!(check_request(&req).is_ok());
        req.public_keys.clear();
        assert!(matches!(check_request(&req), Err(FetchError::SignatureWithoutKeys)));
    }

    #[test]
    fn uppercase_digests_are_checked_in_the_signed_form() {
        let key = SigningKey::from_seed([4; 32]);
        let mut req = request("http://h/a");
        req.signature = Some(key.sign_digest(&req.sha256));
        req.public_keys = vec![key.public_key_hex()];
        req.sha256 = req.sha256.to_ascii_uppercase();
        assert_eq!(check_request(&req).unwrap(), req.sha256.to_ascii_lowercase());
        req.sha256 = "abc".into();
        assert!(matches!(check_request(&req), Err(FetchError::InvalidDigest { .. })));
    }
}
