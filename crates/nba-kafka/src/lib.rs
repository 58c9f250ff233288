//! The Kafka shell of nba.
//!
//! [`run_stage`] runs one [`Stage`](nba_pipeline::Stage) as a member of a consumer
//! group: it reads the stage's input topics, writes what the stage produces, and
//! stores an input's offset only once the broker has acknowledged every record
//! that input caused (at-least-once). On a partition revocation it waits for the
//! outstanding acknowledgements and commits before letting go; on SIGINT or SIGTERM
//! it drains, commits and returns.
//!
//! [`produce`] sends records (simulated traffic), [`audit`] reads every topic back
//! to check that nothing was lost, [`publish_catalog`] and [`read_catalog`]
//! write and read catalog versions, [`stage_deployment`] reads a binary's
//! deployment with its flags over it, and [`run_stage_binary`] is the whole
//! `main` of a stage binary.

mod args;
mod audit;
mod binary;
mod catalog;
mod config;
mod diagnostics;
mod follow;
mod kafka_errors;
mod misfit;
mod ops;
mod phase;
mod produce;
mod progress;
mod read;
mod recall;
mod record;
mod registry;
mod runner;
mod shutdown;
mod stall;
mod topics;
mod tracker;
mod unreadable;

pub use args::{KafkaArgs, TopicArgs};
pub use audit::{AuditReport, audit};
pub use binary::{init_logging, print_stdout, run_main, run_stage_binary};
pub use catalog::{publish_catalog, read_catalog};
pub use config::{
    CliSources, DeploymentArgs, OverrideFlag, STAGE_SECTIONS, ValueKind, parse_cli,
    stage_deployment,
};
pub use follow::TopicFollower;
pub use ops::{LogFormat, OpsArgs};
pub use produce::{Producer, produce};
pub use read::StartAt;
pub use record::{record, replay};
pub use registry::{SchemaRegistryArgs, use_schema_registry};
pub use runner::{RunSummary, run_stage};
pub use shutdown::shutdown_signal;
pub use topics::{TopicNeeds, TopicReport, ensure_topics, topic_needs};
