//! Input offsets waiting for the acknowledgement of the outputs they caused.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use anyhow::anyhow;
use futures::FutureExt;
use rdkafka::consumer::Consumer;
use rdkafka::producer::DeliveryFuture;

/// One consumed record whose outputs are not all acknowledged yet.
pub(crate) struct Pending {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) deliveries: Vec<DeliveryFuture>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}]@{} awaiting {} acks",
            self.topic,
            self.partition,
            self.offset,
            self.deliveries.len()
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
            if let Err(e) = consumer.store_offset(&front.topic, front.partition, front.offset) {
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
