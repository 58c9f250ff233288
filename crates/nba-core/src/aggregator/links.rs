//! Identity links: an alias's state moves to its customer's partition,
//! merges there, and the alias's later events follow it.

use super::{AggregatorOutput, FeatureAggregator};
use crate::features::slot_mut;
use crate::{CustomerSnapshot, CustomerState, Interaction};

impl FeatureAggregator {
    /// A linked alias's own event, sent on to count for its customer, there;
    /// `None` if `i` is not an alias's.
    pub(super) fn forward_if_alias(
        &mut self,
        i: &Interaction,
        shard: u32,
    ) -> Option<AggregatorOutput> {
        let books = slot_mut(&mut self.partitions, shard);
        if i.linked_id.is_some() || books.links.is_empty() {
            return None;
        }
        let to = books.links.get(i.customer_id.as_str())?;
        self.counts.links.forwarded += 1;
        Some(AggregatorOutput {
            forward: Some(Box::new(Interaction {
                customer_id: to.to_string(),
                linked_id: Some(i.customer_id.clone()),
                ..i.clone()
            })),
            ..AggregatorOutput::default()
        })
    }

    /// A link event. Where the alias lives (no `merged_state`): its state
    /// leaves, the alias is remembered as linked, and the link goes on to the
    /// customer carrying that state. Where the customer lives (`merged_state`
    /// set by the alias's side): the alias's state is merged in; if the alias
    /// had opted out, so has the customer now.
    pub(super) fn link(&mut self, i: &Interaction, shard: u32, included: bool) -> AggregatorOutput {
        let layout = self.store.layout();
        let books = slot_mut(&mut self.partitions, shard);
        let customer = i.customer_id.as_str();
        let Some(to) = i.linked_id.as_deref() else {
            // The intake refuses a link without a target; nothing to do.
            return AggregatorOutput::default();
        };
        if let Some(alias) = &i.merged_state {
            if included {
                return AggregatorOutput::default();
            }
            if alias.opted_out {
                self.store.remove(shard, customer);
                books.opted_out.insert(customer.into());
                self.counts.links.merged += 1;
            } else if books.opted_out.contains(customer) {
                // Nothing is kept of an opted-out customer.
                self.counts.links.merged += 1;
            } else {
                match CustomerState::from_snapshot(layout, alias) {
                    Ok(alias) => {
                        self.store
                            .with_customer(shard, customer, |layout, s| s.merge(layout, &alias));
                        self.counts.links.merged += 1;
                    }
                    Err(_) => self.counts.links.not_merged += 1,
                }
            }
            return AggregatorOutput::default();
        }
        let offset = books.position.unwrap_or(-1);
        let state = if books.opted_out.remove(customer) {
            CustomerSnapshot {
                opted_out: true,
                ..CustomerSnapshot::without_features(layout, customer, offset)
            }
        } else {
            let s = self.store.get_in(shard, customer);
            let empty = CustomerState::new(layout);
            s.unwrap_or(&empty).snapshot(layout, customer, offset)
        };
        self.store.remove(shard, customer);
        books.links.insert(customer.into(), to.into());
        self.counts.links.linked += 1;
        AggregatorOutput {
            forward: Some(Box::new(Interaction {
                customer_id: to.to_owned(),
                linked_id: Some(i.customer_id.clone()),
                merged_state: Some(Box::new(state)),
                ..i.clone()
            })),
            ..AggregatorOutput::default()
        }
    }
}
