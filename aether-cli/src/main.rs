//! The `aether` binary: clap adapter over aether-sdk.

mod args;
mod commands;
mod duration;
mod exit;
mod logging;
mod render;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command, OutputFormat};
use crate::exit::{CliError, Exit};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(error) => return clap_failure(&argv, error),
    };
    logging::init(cli.log_level, cli.log_format);
    let format = match &cli.command {
        Command::Completions(_) => OutputFormat::Text,
        _ => cli.format,
    };
    let insecure = cli.insecure;
    let result = match cli.command {
        Command::Deploy(args) => commands::deploy::run(args, insecure, format),
        Command::Login(args) => commands::login::login(args, insecure, format),
        Command::Logout => commands::login::logout(format),
        Command::List => commands::list::run(insecure, format),
        Command::Logs(args) => commands::logs::run(&args, insecure, format),
        Command::Status(args) => commands::status::run(&args, insecure, format),
        Command::Rollback(args) => commands::rollback::run(&args, insecure, format),
        Command::Completions(args) => commands::completions::run(&args),
    };
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(error) => {
            render::error(format, &error);
            error.exit.into()
        }
    }
}

/// `--help` and `--version` succeed; every other parse failure is a usage error (exit 2),
/// reported as JSON when the command line asked for JSON.
fn clap_failure(argv: &[std::ffi::OsString], error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = error.print();
        return Exit::Ok.into();
    }
    let wants_json =
        argv.windows(2).any(|w| w[0] == "--format" && w[1] == "json") || argv.iter().any(|a| a == "--format=json");
    if wants_json {
        let rendered = error.render().to_string();
        let message = rendered.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
        render::error(OutputFormat::Json, &CliError::usage(message));
    } else {
        let _ = error.print();
    }
    Exit::Usage.into()
}
