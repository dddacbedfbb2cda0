//! Every flag the `aether` binary accepts, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "aether", version, about = "Deploy Node.js services as signed, content-addressed artifacts")]
pub struct Cli {
    /// How much to log on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Log line format; `auto` is coloured text on a terminal, plain text otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Output format on stdout: text for people, one JSON object for programs.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Allow sending the token over plain HTTP to a host that is not loopback
    /// (also `AETHER_INSECURE=1`). Certificates are still verified.
    #[arg(long, global = true)]
    pub insecure: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Node project (install, pack, describe, sign), upload it and roll it out.
    Deploy(DeployArgs),
    /// Check a token against the control plane and remember both.
    Login(LoginArgs),
    /// Forget the stored token.
    Logout,
    /// Apps with their current deployment.
    List,
    /// An app's log lines.
    Logs(LogsArgs),
    /// An app's current and latest deployments.
    Status(AppArgs),
    /// Roll an app back to its previous release, or to a given deployment.
    Rollback(RollbackArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The project directory (holding package.json).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Stop after packing, describing and signing; upload nothing.
    #[arg(long)]
    pub pack_only: bool,
    /// Report what would be packed, and its digest, without writing the artifact.
    #[arg(long, conflicts_with = "pack_only")]
    pub dry_run: bool,
    /// Pack the tree as it is instead of installing production dependencies.
    #[arg(long)]
    pub no_install: bool,
    /// Where the artifact and its sidecar files go [default: PATH/.aether].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write no SBOM.
    #[arg(long, conflicts_with = "legacy_sbom")]
    pub no_sbom: bool,
    /// Write the SBOM in the old `aether-sbom-v1` format instead of CycloneDX 1.5.
    #[arg(long)]
    pub legacy_sbom: bool,
    /// The app to deploy to [default: package.json name, as a DNS label]; created if missing.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Roll out again even when this exact artifact is already running.
    #[arg(long)]
    pub force: bool,
    /// An environment variable for the release, `KEY=VALUE`; repeat for more. Each deploy
    /// states its whole environment.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok((key.to_owned(), value.to_owned()))
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Return once the deployment is created instead of following it.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to follow the rollout, e.g. `90s`, `5m`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::duration::parse)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The token; prompted for on a terminal, read from stdin otherwise.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Control-plane URL [default: AETHER_API_BASE, config.toml api_base, http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    #[arg(long, value_name = "NAME")]
    pub app: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(long, value_name = "NAME")]
    pub app: String,
    /// Keep printing new lines as the app writes them.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines from this long ago onwards, e.g. `10m`, `2h`.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub since: Option<std::time::Duration>,
    /// How many of the most recent lines to print (at most 10000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    pub tail: u16,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(long, value_name = "NAME")]
    pub app: String,
    /// The deployment to bring back [default: the release before the current one].
    #[arg(long, value_name = "DEPLOYMENT_ID")]
    pub to: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(long, value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}
