//! Copies of an interaction written twice upstream.
//!
//! An upstream stage (the consumer, or an aggregator forwarding an alias's
//! event) that dies between writing its outputs and committing its input
//! reads that input again and writes the same interactions once more, at new
//! offsets of this stage's input. The offset guard of a restored state
//! (`changelog.rs`) cannot see them; their origin can. Each interaction
//! names where it was first read (a topic, a partition, an offset), and one
//! upstream partition's interactions reach one input partition in the order
//! they were read there (one writer at a time, an idempotent producer). So,
//! per input partition and upstream partition, the newest origin applied is
//! enough: an interaction from no later than it, read at a later input
//! offset, is a copy.

/// Where an interaction was first read, before the stage that wrote it to
/// this stage's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The upstream topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// The offset there.
    pub offset: i64,
}

/// The newest origin applied from one upstream partition, and the input
/// offset it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginMark {
    /// The upstream topic.
    pub topic: Box<str>,
    /// Its partition.
    pub partition: i32,
    /// The newest offset applied from it.
    pub offset: i64,
    /// The input offset that interaction was read at.
    pub read_at: i64,
}

/// One input partition's marks, one per upstream partition seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct OriginMarks {
    marks: Vec<OriginMark>,
}

impl OriginMarks {
    /// True if `origin`, read at input offset `read_at`, is a copy of an
    /// interaction applied earlier; otherwise marks it applied.
    ///
    /// An interaction read again at or before the mark's own input offset
    /// (input redelivered after a restart) is not a copy: the offset guard
    /// of the restored state handles it.
    pub(super) fn is_copy(&mut self, origin: &Origin<'_>, read_at: i64) -> bool {
        let found = self
            .marks
            .iter_mut()
            .find(|m| m.partition == origin.partition && *m.topic == *origin.topic);
        match found {
            Some(m) if origin.offset <= m.offset && read_at > m.read_at => true,
            Some(m) => {
                m.offset = m.offset.max(origin.offset);
                m.read_at = m.read_at.max(read_at);
                false
            }
            None => {
                self.marks.push(OriginMark {
                    topic: origin.topic.into(),
                    partition: origin.partition,
                    offset: origin.offset,
                    read_at,
                });
                false
            }
        }
    }

    /// Takes back a mark written with a changelog record: the newer of it
    /// and the one kept.
    pub(super) fn restore(&mut self, mark: OriginMark) {
        let found = self
            .marks
            .iter_mut()
            .find(|m| m.partition == mark.partition && m.topic == mark.topic);
        match found {
            Some(m) => {
                m.offset = m.offset.max(mark.offset);
                m.read_at = m.read_at.max(mark.read_at);
            }
            None => self.marks.push(mark),
        }
    }

    /// The marks, in the order their upstream partitions were first seen.
    pub(super) fn marks(&self) -> &[OriginMark] {
        &self.marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(partition: i32, offset: i64) -> Origin<'static> {
        Origin {
            topic: "raw",
            partition,
            offset,
        }
    }

    #[test]
    fn an_interaction_written_again_upstream_is_a_copy() {
        let mut marks = OriginMarks::default();
        for (read_at, offset) in [(10, 100), (11, 101), (12, 102)] {
            assert!(!marks.is_copy(&from(0, offset), read_at));
        }
        // The upstream stage died before committing 101: it writes 101 and
        // 102 again, then goes on with 103.
        assert!(marks.is_copy(&from(0, 101), 13));
        assert!(marks.is_copy(&from(0, 102), 14));
        assert!(!marks.is_copy(&from(0, 103), 15));
    }

    #[test]
    fn partitions_and_topics_are_marked_apart() {
        let mut marks = OriginMarks::default();
        assert!(!marks.is_copy(&from(0, 100), 1));
        assert!(!marks.is_copy(&from(1, 5), 2));
        let forwarded = Origin {
            topic: "interactions",
            partition: 0,
            offset: 7,
        };
        assert!(!marks.is_copy(&forwarded, 3));
        assert!(!marks.is_copy(&from(1, 6), 4));
        assert!(marks.is_copy(&from(1, 5), 5));
        assert!(marks.is_copy(&forwarded, 6));
        assert_eq!(marks.marks().len(), 3);
    }

    #[test]
    fn input_read_again_after_a_restart_is_not_a_copy() {
        let mut marks = OriginMarks::default();
        marks.restore(OriginMark {
            topic: "raw".into(),
            partition: 0,
            offset: 102,
            read_at: 12,
        });
        // The input is read again from its commit at 11: the same records,
        // at the same offsets.
        assert!(!marks.is_copy(&from(0, 101), 11));
        assert!(!marks.is_copy(&from(0, 102), 12));
        // A copy written after them is still one.
        assert!(marks.is_copy(&from(0, 101), 13));
    }

    #[test]
    fn a_restored_mark_keeps_the_newer() {
        let mut marks = OriginMarks::default();
        assert!(!marks.is_copy(&from(0, 200), 20));
        marks.restore(OriginMark {
            topic: "raw".into(),
            partition: 0,
            offset: 150,
            read_at: 15,
        });
        assert_eq!(marks.marks()[0].offset, 200);
        assert_eq!(marks.marks()[0].read_at, 20);
    }
}
