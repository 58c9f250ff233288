//! The plumbing baseline: what the broker and librdkafka allow nba's topology
//! without nba in it. `relay hop` copies one topic's records to another
//! unchanged (same key, value and timestamp; no decoding), as one consumer
//! group member with one producer, as each nba stage is; three hops in a row
//! are nba's three stages. `relay watch` reports when a topic stopped
//! growing, to time how long a backlog takes to drain through either.
//!
//! It is an upper bound, not a twin: it stores offsets as it reads (librdkafka's
//! default) instead of after each output's acknowledgement, and keeps no state.
//! `scripts/relay-baseline.sh` runs both on the same backlog and broker.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(about = "A no-op relay of nba's topology: the plumbing baseline")]
struct Cli {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// librdkafka settings for every client, KEY=VALUE (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    settings: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copies every record of --from to --to (or the share --keep of them)
    /// until stopped.
    Hop {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Consumer group.
        #[arg(long)]
        group: String,
        /// Share of the records to copy, in thousandths (by offset): an nba
        /// stage writes fewer records than it reads (one request per trigger).
        #[arg(long, default_value_t = 1000)]
        keep_permille: i64,
    },
    /// Reads --topic from the beginning until it has read at least
    /// --at-least records and none came for --quiet-secs, then prints the
    /// count and when the first and the last came (seconds from its start).
    Watch {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        at_least: i64,
        #[arg(long, default_value_t = 5)]
        quiet_secs: u64,
        /// Fail if --at-least records have not come within this long.
        #[arg(long, default_value_t = 300)]
        give_up_secs: u64,
    },
}

fn config(cli: &Cli) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cli.brokers);
    for kv in &cli.settings {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("-X {kv}: write KEY=VALUE"))?;
        c.set(k, v);
    }
    Ok(c)
}

fn hop(cli: &Cli, from: &str, to: &str, group: &str, keep: i64) -> anyhow::Result<()> {
    let mut c = config(cli)?;
    let consumer: BaseConsumer = c
        .clone()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()?;
    c.set("acks", "all").set("linger.ms", "5");
    let producer: BaseProducer = c.create()?;
    consumer.subscribe(&[from])?;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if m.offset().rem_euclid(1000) >= keep {
                    continue;
                }
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(to);
                if let Some(k) = m.key() {
                    record = record.key(k);
                }
                if let Some(p) = m.payload() {
                    record = record.payload(p);
                }
                if let Some(t) = m.timestamp().to_millis() {
                    record = record.timestamp(t);
                }
                while let Err((e, r)) = producer.send(record) {
                    match e {
                        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                            producer.poll(Duration::from_millis(10));
                            record = r;
                        }
                        other => return Err(other.into()),
                    }
                }
                producer.poll(Duration::ZERO);
            }
            Some(Err(e)) => eprintln!("relay {from} -> {to}: {e}"),
            None => {
                producer.poll(Duration::ZERO);
            }
        }
    }
}

fn watch(
    cli: &Cli,
    topic: &str,
    at_least: i64,
    quiet: Duration,
    give_up: Duration,
) -> anyhow::Result<()> {
    // Read, not the watermarks: some Kafka-compatible brokers (tansu 0.6.0)
    // report a high watermark below the last acknowledged record.
    let consumer: BaseConsumer = config(cli)?
        .set("group.id", "relay-watch")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let (mut count, mut first, mut last) = (0i64, None, started);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                (count, last) = (count + 1, Instant::now());
                first.get_or_insert(last);
            }
            Some(Err(e)) => eprintln!("watching {topic}: {e}"),
            None if count >= at_least && last.elapsed() >= quiet => {
                let at = |t: Instant| (t - started).as_secs_f64();
                println!(
                    "{topic}: {count} records, the first {:.2} s and the last {:.2} s after the start",
                    first.map_or(0.0, at),
                    at(last)
                );
                return Ok(());
            }
            None if count < at_least && started.elapsed() > give_up => {
                anyhow::bail!("{topic}: {count} records after {give_up:?}, fewer than {at_least}")
            }
            None => {}
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Hop {
            from,
            to,
            group,
            keep_permille,
        } => hop(&cli, from, to, group, *keep_permille),
        Command::Watch {
            topic,
            at_least,
            quiet_secs,
            give_up_secs,
        } => watch(
            &cli,
            topic,
            *at_least,
            Duration::from_secs(*quiet_secs),
            Duration::from_secs(*give_up_secs),
        ),
    }
}
