//! Latency recording and the end-of-run summary of `oxbench`, shaped like etcd's `pkg/report`.
//!
//! Each client owns a [`Recorder`]; the runner merges them once all clients are done, so the hot
//! path takes no lock. Latencies go into an HDR histogram (nanoseconds, 3 significant digits) for
//! percentiles and the bar chart; the fastest, slowest, mean and standard deviation are computed
//! exactly from running sums. Failed requests are counted per error message and never enter the
//! latency figures, as in etcd's report. Formatting is pure: [`Summary::text`] prints etcd's
//! layout (seconds with 4 decimals, a 10-bucket histogram, the 10/25/50/75/90/95/99/99.9th
//! percentiles), [`Summary::json`] the same numbers for scripts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The percentiles etcd's report prints.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
const HISTOGRAM_BUCKETS: usize = 10;
const BAR_WIDTH: u64 = 40;
/// The histogram starts sized for latencies up to an hour and grows beyond if it must.
const MAX_TRACKED_NS: u64 = 3_600_000_000_000;
const BAR_CHAR: char = '∎';

/// Latencies and errors seen by one client (or, merged, by all).
#[derive(Clone, Debug)]
pub struct Recorder {
    histogram: Histogram<u64>,
    fastest_ns: u64,
    slowest_ns: u64,
    sum_secs: f64,
    sum_squares_secs: f64,
    errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let mut histogram = Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
            .expect("1 ns to 1 hour at 3 significant digits are valid bounds");
        histogram.auto(true);
        Recorder {
            histogram,
            fastest_ns: u64::MAX,
            slowest_ns: 0,
            sum_secs: 0.0,
            sum_squares_secs: 0.0,
            errors: BTreeMap::new(),
        }
    }

    /// Records one successful request that took `latency`.
    pub fn success(&mut self, latency: Duration) {
        // At least 1 ns: the histogram's lowest trackable value.
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        if self.histogram.record(ns).is_err() {
            // Only if growing failed: count it as the largest trackable value.
            self.histogram.saturating_record(ns);
        }
        self.fastest_ns = self.fastest_ns.min(ns);
        self.slowest_ns = self.slowest_ns.max(ns);
        let secs = ns as f64 / 1e9;
        self.sum_secs += secs;
        self.sum_squares_secs += secs * secs;
    }

    /// Records one failed request; returns how many times this message has now been seen.
    pub fn failure(&mut self, message: String) -> u64 {
        let count = self.errors.entry(message).or_insert(0);
        *count += 1;
        *count
    }

    pub fn succeeded(&self) -> u64 {
        self.histogram.len()
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Recorder) {
        self.histogram
            .add(&other.histogram)
            .expect("auto-resizing histograms always accept each other's values");
        self.fastest_ns = self.fastest_ns.min(other.fastest_ns);
        self.slowest_ns = self.slowest_ns.max(other.slowest_ns);
        self.sum_secs += other.sum_secs;
        self.sum_squares_secs += other.sum_squares_secs;
        for (message, count) in &other.errors {
            *self.errors.entry(message.clone()).or_insert(0) += count;
        }
    }

    /// The summary of a run of `command` that lasted `elapsed`.
    pub fn summarize(&self, command: &str, elapsed: Duration) -> Summary {
        let succeeded = self.succeeded();
        let total_secs = elapsed.as_secs_f64();
        let (fastest, slowest, average, stddev) = if succeeded == 0 {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            let n = succeeded as f64;
            let average = self.sum_secs / n;
            let variance = (self.sum_squares_secs / n - average * average).max(0.0);
            let fastest = self.fastest_ns as f64 / 1e9;
            let slowest = self.slowest_ns as f64 / 1e9;
            (fastest, slowest, average, variance.sqrt())
        };
        Summary {
            command: command.to_string(),
            succeeded,
            failed: self.failed(),
            total_secs,
            slowest_secs: slowest,
            fastest_secs: fastest,
            average_secs: average,
            stddev_secs: stddev,
            requests_per_sec: if total_secs > 0.0 {
                succeeded as f64 / total_secs
            } else {
                0.0
            },
            histogram: self.buckets(fastest, slowest),
            percentiles: self.percentiles(slowest),
            errors: self.errors.clone(),
        }
    }

    /// etcd's histogram: bounds fastest + i * (slowest - fastest) / 10 for i < 10, then
    /// slowest; each latency counts in the first bucket whose bound is at least it.
    fn buckets(&self, fastest: f64, slowest: f64) -> Vec<(f64, u64)> {
        if self.succeeded() == 0 {
            return Vec::new();
        }
        let step = (slowest - fastest) / HISTOGRAM_BUCKETS as f64;
        let mut buckets: Vec<(f64, u64)> = (0..HISTOGRAM_BUCKETS)
            .map(|i| (fastest + step * i as f64, 0))
            .collect();
        buckets.push((slowest, 0));
        for value in self.histogram.iter_recorded() {
            let secs = (self.histogram.median_equivalent(value.value_iterated_to()) as f64 / 1e9)
                .clamp(fastest, slowest);
            let index = buckets
                .iter()
                .position(|(bound, _)| secs <= *bound)
                .unwrap_or(HISTOGRAM_BUCKETS);
            buckets[index].1 += value.count_at_value();
        }
        buckets
    }

    fn percentiles(&self, slowest: f64) -> Vec<(f64, f64)> {
        if self.succeeded() == 0 {
            return Vec::new();
        }
        PERCENTILES
            .iter()
            .map(|&p| {
                let ns = self.histogram.value_at_quantile(p / 100.0);
                (p, (ns as f64 / 1e9).min(slowest))
            })
            .collect()
    }
}

