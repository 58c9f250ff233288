//! A consumer that dies after writing interactions and before committing
//! their raw offsets writes them again when it restarts, at new offsets of
//! the interactions topic. The aggregator takes each once, by the origin
//! every interaction names, also when the aggregator itself restarts from
//! its changelog in between; its features equal a run with no crash.

use nba_core::{CustomerSnapshot, Interaction};
use nba_deployment::{Deployment, Settings};
use nba_pipeline::{
    AggregatorStage, ConsumerStage, InputRecord, ORIGIN_HEADER, OutputRecord, Stage, Topic,
};
use nba_schema::encode;

const CUSTOMERS: [&str; 3] = ["c1", "c2", "c3"];

fn retail() -> Settings {
    Deployment::example("retail", &[]).expect("retail").settings
}

/// Raw interaction `n`: page views, purchases and session starts (triggers)
/// of three customers, a second apart.
fn raw(n: usize) -> Vec<u8> {
    let kind = ["page_view", "purchase", "session_start"][n % 3];
    let customer = CUSTOMERS[(n / 3) % CUSTOMERS.len()];
    let t = 1_767_225_600_000 + 1_000 * i64::try_from(n).expect("small");
    let i = Interaction {
        category: Some("home".into()),
        amount: (kind == "purchase").then_some(25.0),
        ..Interaction::new(format!("e{n}"), customer, t, "app", kind)
    };
    encode(&i).expect("encodes")
}

fn input<'a>(
    topic: Topic,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
) -> InputRecord<'a> {
    InputRecord {
        topic,
        topic_name: topic.default_name(),
        partition,
        offset,
        key,
        payload,
        timestamp: None,
        origin,
    }
}

/// The consumer's interactions for raw offsets `offsets` (raw partition 0).
fn consume(consumer: &mut ConsumerStage, offsets: std::ops::Range<usize>) -> Vec<OutputRecord> {
    let mut out = Vec::new();
    for n in offsets {
        let value = raw(n);
        let at = i64::try_from(n).expect("small");
        consumer.process(
            &input(Topic::InteractionsRaw, 0, at, None, Some(&value), None),
            &mut out,
        );
    }
    assert!(out.iter().all(|r| r.topic == Topic::Interactions));
    assert!(
        out.iter().all(|r| origin_of(r).is_some()),
        "every interaction names its origin"
    );
    out
}

/// Feeds `interactions` to the aggregator from input offset `first` on;
/// returns how many decision requests it made.
fn aggregate(aggregator: &mut AggregatorStage, interactions: &[OutputRecord], first: i64) -> usize {
    let mut out = Vec::new();
    for (offset, r) in (first..).zip(interactions) {
        let origin = origin_of(r);
        aggregator.process(
            &input(
                Topic::Interactions,
                0,
                offset,
                Some(&r.key),
                r.payload.as_deref(),
                origin,
            ),
            &mut out,
        );
    }
    out.iter()
        .filter(|r| r.topic == Topic::DecisionRequests)
        .count()
}

/// The record's `nba.origin` header, if it has one.
fn origin_of(r: &OutputRecord) -> Option<&[u8]> {
    r.headers
        .iter()
        .find(|(name, _)| *name == ORIGIN_HEADER)
        .map(|(_, v)| v.as_slice())
}

fn features(aggregator: &AggregatorStage) -> Vec<CustomerSnapshot> {
    let store = aggregator.aggregator().store();
    CUSTOMERS
        .iter()
        .map(|c| store.get(c).expect("kept").snapshot(store.layout(), c, 0))
        .collect()
}

fn clean_run(settings: &Settings, raw_records: usize) -> (Vec<CustomerSnapshot>, usize) {
    let mut consumer = ConsumerStage::new(settings.intake());
    let mut aggregator = AggregatorStage::new(settings.aggregator()).expect("valid");
    let requests = aggregate(&mut aggregator, &consume(&mut consumer, 0..raw_records), 0);
    (features(&aggregator), requests)
}

#[test]
fn interactions_a_restarted_consumer_writes_again_count_once() {
    let settings = retail();
    let (clean, clean_requests) = clean_run(&settings, 30);

    let mut aggregator = AggregatorStage::new(settings.aggregator()).expect("valid");
    // The consumer writes raw 0..20 and dies having committed 12; the next
    // one (with an empty de-duplication window) reads 12.. again.
    let first = consume(&mut ConsumerStage::new(settings.intake()), 0..20);
    let again = consume(&mut ConsumerStage::new(settings.intake()), 12..30);
    let mut requests = aggregate(&mut aggregator, &first, 0);
    requests += aggregate(&mut aggregator, &again, 20);

    assert_eq!(
        aggregator.counters().duplicates,
        8,
        "raw 12..20 written twice"
    );
    assert_eq!(requests, clean_requests, "a copy asks nothing");
    assert_eq!(features(&aggregator), clean);
    let copies = aggregator
        .extra_counters()
        .into_iter()
        .find(|(name, ..)| *name == "nba_upstream_copies_skipped_total")
        .map(|(.., n)| n);
    assert_eq!(copies, Some(8));
}

#[test]
fn copies_are_known_after_the_aggregator_restarts_from_its_changelog() {
    let settings = retail();
    let (clean, _) = clean_run(&settings, 30);
    let every = std::time::Duration::from_secs(1);

    let first = consume(&mut ConsumerStage::new(settings.intake()), 0..20);
    let again = consume(&mut ConsumerStage::new(settings.intake()), 12..30);
    // The aggregator reads the first 20, writes its changelog, commits 20
    // and dies.
    let mut before = AggregatorStage::new(settings.aggregator())
        .expect("valid")
        .with_changelog(every);
    aggregate(&mut before, &first, 0);
    let mut changelog = Vec::new();
    before.flush(&mut changelog);
    assert!(
        changelog.iter().any(|r| origin_of(r).is_some()),
        "the changelog carries the origin marks"
    );

    let mut after = AggregatorStage::new(settings.aggregator())
        .expect("valid")
        .with_changelog(every);
    for (offset, r) in (0..).zip(&changelog) {
        let origin = origin_of(r);
        let record = input(
            Topic::CustomerState,
            r.partition.expect("a partition"),
            offset,
            Some(&r.key),
            r.payload.as_deref(),
            origin,
        );
        after.restore(&record, 20).expect("restored");
    }
    aggregate(&mut after, &again, 20);

    assert_eq!(after.counters().duplicates, 8);
    assert_eq!(features(&after), clean);
}

#[test]
fn without_origins_the_copies_would_count_twice() {
    // What the two tests above guard against, shown: the same copies with
    // their origin header taken off change the features.
    let settings = retail();
    let (clean, _) = clean_run(&settings, 30);
    let mut aggregator = AggregatorStage::new(settings.aggregator()).expect("valid");
    let first = consume(&mut ConsumerStage::new(settings.intake()), 0..20);
    let mut again = consume(&mut ConsumerStage::new(settings.intake()), 12..30);
    aggregate(&mut aggregator, &first, 0);
    for r in &mut again {
        r.headers.clear();
    }
    aggregate(&mut aggregator, &again, 20);
    assert_eq!(aggregator.counters().duplicates, 0);
    assert_ne!(features(&aggregator), clean);
}
