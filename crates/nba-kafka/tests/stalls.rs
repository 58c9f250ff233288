//! What could stop a partition, on the mock cluster's raw topic, and how the
//! consumer stage goes on or says so.
//!
//! A batch no client can read, put there by hand (a Produce request with a
//! gzip batch whose body is not gzip): the consumer stage reports the
//! partition, offset and reason on `/readyz` without `--skip-unreadable`, and
//! with it dead-letters each offset of the batch and goes on with the records
//! after it. A record of a megabyte, one over the stage's own
//! `message.max.bytes`, and an event dated in year 9999: each is
//! dead-lettered with its reason, and the records after it go on. A member
//! that keeps a partition and reads nothing: the members that are well say so
//! on `/readyz` until it leaves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use nba_deployment::{Deployment, Settings};
use nba_kafka::{KafkaArgs, OpsArgs, RunSummary, produce, run_stage};
use nba_pipeline::{ConsumerStage, ORIGIN_HEADER, OutputRecord, Topic, dlq_headers};
use nba_sim::{SimConfig, Simulator};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::sync::watch;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&i16::try_from(s.len()).expect("short").to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Sends one Produce request (v3) holding a record batch of `records`
/// records flagged gzip whose body is not gzip, as a broken producer would.
fn produce_unreadable_batch(broker: &str, topic: &str, records: i32) {
    let body = b"these bytes are not gzip".repeat(4);
    // The batch after its length field.
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc (not checked by default)
    batch.extend_from_slice(&1i16.to_be_bytes()); // attributes: gzip
    batch.extend_from_slice(&(records - 1).to_be_bytes()); // last offset delta
    let now = 1_767_225_600_000i64;
    batch.extend_from_slice(&now.to_be_bytes());
    batch.extend_from_slice(&now.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&records.to_be_bytes());
    batch.extend_from_slice(&body);
    let mut record_batch = Vec::new();
    record_batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    record_batch.extend_from_slice(&i32::try_from(batch.len()).expect("small").to_be_bytes());
    record_batch.extend_from_slice(&batch);

    let mut request = Vec::new();
    request.extend_from_slice(&0i16.to_be_bytes()); // Produce
    request.extend_from_slice(&3i16.to_be_bytes()); // v3
    request.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    put_str(&mut request, "broken-producer");
    request.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    request.extend_from_slice(&(-1i16).to_be_bytes()); // acks=all
    request.extend_from_slice(&5_000i32.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes()); // one topic
    put_str(&mut request, topic);
    request.extend_from_slice(&1i32.to_be_bytes()); // one partition
    request.extend_from_slice(&0i32.to_be_bytes()); // partition 0
    request.extend_from_slice(
        &i32::try_from(record_batch.len())
            .expect("small")
            .to_be_bytes(),
    );
    request.extend_from_slice(&record_batch);

    let mut stream = TcpStream::connect(broker).expect("connects to the mock broker");
    stream
        .write_all(&i32::try_from(request.len()).expect("small").to_be_bytes())
        .expect("sends");
    stream.write_all(&request).expect("sends");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("an answer");
    let mut answer = vec![0u8; usize::try_from(i32::from_be_bytes(size)).expect("size")];
    stream.read_exact(&mut answer).expect("the answer");
    // correlation id, topics (1), name, partitions (1), partition, error code.
    let name_end = 4 + 4 + 2 + topic.len();
    let error = i16::from_be_bytes([answer[name_end + 8], answer[name_end + 9]]);
    assert_eq!(error, 0, "the mock broker took the batch");
}

fn interactions(sim: &mut Simulator, n: usize) -> Vec<OutputRecord> {
    (0..n)
        .map(|_| {
            let e = sim.next_event();
            OutputRecord {
                topic: Topic::InteractionsRaw,
                key: e.customer_id.clone().into_bytes(),
                payload: Some(nba_schema::encode(&e).expect("encodes")),
                partition: None,
                headers: Vec::new(),
                timestamp: Some(e.timestamp),
            }
        })
        .collect()
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn free_local_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound")
}

