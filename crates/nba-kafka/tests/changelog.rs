//! The feature-aggregator's changelog on librdkafka's mock cluster: two
//! instances in one group, partitions moving between them, and every customer's
//! state at the end exactly what one aggregator that saw every interaction
//! holds: no feature lost, none counted twice, and the erased customer gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use nba_core::{CustomerSnapshot, FeatureAggregator, Interaction};
use nba_deployment::{Deployment, Settings};
use nba_kafka::{KafkaArgs, OpsArgs, produce, run_stage};
use nba_pipeline::{AggregatorStage, OutputRecord, Topic};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
}

const PARTITIONS: i32 = 4;
const CUSTOMERS: usize = 120;
const T0: i64 = 1_767_225_600_000;
const CHANNELS: [&str; 5] = ["web", "app", "store", "call_centre", "email"];

fn retail() -> Settings {
    Deployment::example("retail", &[]).expect("retail").settings
}

/// Wave `w` of interactions: every customer does something, some buy, some
/// start a session (a trigger); customer c7 opts out in wave 1 and c13, who has
/// history, is erased in wave 2.
fn wave(w: usize) -> Vec<Interaction> {
    let kinds = [
        "page_view",
        "add_to_cart",
        "purchase",
        "session_start",
        "click",
    ];
    let mut out = Vec::new();
    for step in 0..5 {
        for c in 0..CUSTOMERS {
            let n = w * 5 + step;
            let kind = match (w, c, step) {
                (1, 7, 2) => "opt_out",
                (2, 13, 4) => "erase",
                _ => kinds[(c + n) % kinds.len()],
            };
            out.push(Interaction {
                category: (kind == "purchase").then(|| "shoes".to_owned()),
                amount: (kind == "purchase").then_some(10.0 + c as f64),
                ..Interaction::new(
                    format!("w{w}-s{step}-c{c}"),
                    format!("c{c}"),
                    T0 + (n as i64) * 600_000 + c as i64,
                    CHANNELS[(c + step) % CHANNELS.len()],
                    kind,
                )
            });
        }
    }
    out
}

fn record(i: &Interaction) -> OutputRecord {
    OutputRecord {
        topic: Topic::Interactions,
        key: i.customer_id.clone().into_bytes(),
        payload: Some(nba_schema::encode(i).expect("encodes")),
        partition: None,
        headers: Vec::new(),
        timestamp: Some(i.timestamp),
    }
}

/// Waits until the decision-request topic holds `n` records (the mock
/// cluster's high watermarks are exact).
async fn until_requests(brokers: &str, n: u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut written = 0;
        for p in 0..PARTITIONS {
            let (_, high) = consumer
                .fetch_watermarks(
                    Topic::DecisionRequests.default_name(),
                    p,
                    Duration::from_secs(10),
                )
                .expect("watermarks");
            written += u64::try_from(high).unwrap_or(0);
        }
        assert!(
            Instant::now() < deadline,
            "{written} of {n} requests after 120 s"
        );
        if written >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The changelog as compaction leaves it: the newest value per customer, with
/// tombstones removing the customer.
fn compacted_changelog(brokers: &str) -> BTreeMap<String, CustomerSnapshot> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "changelog-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let topic = Topic::CustomerState.default_name();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        if high > 0 {
            ends.insert(p, high);
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut latest = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        assert!(Instant::now() < deadline, "changelog not read: {ends:?}");
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("a record");
        let key = String::from_utf8(m.key().expect("keyed").to_vec()).expect("utf-8");
        match m.payload() {
            Some(v) => {
                let s: CustomerSnapshot = nba_schema::decode(v).expect("a customer state");
                assert_eq!(s.customer_id, key);
                latest.insert(key, s);
            }
            None => {
                latest.remove(&key);
            }
        }
        if ends.get(&m.partition()) == Some(&(m.offset() + 1)) {
            ends.remove(&m.partition());
        }
    }
    latest
}

