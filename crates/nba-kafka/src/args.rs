//! Command-line and environment settings shared by every Kafka-facing command.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use nba_core::parse_duration_ms;
use nba_pipeline::{Topic, TopicNames};
use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;

use crate::diagnostics::Diagnostics;
use crate::registry::SchemaRegistryArgs;

/// How to reach the broker.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "NBA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Consumer group id [default: nba-<stage>].
    #[arg(long, env = "NBA_GROUP_ID")]
    pub group_id: Option<String>,

    /// A librdkafka setting, passed through as is (e.g. -X
    /// security.protocol=sasl_ssl -X sasl.mechanism=SCRAM-SHA-512). Repeat for
    /// several. Settings from the --config file, then NBA_KAFKA_CONFIG
    /// (comma-separated), then these flags all apply, the later winning per
    /// key, so a ConfigMap's list and a Secret's list add up.
    #[arg(short = 'X', long = "kafka-config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,

    /// librdkafka settings from the environment, comma-separated KEY=VALUE
    /// (applied after the --config file's, before -X flags).
    #[arg(
        long = "kafka-config-env",
        env = "NBA_KAFKA_CONFIG",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        hide = true
    )]
    pub config_from_env: Vec<String>,

    /// librdkafka settings from the --config file's `kafka-config` list
    /// (applied first).
    #[arg(long = "kafka-config-file", value_name = "KEY=VALUE", hide = true)]
    pub config_from_file: Vec<String>,

    /// How long an nba command (simulate, replay, record, audit, catalog)
    /// waits for the broker before it gives up, saying why (units ms, s, m).
    /// The stages wait for the broker as long as it takes.
    #[arg(long, env = "NBA_TIMEOUT", default_value = "30s", value_parser = parse_duration_ms)]
    pub timeout: i64,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub topics: TopicArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub registry: SchemaRegistryArgs,
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
    /// librdkafka setting given (the --config file's, NBA_KAFKA_CONFIG's, then
    /// -X flags; later wins). With TLS and no CA named, the CA store is probed
    /// (`ssl.ca.location=probe`): OpenSSL is built into nba, so its compiled-in
    /// default paths are not the system's.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in self.librdkafka_settings()? {
            c.set(k, v);
        }
        if !cfg!(feature = "gssapi")
            && c.get("sasl.mechanism")
                .is_some_and(|m| m.eq_ignore_ascii_case("gssapi"))
        {
            anyhow::bail!(
                "sasl.mechanism=GSSAPI (Kerberos) needs nba built with Cyrus SASL: install libsasl2-dev (Debian) and build with `cargo build --release --features gssapi`; SCRAM, PLAIN and OAUTHBEARER need nothing more"
            );
        }
        let tls = c
            .get("security.protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("ssl") || p.eq_ignore_ascii_case("sasl_ssl"));
        let ca_named = ["ssl.ca.location", "ssl.ca.pem", "ssl.ca.certificate.stores"]
            .iter()
            .any(|k| c.get(k).is_some());
        if tls && !ca_named {
            c.set("ssl.ca.location", "probe");
        }
        Ok(c)
    }

    /// Every librdkafka setting given, in the order they apply.
    fn librdkafka_settings(&self) -> anyhow::Result<Vec<(&str, &str)>> {
        let given = (self.config_from_file.iter().map(|kv| (kv, "in --config")))
            .chain(
                self.config_from_env
                    .iter()
                    .map(|kv| (kv, "in NBA_KAFKA_CONFIG")),
            )
            .chain(self.config.iter().map(|kv| (kv, "-X")));
        let mut out = Vec::new();
        for (kv, place) in given {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("{place} {kv}: expected KEY=VALUE, e.g. security.protocol=ssl");
            };
            let k = k.trim();
            if k.is_empty() {
                bail!("{place} {kv}: the key is empty; expected KEY=VALUE");
            }
            out.push((k, v.trim()));
        }
        Ok(out)
    }

    /// `--timeout`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.timeout).unwrap_or(0).max(1))
    }

    /// The group id, or `nba-<stage>`.
    pub fn group_id_or(&self, stage: &str) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("nba-{stage}"))
    }
}

/// Creates a client that reports through [`Diagnostics`], saying which setting
/// to check when librdkafka refuses.
pub(crate) fn create<T: FromClientConfigAndContext<Diagnostics>>(
    c: &ClientConfig,
    what: &str,
) -> anyhow::Result<T> {
    create_reporting_to(c, what, &Diagnostics::default())
}

/// [`create`], reporting to `diagnostics` (which the caller keeps).
pub(crate) fn create_reporting_to<T: FromClientConfigAndContext<Diagnostics>>(
    c: &ClientConfig,
    what: &str,
    diagnostics: &Diagnostics,
) -> anyhow::Result<T> {
    c.create_with_context(diagnostics.clone()).with_context(|| {
        format!("cannot create the Kafka {what}: check --brokers and every -X setting")
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    #[test]
    fn librdkafka_settings_from_file_environment_and_flags_add_up_later_winning() {
        let cli = Cli::parse_from([
            "t",
            "--kafka-config-file",
            "security.protocol=sasl_ssl",
            "--kafka-config-file",
            "sasl.username=file-user",
            "--kafka-config-env",
            "sasl.username=env-user,sasl.password=secret",
            "-X",
            "linger.ms=7",
        ]);
        let c = cli
            .kafka
            .client_config(&[("linger.ms", "5")])
            .expect("config");
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.username"), Some("env-user"));
        assert_eq!(c.get("sasl.password"), Some("secret"));
        assert_eq!(c.get("linger.ms"), Some("7"));
        // TLS with no CA named: the system's store is probed.
        assert_eq!(c.get("ssl.ca.location"), Some("probe"));
    }

    #[test]
    fn a_named_ca_is_kept_and_plaintext_gets_none() {
        let cli = Cli::parse_from(["t", "-X", "security.protocol=SSL", "-X", "ssl.ca.pem=PEM"]);
        let c = cli.kafka.client_config(&[]).expect("config");
        assert_eq!(c.get("ssl.ca.location"), None);
        let cli = Cli::parse_from(["t"]);
        assert_eq!(
            cli.kafka
                .client_config(&[])
                .expect("config")
                .get("ssl.ca.location"),
            None
        );
    }

    #[test]
    fn a_setting_without_a_value_says_where_it_came_from() {
        let cli = Cli::parse_from(["t", "--kafka-config-env", "sasl.password"]);
        let e = cli.kafka.client_config(&[]).expect_err("refused");
        assert!(
            e.to_string()
                .contains("in NBA_KAFKA_CONFIG sasl.password: expected KEY=VALUE"),
            "{e}"
        );
    }
}
