//! Commands that describe Nestor itself rather than act on a store:
//! `nestor schema KIND` (the JSON Schema of a file format), `nestor
//! completions SHELL` and `nestor man` — each generated from the types and
//! the clap tree, so none can disagree with the binary that prints it.

use std::process::ExitCode;

use clap::{Args, CommandFactory};

use crate::schema::SchemaKind;

/// `nestor schema KIND`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file format.
    #[arg(value_enum)]
    kind: SchemaKind,
}

/// `nestor completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the JSON Schema of a file format.
pub fn print_schema(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    print!("{}", args.kind.published());
    Ok(ExitCode::SUCCESS)
}

/// Prints a completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "nestor", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page `nestor(1)` in roff.
pub fn man() -> anyhow::Result<ExitCode> {
    let page = clap_mangen::Man::new(super::Cli::command());
    page.render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
