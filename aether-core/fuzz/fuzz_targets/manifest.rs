//! A manifest read back from arbitrary JSON: refused or parsed, never a panic, and what parses
//! writes back to JSON that parses to the same manifest.
#![no_main]

use aether_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(manifest) = Manifest::from_json(bytes) else { return };
    let Ok(written) = manifest.to_json() else { return };
    let again = Manifest::from_json(&written).expect("a written manifest reads back");
    assert_eq!(again.entries, manifest.entries);
});
