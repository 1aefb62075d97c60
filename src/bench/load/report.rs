//! The result of a load run: its checks, its printing and its JSON.

use hdrhistogram::Histogram;

use super::process::{Rss, Sample};
use super::{LoadConfig, HEADER_BYTES};

/// The result of a load run.
pub struct LoadReport {
    pub(super) config: LoadConfig,
    pub(super) cluster: String,
    pub(super) load_secs: f64,
    pub(super) drain_secs: f64,
    pub(super) sent: u64,
    pub(super) acked: u64,
    pub(super) failed: u64,
    pub(super) flush_reported: u64,
    /// Sum of the partitions' high watermarks at the end (records in the log).
    pub(super) in_log: Option<u64>,
    pub(super) groups: Vec<GroupResult>,
    pub(super) order_violations: u64,
    pub(super) errors: u64,
    pub(super) error_samples: Vec<String>,
    pub(super) e2e_us: Histogram<u64>,
    pub(super) ack_us: Histogram<u64>,
    pub(super) samples: Vec<Sample>,
    pub(super) load_end_secs: f64,
    pub(super) load_start_secs: f64,
    pub(super) cluster_cpu_secs: Option<f64>,
    pub(super) client_cpu_secs: Option<f64>,
    /// How the spawned cluster stopped (`None`: not spawned).
    pub(super) cluster_exit: Option<Result<(), String>>,
    pub(super) cluster_data_bytes: Option<u64>,
}

/// What one group received, checked.
pub(super) struct GroupResult {
    pub(super) consumers: usize,
    pub(super) delivered: u64,
    pub(super) missing: u64,
    pub(super) first_missing: Option<(u32, u64)>,
    pub(super) duplicates: u64,
    pub(super) unrecognised: u64,
    pub(super) delivered_unacked: u64,
    pub(super) offset_gaps: u64,
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl LoadReport {
    /// Every failed check, in words (empty: the run passed).
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.acked == 0 {
            f.push("no record was acknowledged".to_string());
        }
        if self.errors > 0 {
            f.push(format!("{} client error(s)", self.errors));
        }
        if self.failed > 0 {
            f.push(format!("{} record(s) failed", self.failed));
        }
        if self.order_violations > 0 {
            f.push(format!("{} order violation(s)", self.order_violations));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.missing > 0 {
                let first = g
                    .first_missing
                    .map(|(p, s)| format!(" (first: producer {p} record {s})"))
                    .unwrap_or_default();
                f.push(format!(
                    "group {i}: {} acknowledged record(s) missing{first}",
                    g.missing
                ));
            }
            if g.duplicates > 0 {
                f.push(format!("group {i}: {} duplicate(s)", g.duplicates));
            }
            if g.unrecognised > 0 {
                f.push(format!(
                    "group {i}: {} unrecognised value(s)",
                    g.unrecognised
                ));
            }
            if g.offset_gaps > 0 {
                f.push(format!("group {i}: {} offset(s) skipped", g.offset_gaps));
            }
        }
        if let Some(Err(why)) = &self.cluster_exit {
            f.push(format!("cluster process: {why}"));
        }
        if let (Some(limit), Some(peak)) = (self.config.max_cluster_rss_kib, self.cluster_peak()) {
            if peak.hwm_kib > limit {
                f.push(format!(
                    "cluster peak RSS {:.1} MiB over the limit of {:.1} MiB",
                    mib(peak.hwm_kib),
                    mib(limit)
                ));
            }
        }
        f
    }

