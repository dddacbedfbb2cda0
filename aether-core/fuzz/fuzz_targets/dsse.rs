//! A DSSE envelope (provenance) from arbitrary JSON, verified against a fixed key: refused,
//! never a panic. The fuzzer cannot forge Ed25519, and the seed envelopes are signed with
//! another key, so no input may verify.
#![no_main]

use aether_core::signing::{DsseEnvelope, SigningKey, verify_dsse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<DsseEnvelope>(bytes) else { return };
    let key = SigningKey::from_seed([9; 32]);
    assert!(verify_dsse(&envelope, &key.public_key_hex()).is_err(), "an envelope the key never signed verified");
});
