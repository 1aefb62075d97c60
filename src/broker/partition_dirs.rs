//! Where a broker keeps its partitions on disk, and finding and opening them at start.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::names::Topic;

use super::log::LogConfig;
use super::partition::{Partition, PartitionKey};

/// Where a broker keeps its partitions, under its data dir.
pub(crate) const PARTITIONS_DIR: &str = "partitions";

/// `partitions/<topic>.<topic_id>/<partition>`: the topic id keeps a re-created
/// topic's log apart from the removed one's. Names are validated (`[A-Za-z0-9._-]`,
/// not `.`/`..`), so the path cannot leave the data dir.
pub(crate) fn partition_dir(root: &Path, topic: &Topic, topic_id: u64, partition: u32) -> PathBuf {
    root.join(format!("{topic}.{topic_id}"))
        .join(partition.to_string())
}

/// Every `<topic>.<topic_id>/<partition>` dir under `root`; anything else is ignored.
pub(crate) fn scan_partition_dirs(root: &Path) -> Result<Vec<(PartitionKey, u64, PathBuf)>, Error> {
    let mut found = Vec::new();
    for topic_entry in fs::read_dir(root).map_err(|e| io_error("list", root, e))? {
        let topic_entry = topic_entry.map_err(|e| io_error("list", root, e))?;
        let name = topic_entry.file_name().to_string_lossy().into_owned();
        // Anything not named like ours (a stray file, a half-deleted dir) is ignored.
        let Some((topic, id)) = name.rsplit_once('.') else {
            continue;
        };
        let (Ok(topic), Ok(topic_id)) = (Topic::new(topic), id.parse::<u64>()) else {
            continue;
        };
        let topic_path = topic_entry.path();
        if !topic_path.is_dir() {
            continue;
        }
        for part_entry in fs::read_dir(&topic_path).map_err(|e| io_error("list", &topic_path, e))? {
            let part_entry = part_entry.map_err(|e| io_error("list", &topic_path, e))?;
            let Ok(partition) = part_entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if part_entry.path().is_dir() {
                found.push(((topic.clone(), partition), topic_id, part_entry.path()));
            }
        }
    }
    Ok(found)
}

/// Opens the partitions found at start, as many at once as there are cores:
/// recovery reads and checks each log whole, which costs one core per partition
/// (about 0.2 s per GiB from the page cache). The first failure is returned.
pub(crate) fn open_found(
    found: Vec<(PartitionKey, u64, PathBuf)>,
    config: &LogConfig,
) -> Result<HashMap<PartitionKey, Arc<Partition>>, Error> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(found.len());
    let queue = Mutex::new(found.into_iter());
    let opened = Mutex::new(Vec::new());
    let next = || queue.lock().unwrap_or_else(|p| p.into_inner()).next();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some((key, topic_id, dir)) = next() {
                    let part = Partition::open(&dir, config, topic_id, 0);
                    opened
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((key, part));
                }
            });
        }
    });
    opened
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|(key, part)| part.map(|part| (key, part)))
        .collect()
}

/// Removes the topic dirs left empty by deleted partitions.
pub(crate) fn remove_empty_topic_dirs(root: &Path) {
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            // Fails (and is meant to) when the dir still holds partitions.
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// A filesystem failure on `path` while doing `op`.
pub(crate) fn io_error(op: &str, path: &Path, err: std::io::Error) -> Error {
    Error::Storage {
        reason: format!("cannot {op} {}: {err}", path.display()),
    }
}
