//! The local store's presigned-URL tokens, as they arrive in a URL path: arbitrary text is
//! refused without a panic, and nothing verifies that the key did not sign. A token the key did
//! sign (the input's claim, signed here) verifies to that very claim until it expires.
#![no_main]

use aether_core::presign::{PresignClaim, PresignError, sign, verify};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [7; 32];
const NOW: u64 = 1_800_000_000;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    // As a token: the fuzzer cannot forge HMAC-SHA256, so nothing it writes may verify.
    assert!(verify(text, &KEY, NOW).is_err(), "a token nobody signed verified: {text:?}");
    // As a claim: signed with the key, it verifies to itself, and only while it lasts.
    let Ok(claim) = serde_json::from_str::<PresignClaim>(text) else { return };
    let token = sign(&claim, &KEY);
    match verify(&token, &KEY, NOW) {
        Ok(verified) => {
            assert_eq!(verified, claim);
            assert!(claim.expires_at_unix_s > NOW, "an expired claim verified");
        }
        Err(PresignError::Expired) => assert!(claim.expires_at_unix_s <= NOW),
        // Tokens over 4 KiB are refused unread, whoever signed them.
        Err(PresignError::Malformed) if token.len() > 4096 => {}
        Err(other) => panic!("a token signed with the key failed with {other:?}"),
    }
    assert!(verify(&token, &[8; 32], NOW).is_err(), "a token verified under another key");
});
