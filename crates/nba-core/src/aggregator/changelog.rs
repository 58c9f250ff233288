//! What makes the aggregator's state recoverable: the customers changed
//! since the last changelog write, their states restored on assignment, a
//! partition released in a rebalance, and interactions delivered again after
//! a crash that a restored state already includes.

use rustc_hash::{FxHashMap, FxHashSet};

use super::FeatureAggregator;
use super::origins::{OriginMark, OriginMarks};
use crate::features::slot_mut;
use crate::{CustomerSnapshot, CustomerState};

/// A customer whose state changed since the last
/// [`FeatureAggregator::take_changes`]: what the changelog gets.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerChange {
    /// The customer's input partition (the changelog partition it goes to).
    pub partition: u32,
    /// The customer.
    pub customer_id: String,
    /// What is kept of them now; `None` when nothing is (an erasure): a
    /// tombstone.
    pub state: Option<CustomerSnapshot>,
}

/// What the aggregator keeps per input partition besides the features.
#[derive(Debug, Default)]
pub(super) struct PartitionBooks {
    pub(super) opted_out: FxHashSet<Box<str>>,
    /// Aliases linked to a customer: alias → customer.
    pub(super) links: FxHashMap<Box<str>, Box<str>>,
    /// Customers changed since the last `take_changes` (only when tracking).
    pub(super) changed: FxHashSet<Box<str>>,
    /// Offset of the newest interaction applied.
    pub(super) position: Option<i64>,
    /// Restored customers whose state already includes interactions the group
    /// will deliver again (read after the last commit): customer → offset of the
    /// newest included. Emptied as the input passes `redelivered_until`.
    redelivered: FxHashMap<Box<str>, i64>,
    redelivered_until: i64,
    /// The newest interaction applied from each upstream partition, to know
    /// a copy written again upstream (see `origins.rs`).
    pub(super) origins: OriginMarks,
}

impl FeatureAggregator {
    /// True if some customer changed since the last
    /// [`FeatureAggregator::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.partitions.iter().any(|p| !p.changed.is_empty())
    }

    /// Every customer changed since the last call, with what is kept of them
    /// now (ordered by partition, then customer id).
    pub fn take_changes(&mut self) -> Vec<CustomerChange> {
        let layout = self.store.layout();
        let mut changes = Vec::new();
        for (shard, books) in (0u32..).zip(&mut self.partitions) {
            let offset = books.position.unwrap_or(-1);
            let mut changed: Vec<Box<str>> = books.changed.drain().collect();
            changed.sort_unstable();
            for customer in changed {
                let state = if let Some(to) = books.links.get(&customer) {
                    Some(CustomerSnapshot {
                        linked_to: Some(to.to_string()),
                        ..CustomerSnapshot::without_features(layout, &customer, offset)
                    })
                } else if books.opted_out.contains(&customer) {
                    Some(CustomerSnapshot {
                        opted_out: true,
                        ..CustomerSnapshot::without_features(layout, &customer, offset)
                    })
                } else {
                    self.store
                        .get_in(shard, &customer)
                        .map(|s| s.snapshot(layout, &customer, offset))
                };
                changes.push(CustomerChange {
                    partition: shard,
                    customer_id: customer.into(),
                    state,
                });
            }
        }
        changes
    }

    /// Takes back one customer's state of `partition` from the changelog
    /// (`None`: a tombstone, nothing kept), where the input of that partition
    /// will be read again from offset `resume_at`. Refuses a state written
    /// under another feature layout, saying why.
    pub fn restore(
        &mut self,
        partition: u32,
        customer_id: &str,
        state: Option<&CustomerSnapshot>,
        resume_at: i64,
    ) -> Result<(), String> {
        let books = slot_mut(&mut self.partitions, partition);
        books.redelivered.remove(customer_id);
        books.links.remove(customer_id);
        let Some(s) = state else {
            self.store.remove(partition, customer_id);
            books.opted_out.remove(customer_id);
            return Ok(());
        };
        if let Some(to) = &s.linked_to {
            self.store.remove(partition, customer_id);
            books.opted_out.remove(customer_id);
            books.links.insert(customer_id.into(), to.as_str().into());
        } else if s.opted_out {
            self.store.remove(partition, customer_id);
            books.opted_out.insert(customer_id.into());
        } else {
            let restored = CustomerState::from_snapshot(self.store.layout(), s)?;
            self.store.insert(partition, customer_id, restored);
            books.opted_out.remove(customer_id);
        }
        if s.input_offset >= resume_at {
            books.redelivered.insert(customer_id.into(), s.input_offset);
            books.redelivered_until = books.redelivered_until.max(s.input_offset);
        }
        self.counts.restored += 1;
        Ok(())
    }

    /// The newest interaction applied from each upstream partition into input
    /// partition `partition`: written with its changelog, so that a restored
    /// aggregator still knows copies written again upstream.
    pub fn origin_marks(&self, partition: u32) -> &[OriginMark] {
        self.partitions
            .get(partition as usize)
            .map_or(&[], |b| b.origins.marks())
    }

    /// Takes back a mark of input partition `partition` read from its
    /// changelog (see [`FeatureAggregator::origin_marks`]).
    pub fn restore_origin_mark(&mut self, partition: u32, mark: OriginMark) {
        slot_mut(&mut self.partitions, partition)
            .origins
            .restore(mark);
    }

    /// Forgets every customer of `partition` (taken away in a rebalance);
    /// returns how many states were dropped.
    pub fn release(&mut self, partition: u32) -> usize {
        if let Some(books) = self.partitions.get_mut(partition as usize) {
            *books = PartitionBooks::default();
        }
        self.store.release(partition)
    }

    /// The offset after the newest interaction applied from `partition`.
    pub fn resume_point(&self, partition: u32) -> Option<i64> {
        self.partitions
            .get(partition as usize)
            .and_then(|b| b.position)
            .map(|o| o + 1)
    }
}

impl PartitionBooks {
    /// True if the customer's restored state already includes the interaction
    /// at `offset`.
    pub(super) fn included(&mut self, customer: &str, offset: i64) -> bool {
        if self.redelivered.is_empty() {
            return false;
        }
        if offset > self.redelivered_until {
            self.redelivered = FxHashMap::default();
            return false;
        }
        self.redelivered
            .get(customer)
            .is_some_and(|upto| offset <= *upto)
    }
}
