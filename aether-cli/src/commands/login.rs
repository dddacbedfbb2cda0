//! `aether login` / `aether logout`: check a token against the control plane and keep it in
//! the session file (mode 0600), or forget it.

use std::io::{BufRead as _, IsTerminal as _};

use aether_sdk::config::Session;
use aether_sdk::connect::Overrides;
use serde_json::json;

use super::connection::{block_on, client, paths};
use crate::args::{LoginArgs, OutputFormat};
use crate::exit::CliError;

pub fn login(args: LoginArgs, insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let token = match args.token {
        Some(token) => token,
        None => read_token()?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage("the token is empty"));
    }
    let overrides = Overrides { api_base: args.api, token: Some(token.clone()), insecure };
    let client = client(&overrides)?;
    // Any authenticated read proves the token; listing apps needs only the reader role.
    let apps = block_on(async { Ok(client.list_apps().await?) })?;
    let api_base = client.base_url().trim_end_matches('/').to_owned();
    let session_file = paths().session_file;
    Session { api_base: api_base.clone(), token }.save(&session_file)?;
    match format {
        OutputFormat::Json => println!(
            "{}",
            json!({ "api_base": api_base, "session_file": session_file.display().to_string(), "apps": apps.len() })
        ),
        OutputFormat::Text => println!("Logged in to {api_base} (token saved in {})", session_file.display()),
    }
    Ok(())
}

pub fn logout(format: OutputFormat) -> Result<(), CliError> {
    let session_file = paths().session_file;
    let previous = Session::load(&session_file)?;
    if previous.is_some() {
        std::fs::remove_file(&session_file)
            .map_err(|e| CliError::io(format!("cannot remove {}: {e}", session_file.display())))?;
    }
    let api_base = previous.map(|s| s.api_base);
    match format {
        OutputFormat::Json => println!("{}", json!({ "logged_out": api_base.is_some(), "api_base": api_base })),
        OutputFormat::Text => match api_base {
            Some(api) => println!("Logged out of {api}"),
            None => println!("Not logged in"),
        },
    }
    Ok(())
}

/// Prompts without echo on a terminal; otherwise reads the first line of stdin, so
/// `echo $TOKEN | aether login` works in scripts.
fn read_token() -> Result<String, CliError> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Token: ").map_err(|e| CliError::io(format!("cannot read the token: {e}")));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::io(format!("cannot read the token from stdin: {e}")))?;
    if line.trim().is_empty() {
        return Err(CliError::usage("no token given: pass --token, or pipe it on stdin"));
    }
    Ok(line)
}
