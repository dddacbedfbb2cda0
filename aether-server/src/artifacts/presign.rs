//! Tokens for presigned uploads served by the server itself (`PUT /uploads/{token}`).
//!
//! A token is `<claim>.<mac>`: the URL-safe base64 (no padding) of a compact JSON claim and of
//! an HMAC-SHA256 over that encoded claim. The claim binds one object key, or one part of one
//! multipart upload, and an expiry, so a leaked URL cannot be replayed against anything else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Mixed into every MAC so the signing secret cannot be confused with any other use of it.
const DOMAIN: &[u8] = b"aether-presign-v1\n";

/// Far above any valid token (keys are at most 512 bytes); refusing longer input early keeps a
/// hostile URL from costing more than a bounded decode.
const MAX_TOKEN_LEN: usize = 4096;

/// What a presigned upload token allows: writing `key` (or, with `upload_id` and
/// `part_number`, one part of that multipart upload) until `expires_at_unix_s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignClaim {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<u32>,
    #[serde(rename = "e")]
    pub expires_at_unix_s: u64,
}

impl PresignClaim {
    /// The multipart upload and part this claim is for, or `None` for a whole object.
    /// Claims carrying only one of the two are rejected by [`verify`].
    pub fn part(&self) -> Option<(&str, u32)> {
        match (&self.upload_id, self.part_number) {
            (Some(upload_id), Some(part_number)) => Some((upload_id.as_str(), part_number)),
            _ => None,
        }
    }
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
    if claim.upload_id.is_some() != claim.part_number.is_some() {
        return Err(PresignError::Malformed);
    }
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
        PresignClaim { key: key.to_owned(), upload_id: None, part_number: None, expires_at_unix_s: NOW + 60 }
    }

    fn part(key: &str, upload_id: &str, part_number: u32) -> PresignClaim {
        PresignClaim {
            key: key.to_owned(),
            upload_id: Some(upload_id.to_owned()),
            part_number: Some(part_number),
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
    fn round_trip_object_and_part() {
        for claim in [object("blobs/ab/cd"), part("blobs/ab/cd", "u-1", 7)] {
            let token = sign(&claim, &SECRET);
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{token}");
            assert_eq!(verify(&token, &SECRET, NOW).unwrap(), claim);
        }
        assert_eq!(part("k", "u-1", 7).part(), Some(("u-1", 7)));
        assert_eq!(object("k").part(), None);
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
        assert_eq!(claim.key, "a");
        assert_ne!(sign(&object("a"), &SECRET), sign(&object("b"), &SECRET));
    }

    #[test]
    fn part_claims_bind_upload_and_part() {
        let token = sign(&part("k", "u-1", 1), &SECRET);
        let claim = verify(&token, &SECRET, NOW).unwrap();
        assert_eq!(claim.part(), Some(("u-1", 1)));
        let (_, tag) = token.split_once('.').unwrap();
        for other in [part("k", "u-2", 1), part("k", "u-1", 2), object("k")] {
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
        let half_part = sign_raw(r#"{"k":"a","u":"u-1","e":9999999999}"#);
        assert_eq!(verify(&half_part, &SECRET, NOW), Err(PresignError::Malformed));
        let unknown_field = sign_raw(r#"{"k":"a","e":9999999999,"x":1}"#);
        assert_eq!(verify(&unknown_field, &SECRET, NOW), Err(PresignError::Malformed));
        assert_eq!(verify(&sign_raw("not json"), &SECRET, NOW), Err(PresignError::Malformed));
    }
}
