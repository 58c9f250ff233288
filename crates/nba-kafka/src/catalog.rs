//! Catalog versions on the compacted catalog topic: `nba catalog publish`
//! writes one, `nba catalog show` reads them back.

use nba_core::CatalogVersion;
use nba_pipeline::{OutputRecord, Topic};
use nba_schema::{decode, encode};
use rdkafka::message::Message;

use crate::args::create;
use crate::read::{Reader, StartAt, read_topic};
use crate::{KafkaArgs, Producer};

/// Every catalog version on the catalog topic, in the order read (a
/// compacted topic keeps the newest per deployment); records that are not
/// catalog versions are reported with their offset.
pub fn read_catalog(args: &KafkaArgs) -> anyhow::Result<(Vec<CatalogVersion>, Vec<String>)> {
    crate::registry::connect(args)?;
    let consumer: Reader = create(
        &args.client_config(&[
            ("group.id", "nba-catalog"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])?,
        "consumer",
    )?;
    let (mut versions, mut bad) = (Vec::new(), Vec::new());
    let topic = args.topics.names().name(Topic::Catalog).to_owned();
    read_topic(
        &consumer,
        &topic,
        StartAt::Beginning,
        None,
        args.timeout(),
        |m| match m.payload().map(decode::<CatalogVersion>) {
            Some(Ok(v)) => versions.push(v),
            Some(Err(e)) => bad.push(format!(
                "{topic}[{}] offset {}: {e}",
                m.partition(),
                m.offset()
            )),
            None => {}
        },
    )?;
    Ok((versions, bad))
}

/// Publishes `version` to the catalog topic, keyed by its deployment's name,
/// timestamped with the event time it takes effect at; waits for the
/// broker's acknowledgement.
pub async fn publish_catalog(args: &KafkaArgs, version: &CatalogVersion) -> anyhow::Result<()> {
    let mut producer = Producer::new(args)?;
    producer
        .send(&OutputRecord {
            topic: Topic::Catalog,
            key: version.deployment.as_bytes().to_vec(),
            payload: Some(encode(version)?),
            partition: None,
            headers: Vec::new(),
            timestamp: Some(version.effective_from.max(0)),
        })
        .await?;
    producer.flush().await?;
    Ok(())
}
