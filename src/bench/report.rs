//! Measurements of a benchmark run and their printing.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::stages::StageLatency;

/// Throughput and latency of one run.
pub struct Report {
    name: &'static str,
    record_size: usize,
    records: u64,
    elapsed: Duration,
    /// Latencies in microseconds (1 µs to 1 h, 3 significant digits).
    latency_us: Histogram<u64>,
    /// Where the latency went, stage by stage (`bench e2e --stages`).
    stages: Vec<StageLatency>,
}

impl Report {
    /// An empty report.
    pub fn new(name: &'static str, record_size: usize) -> Report {
        // Constant, valid bounds: this cannot fail.
        let latency_us =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Report {
            name,
            record_size,
            records: 0,
            elapsed: Duration::ZERO,
            latency_us,
            stages: Vec::new(),
        }
    }

    /// Adds the stage-by-stage breakdown (see [`crate::stages`]).
    pub fn set_stages(&mut self, stages: Vec<StageLatency>) {
        self.stages = stages;
    }

    /// Adds one latency sample.
    pub fn record_latency(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, self.latency_us.high());
        // Within bounds by the clamp, so this cannot fail.
        let _ = self.latency_us.record(us);
    }

    /// Sets the totals.
    pub fn finish(&mut self, records: u64, elapsed: Duration) {
        self.records = records;
        self.elapsed = elapsed;
    }

    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Megabytes (10^6 bytes) of record values per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.records_per_sec() * self.record_size as f64 / 1e6
    }

    /// A latency percentile in microseconds.
    pub fn latency_percentile_us(&self, percentile: f64) -> u64 {
        self.latency_us.value_at_percentile(percentile)
    }

    /// The report as one JSON object (for scripts that collect results).
    pub fn to_json(&self) -> serde_json::Value {
        let curve: Vec<[f64; 2]> = [
            50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
        ]
        .iter()
        .map(|p| [*p, self.latency_percentile_us(*p) as f64])
        .collect();
        let stages: Vec<serde_json::Value> = self
            .stages
            .iter()
            .map(|s| {
                serde_json::json!({
                    "from": s.from.name(),
                    "to": s.to.name(),
                    "records": s.records,
                    "p50_us": s.p50_us,
                    "p90_us": s.p90_us,
                    "p99_us": s.p99_us,
                })
            })
            .collect();
        serde_json::json!({
            "benchmark": self.name,
            "stages": stages,
            "records": self.records,
            "record_size": self.record_size,
            "seconds": self.elapsed.as_secs_f64(),
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "latency_us": {
                "curve": curve,
                "p50": self.latency_percentile_us(50.0),
                "p99": self.latency_percentile_us(99.0),
                "p99.9": self.latency_percentile_us(99.9),
                "max": self.latency_us.max(),
                "samples": self.latency_us.len(),
            },
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} records of {} B in {:.3} s: {:.0} records/s, {:.1} MB/s; latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            self.name,
            self.records,
            self.record_size,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec(),
            self.latency_percentile_us(50.0),
            self.latency_percentile_us(99.0),
            self.latency_percentile_us(99.9),
            self.latency_us.max(),
        )?;
        for s in &self.stages {
            write!(
                f,
                "\n  {:>18} -> {:<18} p50 {:>7.0} µs  p90 {:>7.0} µs  p99 {:>7.0} µs  ({} records)",
                s.from.name(),
                s.to.name(),
                s.p50_us,
                s.p90_us,
                s.p99_us,
                s.records,
            )?;
        }
        Ok(())
    }
}

/// Prints a progress line to stderr every interval.
pub struct Progress {
    every: Duration,
    start: Instant,
    last: Instant,
    count: u64,
    /// `count` when the clock was last read.
    checked_at: u64,
}

/// Records between two looks at the clock (a clock read per record costs a
/// fast producer loop several percent).
const PROGRESS_CHECK_EVERY: u64 = 1024;

impl Progress {
    /// Prints every `every` (never if zero).
    pub fn new(every: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            every,
            start: now,
            last: now,
            count: 0,
            checked_at: 0,
        }
    }

    /// Counts `n` more records; prints if an interval passed.
    pub fn tick(&mut self, n: u64) {
        self.count += n;
        if self.every.is_zero() || self.count - self.checked_at < PROGRESS_CHECK_EVERY {
            return;
        }
        self.checked_at = self.count;
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "  {:>12} records, {:>10.0} records/s so far",
            self.count,
            self.count as f64 / secs
        );
    }
}
