//! Names and values that cross the wire between clients and the control plane, validated once
//! here so the SDK and the server agree on what is acceptable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::is_valid_sha256_hex;

/// Longest DNS-1123 label.
const MAX_LABEL: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("app name must not be empty")]
    Empty,
    #[error("app name {name:?} is longer than {MAX_LABEL} characters")]
    TooLong { name: String },
    #[error(
        "app name {name:?} is not a DNS-1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    Invalid { name: String },
}

/// An application name: a DNS-1123 label, so it can name Kubernetes objects and hostnames.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_LABEL {
            return Err(NameError::TooLong { name: name.to_owned() });
        }
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = name.as_bytes();
        let ends_ok = bytes.first().copied().is_some_and(allowed) && bytes.last().copied().is_some_and(allowed);
        if !ends_ok || !bytes.iter().all(|&b| allowed(b) || b == b'-') {
            return Err(NameError::Invalid { name: name.to_owned() });
        }
        Ok(Self(name.to_owned()))
    }

    /// Turns a package.json name (`@scope/My_App`) into the closest valid label (`scope-my-app`).
    pub fn normalise(raw: &str) -> Result<Self, NameError> {
        let mut out = String::with_capacity(raw.len());
        for c in raw.trim_start_matches('@').chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        let trimmed: String = out.trim_matches('-').chars().take(MAX_LABEL).collect();
        Self::parse(trimmed.trim_end_matches('-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AppName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest {0:?} is not 64 lowercase hex characters (a SHA-256)")]
pub struct DigestError(pub String);

/// A SHA-256 digest as 64 lowercase hex characters; a `sha256:` prefix is accepted on input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn parse(raw: &str) -> Result<Self, DigestError> {
        let hex = raw.strip_prefix("sha256:").unwrap_or(raw);
        if is_valid_sha256_hex(hex) { Ok(Self(hex.to_owned())) } else { Err(DigestError(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The control plane's error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_dns_labels() {
        for ok in ["a", "api", "my-app-2", &"a".repeat(63)] {
            assert!(AppName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "My-App", "a_b", "a.b", "ä", &"a".repeat(64), "a b"] {
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn package_names_normalise_to_labels() {
        assert_eq!(AppName::normalise("@acme/My_App").unwrap().as_str(), "acme-my-app");
        assert_eq!(AppName::normalise("sample-node").unwrap().as_str(), "sample-node");
        assert_eq!(AppName::normalise("--x--").unwrap().as_str(), "x");
        assert!(AppName::normalise("@@@").is_err());
    }

    #[test]
    fn digests_are_validated_and_deserialised() {
        let hex = "a".repeat(64);
        assert_eq!(Digest::parse(&format!("sha256:{hex}")).unwrap().as_str(), hex);
        assert!(Digest::parse(&"A".repeat(64)).is_err());
        assert!(serde_json::from_str::<Digest>("\"abc\"").is_err());
        assert!(serde_json::from_str::<AppName>("\"Bad Name\"").is_err());
    }
}
