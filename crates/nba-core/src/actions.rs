//! The actions nba can choose from, and on which channels each may be used.

use crate::Channel;

/// A set of channels, as a bit mask over [`Channel::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// Every channel.
    pub const ALL: ChannelSet = ChannelSet(0b1_1111);

    /// Exactly the given channels.
    pub fn of(channels: &[Channel]) -> Self {
        Self(channels.iter().fold(0, |m, c| m | 1 << c.index()))
    }

    /// True if `c` is in the set.
    pub fn contains(self, c: Channel) -> bool {
        self.0 & (1 << c.index()) != 0
    }
}

/// One action: an offer, a message, a recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Its id, as it appears in decisions.
    pub id: String,
    /// Where it may be shown.
    pub channels: ChannelSet,
}

/// The actions known to the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionCatalog {
    actions: Vec<Action>,
}

impl ActionCatalog {
    /// A catalog of the given actions.
    pub fn new(actions: Vec<Action>) -> Self {
        Self { actions }
    }

    /// The actions, in catalog order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Ids of the actions allowed on `channel`, in catalog order.
    pub fn eligible(&self, channel: Channel) -> Vec<String> {
        self.actions
            .iter()
            .filter(|a| a.channels.contains(channel))
            .map(|a| a.id.clone())
            .collect()
    }
}

impl Default for ActionCatalog {
    /// The retail catalog used by the demo and the simulator: eight actions, some
    /// limited to the channels where they make sense.
    fn default() -> Self {
        use Channel::*;
        let a = |id: &str, channels: ChannelSet| Action {
            id: id.to_owned(),
            channels,
        };
        Self::new(vec![
            a("discount_10", ChannelSet::ALL),
            a("recommend_electronics", ChannelSet::ALL),
            a("recommend_fashion", ChannelSet::ALL),
            a("recommend_home", ChannelSet::ALL),
            a("recommend_beauty", ChannelSet::ALL),
            a("free_shipping", ChannelSet::of(&[Web, App, Email])),
            a("push_new_arrivals", ChannelSet::of(&[App])),
            a(
                "loyalty_points",
                ChannelSet::of(&[Store, CallCentre, Email]),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_follows_channels() {
        let c = ActionCatalog::default();
        assert_eq!(c.eligible(Channel::App).len(), 7);
        assert!(
            !c.eligible(Channel::Store)
                .contains(&"push_new_arrivals".to_owned())
        );
        assert!(
            c.eligible(Channel::Store)
                .contains(&"loyalty_points".to_owned())
        );
    }
}
