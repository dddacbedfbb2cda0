//! Which control plane to talk to, and with which credentials.
//!
//! Precedence, highest first: explicit arguments (CLI flags), `AETHER_API_BASE` /
//! `AETHER_TOKEN`, the login session file, `api_base` in `config.toml`, then the embedded
//! server's default address. The session's token is only used with the server it was issued
//! for, so pointing `AETHER_API_BASE` elsewhere never leaks it.

use std::path::PathBuf;

use crate::client::ClientConfig;
use crate::config::{ConfigFile, Paths, Session};
use crate::error::Error;

/// Where `aether-server` listens when nothing is configured.
pub const DEFAULT_API_BASE: &str = "http://127.0.0.1:8080";

/// Choices made on the command line, which win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub api_base: Option<String>,
    pub token: Option<String>,
    pub insecure: bool,
}

/// Builds the client configuration from `overrides`, the environment (read through `env`)
/// and the files under `paths`.
pub fn client_config(
    overrides: &Overrides,
    env: impl Fn(&str) -> Option<String>,
    paths: &Paths,
) -> Result<ClientConfig, Error> {
    let var = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let session = Session::load(&paths.session_file)?;
    let file = ConfigFile::load(&paths.config_file)?;
    let base_url = overrides
        .api_base
        .clone()
        .or_else(|| var("AETHER_API_BASE"))
        .or_else(|| session.as_ref().map(|s| s.api_base.clone()))
        .or(file.api_base)
        .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
    let session_token = session.filter(|s| same_server(&s.api_base, &base_url)).map(|s| s.token);
    let token = overrides.token.clone().or_else(|| var("AETHER_TOKEN")).or(session_token);
    let insecure = overrides.insecure || var("AETHER_INSECURE").is_some_and(|v| truthy(&v));
    let ca_cert_pem = match var("AETHER_CA_CERT") {
        Some(path) => {
            let path = PathBuf::from(path);
            Some(std::fs::read(&path).map_err(|e| Error::InvalidVariable {
                variable: "AETHER_CA_CERT",
                value: path.display().to_string(),
                message: e.to_string(),
            })?)
        }
        None => None,
    };
    Ok(ClientConfig { token, insecure, ca_cert_pem, ..ClientConfig::new(base_url) })
}

/// `1`, `true`, `yes` and `on` (any case) switch a boolean variable on.
pub fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// Compares server URLs ignoring a trailing slash and the case of scheme and host.
fn same_server(a: &str, b: &str) -> bool {
    let normalise = |url: &str| url.trim().trim_end_matches('/').to_ascii_lowercase();
    normalise(a) == normalise(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn paths(dir: &std::path::Path) -> Paths {
        Paths {
            config_file: dir.join("config.toml"),
            session_file: dir.join("session.json"),
            cache_dir: dir.join("cache"),
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults_to_the_embedded_server_without_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let config = client_config(&Overrides::default(), env(&[]), &paths(dir.path())).unwrap();
        assert_eq!((config.base_url.as_str(), config.token, config.insecure), (DEFAULT_API_BASE, None, false));
    }

    #[test]
    fn flags_beat_variables_beat_the_session_beat_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        std::fs::write(&paths.config_file, "api_base = \"http://file.example\"\n").unwrap();
        let config = client_config(&Overrides::default(), env(&[]), &paths).unwrap();
        assert_eq!(config.base_url, "http://file.example");
        Session { api_base: "http://127.0.0.1:9000/".into(), token: "from-session".into() }
            .save(&paths.session_file)
            .unwrap();
        let config = client_config(&Overrides::default(), env(&[]), &paths).unwrap();
        assert_eq!(
            (config.base_url.as_str(), config.token.as_deref()),
            ("http://127.0.0.1:9000/", Some("from-session"))
        );
        let vars = [("AETHER_API_BASE", "http://127.0.0.1:9000"), ("AETHER_TOKEN", "from-env")];
        let config = client_config(&Overrides::default(), env(&vars), &paths).unwrap();
        assert_eq!(config.token.as_deref(), Some("from-env"));
        let flags =
            Overrides { api_base: Some("http://127.0.0.1:7000".into()), token: Some("flag".into()), insecure: true };
        let config = client_config(&flags, env(&vars), &paths).unwrap();
        assert_eq!(
            (config.base_url.as_str(), config.token.as_deref(), config.insecure),
            ("http://127.0.0.1:7000", Some("flag"), true)
        );
    }

    #[test]
    fn the_session_token_never_goes_to_another_server() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        Session { api_base: "http://127.0.0.1:9000".into(), token: "secret".into() }.save(&paths.session_file).unwrap();
        let config =
            client_config(&Overrides::default(), env(&[("AETHER_API_BASE", "http://127.0.0.1:9001")]), &paths).unwrap();
        assert_eq!(config.token, None);
    }

    #[test]
    fn insecure_and_ca_variables_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "PEM").unwrap();
        let pem_path = pem.display().to_string();
        let vars = [("AETHER_INSECURE", "1"), ("AETHER_CA_CERT", pem_path.as_str())];
        let config = client_config(&Overrides::default(), env(&vars), &paths(dir.path())).unwrap();
        assert!(config.insecure);
        assert_eq!(config.ca_cert_pem.as_deref(), Some(&b"PEM"[..]));
        let missing = [("AETHER_CA_CERT", "/nonexistent/ca.pem")];
        let error = client_config(&Overrides::default(), env(&missing), &paths(dir.path())).unwrap_err();
        assert!(error.to_string().contains("AETHER_CA_CERT"), "{error}");
        assert!(!truthy("0") && truthy("TRUE") && truthy("yes"));
    }
}
