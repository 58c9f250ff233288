//! A group that stops making progress is impossible to miss.
//!
//! A member that dies without leaving its group keeps its partitions until
//! the coordinator expires its session and the group rebalances. A
//! coordinator that never does (tansu 0.6.0 rebalances at expiry but keeps
//! the dead member in the group, so its partitions are assigned to it again;
//! see ARCHITECTURE.md) leaves those partitions unread while every live member
//! is well. So every member watches the whole group: every [`WATCH_EVERY`] a
//! client outside the group reads the group's committed offset and the end of
//! each partition of the stage's inputs, and a partition with records to read
//! whose committed offset has not moved for `--group-stall-after` fails
//! `/readyz` on every member, is logged, and counts in
//! `nba_group_stalled_partitions` (`nba_group_lag` has every partition's lag).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::diagnostics::Diagnostics;
use crate::ops::MetricsBoard;
use crate::read::Reader;

/// How often the group's offsets are read.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(5);
/// How long each read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition where the group has records to read and has not moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stall {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) committed: i64,
    pub(crate) end: i64,
    pub(crate) still_for: Duration,
}

impl Stall {
    /// What `/readyz` and the log say.
    pub(crate) fn describe(&self) -> String {
        format!(
            "the group has made no progress on {} partition {} for {} s: its committed offset {} is {} record(s) behind the end {}. \
             The member assigned to it may have died without leaving, and the coordinator not expired it \
             (restarting any member makes the group rebalance), or it may be stuck (see its /readyz and log)",
            self.topic,
            self.partition,
            self.still_for.as_secs(),
            self.committed,
            self.end - self.committed,
            self.end
        )
    }
}

#[derive(Debug)]
struct Seen {
    committed: i64,
    end: i64,
    /// When the committed offset last moved, or was last at the end.
    moved: Instant,
}

/// The group's progress on each partition, from readings of its committed
/// offsets and the partitions' ends.
#[derive(Debug)]
pub(crate) struct GroupProgress {
    stall_after: Duration,
    seen: BTreeMap<(String, i32), Seen>,
}

impl GroupProgress {
    pub(crate) fn new(stall_after: Duration) -> Self {
        Self {
            stall_after,
            seen: BTreeMap::new(),
        }
    }

    /// A reading at `now`: the group's committed offset of `topic[partition]`
    /// (where it would start: the first offset kept, if it has committed
    /// none) and the partition's end.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        committed: i64,
        end: i64,
    ) {
        let seen = self
            .seen
            .entry((topic.to_owned(), partition))
            .or_insert(Seen {
                committed,
                end,
                moved: now,
            });
        // Nothing to read is not a stall, and neither is a commit.
        if committed != seen.committed || committed >= end {
            seen.moved = now;
        }
        seen.committed = committed;
        seen.end = end;
    }

    /// The partitions with records to read whose committed offset has stood
    /// still for at least the stall time at `now`.
    pub(crate) fn stalls(&self, now: Instant) -> Vec<Stall> {
        self.seen
            .iter()
            .filter(|(_, s)| s.end > s.committed)
            .map(|((topic, partition), s)| Stall {
                topic: topic.clone(),
                partition: *partition,
                committed: s.committed,
                end: s.end,
                still_for: now.duration_since(s.moved),
            })
            .filter(|s| s.still_for >= self.stall_after)
            .collect()
    }

    /// Records between the group's committed offset and the end, per partition.
    pub(crate) fn lag(&self) -> BTreeMap<(String, i32), i64> {
        self.seen
            .iter()
            .map(|(k, s)| (k.clone(), (s.end - s.committed).max(0)))
            .collect()
    }
}

/// What the watch last saw, for `/metrics`.
#[derive(Debug, Default, Clone)]
pub(crate) struct GroupReading {
    pub(crate) lag: BTreeMap<(String, i32), i64>,
    pub(crate) stalled: usize,
}

/// The group's progress, read by a thread of its own until dropped.
#[derive(Debug)]
pub(crate) struct GroupWatch {
    latest: Arc<Mutex<GroupReading>>,
    stop: Arc<AtomicBool>,
}