/// The end-of-run figures; latencies in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub command: String,
    pub succeeded: u64,
    pub failed: u64,
    pub total_secs: f64,
    pub slowest_secs: f64,
    pub fastest_secs: f64,
    pub average_secs: f64,
    pub stddev_secs: f64,
    pub requests_per_sec: f64,
    /// (upper bound, count), 11 entries when anything succeeded.
    pub histogram: Vec<(f64, u64)>,
    /// (percentile, latency).
    pub percentiles: Vec<(f64, f64)>,
    /// Error message → count.
    pub errors: BTreeMap<String, u64>,
}

impl Summary {
    /// etcd's text report.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.succeeded > 0 {
            out += "\nSummary:\n";
            out += &format!("  Total:\t{:.4} secs.\n", self.total_secs);
            out += &format!("  Slowest:\t{:.4} secs.\n", self.slowest_secs);
            out += &format!("  Fastest:\t{:.4} secs.\n", self.fastest_secs);
            out += &format!("  Average:\t{:.4} secs.\n", self.average_secs);
            out += &format!("  Stddev:\t{:.4} secs.\n", self.stddev_secs);
            out += &format!("  Requests/sec:\t{:.4}\n", self.requests_per_sec);
            out += "\nResponse time histogram:\n";
            let max = self.histogram.iter().map(|(_, c)| *c).max().unwrap_or(0);
            for (bound, count) in &self.histogram {
                let bar_len = (count * BAR_WIDTH).checked_div(max).unwrap_or(0);
                let bar: String = std::iter::repeat_n(BAR_CHAR, bar_len as usize).collect();
                out += &format!("  {bound:.4} [{count}]\t|{bar}\n");
            }
            out += "\nLatency distribution:\n";
            for (percentile, secs) in &self.percentiles {
                out += &format!("  {percentile}% in {secs:.4} secs.\n");
            }
        }
        if !self.errors.is_empty() {
            out += "\nError distribution:\n";
            for (message, count) in &self.errors {
                out += &format!("  [{count}]\t{message}\n");
            }
        }
        out
    }

    /// The same figures as one JSON object.
    pub fn json(&self) -> Value {
        json!({
            "command": self.command,
            "requests": self.succeeded + self.failed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "total_secs": self.total_secs,
            "slowest_secs": self.slowest_secs,
            "fastest_secs": self.fastest_secs,
            "average_secs": self.average_secs,
            "stddev_secs": self.stddev_secs,
            "requests_per_sec": self.requests_per_sec,
            "histogram": self.histogram.iter()
                .map(|(bound, count)| json!({"upper_bound_secs": bound, "count": count}))
                .collect::<Vec<_>>(),
            "percentiles": self.percentiles.iter()
                .map(|(p, secs)| json!({"percentile": p, "latency_secs": secs}))
                .collect::<Vec<_>>(),
            "errors": self.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    // Proves merged recorders give exact extremes and mean, and every success lands in a bucket.
    #[test]
    fn summary_of_merged_recorders() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for ms in 1..=50 {
            a.success(millis(ms));
        }
        for ms in 51..=100 {
            b.success(millis(ms));
        }
        b.failure("etcdserver: too many requests".to_string());
        a.merge(&b);
        let summary = a.summarize("put", Duration::from_secs(2));
        assert_eq!((summary.succeeded, summary.failed), (100, 1));
        assert_eq!(summary.fastest_secs, 0.001);
        assert_eq!(summary.slowest_secs, 0.1);
        assert!((summary.average_secs - 0.0505).abs() < 1e-9);
        assert!((summary.requests_per_sec - 50.0).abs() < 1e-9);
        assert_eq!(summary.histogram.len(), HISTOGRAM_BUCKETS + 1);
        assert_eq!(summary.histogram.iter().map(|(_, c)| c).sum::<u64>(), 100);
        let p50 = summary.percentiles[2];
        assert_eq!(p50.0, 50.0);
        assert!((p50.1 - 0.050).abs() < 0.001, "p50 = {}", p50.1);
        let text = summary.text();
        assert!(text.contains("Requests/sec:\t50.0000"), "{text}");
        assert!(text.contains("99.9% in"), "{text}");
        assert!(
            text.contains("[1]\tetcdserver: too many requests"),
            "{text}"
        );
        assert_eq!(summary.json()["failed"], 1);
    }

    // Proves a run where everything failed reports only the errors, without NaN figures.
    #[test]
    fn all_failed_run_has_no_latency_section() {
        let mut recorder = Recorder::new();
        assert_eq!(recorder.failure("boom".to_string()), 1);
        assert_eq!(recorder.failure("boom".to_string()), 2);
        let summary = recorder.summarize("range", Duration::from_secs(1));
        assert!(summary.histogram.is_empty() && summary.percentiles.is_empty());
        assert!(!summary.text().contains("Summary"));
        assert_eq!(summary.json()["errors"]["boom"], 2);
        assert_eq!(summary.average_secs, 0.0);
    }
}
