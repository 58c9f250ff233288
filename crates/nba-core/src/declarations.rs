//! Everything a deployment declares about its data, in one value the engines
//! share: the vocabulary, the customer profile, what requests carry, and the
//! values action tags may take.

use crate::{Names, ProfileSpec, RequestSpec, Vocabulary};

/// What a deployment's records may contain.
#[derive(Debug, Clone, PartialEq)]
pub struct Declarations {
    /// Channels, categories, event types, triggers, outcomes.
    pub vocabulary: Vocabulary,
    /// Customer profile fields.
    pub profile: ProfileSpec,
    /// Request attributes and metrics.
    pub request: RequestSpec,
    /// Action tags that context features one-hot, with their values.
    pub tags: Vec<(String, Names)>,
}

impl Declarations {
    /// The declared values of action tag `name`.
    pub fn tag(&self, name: &str) -> Option<&Names> {
        self.tags.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}
