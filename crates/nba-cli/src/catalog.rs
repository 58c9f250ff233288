//! `nba catalog publish` and `nba catalog show`: catalog versions on the
//! compacted catalog topic, in force at their event time in every
//! feature-aggregator and model-updater.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use nba_core::CatalogVersion;
use nba_deployment::{format_event_time, parse_event_time};
use nba_kafka::{
    CliSources, DeploymentArgs, KafkaArgs, LogFormat, init_logging, publish_catalog, read_catalog,
    run_main,
};

#[derive(Debug, Args)]
pub(crate) struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Publishes the catalog of a deployment file (its [[action]]s, checked
    /// against its declarations) as a new version, keyed by the deployment's
    /// name. Every running feature-aggregator and model-updater takes it at its
    /// event time: new actions become candidates from their valid_from,
    /// retired ones are never chosen again. Publish ahead of the event time it
    /// takes effect at; a version that does not validate in a stage is
    /// refused there (counted, logged, dead-lettered) and the previous one
    /// stays.
    Publish(PublishArgs),
    /// Prints the catalog versions on the catalog topic (the newest per
    /// deployment is the live one).
    Show(ShowArgs),
}

#[derive(Debug, Args)]
struct PublishArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The version's number [default: one more than the newest published for
    /// this deployment].
    #[arg(long)]
    version: Option<i64>,
    /// Event time it takes effect at: an RFC 3339 time (2026-03-01T09:00:00Z)
    /// or milliseconds since the epoch [default: now].
    #[arg(long, value_parser = parse_event_time)]
    effective_from: Option<i64>,
}

#[derive(Debug, Args)]
struct ShowArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Print every version as one JSON object per line instead.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: CatalogArgs, sources: &CliSources) -> ExitCode {
    match a.command {
        CatalogCommand::Publish(p) => {
            let deployment = match crate::deployment(&p.deployment, sources, &[]) {
                Ok(d) => d,
                Err(code) => return code,
            };
            init_logging(LogFormat::Human);
            run_main(async move {
                let name = deployment.settings.name.clone();
                let version = match p.version {
                    Some(v) => v,
                    None => {
                        let kafka = p.kafka.clone();
                        let (published, _) =
                            tokio::task::spawn_blocking(move || read_catalog(&kafka)).await??;
                        published
                            .iter()
                            .filter(|v| v.deployment == name)
                            .map(|v| v.version)
                            .max()
                            .unwrap_or(0)
                            + 1
                    }
                };
                let effective_from = p.effective_from.unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                });
                let v = deployment.settings.catalog_version(version, effective_from);
                publish_catalog(&p.kafka, &v).await?;
                println!(
                    "published catalog version {version} of {} ({} actions), in force from {}",
                    v.deployment,
                    v.actions.len(),
                    format_event_time(effective_from)
                );
                Ok(())
            })
        }
        CatalogCommand::Show(s) => {
            let (versions, bad) = match read_catalog(&s.kafka) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            for b in &bad {
                eprintln!("warning: not a catalog version: {b}");
            }
            let mut out = std::io::stdout().lock();
            let printed = (|| -> std::io::Result<()> {
                if versions.is_empty() {
                    writeln!(
                        out,
                        "no catalog version is published on {}: the stages run their deployment's own catalog",
                        s.kafka.topics.topic_catalog
                    )?;
                }
                for v in &versions {
                    if s.json {
                        writeln!(out, "{}", serde_json::to_string(v)?)?;
                    } else {
                        print_version(&mut out, v)?;
                    }
                }
                Ok(())
            })();
            match printed {
                // A reader that stopped early (`| head`) is no failure.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot print the catalog: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
    }
}

fn print_version(out: &mut impl Write, v: &CatalogVersion) -> std::io::Result<()> {
    writeln!(
        out,
        "{} version {}, in force from {} ({} actions):",
        v.deployment,
        v.version,
        format_event_time(v.effective_from),
        v.actions.len()
    )?;
    for a in &v.actions {
        let channels: Vec<&str> = a.treatments.iter().map(|t| t.channel.as_str()).collect();
        let validity = match (a.valid_from, a.valid_until) {
            (None, None) => String::new(),
            (f, u) => format!(
                ", valid {} to {}",
                f.map_or("always".into(), format_event_time),
                u.map_or("open".into(), format_event_time)
            ),
        };
        writeln!(
            out,
            "  {:<24} {:<8} {:<24} value {:<8} on {}{validity}",
            a.id,
            a.kind,
            a.group,
            a.value,
            channels.join(",")
        )?;
    }
    Ok(())
}
