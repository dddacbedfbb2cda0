//! An [`ArtifactStore`] on S3-compatible object storage (AWS S3, MinIO, ...), through
//! `aws-sdk-s3` with path-style addressing.
//!
//! Keys: published blobs at `<key>` (`artifacts/sha256/<digest>.tar.gz`), each upload's staged
//! object at `staging/<upload id>`. Clients write the staged object themselves through a
//! presigned PUT whose signed headers pin the declared `Content-Length`, the SHA-256 (as
//! `x-amz-checksum-sha256`, so S3 refuses other bytes at the door), server-side encryption and
//! `If-None-Match: *`. Publishing copies the staged object server-side to its key and then
//! replaces the staged object by an empty marker: a URL used again after its upload was
//! completed or discarded meets an existing object and is refused (412). The collector purges
//! markers once the URLs have expired. Multipart uploads assemble into the staging key too;
//! their part URLs die with the multipart upload.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumMode, CompletedMultipartUpload, CompletedPart, MetadataDirective, ServerSideEncryption,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::{validate_key, validate_upload_id};
use crate::ports::{
    ArtifactStore, BlobError, BlobInfo, BlobResult, Measured, PresignedRequest, StagedEntry, StagedUpload,
};

/// Metadata key holding an object's SHA-256 (hex), sent as `x-amz-meta-sha256`.
const SHA256_METADATA: &str = "sha256";
/// Metadata key marking the empty object that replaces a finished upload's staged bytes.
const MARKER_METADATA: &str = "aether-upload-ended";
/// CopyObject copies at most this much in one request; larger objects are copied in parts.
const MAX_SINGLE_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// An object store that does not accept a connection by then is down (a readiness failure).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Part size of server-side copies of larger objects.
const COPY_PART_BYTES: u64 = 1024 * 1024 * 1024;

/// Server-side encryption requested on every write (`AETHER_S3_SSE`).
#[derive(Clone, PartialEq, Eq)]
pub enum Encryption {
    /// `AES256`: S3-managed keys.
    Aes256,
    /// `aws:kms`, with `AETHER_S3_SSE_KMS_KEY` or the bucket's default KMS key.
    Kms { key_id: Option<String> },
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aes256 => f.write_str("AES256"),
            Self::Kms { key_id } => write!(f, "aws:kms ({})", if key_id.is_some() { "key set" } else { "default key" }),
        }
    }
}

/// How completed uploads are checked before they are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// `AETHER_VERIFY_REMOTE_SIZE`: compare the stored size with the declared one.
    pub size: bool,
    /// `AETHER_VERIFY_REMOTE_DIGEST`: compare S3's SHA-256 checksum with the declared digest.
    /// Multipart objects carry only a checksum of their parts' checksums, so they are read
    /// back and hashed instead.
    pub digest: bool,
    /// `AETHER_VERIFY_REMOTE_HASH`: read back and hash objects up to `hash_max_bytes`.
    pub hash: bool,
    pub hash_max_bytes: u64,
}

