//! Ed25519 signatures: a raw signature over the artifact digest, and DSSE envelopes for
//! attestations such as provenance.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;

/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("signing key must be 64 hex characters (a 32-byte Ed25519 seed); got {length} characters")]
    WrongLength { length: usize },
    #[error("signing key is not valid hex")]
    NotHex,
    #[error("public key must be 64 hex characters of a valid Ed25519 point")]
    InvalidPublicKey,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("signature must be 128 hex characters")]
    MalformedSignature,
    #[error("signature does not match")]
    Mismatch,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("DSSE envelope is malformed: {0}")]
    MalformedEnvelope(String),
}

/// An Ed25519 signing key. `Debug` never shows the secret.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key_hex())
    }
}

impl SigningKey {
    /// Parses a 32-byte seed written as 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex_seed(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(KeyError::WrongLength { length: text.len() });
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text, &mut seed).map_err(|_| KeyError::NotHex)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// DSSE key id: the SHA-256 of the raw public key, so verifiers can pick the right key.
    pub fn key_id(&self) -> String {
        sha256_hex(&self.0.verifying_key().to_bytes())
    }

    /// Signs the ASCII lowercase hex digest, which is what the server verifies against the app's keys.
    pub fn sign_digest(&self, digest_hex: &str) -> String {
        hex::encode(self.0.sign(digest_hex.as_bytes()).to_bytes())
    }

    /// Wraps `payload` in a DSSE v1 envelope signed over its pre-authentication encoding.
    pub fn dsse_envelope(&self, payload_type: &str, payload: &[u8]) -> DsseEnvelope {
        let signature = self.0.sign(&dsse_pae(payload_type, payload));
        DsseEnvelope {
            payload_type: payload_type.to_owned(),
            payload: BASE64.encode(payload),
            signatures: vec![DsseSignature { keyid: self.key_id(), sig: BASE64.encode(signature.to_bytes()) }],
        }
    }
}