/// The state without where it stood in the input (which differs by design
/// between a live partition and one aggregator that saw everything).
fn features(s: &CustomerSnapshot) -> CustomerSnapshot {
    CustomerSnapshot {
        input_offset: 0,
        ..s.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_state_moves_with_its_partition_and_counts_each_event_once() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let cluster = MockCluster::new(1).expect("mock cluster");
    for t in Topic::ALL {
        cluster
            .create_topic(t.default_name(), PARTITIONS, 1)
            .expect("topic");
    }
    let brokers = cluster.bootstrap_servers();
    // The mock coordinator completes a rebalance only after a session timeout
    // (45 s by default): shorten it so partitions move in seconds.
    let args = Cli::parse_from([
        "test",
        "--brokers",
        &brokers,
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=500",
    ])
    .kafka;
    let waves: Vec<Vec<Interaction>> = (0..3).map(wave).collect();

    // One aggregator that sees everything: what the two must add up to.
    let mut reference = FeatureAggregator::new(retail().aggregator())
        .expect("valid")
        .tracking_changes();
    let mut requests_after = Vec::new();
    let mut requests = 0u64;
    for w in &waves {
        for i in w {
            requests += u64::from(reference.apply(i).request.is_some());
        }
        requests_after.push(requests);
    }

    let instance = |stopped: &watch::Receiver<bool>| {
        let (args, mut stopped) = (args.clone(), stopped.clone());
        tokio::spawn(async move {
            let stage = AggregatorStage::new(retail().aggregator())
                .expect("valid")
                .with_changelog(Duration::from_millis(100));
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            run_stage(stage, &args, &OpsArgs::default(), until).await
        })
    };
    let (stop_a, stopped_a) = watch::channel(false);
    let (stop_b, stopped_b) = watch::channel(false);

    // A alone takes wave 0 on every partition.
    let a = instance(&stopped_a);
    produce(&args, waves[0].iter().map(record))
        .await
        .expect("wave 0");
    until_requests(&brokers, requests_after[0]).await;

    // B joins: the partitions are shared; B restores those it is given.
    let b = instance(&stopped_b);
    // Time for the group to rebalance (the mock cluster lists no groups to
    // wait on); if B is slow to join, A's partitions still move to it below.
    tokio::time::sleep(Duration::from_secs(10)).await;
    produce(&args, waves[1].iter().map(record))
        .await
        .expect("wave 1");
    until_requests(&brokers, requests_after[1]).await;

    // A leaves: B takes every partition and restores what A wrote.
    stop_a.send(true).expect("a listens");
    let (_, run_a) = a.await.expect("task").expect("a ran");
    produce(&args, waves[2].iter().map(record))
        .await
        .expect("wave 2");
    until_requests(&brokers, requests_after[2]).await;
    stop_b.send(true).expect("b listens");
    let (b, run_b) = b.await.expect("task").expect("b ran");

    assert!(run_a.revocations > 0, "A gave its partitions up: {run_a:?}");
    let restored = b.aggregator().counts().restored;
    assert!(restored > 0, "B restored the states A wrote: {run_b:?}");

    // B ends holding every customer, exactly as the reference does.
    let expected: BTreeMap<String, CustomerSnapshot> = reference
        .take_changes()
        .into_iter()
        .filter_map(|c| c.state.map(|s| (c.customer_id, s)))
        .collect();
    assert!(!expected.contains_key("c13"), "erased");
    assert_eq!(expected.get("c7").map(|s| s.opted_out), Some(true));
    for (customer, want) in &expected {
        assert_eq!(
            b.aggregator().store().get(customer),
            reference.store().get(customer),
            "{customer} in B's memory"
        );
        assert_eq!(want.opted_out, reference.store().get(customer).is_none());
    }
    assert_eq!(b.aggregator().store().len(), reference.store().len());
    assert_eq!(b.aggregator().opted_out(), 1);

    // The changelog, compacted, is the same state; the erased customer is a
    // tombstone.
    let changelog = compacted_changelog(&brokers);
    assert_eq!(
        changelog.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (customer, want) in &expected {
        assert_eq!(features(&changelog[customer]), features(want), "{customer}");
    }
}
