//! The plumbing baseline: what the broker and librdkafka allow nba's topology
//! without nba in it. `relay hop` copies one topic's records to another
//! unchanged (same key, value and timestamp; no decoding), as one consumer
//! group member with one producer, as each nba stage is; three hops in a row
//! are nba's three stages. `relay watch` reports when a topic stopped
//! growing, to time how long a backlog takes to drain through either.
//! `relay latency` sends records open-loop at a set rate and times each
//! from its due time to when it is read back, directly or after the hops:
//! the latency floor of the plumbing alone (`scripts/relay-latency.sh`).
//!
//! It is an upper bound, not a twin: it stores offsets as it reads (librdkafka's
//! default) instead of after each output's acknowledgement, and keeps no state.
//! `scripts/relay-baseline.sh` runs both on the same backlog and broker.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
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
    /// Sends --rate records a second to --to for --secs, open-loop (record k
    /// is due at start + k/rate and sent then, whatever the reads do; its due
    /// time is its value), reads --from (the same topic, or the last of a
    /// chain of hops) from its end, and prints the latency from each
    /// record's due time to its read: coordinated omission corrected, as
    /// `nba load` times next-best-actions. Producer: acks=all, linger.ms=5
    /// unless -X says otherwise.
    Latency {
        #[arg(long)]
        to: String,
        #[arg(long)]
        from: String,
        #[arg(long, default_value_t = 250)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
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

/// A producer as nba's: acks=all, linger.ms=5, unless -X says otherwise.
fn producer_config(cli: &Cli) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("acks", "all").set("linger.ms", "5");
    for (k, v) in config(cli)?.config_map() {
        c.set(k.to_string(), v.to_string());
    }
    Ok(c)
}

/// Sends `record`, waiting while librdkafka's queue is full, then serves
/// the delivery callbacks due.
fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, P>,
) -> anyhow::Result<()> {
    while let Err((e, r)) = producer.send(record) {
        match e {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(1));
                record = r;
            }
            other => return Err(other.into()),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

fn hop(cli: &Cli, from: &str, to: &str, group: &str, keep: i64) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config(cli)?
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()?;
    let producer: BaseProducer = producer_config(cli)?.create()?;
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
                send(&producer, record)?;
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

/// Microseconds since the Unix epoch: due and read times, compared across
/// the process's threads (and any relay hops on this machine).
fn wall_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn latency(cli: &Cli, to: &str, from: &str, rate: u64, secs: u64) -> anyhow::Result<()> {
    anyhow::ensure!(rate > 0 && secs > 0, "--rate and --secs must be above 0");
    let total = rate * secs;
    // Assigned at the end of every partition of --from before the first send.
    let consumer: BaseConsumer = config(cli)?
        .set("group.id", "relay-latency")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(from), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(from, p.id(), Duration::from_secs(10))?;
            tpl.add_partition_offset(from, p.id(), Offset::Offset(high))?;
        }
    }
    anyhow::ensure!(tpl.count() > 0, "topic {from} has no partitions: create it");
    consumer.assign(&tpl)?;
    let reader = std::thread::spawn(move || -> anyhow::Result<(Histogram<u64>, u64)> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
        let deadline = Instant::now() + Duration::from_secs(secs + 15);
        while h.len() < total && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let read = wall_micros(SystemTime::now());
                    let due = m
                        .payload()
                        .and_then(|p| <[u8; 8]>::try_from(p).ok())
                        .map(u64::from_be_bytes);
                    if let Some(due) = due {
                        h.saturating_record(read.saturating_sub(due).max(1));
                    }
                }
                Some(Err(e)) => eprintln!("reading the records back: {e}"),
                None => {}
            }
        }
        let read = h.len();
        Ok((h, read))
    });
    let producer: BaseProducer = producer_config(cli)?.create()?;
    // Let the reader's assignment take effect before the first record is due.
    std::thread::sleep(Duration::from_secs(2));
    let (start, start_wall) = (Instant::now(), SystemTime::now());
    for k in 0..total {
        let offset = Duration::from_nanos(k * 1_000_000_000 / rate);
        if let Some(wait) = (start + offset).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let due = wall_micros(start_wall + offset).to_be_bytes();
        let key = k.to_string();
        send(
            &producer,
            BaseRecord::<'_, str, [u8]>::to(to)
                .key(key.as_str())
                .payload(&due[..]),
        )?;
    }
    while producer.in_flight_count() > 0 {
        producer.poll(Duration::from_millis(10));
    }
    let (h, read) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{{\"rate\": {rate}, \"sent\": {total}, \"read\": {read}, \"p50_ms\": {:.1}, \"p90_ms\": {:.1}, \"p99_ms\": {:.1}, \"p999_ms\": {:.1}, \"max_ms\": {:.1}}}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    Ok(())
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
        Command::Latency {
            to,
            from,
            rate,
            secs,
        } => latency(&cli, to, from, *rate, *secs),
    }
}
