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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install production dependencies, pack, describe and sign a Node project.
    Deploy(DeployArgs),
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
    #[arg(long)]
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
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
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
