//! The leader service driven directly (no HTTP), with brokers that accept every
//! push and report every partition empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::*;
use crate::protocol::control::OffsetMove;

/// Brokers that take every assignment and whose partitions all end at offset 0.
struct EmptyBrokers;

#[async_trait]
impl BrokerLink for EmptyBrokers {
    async fn push_assignment(
        &self,
        _broker: &ServerId,
        _assignment: &BrokerAssignment,
    ) -> Result<(), Error> {
        Ok(())
    }

    async fn end_offsets(
        &self,
        _broker: &ServerId,
        partitions: &[TopicPartition],
    ) -> Result<Vec<u64>, Error> {
        Ok(vec![0; partitions.len()])
    }
}

#[async_std::test]
async fn a_long_run_of_commits_folds_the_position_journal_into_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 2_000;
    let config = LeaderConfig {
        data_dir: dir.path().to_path_buf(),
        fsync: FsyncPolicy::Never,
        positions_journal_max_bytes: limit,
        ..LeaderConfig::default()
    };
    let leader = Leader::open(config, "127.0.0.1:1".into(), Arc::new(EmptyBrokers)).unwrap();
    leader
        .register_broker(None, "127.0.0.1:2".into())
        .await
        .unwrap();
    let topic = Topic::from("t");
    leader.create_topic(&topic, Some(1), Some(1)).await.unwrap();
    let (group, member) = (ConsumerGroupId::from("g"), ServerId::from("m"));
    let joined = leader
        .join_group(&group, &member, vec![topic.clone()])
        .await
        .unwrap();

    // Each move is a journal line of ~65 bytes: 500 of them pass the limit ~16 times.
    let moves = 500;
    for to in 1..=moves {
        let step = OffsetMove {
            topic: topic.clone(),
            partition: 0,
            from: to - 1,
            to,
        };
        let answer = leader
            .commit(&group, &member, joined.generation, &[step])
            .await
            .unwrap();
        assert_eq!(answer.accepted, vec![true], "move to {to}");
    }
    // The last compaction runs in the background: wait for it to finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    while leader.inner.compacting.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "a compaction never finished");
        crate::deadline::sleep(Duration::from_millis(5)).await;
    }
    let journal = dir.path().join(store::JOURNAL_NAME);
    let journal_len = std::fs::metadata(&journal).unwrap().len();
    assert!(
        journal_len < limit + 200,
        "the journal stays near its limit, not {journal_len} bytes for {moves} moves"
    );
    assert_eq!(journal_len, leader.inner.store.journal_len());

    // What a restarted leader reads: the last move, from snapshot plus journal.
    drop(leader);
    let reloaded = MetadataStore::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(reloaded.groups[&group].position(&topic, 0), Some(moves));
}
