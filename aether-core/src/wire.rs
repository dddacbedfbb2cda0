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

/// Whole numbers as JSON has them: `12` and also `12.0`, which JSON Schema (and so every client
/// generated from the API's document) counts as the same integer. Fractions, negatives and
/// values out of range are refused.
pub mod integer {
    use serde::de::{self, Deserializer, Visitor};

    struct Whole;

    impl Visitor<'_> for Whole {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::float_cmp)]
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^64 is exactly representable; anything below it with no fraction fits.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(Whole)
    }

    pub fn u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let value = u64(deserializer)?;
        u32::try_from(value).map_err(|_| de::Error::invalid_value(de::Unexpected::Unsigned(value), &"a 32-bit integer"))
    }

    pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        struct Maybe;
        impl<'de> Visitor<'de> for Maybe {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null or a non-negative integer")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
                u64(deserializer).map(Some)
            }
        }
        deserializer.deserialize_option(Maybe)
    }
}

/// The control plane's error body: `{"code": "...", "message": "..."}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// Stable, machine-readable: scripts match on it.
    #[cfg_attr(feature = "openapi", schema(example = "not_found"))]
    pub code: String,
    /// For people; may change between releases.
    #[cfg_attr(feature = "openapi", schema(example = "app web not found"))]
    pub message: String,
}

/// The schemas of [`AppName`] and [`Digest`]: strings with exactly the patterns `parse`
/// accepts, so that an API client can validate before it sends.
#[cfg(feature = "openapi")]
mod schemas {
    use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

    use super::{AppName, Digest, MAX_LABEL};

    /// What [`AppName::parse`] accepts (with the length bound beside it).
    pub const APP_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";
    /// What [`Digest::parse`] accepts.
    pub const DIGEST_PATTERN: &str = "^(sha256:)?[0-9a-f]{64}$";

    impl utoipa::PartialSchema for AppName {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("An app name: a DNS-1123 label (lowercase letters, digits and '-')."))
                .pattern(Some(APP_NAME_PATTERN))
                .min_length(Some(1))
                .max_length(Some(MAX_LABEL))
                .examples(["web"])
                .into()
        }
    }

    impl utoipa::ToSchema for AppName {}

    impl utoipa::PartialSchema for Digest {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A SHA-256 as 64 lowercase hex characters; `sha256:` may prefix it."))
                .pattern(Some(DIGEST_PATTERN))
                .examples(["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
                .into()
        }
    }

    impl utoipa::ToSchema for Digest {}

    /// What ids of uploads, deployments and tokens look like: lowercase hyphenated UUIDs.
    pub const ID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

    /// The schema of ids (kept as `String`s in the wire types).
    #[derive(Debug)]
    pub struct Id;

    impl utoipa::PartialSchema for Id {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("An id: a lowercase hyphenated UUID."))
                .pattern(Some(ID_PATTERN))
                .examples(["0b0e6f0e-4a7e-4c47-9d1a-3f2b8f6f9a10"])
                .into()
        }
    }

    impl utoipa::ToSchema for Id {}

    /// The schema of timestamps (kept as `String`s): RFC 3339 in UTC, to the millisecond.
    #[derive(Debug)]
    pub struct Timestamp;

    impl utoipa::PartialSchema for Timestamp {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
                .examples(["2026-12-08T03:00:00.000Z"])
                .into()
        }
    }

    impl utoipa::ToSchema for Timestamp {}

    /// Schemas of strings that take one of a few values. The wire types keep them as `String`s,
    /// so a client built against an older document still reads a value added later.
    macro_rules! string_enum {
        ($(#[$doc:meta])* $name:ident: $($value:literal),+) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new().schema_type(Type::String).enum_values(Some([$($value),+])).into()
                }
            }

            impl utoipa::ToSchema for $name {}
        };
    }

    string_enum!(
        /// How to upload after a presign: `PUT`, or `NONE` when the digest is stored already.
        UploadMethod: "PUT", "NONE"
    );
    string_enum!(
        /// How to upload one part.
        PartMethod: "PUT"
    );
    string_enum!(
        /// What a completion did.
        CompleteStatus: "stored"
    );
    string_enum!(
        /// A token's role.
        RoleName: "admin", "deployer", "reader"
    );
}

#[cfg(feature = "openapi")]
pub use schemas::{
    APP_NAME_PATTERN, CompleteStatus, DIGEST_PATTERN, ID_PATTERN, Id, PartMethod, RoleName, Timestamp, UploadMethod,
};

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
    fn integers_may_be_written_with_a_zero_fraction() {
        #[derive(serde::Deserialize)]
        struct Sizes {
            #[serde(deserialize_with = "integer::u64")]
            size: u64,
            #[serde(deserialize_with = "integer::u32")]
            part: u32,
            #[serde(default, deserialize_with = "integer::option_u64")]
            ttl: Option<u64>,
        }
        let parsed: Sizes = serde_json::from_str(r#"{"size": 18196.0, "part": 7, "ttl": 60.0}"#).unwrap();
        assert_eq!((parsed.size, parsed.part, parsed.ttl), (18196, 7, Some(60)));
        let parsed: Sizes = serde_json::from_str(r#"{"size": 1, "part": 2, "ttl": null}"#).unwrap();
        assert_eq!(parsed.ttl, None);
        let parsed: Sizes = serde_json::from_str(r#"{"size": 1, "part": 2}"#).unwrap();
        assert_eq!(parsed.ttl, None);
        for bad in [
            r#"{"size": 1.5, "part": 1}"#,
            r#"{"size": -1, "part": 1}"#,
            r#"{"size": 1e30, "part": 1}"#,
            r#"{"size": 1, "part": 4294967296}"#,
            r#"{"size": "1", "part": 1}"#,
            r#"{"size": 1, "part": 1, "ttl": -2.0}"#,
        ] {
            assert!(serde_json::from_str::<Sizes>(bad).is_err(), "{bad}");
        }
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
