//! Durability: broker restarts, leader restarts, whole-cluster restarts from the
//! same data dir, and recovery of a torn segment tail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use logbrook::protocol::control::TopicMetadata;
use logbrook::{ClusterConfig, Consumer, ConsumerConfig, Error, Producer};

const T: Duration = Duration::from_secs(10);

/// Sends records and returns the (value, partition, offset) of each.
async fn send_tracked(
    producer: &mut Producer,
    topic: &str,
    prefix: &str,
    n: usize,
) -> Vec<(String, u32, u64)> {
    let mut out = Vec::new();
    for i in 0..n {
        let v = format!("{prefix}-{i}");
        let md = producer
            .send(topic.into(), None, v.as_str().into())
            .await
            .unwrap_or_else(|e| panic!("send {v}: {e:?}"));
        out.push((v, md.partition, md.offset));
    }
    out
}

fn next_offsets(sent: &[(String, u32, u64)]) -> BTreeMap<u32, u64> {
    let mut next = BTreeMap::new();
    for (_, p, o) in sent {
        let e = next.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    next
}

fn just_values(sent: &[(String, u32, u64)]) -> Vec<String> {
    sent.iter().map(|(v, _, _)| v.clone()).collect()
}

#[async_std::test]
async fn a_broker_restart_keeps_every_record() {
    // No failover while broker 1 is down: its partition must stay unread until it
    // comes back, however slowly this machine polls the other two.
    let mut cluster = start(ClusterConfig {
        broker_timeout: Duration::from_secs(120),
        ..fast_config(3, 3)
    })
    .await;
    let mut producer = common::producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["t"]).await;
    let before = send_tracked(&mut producer, "t", "before", 60).await;
    let meta = topic_meta(&mut producer, "t").await;
    let on = broker_index_of_partitions(&cluster, &meta);
    let (&down_partition, _) = on.iter().find(|(_, b)| **b == 1).unwrap();

    cluster.stop_broker(1).await.unwrap();
    // While broker 1 is down the other partitions are still consumed.
    let partial = poll_until(&mut c, 40, T).await;
    assert!(
        partial.iter().all(|m| m.partition != down_partition),
        "records of the stopped broker's partition were delivered"
    );
    assert_eq!(partial.len(), 40, "{:?}", values(&partial));

    cluster.restart_broker(1).await.unwrap();
    let rest = poll_exactly(&mut c, 20, T).await;
    assert!(rest.iter().all(|m| m.partition == down_partition));
    let mut all = partial;
    all.extend(rest);
    assert_exactly_once(&all, &just_values(&before));
    for m in &all {
        let (_, p, o) = before
            .iter()
            .find(|(v, _, _)| v.as_bytes() == m.value.as_slice())
            .unwrap();
        assert_eq!(
            (m.partition, m.offset),
            (*p, *o),
            "same place after restart"
        );
    }

    // Producing after the restart continues at the right offsets.
    let mut next = next_offsets(&before);
    let after = send_tracked(&mut producer, "t", "after", 30).await;
    for (v, p, o) in &after {
        let e = next.get_mut(p).unwrap();
        assert_eq!(*o, *e, "{v} in partition {p}");
        *e += 1;
    }
    assert_exactly_once(&poll_exactly(&mut c, 30, T).await, &just_values(&after));
    // A brand-new group sees the restarted broker's end offset as its start.
    let mut late = member(&cluster, "late", "late", &["t"]).await;
    let last = send_tracked(&mut producer, "t", "last", 6).await;
    assert_exactly_once(&poll_exactly(&mut late, 6, T).await, &just_values(&last));
}

#[async_std::test]
async fn a_leader_restart_keeps_topics_and_group_positions() {
    leader_restart(true).await;
}

#[async_std::test]
async fn a_leader_restarted_in_place_keeps_topics_and_group_positions() {
    leader_restart(false).await;
}

