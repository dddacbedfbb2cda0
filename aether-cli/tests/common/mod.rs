//! What the end-to-end tests share: where the binaries under test are, a copy of the sample app,
//! and a user running the CLI on it. Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn aether_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aether"))
}

/// `aether-server` is built next to `aether` by a workspace build (`cargo nextest run --workspace`).
pub fn server_bin() -> PathBuf {
    let path = aether_bin().with_file_name("aether-server");
    assert!(path.exists(), "{} is missing: build the workspace (cargo build -p aether-server)", path.display());
    path
}

/// A copy of `examples/sample-node` at `dir/sample-node` and an empty `dir/home` for the CLI:
/// `(home, project)`.
pub fn sample_project(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let project = dir.join("sample-node");
    std::fs::create_dir_all(&project).unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-node");
    for name in ["package.json", "package-lock.json", "server.js"] {
        std::fs::copy(sample.join(name), project.join(name)).unwrap();
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    (home, project)
}

/// A copy of the sample app and private HOME/XDG directories for the CLI.
/// Fails when a command's output shows one of `secrets` or a token the server minted.
pub fn assert_no_secret_printed(output: &Output, secrets: &[String], command: &str) {
    let printed = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if let Some(secret) = aether_server::testing::secrets::first_shown(&printed, secrets) {
        panic!("`aether {command}` printed a token ({} characters)", secret.len());
    }
}

pub struct User {
    pub home: PathBuf,
    pub project: PathBuf,
    /// Every token this user gave the CLI; no later output may show one.
    secrets: std::cell::RefCell<Vec<String>>,
}

impl User {
    pub fn new(dir: &Path) -> Self {
        let (home, project) = sample_project(dir);
        Self { home, project, secrets: std::cell::RefCell::default() }
    }

    pub fn aether(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = self.command(args).envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
        let mut secrets = self.secrets.borrow_mut();
        let given = args.windows(2).filter(|pair| pair[0] == "--token").map(|pair| pair[1]);
        let in_env = env.iter().filter(|(name, _)| *name == "AETHER_TOKEN").map(|(_, value)| *value);
        secrets.extend(given.chain(in_env).map(str::to_owned));
        assert_no_secret_printed(&output, &secrets, &args.join(" "));
        output
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(aether_bin());
        command
            .args(args)
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_CACHE_HOME", self.home.join("cache"));
        command
    }

    /// Runs a command with `--format json` and returns its exit code and JSON.
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        self.json_with(args, &[])
    }

    pub fn json_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let output = self.aether(&all, env);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("{args:?}: {e}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr))
        });
        (output.status.code().unwrap_or(-1), value)
    }

    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.project.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }
}
