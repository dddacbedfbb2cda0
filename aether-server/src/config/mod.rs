//! The server's configuration, read once from `AETHER_*` variables by `main`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod runtime;
mod storage;

pub use runtime::{RuntimeKind, kubernetes as kubernetes_settings};
pub use storage::StorageConfig;

/// Every setting the server reads; see the README's table for the variables.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How clients reach this server; the base of presigned upload URLs.
    pub public_url: String,
    pub data_dir: PathBuf,
    /// `None` means the embedded SQLite database in `data_dir`.
    pub database_url: Option<String>,
    /// `token:role[:name]` entries from `AETHER_API_TOKENS` / `AETHER_API_TOKEN`.
    pub static_tokens: Vec<StaticToken>,
    pub max_artifact_size_bytes: u64,
    pub max_concurrent_uploads: usize,
    pub require_presign: bool,
    pub require_signature: bool,
    pub max_artifacts_per_app: Option<u64>,
    pub max_total_bytes_per_app: Option<u64>,
    pub retain_latest_per_app: Option<u64>,
    pub pending_ttl: Duration,
    /// How often expired uploads and orphaned staging areas are collected.
    pub pending_gc_interval: Duration,
    /// Lifetime of presigned URLs (`AETHER_PRESIGN_EXPIRE_SECS`).
    pub presign_ttl: Duration,
    pub max_json_body_bytes: usize,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where artifacts are stored (`AETHER_STORAGE_MODE`).
    pub storage: StorageConfig,
    /// What runs releases (`AETHER_RUNTIME`).
    pub runtime: RuntimeKind,
    /// How long a release may take to accept connections (`AETHER_HEALTH_TIMEOUT_MS`).
    pub health_timeout: Duration,
    /// How long a rollout may take before it counts as failed (`AETHER_ROLLOUT_TIMEOUT_SECS`).
    pub rollout_timeout: Duration,
    /// How soon another replica takes over the rollouts of one that died (`AETHER_LEASE_SECS`).
    pub lease: Duration,
    /// How long a request body may send nothing before its request fails
    /// (`AETHER_BODY_IDLE_TIMEOUT_SECS`): a client that vanished mid-upload must not hold its
    /// connection, upload slot and staging file, nor a graceful shutdown, forever.
    pub body_idle_timeout: Duration,
    /// How long a shutdown waits for in-flight requests before closing them
    /// (`AETHER_SHUTDOWN_GRACE_SECS`); the releases are stopped after that either way.
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_url.as_ref().map(|_| "<set>"))
            .field("static_tokens", &self.static_tokens.len())
            .field("storage", &self.storage)
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// A token given in configuration. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticToken {
    pub secret: String,
    pub role: crate::model::Role,
    pub name: Option<String>,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken").field("role", &self.role).field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl ServerConfig {
    /// Reads the configuration through `env`, so tests can pass a map.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let listen_raw = get("AETHER_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| ConfigError {
            variable: "AETHER_LISTEN",
            message: format!("{listen_raw:?} is not host:port"),
        })?;
        let tls = match (get("AETHER_TLS_CERT"), get("AETHER_TLS_KEY")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ConfigError {
                    variable: "AETHER_TLS_CERT",
                    message: "AETHER_TLS_CERT and AETHER_TLS_KEY must be set together".into(),
                });
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let number = |name: &'static str| parse_number(name, get(name));
        let pending_ttl = Duration::from_secs(number("AETHER_PENDING_TTL_SECS")?.unwrap_or(3600));
        // The seed's name; `AETHER_PRESIGN_TTL_SECS` is kept working as an alias.
        let presign_ttl = Duration::from_secs(match number("AETHER_PRESIGN_EXPIRE_SECS")? {
            Some(secs) => secs,
            None => number("AETHER_PRESIGN_TTL_SECS")?.unwrap_or(900),
        });
        // Uploads are collected after the pending TTL; a URL outliving its upload could
        // otherwise write again once the collector has cleared its staging area.
        if pending_ttl < presign_ttl {
            return Err(ConfigError {
                variable: "AETHER_PENDING_TTL_SECS",
                message: format!(
                    "{} s is shorter than the presigned URL lifetime ({} s); it must be at least as long",
                    pending_ttl.as_secs(),
                    presign_ttl.as_secs()
                ),
            });
        }
        let rollout_timeout = Duration::from_secs(number("AETHER_ROLLOUT_TIMEOUT_SECS")?.unwrap_or(300).max(1));
        Ok(Self {
            listen,
            public_url: get("AETHER_PUBLIC_URL")
                .unwrap_or_else(|| format!("{scheme}://{listen}"))
                .trim_end_matches('/')
                .to_owned(),
            data_dir: PathBuf::from(get("AETHER_DATA_DIR").unwrap_or_else(|| "./aether-data".to_owned())),
            database_url: get("DATABASE_URL"),
            static_tokens: parse_tokens(get("AETHER_API_TOKENS"), get("AETHER_API_TOKEN"))?,
            max_artifact_size_bytes: number("AETHER_MAX_ARTIFACT_SIZE_BYTES")?.unwrap_or(2 * 1024 * 1024 * 1024),
            max_concurrent_uploads: number("AETHER_MAX_CONCURRENT_UPLOADS")?.map_or(32, |n| n.max(1) as usize),
            require_presign: flag(get("AETHER_REQUIRE_PRESIGN")),
            require_signature: flag(get("AETHER_REQUIRE_SIGNATURE")),
            max_artifacts_per_app: number("AETHER_MAX_ARTIFACTS_PER_APP")?,
            max_total_bytes_per_app: number("AETHER_MAX_TOTAL_BYTES_PER_APP")?,
            retain_latest_per_app: number("AETHER_RETAIN_LATEST_PER_APP")?,
            pending_ttl,
            pending_gc_interval: Duration::from_secs(number("AETHER_PENDING_GC_INTERVAL_SECS")?.unwrap_or(60).max(1)),
            presign_ttl,
            max_json_body_bytes: 1024 * 1024,
            tls,
            storage: storage::parse(&get)?,
            runtime: runtime::parse(&get, rollout_timeout)?,
            health_timeout: Duration::from_millis(number("AETHER_HEALTH_TIMEOUT_MS")?.unwrap_or(30_000).max(1)),
            rollout_timeout,
            lease: Duration::from_secs(number("AETHER_LEASE_SECS")?.unwrap_or(15).max(1)),
            body_idle_timeout: Duration::from_secs(number("AETHER_BODY_IDLE_TIMEOUT_SECS")?.unwrap_or(60).max(1)),
            shutdown_grace: Duration::from_secs(number("AETHER_SHUTDOWN_GRACE_SECS")?.unwrap_or(20)),
        })
    }
}

