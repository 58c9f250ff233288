//! The three stages wired through topics of librdkafka's mock cluster (a real
//! Kafka-protocol broker in process): one next-best-action per decision request,
//! malformed records in the dead-letter topic, nothing lost.

use std::time::{Duration, Instant};

use clap::Parser;
use nba_core::{AggregatorConfig, IntakeConfig, UpdaterConfig};
use nba_kafka::{AuditReport, KafkaArgs, audit, produce, run_stage};
use nba_pipeline::{AggregatorStage, ConsumerStage, OutputRecord, Topic, UpdaterStage};
use nba_sim::{SimConfig, Simulator, malformed_records};
use rdkafka::mocking::MockCluster;
use tokio::sync::watch;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn args(brokers: &str) -> KafkaArgs {
    Cli::parse_from(["test", "--brokers", brokers]).kafka
}

fn raw(key: String, payload: Vec<u8>, t: Option<i64>) -> OutputRecord {
    OutputRecord {
        topic: Topic::InteractionsRaw,
        key: key.into_bytes(),
        payload,
        headers: Vec::new(),
        timestamp: t,
    }
}

async fn audit_until_settled(args: &KafkaArgs, raw: u64, dead: u64) -> AuditReport {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let a = args.clone();
        let report = tokio::task::spawn_blocking(move || audit(&a, Some(raw), Some(dead)))
            .await
            .expect("audit task")
            .expect("audit reads the topics");
        if report.problems.is_empty() || Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_through_kafka_answer_every_request_once_and_dead_letter_bad_records() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for t in Topic::ALL {
        cluster.create_topic(t.default_name(), 3, 1).expect("topic");
    }
    let args = args(&cluster.bootstrap_servers());

    // 5,000 simulated interactions and 14 malformed records.
    let mut sim = Simulator::new(
        &SimConfig {
            customers: 200,
            ..SimConfig::default()
        },
        false,
    );
    let mut records: Vec<OutputRecord> = (0..5_000)
        .map(|_| {
            let e = sim.next_event();
            let payload = nba_schema::encode(&e).expect("encodes");
            raw(e.customer_id, payload, Some(e.timestamp))
        })
        .collect();
    let bad = malformed_records(14);
    records.extend(bad.into_iter().map(|(k, v)| raw(k, v, None)));
    let total = records.len() as u64;
    assert_eq!(produce(&args, records).await.expect("produced"), total);

    let (stop, stopped) = watch::channel(false);
    let until_stopped = || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let consumer = tokio::spawn({
        let (a, s) = (args.clone(), until_stopped());
        async move { run_stage(ConsumerStage::new(IntakeConfig::default()), &a, s).await }
    });
    let aggregator = tokio::spawn({
        let (a, s) = (args.clone(), until_stopped());
        async move { run_stage(AggregatorStage::new(AggregatorConfig::default()), &a, s).await }
    });
    let updater = tokio::spawn({
        let (a, s) = (args.clone(), until_stopped());
        async move { run_stage(UpdaterStage::new(UpdaterConfig::default()), &a, s).await }
    });

    let report = audit_until_settled(&args, total, 14).await;
    stop.send(true).expect("stages listen");
    let consumer = consumer.await.expect("task").expect("consumer ran");
    let aggregator = aggregator.await.expect("task").expect("aggregator ran");
    let updater = updater.await.expect("task").expect("updater ran");

    assert!(report.problems.is_empty(), "{report:#?}");
    assert_eq!(report.raw, total);
    assert_eq!(report.interactions, 5_000);
    assert!(report.decision_requests > 500, "{report:#?}");
    assert_eq!(report.next_best_actions, report.decision_requests);
    assert_eq!(report.dead_letters.get("consumer"), Some(&14));
    assert_eq!(consumer.counters.dead_lettered, 14);
    assert_eq!(consumer.counters.records_out, 5_000);
    assert_eq!(aggregator.counters.records_in, 5_000);
    assert_eq!(updater.counters.records_out, report.next_best_actions);
}
