//! Records no client can read: found, reported, and skipped when asked.
//!
//! librdkafka hands a record it cannot read (a batch it cannot decompress, a
//! corrupt batch) to the application as an error without its partition or
//! offset, and fetches the same batch again, for ever. Other partitions go on,
//! so the stage looks busy while one partition stands still. After a few such
//! errors the runner asks [`find_unreadable`] where: a consumer of its own,
//! outside the group, reads each assigned partition at the group's position;
//! one that answers with an error there is unreadable, and the same consumer
//! walks on to the first offset it can read. The runner reports the partition
//! on `/readyz` and in the log, or with `--skip-unreadable` dead-letters each
//! offset it cannot read (no value: what is known is where, and why) and goes
//! on from the first readable one.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::read::Reader;

/// Errors from the consumer that make the runner look for an unreadable
/// record, and the least time between two looks.
pub(crate) const ERRORS_BEFORE_PROBE: u32 = 3;
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long one read of the probe may wait for an answer.
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// Most offsets walked past in one partition at one look (a damaged batch
/// holds at most a few thousand records).
const MOST_WALKED: i64 = 100_000;

/// A partition that cannot be read at `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The first offset after it that can be read (the partition's end if
    /// none can yet).
    pub(crate) readable_from: i64,
    /// What the client said.
    pub(crate) error: String,
}

impl Unreadable {
    /// What `/readyz` and the log say.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} partition {} cannot be read at offset {} ({}; offsets {}..{} unreadable): the batch is damaged or in a codec this build lacks; --skip-unreadable dead-letters those offsets and goes on",
            self.topic,
            self.partition,
            self.offset,
            self.error,
            self.offset,
            self.readable_from - 1
        )
    }
}

/// When the runner should look: after [`ERRORS_BEFORE_PROBE`] errors, at
/// most every [`PROBE_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct ProbeSchedule {
    errors: u32,
    last: Option<Instant>,
}

impl ProbeSchedule {
    /// A consumer error at `now`; true if it is time to look.
    pub(crate) fn error(&mut self, now: Instant) -> bool {
        self.errors += 1;
        if self.errors < ERRORS_BEFORE_PROBE
            || self
                .last
                .is_some_and(|l| now.duration_since(l) < PROBE_EVERY)
        {
            return false;
        }
        self.errors = 0;
        self.last = Some(now);
        true
    }
}

/// The assigned partitions of `group` that cannot be read where the group
/// stands, read by `probe` (a consumer outside the group).
pub(crate) fn find_unreadable<C: ConsumerContext>(
    group: &impl Consumer<C>,
    probe: &Reader,
    timeout: Duration,
) -> anyhow::Result<Vec<Unreadable>> {
    let assigned = group.assignment().context("cannot list the assignment")?;
    let positions = group.position().context("cannot read the positions")?;
    let committed = group
        .committed(timeout)
        .context("cannot read the committed offsets")?;
    let mut found = Vec::new();
    for e in assigned.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let at = |tpl: &TopicPartitionList| {
            tpl.find_partition(topic, partition)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
        };
        let (low, high) = probe
            .fetch_watermarks(topic, partition, timeout)
            .with_context(|| format!("cannot read the offsets of {topic}[{partition}]"))?;
        let position = at(&positions).or_else(|| at(&committed)).unwrap_or(low);
        if position >= high {
            continue;
        }
        let Err(error) = read_at(probe, topic, partition, position)? else {
            continue;
        };
        let mut readable_from = position + 1;
        while readable_from < high && readable_from - position < MOST_WALKED {
            if read_at(probe, topic, partition, readable_from)?.is_ok() {
                break;
            }
            readable_from += 1;
        }
        found.push(Unreadable {
            topic: topic.to_owned(),
            partition,
            offset: position,
            readable_from,
            error,
        });
    }
    probe.unassign().context("cannot release the probe")?;
    Ok(found)
}

/// Reads one record of `topic[partition]` at `offset`: `Ok(Ok(()))` if a
/// record came (or nothing within the wait: not known to be unreadable),
/// `Ok(Err(what))` if the client answered with the same failure twice there.
fn read_at(
    probe: &Reader,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Result<(), String>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    probe.assign(&tpl)?;
    let deadline = Instant::now() + PROBE_WAIT;
    let mut errors = 0;
    while Instant::now() < deadline {
        match probe.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.topic() == topic && m.partition() == partition => return Ok(Ok(())),
            // A record of an earlier assignment still queued.
            Some(Ok(_)) | None => {}
            // Twice: the client fetched it again and failed again, so it is
            // the record, not a passing fault.
            Some(Err(e)) => {
                errors += 1;
                if errors >= 2 {
                    return Ok(Err(e.to_string()));
                }
            }
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_after_a_few_errors_and_not_again_too_soon() {
        let t0 = Instant::now();
        let mut s = ProbeSchedule::default();
        assert!(!s.error(t0));
        assert!(!s.error(t0));
        assert!(s.error(t0), "the third error");
        for _ in 0..10 {
            assert!(!s.error(t0 + Duration::from_secs(1)), "too soon");
        }
        assert!(s.error(t0 + PROBE_EVERY));
    }
}
