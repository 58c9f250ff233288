//! Every customer's state, one map per input partition.

use rustc_hash::FxHashMap;

use super::{CustomerState, FeatureLayout, slot_mut};

/// All customers' state, keyed by customer id, in one map per shard.
///
/// A shard is the input partition a customer's events arrive through (0 when
/// there is one stream, as in a backtest): each customer's events then arrive
/// in order, and the customers of a partition taken away in a rebalance go at
/// once ([`CustomerStore::release`]). Fx hashing: customer ids come from the
/// business's own systems, not from strangers.
#[derive(Debug)]
pub struct CustomerStore {
    layout: FeatureLayout,
    // Boxed: the table keeps free slots, and a free slot then costs 8 bytes,
    // not the state's size (measured: 264 → see BENCHMARKS.md).
    shards: Vec<FxHashMap<Box<str>, Box<CustomerState>>>,
}

impl CustomerStore {
    /// An empty store whose customers are laid out as `layout` says.
    pub fn new(layout: FeatureLayout) -> Self {
        Self {
            layout,
            shards: Vec::new(),
        }
    }

    /// The layout every customer follows.
    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }

    /// Runs `f` on the customer's state in `shard`, creating it if new.
    pub fn with_customer<R>(
        &mut self,
        shard: u32,
        customer_id: &str,
        f: impl FnOnce(&FeatureLayout, &mut CustomerState) -> R,
    ) -> R {
        let Self { layout, shards } = self;
        let map = slot_mut(shards, shard);
        if let Some(s) = map.get_mut(customer_id) {
            return f(layout, s);
        }
        let s = map
            .entry(customer_id.into())
            .or_insert_with(|| Box::new(CustomerState::new(layout)));
        f(layout, s)
    }

    /// The customer's state, if held (in any shard).
    pub fn get(&self, customer_id: &str) -> Option<&CustomerState> {
        self.shards
            .iter()
            .find_map(|m| m.get(customer_id))
            .map(|s| &**s)
    }

    /// The customer's state in `shard`, if held there.
    pub fn get_in(&self, shard: u32, customer_id: &str) -> Option<&CustomerState> {
        self.shards
            .get(shard as usize)
            .and_then(|m| m.get(customer_id))
            .map(|s| &**s)
    }

    /// Puts `state` in place of whatever the customer had in `shard`.
    pub fn insert(&mut self, shard: u32, customer_id: &str, state: CustomerState) {
        slot_mut(&mut self.shards, shard).insert(customer_id.into(), Box::new(state));
    }

    /// Forgets the customer; true if they were held.
    pub fn remove(&mut self, shard: u32, customer_id: &str) -> bool {
        self.shards
            .get_mut(shard as usize)
            .is_some_and(|m| m.remove(customer_id).is_some())
    }

    /// Forgets every customer of `shard`; returns how many there were.
    pub fn release(&mut self, shard: u32) -> usize {
        self.shards
            .get_mut(shard as usize)
            .map_or(0, |m| std::mem::take(m).len())
    }

    /// Number of customers held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(FxHashMap::len).sum()
    }

    /// True if no customer is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(FxHashMap::is_empty)
    }
}
