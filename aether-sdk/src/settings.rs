//! Build and upload settings that come from the environment and `config.toml`, resolved the
//! same way for every frontend (the CLI, the Python module, programs embedding the SDK).
//!
//! Precedence, highest first: what the caller passes (flags, arguments), then the variables,
//! then `config.toml`. Like [`crate::connect`], the environment is passed in as a lookup
//! function, so nothing here reads process state itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aether_core::signing::SigningKey;

use crate::build::BuildOptions;
use crate::config::{ConfigFile, Paths};
use crate::deploy::DeployOptions;
use crate::describe::DEFAULT_PROVENANCE_TIMEOUT;
use crate::error::Error;
use crate::upload::{MULTIPART_THRESHOLD_ENV, PART_SIZE_ENV};

/// Ed25519 seed (64 hex characters) or the path of a file holding one; wins over `signing_key`
/// in `config.toml`.
pub const SIGNING_KEY_ENV: &str = "AETHER_SIGNING_KEY";
/// Mtime of every entry and the SBOM's timestamp, in Unix seconds.
pub const SOURCE_DATE_EPOCH_ENV: &str = "SOURCE_DATE_EPOCH";
/// Namespace recorded in provenance; wins over `namespace` in `config.toml`.
pub const NAMESPACE_ENV: &str = "AETHER_DEFAULT_NAMESPACE";
/// `1` (or `true`): failing to produce provenance fails the build.
pub const REQUIRE_PROVENANCE_ENV: &str = "AETHER_REQUIRE_PROVENANCE";
/// Time budget for provenance, in milliseconds.
pub const PROVENANCE_TIMEOUT_ENV: &str = "AETHER_PROVENANCE_TIMEOUT_MS";
/// Bound of the compressed-block cache in bytes (default 2 GiB; 0 turns it off).
pub const BLOCK_CACHE_ENV: &str = "AETHER_BLOCK_CACHE_MAX_BYTES";

/// The build of `project_dir` as the environment and `config.toml` configure it: signing key,
/// `SOURCE_DATE_EPOCH`, namespace and provenance settings, the dependency cache under `paths`.
/// Everything else keeps [`BuildOptions::new`]'s defaults for the caller to override.
pub fn build_options(
    project_dir: impl Into<PathBuf>,
    env: impl Fn(&str) -> Option<String>,
    paths: &Paths,
) -> Result<BuildOptions, Error> {
    let config = ConfigFile::load(&paths.config_file)?;
    let signing_key = match env(SIGNING_KEY_ENV).filter(|v| !v.trim().is_empty()) {
        Some(value) => Some(signing_key(&value, SIGNING_KEY_ENV)?),
        None => match config.signing_key.as_deref().filter(|v| !v.trim().is_empty()) {
            Some(value) => Some(signing_key(value, &format!("signing_key in {}", paths.config_file.display()))?),
            None => None,
        },
    };
    let mut options = BuildOptions::new(project_dir, &paths.cache_dir);
    options.signing_key = signing_key;
    options.source_date_epoch = number_variable(&env, SOURCE_DATE_EPOCH_ENV)?;
    options.namespace = env(NAMESPACE_ENV).filter(|n| !n.is_empty()).or(config.namespace);
    options.require_provenance = env(REQUIRE_PROVENANCE_ENV).is_some_and(|v| v == "1" || v == "true");
    options.provenance_timeout =
        number_variable(&env, PROVENANCE_TIMEOUT_ENV)?.map_or(DEFAULT_PROVENANCE_TIMEOUT, Duration::from_millis);
    if let Some(limit) = number_variable(&env, BLOCK_CACHE_ENV)? {
        options.block_cache_bytes = limit;
    }
    Ok(options)
}

/// Applies the multipart variables to `options` (a part size of 0 keeps the default).
pub fn apply_upload_settings(options: &mut DeployOptions, env: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
    if let Some(threshold) = number_variable(&env, MULTIPART_THRESHOLD_ENV)? {
        options.multipart_threshold_bytes = threshold;
    }
    if let Some(part_size) = number_variable(&env, PART_SIZE_ENV)?.filter(|n| *n > 0) {
        options.part_size_bytes = part_size;
    }
    Ok(())
}

