//! Following a topic as it grows, from where it ends now: how `nba simulate
//! --respond` hears the next-best-actions the pipeline publishes.

use std::time::Duration;

use anyhow::Context;
use nba_pipeline::Topic;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::KafkaArgs;
use crate::args::create;
use crate::read::{Reader, partitions_of};

/// Reads every partition of one topic from its end at creation on, outside
/// any consumer group (nothing is committed; every follower sees every record).
pub struct TopicFollower {
    consumer: Reader,
    topic: String,
}

impl std::fmt::Debug for TopicFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicFollower")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl TopicFollower {
    /// Follows `topic` from each partition's current end (its high
    /// watermark, read now, so that no record published after this returns
    /// is missed). Gives up after `--timeout` with the client's last error.
    pub fn new(args: &KafkaArgs, topic: Topic) -> anyhow::Result<Self> {
        crate::registry::connect(args)?;
        let topic = args.topics.names().name(topic).to_owned();
        let consumer: Reader = create(
            &args.client_config(&[
                ("group.id", "nba-follower"),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
                // A follower waits for each record: ask for it soon (a broker
                // that answers a fetch only after its wait would add it).
                ("fetch.wait.max.ms", "50"),
            ])?,
            "consumer",
        )?;
        let timeout = args.timeout();
        let mut tpl = TopicPartitionList::new();
        for p in partitions_of(&consumer, &topic, timeout)? {
            let (_, high) = consumer
                .fetch_watermarks(&topic, p, timeout)
                .with_context(|| format!("cannot read the offsets of {topic}[{p}]"))?;
            tpl.add_partition_offset(&topic, p, Offset::Offset(high))?;
        }
        consumer.assign(&tpl)?;
        Ok(Self { consumer, topic })
    }

    /// The value of the next record, waiting at most `timeout`; `None` if
    /// none came. Blocks the calling thread.
    pub fn next_value(&self, timeout: Duration) -> anyhow::Result<Option<Vec<u8>>> {
        match self.consumer.poll(timeout) {
            None => Ok(None),
            Some(Ok(m)) => Ok(Some(m.payload().unwrap_or_default().to_vec())),
            Some(Err(e)) => Err(anyhow::anyhow!("reading {}: {e}", self.topic)),
        }
    }
}