/// A mock cluster with every topic (one partition each, `raw_partitions`
/// for the raw interactions), its bootstrap servers, and the retail
/// example's settings.
fn retail_on_mock_cluster(
    raw_partitions: i32,
) -> (
    MockCluster<'static, DefaultProducerContext>,
    String,
    Settings,
) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for t in Topic::ALL {
        let partitions = if t == Topic::InteractionsRaw {
            raw_partitions
        } else {
            1
        };
        cluster
            .create_topic(t.default_name(), partitions, 1)
            .expect("topic");
    }
    let brokers = cluster.bootstrap_servers();
    let settings = Deployment::example("retail", &[]).expect("retail").settings;
    (cluster, brokers, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_batch_is_reported_then_skipped_into_the_dead_letter_topic() {
    let (_cluster, brokers, settings) = retail_on_mock_cluster(1);
    let mut sim =
        Simulator::new(&settings, &SimConfig::for_run(100, 3, Some(20)), false).expect("simulates");
    let plain = Cli::parse_from(["test", "--brokers", &brokers]);
    produce(&plain.kafka, interactions(&mut sim, 3))
        .await
        .expect("produced");
    produce_unreadable_batch(&brokers, Topic::InteractionsRaw.default_name(), 5);
    produce(&plain.kafka, interactions(&mut sim, 3))
        .await
        .expect("produced");

    // Without --skip-unreadable: the partition stands at offset 3, and says so.
    let metrics = free_local_addr();
    let cli = Cli::parse_from([
        "test",
        "--brokers",
        &brokers,
        "--metrics-addr",
        &metrics.to_string(),
        // The mock cluster lets the first run's member go only at session
        // expiry: keep it short so that the second run is assigned soon.
        "-X",
        "session.timeout.ms=6000",
    ]);
    let (stop, run) = start_consumer(&cli, &settings);
    let (status, body) = wait_for(metrics, "/readyz", |status, body| {
        status == 503 && body.contains("cannot be read")
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("nba.interactions.raw partition 0 cannot be read at offset 3")
            && body.contains("offsets 3..7 unreadable")
            && body.contains("--skip-unreadable"),
        "{body}"
    );
    stop.send(true).expect("listens");
    run.await.expect("task").expect("stops cleanly");

    // With it: the five offsets are dead-lettered and the three after them read.
    // (The first run's /metrics server lives as long as the process: a new port.)
    let metrics = free_local_addr();
    let mut skipping = cli;
    skipping.ops.skip_unreadable = true;
    skipping.ops.metrics_addr = Some(metrics);
    let (stop, run) = start_consumer(&skipping, &settings);
    // (nba audit cannot be used here: it reads the raw topic, and stops at
    // the batch with the client's error.)
    let forwarded = read_topic(&brokers, Topic::Interactions, 6).await;
    assert_eq!(forwarded.len(), 6, "every readable interaction forwarded");
    let dead = read_topic(&brokers, Topic::DeadLetter, 5).await;
    let (status, body) = http_get(metrics, "/readyz").await.expect("answers");
    assert_eq!(status, 200, "{body}");
    let (_, scrape) = http_get(metrics, "/metrics").await.expect("answers");
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("nba_records_unreadable_total{") && l.ends_with(" 5")),
        "{scrape}"
    );
    stop.send(true).expect("listens");
    run.await.expect("task").expect("stops cleanly");

    // Each dead letter says where and why.
    let mut offsets = Vec::new();
    for m in &dead {
        let header = |name: &str| header(m, name);
        assert!(m.payload().is_none(), "nothing to keep but where");
        assert!(
            header(dlq_headers::REASON).starts_with("cannot be read (")
                && header(dlq_headers::REASON).contains("skipped by --skip-unreadable"),
            "{}",
            header(dlq_headers::REASON)
        );
        assert_eq!(header(dlq_headers::SOURCE_TOPIC), "nba.interactions.raw");
        offsets.push(header(dlq_headers::SOURCE_OFFSET));
    }
    offsets.sort();
    assert_eq!(offsets, ["3", "4", "5", "6", "7"]);
}

