//! `nba config check FILE`: a deployment validated, printed with where each
//! setting came from, or every problem with its file, line and fix; `nba
//! config arm FILE CUSTOMER...`: which experiment arm decides for whom.

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
    /// Prints the arm of the deployment's [experiment] that decides for each
    /// customer (the same on every instance, after every restart and in a
    /// backtest): to check a customer's treatment before or during an
    /// experiment. One line per customer, `ID<TAB>ARM`; with a baseline,
    /// `ID<TAB>ARM WHILE ON TRIAL<TAB>ARM ONCE THE BANDIT HAS TAKEN OVER`.
    Arm(ArmArgs),
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

#[derive(Debug, Args)]
struct ArmArgs {
    /// The deployment file (TOML), with an [experiment] section.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Customer ids, as on their records.
    #[arg(value_name = "CUSTOMER_ID", required = true)]
    customers: Vec<String>,
}

pub(crate) fn run(a: &ConfigArgs) -> ExitCode {
    match &a.command {
        ConfigCommand::Arm(c) => {
            let deployment = match Deployment::load(&c.file, &[]) {
                Ok(d) => d,
                Err(problems) => {
                    eprintln!(
                        "{problems}\nerror: {} does not check: nba config check {} explains",
                        c.file.display(),
                        c.file.display()
                    );
                    return ExitCode::from(2);
                }
            };
            if deployment.settings.experiment.is_none() {
                eprintln!(
                    "error: {} declares no [experiment]: every customer is decided for by [policy]",
                    c.file.display()
                );
                return ExitCode::from(2);
            }
            let updater = match nba_core::ModelUpdater::new(deployment.settings.updater(None)) {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let experiment = deployment.settings.experiment.as_ref();
            let guardrail = experiment.and_then(|e| Some((e, e.guardrail.as_ref()?)));
            let lines: String = c
                .customers
                .iter()
                .map(|id| match guardrail {
                    // The arm depends on whether the bandit has taken over.
                    Some((e, g)) => {
                        let at = nba_core::experiment_position(&e.name, id);
                        let arm = |taken_over| {
                            if at < g.bandit_share(taken_over) {
                                e.champion.as_str()
                            } else {
                                g.baseline_arm.as_str()
                            }
                        };
                        format!("{id}\t{}\t{}\n", arm(false), arm(true))
                    }
                    None => format!("{id}\t{}\n", updater.arm_name_of(id)),
                })
                .collect();
            print(&lines, ExitCode::SUCCESS)
        }
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
