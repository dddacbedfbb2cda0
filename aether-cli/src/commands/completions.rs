//! `aether completions --shell bash|zsh|fish|...`

use clap::CommandFactory as _;

use crate::args::{Cli, CompletionsArgs};
use crate::exit::CliError;

pub fn run(args: &CompletionsArgs) -> Result<(), CliError> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "aether", &mut std::io::stdout());
    Ok(())
}