/// A key given inline as 64 hex characters, or the path of a file holding them; `origin` names
/// where `value` came from in error messages.
pub fn signing_key(value: &str, origin: &str) -> Result<SigningKey, Error> {
    let trimmed = value.trim();
    let looks_inline = trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    let (text, origin) = if looks_inline || !Path::new(trimmed).exists() {
        (trimmed.to_owned(), origin.to_owned())
    } else {
        let path = PathBuf::from(trimmed);
        let text =
            std::fs::read_to_string(&path).map_err(|source| Error::SigningKeyFile { path: path.clone(), source })?;
        (text, format!("file {}", path.display()))
    };
    SigningKey::from_hex_seed(&text).map_err(|source| Error::SigningKey { origin, source })
}

/// A non-negative integer variable; unset or blank is `None`.
fn number_variable(env: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u64>, Error> {
    match env(name) {
        Some(value) if !value.trim().is_empty() => value.trim().parse().map(Some).map_err(|_| Error::InvalidVariable {
            variable: name,
            value,
            message: "not a non-negative integer".to_owned(),
        }),
        _ => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn paths(dir: &Path) -> Paths {
        Paths { config_file: dir.join("config.toml"), session_file: dir.join("session.json"), cache_dir: dir.join("c") }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn nothing_configured_gives_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let options = build_options("p", env(&[]), &paths(dir.path())).unwrap();
        assert!(options.signing_key.is_none() && options.namespace.is_none() && !options.require_provenance);
        assert_eq!((options.source_date_epoch, options.provenance_timeout), (None, DEFAULT_PROVENANCE_TIMEOUT));
        assert_eq!(options.cache_dir, dir.path().join("c"));
    }

    #[test]
    fn variables_win_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        std::fs::write(&paths.config_file, "namespace = \"file\"\nsigning_key = \"zz\"\n").unwrap();
        let vars = [
            (SIGNING_KEY_ENV, SEED),
            (NAMESPACE_ENV, "team"),
            (SOURCE_DATE_EPOCH_ENV, " 1700000000 "),
            (REQUIRE_PROVENANCE_ENV, "1"),
            (PROVENANCE_TIMEOUT_ENV, "250"),
        ];
        let options = build_options("p", env(&vars), &paths).unwrap();
        assert_eq!(options.signing_key.unwrap().public_key_hex(), PUBLIC);
        assert_eq!((options.namespace.as_deref(), options.source_date_epoch), (Some("team"), Some(1_700_000_000)));
        assert!(options.require_provenance);
        assert_eq!(options.provenance_timeout, Duration::from_millis(250));
        // Without the variables, the file's (bad) key is read and named in the error.
        let error = build_options("p", env(&[]), &paths).unwrap_err();
        assert_eq!(error.code(), "invalid_signing_key");
        assert!(error.to_string().contains("signing_key in") && error.to_string().contains("config.toml"), "{error}");
    }

    #[test]
    fn keys_are_read_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.hex");
        std::fs::write(&file, format!("{SEED}\n")).unwrap();
        assert_eq!(signing_key(file.to_str().unwrap(), "test").unwrap().public_key_hex(), PUBLIC);
        assert_eq!(signing_key(&format!(" {SEED} "), "test").unwrap().public_key_hex(), PUBLIC);
        let error = signing_key("abcd", "test").unwrap_err();
        assert!(error.to_string().contains("(test)") && error.kind() == crate::ErrorKind::Config, "{error}");
        std::fs::write(&file, "zz".repeat(32)).unwrap();
        assert!(signing_key(file.to_str().unwrap(), "test").unwrap_err().to_string().contains("key.hex"));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let error = build_options("p", env(&[(SOURCE_DATE_EPOCH_ENV, "yesterday")]), &paths(dir.path())).unwrap_err();
        assert_eq!(error.code(), "invalid_variable");
        assert!(error.to_string().contains("SOURCE_DATE_EPOCH"), "{error}");
        let mut deploy = DeployOptions::new(BuildOptions::new("p", "c"));
        apply_upload_settings(&mut deploy, env(&[(MULTIPART_THRESHOLD_ENV, "10"), (PART_SIZE_ENV, "0")])).unwrap();
        assert_eq!(deploy.multipart_threshold_bytes, 10);
        assert_eq!(deploy.part_size_bytes, crate::upload::DEFAULT_PART_SIZE_BYTES);
        assert!(apply_upload_settings(&mut deploy, env(&[(PART_SIZE_ENV, "-1")])).is_err());
    }
}
