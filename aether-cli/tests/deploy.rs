#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `aether` binary and real npm on `examples/sample-node`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

struct Sandbox {
    _dir: tempfile::TempDir,
    project: PathBuf,
    home: PathBuf,
}

impl Sandbox {
    /// A copy of the sample app plus private HOME/XDG directories.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("sample-node");
        std::fs::create_dir_all(&project).unwrap();
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-node");
        for name in ["package.json", "package-lock.json", "server.js", ".gitignore"] {
            std::fs::copy(sample.join(name), project.join(name)).unwrap();
        }
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Self { _dir: dir, project, home }
    }

    fn aether(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aether"));
        cmd.args(args)
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_CACHE_HOME", self.home.join("cache"));
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.aether(args);
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    }
}

fn json(output: &Output) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(stdout.trim_end().lines().count(), 1, "exactly one JSON line on stdout: {stdout}");
    assert!(!stdout.contains('\u{1b}'), "no escape codes in JSON output");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn sha256_file(path: &Path) -> String {
    aether_core::digest::sha256_hex(&std::fs::read(path).unwrap())
}

#[test]
fn pack_only_writes_a_signed_described_artifact_and_reuses_the_install_cache() {
    let sb = Sandbox::new();
    let out = sb.run(&["deploy", "--pack-only", "--format", "json"], &[("AETHER_SIGNING_KEY", KEY)]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    let artifact = PathBuf::from(v["artifact"].as_str().unwrap());
    assert_eq!(artifact, sb.project.canonicalize().unwrap().join(".aether/app.tar.gz"));
    let digest = v["digest"].as_str().unwrap();
    assert_eq!(digest, sha256_file(&artifact));
    assert_eq!(v["size_bytes"].as_u64().unwrap(), std::fs::metadata(&artifact).unwrap().len());
    assert_eq!(v["install"]["command"], "npm ci --omit=dev --no-audit --no-fund");
    assert_eq!(v["install"]["cached"], false);

    let manifest: Value = serde_json::from_slice(&std::fs::read(v["manifest"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(manifest["digest"], digest);
    let paths: Vec<&str> =
        manifest["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"node_modules/ms/index.js") && paths.contains(&"server.js"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("is-number")), "dev dependencies are not packed");
    assert!(!paths.iter().any(|p| p.starts_with(".aether")), "outputs are never packed");

    let sbom: Value = serde_json::from_slice(&std::fs::read(v["sbom"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(sbom["specVersion"], "1.5");
    let purls: Vec<&str> = sbom["components"].as_array().unwrap().iter().filter_map(|c| c["purl"].as_str()).collect();
    assert_eq!(purls, ["pkg:npm/ms@2.1.3"]);

    let signature = std::fs::read_to_string(v["signature"].as_str().unwrap()).unwrap();
    assert_eq!(signature.len(), 128);
    assert_eq!(v["public_key"], "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    aether_core::signing::verify_digest(v["public_key"].as_str().unwrap(), digest, &signature).unwrap();

    let envelope: aether_core::signing::DsseEnvelope =
        serde_json::from_slice(&std::fs::read(v["provenance"].as_str().unwrap()).unwrap()).unwrap();
    let payload = aether_core::signing::verify_dsse(&envelope, v["public_key"].as_str().unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest);
    let byproducts = &statement["predicate"]["runDetails"]["byproducts"];
    assert_eq!(byproducts[0]["digest"]["sha256"], sha256_file(Path::new(v["manifest"].as_str().unwrap())));
    assert_eq!(byproducts[1]["digest"]["sha256"], sha256_file(Path::new(v["sbom"].as_str().unwrap())));
    let lock = &statement["predicate"]["buildDefinition"]["resolvedDependencies"][0];
    assert_eq!(lock["digest"]["sha256"], sha256_file(&sb.project.join("package-lock.json")));

    // The runtimes' safe unpacker takes the artifact back apart.
    let release = sb.home.join("release");
    let summary = aether_core::unpack::unpack_tar_gz(
        std::fs::File::open(&artifact).unwrap(),
        &release,
        &aether_core::unpack::UnpackLimits::default(),
    )
    .unwrap();
    assert_eq!(summary.files, manifest["total_files"].as_u64().unwrap());
    assert_eq!(std::fs::read(release.join("server.js")).unwrap(), std::fs::read(sb.project.join("server.js")).unwrap());
    assert!(release.join("node_modules/ms/index.js").is_file());

    // Same lockfile: no reinstall, same bytes.
    let again = json(&sb.run(&["deploy", "--pack-only", "--format", "json"], &[("AETHER_SIGNING_KEY", KEY)]));
    assert_eq!(again["install"]["cached"], true);
    assert_eq!(again["digest"], digest);
}

#[test]
fn dry_run_reports_the_digest_without_writing() {
    let sb = Sandbox::new();
    let dry = json(&sb.run(&["deploy", "--dry-run", "--format", "json"], &[]));
    assert_eq!(dry["dry_run"], true);
    assert!(dry["artifact"].is_null() && dry["manifest"].is_null() && dry["signature"].is_null());
    assert!(!sb.project.join(".aether").exists());
    // It says what would ship: every entry, as the manifest will list it.
    let entries = dry["entries"].as_array().unwrap();
    let server_js = entries.iter().find(|e| e["path"] == "server.js").unwrap();
    assert_eq!(server_js["size"], std::fs::metadata(sb.project.join("server.js")).unwrap().len());
    assert!(entries.iter().any(|e| e["path"] == "node_modules/ms/index.js"));
    let text = String::from_utf8(sb.run(&["deploy", "--dry-run"], &[]).stdout).unwrap();
    assert!(text.starts_with("Would pack sample-node@1.0.0") && text.contains(" server.js\n"), "{text}");
    let packed = json(&sb.run(&["deploy", "--pack-only", "--format", "json", "--no-sbom"], &[]));
    assert_eq!(dry["digest"], packed["digest"]);
    assert!(packed.get("entries").is_none(), "a real build points to its manifest instead");
    let manifest = read_json(&packed["manifest"]);
    assert_eq!(&manifest["entries"], &dry["entries"]);
    assert!(packed["sbom"].is_null() && packed["signature"].is_null());
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(packed["provenance"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(provenance["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(provenance["predicateType"], "https://slsa.dev/provenance/v1");
}

#[test]
fn out_dir_legacy_sbom_and_no_install() {
    let sb = Sandbox::new();
    let out_dir = sb.home.join("artifacts");
    let v = json(&sb.run(
        &[
            "deploy",
            "--pack-only",
            "--no-install",
            "--legacy-sbom",
            "--out",
            out_dir.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    ));
    assert_eq!(PathBuf::from(v["artifact"].as_str().unwrap()), out_dir.join("app.tar.gz"));
    assert!(v["install"].is_null());
    let sbom: Value = serde_json::from_slice(&std::fs::read(v["sbom"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(sbom["schema"], "aether-sbom-v1");
    // No node_modules in the tree and no install: only the sources ship.
    let manifest: Value = serde_json::from_slice(&std::fs::read(v["manifest"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(manifest["total_files"], 4);
}

#[test]
fn text_output_is_for_people() {
    let sb = Sandbox::new();
    let out = sb.run(&["deploy", "--pack-only", "--no-install"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Packed sample-node@1.0.0 -> "), "{text}");
    assert!(text.contains("  digest     sha256:"), "{text}");
}

fn expect_error(out: &Output, exit: i32, code: &str) -> String {
    assert_eq!(out.status.code(), Some(exit), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v = json(out);
    assert_eq!(v["error"]["code"], code, "{v}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn missing_package_json_is_a_usage_error() {
    let sb = Sandbox::new();
    std::fs::remove_file(sb.project.join("package.json")).unwrap();
    let message = expect_error(&sb.run(&["deploy", "--pack-only", "--format", "json"], &[]), 2, "no_package_json");
    assert!(message.contains("package.json"), "{message}");
    let out = sb.run(&["deploy", "--pack-only", "/nonexistent/dir"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no package.json"));
    // Without --pack-only too: the project is read before any server is asked.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let api = format!("http://{closed}");
    let out = sb.run(&["deploy", "--format", "json"], &[("AETHER_API_BASE", api.as_str())]);
    expect_error(&out, 2, "no_package_json");
}

/// The archive's entry names.
fn tar_listing(artifact: &Path) -> Vec<String> {
    let file = std::fs::File::open(artifact).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
}

#[test]
fn outputs_are_never_packed_wherever_they_go() {
    let sb = Sandbox::new();
    // Nothing in the sample's .gitignore may hide the outputs: only the exclusions must.
    std::fs::remove_file(sb.project.join(".gitignore")).unwrap();
    let into_project = ["deploy", "--pack-only", "--no-install", "--format", "json", "--out", "."];
    let first = json(&sb.run(&into_project, &[]));
    let second = json(&sb.run(&into_project, &[]));
    assert_eq!(first["digest"], second["digest"], "an earlier build's outputs were packed");
    let listing = tar_listing(&sb.project.join("app.tar.gz"));
    assert!(listing.iter().all(|p| !p.starts_with("app.tar.gz") && !p.starts_with(".app.tar.gz")), "{listing:?}");

    // The default .aether/ holds a build; packing elsewhere must not ship it.
    for name in [
        "app.tar.gz",
        "app.tar.gz.manifest.json",
        "app.tar.gz.blocks.json",
        "app.tar.gz.sbom.json",
        "app.tar.gz.provenance.json",
    ] {
        std::fs::remove_file(sb.project.join(name)).unwrap();
    }
    json(&sb.run(&["deploy", "--pack-only", "--no-install", "--format", "json"], &[]));
    let elsewhere = sb.home.join("elsewhere");
    let args = ["deploy", "--pack-only", "--no-install", "--format", "json", "--out", elsewhere.to_str().unwrap()];
    let third = json(&sb.run(&args, &[]));
    let listing = tar_listing(&elsewhere.join("app.tar.gz"));
    assert!(listing.iter().all(|p| !p.starts_with(".aether")), "{listing:?}");
    assert_eq!(third["digest"], first["digest"]);
}

#[test]
fn bad_config_and_bad_keys_are_config_errors() {
    let sb = Sandbox::new();
    let args = ["deploy", "--pack-only", "--no-install", "--format", "json"];
    let bad_key = expect_error(&sb.run(&args, &[("AETHER_SIGNING_KEY", "abcd")]), 10, "invalid_signing_key");
    assert!(bad_key.contains("64 hex"), "{bad_key}");
    let key_file = sb.home.join("key.hex");
    std::fs::write(&key_file, "zz".repeat(32)).unwrap();
    expect_error(&sb.run(&args, &[("AETHER_SIGNING_KEY", key_file.to_str().unwrap())]), 10, "invalid_signing_key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let ok = json(&sb.run(&args, &[("AETHER_SIGNING_KEY", key_file.to_str().unwrap())]));
    assert!(ok["signature"].is_string());

    expect_error(&sb.run(&args, &[("SOURCE_DATE_EPOCH", "yesterday")]), 10, "invalid_variable");
    std::fs::create_dir_all(sb.home.join("config/aether")).unwrap();
    std::fs::write(sb.home.join("config/aether/config.toml"), "signing_key = \"zz\"\n").unwrap();
    let from_config = expect_error(&sb.run(&args, &[]), 10, "invalid_signing_key");
    assert!(from_config.contains("signing_key in") && from_config.contains("config.toml"), "{from_config}");
    std::fs::write(sb.home.join("config/aether/config.toml"), "namespace = [unclosed").unwrap();
    let message = expect_error(&sb.run(&args, &[]), 10, "invalid_config");
    assert!(message.contains("config.toml"), "{message}");
    assert!(!sb.project.join(".aether/app.tar.gz").exists() || ok["artifact"].is_string());
}

#[test]
fn npm_failure_is_a_runtime_error_with_its_stderr() {
    let sb = Sandbox::new();
    // Installed once, so the cache holds this lockfile's node_modules.
    json(&sb.run(&["deploy", "--pack-only", "--format", "json"], &[]));
    let before = sha256_file(&sb.project.join(".aether/app.tar.gz"));
    // A dependency the lockfile does not have: npm ci refuses before touching the network, and
    // the cached install of the same lockfile must not hide that.
    let package = std::fs::read_to_string(sb.project.join("package.json")).unwrap();
    std::fs::write(
        sb.project.join("package.json"),
        package.replace("\"ms\": \"2.1.3\"", "\"ms\": \"2.1.3\", \"left-pad\": \"1.3.0\""),
    )
    .unwrap();
    let message = expect_error(&sb.run(&["deploy", "--pack-only", "--format", "json"], &[]), 20, "command_failed");
    assert!(message.contains("npm ci --omit=dev"), "{message}");
    assert!(message.contains("npm error"), "npm's own stderr is shown: {message}");
    assert!(message.contains("Missing: left-pad"), "the cause, not npm's usage text, is shown: {message}");
    assert_eq!(sha256_file(&sb.project.join(".aether/app.tar.gz")), before, "the earlier build is untouched");
}

#[test]
fn symlink_escaping_the_tree_names_the_path() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink("/etc/passwd", sb.project.join("passwd")).unwrap();
    let message = expect_error(
        &sb.run(&["deploy", "--pack-only", "--no-install", "--format", "json"], &[]),
        2,
        "symlink_escapes_tree",
    );
    assert!(message.contains("passwd"), "{message}");
    let leftovers: Vec<_> = std::fs::read_dir(sb.project.join(".aether")).map(|d| d.count()).into_iter().collect();
    assert!(leftovers.iter().all(|n| *n == 0), "nothing half-written remains");
}

#[test]
fn provenance_timeout_is_noted_or_fatal_when_required() {
    let sb = Sandbox::new();
    let v = json(
        &sb.run(&["deploy", "--dry-run", "--no-install", "--format", "json"], &[("AETHER_PROVENANCE_TIMEOUT_MS", "0")]),
    );
    assert_eq!(v["note"], "timeout");
    assert!(v["provenance"].is_null());
    let out = sb.run(
        &["deploy", "--pack-only", "--no-install", "--format", "json"],
        &[("AETHER_PROVENANCE_TIMEOUT_MS", "0"), ("AETHER_REQUIRE_PROVENANCE", "1")],
    );
    expect_error(&out, 20, "provenance_failed");
}

#[test]
fn usage_errors_help_and_completions() {
    let sb = Sandbox::new();
    let out = sb.run(&["deploy", "--bogus", "--format", "json"], &[]);
    expect_error(&out, 2, "usage");
    let out = sb.run(&["deploy", "--pack-only", "--dry-run", "--format", "json"], &[]);
    expect_error(&out, 2, "usage");
    // Deploying needs a control plane; an unreachable one fails fast, naming the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let api = format!("http://{closed}");
    let started = std::time::Instant::now();
    let out = sb.run(&["deploy", "--format", "json"], &[("AETHER_API_BASE", api.as_str())]);
    let message = expect_error(&out, 40, "network_error");
    assert!(message.contains(&api), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no build before the server answers");
    assert!(!sb.project.join(".aether/app.tar.gz").exists(), "nothing was built");
    let out = sb.run(&["status", "--app", "Bad_Name", "--format", "json"], &[]);
    expect_error(&out, 2, "usage");
    let out = sb.run(&["logs", "--app", "web", "--since", "3w", "--format", "json"], &[]);
    expect_error(&out, 2, "usage");
    let help = sb.run(&["--help"], &[]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("deploy"));
    let bash = sb.run(&["completions", "--shell", "bash"], &[]);
    assert!(bash.status.success() && String::from_utf8_lossy(&bash.stdout).contains("complete -F"));
    let zsh = sb.run(&["completions", "--shell", "zsh"], &[]);
    assert!(String::from_utf8_lossy(&zsh.stdout).contains("#compdef aether"));
}

#[test]
fn logs_go_to_stderr_as_json_when_asked() {
    let sb = Sandbox::new();
    let out =
        sb.run(&["--log-level", "debug", "--log-format", "json", "deploy", "--pack-only", "--format", "json"], &[]);
    assert!(out.status.success());
    json(&out);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let first = stderr.lines().next().expect("debug logs on stderr");
    let line: Value = serde_json::from_str(first).unwrap();
    assert!(line["level"].is_string(), "{line}");
}

/// A standard DSSE verifier (securesystemslib, the in-toto reference) accepts the envelope and
/// rejects it once the payload is tampered with.
#[test]
fn provenance_envelope_passes_a_standard_dsse_verifier() {
    let sb = Sandbox::new();
    let v =
        json(&sb.run(&["deploy", "--pack-only", "--no-install", "--format", "json"], &[("AETHER_SIGNING_KEY", KEY)]));
    let envelope_path = v["provenance"].as_str().unwrap();
    let public_key = v["public_key"].as_str().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify_dsse.py");
    let verify = |path: &str| Command::new("python3").arg(&script).arg(path).arg(public_key).output().unwrap();
    let ok = verify(envelope_path);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "run `pip install -r requirements-dev.txt`: {stderr}");
    assert!(ok.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "application/vnd.in-toto+json");

    let mut envelope: Value = serde_json::from_slice(&std::fs::read(envelope_path).unwrap()).unwrap();
    envelope["payload"] = Value::String(envelope["payload"].as_str().unwrap().replacen('e', "f", 1));
    let tampered = sb.home.join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&envelope).unwrap()).unwrap();
    assert!(!verify(tampered.to_str().unwrap()).status.success());
}

#[test]
fn unwritable_output_is_an_io_error() {
    let sb = Sandbox::new();
    let not_a_dir = sb.home.join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let args = ["deploy", "--pack-only", "--no-install", "--format", "json", "--out", not_a_dir.to_str().unwrap()];
    let message = expect_error(&sb.run(&args, &[]), 30, "io");
    assert!(message.contains("file"), "{message}");
}

#[test]
fn namespace_comes_from_the_environment_over_the_config_file() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.home.join("config/aether")).unwrap();
    std::fs::write(sb.home.join("config/aether/config.toml"), "namespace = \"from-config\"\n").unwrap();
    let args = ["deploy", "--pack-only", "--no-install", "--format", "json"];
    let v = json(&sb.run(&args, &[]));
    assert_eq!(v["namespace"], "from-config");
    let v = json(&sb.run(&args, &[("AETHER_DEFAULT_NAMESPACE", "team-a")]));
    assert_eq!(v["namespace"], "team-a");
    let statement: Value = serde_json::from_slice(&std::fs::read(v["provenance"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(statement["predicate"]["buildDefinition"]["externalParameters"]["namespace"], "team-a");
}

fn read_json(path: &Value) -> Value {
    serde_json::from_slice(&std::fs::read(path.as_str().unwrap()).unwrap()).unwrap()
}

#[test]
fn provenance_and_sbom_describe_what_was_really_used() {
    let sb = Sandbox::new();
    let installed = json(&sb.run(&["deploy", "--pack-only", "--format", "json"], &[]));
    let provenance = read_json(&installed["provenance"]);
    let definition = &provenance["predicate"]["buildDefinition"];
    assert!(definition["internalParameters"]["install"].as_str().unwrap().starts_with("npm ci --omit=dev"));
    let lock_sha = sha256_file(&sb.project.join("package-lock.json"));
    assert_eq!(
        definition["resolvedDependencies"][0],
        serde_json::json!({"name": "package-lock.json", "digest": {"sha256": lock_sha}})
    );
    let sbom = read_json(&installed["sbom"]);
    assert_eq!(sbom["dependencies"][0]["dependsOn"], serde_json::json!(["pkg:npm/ms@2.1.3"]));

    // A yarn project packed as found: its lockfile is recorded, nothing claims an install, and
    // the SBOM lists no package the artifact does not hold.
    std::fs::remove_file(sb.project.join("package-lock.json")).unwrap();
    std::fs::write(sb.project.join("yarn.lock"), "# yarn lockfile v1\n").unwrap();
    let as_found = json(&sb.run(&["deploy", "--pack-only", "--no-install", "--format", "json"], &[]));
    let definition = read_json(&as_found["provenance"])["predicate"]["buildDefinition"].clone();
    assert_eq!(definition["internalParameters"]["install"], aether_core::provenance::NOT_INSTALLED);
    let yarn_sha = sha256_file(&sb.project.join("yarn.lock"));
    assert_eq!(definition["resolvedDependencies"][0]["name"], "yarn.lock");
    assert_eq!(definition["resolvedDependencies"][0]["digest"]["sha256"], yarn_sha);
    let sbom = read_json(&as_found["sbom"]);
    assert_eq!(sbom["components"], serde_json::json!([]), "{sbom}");
}

#[test]
fn the_sbom_lists_only_packages_that_shipped() {
    let sb = Sandbox::new();
    std::fs::write(sb.project.join(".aetherignore"), "node_modules/ms/\n").unwrap();
    let packed = json(&sb.run(&["deploy", "--pack-only", "--format", "json"], &[]));
    let listing = tar_listing(Path::new(packed["artifact"].as_str().unwrap()));
    assert!(!listing.iter().any(|p| p.starts_with("node_modules/ms")), "{listing:?}");
    let sbom = read_json(&packed["sbom"]);
    assert_eq!(sbom["components"], serde_json::json!([]), "{sbom}");
    assert!(sbom["dependencies"][0].get("dependsOn").is_none_or(|d| d == &serde_json::json!([])), "{sbom}");
}

/// Every regular file under `dir`.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().map_while(Result::ok) {
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn the_block_cache_never_changes_the_artifact_even_when_corrupted() {
    let sb = Sandbox::new();
    let args = ["deploy", "--pack-only", "--no-install", "--format", "json"];
    let uncached = json(&sb.run(&args, &[("AETHER_BLOCK_CACHE_MAX_BYTES", "0")]));
    let blocks = sb.home.join("cache/aether/blocks");
    assert!(files_in(&blocks).is_empty(), "a cache turned off was written");

    let cold = json(&sb.run(&args, &[]));
    assert_eq!(cold["digest"], uncached["digest"]);
    let entries = files_in(&blocks);
    assert_eq!(entries.len() as u64, cold["block_count"].as_u64().unwrap(), "one entry per block");

    // Every entry corrupted: each is noticed, dropped and compressed again.
    for entry in &entries {
        let mut bytes = std::fs::read(entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(entry, bytes).unwrap();
    }
    let repaired = json(&sb.run(&args, &[]));
    assert_eq!(repaired["digest"], cold["digest"], "a corrupted cache entry was shipped");
    for entry in files_in(&blocks) {
        let bytes = std::fs::read(&entry).unwrap();
        let (hash, payload) = bytes.split_at(32);
        let hash: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash, aether_core::digest::sha256_hex(payload), "{} is still corrupt", entry.display());
    }
    let warm = json(&sb.run(&args, &[]));
    assert_eq!(warm["digest"], cold["digest"]);
}
