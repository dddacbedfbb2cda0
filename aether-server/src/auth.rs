//! Bearer tokens and roles.
//!
//! Tokens come from configuration (`AETHER_API_TOKENS`) or are minted through the API; either
//! way only SHA-256 hashes are compared or stored, and configured ones in constant time.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngExt as _;
use subtle::ConstantTimeEq as _;

use crate::config::StaticToken;
use crate::error::ApiError;
use crate::model::{Role, Token};
use crate::ports::MetadataStore;
use crate::state::{AppState, now_ms};

/// Who is calling, inserted into the request's extensions by [`require_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The stored token's id; `None` for configured tokens.
    pub token_id: Option<String>,
}

/// Lowercase hex SHA-256 of a token secret: what is stored and compared.
pub fn hash_token(secret: &str) -> String {
    aether_core::digest::sha256_hex(secret.as_bytes())
}

/// A new random secret: 32 bytes, hex, prefixed so leaked tokens are recognisable in scans.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("aether_{}", hex::encode(bytes))
}

/// The role the route `method route` needs, `route` being its template (`/tokens/{id}`), as the
/// route table says; a route missing from the table needs the highest role.
pub fn required_role(method: &Method, route: &str) -> Role {
    crate::openapi::find(method.as_str(), route).and_then(|r| r.role).unwrap_or(Role::Admin)
}

fn match_static(tokens: &[StaticToken], presented_hash: &str) -> Option<Role> {
    // Compare against every token, without stopping early, so timing says nothing.
    let mut found = None;
    for token in tokens {
        let equal: bool = hash_token(&token.secret).as_bytes().ct_eq(presented_hash.as_bytes()).into();
        if equal {
            found = Some(token.role);
        }
    }
    found
}

/// Resolves the bearer token of a request to a caller, or explains why not (401).
pub async fn authenticate<M: MetadataStore>(
    static_tokens: &[StaticToken],
    store: &M,
    header: Option<&str>,
    now_ms: i64,
) -> Result<Caller, ApiError> {
    let secret = header
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)"))?;
    let hash = hash_token(secret);
    if let Some(role) = match_static(static_tokens, &hash) {
        return Ok(Caller { role, token_id: None });
    }
    match store.find_token(&hash).await? {
        Some(Token { revoked_at_ms: Some(_), .. }) => Err(ApiError::unauthorized("token has been revoked")),
        Some(Token { expires_at_ms: Some(expiry), .. }) if expiry <= now_ms => {
            Err(ApiError::unauthorized("token has expired"))
        }
        Some(token) => Ok(Caller { role: token.role, token_id: Some(token.id) }),
        None => Err(ApiError::unauthorized("invalid token")),
    }
}

/// Middleware: authenticates and checks the role the route needs (403 when insufficient).
pub async fn require_token<S: crate::state::Ports>(
    State(state): State<AppState<S>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = authenticate(&state.config.static_tokens, state.store.as_ref(), header, now_ms()).await?;
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("", |matched| matched.as_str());
    let needed = required_role(request.method(), route);
    if caller.role < needed {
        return Err(ApiError::forbidden(format!(
            "this token's role is {}; {} {} needs {}",
            caller.role.as_str(),
            request.method(),
            request.uri().path(),
            needed.as_str()
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// In embedded mode with no configured tokens, the first start mints an admin token, stores
/// its hash and returns the secret so `main` can print it once.
pub async fn bootstrap_admin_token<M: MetadataStore>(store: &M, now_ms: i64) -> Result<Option<String>, ApiError> {
    if store.count_tokens().await? > 0 {
        return Ok(None);
    }
    let secret = new_secret();
    let token = Token {
        id: uuid::Uuid::new_v4().to_string(),
        name: Some("bootstrap admin".into()),
        role: Role::Admin,
        token_hash: hash_token(&secret),
        created_at_ms: now_ms,
        expires_at_ms: None,
        revoked_at_ms: None,
    };
    store.insert_token(&token).await?;
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_method_and_path() {
        assert_eq!(required_role(&Method::GET, "/apps"), Role::Reader);
        assert_eq!(required_role(&Method::HEAD, "/artifacts/{digest}"), Role::Reader);
        assert_eq!(required_role(&Method::HEAD, "/apps"), Role::Reader);
        assert_eq!(required_role(&Method::GET, "/no/such/route"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/apps"), Role::Deployer);
        assert_eq!(required_role(&Method::POST, "/deployments"), Role::Deployer);
        assert_eq!(required_role(&Method::POST, "/tokens"), Role::Admin);
        assert_eq!(required_role(&Method::DELETE, "/tokens/{id}"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/apps/{app}/public-keys"), Role::Admin);
        assert!(Role::Admin > Role::Deployer && Role::Deployer > Role::Reader);
    }

    #[test]
    fn static_tokens_match_by_hash() {
        let tokens = vec![
            StaticToken { secret: "a".into(), role: Role::Reader, name: None },
            StaticToken { secret: "b".into(), role: Role::Admin, name: None },
        ];
        assert_eq!(match_static(&tokens, &hash_token("b")), Some(Role::Admin));
        assert_eq!(match_static(&tokens, &hash_token("c")), None);
        assert!(new_secret().starts_with("aether_") && new_secret() != new_secret());
    }
}
