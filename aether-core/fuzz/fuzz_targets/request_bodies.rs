//! The JSON body of every API route that takes one, from arbitrary bytes (the first byte picks
//! the route): refused or parsed, never a panic; what parses holds the wire types' invariants
//! (a valid app name and digest) and serialises to JSON that parses back to the same value.
#![no_main]

use aether_core::api::{
    AddPublicKeyRequest, CompleteRequest, CreateAppRequest, CreateDeploymentRequest, CreateTokenRequest,
    MultipartCompleteRequest, MultipartInitRequest, PresignPartRequest, PresignRequest, RollbackRequest, validate_env,
};
use aether_core::wire::{AppName, Digest};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses `body` as `T`; when it parses, checks the round trip and returns it.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let written = serde_json::to_vec(&value).expect("a parsed body serialises");
    let again: T = serde_json::from_slice(&written).expect("a written body parses");
    assert_eq!(again, value);
    Some(value)
}

fn valid_name(name: &AppName) {
    assert_eq!(AppName::parse(name.as_str()).as_ref(), Ok(name));
}

fn valid_digest(digest: &Digest) {
    assert!(Digest::parse(digest.as_str()).is_ok(), "{digest}");
}

fuzz_target!(|input: &[u8]| {
    let Some((&route, body)) = input.split_first() else { return };
    match route % 10 {
        0 => {
            if let Some(request) = round_trip::<CreateAppRequest>(body) {
                valid_name(&request.name);
            }
        }
        1 => drop(round_trip::<AddPublicKeyRequest>(body)),
        2 => drop(round_trip::<PresignRequest>(body)),
        3 => drop(round_trip::<CompleteRequest>(body)),
        4 => drop(round_trip::<MultipartInitRequest>(body)),
        5 => drop(round_trip::<PresignPartRequest>(body)),
        6 => drop(round_trip::<MultipartCompleteRequest>(body)),
        7 => {
            if let Some(request) = round_trip::<CreateDeploymentRequest>(body) {
                valid_name(&request.app_name);
                valid_digest(&request.digest);
                let _ = validate_env(&request.env);
            }
        }
        8 => drop(round_trip::<RollbackRequest>(body)),
        _ => drop(round_trip::<CreateTokenRequest>(body)),
    }
});
