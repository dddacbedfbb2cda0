//! The `aether-server` command line (part of the binary, not of the library).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aether_server::fetcher::{self, DownloadUrl, FetchError, FetchRequest, RetryPolicy};
use clap::{Args, Parser, Subcommand};

/// Where Kubernetes looks for the message of a terminated container.
const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

#[derive(Debug, Parser)]
#[command(
    name = "aether-server",
    version,
    about = "The Aether control plane. Without a command it serves the HTTP API.",
    after_help = "Configuration comes from AETHER_* variables and DATABASE_URL; see the README."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations and exit.
    Migrate,
    /// Download, verify and unpack one artifact (the init container of Kubernetes pods).
    #[command(after_help = FETCH_AFTER_HELP)]
    Fetch(FetchArgs),
    /// Print the Kubernetes objects of a release as YAML, without a cluster.
    #[command(name = "render-k8s", after_help = RENDER_AFTER_HELP)]
    RenderK8s(RenderArgs),
}

const RENDER_AFTER_HELP: &str = "\
Prints the Secret, Deployment and Service the Kubernetes runtime applies for a release of the
artifact, shaped by the same AETHER_* settings the server reads (AETHER_DEFAULT_NAMESPACE,
AETHER_K8S_*, AETHER_FETCHER_IMAGE, AETHER_NODE_IMAGE, AETHER_ROLLOUT_TIMEOUT_SECS), for review
and GitOps. The deployment id is derived from the app and the digest, so the output is
reproducible; the artifact URL defaults to a placeholder (the server presigns one per rollout).
The Secret holds the --env values in clear, as it would be applied.";

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The app's name.
    #[arg(long, value_name = "NAME")]
    app: String,
    /// SHA-256 of the artifact (64 hex characters, `sha256:` prefix allowed).
    #[arg(long, value_name = "SHA256")]
    digest: String,
    /// The URL the fetcher downloads the artifact from.
    #[arg(long, value_name = "URL")]
    artifact_url: Option<String>,
    /// A variable of the release's environment; repeat for more.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
}

/// Needs no database, cluster or async runtime: only the arguments and the `AETHER_*` settings.
pub fn render_k8s(args: RenderArgs) -> ExitCode {
    use aether_server::config::{ServerConfig, kubernetes_settings};
    use aether_server::render::{RenderError, RenderRequest, render};
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let rendered = RenderRequest::parse(&args.app, &args.digest, args.artifact_url, &args.env).and_then(|request| {
        let timeout = ServerConfig::from_env(env)?.rollout_timeout;
        let settings = kubernetes_settings(&env, timeout)?;
        render(&request, &settings)
    });
    match rendered {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error @ RenderError::Usage(_)) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

const FETCH_AFTER_HELP: &str = "\
The download is retried on connection errors, timeouts, 5xx, 408, 429 and bodies cut short;
any other 4xx fails at once. The SHA-256 is computed while the file is written, the signature
is checked over the digest, and the archive is unpacked with the same rules as everywhere else
(no absolute paths, no `..`, no links leaving the tree, no devices, bounded size and entries).
DIR holds the release afterwards, or nothing new on failure. URLs appear in messages as their
origin only.

Exit codes: 0 unpacked, 1 local error (destination, disk), 2 invalid arguments, 3 download
failed, 4 digest or signature rejected, 5 archive refused. On failure the one-line reason also
goes to /dev/termination-log when that file exists.";

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Presigned GET URL of the artifact.
    #[arg(long, value_name = "URL")]
    url: String,
    /// SHA-256 of the .tar.gz (64 hex characters) the downloaded bytes must hash to.
    #[arg(long, value_name = "DIGEST")]
    sha256: String,
    /// Directory to unpack into: created when missing (its parent must exist), and otherwise
    /// required to be empty unless --replace is given.
    #[arg(long, value_name = "DIR")]
    dest: PathBuf,
    /// Ed25519 signature over the digest (128 hex characters); needs --public-key.
    #[arg(long, value_name = "HEX")]
    signature: Option<String>,
    /// Ed25519 public key (64 hex characters) the signature may verify against; repeat it for
    /// each of the app's active keys. Keys without --signature are refused: they mean a signed
    /// artifact was expected.
    #[arg(long = "public-key", value_name = "HEX")]
    public_keys: Vec<String>,
    /// Remove what DIR already holds first (a restarted pod's previous release).
    #[arg(long)]
    replace: bool,
    /// Attempts in all before giving up on transient errors.
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::default().attempts,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Seconds an attempt may wait for a connection or for the next bytes.
    #[arg(long, value_name = "SECONDS", default_value_t = RetryPolicy::default().stall_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Where to write the reason of a failure, instead of /dev/termination-log.
    #[arg(long, value_name = "PATH", env = "AETHER_TERMINATION_LOG", hide = true)]
    termination_log: Option<PathBuf>,
}

/// `aether-server fetch`: prints a summary on success; on failure prints the reason and
/// writes it to the termination log.
pub fn fetch(args: FetchArgs) -> ExitCode {
    let termination_log = args.termination_log.clone();
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FetchError::Local { context: "cannot start the async runtime".into(), source })
        .and_then(|runtime| {
            let request = request(args)?;
            let summary = runtime.block_on(fetcher::fetch(&request))?;
            Ok((request, summary))
        });
    match outcome {
        Ok((request, summary)) => {
            println!(
                "unpacked {} ({} bytes): {} files, {} bytes into {}",
                summary.sha256,
                summary.size_bytes,
                summary.unpacked.files,
                summary.unpacked.total_bytes,
                request.dest.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            let code = error.exit_code();
            let reason = one_line(&format!("{:#}", anyhow::Error::from(error)));
            eprintln!("error: {reason}");
            write_termination_log(termination_log.as_deref(), &reason);
            ExitCode::from(code)
        }
    }
}

fn request(args: FetchArgs) -> Result<FetchRequest, FetchError> {
    let defaults = RetryPolicy::default();
    Ok(FetchRequest {
        url: DownloadUrl::parse(&args.url)?,
        sha256: args.sha256,
        dest: args.dest,
        signature: args.signature,
        public_keys: args.public_keys,
        replace: args.replace,
        retry: RetryPolicy { attempts: args.attempts, stall_timeout: Duration::from_secs(args.timeout), ..defaults },
    })
}

/// A command line `fetch` could not even parse still owes the pod its reason. The path comes
/// from the environment then, since the flags did not parse.
pub fn fetch_usage_error(error: &clap::Error) {
    let text = error.render().to_string();
    let summary: Vec<&str> = text
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let reason = summary.join(" ");
    let explicit = std::env::var_os("AETHER_TERMINATION_LOG").map(PathBuf::from);
    write_termination_log(explicit.as_deref(), reason.strip_prefix("error: ").unwrap_or(&reason));
}

/// Kubernetes shows a terminated container's message in `kubectl describe pod`. The default
/// path is written only when it exists (it does in a container), an explicit one always.
fn write_termination_log(explicit: Option<&Path>, reason: &str) {
    let (path, create) = match explicit {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_TERMINATION_LOG), false),
    };
    if !create && !path.exists() {
        return;
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(create)
        .open(path)
        .and_then(|mut file| writeln!(file, "{reason}"));
    if let Err(error) = written {
        eprintln!("warning: cannot write {}: {error}", path.display());
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
