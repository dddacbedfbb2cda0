#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `aether-server render-k8s` prints exactly the objects the Kubernetes runtime applies; the
//! output is kept reviewed as snapshots in `tests/snapshots/` (rewrite them with
//! `AETHER_UPDATE_SNAPSHOTS=1` after an intended change), which `scripts/check_render_k8s.py`
//! validates against the Kubernetes OpenAPI schemas (1.30 and newer).

use std::path::PathBuf;
use std::process::{Command, Output};

const DIGEST: &str = "5919b1153c9c13a8b2d0a9e5e2d2f1a0b6f4c1d3e5a7b9c0d2e4f6a8b0c2e4f6";

fn render(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aether-server"))
        .arg("render-k8s")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn check_snapshot(name: &str, output: &Output) {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    let actual = String::from_utf8(output.stdout.clone()).unwrap();
    if std::env::var_os("AETHER_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} differs from the output (AETHER_UPDATE_SNAPSHOTS=1 rewrites it):\n{actual}",
        path.display()
    );
}

#[test]
fn default_settings_render_the_reviewed_objects() {
    let args = [
        "--app",
        "web",
        "--digest",
        DIGEST,
        "--artifact-url",
        "https://artifacts.example/web.tar.gz?X-Amz-Signature=abc",
        "--env",
        "GREETING=hello",
    ];
    let output = render(&args, &[]);
    check_snapshot("render-k8s-default.yaml", &output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.matches("\n---\n").count() + usize::from(text.starts_with("---\n")), 3, "{text}");
    for kind in ["kind: Secret", "kind: Deployment", "kind: Service"] {
        assert!(text.contains(kind), "{kind} missing:\n{text}");
    }
}

#[test]
fn settings_shape_what_is_rendered() {
    let env = [
        ("AETHER_DEFAULT_NAMESPACE", "apps"),
        ("AETHER_K8S_STRATEGY", "replace"),
        ("AETHER_K8S_REPLICAS", "2"),
        ("AETHER_K8S_CPU", "250m"),
        ("AETHER_K8S_MEMORY", "256Mi"),
        ("AETHER_NODE_IMAGE", "registry.example/aether-nodejs:20-slim"),
        ("AETHER_FETCHER_IMAGE", "registry.example/aether-server:1.2.3"),
        ("AETHER_ROLLOUT_TIMEOUT_SECS", "120"),
    ];
    let output = render(&["--app", "api", "--digest", &format!("sha256:{DIGEST}")], &env);
    check_snapshot("render-k8s-settings.yaml", &output);
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["--app", "Not_An_App", "--digest", DIGEST][..],
        &["--app", "web", "--digest", "nope"][..],
        &["--app", "web", "--digest", DIGEST, "--env", "NO_EQUALS"][..],
        &["--app", "web", "--digest", DIGEST, "--env", "PORT=1"][..],
        &["--digest", DIGEST][..],
    ] {
        let output = render(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stdout.is_empty());
    }
    let bad_setting = render(&["--app", "web", "--digest", DIGEST], &[("AETHER_K8S_STRATEGY", "blue-green")]);
    assert_eq!(bad_setting.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_setting.stderr).contains("AETHER_K8S_STRATEGY"));
}
