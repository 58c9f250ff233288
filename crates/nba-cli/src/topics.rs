//! `nba topics create` and `nba topics check`: nba's topics on any Kafka,
//! through the admin API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use nba_kafka::{KafkaArgs, LogFormat, TopicReport, ensure_topics, init_logging, run_main};

#[derive(Debug, Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Creates every nba topic that does not exist (the customer-keyed ones
    /// with --partitions; the changelog as many and compacted; the catalog
    /// and the model deltas with one partition, the catalog compacted, the
    /// model deltas kept for ever), then checks them all as `check` does.
    Create(CreateArgs),
    /// Checks every nba topic: it exists, the changelog has at least as many
    /// partitions as the interactions and is compacted, the catalog is
    /// compacted, the model deltas are kept. Exit code 0 if all is as nba
    /// needs, 1 with each problem and its fix otherwise.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Partitions of the customer-keyed topics (how many members each stage's
    /// group can spread over).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Replicas of each partition (3 on a production cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: i32,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
}

pub(crate) fn run(a: TopicsArgs) -> ExitCode {
    init_logging(LogFormat::Human);
    let (kafka, partitions, replication, create) = match a.command {
        TopicsCommand::Create(c) => (c.kafka, c.partitions, c.replication_factor, true),
        TopicsCommand::Check(c) => (c.kafka, 1, 1, false),
    };
    let mut failed = false;
    let code = run_main(async {
        let reports = ensure_topics(&kafka, partitions, replication, create).await?;
        failed = print(&reports);
        Ok(())
    });
    if code == ExitCode::SUCCESS && failed {
        ExitCode::FAILURE
    } else {
        code
    }
}

/// Prints one line per topic and every problem; true if there was one.
fn print(reports: &[TopicReport]) -> bool {
    let mut problems = 0;
    for r in reports {
        let partitions = r.partitions.map_or_else(String::new, |p| {
            format!(", {p} partition{}", if p == 1 { "" } else { "s" })
        });
        println!("{}: {}{partitions}", r.name, r.state);
        for p in &r.problems {
            println!("  PROBLEM: {p}");
            problems += 1;
        }
    }
    if problems == 0 {
        println!("OK: every topic is as nba needs it");
    }
    problems > 0
}
