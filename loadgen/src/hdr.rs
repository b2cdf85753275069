//! HdrHistogram output formats: the `.hgrm` percentile distribution (as wrk2 `-L` and HdrHistogram's
//! `outputPercentileDistribution` print it), the `.hlog` interval log (HistogramLogProcessor's input) and the
//! V2-compressed base64 form embedded in the JSON report.
//!
//! Histograms hold nanoseconds; `.hgrm` prints milliseconds, `.hlog` writes the interval max in milliseconds
//! (HistogramLogProcessor's default unit ratio, nanoseconds to milliseconds).

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Nanoseconds per millisecond: the `.hgrm`/`.hlog` value unit ratio.
pub const NS_PER_MS: f64 = 1_000_000.0;

/// The histogram as HdrHistogram V2 (deflate-compressed) bytes, base64 (the `HISTFAAA…` form).
pub fn to_base64(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
        Err(_) => String::new(),
    }
}

/// Decodes [`to_base64`]'s output.
pub fn from_base64(s: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .ok()
}

/// The percentile distribution text, values in milliseconds, five ticks per half distance (as wrk2 -L).
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / NS_PER_MS;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / NS_PER_MS,
            h.stdev() / NS_PER_MS,
            h.max() as f64 / NS_PER_MS,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h)
    );
    out
}

/// The histogram's sub-bucket count, as HdrHistogram's `outputPercentileDistribution` prints it: the power of
/// two that holds single-unit resolution up to 2 × 10^sigfig (2048 for 3 significant digits). The crate keeps
/// it private; this is its formula.
pub fn sub_bucket_count(h: &Histogram<u64>) -> u64 {
    let largest = 2.0 * 10f64.powi(i32::from(h.sigfig()));
    1u64 << (largest.log2().ceil() as u32)
}

/// Writes an HdrHistogram interval log incrementally: a header at creation (once), then one line per interval.
pub struct HlogWriter<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    /// Reused for each interval's serialized histogram.
    buf: Vec<u8>,
}

impl<W: Write> HlogWriter<W> {
    /// Writes the header: comments, `StartTime`/`BaseTime` (both the measurement start, so interval
    /// timestamps are seconds since it), the format version and the legend line.
    pub fn new(mut out: W, start: SystemTime, comment: &str) -> io::Result<Self> {
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(NS_PER_MS)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(io::Error::other)?;
        writeln!(out, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
        Ok(HlogWriter {
            out,
            serializer,
            buf: Vec::new(),
        })
    }

    /// Appends one interval: it began `start` after the log's base time and lasted `length`.
    pub fn write(
        &mut self,
        h: &Histogram<u64>,
        start: Duration,
        length: Duration,
    ) -> io::Result<()> {
        // The line HdrHistogram's writers print: start, length, max ÷ MaxValueDivisor, each with 3 decimals,
        // then the V2-compressed histogram in base64. Written here rather than by a fresh crate writer per
        // interval, which would repeat the `#[MaxValueDivisor …]` header line before every interval.
        self.buf.clear();
        self.serializer
            .serialize(h, &mut self.buf)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        writeln!(
            self.out,
            "{:.3},{:.3},{:.3},{}",
            start.as_secs_f64(),
            length.as_secs_f64(),
            h.max() as f64 / NS_PER_MS,
            base64::engine::general_purpose::STANDARD.encode(&self.buf)
        )
    }

    /// Appends a comment line `#text` (log readers skip it). `text` must hold no newline.
    pub fn comment(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "#{}", text.replace('\n', " "))
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::new_histogram;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap();
        }
        h
    }

    #[test]
    fn base64_round_trips() {
        let h = sample();
        let back = from_base64(&to_base64(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert!(
            to_base64(&h).starts_with("HISTFAAA"),
            "V2 compressed cookie"
        );
    }

    #[test]
    fn hgrm_ends_with_the_whole_count_and_prints_milliseconds() {
        let text = percentile_distribution(&sample());
        let last_row = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        let cols: Vec<&str> = last_row.split_whitespace().collect();
        assert_eq!(cols[1], "1.000000000000");
        assert_eq!(cols[2], "1000");
        let max_ms: f64 = cols[0].parse().unwrap();
        assert!((max_ms - 1.0).abs() < 0.01, "max 1 ms, printed {max_ms}");
        assert!(text.contains("Total count    =         1000"));
        assert!(
            text.contains("SubBuckets     =         2048"),
            "3 significant digits: {text}"
        );
    }

    #[test]
    fn hlog_reads_back_with_the_crate_reader() {
        let mut buf = Vec::new();
        let mut w = HlogWriter::new(&mut buf, SystemTime::now(), "test").unwrap();
        w.write(&sample(), Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        w.write(&sample(), Duration::from_secs(1), Duration::from_secs(1))
            .unwrap();
        drop(w);
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(text.matches("#[MaxValueDivisor").count(), 1, "{text}");
        let mut total = 0;
        for e in IntervalLogIterator::new(&buf) {
            if let LogEntry::Interval(i) = e.unwrap() {
                total += from_base64(i.encoded_histogram()).unwrap().len();
            }
        }
        assert_eq!(total, 2000);
    }
}
