//! Where Aether keeps its files, and the user's configuration.
//!
//! Paths follow the XDG base directory spec: configuration in
//! `${XDG_CONFIG_HOME:-~/.config}/aether/config.toml`, the login session and the dependency cache
//! under `${XDG_CACHE_HOME:-~/.cache}/aether/`. Callers pass the environment in, so this module
//! never reads process state itself and tests stay hermetic.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The directories Aether uses, resolved once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    pub session_file: PathBuf,
    pub cache_dir: PathBuf,
}

impl Paths {
    /// Resolves the paths from environment lookups (`XDG_CONFIG_HOME`, `XDG_CACHE_HOME`, `HOME`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = non_empty("HOME").unwrap_or_else(|| PathBuf::from("."));
        let config = non_empty("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config")).join("aether");
        let cache = non_empty("XDG_CACHE_HOME").unwrap_or_else(|| home.join(".cache")).join("aether");
        Self { config_file: config.join("config.toml"), session_file: cache.join("session.json"), cache_dir: cache }
    }
}

/// `config.toml`. Unknown keys are rejected so a typo does not silently do nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Control-plane URL, e.g. `https://aether.example.com`.
    pub api_base: Option<String>,
    /// Namespace recorded with builds; `AETHER_DEFAULT_NAMESPACE` overrides it.
    pub namespace: Option<String>,
    /// Ed25519 seed as 64 hex characters, or a path to a file holding it;
    /// `AETHER_SIGNING_KEY` overrides it.
    pub signing_key: Option<String>,
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty configuration, a malformed one an error.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::Config { path: path.to_path_buf(), message: e.to_string() }),
        };
        Self::parse(&text, path)
    }

    /// Parses the text of the file at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
    }
}

/// The login session: which control plane, with which token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub api_base: String,
    pub token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("api_base", &self.api_base).field("token", &"<redacted>").finish()
    }
}

impl Session {
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read the session file", path)(e)),
        }
    }

    /// Writes the session atomically with mode 0600: it holds a bearer token.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .map_err(Error::io("cannot encode the session", path))?;
        crate::outputs::write_atomically(path, &bytes, Some(0o600))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn xdg_variables_win_over_home() {
        let p = Paths::from_env(env(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/c"), ("XDG_CACHE_HOME", "/k")]));
        assert_eq!(p.config_file, PathBuf::from("/c/aether/config.toml"));
        assert_eq!(p.session_file, PathBuf::from("/k/aether/session.json"));
        let p = Paths::from_env(env(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "")]));
        assert_eq!(p.config_file, PathBuf::from("/h/.config/aether/config.toml"));
        assert_eq!(p.session_file, PathBuf::from("/h/.cache/aether/session.json"));
    }

    #[test]
    fn config_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(ConfigFile::load(&path).unwrap(), ConfigFile::default());
        std::fs::write(&path, "namespace = \"team\"\n").unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap().namespace.as_deref(), Some("team"));
        std::fs::write(&path, "namespace = [").unwrap();
        let err = ConfigFile::load(&path).unwrap_err();
        assert!(matches!(err, Error::Config { .. }) && err.to_string().contains("config.toml"));
        std::fs::write(&path, "namspace = \"x\"").unwrap();
        assert!(ConfigFile::load(&path).unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn session_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aether/session.json");
        let session = Session { api_base: "http://127.0.0.1:8080".into(), token: "secret".into() };
        session.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Session::load(&path).unwrap(), Some(session.clone()));
        assert!(!format!("{session:?}").contains("secret"));
    }
}
