//! Input offsets waiting for the acknowledgement of the outputs they caused, and
//! the latencies of those acknowledgements.
//!
//! Every delivery is watched by a future in one `FuturesUnordered` that the
//! runner's task polls, so an acknowledgement is seen (and timed) when the
//! broker's answer wakes the task, not when the record reaches the head of the
//! queue.
//!
//! The tracker knows nothing of rdkafka but through [`Delivery`] (a delivery
//! that ends acknowledged or refused) and the wrapper that stores offsets in a
//! consumer, so its ordering is unit-tested with plain channels.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use nba_metrics::LatencyHistogram;
use nba_pipeline::{OutputRecord, Topic, TopicNames};
use rdkafka::consumer::Consumer;
use rdkafka::producer::DeliveryFuture;

/// A delivery the tracker watches: it ends acknowledged, or refused with why.
pub(crate) trait Delivery: Send + 'static {
    fn outcome(self) -> BoxFuture<'static, Result<(), String>>;
}

impl Delivery for DeliveryFuture {
    fn outcome(self) -> BoxFuture<'static, Result<(), String>> {
        async move {
            match self.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(format!("the broker refused it: {e}")),
                Err(_) => Err("the producer dropped it before delivery".to_owned()),
            }
        }
        .boxed()
    }
}

/// One consumed record whose outputs are not all acknowledged yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// Its effect is still only in the stage's memory (see
    /// `Stage::holds_unflushed`): not storable until a flush covers it.
    pub(crate) held: bool,
    /// When it was read.
    pub(crate) arrived: Instant,
}

/// An output on its way: what it was, for the latency figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) topic: Topic,
    /// The output's event time (ms since the epoch), if it has one.
    pub(crate) event_time: Option<i64>,
    pub(crate) at: Instant,
    /// A flush covering held records rather than an output of the record.
    pub(crate) covers_held: bool,
}

impl Sent {
    pub(crate) fn of(record: &OutputRecord) -> Self {
        Self {
            topic: record.topic,
            event_time: record.timestamp,
            at: Instant::now(),
            covers_held: false,
        }
    }
}

/// A delivery's outcome, as the watching future saw it.
struct Completion {
    seq: u64,
    sent: Sent,
    result: Result<(), String>,
    at: Instant,
}

/// Latencies of acknowledgements, per topic name.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckLatencies {
    /// Output sent → acknowledged, per output topic.
    pub(crate) produce_ack: BTreeMap<String, LatencyHistogram>,
    /// Output's own event time → acknowledged (wall clock), per output topic:
    /// for next-best-actions, from the interaction that caused the decision to
    /// its publication.
    pub(crate) event_to_publication: BTreeMap<String, LatencyHistogram>,
    /// Input read → its last output acknowledged, per input topic: for decision
    /// requests, from the request's arrival to the publication of its decision.
    pub(crate) input_to_ack: BTreeMap<String, LatencyHistogram>,
}

#[derive(Debug)]
struct Entry {
    pending: Pending,
    remaining: usize,
    /// Deliveries of its own outputs still unacknowledged (not counting a
    /// flush attached to it): their last one times `input_to_ack`.
    own_remaining: usize,
    failure: Option<String>,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    latencies: AckLatencies,
}

impl Queue {
    fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.entries.get_mut(i)
    }
}

#[derive(Default)]
struct Watching {
    futures: FuturesUnordered<BoxFuture<'static, Completion>>,
    idle_waker: Option<Waker>,
}

/// Consumed records in the order they were read. An offset is stored only when
/// its record and every record read before it have all outputs acknowledged, so a
/// stored offset never skips an unacknowledged output.
#[derive(Default)]
pub(crate) struct AckTracker {
    queue: Mutex<Queue>,
    watching: Mutex<Watching>,
    names: TopicNames,
}

impl std::fmt::Debug for AckTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckTracker")
            .field("pending", &self.len())
            .finish_non_exhaustive()
    }
}