/// Runs the consumer stage as `cli` says until the sender says stop.
fn start_consumer(
    cli: &Cli,
    settings: &Settings,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<(ConsumerStage, RunSummary)>>,
) {
    let (stop, mut stopped) = watch::channel(false);
    let (kafka, ops) = (cli.kafka.clone(), cli.ops.clone());
    let stage = ConsumerStage::new(settings.intake());
    let run = tokio::spawn(async move {
        run_stage(stage, &kafka, &ops, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    (stop, run)
}

/// Reads `topic` from the beginning until `expect` records came and no more
/// came for a second (or 60 s passed).
async fn read_topic(brokers: &str, topic: Topic, expect: usize) -> Vec<OwnedMessage> {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&brokers, topic.default_name(), expect))
        .await
        .expect("task")
}

fn read_blocking(brokers: &str, topic: &str, expect: usize) -> Vec<OwnedMessage> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-read-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribes");
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    while Instant::now() < deadline
        && (read.len() < expect || last.elapsed() < Duration::from_secs(1))
    {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                read.push(m.detach());
                last = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_too_large_and_an_event_in_year_9999_are_dead_lettered_and_the_rest_go_on() {
    let (_cluster, brokers, settings) = retail_on_mock_cluster(1);
    let mut sim =
        Simulator::new(&settings, &SimConfig::for_run(100, 4, Some(20)), false).expect("simulates");
    let mut records = interactions(&mut sim, 3);
    // A valid interaction with a megabyte of location, sent as a producer
    // allowed 2 MB records would.
    let mut big = sim.next_event();
    big.location = Some("x".repeat(1_000_000));
    let sent_at = big.timestamp;
    records.push(OutputRecord {
        payload: Some(nba_schema::encode(&big).expect("encodes")),
        ..records[0].clone()
    });
    // A valid interaction of 60 KB: within the intake's 64 KB, over the
    // stage's message.max.bytes below.
    let mut wide = sim.next_event();
    wide.location = Some("y".repeat(60_000));
    records.push(OutputRecord {
        payload: Some(nba_schema::encode(&wide).expect("encodes")),
        ..records[0].clone()
    });
    // A valid interaction dated 9999-12-31, sent now.
    let mut future = sim.next_event();
    future.timestamp = 253_402_300_799_000;
    records.push(OutputRecord {
        payload: Some(nba_schema::encode(&future).expect("encodes")),
        timestamp: Some(sent_at),
        ..records[0].clone()
    });
    records.extend(interactions(&mut sim, 3));
    let big_producer = Cli::parse_from([
        "test",
        "--brokers",
        &brokers,
        "-X",
        "message.max.bytes=2000000",
    ]);
    produce(&big_producer.kafka, records)
        .await
        .expect("produced");

    // The stage's producer sends at most 50,000 bytes (librdkafka's default
    // is 1,000,000): its own setting is the limit.
    let metrics = free_local_addr();
    let cli = Cli::parse_from([
        "test",
        "--brokers",
        &brokers,
        "--metrics-addr",
        &metrics.to_string(),
        "-X",
        "message.max.bytes=50000",
    ]);
    let (stop, run) = start_consumer(&cli, &settings);
    let forwarded = read_topic(&brokers, Topic::Interactions, 6).await;
    assert_eq!(forwarded.len(), 6, "every other interaction forwarded");
    let dead = read_topic(&brokers, Topic::DeadLetter, 3).await;
    let (_, scrape) = wait_for(metrics, "/metrics", |_, scrape| {
        scrape.contains("nba_records_oversized_total{stage=\"consumer\"} 2")
    })
    .await;
    stop.send(true).expect("listens");
    let (_, summary) = run.await.expect("task").expect("stops cleanly");
    assert_eq!(summary.counters.dead_lettered, 3);
    assert_eq!(
        summary.counters.records_out, 6,
        "the wide one counted as a dead letter"
    );
    assert!(
        scrape.contains("nba_records_oversized_total{stage=\"consumer\"} 2"),
        "{scrape}"
    );

    let reason_at = |offset: &str| {
        let m = dead
            .iter()
            .find(|m| header(m, dlq_headers::SOURCE_OFFSET) == offset)
            .unwrap_or_else(|| panic!("a dead letter of offset {offset}"));
        (m.payload().map(<[u8]>::len), header(m, dlq_headers::REASON))
    };
    let (value, reason) = reason_at("3");
    assert_eq!(value, None, "a megabyte is left where it is");
    assert!(
        reason.starts_with("the record is 1000")
            && reason.contains("an interaction may have at most 65536")
            && reason.ends_with("it is still in nba.interactions.raw partition 0 at offset 3 until retention removes it"),
        "{reason}"
    );
    let (value, reason) = reason_at("4");
    assert_eq!(value, None, "over this stage's limit");
    assert!(
        reason.starts_with("its output to nba.interactions ")
            && reason.contains("over the producer's message.max.bytes (50000)")
            && reason.ends_with(
                "nba.interactions.raw partition 0 at offset 4 until retention removes it"
            ),
        "{reason}"
    );
    let (value, reason) = reason_at("5");
    assert!(value.is_some(), "a small record is kept whole");
    assert!(
        reason.contains("ahead of its Kafka record's timestamp")
            && reason.contains("intake.max_ahead_of_record (10m)"),
        "{reason}"
    );
}

fn header(m: &OwnedMessage, name: &str) -> String {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == name))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// A member of a group that takes its share of a topic's partitions,
/// pauses them, and reads and commits nothing, as a stuck member does (or
/// one that died while its coordinator keeps it). Dropped, it leaves.
struct StuckMember {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StuckMember {
    fn join(brokers: &str, group: &str, topic: &str) -> Self {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("consumer");
        c.subscribe(&[topic]).expect("subscribes");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // Polled to take part in rebalances; whatever it is assigned, paused.
            while !stopped.load(Ordering::Relaxed) {
                let _ = c.poll(Duration::from_millis(100));
                let assigned = c.assignment().expect("an assignment");
                if assigned.count() > 0 {
                    c.pause(&assigned).expect("pauses");
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StuckMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_its_member_does_not_read_fails_readyz_on_the_members_that_are_well() {
    let (_cluster, brokers, settings) = retail_on_mock_cluster(2);
    let metrics = free_local_addr();
    let group = "stall-test";
    let cli = Cli::parse_from([
        "test",
        "--brokers",
        &brokers,
        "--group-id",
        group,
        "--metrics-addr",
        &metrics.to_string(),
        "--group-stall-after",
        "2s",
        "-X",
        "session.timeout.ms=6000",
    ]);
    let (stop, run) = start_consumer(&cli, &settings);
    let stuck = StuckMember::join(&brokers, group, Topic::InteractionsRaw.default_name());
    let mut sim =
        Simulator::new(&settings, &SimConfig::for_run(100, 5, Some(20)), false).expect("simulates");
    let plain = Cli::parse_from(["test", "--brokers", &brokers]);
    let records = interactions(&mut sim, 40);
    produce(&plain.kafka, records).await.expect("produced");

    // The stage reads its partition; the other stands still, and it says so.
    let answer = wait_for(metrics, "/readyz", |status, body| {
        status == 503
            && body.contains("the group has made no progress on nba.interactions.raw partition")
    })
    .await;
    assert!(
        answer.1.contains("record(s) behind the end") && answer.1.contains("died without leaving"),
        "{answer:?}"
    );
    // (The scrape is renewed each second.)
    let stalled = |n: &str| {
        let line = format!("nba_group_stalled_partitions{{stage=\"consumer\"}} {n}");
        move |_: u16, scrape: &str| scrape.lines().any(|l| l == line)
    };
    let (_, scrape) = wait_for(metrics, "/metrics", stalled("1")).await;
    assert!(stalled("1")(200, &scrape), "{scrape}");
    assert_eq!(
        scrape
            .lines()
            .filter(|l| l.starts_with("nba_group_lag{"))
            .count(),
        2,
        "every partition, assigned or not: {scrape}"
    );

    // Once it leaves, the group rebalances, the stage reads everything, and
    // it is ready again.
    drop(stuck);
    let forwarded = read_topic(&brokers, Topic::Interactions, 40).await;
    // At least once: a record read again after the rebalance may be written
    // again, with the origin of its first writing (the aggregator takes it
    // once); every raw record is there.
    let origins: std::collections::BTreeSet<Vec<u8>> = forwarded
        .iter()
        .filter_map(|m| {
            let headers = m.headers()?;
            let origin = headers.iter().find(|h| h.key == ORIGIN_HEADER)?;
            origin.value.map(<[u8]>::to_vec)
        })
        .collect();
    assert_eq!(
        origins.len(),
        40,
        "every interaction forwarded ({} written)",
        forwarded.len()
    );
    let (status, body) = wait_for(metrics, "/readyz", |status, _| status == 200).await;
    assert_eq!(status, 200, "{body}");
    let (_, scrape) = wait_for(metrics, "/metrics", stalled("0")).await;
    assert!(stalled("0")(200, &scrape), "{scrape}");
    stop.send(true).expect("listens");
    run.await.expect("task").expect("stops cleanly");
}

/// Asks `path` every half second until `until` holds (or 90 s passed): the
/// last answer.
async fn wait_for(
    metrics: std::net::SocketAddr,
    path: &str,
    until: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answer = http_get(metrics, path).await;
        if let Some((status, body)) = &answer {
            if until(*status, body) || Instant::now() > deadline {
                return (*status, body.clone());
            }
        }
        assert!(Instant::now() < deadline, "{path} does not answer");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
