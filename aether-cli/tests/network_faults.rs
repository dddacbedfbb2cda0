#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The network between the CLI and the server degraded, with the real binaries: the server runs
//! in a network namespace of its own, reached over a veth pair whose bandwidth `tc tbf` limits,
//! and iptables in that namespace drops packets at random or resets connections mid-upload.
//! Each deploy either completes through the SDK's retries or fails with exit 40 and a message
//! that names the cause; what the server stores always hashes to the digest the CLI computed.
//! This kernel has no `netem`, so added latency is not emulated; the rate limit's queue and the
//! retransmissions after each drop are the delay these links see.
//!
//! Needs root (namespaces), `ip`, `tc` and `iptables`. Elsewhere the tests report that they
//! cannot run and pass, unless `AETHER_REQUIRE_NETNS=1` (set by `.ci/run`) makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aether_core::digest::sha256_hex;
use aether_core::wire::Digest;
use aether_sdk::client::{Client, ClientConfig};
use aether_server::testing::process::ServerProcess;
use common::{User, server_bin};
use serde_json::Value;

const TOKEN: &str = "network-faults-admin-token";
/// Connections to the server that carried more than this were mid-upload when reset: the API
/// calls before the upload are a few KiB, the artifact is over 2 MiB.
const RESET_AFTER_BYTES: u64 = 1024 * 1024;

#[test]
fn a_deploy_over_a_slow_lossy_link_completes_and_stores_the_exact_artifact() {
    let Some(link) = Link::create() else { return };
    link.limit_rate("16mbit");
    let dir = tempfile::tempdir().unwrap();
    let mut server = link.start_server(dir.path());
    let port = port_of(&server);
    // Both directions lose one packet in 50 to the server's port.
    link.drop_at_random("INPUT", "--dport", &port, "loss-in");
    link.drop_at_random("OUTPUT", "--sport", &port, "loss-out");
    let user = user_with_big_artifact(dir.path(), &server);

    let (code, deployed) = user.json_with(&["deploy"], &[("AETHER_INSECURE", "1")]);
    assert_eq!(code, 0, "{deployed}\n{}", server.log());
    assert_eq!(deployed["status"], "running", "{deployed}");
    assert!(link.matched("loss-in") + link.matched("loss-out") > 0, "no packet was dropped: the link was not lossy");
    assert_stored_exactly(dir.path(), &deployed);
    server.terminate();
}

#[test]
fn an_upload_reset_midway_is_repeated_and_the_deploy_completes() {
    let Some(link) = Link::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = link.start_server(dir.path());
    let port = port_of(&server);
    // One reset, mid-upload: the first connection past RESET_AFTER_BYTES is reset and its source
    // remembered; from then on that source passes.
    link.iptables(
        &["-A", "INPUT", "-p", "tcp", "--dport", &port, "-m", "recent", "--name", "reset_once", "--rcheck"]
            .into_iter()
            .chain(["-j", "ACCEPT"])
            .collect::<Vec<_>>(),
    );
    link.reset_connections_past(&port, &["-m", "recent", "--name", "reset_once", "--set"]);
    let user = user_with_big_artifact(dir.path(), &server);

    let (code, deployed) = user.json_with(&["deploy"], &[("AETHER_INSECURE", "1")]);
    assert_eq!(code, 0, "{deployed}\n{}", server.log());
    assert_eq!(deployed["status"], "running", "{deployed}");
    assert_eq!(link.matched("reset"), 1, "the upload was not reset exactly once");
    assert_stored_exactly(dir.path(), &deployed);
    server.terminate();
}