fn flag(value: Option<String>) -> bool {
    value.is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// A boolean setting with a default: `1`/`true`/`yes` or `0`/`false`/`no`.
fn flag_or(value: Option<String>, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError { variable, message: format!("{other:?} is not a boolean (1 or 0)") }),
    }
}

fn parse_number(variable: &'static str, value: Option<String>) -> Result<Option<u64>, ConfigError> {
    value
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| ConfigError { variable, message: format!("{v:?} is not a number") })
        })
        .transpose()
}

fn parse_tokens(list: Option<String>, single: Option<String>) -> Result<Vec<StaticToken>, ConfigError> {
    let invalid = |message: String| ConfigError { variable: "AETHER_API_TOKENS", message };
    let mut tokens = Vec::new();
    for entry in list.iter().flat_map(|l| l.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let secret = parts.next().unwrap_or_default().to_owned();
        let role_raw = parts.next().ok_or_else(|| invalid("each entry must be token:role[:name]".into()))?;
        let role = crate::model::Role::parse(role_raw)
            .ok_or_else(|| invalid(format!("unknown role {role_raw:?} (admin, deployer, reader)")))?;
        if secret.is_empty() {
            return Err(invalid("empty token".into()));
        }
        tokens.push(StaticToken { secret, role, name: parts.next().map(str::to_owned) });
    }
    if tokens.is_empty()
        && let Some(secret) = single
    {
        tokens.push(StaticToken { secret, role: crate::model::Role::Admin, name: Some("AETHER_API_TOKEN".into()) });
    }
    Ok(tokens)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn config(vars: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        ServerConfig::from_env(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./aether-data"));
        assert!(c.database_url.is_none() && c.static_tokens.is_empty() && c.tls.is_none());
        assert_eq!(c.runtime, RuntimeKind::Local);
        assert_eq!(c.health_timeout, Duration::from_secs(30));
        assert_eq!((c.presign_ttl, c.pending_gc_interval), (Duration::from_secs(900), Duration::from_secs(60)));
        assert_eq!(c.max_concurrent_uploads, 32);
    }

    #[test]
    fn storage_is_local_unless_s3_is_asked_for() {
        use crate::artifacts::s3::Encryption;
        assert_eq!(config(&[]).unwrap().storage, StorageConfig::Local);
        let c = config(&[
            ("AETHER_STORAGE_MODE", "s3"),
            ("AETHER_S3_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "ak"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AETHER_S3_SSE", "aws:kms"),
            ("AETHER_S3_SSE_KMS_KEY", "alias/aether"),
            ("AETHER_VERIFY_REMOTE_HASH", "0"),
        ])
        .unwrap();
        let StorageConfig::S3(s3) = c.storage else { panic!("not s3") };
        assert_eq!((s3.bucket.as_str(), s3.region.as_str()), ("artifacts", "us-east-1"));
        assert_eq!(s3.encryption, Some(Encryption::Kms { key_id: Some("alias/aether".into()) }));
        assert!(s3.verification.size && s3.verification.digest && !s3.verification.hash);
        assert_eq!(s3.verification.hash_max_bytes, 8_000_000);
        assert!(!format!("{:?}", s3.credentials).contains("sk"));
        for (vars, variable) in [
            (&[("AETHER_STORAGE_MODE", "gcs")][..], "AETHER_STORAGE_MODE"),
            (&[("AETHER_STORAGE_MODE", "s3"), ("AETHER_S3_SSE", "rot13")][..], "AETHER_S3_SSE"),
            (&[("AETHER_STORAGE_MODE", "s3"), ("AWS_ACCESS_KEY_ID", "ak")][..], "AWS_ACCESS_KEY_ID"),
            (&[("AETHER_STORAGE_MODE", "s3"), ("AETHER_VERIFY_REMOTE_SIZE", "maybe")][..], "AETHER_VERIFY_REMOTE_SIZE"),
            (&[("AETHER_STORAGE_MODE", "s3"), ("AETHER_S3_ENDPOINT_URL", "minio:9000")][..], "AETHER_S3_ENDPOINT_URL"),
        ] {
            assert_eq!(config(vars).unwrap_err().variable, variable, "{vars:?}");
        }
    }

    #[test]
    fn pending_uploads_outlive_their_urls() {
        let error = config(&[("AETHER_PENDING_TTL_SECS", "60"), ("AETHER_PRESIGN_EXPIRE_SECS", "120")]).unwrap_err();
        assert_eq!(error.variable, "AETHER_PENDING_TTL_SECS");
    }

    #[test]
    fn presign_expiry_has_the_seed_name_and_an_alias() {
        assert_eq!(config(&[("AETHER_PRESIGN_TTL_SECS", "60")]).unwrap().presign_ttl, Duration::from_secs(60));
        let both = config(&[("AETHER_PRESIGN_EXPIRE_SECS", "120"), ("AETHER_PRESIGN_TTL_SECS", "60")]).unwrap();
        assert_eq!(both.presign_ttl, Duration::from_secs(120));
        assert_eq!(config(&[("AETHER_PRESIGN_EXPIRE_SECS", "x")]).unwrap_err().variable, "AETHER_PRESIGN_EXPIRE_SECS");
    }

    #[test]
    fn runtime_and_health_timeout_are_configurable() {
        let c = config(&[("AETHER_RUNTIME", "none"), ("AETHER_HEALTH_TIMEOUT_MS", "1500")]).unwrap();
        assert_eq!((c.runtime, c.health_timeout), (RuntimeKind::None, Duration::from_millis(1500)));
        let k = config(&[
            ("AETHER_RUNTIME", "kubernetes"),
            ("AETHER_K8S_STRATEGY", "replace"),
            ("AETHER_K8S_REPLICAS", "3"),
            ("AETHER_ROLLOUT_TIMEOUT_SECS", "120"),
        ])
        .unwrap();
        let RuntimeKind::Kubernetes(settings) = k.runtime else { panic!("not kubernetes") };
        assert_eq!((settings.namespace.as_str(), settings.replicas), ("aether", 3));
        assert_eq!(
            (settings.strategy, settings.progress_deadline_secs),
            (crate::runtime::kubernetes::Strategy::Replace, 120)
        );
        assert_eq!(settings.url("web"), "http://web.aether.svc.cluster.local:8080");
        for (name, value) in [
            ("AETHER_K8S_STRATEGY", "blue-green"),
            ("AETHER_K8S_REPLICAS", "0"),
            ("AETHER_DEFAULT_NAMESPACE", "Not_A_Namespace"),
            ("AETHER_K8S_URL_TEMPLATE", "http://static"),
        ] {
            let error = config(&[("AETHER_RUNTIME", "kubernetes"), (name, value)]).unwrap_err();
            assert_eq!(error.variable, name, "{value}");
        }
        assert_eq!(config(&[("AETHER_RUNTIME", "local")]).unwrap().runtime, RuntimeKind::Local);
        let error = config(&[("AETHER_RUNTIME", "docker")]).unwrap_err();
        assert_eq!(error.variable, "AETHER_RUNTIME");
        assert!(error.to_string().contains("docker"), "{error}");
        assert_eq!(config(&[("AETHER_HEALTH_TIMEOUT_MS", "soon")]).unwrap_err().variable, "AETHER_HEALTH_TIMEOUT_MS");
    }

    #[test]
    fn tokens_parse_with_roles_and_names() {
        let c = config(&[("AETHER_API_TOKENS", "a:admin, b:deployer:ci ,c:reader"), ("AETHER_API_TOKEN", "ignored")])
            .unwrap();
        let roles: Vec<_> = c.static_tokens.iter().map(|t| (t.secret.as_str(), t.role, t.name.as_deref())).collect();
        assert_eq!(roles, [("a", Role::Admin, None), ("b", Role::Deployer, Some("ci")), ("c", Role::Reader, None)]);
        let c = config(&[("AETHER_API_TOKEN", "solo")]).unwrap();
        assert_eq!(c.static_tokens[0].role, Role::Admin);
        assert!(config(&[("AETHER_API_TOKENS", "x:root")]).is_err());
        assert!(config(&[("AETHER_API_TOKENS", "x")]).is_err());
        assert!(!format!("{:?}", c.static_tokens[0]).contains("solo"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(config(&[("AETHER_LISTEN", "nope")]).unwrap_err().variable, "AETHER_LISTEN");
        assert_eq!(
            config(&[("AETHER_MAX_ARTIFACT_SIZE_BYTES", "big")]).unwrap_err().variable,
            "AETHER_MAX_ARTIFACT_SIZE_BYTES"
        );
        assert!(config(&[("AETHER_TLS_CERT", "c.pem")]).is_err());
    }
}
