#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `docs/troubleshooting.md` explains every error code the server answers with and every code
//! the CLI reports, so a new code cannot ship without saying what it means and what to do.
//! The codes are read from the sources as text, the way `configuration_docs.rs` reads variables.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file below `dir` with its text; test support (`testing/`) is not the product.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "testing") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path, text));
            }
        }
    }
    found
}

/// The string literal `text` starts with, after whitespace.
fn leading_literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    rest.split_once('"').map(|(literal, _)| literal)
}

/// The second argument of a call whose arguments start `args`, when it is a string literal.
/// `Err` when the call has a second argument that is not a literal, so a code built at run time
/// cannot slip past the scan.
fn second_argument(args: &str) -> Result<Option<&str>, String> {
    let mut depth = 0usize;
    for (at, c) in args.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return Ok(None),
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                return leading_literal(&args[at + 1..]).map(Some).ok_or_else(|| {
                    let shown: String = args[at + 1..].trim_start().chars().take(40).collect();
                    format!("a code that is not a string literal: {shown}...")
                });
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The codes passed as second argument to any of `calls` (`ApiError::new(`...) in `text`.
fn codes_of_calls(path: &Path, text: &str, calls: &[&str], codes: &mut Vec<String>, unreadable: &mut Vec<String>) {
    for call in calls {
        for (at, _) in text.match_indices(call) {
            let line = text[..at].matches('\n').count() + 1;
            match second_argument(&text[at + call.len()..]) {
                Ok(Some(code)) => codes.push(code.to_owned()),
                Ok(None) => {}
                Err(why) => unreadable.push(format!("{}:{line}: {why}", path.display())),
            }
        }
    }
}

fn sorted(mut codes: Vec<String>) -> Vec<String> {
    codes.sort();
    codes.dedup();
    codes
}

/// Every code the server's sources give an `ApiError`: the second argument of each
/// `ApiError::new(...)`, and of the `Self::new(...)` calls in `error.rs` behind the named
/// constructors (`bad_request`, `not_found`, ...) and the mapping of store, blob and runtime
/// errors.
fn server_codes() -> Vec<String> {
    let (mut codes, mut unreadable) = (Vec::new(), Vec::new());
    for (path, text) in sources(&workspace().join("aether-server/src")) {
        let calls: &[&str] =
            if path.ends_with("error.rs") { &["ApiError::new(", "Self::new("] } else { &["ApiError::new("] };
        codes_of_calls(&path, &text, calls, &mut codes, &mut unreadable);
    }
    assert!(unreadable.is_empty(), "codes this scan cannot read; use a literal or teach the scan: {unreadable:#?}");
    sorted(codes)
}

/// Every code the CLI prints: `CliError::new(exit, "code", ...)` and the constructors in
/// `exit.rs`, plus the codes of the sdk's errors (`Error::code`), which the CLI passes on.
fn cli_codes() -> Vec<String> {
    let (mut codes, mut unreadable) = (Vec::new(), Vec::new());
    for (path, text) in sources(&workspace().join("aether-cli/src")) {
        codes_of_calls(&path, &text, &["CliError::new("], &mut codes, &mut unreadable);
        if path.ends_with("exit.rs") {
            // `Self::new(exit, code, message)` also passes the sdk's codes through; only the
            // literal ones are the CLI's own.
            codes_of_calls(&path, &text, &["Self::new("], &mut codes, &mut Vec::new());
        }
    }
    assert!(unreadable.is_empty(), "codes this scan cannot read; use a literal or teach the scan: {unreadable:#?}");
    let sdk = std::fs::read_to_string(workspace().join("aether-sdk/src/error.rs")).unwrap();
    let (_, code_fn) = sdk.split_once("pub fn code(&self)").expect("the sdk's Error::code");
    let (body, _) = code_fn.split_once("\n    }\n").expect("the end of Error::code");
    codes.extend(body.split("=> ").skip(1).filter_map(leading_literal).map(str::to_owned));
    sorted(codes)
}

fn troubleshooting() -> String {
    std::fs::read_to_string(workspace().join("docs/troubleshooting.md")).unwrap()
}

/// Fails unless every code is in the page as `` `code` ``; `known` guards against a scan that
/// silently finds nothing.
fn assert_explained(whose: &str, codes: &[String], known: &[&str]) {
    for known in known {
        assert!(codes.iter().any(|c| c == known), "the scan of the {whose} missed {known}: {codes:?}");
    }
    let docs = troubleshooting();
    let missing: Vec<&String> = codes.iter().filter(|code| !docs.contains(&format!("`{code}`"))).collect();
    assert!(missing.is_empty(), "docs/troubleshooting.md does not explain the {whose}'s codes {missing:?}");
}

#[test]
fn every_error_code_the_server_answers_with_is_explained() {
    let known = ["bad_request", "not_found", "internal", "digest_mismatch", "quota_exceeded", "too_many_uploads"];
    assert_explained("server", &server_codes(), &known);
}

#[test]
fn every_error_code_the_cli_reports_is_explained() {
    let known = ["usage", "io", "deploy_timeout", "deployment_failed", "network_error", "no_package_json"];
    assert_explained("CLI", &cli_codes(), &known);
}

#[test]
fn codes_are_read_across_lines_and_non_literals_are_refused() {
    let text = "x = ApiError::new(\n    StatusCode::from_u16(409).unwrap(),\n    \"some_code\",\n    format!(\"{a}\"),\n);\n\
                y = ApiError::new(status, code, message);";
    let (mut codes, mut unreadable) = (Vec::new(), Vec::new());
    codes_of_calls(Path::new("sample.rs"), text, &["ApiError::new("], &mut codes, &mut unreadable);
    assert_eq!(codes, ["some_code"]);
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert!(unreadable[0].starts_with("sample.rs:6:"), "{unreadable:?}");
}
