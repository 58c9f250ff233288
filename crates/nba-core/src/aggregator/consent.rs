//! Consent and erasure: what an opted-out or erased customer leaves behind
//! (nothing), and what an erasure passes on.

use super::{AggregatorOutput, FeatureAggregator};
use crate::features::slot_mut;
use crate::{CustomerErasure, Interaction};

impl FeatureAggregator {
    /// An erasure deletes the customer's state and consent flag here, and is
    /// passed on so the model-updater forgets them too.
    pub(super) fn erase(
        &mut self,
        i: &Interaction,
        shard: u32,
        included: bool,
    ) -> AggregatorOutput {
        let customer = i.customer_id.as_str();
        if !included {
            let books = slot_mut(&mut self.partitions, shard);
            self.store.remove(shard, customer);
            books.opted_out.remove(customer);
            books.links.remove(customer);
            self.counts.erasures += 1;
        }
        // Passed on again when redelivered: forgetting twice is harmless.
        AggregatorOutput {
            erasure: Some(CustomerErasure {
                event_id: i.event_id.clone(),
                customer_id: i.customer_id.clone(),
                timestamp: i.timestamp,
            }),
            ..AggregatorOutput::default()
        }
    }

    /// An opt-out deletes the customer's state and keeps none while it lasts.
    pub(super) fn opt_out(&mut self, customer: &str, shard: u32, included: bool) {
        if !included {
            self.store.remove(shard, customer);
            slot_mut(&mut self.partitions, shard)
                .opted_out
                .insert(customer.into());
        }
    }

    /// An opt-in ends the opt-out; features start again from nothing.
    pub(super) fn opt_in(&mut self, customer: &str, shard: u32, included: bool) {
        if !included {
            slot_mut(&mut self.partitions, shard)
                .opted_out
                .remove(customer);
        }
    }
}
