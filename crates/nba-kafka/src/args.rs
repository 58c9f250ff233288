//! Command-line and environment settings shared by every Kafka-facing command.

use anyhow::{Context, bail};
use clap::Args;
use nba_pipeline::{Topic, TopicNames};
use rdkafka::ClientConfig;

/// How to reach the broker.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "NBA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Consumer group id [default: nba-<stage>].
    #[arg(long, env = "NBA_GROUP_ID")]
    pub group_id: Option<String>,

    /// A librdkafka setting, passed through as is (e.g. -X security.protocol=ssl).
    /// Repeat for several; in the environment, separate them with commas.
    #[arg(
        short = 'X',
        long = "kafka-config",
        value_name = "KEY=VALUE",
        env = "NBA_KAFKA_CONFIG",
        value_delimiter = ','
    )]
    pub config: Vec<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub topics: TopicArgs,
}

/// The name of every topic.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Topic of raw interactions.
    #[arg(
        long,
        env = "NBA_TOPIC_INTERACTIONS_RAW",
        default_value = "nba.interactions.raw"
    )]
    pub topic_interactions_raw: String,
    /// Topic of validated interactions.
    #[arg(
        long,
        env = "NBA_TOPIC_INTERACTIONS",
        default_value = "nba.interactions"
    )]
    pub topic_interactions: String,
    /// Topic of decision requests.
    #[arg(
        long,
        env = "NBA_TOPIC_DECISION_REQUESTS",
        default_value = "nba.decision-requests"
    )]
    pub topic_decision_requests: String,
    /// Topic of rewards.
    #[arg(long, env = "NBA_TOPIC_REWARDS", default_value = "nba.rewards")]
    pub topic_rewards: String,
    /// Topic of next-best-actions.
    #[arg(
        long,
        env = "NBA_TOPIC_NEXT_BEST_ACTIONS",
        default_value = "nba.next-best-actions"
    )]
    pub topic_next_best_actions: String,
    /// Dead-letter topic.
    #[arg(long, env = "NBA_TOPIC_DLQ", default_value = "nba.dlq")]
    pub topic_dlq: String,
    /// Topic where model-updater instances share what they learn.
    #[arg(
        long,
        env = "NBA_TOPIC_MODEL_DELTAS",
        default_value = "nba.model-deltas"
    )]
    pub topic_model_deltas: String,
    /// The feature-aggregator's changelog: each customer's state, compacted;
    /// at least as many partitions as the interactions topic.
    #[arg(
        long,
        env = "NBA_TOPIC_CUSTOMER_STATE",
        default_value = "nba.customer-state"
    )]
    pub topic_customer_state: String,
    /// Catalog versions (`nba catalog publish`), compacted, keyed by
    /// deployment name; every feature-aggregator and model-updater reads it
    /// whole.
    #[arg(long, env = "NBA_TOPIC_CATALOG", default_value = "nba.catalog")]
    pub topic_catalog: String,
}

impl TopicArgs {
    /// The configured names.
    pub fn names(&self) -> TopicNames {
        let mut n = TopicNames::default();
        n.set(Topic::InteractionsRaw, &self.topic_interactions_raw);
        n.set(Topic::Interactions, &self.topic_interactions);
        n.set(Topic::DecisionRequests, &self.topic_decision_requests);
        n.set(Topic::Rewards, &self.topic_rewards);
        n.set(Topic::NextBestActions, &self.topic_next_best_actions);
        n.set(Topic::DeadLetter, &self.topic_dlq);
        n.set(Topic::ModelDeltas, &self.topic_model_deltas);
        n.set(Topic::CustomerState, &self.topic_customer_state);
        n.set(Topic::Catalog, &self.topic_catalog);
        n
    }
}

impl KafkaArgs {
    /// A client configuration with the brokers, nba's `defaults`, then every
    /// `-X` setting (which wins over both).
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for kv in &self.config {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("-X {kv}: expected KEY=VALUE, e.g. -X security.protocol=ssl");
            };
            let k = k.trim();
            if k.is_empty() {
                bail!("-X {kv}: the key is empty; expected KEY=VALUE");
            }
            c.set(k, v.trim());
        }
        Ok(c)
    }

    /// The group id, or `nba-<stage>`.
    pub fn group_id_or(&self, stage: &str) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("nba-{stage}"))
    }
}

/// Creates a client, saying which setting to check when librdkafka refuses.
pub(crate) fn create<T: rdkafka::config::FromClientConfig>(
    c: &ClientConfig,
    what: &str,
) -> anyhow::Result<T> {
    c.create().with_context(|| {
        format!("cannot create the Kafka {what}: check --brokers and every -X setting")
    })
}