    /// True if every check passed.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    fn cluster_peak(&self) -> Option<Rss> {
        self.samples.iter().rev().find_map(|s| s.cluster)
    }

    fn client_last(&self) -> Rss {
        self.samples.last().map(|s| s.client).unwrap_or_default()
    }

    fn cluster_at(&self, secs: f64) -> Option<u64> {
        self.samples
            .iter()
            .rev()
            .find(|s| s.secs <= secs)
            .and_then(|s| s.cluster)
            .map(|r| r.rss_kib)
    }

    fn client_at(&self, secs: f64) -> Option<u64> {
        self.samples
            .iter()
            .rev()
            .find(|s| s.secs <= secs)
            .map(|s| s.client.rss_kib)
    }

    fn acked_per_sec(&self) -> f64 {
        self.acked as f64 / self.load_secs.max(1e-9)
    }

    fn quarter(&self, q: f64) -> f64 {
        self.load_start_secs + (self.load_end_secs - self.load_start_secs) * q
    }

    fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
        serde_json::json!({
            "p50": h.value_at_percentile(50.0),
            "p99": h.value_at_percentile(99.0),
            "p99.9": h.value_at_percentile(99.9),
            "max": h.max(),
            "samples": h.len(),
        })
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.config;
        let groups: Vec<_> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                serde_json::json!({
                    "group": i,
                    "consumers": g.consumers,
                    "delivered": g.delivered,
                    "missing": g.missing,
                    "duplicates": g.duplicates,
                    "unrecognised": g.unrecognised,
                    "offset_gaps": g.offset_gaps,
                    "delivered_unacked": g.delivered_unacked,
                })
            })
            .collect();
        let delivered: u64 = self.groups.iter().map(|g| g.delivered).sum();
        let rss_points: Vec<_> = [0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|q| {
                serde_json::json!({
                    "fraction_of_load": q,
                    "cluster_rss_kib": self.cluster_at(self.quarter(*q)),
                    "client_rss_kib": self.client_at(self.quarter(*q)),
                })
            })
            .collect();
        let samples: Vec<_> = self
            .samples
            .iter()
            .map(|s| {
                serde_json::json!([
                    (s.secs * 10.0).round() / 10.0,
                    s.cluster.map(|r| r.rss_kib),
                    s.client.rss_kib
                ])
            })
            .collect();
        let peak = self.cluster_peak();
        let client = self.client_last();
        serde_json::json!({
            "benchmark": "load",
            "passed": self.passed(),
            "failures": self.failures(),
            "config": {
                "cluster": self.cluster,
                "producers": c.producers,
                "consumers": c.consumers,
                "groups": self.groups.len(),
                "topics": c.topics,
                "partitions": c.partitions,
                "replication_factor": c.replication_factor,
                "rate_per_producer": c.rate,
                "record_size": c.record_size.max(HEADER_BYTES),
                "acks": c.acks.as_str(),
                "duration_secs": c.duration.as_secs_f64(),
                "flush_ms": c.flush_every.as_millis() as u64,
                "linger_ms": c.batch.linger.as_millis() as u64,
            },
            "seconds": {"load": self.load_secs, "drain": self.drain_secs},
            "records": {
                "sent": self.sent,
                "acked": self.acked,
                "failed": self.failed,
                "flush_reported_failed": self.flush_reported,
                "in_log": self.in_log,
            },
            "throughput": {
                "acked_per_sec": self.acked_per_sec(),
                "acked_mb_per_sec": self.acked_per_sec() * c.record_size.max(HEADER_BYTES) as f64 / 1e6,
                "delivered_per_sec": delivered as f64 / (self.load_secs + self.drain_secs).max(1e-9),
            },
            "groups": groups,
            "order_violations": self.order_violations,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "latency_us": {
                "e2e": Self::latency_json(&self.e2e_us),
                "ack": Self::latency_json(&self.ack_us),
            },
            "memory": {
                "cluster_peak_rss_kib": peak.map(|r| r.hwm_kib),
                "cluster_rss_end_kib": peak.map(|r| r.rss_kib),
                "client_peak_rss_kib": client.hwm_kib,
                "client_rss_end_kib": client.rss_kib,
                "during_load": rss_points,
                "samples_secs_cluster_client_kib": samples,
            },
            "cpu_secs": {"cluster": self.cluster_cpu_secs, "client": self.client_cpu_secs},
            "cluster_process": {
                "exit": self.cluster_exit.as_ref().map(|r| match r {
                    Ok(()) => "0".to_string(),
                    Err(e) => e.clone(),
                }),
                "data_dir_bytes": self.cluster_data_bytes,
            },
        })
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        let size = c.record_size.max(HEADER_BYTES);
        writeln!(
            f,
            "load: {} producers x {} rec/s, {} consumers in {} groups, {} topics x {} partitions, {} B records, acks={}, cluster {}",
            c.producers, c.rate, c.consumers, self.groups.len(), c.topics, c.partitions, size, c.acks, self.cluster
        )?;
        writeln!(
            f,
            "records: {} sent, {} acknowledged, {} failed (flush reported {}){} in {:.1} s: {:.0} rec/s, {:.2} MB/s acknowledged; drain {:.1} s",
            self.sent,
            self.acked,
            self.failed,
            self.flush_reported,
            self.in_log.map(|n| format!(", {n} in the log")).unwrap_or_default(),
            self.load_secs,
            self.acked_per_sec(),
            self.acked_per_sec() * size as f64 / 1e6,
            self.drain_secs
        )?;
        for (i, g) in self.groups.iter().enumerate() {
            writeln!(
                f,
                "group {i} ({} consumers): {} delivered, {} missing, {} duplicates, {} offset gaps, {} unrecognised, {} delivered but not acknowledged",
                g.consumers, g.delivered, g.missing, g.duplicates, g.offset_gaps, g.unrecognised, g.delivered_unacked
            )?;
        }
        writeln!(
            f,
            "order violations: {}; client errors: {}",
            self.order_violations, self.errors
        )?;
        for e in &self.error_samples {
            writeln!(f, "  error: {e}")?;
        }
        writeln!(
            f,
            "latency: end-to-end p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; acknowledgement p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.e2e_us.value_at_percentile(50.0) as f64 / 1e3,
            self.e2e_us.value_at_percentile(99.0) as f64 / 1e3,
            self.e2e_us.value_at_percentile(99.9) as f64 / 1e3,
            self.e2e_us.max() as f64 / 1e3,
            self.ack_us.value_at_percentile(50.0) as f64 / 1e3,
            self.ack_us.value_at_percentile(99.0) as f64 / 1e3,
            self.ack_us.max() as f64 / 1e3,
        )?;
        match self.cluster_peak() {
            Some(peak) => {
                let during: Vec<String> = [0.25, 0.5, 0.75, 1.0]
                    .iter()
                    .map(|q| {
                        self.cluster_at(self.quarter(*q))
                            .map(|k| format!("{:.1}", mib(k)))
                            .unwrap_or_else(|| "-".into())
                    })
                    .collect();
                writeln!(
                    f,
                    "cluster memory: peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB; RSS at 1/4, 1/2, 3/4, end of the load: {} MiB",
                    mib(peak.hwm_kib),
                    mib(peak.rss_kib),
                    during.join(", ")
                )?;
            }
            None => writeln!(f, "cluster memory: not measured (no cluster process)")?,
        }
        let client = self.client_last();
        writeln!(
            f,
            "client memory: peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB",
            mib(client.hwm_kib),
            mib(client.rss_kib)
        )?;
        if let (Some(cluster), Some(client)) = (self.cluster_cpu_secs, self.client_cpu_secs) {
            writeln!(f, "cpu: cluster {cluster:.1} s, clients {client:.1} s")?;
        }
        if let Some(exit) = &self.cluster_exit {
            let data = self
                .cluster_data_bytes
                .map(|b| format!(", {:.1} MB of data on disk", b as f64 / 1e6))
                .unwrap_or_default();
            match exit {
                Ok(()) => writeln!(
                    f,
                    "cluster process: stopped by SIGTERM, exit status 0{data}"
                )?,
                Err(e) => writeln!(f, "cluster process: {e}{data}")?,
            }
        }
        let failures = self.failures();
        if failures.is_empty() {
            write!(f, "PASSED")
        } else {
            write!(f, "FAILED: {}", failures.join("; "))
        }
    }
}
