//! Wall-clock timing helpers: run a closure under a stopwatch, keep the best of several runs,
//! collect per-operation latencies and turn counts into rates.
//!
//! Everything here is pure bookkeeping around [`std::time::Instant`]; nothing is asserted about
//! the numbers (timings are reported, never checked).

use std::time::{Duration, Instant};

/// Runs `f` once and returns its result with the wall-clock time it took.
pub fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// Runs a measured workload `runs` times (at least once) and keeps the shortest duration, so a
/// run disturbed by a neighbour on the machine does not decide the result. Stops at the first
/// error.
pub fn best_of<E>(runs: u32, mut f: impl FnMut() -> Result<Duration, E>) -> Result<Duration, E> {
    let mut best = f()?;
    for _ in 1..runs {
        best = best.min(f()?);
    }
    Ok(best)
}

/// Operations per second; zero when nothing measurable elapsed.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Per-operation latencies of one measured run (for example, one sample per commit).
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    samples: Vec<Duration>,
    sorted: bool,
}

impl Latencies {
    /// An empty set with room for `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Latencies {
        Latencies {
            samples: Vec::with_capacity(capacity),
            sorted: true,
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, sample: Duration) {
        self.samples.push(sample);
        self.sorted = false;
    }

    /// Number of samples recorded.
    pub fn count(&self) -> usize {
        self.samples.len()
    }

    /// Sum of all samples.
    pub fn total(&self) -> Duration {
        self.samples.iter().sum()
    }

    /// The sample at quantile `q` (0.0 ..= 1.0, nearest rank); zero when empty.
    pub fn quantile(&mut self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        let last = self.samples.len() - 1;
        let rank = (q.clamp(0.0, 1.0) * last as f64).round() as usize;
        self.samples[rank.min(last)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_of_keeps_the_shortest_run_and_runs_at_least_once() {
        // Proves best_of returns the minimum over all runs and treats 0 runs as 1.
        let mut durations = vec![30u64, 10, 20].into_iter();
        let best = best_of::<()>(3, || {
            Ok(Duration::from_millis(durations.next().unwrap_or(99)))
        });
        assert_eq!(best, Ok(Duration::from_millis(10)));
        let mut calls = 0;
        let once = best_of::<()>(0, || {
            calls += 1;
            Ok(Duration::from_millis(5))
        });
        assert_eq!((once, calls), (Ok(Duration::from_millis(5)), 1));
    }

    #[test]
    fn best_of_stops_at_the_first_error() {
        // Proves an error in any run is returned and no further runs happen.
        let mut calls = 0;
        let result = best_of(5, || {
            calls += 1;
            if calls == 2 {
                Err("boom")
            } else {
                Ok(Duration::from_millis(1))
            }
        });
        assert_eq!((result, calls), (Err("boom"), 2));
    }

    #[test]
    fn quantiles_use_nearest_rank_over_sorted_samples() {
        // Proves quantile sorts lazily and picks the nearest-rank sample at the ends and middle.
        let mut latencies = Latencies::with_capacity(5);
        for ms in [5u64, 1, 4, 2, 3] {
            latencies.record(Duration::from_millis(ms));
        }
        assert_eq!(latencies.count(), 5);
        assert_eq!(latencies.total(), Duration::from_millis(15));
        assert_eq!(latencies.quantile(0.0), Duration::from_millis(1));
        assert_eq!(latencies.quantile(0.5), Duration::from_millis(3));
        assert_eq!(latencies.quantile(1.0), Duration::from_millis(5));
        assert_eq!(Latencies::default().quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn per_second_handles_zero_elapsed() {
        // Proves rates are count / seconds and a zero duration yields 0 instead of infinity.
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(500, Duration::ZERO), 0.0);
    }
}
