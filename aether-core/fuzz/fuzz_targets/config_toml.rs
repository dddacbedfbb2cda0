//! The CLI's `config.toml`, whatever the user's editor left in it: an error or a configuration,
//! never a panic; what parses has only the known keys, so reading it again gives the same.
#![no_main]

use std::path::Path;

use aether_sdk::config::ConfigFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let path = Path::new("config.toml");
    match ConfigFile::parse(text, path) {
        Ok(config) => assert_eq!(ConfigFile::parse(text, path).ok(), Some(config)),
        Err(error) => assert!(error.to_string().contains("config.toml"), "the error names the file: {error}"),
    }
});
