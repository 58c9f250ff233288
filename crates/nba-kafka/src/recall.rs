//! Reading back the answers a stage published to the requests it is about
//! to read again (see [`Stage::answers`]): after a crash, the model-updater
//! reads its decision requests again from the last committed offset, and
//! must not answer one a second time, perhaps with another action.

use std::time::Instant;

use anyhow::Context;
use nba_pipeline::{Answers, REQUEST_OFFSET_HEADER, Stage, TopicNames};
use rdkafka::{Offset, TopicPartitionList};

use crate::read::{
    Reader, TakenBack, first_offset_with_header_at_least, header_number, input_record,
    partitions_at_start, read_partitions_from,
};

/// Reads the answers topic, assigned, outside the group, never committing.
pub(crate) struct AnswerReader {
    consumer: Reader,
    answers: Answers,
    requests_name: String,
    answers_name: String,
}

impl AnswerReader {
    /// The reader of `answers` through `consumer` (outside the group, not
    /// committing); `None`, said once as a warning, when the answers topic
    /// has another number of partitions than the requests (the answers to a
    /// request partition are then spread over several).
    pub(crate) fn open(
        consumer: Reader,
        names: &TopicNames,
        answers: Answers,
    ) -> anyhow::Result<Option<Self>> {
        let requests_name = names.name(answers.requests).to_owned();
        let answers_name = names.name(answers.answers).to_owned();
        let requests = partitions_at_start(&consumer, &requests_name)?.len();
        let published = partitions_at_start(&consumer, &answers_name)?.len();
        if requests != published {
            tracing::warn!(
                "{answers_name} has {published} partition(s), {requests_name} has {requests}: after a crash, a request read again cannot be matched to the answer it already has and may be answered twice; give both topics the same number of partitions (`nba topics create` does)"
            );
            return Ok(None);
        }
        Ok(Some(Self {
            consumer,
            answers,
            requests_name,
            answers_name,
        }))
    }

    /// The topic of the requests, as named in this deployment.
    pub(crate) fn requests(&self) -> &str {
        &self.requests_name
    }

    /// Gives `stage` the answers published to every request of the
    /// partitions in `committed` (the group's committed offsets of the
    /// requests topic; none means all) at or after its committed offset.
    pub(crate) fn recall<S: Stage>(
        &self,
        committed: &TopicPartitionList,
        stage: &mut S,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for e in committed.elements_for_topic(&self.requests_name) {
            let from = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            let start = first_offset_with_header_at_least(
                &self.consumer,
                &self.answers_name,
                e.partition(),
                REQUEST_OFFSET_HEADER,
                from,
            )?;
            tpl.add_partition_offset(&self.answers_name, e.partition(), Offset::Offset(start))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let mut recalled = TakenBack::default();
        read_partitions_from(&self.consumer, &self.answers_name, &tpl, |m| {
            let said = stage.recall(
                &input_record(self.answers.answers, m),
                header_number(m, REQUEST_OFFSET_HEADER),
            );
            recalled.note(m, said, "recalled");
        })
        .with_context(|| {
            format!(
                "cannot read back {}: after a restart the {} reads the answers it published to the requests it reads again, so as not to answer one twice; give it read access to that topic",
                self.answers_name,
                stage.name()
            )
        })?;
        tracing::info!(
            "recalled {} answer(s) on {} to requests read again, in {:.1} s{}",
            recalled.taken,
            self.answers_name,
            started.elapsed().as_secs_f64(),
            recalled.refusals("recalled")
        );
        Ok(())
    }
}
