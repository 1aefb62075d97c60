//! How long a broker takes to open its partitions: recovery reads and checks every
//! batch of every segment (header, size, CRC, offsets, index).
//!
//! `cargo run --release --example recovery_time -- [MIB] [PARTITIONS]` writes MIB
//! MiB in all (default 1024) of 100-byte records in 1,000-record batches, spread over
//! PARTITIONS partitions (default 1), into a temporary broker data dir, syncs it, and
//! times three opens (the files in the page cache, as after a process restart): of
//! the one partition's log (`PartitionLog::open`), or of the whole broker
//! (`BrokerService::open`, which opens partitions on all cores at once).
use std::path::Path;
use std::time::{Duration, Instant};

use logbrook::broker::log::{FsyncPolicy, LogConfig, PartitionLog};
use logbrook::broker::service::BrokerService;
use logbrook::names::ServerId;
use logbrook::protocol::batch::BatchBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(Ok(1024), |a| a.parse())?;
    let partitions: u64 = args.next().map_or(Ok(1), |a| a.parse())?.max(1);
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let mut records = 0;
    for p in 0..partitions {
        records += write_partition(&partition_dir(dir.path(), p), &config, mib / partitions)?;
    }
    for run in 1..=3 {
        let start = Instant::now();
        // One partition: its records; a broker: its partitions.
        let (kept, expected) = if partitions == 1 {
            let log = PartitionLog::open(&partition_dir(dir.path(), 0), config.clone())?;
            (log.end_offset(), records)
        } else {
            let broker =
                BrokerService::open(dir.path(), config.clone(), ServerId::from("127.0.0.1:1"))?;
            (broker.hosted().len() as u64, partitions)
        };
        let took = start.elapsed();
        assert_eq!(kept, expected, "recovery kept everything");
        report(run, mib, partitions, records, took);
    }
    Ok(())
}

/// Where a broker keeps partition `p` of the topic `bench` (topic id 1).
fn partition_dir(data_dir: &Path, p: u64) -> std::path::PathBuf {
    data_dir
        .join("partitions")
        .join("bench.1")
        .join(p.to_string())
}

/// Writes `mib` MiB of batches into a new log in `dir`, synced; its record count.
fn write_partition(
    dir: &Path,
    config: &LogConfig,
    mib: u64,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut builder = BatchBuilder::new();
    (0..1000).for_each(|_| builder.push(None, &[7u8; 100], 0));
    let batch = builder.finish();
    let mut log = PartitionLog::open(dir, config.clone())?;
    for _ in 0..(mib << 20) / batch.len() as u64 {
        log.append(&mut batch.clone())?;
    }
    log.sync()?;
    Ok(log.end_offset())
}

fn report(run: u32, mib: u64, partitions: u64, records: u64, took: Duration) {
    println!(
        "open {run}: {mib} MiB in {partitions} partition(s), {records} records in {:.1} ms ({:.2} GB/s)",
        took.as_secs_f64() * 1e3,
        (mib << 20) as f64 / took.as_secs_f64() / 1e9
    );
}
