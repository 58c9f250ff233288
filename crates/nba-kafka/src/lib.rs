//! The Kafka shell of nba.
//!
//! [`run_stage`] runs one [`Stage`](nba_pipeline::Stage) as a member of a consumer
//! group: it reads the stage's input topics, writes what the stage produces, and
//! stores an input's offset only once the broker has acknowledged every record
//! that input caused (at-least-once). On a partition revocation it waits for the
//! outstanding acknowledgements and commits before letting go; on SIGINT or SIGTERM
//! it drains, commits and returns.
//!
//! [`ProduceArgs`]-style helpers send simulated traffic ([`produce`]) and
//! [`audit`] reads every topic back to check that nothing was lost.

mod args;
mod audit;
mod produce;
mod runner;
mod shutdown;
mod tracker;

pub use args::{KafkaArgs, TopicArgs};
pub use audit::{AuditReport, audit};
pub use produce::{Producer, produce};
pub use runner::{RunSummary, run_stage};
pub use shutdown::shutdown_signal;
