//! A ring of event-time buckets: the sliding window behind every feature.

use crate::EventTime;

/// An event-time sliding window of `len` buckets, each `width_ms` wide.
///
/// A value recorded at time `t` lands in bucket `t / width_ms`. Reading at time
/// `now` sees the buckets in `(now_bucket - len, now_bucket]`, so old buckets leave
/// the window as event time moves on, with no timer. A bucket slot is reused when
/// a newer bucket needs it; a record older than the oldest bucket still held is
/// refused (the caller decides what to do with it).
#[derive(Debug, Clone)]
pub struct BucketRing<T> {
    width_ms: i64,
    slots: Vec<Option<(i64, T)>>,
}

impl<T: Default> BucketRing<T> {
    /// A window of `len` buckets of `width_ms` milliseconds.
    ///
    /// # Panics
    /// If `len` or `width_ms` is zero: a configuration error caught at start-up.
    pub fn new(len: usize, width_ms: i64) -> Self {
        assert!(
            len > 0 && width_ms > 0,
            "a window needs buckets of positive width"
        );
        Self {
            width_ms,
            slots: std::iter::repeat_with(|| None).take(len).collect(),
        }
    }

    fn bucket_of(&self, t: EventTime) -> i64 {
        t.div_euclid(self.width_ms)
    }

    /// The bucket for time `t`, created (or recycled) if needed; `None` if `t` is
    /// older than the bucket currently occupying its slot.
    pub fn bucket_mut(&mut self, t: EventTime) -> Option<&mut T> {
        let idx = self.bucket_of(t);
        let len = self.slots.len() as i64;
        let slot = &mut self.slots[idx.rem_euclid(len) as usize];
        match slot {
            Some((held, _)) if *held > idx => return None,
            Some((held, _)) if *held == idx => {}
            _ => *slot = Some((idx, T::default())),
        }
        slot.as_mut().map(|(_, v)| v)
    }

    /// The buckets inside the window as seen at time `now`.
    pub fn live(&self, now: EventTime) -> impl Iterator<Item = &T> {
        let now_idx = self.bucket_of(now);
        let oldest = now_idx - self.slots.len() as i64;
        self.slots.iter().filter_map(move |s| match s {
            Some((idx, v)) if *idx > oldest && *idx <= now_idx => Some(v),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(r: &BucketRing<u32>, now: EventTime) -> u32 {
        r.live(now).sum()
    }

    #[test]
    fn old_buckets_leave_the_window() {
        // 3 buckets of 10 ms: a 30 ms window.
        let mut r = BucketRing::<u32>::new(3, 10);
        *r.bucket_mut(0).expect("fresh") += 1;
        *r.bucket_mut(15).expect("fresh") += 1;
        *r.bucket_mut(25).expect("fresh") += 1;
        assert_eq!(total(&r, 29), 3);
        // At t=30 bucket 0 (0..10 ms) has left the window.
        assert_eq!(total(&r, 30), 2);
        assert_eq!(total(&r, 45), 1);
        assert_eq!(total(&r, 50), 0);
    }

    #[test]
    fn recycled_slot_starts_empty_and_late_records_are_refused() {
        let mut r = BucketRing::<u32>::new(2, 10);
        *r.bucket_mut(5).expect("fresh") += 5;
        // Bucket 2 takes slot 0 from bucket 0.
        *r.bucket_mut(25).expect("fresh") += 1;
        assert_eq!(total(&r, 25), 1);
        // A record for bucket 0 is now too late for the window.
        assert!(r.bucket_mut(1).is_none());
        // Bucket 1 (slot 1) is still free to receive a slightly late record.
        *r.bucket_mut(12).expect("in window") += 2;
        assert_eq!(total(&r, 25), 3);
    }
}
