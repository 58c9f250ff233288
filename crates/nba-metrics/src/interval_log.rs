//! HdrHistogram interval logs: one line per (interval, tag), V2 compressed
//! histograms in base64, as HdrHistogram's `HistogramLogProcessor` reads them.
//! Values (and the max column) are microseconds:
//! `HistogramLogProcessor -outputValueUnitRatio 1000` prints milliseconds.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use crate::LatencyHistogram;

/// Appends intervals to a log: each call writes what every histogram recorded
/// since the previous call.
pub struct IntervalLogWriter<W: Write> {
    out: W,
    base: SystemTime,
    last: Duration,
    previous: HashMap<String, LatencyHistogram>,
}

impl<W: Write> std::fmt::Debug for IntervalLogWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalLogWriter")
            .field("base", &self.base)
            .field("tags", &self.previous.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> IntervalLogWriter<W> {
    /// Starts a log at `base` (the time interval timestamps count from) with
    /// its header lines.
    pub fn new(mut out: W, base: SystemTime, comment: &str) -> io::Result<Self> {
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .with_base_time(base)
            .with_start_time(base)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(io::Error::other)?;
        Ok(Self {
            out,
            base,
            last: Duration::ZERO,
            previous: HashMap::new(),
        })
    }

    /// Writes one interval ending at `now`: for each `(tag, histogram)`, the
    /// values recorded since the last call (histograms are cumulative). Tags
    /// must not contain `,` or whitespace.
    pub fn write_interval<'a>(
        &mut self,
        now: SystemTime,
        histograms: impl IntoIterator<Item = (String, &'a LatencyHistogram)>,
    ) -> io::Result<()> {
        let end = now.duration_since(self.base).unwrap_or(self.last);
        let start = self.last;
        let mut serializer = V2DeflateSerializer::new();
        // The builder only writes the header lines if told to; a writer over
        // our stream with no comments appends interval lines.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut serializer)
            .map_err(io::Error::other)?;
        for (tag, h) in histograms {
            let delta = match self.previous.get(&tag) {
                Some(p) => h.since(p),
                None => h.clone(),
            };
            if delta.count() > 0 {
                let t = Tag::new(&tag)
                    .ok_or_else(|| io::Error::other(format!("{tag} is not a valid log tag")))?;
                writer
                    .write_histogram(delta.histogram(), start, end.saturating_sub(start), Some(t))
                    .map_err(|e| io::Error::other(format!("{e:?}")))?;
            }
            self.previous.insert(tag, h.clone());
        }
        self.last = end;
        self.out.flush()
    }
}

/// One interval of one tag read back from a log.
#[derive(Debug, Clone)]
pub struct LoggedInterval {
    /// The tag (which stage and step, in nba's logs).
    pub tag: String,
    /// Start, from the log's base time.
    pub start: Duration,
    /// Length.
    pub duration: Duration,
    /// The values recorded in it, µs.
    pub histogram: LatencyHistogram,
}

/// Reads every interval of a log; an error names the line that is not one.
pub fn read_interval_log(bytes: &[u8]) -> Result<Vec<LoggedInterval>, String> {
    let mut out = Vec::new();
    let mut deserializer = Deserializer::new();
    for (i, entry) in IntervalLogIterator::new(bytes).enumerate() {
        let entry =
            entry.map_err(|e| format!("entry {}: not an interval log line ({e:?})", i + 1))?;
        let LogEntry::Interval(h) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .map_err(|e| format!("entry {}: bad base64 ({e})", i + 1))?;
        let hist = deserializer
            .deserialize::<u64, _>(&mut raw.as_slice())
            .map_err(|e| format!("entry {}: bad histogram ({e:?})", i + 1))?;
        out.push(LoggedInterval {
            tag: h.tag().map(|t| t.as_str().to_owned()).unwrap_or_default(),
            start: h.start_timestamp(),
            duration: h.duration(),
            histogram: LatencyHistogram::from_histogram(hist),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip_with_their_percentiles() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut log = Vec::new();
        let mut h = LatencyHistogram::new();
        {
            let mut w = IntervalLogWriter::new(&mut log, base, "test").expect("header");
            for us in 1..=1_000 {
                h.record(Duration::from_micros(us));
            }
            w.write_interval(
                base + Duration::from_secs(10),
                [("a.decision".to_owned(), &h)],
            )
            .expect("written");
            h.record(Duration::from_millis(50));
            w.write_interval(
                base + Duration::from_secs(20),
                [("a.decision".to_owned(), &h)],
            )
            .expect("written");
        }
        let text = String::from_utf8(log.clone()).expect("text");
        assert!(text.contains("#[StartTime: 1800000000"), "{text}");
        let read = read_interval_log(&log).expect("reads");
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].tag, "a.decision");
        assert_eq!(read[0].histogram.count(), 1_000);
        assert_eq!(read[0].histogram.quantile_micros(0.99), 990);
        assert_eq!(
            read[1].histogram.count(),
            1,
            "only the second interval's value"
        );
        assert_eq!(read[1].start, Duration::from_secs(10));
        assert!(read_interval_log(b"not,a,log\n").is_err());
    }
}
