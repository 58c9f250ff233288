//! Input offsets waiting for the acknowledgement of the outputs they caused.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use anyhow::anyhow;
use futures::FutureExt;
use nba_pipeline::{OutputRecord, TopicNames};
use rdkafka::consumer::Consumer;
use rdkafka::producer::DeliveryFuture;

/// One consumed record whose outputs are not all acknowledged yet.
pub(crate) struct Pending {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) deliveries: Vec<DeliveryFuture>,
    /// Its effect is still only in the stage's memory (see
    /// `Stage::holds_unflushed`): not storable until a flush covers it.
    pub(crate) held: bool,
}

impl Pending {
    /// An output with no input offset behind it (a dead letter of a broadcast
    /// record, a flush nothing waits for): tracked so a refusal still stops the
    /// stage.
    pub(crate) fn without_offset(
        record: &OutputRecord,
        names: &TopicNames,
        delivery: DeliveryFuture,
    ) -> Self {
        Self {
            topic: names.name(record.topic).to_owned(),
            partition: -1,
            offset: -1,
            deliveries: vec![delivery],
            held: false,
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}]@{} awaiting {} acks{}",
            self.topic,
            self.partition,
            self.offset,
            self.deliveries.len(),
            if self.held { ", held" } else { "" }
        )
    }
}

/// Consumed records in the order they were read. An offset is stored only when
/// its record and every record read before it have all outputs acknowledged, so a
/// stored offset never skips an unacknowledged output.
#[derive(Debug, Default)]
pub(crate) struct AckTracker {
    pending: Mutex<VecDeque<Pending>>,
}

impl AckTracker {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, p: Pending) {
        self.lock().push_back(p);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Makes `delivery` (a flush of the stage's in-memory state) the condition
    /// for every held record: it is attached to the first of them, and records
    /// are stored in order, so none is stored before it is acknowledged. Returns
    /// the delivery back if no record is held.
    pub(crate) fn cover_held(&self, delivery: DeliveryFuture) -> Option<DeliveryFuture> {
        let mut pending = self.lock();
        let mut held = pending.iter_mut().filter(|p| p.held);
        let Some(first) = held.next() else {
            return Some(delivery);
        };
        first.held = false;
        first.deliveries.push(delivery);
        held.for_each(|p| p.held = false);
        None
    }

    /// Stores the offsets of the leading records whose outputs are all
    /// acknowledged; returns how many. A failed delivery is an error: its input's
    /// offset is never stored, so the record is read again after a restart.
    pub(crate) fn store_acknowledged<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &self,
        consumer: &C,
    ) -> anyhow::Result<usize> {
        let mut pending = self.lock();
        let mut stored = 0;
        while let Some(front) = pending.front_mut() {
            if front.held {
                break;
            }
            let mut still_waiting = Vec::new();
            for mut d in front.deliveries.drain(..) {
                match (&mut d).now_or_never() {
                    None => still_waiting.push(d),
                    Some(Ok(Ok(_))) => {}
                    Some(Ok(Err((e, _)))) => {
                        return Err(anyhow!(
                            "the broker refused an output of {}[{}]@{}: {e}; its offset is not committed, so it will be processed again after a restart",
                            front.topic,
                            front.partition,
                            front.offset
                        ));
                    }
                    Some(Err(_)) => {
                        return Err(anyhow!(
                            "the producer dropped an output of {}[{}]@{} before delivery",
                            front.topic,
                            front.partition,
                            front.offset
                        ));
                    }
                }
            }
            if !still_waiting.is_empty() {
                front.deliveries = still_waiting;
                break;
            }
            if front.offset < 0 {
                // No input behind it.
            } else if let Err(e) =
                consumer.store_offset(&front.topic, front.partition, front.offset)
            {
                // The partition was revoked after its outputs were sent: the new
                // owner reads the record again (at-least-once, never lost).
                tracing::debug!(
                    "offset {}[{}]@{} not stored: {e}",
                    front.topic,
                    front.partition,
                    front.offset
                );
            }
            pending.pop_front();
            stored += 1;
        }
        Ok(stored)
    }
}
