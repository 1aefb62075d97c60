//! A full disk under a running broker: produce fails with a clear storage error
//! (HTTP 500, JSON `"error": "storage"`, the message naming the segment file and
//! the OS error), nothing stored is lost or changed, fetches keep working, and once
//! there is space again the next record gets the offset the refused one would have
//! had.
//!
//! The disk is made full without root: the broker runs with one-byte segments, so
//! every batch rolls to a new segment file named by its base offset, and the name
//! of the next one is taken beforehand by a symlink to /dev/full. The roll opens it
//! like any segment file, and every write to it fails with ENOSPC.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use logbrook::broker::log::LogConfig;
use logbrook::protocol::batch::{self, BatchBuilder};
use logbrook::{Cluster, ClusterConfig, ServerId};

const T: Duration = Duration::from_secs(10);
const PATH: &str = "/partitions/t/0/records";

fn batch_of(value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.push(None, value.as_bytes(), 1_700_000_000_000);
    b.finish()
}

async fn produce(broker: &ServerId, value: &str) -> RawResponse {
    raw_request(broker, "POST", PATH, None, &batch_of(value)).await
}

/// Every record the broker serves from offset 0, as (offset, value).
async fn stored(broker: &ServerId) -> Vec<(u64, String)> {
    let res = raw_request(broker, "GET", &format!("{PATH}?offset=0"), None, b"").await;
    assert_eq!(
        res.status,
        200,
        "fetch: {:?}",
        String::from_utf8_lossy(&res.body)
    );
    let mut out = Vec::new();
    for b in batch::batches(&res.body) {
        for r in batch::records(b.expect("a whole batch")).expect("records") {
            let r = r.expect("a record");
            out.push((
                r.offset as u64,
                String::from_utf8_lossy(r.value).into_owned(),
            ));
        }
    }
    out
}

/// The directory of partition 0 of topic `t` on broker 0.
fn partition_dir(cluster: &Cluster) -> PathBuf {
    let root = partitions_root(cluster, 0);
    let topic = dir_entries(&root)
        .into_iter()
        .find(|name| name.starts_with("t."))
        .unwrap_or_else(|| panic!("no directory of topic t in {}", root.display()));
    root.join(topic).join("0")
}

#[async_std::test]
async fn a_full_disk_fails_produce_with_a_storage_error_and_corrupts_nothing() {
    let full = Path::new("/dev/full");
    if fs::OpenOptions::new().write(true).open(full).is_err() {
        eprintln!("skipped: no writable /dev/full");
        return;
    }
    let outer = tempfile::tempdir().unwrap();
    let mut cluster = start(ClusterConfig {
        data_dir: Some(outer.path().join("data")),
        replication_factor: Some(1),
        // Every batch gets a segment of its own.
        log: LogConfig {
            segment_bytes: 1,
            ..LogConfig::default()
        },
        ..fast_config(1, 1)
    })
    .await;
    producer(&cluster)
        .await
        .add_topic("t".into())
        .await
        .unwrap();
    let broker = cluster.broker_addrs()[0].clone();
    wait_until(T, "the broker leads t/0", || async {
        produce(&broker, "v0").await.status == 200
    })
    .await;
    for (i, value) in ["v1", "v2"].iter().enumerate() {
        let res = produce(&broker, value).await;
        assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.json()["base_offset"], i + 1);
    }
    let before: Vec<(u64, String)> = (0..3).map(|i| (i, format!("v{i}"))).collect();
    assert_eq!(stored(&broker).await, before);

    // The disk fills up: the next segment, 3, can take no byte.
    let dir = partition_dir(&cluster);
    let segment = dir.join("00000000000000000003.log");
    std::os::unix::fs::symlink(full, &segment).unwrap();
    for attempt in 0..2 {
        let res = produce(&broker, "refused").await;
        let what = format!("produce on a full disk, attempt {attempt}");
        assert_json_error(&res, 500, "storage", &what);
        let message = res.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(&segment.display().to_string())
                && message.contains("No space left on device"),
            "{what}: {message}"
        );
        // Nothing changed: the same records at the same offsets, the same end.
        assert_eq!(stored(&broker).await, before, "{what}");
        assert_eq!(end_offset(&broker, "t", 0).await, 3, "{what}");
    }

    // Space again (the segment file is an ordinary file once more): the broker
    // reopens the partition clean and the next record gets offset 3.
    cluster.stop_broker(0).await.unwrap();
    fs::remove_file(&segment).unwrap();
    cluster.restart_broker(0).await.unwrap();
    let broker = cluster.broker_addrs()[0].clone();
    let deadline = Instant::now() + T;
    let answer = loop {
        let res = produce(&broker, "after").await;
        if res.status == 200 {
            break res.json();
        }
        // Until the controller has assigned it the partition again.
        assert_json_error(&res, 421, "not_partition_owner", "produce after restart");
        assert!(
            Instant::now() < deadline,
            "the restarted broker takes no records"
        );
        async_std::task::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(answer["base_offset"], 3, "{answer}");
    let mut after = before;
    after.push((3, "after".to_string()));
    assert_eq!(stored(&broker).await, after);
    assert_eq!(end_offset(&broker, "t", 0).await, 4);
    cluster.shutdown().await;
}