/// Locks; a panic while holding the lock leaves plain data behind, so go on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AckTracker {
    pub(crate) fn new(names: TopicNames) -> Self {
        Self {
            names,
            ..Self::default()
        }
    }

    /// Queues `pending` with the deliveries of its outputs.
    pub(crate) fn push(&self, pending: Pending, deliveries: Vec<(impl Delivery, Sent)>) {
        let seq = {
            let mut q = lock(&self.queue);
            let seq = q.first_seq + q.entries.len() as u64;
            q.entries.push_back(Entry {
                pending,
                remaining: deliveries.len(),
                own_remaining: deliveries.len(),
                failure: None,
            });
            seq
        };
        for (d, sent) in deliveries {
            self.watch(seq, d, sent);
        }
    }

    /// An output with no input behind it (a dead letter of a broadcast record,
    /// a flush nothing waits for): tracked so a refusal still stops the stage.
    pub(crate) fn push_unowned(&self, delivery: impl Delivery, sent: Sent) {
        let pending = Pending {
            topic: self.names.name(sent.topic).to_owned(),
            partition: -1,
            offset: -1,
            held: false,
            arrived: sent.at,
        };
        self.push(pending, vec![(delivery, sent)]);
    }

    fn watch(&self, seq: u64, delivery: impl Delivery, sent: Sent) {
        let outcome = delivery.outcome();
        let fut = async move {
            let result = outcome.await;
            Completion {
                seq,
                sent,
                result,
                at: Instant::now(),
            }
        };
        let mut w = lock(&self.watching);
        w.futures.push(fut.boxed());
        if let Some(waker) = w.idle_waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.queue).entries.len()
    }

    /// Makes `deliveries` (a flush of the stage's in-memory state, all of it)
    /// the condition for every held record: they are attached to the first of
    /// them, and records are stored in order, so none is stored before all are
    /// acknowledged. With no record held each is tracked on its own; an empty
    /// flush (nothing was left in memory) releases the held records.
    pub(crate) fn cover_held<D: Delivery>(&self, deliveries: Vec<(D, Sent)>) {
        let first = {
            let mut q = lock(&self.queue);
            let first_seq = q.first_seq;
            let mut first = None;
            for (i, e) in q.entries.iter_mut().enumerate() {
                if e.pending.held {
                    e.pending.held = false;
                    if first.is_none() {
                        first = Some(first_seq + i as u64);
                    }
                }
            }
            if let Some(seq) = first
                && let Some(e) = q.get_mut(seq)
            {
                e.remaining += deliveries.len();
            }
            first
        };
        for (delivery, mut sent) in deliveries {
            sent.covers_held = true;
            match first {
                Some(seq) => self.watch(seq, delivery, sent),
                None => self.push_unowned(delivery, sent),
            }
        }
    }

    /// Waits for the next acknowledgement (or refusal) and books it.
    pub(crate) async fn next_completion(&self) {
        let c = std::future::poll_fn(|cx: &mut Context<'_>| {
            let mut w = lock(&self.watching);
            match w.futures.poll_next_unpin(cx) {
                Poll::Ready(Some(c)) => Poll::Ready(c),
                Poll::Ready(None) => {
                    w.idle_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        self.book(c);
    }

    /// Books every acknowledgement that has already arrived (for callers that
    /// cannot wait: rebalance callbacks, the stop).
    pub(crate) fn book_ready(&self) {
        loop {
            let next = {
                let mut w = lock(&self.watching);
                w.futures.next().now_or_never()
            };
            match next {
                Some(Some(c)) => self.book(c),
                _ => return,
            }
        }
    }

    fn book(&self, c: Completion) {
        let mut q = lock(&self.queue);
        let topic = self.names.name(c.sent.topic);
        let lat = &mut q.latencies;
        if c.result.is_ok() {
            lat.produce_ack
                .entry(topic.to_owned())
                .or_default()
                .record(c.at - c.sent.at);
            if let Some(t) = c.sent.event_time {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let ms = u64::try_from(now_ms - t).unwrap_or(0);
                lat.event_to_publication
                    .entry(topic.to_owned())
                    .or_default()
                    .record(std::time::Duration::from_millis(ms));
            }
        }
        let Some(e) = q.get_mut(c.seq) else {
            return;
        };
        e.remaining = e.remaining.saturating_sub(1);
        if let Err(why) = c.result {
            e.failure.get_or_insert(why);
        }
        if c.sent.covers_held {
            return;
        }
        e.own_remaining = e.own_remaining.saturating_sub(1);
        if e.own_remaining == 0 && e.pending.offset >= 0 {
            let (input, waited) = (e.pending.topic.clone(), c.at - e.pending.arrived);
            q.latencies
                .input_to_ack
                .entry(input)
                .or_default()
                .record(waited);
        }
    }

    /// A copy of the acknowledgement latencies so far.
    pub(crate) fn latencies(&self) -> AckLatencies {
        lock(&self.queue).latencies.clone()
    }

    /// Stores the offsets of the leading records whose outputs are all
    /// acknowledged; returns how many. A failed delivery is an error: its input's
    /// offset is never stored, so the record is read again after a restart.
    pub(crate) fn store_acknowledged<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &self,
        consumer: &C,
    ) -> anyhow::Result<usize> {
        self.store_acknowledged_with(|topic, partition, offset| {
            consumer.store_offset(topic, partition, offset)
        })
    }

    /// [`store_acknowledged`](Self::store_acknowledged) through `store`.
    fn store_acknowledged_with<E: std::fmt::Display>(
        &self,
        mut store: impl FnMut(&str, i32, i64) -> Result<(), E>,
    ) -> anyhow::Result<usize> {
        let mut q = lock(&self.queue);
        let mut stored = 0;
        while let Some(front) = q.entries.front() {
            let p = &front.pending;
            if let Some(why) = &front.failure {
                return Err(anyhow!(
                    "an output of {}[{}]@{} was not delivered: {why}; its offset is not committed, so it will be processed again after a restart",
                    p.topic,
                    p.partition,
                    p.offset
                ));
            }
            if p.held || front.remaining > 0 {
                break;
            }
            if p.offset >= 0 {
                if let Err(e) = store(&p.topic, p.partition, p.offset) {
                    // The partition was revoked after its outputs were sent: the
                    // new owner reads the record again (at-least-once, never lost).
                    tracing::debug!(
                        "offset {}[{}]@{} not stored: {e}",
                        p.topic,
                        p.partition,
                        p.offset
                    );
                }
            }
            q.entries.pop_front();
            q.first_seq += 1;
            stored += 1;
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::oneshot;

    use super::*;

    /// A delivery the test acknowledges or refuses by hand.
    type Ack = oneshot::Sender<Result<(), String>>;

    impl Delivery for oneshot::Receiver<Result<(), String>> {
        fn outcome(self) -> BoxFuture<'static, Result<(), String>> {
            async move { self.await.unwrap_or_else(|_| Err("dropped".to_owned())) }.boxed()
        }
    }

    fn delivery(topic: Topic) -> (Ack, (oneshot::Receiver<Result<(), String>>, Sent)) {
        let (ack, rx) = oneshot::channel();
        let sent = Sent {
            topic,
            event_time: None,
            at: Instant::now(),
            covers_held: false,
        };
        (ack, (rx, sent))
    }

    fn read(offset: i64, held: bool) -> Pending {
        Pending {
            topic: "raw".into(),
            partition: 0,
            offset,
            held,
            arrived: Instant::now(),
        }
    }

    /// Books what has arrived and stores what may be: the offsets stored.
    fn store(t: &AckTracker) -> anyhow::Result<Vec<i64>> {
        t.book_ready();
        let mut stored = Vec::new();
        t.store_acknowledged_with(|_, _, offset| {
            stored.push(offset);
            Ok::<(), String>(())
        })?;
        Ok(stored)
    }

    #[test]
    fn offsets_are_stored_in_read_order_once_every_earlier_output_is_acknowledged() {
        let t = AckTracker::default();
        let mut acks = Vec::new();
        for offset in 0..3 {
            let (a, d) = delivery(Topic::Interactions);
            let (b, e) = delivery(Topic::DeadLetter);
            t.push(read(offset, false), vec![d, e]);
            acks.push((a, b));
        }
        // A record with no outputs (a duplicate) waits for those before it.
        t.push(read(3, false), Vec::<(oneshot::Receiver<_>, Sent)>::new());
        let mut acks = acks.into_iter();
        let (a0, b0) = acks.next().expect("0");
        let (a1, b1) = acks.next().expect("1");
        let (a2, b2) = acks.next().expect("2");
        // The last record's outputs first: nothing can be stored.
        a2.send(Ok(())).expect("watched");
        b2.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("no failure"), Vec::<i64>::new());
        // Half of the first: still nothing.
        a0.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("no failure"), Vec::<i64>::new());
        b0.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("no failure"), [0]);
        b1.send(Ok(())).expect("watched");
        a1.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("no failure"), [1, 2, 3]);
        assert_eq!(t.len(), 0);
        let lat = t.latencies();
        assert_eq!(lat.produce_ack["nba.interactions"].count(), 3);
        assert_eq!(lat.input_to_ack["raw"].count(), 3, "records with outputs");
    }

    #[test]
    fn held_records_wait_for_the_flush_that_carries_them() {
        let t = AckTracker::default();
        let (a, d) = delivery(Topic::Interactions);
        t.push(read(0, true), vec![d]);
        t.push(read(1, true), Vec::<(oneshot::Receiver<_>, Sent)>::new());
        t.push(read(2, false), Vec::<(oneshot::Receiver<_>, Sent)>::new());
        a.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("ok"), Vec::<i64>::new(), "held");
        // A flush covers both held records: stored once it is acknowledged.
        let (f, flush) = delivery(Topic::ModelDeltas);
        t.cover_held(vec![flush]);
        assert_eq!(store(&t).expect("ok"), Vec::<i64>::new(), "flush in flight");
        f.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("ok"), [0, 1, 2]);
        // An empty flush (nothing was left in memory) releases held records.
        t.push(read(3, true), Vec::<(oneshot::Receiver<_>, Sent)>::new());
        assert_eq!(store(&t).expect("ok"), Vec::<i64>::new());
        t.cover_held(Vec::<(oneshot::Receiver<_>, Sent)>::new());
        assert_eq!(store(&t).expect("ok"), [3]);
        // A flush with nothing held is tracked on its own, and stores nothing.
        let (g, flush) = delivery(Topic::ModelDeltas);
        t.cover_held(vec![flush]);
        assert_eq!(t.len(), 1);
        g.send(Ok(())).expect("watched");
        assert_eq!(store(&t).expect("ok"), Vec::<i64>::new());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_refused_delivery_stops_before_its_offset_and_keeps_it_unstored() {
        let t = AckTracker::default();
        let (a, d) = delivery(Topic::Interactions);
        t.push(read(0, false), vec![d]);
        let (b, e) = delivery(Topic::Interactions);
        t.push(read(1, false), vec![e]);
        let (c, f) = delivery(Topic::Interactions);
        t.push(read(2, false), vec![f]);
        a.send(Ok(())).expect("watched");
        b.send(Err("the broker refused it: MessageSizeTooLarge".into()))
            .expect("watched");
        c.send(Ok(())).expect("watched");
        t.book_ready();
        let mut stored = Vec::new();
        let why = t
            .store_acknowledged_with(|_, _, offset| {
                stored.push(offset);
                Ok::<(), String>(())
            })
            .expect_err("a refusal stops the stage");
        assert_eq!(stored, [0], "only what came before it");
        assert_eq!(
            why.to_string(),
            "an output of raw[0]@1 was not delivered: the broker refused it: MessageSizeTooLarge; its offset is not committed, so it will be processed again after a restart"
        );
        // A dead letter of a broadcast record has no offset, but its refusal
        // stops the stage too.
        let t = AckTracker::default();
        let (a, d) = delivery(Topic::DeadLetter);
        t.push_unowned(d.0, d.1);
        drop(a);
        assert!(store(&t).is_err(), "a dropped delivery is a refusal");
    }

    #[tokio::test]
    async fn next_completion_wakes_when_a_delivery_is_watched_after_it_waited() {
        let t = std::sync::Arc::new(AckTracker::default());
        let waiting = tokio::spawn({
            let t = std::sync::Arc::clone(&t);
            async move { t.next_completion().await }
        });
        tokio::task::yield_now().await;
        let (a, d) = delivery(Topic::Interactions);
        t.push(read(0, false), vec![d]);
        a.send(Ok(())).expect("watched");
        waiting.await.expect("woken and booked");
        assert_eq!(store(&t).expect("ok"), [0]);
    }
}
