//! Finding secrets in what a server or the CLI wrote: the tokens and keys a test gave them, and
//! any token the server minted (`aether_` and at least 32 hex digits). Test support checks
//! every server it runs and every CLI command it runs with this, so a secret written anywhere
//! during the suite fails the test that made it appear.

/// The secrets in a server's environment: its static tokens and the object store's credentials.
pub fn in_server_environment(vars: &[(String, String)]) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in vars {
        match name.as_str() {
            // `token:role[:name]`, comma-separated.
            "AETHER_API_TOKENS" => {
                secrets.extend(
                    value.split(',').filter_map(|entry| entry.split(':').next()).map(str::trim).map(str::to_owned),
                );
            }
            "AETHER_API_TOKEN" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" => secrets.push(value.trim().to_owned()),
            _ => {}
        }
    }
    secrets.retain(|secret| !secret.is_empty());
    secrets
}

/// The first of `secrets`, or minted token, that `text` shows, if any.
pub fn first_shown<'a>(text: &'a str, secrets: &'a [String]) -> Option<&'a str> {
    if let Some(secret) = secrets.iter().find(|secret| text.contains(secret.as_str())) {
        return Some(secret);
    }
    text.match_indices("aether_").find_map(|(at, prefix)| {
        let rest = &text[at + prefix.len()..];
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        (hex >= 32).then(|| &text[at..at + prefix.len() + hex])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn static_tokens_and_store_credentials_are_secrets() {
        let found = in_server_environment(&vars(&[
            ("AETHER_API_TOKENS", "one:admin, two:reader:ci"),
            ("AWS_SECRET_ACCESS_KEY", "s3-secret"),
            ("AWS_ACCESS_KEY_ID", "not-secret"),
        ]));
        assert_eq!(found, ["one", "two", "s3-secret"]);
    }

    #[test]
    fn a_secret_or_a_minted_token_is_found_and_nothing_else() {
        let secrets = vec!["e2e-admin-token".to_owned()];
        assert_eq!(first_shown("auth failed for e2e-admin-token", &secrets), Some("e2e-admin-token"));
        let minted = format!("token=aether_{}", "ab12".repeat(8));
        assert_eq!(first_shown(&minted, &secrets), Some(&minted[6..]));
        assert_eq!(first_shown("aether_server listening; aether_1234 is short", &secrets), None);
    }
}
