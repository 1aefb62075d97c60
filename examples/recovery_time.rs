//! How long a broker takes to open a partition of a given size: recovery reads
//! and checks every batch of every segment (header, size, CRC, offsets, index).
//!
//! `cargo run --release --example recovery_time -- [MIB]` writes a partition of
//! MIB MiB (default 1024) of 100-byte records in 1,000-record batches into a
//! temporary directory, syncs it, and times `PartitionLog::open` three times (the
//! files in the page cache, as after a process restart).
use std::time::Instant;

use logbrook::broker::log::{FsyncPolicy, LogConfig, PartitionLog};
use logbrook::protocol::batch::BatchBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1024,
    };
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let mut builder = BatchBuilder::new();
    (0..1000).for_each(|_| builder.push(None, &[7u8; 100], 0));
    let batch = builder.finish();
    let mut log = PartitionLog::open(dir.path(), config.clone())?;
    let batches = (mib << 20) / batch.len() as u64;
    for _ in 0..batches {
        log.append(&mut batch.clone())?;
    }
    log.sync()?;
    let records = log.end_offset();
    drop(log);
    for run in 1..=3 {
        let start = Instant::now();
        let log = PartitionLog::open(dir.path(), config.clone())?;
        let took = start.elapsed();
        assert_eq!(log.end_offset(), records, "recovery kept every record");
        println!(
            "open {run}: {mib} MiB, {records} records in {:.1} ms ({:.2} GB/s)",
            took.as_secs_f64() * 1e3,
            (mib << 20) as f64 / took.as_secs_f64() / 1e9
        );
    }
    Ok(())
}