/// A DSSE v1 envelope as the in-toto and Sigstore tools read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DsseEnvelope {
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<DsseSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsseSignature {
    pub keyid: String,
    pub sig: String,
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <body>`.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn verifying_key(public_key_hex: &str) -> Result<VerifyingKey, KeyError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(public_key_hex.trim(), &mut bytes).map_err(|_| KeyError::InvalidPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)
}

/// Checks a signature made by [`SigningKey::sign_digest`].
pub fn verify_digest(public_key_hex: &str, digest_hex: &str, signature_hex: &str) -> Result<(), VerifyError> {
    let key = verifying_key(public_key_hex)?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(signature_hex.trim(), &mut sig).map_err(|_| VerifyError::MalformedSignature)?;
    key.verify_strict(digest_hex.as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| VerifyError::Mismatch)
}

/// Checks a signature made by [`SigningKey::sign_digest`] against a set of trusted keys (an
/// app's active keys): accepted when any one of them verifies it.
///
/// When none does, a malformed signature or key is reported as such rather than as a mismatch,
/// so a caller can tell a bad invocation from a rejected artifact. No keys means a mismatch.
pub fn verify_digest_any<'a>(
    public_keys: impl IntoIterator<Item = &'a str>,
    digest_hex: &str,
    signature_hex: &str,
) -> Result<(), VerifyError> {
    let mut rejection = VerifyError::Mismatch;
    for key in public_keys {
        match verify_digest(key, digest_hex, signature_hex) {
            Ok(()) => return Ok(()),
            // A malformed signature fails the same way against every key.
            Err(VerifyError::MalformedSignature) => return Err(VerifyError::MalformedSignature),
            Err(error @ VerifyError::Key(_)) => rejection = error,
            Err(_) => {}
        }
    }
    Err(rejection)
}

/// Verifies any signature of the envelope against the key and returns the payload bytes.
pub fn verify_dsse(envelope: &DsseEnvelope, public_key_hex: &str) -> Result<Vec<u8>, VerifyError> {
    let key = verifying_key(public_key_hex)?;
    let payload = BASE64.decode(&envelope.payload).map_err(|e| VerifyError::MalformedEnvelope(e.to_string()))?;
    let pae = dsse_pae(&envelope.payload_type, &payload);
    let verified = envelope.signatures.iter().any(|s| {
        BASE64
            .decode(&s.sig)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .is_some_and(|sig| key.verify_strict(&pae, &Signature::from_bytes(&sig)).is_ok())
    });
    if verified { Ok(payload) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    #[test]
    fn rfc8032_test_vector_public_key() {
        let key = SigningKey::from_hex_seed(SEED).unwrap();
        assert_eq!(key.public_key_hex(), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert_eq!(SigningKey::from_hex_seed("abc").unwrap_err(), KeyError::WrongLength { length: 3 });
        assert_eq!(SigningKey::from_hex_seed(&"zz".repeat(32)).unwrap_err(), KeyError::NotHex);
        assert!(format!("{:?}", SigningKey::from_hex_seed(SEED).unwrap()).contains("public"));
        assert!(!format!("{:?}", SigningKey::from_hex_seed(SEED).unwrap()).contains(SEED));
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            dsse_pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn dsse_round_trip_and_tamper() {
        let key = SigningKey::from_hex_seed(SEED).unwrap();
        let mut env = key.dsse_envelope(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}");
        assert_eq!(verify_dsse(&env, &key.public_key_hex()).unwrap(), b"{\"a\":1}");
        env.payload_type = "text/plain".into();
        assert_eq!(verify_dsse(&env, &key.public_key_hex()), Err(VerifyError::Mismatch));
    }

    #[test]
    fn any_of_several_keys_may_verify() {
        let signer = SigningKey::from_hex_seed(SEED).unwrap();
        let other = SigningKey::from_seed([7; 32]).public_key_hex();
        let digest = sha256_hex(b"artifact");
        let sig = signer.sign_digest(&digest);
        let both = [other.as_str(), &signer.public_key_hex()];
        assert_eq!(verify_digest_any(both, &digest, &sig), Ok(()));
        assert_eq!(verify_digest_any([other.as_str()], &digest, &sig), Err(VerifyError::Mismatch));
        assert_eq!(verify_digest_any([], &digest, &sig), Err(VerifyError::Mismatch));
        assert_eq!(verify_digest_any(both, &digest, "abc"), Err(VerifyError::MalformedSignature));
        assert_eq!(
            verify_digest_any(["nothex", other.as_str()], &digest, &sig),
            Err(VerifyError::Key(KeyError::InvalidPublicKey))
        );
        // One good key is enough even when another one is malformed.
        assert_eq!(verify_digest_any(["nothex", &signer.public_key_hex()], &digest, &sig), Ok(()));
    }

    proptest! {
        #[test]
        fn sign_then_verify_holds_and_any_flipped_byte_fails(seed in any::<[u8; 32]>(), data in any::<Vec<u8>>(), flip in any::<usize>()) {
            let key = SigningKey::from_seed(seed);
            let digest = sha256_hex(&data);
            let sig = key.sign_digest(&digest);
            prop_assert_eq!(sig.len(), 128);
            prop_assert!(verify_digest(&key.public_key_hex(), &digest, &sig).is_ok());
            let mut raw = hex::decode(&sig).unwrap();
            let i = flip % raw.len();
            raw[i] ^= 0x01;
            prop_assert!(verify_digest(&key.public_key_hex(), &digest, &hex::encode(&raw)).is_err());
            let mut other = digest.into_bytes();
            let j = flip % other.len();
            other[j] = if other[j] == b'0' { b'1' } else { b'0' };
            prop_assert!(verify_digest(&key.public_key_hex(), std::str::from_utf8(&other).unwrap(), &sig).is_err());
        }
    }
}