impl Default for Verification {
    fn default() -> Self {
        Self { size: true, digest: true, hash: true, hash_max_bytes: 8_000_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `AETHER_ARTIFACT_BUCKET`.
    pub bucket: String,
    /// `AETHER_S3_ENDPOINT_URL`: any S3-compatible endpoint; unset means AWS.
    pub endpoint_url: Option<String>,
    /// `AWS_REGION` (default `us-east-1`).
    pub region: String,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when given; otherwise the AWS default
    /// chain (profile, web identity, container and instance credentials).
    pub credentials: Option<StaticCredentials>,
    pub encryption: Option<Encryption>,
    pub verification: Verification,
}

/// A key pair given in configuration. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

pub struct S3ArtifactStore {
    client: Client,
    settings: S3Settings,
}

impl fmt::Debug for S3ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3ArtifactStore").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl S3ArtifactStore {
    /// Builds the client; nothing is sent until the store is used (`ping` checks the bucket).
    pub async fn connect(settings: S3Settings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()));
        if let Some(credentials) = &settings.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.clone(),
                credentials.session_token.clone(),
                None,
                "aether-configuration",
            ));
        }
        let shared = loader.load().await;
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).build();
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .timeout_config(timeouts)
            // Checksums are ours to choose: the SDK must not add its own to presigned requests.
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint_url {
            config = config.endpoint_url(endpoint.trim_end_matches('/'));
        }
        Self { client: Client::from_conf(config.build()), settings }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    /// [`ArtifactStore::presign_upload`] with the URL's validity starting at `start`, so tests
    /// can obtain URLs that have already expired.
    pub async fn presign_upload_from(
        &self,
        upload: &StagedUpload<'_>,
        start: SystemTime,
        expires_in: Duration,
    ) -> BlobResult<PresignedRequest> {
        let key = staging_key(upload.id)?;
        let checksum = checksum_of(upload.sha256)?;
        let size = i64::try_from(upload.size_bytes).map_err(|_| BlobError::Invalid("size out of range".into()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .content_length(size)
            .content_type("application/octet-stream")
            .checksum_sha256(checksum)
            .if_none_match("*")
            .metadata(SHA256_METADATA, upload.sha256)
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key());
        let config = presigning(start, expires_in)?;
        let presigned = request.presigned(config).await.map_err(|e| s3_error("presign PutObject", e))?;
        Ok(presigned_request(&presigned))
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        self.settings.encryption.as_ref().map(|encryption| match encryption {
            Encryption::Aes256 => ServerSideEncryption::Aes256,
            Encryption::Kms { .. } => ServerSideEncryption::AwsKms,
        })
    }

    fn kms_key(&self) -> Option<String> {
        match &self.settings.encryption {
            Some(Encryption::Kms { key_id }) => key_id.clone(),
            _ => None,
        }
    }

    /// `HEAD` of `key`, with S3's checksums; `None` when absent.
    async fn head_object(&self, key: &str) -> BlobResult<Option<aws_sdk_s3::operation::head_object::HeadObjectOutput>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(head) => Ok(Some(head)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(s3_error("HeadObject", error)),
        }
    }

    /// Streams `key` through SHA-256.
    async fn hash_object(&self, key: &str) -> BlobResult<BlobInfo> {
        let mut reader = self.open(key).await?;
        let mut buf = vec![0u8; 1024 * 1024];
        let (mut hasher, mut size_bytes) = (Sha256::new(), 0u64);
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| BlobError::backend("reading from S3", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size_bytes += n as u64;
        }
        Ok(BlobInfo { size_bytes, sha256: hex::encode(hasher.finalize()) })
    }

    /// Replaces whatever is staged for the upload by the empty marker that refuses its URL.
    async fn mark_ended(&self, upload_id: &str) -> BlobResult<()> {
        let key = staging_key(upload_id)?;
        self.client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .body(ByteStream::from_static(b""))
            .metadata(MARKER_METADATA, "1")
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .send()
            .await
            .map_err(|e| s3_error("PutObject (upload marker)", e))?;
        Ok(())
    }

    /// Server-side copy of `from` to `to`, in parts when S3's single-copy limit requires it.
    async fn copy(&self, from: &str, to: &str, size: u64) -> BlobResult<()> {
        let source = format!("{}/{from}", self.settings.bucket);
        if size <= MAX_SINGLE_COPY_BYTES {
            self.client
                .copy_object()
                .bucket(&self.settings.bucket)
                .key(to)
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Copy)
                .set_server_side_encryption(self.sse())
                .set_ssekms_key_id(self.kms_key())
                .send()
                .await
                .map_err(|e| s3_error("CopyObject", e))?;
            return Ok(());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(to)
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload (copy)", e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let copied = self.copy_parts(&source, to, &upload_id, size).await;
        if copied.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.settings.bucket)
                .key(to)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        copied
    }

    async fn copy_parts(&self, source: &str, to: &str, upload_id: &str, size: u64) -> BlobResult<()> {
        let mut parts = Vec::new();
        for (index, start) in (0..size).step_by(usize::try_from(COPY_PART_BYTES).unwrap_or(usize::MAX)).enumerate() {
            let end = (start + COPY_PART_BYTES).min(size) - 1;
            let number = i32::try_from(index + 1).map_err(|_| BlobError::Invalid("too many parts".into()))?;
            let copied = self
                .client
                .upload_part_copy()
                .bucket(&self.settings.bucket)
                .key(to)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(source)
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await
                .map_err(|e| s3_error("UploadPartCopy", e))?;
            let etag = copied.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default().to_owned();
            parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(to)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload (copy)", e))?;
        Ok(())
    }

    async fn list_staged_objects(&self, found: &mut Vec<StagedEntry>) -> BlobResult<()> {
        let mut pages =
            self.client.list_objects_v2().bucket(&self.settings.bucket).prefix(STAGING).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", e))?;
            for object in page.contents() {
                let Some(upload_id) = object.key().and_then(|key| key.strip_prefix(STAGING)) else { continue };
                let modified = object.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
                found.push(StagedEntry {
                    upload_id: upload_id.to_owned(),
                    multipart_id: None,
                    modified: modified.unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(())
    }

    /// Unfinished multipart uploads under `staging/`. Stores without ListMultipartUploads
    /// (some S3-compatible servers) list none: uploads with a row are still aborted through
    /// it, and a bucket lifecycle rule (`AbortIncompleteMultipartUpload`) catches the rest.
    async fn list_staged_multipart(&self, found: &mut Vec<StagedEntry>) -> BlobResult<()> {
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.settings.bucket)
                .prefix(STAGING)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(error) if error.code() == Some("NotImplemented") => {
                    tracing::debug!("the object store cannot list multipart uploads");
                    return Ok(());
                }
                Err(error) => return Err(s3_error("ListMultipartUploads", error)),
            };
            for upload in page.uploads() {
                let Some(upload_id) = upload.key().and_then(|key| key.strip_prefix(STAGING)) else { continue };
                let modified = upload.initiated().and_then(|t| SystemTime::try_from(*t).ok());
                found.push(StagedEntry {
                    upload_id: upload_id.to_owned(),
                    multipart_id: upload.upload_id().map(str::to_owned),
                    modified: modified.unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
            if page.is_truncated() != Some(true) {
                return Ok(());
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(());
            }
        }
    }
}

const STAGING: &str = "staging/";

impl S3ArtifactStore {
    /// Refuses a part list naming a part the store does not hold, or with another ETag.
    async fn check_parts(
        &self,
        key: &str,
        upload_id: &str,
        multipart_id: &str,
        parts: &[(u32, String)],
    ) -> BlobResult<()> {
        let mut stored = std::collections::BTreeMap::new();
        let mut marker = None::<String>;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(multipart_id)
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(error) if is_gone(&error) => {
                    return Err(BlobError::NotFound(format!("multipart upload of upload {upload_id}")));
                }
                Err(error) => return Err(s3_error("ListParts", error)),
            };
            for part in page.parts() {
                let etag = part.e_tag().map(|etag| etag.trim_matches('"').to_owned());
                stored.insert(part.part_number().unwrap_or_default(), etag);
            }
            marker = page.next_part_number_marker().map(str::to_owned);
            if page.is_truncated() != Some(true) || marker.is_none() {
                break;
            }
        }
        for (number, etag) in parts {
            match stored.get(&part_number_of(*number)?) {
                None => return Err(BlobError::Conflict(format!("part {number} was not uploaded"))),
                // A store that lists parts without their ETags leaves that check to itself.
                Some(Some(stored)) if stored != etag.trim_matches('"') => {
                    return Err(BlobError::Conflict(format!("part {number} does not match its ETag")));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl ArtifactStore for S3ArtifactStore {
    async fn ping(&self) -> BlobResult<()> {
        self.client.head_bucket().bucket(&self.settings.bucket).send().await.map_err(|e| s3_error("HeadBucket", e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> BlobResult<Option<u64>> {
        validate_key(key)?;
        let head = self.head_object(key).await?;
        Ok(head.map(|head| head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0)))
    }

    async fn open(&self, key: &str) -> BlobResult<Box<dyn AsyncRead + Send + Unpin>> {
        validate_key(key)?;
        let result = self.client.get_object().bucket(&self.settings.bucket).key(key).send().await;
        match result {
            Ok(object) => Ok(Box::new(object.body.into_async_read())),
            Err(error) if is_not_found(&error) => Err(BlobError::NotFound(key.to_owned())),
            Err(error) => Err(s3_error("GetObject", error)),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", e))?;
        Ok(())
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> BlobResult<PresignedRequest> {
        validate_key(key)?;
        let config = presigning(SystemTime::now(), expires_in)?;
        let request = self.client.get_object().bucket(&self.settings.bucket).key(key);
        let presigned = request.presigned(config).await.map_err(|e| s3_error("presign GetObject", e))?;
        Ok(presigned_request(&presigned))
    }

    async fn put_staged(
        &self,
        upload_id: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
        expected_sha256: &str,
    ) -> BlobResult<BlobInfo> {
        let key = staging_key(upload_id)?;
        // S3 needs the length up front and the digest is only known at the end, so the body
        // is spooled to a local temp file (removed on drop) while it is hashed.
        let spool = tempfile::NamedTempFile::new().map_err(|e| BlobError::backend("spooling the upload", e))?;
        let info = spool_hashing(body, spool.path(), max_bytes).await?;
        if !expected_sha256.eq_ignore_ascii_case(&info.sha256) {
            return Err(BlobError::DigestMismatch { expected: expected_sha256.to_owned(), actual: info.sha256 });
        }
        let stream =
            ByteStream::from_path(spool.path()).await.map_err(|e| BlobError::backend("reading the spool", e))?;
        self.client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .body(stream)
            .content_length(i64::try_from(info.size_bytes).unwrap_or(i64::MAX))
            .checksum_sha256(checksum_of(&info.sha256)?)
            .metadata(SHA256_METADATA, &info.sha256)
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .send()
            .await
            .map_err(|e| s3_error("PutObject", e))?;
        Ok(info)
    }

    async fn presign_upload(&self, upload: &StagedUpload<'_>, expires_in: Duration) -> BlobResult<PresignedRequest> {
        self.presign_upload_from(upload, SystemTime::now(), expires_in).await
    }

    async fn create_multipart(&self, upload: &StagedUpload<'_>) -> BlobResult<String> {
        let key = staging_key(upload.id)?;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(&key)
            .content_type("application/octet-stream")
            .metadata(SHA256_METADATA, upload.sha256)
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", e))?;
        created
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| BlobError::backend("CreateMultipartUpload", "no upload id"))
    }

    async fn presign_part(
        &self,
        upload_id: &str,
        multipart_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> BlobResult<PresignedRequest> {
        let key = staging_key(upload_id)?;
        let number = part_number_of(part_number)?;
        let request = self
            .client
            .upload_part()
            .bucket(&self.settings.bucket)
            .key(&key)
            .upload_id(multipart_id)
            .part_number(number);
        let config = presigning(SystemTime::now(), expires_in)?;
        let presigned = request.presigned(config).await.map_err(|e| s3_error("presign UploadPart", e))?;
        Ok(presigned_request(&presigned))
    }

    async fn complete_multipart(&self, upload_id: &str, multipart_id: &str, parts: &[(u32, String)]) -> BlobResult<()> {
        let key = staging_key(upload_id)?;
        super::multipart::check_part_list(parts)?;
        // S3 checks the ETags itself; some compatible servers do not, so the list is held to
        // what the store recorded before anything is assembled.
        self.check_parts(&key, upload_id, multipart_id, parts).await?;
        let mut completed = Vec::with_capacity(parts.len());
        for (number, etag) in parts {
            completed.push(CompletedPart::builder().part_number(part_number_of(*number)?).e_tag(etag).build());
        }
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(&key)
            .upload_id(multipart_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.code() {
                Some("NoSuchUpload") => Err(BlobError::NotFound(format!("multipart upload of upload {upload_id}"))),
                Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "InvalidArgument") => {
                    Err(BlobError::Invalid(format!(
                        "the parts do not assemble: {}",
                        error.message().unwrap_or("invalid part list")
                    )))
                }
                _ => Err(s3_error("CompleteMultipartUpload", error)),
            },
        }
    }

    async fn measure_staged(&self, upload: &StagedUpload<'_>) -> BlobResult<Measured> {
        let key = staging_key(upload.id)?;
        let not_staged = || BlobError::NotFound(format!("the staged object of upload {}", upload.id));
        let head = self.head_object(&key).await?.ok_or_else(not_staged)?;
        if is_marker(&head) {
            return Err(not_staged());
        }
        let stored_size = head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let checks = self.settings.verification;
        let mut measured = Measured { size_bytes: checks.size.then_some(stored_size), sha256: None };
        let checksum = head.checksum_sha256().and_then(hex_of_checksum);
        let read_back = (checks.hash && stored_size <= checks.hash_max_bytes) || (checks.digest && checksum.is_none());
        if read_back {
            let info = self.hash_object(&key).await?;
            measured.sha256 = Some(info.sha256);
            if checks.size {
                measured.size_bytes = Some(info.size_bytes);
            }
        } else if checks.digest {
            measured.sha256 = checksum;
        }
        Ok(measured)
    }

    async fn publish(&self, upload_id: &str, key: &str) -> BlobResult<()> {
        validate_key(key)?;
        let staged = staging_key(upload_id)?;
        let head = self.head_object(&staged).await?;
        let head = head.filter(|head| !is_marker(head));
        let head = head.ok_or_else(|| BlobError::NotFound(format!("the staged object of upload {upload_id}")))?;
        let size = head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        self.copy(&staged, key, size).await?;
        self.mark_ended(upload_id).await
    }

    async fn discard(&self, upload_id: &str, multipart_id: Option<&str>) -> BlobResult<()> {
        let key = staging_key(upload_id)?;
        if self.head_object(&key).await?.is_some_and(|head| is_marker(&head)) {
            return Ok(());
        }
        if let Some(multipart_id) = multipart_id {
            abort(&self.client, &self.settings.bucket, &key, multipart_id).await?;
        }
        self.mark_ended(upload_id).await
    }

    async fn purge_staged(&self, upload_id: &str, multipart_id: Option<&str>) -> BlobResult<()> {
        let key = staging_key(upload_id)?;
        if let Some(multipart_id) = multipart_id {
            abort(&self.client, &self.settings.bucket, &key, multipart_id).await?;
        }
        self.client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", e))?;
        Ok(())
    }

    async fn list_staged(&self) -> BlobResult<Vec<StagedEntry>> {
        let mut found = Vec::new();
        self.list_staged_objects(&mut found).await?;
        self.list_staged_multipart(&mut found).await?;
        Ok(found)
    }
}

/// Whether a staged key holds the marker of an upload that ended rather than bytes.
fn is_marker(head: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> bool {
    head.metadata().is_some_and(|metadata| metadata.contains_key(MARKER_METADATA))
}

async fn abort(client: &Client, bucket: &str, key: &str, multipart_id: &str) -> BlobResult<()> {
    match client.abort_multipart_upload().bucket(bucket).key(key).upload_id(multipart_id).send().await {
        Ok(_) => Ok(()),
        Err(error) if is_gone(&error) => Ok(()),
        Err(error) => Err(s3_error("AbortMultipartUpload", error)),
    }
}

/// Where an upload's bytes are staged.
fn staging_key(upload_id: &str) -> BlobResult<String> {
    validate_upload_id(upload_id)?;
    Ok(format!("{STAGING}{upload_id}"))
}

/// The base64 of the raw SHA-256, as `x-amz-checksum-sha256` carries it.
fn checksum_of(sha256_hex: &str) -> BlobResult<String> {
    let raw = hex::decode(sha256_hex).ok().filter(|raw| raw.len() == 32);
    let raw = raw.ok_or_else(|| BlobError::Invalid(format!("{sha256_hex:?} is not a SHA-256")))?;
    Ok(STANDARD.encode(raw))
}

/// The hex SHA-256 of a whole object from S3's checksum; `None` for a checksum of parts
/// (`...-<count>`) or anything else that is not one.
fn hex_of_checksum(checksum: &str) -> Option<String> {
    let raw = STANDARD.decode(checksum).ok().filter(|raw| raw.len() == 32)?;
    Some(hex::encode(raw))
}

fn part_number_of(part_number: u32) -> BlobResult<i32> {
    i32::try_from(part_number)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| BlobError::Invalid(format!("part number {part_number} is outside 1..=10000")))
}

fn presigning(start: SystemTime, expires_in: Duration) -> BlobResult<PresigningConfig> {
    PresigningConfig::builder()
        .start_time(start)
        .expires_in(expires_in)
        .build()
        .map_err(|e| BlobError::Invalid(format!("presigned URL lifetime: {e}")))
}

fn presigned_request(presigned: &aws_sdk_s3::presigning::PresignedRequest) -> PresignedRequest {
    PresignedRequest {
        url: presigned.uri().to_owned(),
        method: presigned.method().to_owned(),
        headers: presigned.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
    }
}

/// Copies `body` into `path`, hashing and counting, refusing more than `max_bytes`.
async fn spool_hashing(
    body: &mut (dyn AsyncRead + Send + Unpin),
    path: &std::path::Path,
    max_bytes: u64,
) -> BlobResult<BlobInfo> {
    let mut file = tokio::fs::File::create(path).await.map_err(|e| BlobError::backend("spooling the upload", e))?;
    let mut buf = vec![0u8; 1024 * 1024];
    let (mut hasher, mut size_bytes) = (Sha256::new(), 0u64);
    loop {
        let n = body.read(&mut buf).await.map_err(|e| BlobError::Invalid(format!("reading the upload failed: {e}")))?;
        if n == 0 {
            break;
        }
        size_bytes += n as u64;
        if size_bytes > max_bytes {
            return Err(BlobError::TooLarge { limit_bytes: max_bytes });
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await.map_err(|e| BlobError::backend("spooling the upload", e))?;
    }
    file.flush().await.map_err(|e| BlobError::backend("spooling the upload", e))?;
    Ok(BlobInfo { size_bytes, sha256: hex::encode(hasher.finalize()) })
}

/// A multipart upload that no longer exists (completed or aborted). Some S3-compatible
/// servers answer `AccessDenied` for an unknown upload id instead of `NoSuchUpload`.
fn is_gone<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    is_not_found(error) || error.code() == Some("AccessDenied")
}

fn is_not_found<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    let status = error.raw_response().map(|response| response.status().as_u16());
    matches!(error.code(), Some("NoSuchKey" | "NotFound" | "NoSuchUpload")) || status == Some(404)
}

/// Every S3 failure that is not the caller's: the cause is kept for the log, the client
/// sees `service_unavailable`.
fn s3_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &str,
    error: SdkError<E, HttpResponse>,
) -> BlobError {
    let cause = aws_sdk_s3::error::DisplayErrorContext(error).to_string();
    BlobError::backend(format!("{operation} failed"), cause)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_base64_of_the_raw_digest() {
        let hex = sha256_hex_of(b"abc");
        let checksum = checksum_of(&hex).unwrap();
        assert_eq!(checksum, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        assert_eq!(hex_of_checksum(&checksum), Some(hex));
        assert_eq!(hex_of_checksum("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=-3"), None);
        assert!(checksum_of("xyz").is_err());
    }

    #[test]
    fn staging_keys_come_only_from_uuids() {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(staging_key(&id).unwrap(), format!("staging/{id}"));
        for bad in ["", "..", "a/b", &id.to_uppercase()] {
            assert!(staging_key(bad).is_err(), "{bad}");
        }
    }

    fn sha256_hex_of(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }
}