impl GroupWatch {
    /// Starts watching `topics` as read by `client`'s group (a client that
    /// never joins it): stalls go to `board` (for `/readyz`) and the log.
    pub(crate) fn start(
        client: Reader,
        topics: Vec<String>,
        stall_after: Duration,
        board: Arc<MetricsBoard>,
        diagnostics: Diagnostics,
    ) -> anyhow::Result<Self> {
        let latest = Arc::new(Mutex::new(GroupReading::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (Arc::clone(&latest), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("nba-group-watch".into())
            .spawn(move || {
                let mut progress = GroupProgress::new(stall_after);
                let mut told: Vec<(String, i32)> = Vec::new();
                while !stopped.load(Ordering::Relaxed) {
                    match read_group(&client, &topics) {
                        Ok(readings) => {
                            let now = Instant::now();
                            for (topic, partition, committed, end) in readings {
                                progress.observe(now, &topic, partition, committed, end);
                            }
                            let stalls = progress.stalls(now);
                            for s in &stalls {
                                let key = (s.topic.clone(), s.partition);
                                if !told.contains(&key) {
                                    tracing::warn!("{}", s.describe());
                                    told.push(key);
                                }
                            }
                            told.retain(|(t, p)| {
                                stalls.iter().any(|s| &s.topic == t && s.partition == *p)
                            });
                            board.set_group_stalled(stalls.first().map(|s| {
                                let more = stalls.len() - 1;
                                if more == 0 {
                                    s.describe()
                                } else {
                                    format!("{} ({more} other partition(s) too)", s.describe())
                                }
                            }));
                            *shared.lock().unwrap_or_else(|e| e.into_inner()) = GroupReading {
                                lag: progress.lag(),
                                stalled: stalls.len(),
                            };
                        }
                        Err(e) => diagnostics.warn(&format!(
                            "could not read the group's progress (retrying): {e:#}"
                        )),
                    }
                    let next = Instant::now() + WATCH_EVERY;
                    while !stopped.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })?;
        Ok(Self { latest, stop })
    }

    /// What the watch last saw.
    pub(crate) fn reading(&self) -> GroupReading {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for GroupWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every partition of `topics`: (topic, partition, the group's committed
/// offset or the first offset kept, the end).
fn read_group(client: &Reader, topics: &[String]) -> anyhow::Result<Vec<(String, i32, i64, i64)>> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = client.fetch_metadata(Some(topic), READ_TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                list.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = client.committed_offsets(list, READ_TIMEOUT)?;
    let mut readings = Vec::new();
    for e in committed.elements() {
        let (low, high) = client.fetch_watermarks(e.topic(), e.partition(), READ_TIMEOUT)?;
        let at = match e.offset() {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        readings.push((e.topic().to_owned(), e.partition(), at, high));
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_with_records_to_read_and_no_commit_for_the_stall_time_is_stalled() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut g = GroupProgress::new(Duration::from_secs(60));
        // Partition 0 moves; partition 1 stands at 10 of 50; partition 2 is
        // read to its end and has nothing new.
        for s in (0..=120).step_by(5) {
            let s64 = i64::try_from(s).expect("small");
            g.observe(at(s), "raw", 0, s64 * 10, s64 * 10 + 7);
            g.observe(at(s), "raw", 1, 10, 50);
            g.observe(at(s), "raw", 2, 30, 30);
            if s == 55 {
                assert!(g.stalls(at(s)).is_empty(), "not yet 60 s");
            }
        }
        let stalls = g.stalls(at(120));
        assert_eq!(
            stalls,
            vec![Stall {
                topic: "raw".into(),
                partition: 1,
                committed: 10,
                end: 50,
                still_for: Duration::from_secs(120),
            }]
        );
        assert!(
            stalls[0].describe().starts_with(
                "the group has made no progress on raw partition 1 for 120 s: its committed offset 10 is 40 record(s) behind the end 50."
            ),
            "{}",
            stalls[0].describe()
        );
        assert_eq!(g.lag()[&("raw".to_owned(), 1)], 40);
        assert_eq!(g.lag()[&("raw".to_owned(), 2)], 0);

        // A commit ends it. A partition read to its end stands still from
        // the last reading that found it there.
        g.observe(at(125), "raw", 1, 11, 50);
        assert!(g.stalls(at(125)).is_empty());
        g.observe(at(130), "raw", 2, 30, 31);
        assert!(g.stalls(at(175)).is_empty(), "55 s since it was at its end");
        g.observe(at(190), "raw", 2, 30, 31);
        let stalled: Vec<i32> = g.stalls(at(190)).iter().map(|s| s.partition).collect();
        assert_eq!(stalled, [0, 1, 2], "0 unread since 120 s, 1 again, and 2");
    }
}
