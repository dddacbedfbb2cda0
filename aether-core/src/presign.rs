//! Tokens for presigned URLs served by the server itself (`PUT /uploads/{token}`,
//! `GET /downloads/{token}`).
//!
//! A token is `<claim>.<mac>`: the URL-safe base64 (no padding) of a compact JSON claim and of
//! an HMAC-SHA256 over that encoded claim. The claim grants one thing (writing the staged
//! object of one upload with its declared size and SHA-256, writing one part of one upload, or
//! reading one published blob) until an expiry, so a leaked URL cannot be used for anything else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Mixed into every MAC so the signing secret cannot be confused with any other use of it.
/// Version 2: claims name staged uploads; version-1 tokens wrote final keys and are refused.
const DOMAIN: &[u8] = b"aether-presign-v2\n";

/// Far above any valid token (keys are at most 512 bytes); refusing longer input early keeps a
/// hostile URL from costing more than a bounded decode.
const MAX_TOKEN_LEN: usize = 4096;

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "a", deny_unknown_fields)]
pub enum Grant {
    /// One PUT of exactly `size_bytes` bytes hashing to `sha256` into the upload's staging area.
    #[serde(rename = "put")]
    Upload {
        #[serde(rename = "u")]
        upload_id: String,
        #[serde(rename = "n")]
        size_bytes: u64,
        #[serde(rename = "s")]
        sha256: String,
    },
    /// One part of the upload's multipart assembly.
    #[serde(rename = "part")]
    Part {
        #[serde(rename = "u")]
        upload_id: String,
        #[serde(rename = "p")]
        part_number: u32,
    },
    /// Reading one published blob.
    #[serde(rename = "get")]
    Download {
        #[serde(rename = "k")]
        key: String,
    },
}

/// A grant and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignClaim {
    #[serde(rename = "g")]
    pub grant: Grant,
    #[serde(rename = "e")]
    pub expires_at_unix_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("malformed presigned token")]
    Malformed,
    #[error("presigned token has a bad signature")]
    BadSignature,
    #[error("presigned token has expired")]
    Expired,
}

/// Signs `claim`; the result is safe to put in a URL path segment.
pub fn sign(claim: &PresignClaim, secret: &[u8; 32]) -> String {
    // Serialising a struct of strings and integers cannot fail; the empty fallback would only
    // produce a token that `verify` rejects as malformed.
    let json = serde_json::to_vec(claim).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let tag = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks the token's signature and expiry (expired once `now_unix_s >= expires_at_unix_s`)
/// and returns its claim.
pub fn verify(token: &str, secret: &[u8; 32], now_unix_s: u64) -> Result<PresignClaim, PresignError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(PresignError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(PresignError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| PresignError::Malformed)?;
    // The MAC is checked before the claim is parsed so unauthenticated input never reaches
    // the JSON parser; `verify_slice` compares in constant time.
    mac(secret, payload.as_bytes()).verify_slice(&tag).map_err(|_| PresignError::BadSignature)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| PresignError::Malformed)?;
    let claim: PresignClaim = serde_json::from_slice(&json).map_err(|_| PresignError::Malformed)?;
    if now_unix_s >= claim.expires_at_unix_s {
        return Err(PresignError::Expired);
    }
    Ok(claim)
}