/// A leader restart, after `stop_leader` (with a downtime in which brokers keep
/// serving) or as one `restart_leader` call.
async fn leader_restart(stop_first: bool) {
    let mut cluster = start(fast_config(3, 3)).await;
    let mut producer = common::producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    producer
        .add_topic_with_partitions("u".into(), 5)
        .await
        .unwrap();
    let topics_before = producer.list_topics().await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["t", "u"]).await;
    let mut other = member(&cluster, "c2", "g", &["t", "u"]).await;
    let first = send_n(&mut producer, "t", "first", 30).await;
    let got = poll_all_until(&mut [&mut c, &mut other], 30, T).await;
    assert_exactly_once(&got.concat(), &first);
    // c2 leaves before the restart: after it, c1 owns everything.
    other.leave_consumer_group().await.unwrap();
    let before_restart = send_n(&mut producer, "u", "before", 5).await;

    let leader_before = cluster.leader_addr();
    let mut during = Vec::new();
    if stop_first {
        cluster.stop_leader().await;
        // A poll without the leader rides through: no records, no error (for the
        // consumer's retry timeout).
        assert_eq!(c.poll().await.unwrap(), vec![], "poll without leader");
        // Brokers keep serving a producer that knows where the partitions are.
        during = send_n(&mut producer, "t", "during", 10).await;
    }
    cluster.restart_leader().await.unwrap();
    assert_eq!(
        cluster.leader_addr(),
        leader_before,
        "restart_leader restarts the leader on its old address"
    );
    let mut fresh = Producer::new(cluster.leader_addr()).await.unwrap();
    let topics_after = fresh.list_topics().await.unwrap();
    let summary = |ts: &[logbrook::protocol::control::TopicMetadata]| {
        ts.iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.topic_id,
                    t.partitions
                        .iter()
                        .map(|p| (p.partition, p.broker_id))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&topics_after), summary(&topics_before));
    let err = fresh.add_topic("t".into()).await.unwrap_err();
    assert!(matches!(err, Error::TopicExists { .. }), "{err:?}");

    let after = send_n(&mut fresh, "u", "after", 10).await;
    let mut expected = before_restart;
    expected.extend(during);
    expected.extend(after);
    let got = poll_exactly(&mut c, expected.len(), T).await;
    assert_exactly_once(&got, &expected);
    let parts: BTreeSet<(String, u32)> = got
        .iter()
        .map(|m| (m.topic.to_string(), m.partition))
        .collect();
    assert!(parts.len() >= 5, "c1 owns every partition: {parts:?}");
}

