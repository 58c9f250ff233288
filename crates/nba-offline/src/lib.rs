//! nba's offline work, for the data scientist rather than the stream: what
//! a candidate policy would have earned on recorded decisions, read back
//! from a recording or scored from a file of probabilities computed
//! elsewhere; the Open Bandit Dataset as a public testbed; and the
//! backtest's HTML report.
//!
//! The `nba` binary's `backtest` and `obd` commands are thin shells over
//! this crate: they parse flags, call it and print. The estimators
//! themselves live in `nba_core::estimators`, next to the live engine that
//! logs the propensities they weight.

mod candidate;
mod evaluate;
mod given;
pub mod obd;
mod recording;
mod report;

pub use candidate::{CandidateSpec, DEFAULT_CANDIDATES};
pub use evaluate::{
    CandidateEstimates, CandidateLearning, CandidatePolicy, DecisionLog, Evaluation,
    evaluate_candidates,
};
pub use given::GivenProbabilities;
pub use recording::{InputFormat, LoggedDecisions, RecordingOut, raw_records};
pub use report::backtest_report_html;
