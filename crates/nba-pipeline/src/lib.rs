//! nba's stages as record processors, independent of where records come from.
//!
//! A [`Stage`] takes one input record (topic, partition, offset, key, value bytes)
//! and appends the records it causes to an output list: Avro-encoded values for the
//! next topic, or a [`DeadLetter`] for input it cannot accept. The Kafka shell
//! (`nba-kafka`) runs each stage against a broker; [`LocalPipeline`] wires all three
//! in one process for `nba demo` and backtests. Both run the same code on the same
//! bytes, so they make the same decisions. The demo (simulated customers) is
//! behind the `demo` feature: the stage binaries leave it, and the simulator,
//! out.

mod backtest;
mod dead_letter;
#[cfg(feature = "demo")]
mod demo;
mod local;
mod origin;
mod stages;
mod topic;

pub use backtest::{BacktestConfig, BacktestObserver, BacktestRun, RawRecord, backtest};
pub use dead_letter::{DeadLetter, RecordLimit, headers as dlq_headers};
#[cfg(feature = "demo")]
pub use demo::{
    DemoArm, DemoConfig, DemoReport, demo_latencies, run_demo, run_demo_observed, run_demo_recorded,
};
pub use local::LocalPipeline;
pub use origin::ORIGIN_HEADER;
pub use stages::{
    AggregatorStage, Answers, ConsumerStage, Fit, REQUEST_OFFSET_HEADER, Retention, Stage,
    StageCounters, UpdaterStage,
};
pub use topic::{InputRecord, OutputRecord, Topic, TopicNames};