#[async_std::test]
async fn a_whole_cluster_restarted_from_its_data_dir_keeps_topics_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ClusterConfig {
        data_dir: Some(dir.path().join("data")),
        ..fast_config(3, 3)
    };
    let cluster = start(config()).await;
    let mut producer = common::producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    producer
        .add_topic_with_partitions("u".into(), 2)
        .await
        .unwrap();
    let topics_before = producer.list_topics().await.unwrap();
    let addrs_before = cluster.broker_addrs();
    let mut partial = Consumer::with_config(
        "partial".into(),
        cluster.leader_addr(),
        ConsumerConfig {
            max_poll_records: 20,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    partial.join_consumer_group("g1".into()).await.unwrap();
    partial.subscribe("t".into()).await.unwrap();
    let idle = member(&cluster, "idle", "g2", &["t", "u"]).await;
    let sent_t = send_tracked(&mut producer, "t", "t", 50).await;
    let sent_u = send_tracked(&mut producer, "u", "u", 8).await;
    let first = partial.poll().await.unwrap();
    assert_eq!(first.len(), 20);
    cluster.shutdown().await;
    drop((partial, idle, producer));

    let cluster = start(config()).await;
    let mut producer = common::producer(&cluster).await;
    let topics_after = producer.list_topics().await.unwrap();
    assert_eq!(topics_after.len(), 2);
    for (a, b) in topics_before.iter().zip(&topics_after) {
        assert_eq!((&a.name, a.topic_id), (&b.name, b.topic_id));
        // The replicas stay where they were (leadership may move while restarted
        // brokers catch up, then returns to the preferred replica).
        assert_eq!(
            replica_slots(&addrs_before, a),
            replica_slots(&cluster.broker_addrs(), b)
        );
        assert!(b.partitions.iter().all(|p| p.alive), "{b:?}");
    }
    // g1 continues after its 20 records; g2 gets everything.
    let mut partial = member(&cluster, "partial", "g1", &["t"]).await;
    let rest = poll_exactly(&mut partial, 30, T).await;
    let mut all_t = first;
    all_t.extend(rest);
    assert_exactly_once(&all_t, &just_values(&sent_t));
    let mut idle = member(&cluster, "idle", "g2", &[]).await;
    let got = poll_exactly(&mut idle, 58, T).await;
    let mut expected = just_values(&sent_t);
    expected.extend(just_values(&sent_u));
    assert_exactly_once(&got, &expected);

    // New records continue at the right offsets.
    let mut next = next_offsets(&sent_t);
    let more = send_tracked(&mut producer, "t", "more", 9).await;
    for (v, p, o) in &more {
        let e = next.get_mut(p).unwrap();
        assert_eq!(*o, *e, "{v} in partition {p}");
        *e += 1;
    }
    let got = poll_exactly(&mut partial, 9, T).await;
    assert_exactly_once(&got, &just_values(&more));
    cluster.shutdown().await;
}

fn last_log_file(partition_dir: &std::path::Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop()
        .unwrap_or_else(|| panic!("no .log file in {}", partition_dir.display()))
}

#[async_std::test]
async fn a_torn_segment_tail_is_cut_back_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ClusterConfig {
        data_dir: Some(dir.path().join("data")),
        ..fast_config(1, 1)
    };
    let cluster = start(config()).await;
    let mut producer = common::producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut from_start = member(&cluster, "c", "g", &["t"]).await;
    let sent = send_tracked(&mut producer, "t", "r", 10).await;
    assert_eq!(sent.last().unwrap().2, 9);
    let meta = topic_meta(&mut producer, "t").await;
    let broker = cluster.broker_addrs()[0].clone();
    assert_eq!(end_offset(&broker, "t", 0).await, 10);
    let partition_dir = partitions_root(&cluster, 0)
        .join(format!("t.{}", meta.topic_id))
        .join("0");
    cluster.shutdown().await;
    drop((producer, from_start));

    let log = last_log_file(&partition_dir);
    let len = std::fs::metadata(&log).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);

    let cluster = start(config()).await;
    let broker = cluster.broker_addrs()[0].clone();
    assert_eq!(
        end_offset(&broker, "t", 0).await,
        9,
        "the torn last batch is dropped"
    );
    let producer = common::producer(&cluster).await;
    let md = producer
        .send("t".into(), None, "after-crash".into())
        .await
        .unwrap();
    assert_eq!((md.partition, md.offset), (0, 9));
    let md = producer
        .send("t".into(), None, "after-crash-2".into())
        .await
        .unwrap();
    assert_eq!(md.offset, 10);
    // The group subscribed before the crash reads the 9 whole records and the new ones.
    from_start = member(&cluster, "c", "g", &[]).await;
    let got = poll_exactly(&mut from_start, 11, T).await;
    let mut expected: Vec<String> = just_values(&sent[..9]);
    expected.push("after-crash".into());
    expected.push("after-crash-2".into());
    assert_eq!(values(&got), expected, "in order");
    let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..11).collect::<Vec<_>>());
    let partitions: BTreeSet<u32> = got.iter().map(|m| m.partition).collect();
    assert_eq!(partitions, BTreeSet::from([0]));
    cluster.shutdown().await;
}

/// Each partition's replicas as broker slots (brokers get new ports on a restart).
fn replica_slots(addrs: &[logbrook::ServerId], topic: &TopicMetadata) -> Vec<Vec<usize>> {
    topic
        .partitions
        .iter()
        .map(|p| {
            p.replicas
                .iter()
                .map(|r| addrs.iter().position(|a| a == r).expect("a known broker"))
                .collect()
        })
        .collect()
}