#[test]
fn a_link_that_resets_every_upload_fails_with_exit_40_and_registers_nothing() {
    let Some(link) = Link::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = link.start_server(dir.path());
    let port = port_of(&server);
    link.reset_connections_past(&port, &[]);
    let user = user_with_big_artifact(dir.path(), &server);
    let (code, packed) = user.json(&["deploy", "--pack-only"]);
    assert_eq!(code, 0, "{packed}");
    let digest = packed["digest"].as_str().unwrap().to_owned();

    let (code, failed) = user.json_with(&["deploy"], &[("AETHER_INSECURE", "1")]);
    assert_eq!(code, 40, "{failed}\n{}", server.log());
    let message = failed["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("connection reset"), "the message does not name the cause: {failed}");
    // The first attempt and every retry were cut off.
    assert!(link.matched("reset") >= 2, "the upload was not retried");
    let client =
        Client::new(ClientConfig { token: Some(TOKEN.to_owned()), insecure: true, ..ClientConfig::new(&server.url) })
            .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stored = runtime.block_on(client.artifact_exists(&Digest::parse(&digest).unwrap())).unwrap();
    assert!(!stored, "a failed upload registered {digest}");
    assert!(stored_blob(dir.path(), &digest).is_none(), "a failed upload left {digest} in the store");

    // The link heals: the same deploy goes through, nothing in the way.
    link.iptables(&["-F", "INPUT"]);
    let (code, deployed) = user.json_with(&["deploy"], &[("AETHER_INSECURE", "1")]);
    assert_eq!(code, 0, "{deployed}\n{}", server.log());
    assert_eq!(deployed["digest"], packed["digest"], "{deployed}");
    assert_stored_exactly(dir.path(), &deployed);
    server.terminate();
}

/// A user whose artifact holds 2 MiB of incompressible bytes, so that its upload is long enough
/// to be cut midway, logged in to `server` over plain HTTP to a non-loopback address.
fn user_with_big_artifact(dir: &Path, server: &ServerProcess) -> User {
    let user = User::new(dir);
    let noise: Vec<u8> = (0u32..512 * 1024).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    std::fs::write(user.project.join("noise.bin"), noise).unwrap();
    let (code, login) = user.json_with(&["login", "--token", TOKEN, "--api", &server.url], &[("AETHER_INSECURE", "1")]);
    assert_eq!(code, 0, "{login}");
    user
}

/// The deployed artifact is in the server's store, and its bytes hash to the digest the CLI
/// computed: no retry corrupted it.
fn assert_stored_exactly(dir: &Path, deployed: &Value) {
    let digest = deployed["digest"].as_str().unwrap();
    let blob = stored_blob(dir, digest).unwrap_or_else(|| panic!("{digest} is not in the store"));
    let bytes = std::fs::read(&blob).unwrap();
    assert_eq!(sha256_hex(&bytes), digest.trim_start_matches("sha256:"), "{} holds other bytes", blob.display());
    assert_eq!(deployed["size_bytes"].as_u64(), Some(bytes.len() as u64), "{deployed}");
}

/// The published blob `<hex>.tar.gz` under the server's data directory, if any.
fn stored_blob(dir: &Path, digest: &str) -> Option<PathBuf> {
    let name = format!("{}.tar.gz", digest.trim_start_matches("sha256:"));
    let mut pending = vec![dir.join("data")];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).ok()?.map_while(Result::ok) {
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if entry.file_name().to_str() == Some(name.as_str()) {
                return Some(entry.path());
            }
        }
    }
    None
}

fn port_of(server: &ServerProcess) -> String {
    server.url.rsplit(':').next().unwrap().to_owned()
}

/// A network namespace for the server, joined to this one by a veth pair: `10.128.0.0/9` split
/// into one /30 per test process (pids are unique while the tests run), so concurrent tests
/// never share addresses. Removed when dropped.
struct Link {
    namespace: String,
    host_side: String,
    server_address: String,
}

