//! Writing records to Kafka: the one place that turns an [`OutputRecord`] into a
//! produce request.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context;
use nba_pipeline::{OutputRecord, TopicNames};
use nba_schema::RecordedRecord;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::KafkaArgs;
use crate::args::create_reporting_to;
use crate::diagnostics::Diagnostics;

/// A producer that reports through [`Diagnostics`].
pub(crate) type Writer = FutureProducer<Diagnostics>;

/// Producer settings nba uses unless `-X` says otherwise: wait for all in-sync
/// replicas, batch for up to 5 ms, and partition keys like the Java client
/// (murmur2), so that a customer's records land in the same partition whichever
/// client wrote them. Idempotence keeps each partition's records in the order
/// sent through retries (and writes none twice): the aggregator knows an
/// interaction written again after a crash by that order (`nba.origin`).
pub(crate) const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("partitioner", "murmur2_random"),
    ("message.timeout.ms", "300000"),
];

/// A produce request: topic, key, value, headers, timestamp.
fn produce_request<'a, H: AsRef<[u8]> + 'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: impl Iterator<Item = (&'a str, Option<&'a H>)>,
    timestamp: Option<i64>,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut owned = OwnedHeaders::new();
    for (k, v) in headers {
        owned = owned.insert(Header {
            key: k,
            value: v.map(AsRef::as_ref),
        });
    }
    let mut fr = FutureRecord::to(topic).headers(owned);
    if let Some(k) = key {
        fr = fr.key(k);
    }
    if let Some(v) = value {
        fr = fr.payload(v);
    }
    if let Some(t) = timestamp {
        fr = fr.timestamp(t);
    }
    fr
}

/// The produce request for `record`.
fn future_record<'a>(
    names: &'a TopicNames,
    record: &'a OutputRecord,
) -> FutureRecord<'a, [u8], [u8]> {
    let fr = produce_request(
        names.name(record.topic),
        Some(record.key.as_slice()),
        record.payload.as_deref(),
        record.headers.iter().map(|(k, v)| (*k, Some(v))),
        record.timestamp,
    );
    match record.partition {
        Some(p) => fr.partition(p),
        None => fr,
    }
}

/// Enqueues `record`, waiting while librdkafka's queue is full. The wait blocks
/// the thread (1 ms at a time; librdkafka's own threads drain the queue), so
/// async code and rebalance callbacks use the same function.
pub(crate) fn send(
    producer: &Writer,
    names: &TopicNames,
    record: &OutputRecord,
) -> Result<DeliveryFuture, KafkaError> {
    enqueue(producer, future_record(names, record))
}

fn enqueue(
    producer: &Writer,
    mut fr: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        match producer.send_result(fr) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                fr = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// A producer for whole streams of records (`nba simulate`, tests): keeps at most
/// `window` records unacknowledged and fails on the first refused one.
pub struct Producer {
    inner: Writer,
    diagnostics: Diagnostics,
    names: TopicNames,
    in_flight: VecDeque<DeliveryFuture>,
    window: usize,
    delivered: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("in_flight", &self.in_flight.len())
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer for the brokers and topics in `args`; a record not
    /// acknowledged within `--timeout` fails the stream, saying why.
    pub fn new(args: &KafkaArgs) -> anyhow::Result<Self> {
        crate::registry::connect(args)?;
        let timeout = args.timeout().as_millis().to_string();
        let mut defaults = PRODUCER_DEFAULTS.to_vec();
        defaults.push(("message.timeout.ms", &timeout));
        let diagnostics = Diagnostics::default();
        Ok(Self {
            inner: create_reporting_to(&args.client_config(&defaults)?, "producer", &diagnostics)?,
            diagnostics,
            names: args.topics.names(),
            in_flight: VecDeque::new(),
            window: 100_000,
            delivered: 0,
        })
    }

    /// Sends one record.
    pub async fn send(&mut self, record: &OutputRecord) -> anyhow::Result<()> {
        let d = send(&self.inner, &self.names, record)
            .with_context(|| format!("cannot send to {}", self.names.name(record.topic)))?;
        self.in_flight.push_back(d);
        while self.in_flight.len() > self.window {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Sends a recorded record to `topic` as it was: key, value, headers and
    /// timestamp.
    pub async fn send_raw(&mut self, topic: &str, r: &RecordedRecord) -> anyhow::Result<()> {
        let fr = produce_request(
            topic,
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())),
            r.timestamp,
        );
        let d = enqueue(&self.inner, fr).with_context(|| format!("cannot send to {topic}"))?;
        self.in_flight.push_back(d);
        while self.in_flight.len() > self.window {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> anyhow::Result<()> {
        if let Some(d) = self.in_flight.pop_front() {
            match d.await {
                Ok(Ok(_)) => self.delivered += 1,
                Ok(Err((e, _))) => {
                    let refused = anyhow::anyhow!("a record was not delivered: {e}");
                    return Err(self.diagnostics.explain(refused));
                }
                Err(_) => anyhow::bail!("the producer dropped a record before delivery"),
            }
        }
        Ok(())
    }

    /// Waits until every record sent is acknowledged; returns how many were.
    pub async fn flush(&mut self) -> anyhow::Result<u64> {
        while !self.in_flight.is_empty() {
            self.settle_one().await?;
        }
        Ok(self.delivered)
    }
}

/// Sends every record of `records` and waits for all acknowledgements.
pub async fn produce(
    args: &KafkaArgs,
    records: impl IntoIterator<Item = OutputRecord>,
) -> anyhow::Result<u64> {
    let mut p = Producer::new(args)?;
    for r in records {
        p.send(&r).await?;
    }
    p.flush().await
}
