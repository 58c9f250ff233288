//! The steps of a stage that are timed, and one histogram per step.

use std::time::Duration;

use crate::LatencyHistogram;

/// A timed step of handling one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Avro bytes to a record.
    Decode,
    /// Intake validation and de-duplication (consumer).
    Validate,
    /// Applying an interaction to the customer's features (feature-aggregator).
    FeatureUpdate,
    /// Choosing the next best action (model-updater).
    Decision,
    /// Joining an outcome and updating the model (model-updater).
    LearningUpdate,
    /// A record to Avro bytes.
    Encode,
    /// The whole of `Stage::process` for one record.
    Process,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 7] = [
        Step::Decode,
        Step::Validate,
        Step::FeatureUpdate,
        Step::Decision,
        Step::LearningUpdate,
        Step::Encode,
        Step::Process,
    ];

    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Step::Decode => "decode",
            Step::Validate => "validate",
            Step::FeatureUpdate => "feature_update",
            Step::Decision => "decision",
            Step::LearningUpdate => "learning_update",
            Step::Encode => "encode",
            Step::Process => "process",
        }
    }
}

/// One latency histogram per [`Step`], owned by the stage that records into it:
/// recording is a plain array write, with no lock and no atomic.
#[derive(Debug, Clone, Default)]
pub struct StageLatencies {
    hists: [LatencyHistogram; Step::ALL.len()],
}

impl StageLatencies {
    /// Records that one `step` took `d`.
    pub fn record(&mut self, step: Step, d: Duration) {
        self.hists[step as usize].record(d);
    }

    /// The histogram of `step`.
    pub fn get(&self, step: Step) -> &LatencyHistogram {
        &self.hists[step as usize]
    }

    /// The steps that recorded anything, with their histograms.
    pub fn recorded(&self) -> impl Iterator<Item = (Step, &LatencyHistogram)> {
        Step::ALL
            .into_iter()
            .map(|s| (s, self.get(s)))
            .filter(|(_, h)| h.count() > 0)
    }
}
