//! `nba config check FILE`: a deployment validated, printed with where each
//! setting came from, or every problem with its file, line and fix.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use nba_deployment::Deployment;

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validates a deployment file: prints every resolved setting with its
    /// source (file or default) and what they imply (the model's dimension,
    /// bytes per customer) and exits 0; or prints every problem found, each
    /// with its file, line, setting and how to fix it, and exits 2.
    Check(CheckArgs),
    /// Prints a compiled-in example deployment (retail, bank), to start from.
    Example {
        /// Its name.
        #[arg(default_value = "retail")]
        name: String,
    },
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The deployment file (TOML).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub(crate) fn run(a: &ConfigArgs) -> ExitCode {
    match &a.command {
        ConfigCommand::Check(c) => match Deployment::load(&c.file, &[]) {
            Ok(d) => print(
                &format!("{}# OK: {} checks\n", d.report(), c.file.display()),
                ExitCode::SUCCESS,
            ),
            Err(problems) => print(
                &format!(
                    "{problems}\n{} problem{} in {}\n",
                    problems.0.len(),
                    if problems.0.len() == 1 { "" } else { "s" },
                    c.file.display()
                ),
                ExitCode::from(2),
            ),
        },
        ConfigCommand::Example { name } => {
            match nba_deployment::EXAMPLES.iter().find(|(n, _)| n == name) {
                Some((_, text)) => print(text, ExitCode::SUCCESS),
                None => {
                    eprintln!(
                        "error: there is no example {name:?}; the examples are {}",
                        nba_deployment::EXAMPLES.map(|(n, _)| n).join(", ")
                    );
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Prints `text`, then exits with `code` (or a failure if stdout is broken).
fn print(text: &str, code: ExitCode) -> ExitCode {
    match nba_kafka::print_stdout(text) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("error: cannot print: {e}");
            ExitCode::FAILURE
        }
    }
}