fn mac(secret: &[u8; 32], payload: &[u8]) -> HmacSha256 {
    // HMAC zero-pads keys shorter than the hash's block size (RFC 2104), so padding the
    // 32-byte secret to the 64-byte block gives the same MAC while using the infallible
    // constructor instead of `new_from_slice`'s `Result`.
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(secret);
    let mut mac = <HmacSha256 as KeyInit>::new(&key.into());
    mac.update(DOMAIN);
    mac.update(payload);
    mac
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const NOW: u64 = 1_700_000_000;

    fn object(key: &str) -> PresignClaim {
        PresignClaim { grant: Grant::Download { key: key.to_owned() }, expires_at_unix_s: NOW + 60 }
    }

    fn upload(upload_id: &str) -> PresignClaim {
        let grant = Grant::Upload { upload_id: upload_id.to_owned(), size_bytes: 5, sha256: "ab".repeat(32) };
        PresignClaim { grant, expires_at_unix_s: NOW + 60 }
    }

    fn part(upload_id: &str, part_number: u32) -> PresignClaim {
        PresignClaim {
            grant: Grant::Part { upload_id: upload_id.to_owned(), part_number },
            expires_at_unix_s: NOW + 60,
        }
    }

    /// Signs arbitrary (possibly inconsistent) JSON the way `sign` would.
    fn sign_raw(json: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = mac(&SECRET, payload.as_bytes()).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    #[test]
    fn round_trip_every_grant() {
        for claim in [object("blobs/ab/cd"), upload("u-1"), part("u-1", 7)] {
            let token = sign(&claim, &SECRET);
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{token}");
            assert_eq!(verify(&token, &SECRET, NOW).unwrap(), claim);
        }
    }

    #[test]
    fn padded_key_matches_the_slice_constructor() {
        let mut reference = HmacSha256::new_from_slice(&SECRET).unwrap();
        reference.update(DOMAIN);
        reference.update(b"payload");
        assert_eq!(reference.finalize().into_bytes(), mac(&SECRET, b"payload").finalize().into_bytes());
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let token = sign(&object("a"), &SECRET);
        let (payload, tag) = token.split_once('.').unwrap();
        let mut tag = URL_SAFE_NO_PAD.decode(tag).unwrap();
        tag[0] ^= 1;
        let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag));
        assert_eq!(verify(&forged, &SECRET, NOW), Err(PresignError::BadSignature));
        let truncated = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag[..16]));
        assert_eq!(verify(&truncated, &SECRET, NOW), Err(PresignError::BadSignature));
    }

    #[test]
    fn tampered_claim_is_rejected() {
        let token = sign(&object("a"), &SECRET);
        let (_, tag) = token.split_once('.').unwrap();
        // A claim for another key, or with a later expiry, cannot borrow the original MAC.
        let other_key = object("b");
        let mut later = object("a");
        later.expires_at_unix_s += 3600;
        for claim in [&other_key, &later] {
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).unwrap());
            assert_eq!(verify(&format!("{payload}.{tag}"), &SECRET, NOW), Err(PresignError::BadSignature));
        }
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let token = sign(&object("a"), &SECRET);
        assert_eq!(verify(&token, &[8; 32], NOW), Err(PresignError::BadSignature));
    }

    #[test]
    fn expiry_is_checked_on_use() {
        let token = sign(&object("a"), &SECRET);
        assert!(verify(&token, &SECRET, NOW + 59).is_ok());
        assert_eq!(verify(&token, &SECRET, NOW + 60), Err(PresignError::Expired));
        assert_eq!(verify(&token, &SECRET, u64::MAX), Err(PresignError::Expired));
    }

    #[test]
    fn token_for_key_a_does_not_name_key_b() {
        let claim = verify(&sign(&object("a"), &SECRET), &SECRET, NOW).unwrap();
        assert_eq!(claim.grant, Grant::Download { key: "a".to_owned() });
        assert_ne!(sign(&object("a"), &SECRET), sign(&object("b"), &SECRET));
    }

    #[test]
    fn grants_bind_their_upload_part_and_declaration() {
        let token = sign(&part("u-1", 1), &SECRET);
        assert_eq!(verify(&token, &SECRET, NOW).unwrap(), part("u-1", 1));
        let (_, tag) = token.split_once('.').unwrap();
        let mut bigger = upload("u-1");
        if let Grant::Upload { size_bytes, .. } = &mut bigger.grant {
            *size_bytes += 1;
        }
        for other in [part("u-2", 1), part("u-1", 2), object("u-1"), upload("u-1"), bigger] {
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
            assert_eq!(verify(&format!("{payload}.{tag}"), &SECRET, NOW), Err(PresignError::BadSignature));
        }
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let too_long = "a".repeat(MAX_TOKEN_LEN + 1);
        for token in ["", "abc", "a.b.c", "!!!.abc", too_long.as_str()] {
            assert!(
                matches!(verify(token, &SECRET, NOW), Err(PresignError::Malformed | PresignError::BadSignature)),
                "{token}"
            );
        }
        // Correctly signed but not a valid claim.
        let half_part = sign_raw(r#"{"g":{"a":"part","u":"u-1"},"e":9999999999}"#);
        assert_eq!(verify(&half_part, &SECRET, NOW), Err(PresignError::Malformed));
        let unknown_grant = sign_raw(r#"{"g":{"a":"delete","k":"a"},"e":9999999999}"#);
        assert_eq!(verify(&unknown_grant, &SECRET, NOW), Err(PresignError::Malformed));
        let unknown_field = sign_raw(r#"{"g":{"a":"get","k":"a"},"e":9999999999,"x":1}"#);
        assert_eq!(verify(&unknown_field, &SECRET, NOW), Err(PresignError::Malformed));
        assert_eq!(verify(&sign_raw("not json"), &SECRET, NOW), Err(PresignError::Malformed));
    }
}
