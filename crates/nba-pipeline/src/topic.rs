//! The topics and the records that move between them.

use std::fmt;

use nba_core::EventTime;

/// The role a topic plays in the pipeline; its name is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Interactions as producers send them.
    InteractionsRaw,
    /// Validated, de-duplicated interactions keyed by customer.
    Interactions,
    /// Decision requests with their context.
    DecisionRequests,
    /// Outcomes attributed to shown actions.
    Rewards,
    /// The decisions.
    NextBestActions,
    /// Records nba could not accept, with the reason in headers.
    DeadLetter,
    /// What each model-updater instance learned, for the others.
    ModelDeltas,
    /// The feature-aggregator's changelog: each customer's state, compacted.
    CustomerState,
    /// Catalog versions, compacted by deployment name.
    Catalog,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 9] = [
        Topic::InteractionsRaw,
        Topic::Interactions,
        Topic::DecisionRequests,
        Topic::Rewards,
        Topic::NextBestActions,
        Topic::DeadLetter,
        Topic::ModelDeltas,
        Topic::CustomerState,
        Topic::Catalog,
    ];

    /// The name used unless configured otherwise.
    pub fn default_name(self) -> &'static str {
        match self {
            Topic::InteractionsRaw => "nba.interactions.raw",
            Topic::Interactions => "nba.interactions",
            Topic::DecisionRequests => "nba.decision-requests",
            Topic::Rewards => "nba.rewards",
            Topic::NextBestActions => "nba.next-best-actions",
            Topic::DeadLetter => "nba.dlq",
            Topic::ModelDeltas => "nba.model-deltas",
            Topic::CustomerState => "nba.customer-state",
            Topic::Catalog => "nba.catalog",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_name())
    }
}

/// The configured name of every topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    names: [String; Topic::ALL.len()],
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            names: Topic::ALL.map(|t| t.default_name().to_owned()),
        }
    }
}

impl TopicNames {
    fn slot(topic: Topic) -> usize {
        Topic::ALL.iter().position(|t| *t == topic).unwrap_or(0)
    }

    /// Renames `topic`.
    pub fn set(&mut self, topic: Topic, name: impl Into<String>) {
        self.names[Self::slot(topic)] = name.into();
    }

    /// The name of `topic`.
    pub fn name(&self, topic: Topic) -> &str {
        &self.names[Self::slot(topic)]
    }

    /// The role of the topic called `name`, if any.
    pub fn role(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.name(*t) == name)
    }
}

/// One record read from a topic.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// The topic's role.
    pub topic: Topic,
    /// The topic's name as read.
    pub topic_name: &'a str,
    /// Partition read from.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value.
    pub payload: Option<&'a [u8]>,
    /// The record's timestamp (ms since the epoch): when it was sent, or
    /// appended, as the topic says; `None` if it has none.
    pub timestamp: Option<EventTime>,
    /// The value of its [`ORIGIN_HEADER`](crate::ORIGIN_HEADER), if it has one.
    pub origin: Option<&'a [u8]>,
}

/// One record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    /// Where it goes.
    pub topic: Topic,
    /// Record key (the customer id for every nba topic).
    pub key: Vec<u8>,
    /// Record value; `None` is a tombstone (on a compacted topic: forget the key).
    pub payload: Option<Vec<u8>>,
    /// The partition to write to; `None`: by the key's hash, as every client does.
    pub partition: Option<i32>,
    /// Record headers.
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// Record timestamp: the event time it derives from, when known.
    pub timestamp: Option<EventTime>,
}

impl OutputRecord {
    /// At least the bytes librdkafka counts against `message.max.bytes`: key,
    /// value, and each header's name and value with room for their lengths.
    pub fn size_bound(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum();
        self.key.len() + self.payload.as_ref().map_or(0, Vec::len) + headers
    }
}
