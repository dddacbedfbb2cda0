//! Where artifacts are stored: `AETHER_STORAGE_MODE` and the S3 adapter's settings.

use super::{ConfigError, flag_or, parse_number};
use crate::artifacts::s3::{Encryption, S3Settings, StaticCredentials, Verification};

/// The artifact store the server starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// Artifacts under `AETHER_DATA_DIR/artifacts`, presigned URLs served by this server (the
    /// default).
    Local,
    /// S3-compatible object storage.
    S3(S3Settings),
}

pub(super) fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<StorageConfig, ConfigError> {
    match get("AETHER_STORAGE_MODE").as_deref().map(str::trim) {
        None | Some("local") => Ok(StorageConfig::Local),
        Some("s3") => Ok(StorageConfig::S3(s3_settings(get)?)),
        Some(other) => Err(ConfigError {
            variable: "AETHER_STORAGE_MODE",
            message: format!("unknown storage mode {other:?} (local, s3)"),
        }),
    }
}

fn s3_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<S3Settings, ConfigError> {
    let credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Some(StaticCredentials { access_key_id, secret_access_key, session_token: get("AWS_SESSION_TOKEN") })
        }
        (None, None) => None,
        _ => {
            return Err(ConfigError {
                variable: "AWS_ACCESS_KEY_ID",
                message: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into(),
            });
        }
    };
    let encryption = match get("AETHER_S3_SSE").as_deref().map(str::trim) {
        None => None,
        Some("AES256") => Some(Encryption::Aes256),
        Some("aws:kms") => Some(Encryption::Kms { key_id: get("AETHER_S3_SSE_KMS_KEY") }),
        Some(other) => {
            return Err(ConfigError {
                variable: "AETHER_S3_SSE",
                message: format!("unknown server-side encryption {other:?} (AES256, aws:kms)"),
            });
        }
    };
    if encryption.is_none() && get("AETHER_S3_SSE_KMS_KEY").is_some() {
        return Err(ConfigError {
            variable: "AETHER_S3_SSE_KMS_KEY",
            message: "a KMS key needs AETHER_S3_SSE=aws:kms".into(),
        });
    }
    let endpoint_url = get("AETHER_S3_ENDPOINT_URL");
    if let Some(url) = &endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError {
            variable: "AETHER_S3_ENDPOINT_URL",
            message: format!("{url:?} is not an http(s) URL"),
        });
    }
    let defaults = Verification::default();
    Ok(S3Settings {
        bucket: get("AETHER_ARTIFACT_BUCKET").unwrap_or_else(|| "artifacts".to_owned()),
        endpoint_url,
        region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned()),
        credentials,
        encryption,
        verification: Verification {
            size: flag_or(get("AETHER_VERIFY_REMOTE_SIZE"), "AETHER_VERIFY_REMOTE_SIZE", defaults.size)?,
            digest: flag_or(get("AETHER_VERIFY_REMOTE_DIGEST"), "AETHER_VERIFY_REMOTE_DIGEST", defaults.digest)?,
            hash: flag_or(get("AETHER_VERIFY_REMOTE_HASH"), "AETHER_VERIFY_REMOTE_HASH", defaults.hash)?,
            hash_max_bytes: parse_number("AETHER_REMOTE_HASH_MAX_BYTES", get("AETHER_REMOTE_HASH_MAX_BYTES"))?
                .unwrap_or(defaults.hash_max_bytes),
        },
    })
}