impl Link {
    /// The link, or `None` (after saying why) where namespaces cannot be made and the tests
    /// are not required to run.
    fn create() -> Option<Self> {
        let pid = std::process::id();
        let base = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0)) + ((pid % (1 << 21)) << 2);
        let (host, server) = (std::net::Ipv4Addr::from(base + 1), std::net::Ipv4Addr::from(base + 2));
        let link = Self {
            namespace: format!("aether-faults-{pid}"),
            host_side: format!("aeth{pid}h"),
            server_address: server.to_string(),
        };
        let steps: [&[&str]; 7] = [
            &["netns", "add", &link.namespace],
            &["link", "add", &link.host_side, "type", "veth", "peer", "name", "server", "netns", &link.namespace],
            &["addr", "add", &format!("{host}/30"), "dev", &link.host_side],
            &["link", "set", &link.host_side, "up"],
            &["-n", &link.namespace, "addr", "add", &format!("{server}/30"), "dev", "server"],
            &["-n", &link.namespace, "link", "set", "server", "up"],
            &["-n", &link.namespace, "link", "set", "lo", "up"],
        ];
        let failure = steps.iter().find_map(|step| {
            let failure = match Command::new("ip").args(*step).output() {
                Ok(output) if output.status.success() => return None,
                Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                Err(error) => error.to_string(),
            };
            Some(format!("`ip {}` failed: {}", step.join(" "), failure.trim()))
        });
        if let Some(reason) = failure {
            drop(link);
            assert!(std::env::var_os("AETHER_REQUIRE_NETNS").is_none(), "network namespaces are required: {reason}");
            eprintln!("skipped: these tests need network namespaces (root, iproute2, iptables): {reason}");
            return None;
        }
        Some(link)
    }

    /// `aether-server` inside the namespace, listening on its side of the link.
    fn start_server(&self, dir: &Path) -> ServerProcess {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace]).arg(server_bin());
        let vars = [
            ("HOME", dir.display().to_string()),
            ("AETHER_DATA_DIR", dir.join("data").display().to_string()),
            ("AETHER_API_TOKENS", format!("{TOKEN}:admin")),
            ("AETHER_LISTEN", format!("{}:0", self.server_address)),
            ("AETHER_HEALTH_TIMEOUT_MS", "20000".to_owned()),
            // A reset only reaches the client: the server's side of that connection waits for
            // the rest of the body until this ends it.
            ("AETHER_BODY_IDLE_TIMEOUT_SECS", "3".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value));
        ServerProcess::start_command(command, &vars)
    }

    /// Both directions limited to `rate` by a token bucket.
    fn limit_rate(&self, rate: &str) {
        let tbf = ["root", "tbf", "rate", rate, "burst", "32kb", "latency", "400ms"];
        run("tc", &[&["qdisc", "add", "dev", &self.host_side][..], &tbf].concat());
        run("ip", &[&["netns", "exec", &self.namespace, "tc", "qdisc", "add", "dev", "server"][..], &tbf].concat());
    }

    /// Resets (TCP RST) every connection to `port` once it has carried [`RESET_AFTER_BYTES`],
    /// with `extra` matches added to the rule, which is counted as `reset`.
    fn reset_connections_past(&self, port: &str, extra: &[&str]) {
        let past = format!("{RESET_AFTER_BYTES}:");
        let mut rule = vec!["-A", "INPUT", "-p", "tcp", "--dport", port, "-m", "connbytes", "--connbytes", &past];
        rule.extend(["--connbytes-dir", "original", "--connbytes-mode", "bytes"]);
        rule.extend(extra);
        rule.extend(["-m", "comment", "--comment", "reset", "-j", "REJECT", "--reject-with", "tcp-reset"]);
        self.iptables(&rule);
    }

    /// Drops 2% of the packets through `chain` whose `port_match` (`--dport`/`--sport`) is
    /// `port`, in a rule counted as `comment`.
    fn drop_at_random(&self, chain: &str, port_match: &str, port: &str, comment: &str) {
        let mut rule = vec!["-A", chain, "-p", "tcp", port_match, port, "-m", "statistic", "--mode", "random"];
        rule.extend(["--probability", "0.02", "-m", "comment", "--comment", comment, "-j", "DROP"]);
        self.iptables(&rule);
    }

    fn iptables(&self, rule: &[&str]) {
        run("ip", &[&["netns", "exec", &self.namespace, "iptables"][..], rule].concat());
    }

    /// How many packets the rule with this comment matched.
    fn matched(&self, comment: &str) -> u64 {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.namespace, "iptables", "-L", "-v", "-x", "-n"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&output.stdout);
        let marker = format!("/* {comment} */");
        let line = listing
            .lines()
            .find(|line| line.contains(&marker))
            .unwrap_or_else(|| panic!("no rule {comment}:\n{listing}"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host's end.
        let _ = Command::new("ip").args(["netns", "delete", &self.namespace]).output();
        let _ = Command::new("ip").args(["link", "delete", &self.host_side]).output();
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}
