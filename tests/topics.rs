//! Topics: placement over live brokers, create/remove, unknown and invalid names.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use logbrook::{ClusterConfig, Consumer, Error, Producer, Topic, Value};

const T: Duration = Duration::from_secs(5);

fn per_broker(meta: &logbrook::protocol::control::TopicMetadata) -> BTreeMap<u32, usize> {
    let mut load = BTreeMap::new();
    for p in &meta.partitions {
        *load.entry(p.broker_id).or_insert(0) += 1;
    }
    load
}

#[async_std::test]
async fn partitions_are_spread_evenly_over_the_brokers() {
    let cluster = start(unreplicated(fast_config(3, 3))).await;
    let mut producer = producer(&cluster).await;

    producer.add_topic("three".into()).await.unwrap();
    let three = topic_meta(&mut producer, "three").await;
    assert_eq!(three.partitions.len(), 3, "default partition count");
    let numbers: Vec<u32> = three.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(numbers, vec![0, 1, 2]);
    let load = per_broker(&three);
    assert_eq!(load.len(), 3, "every broker hosts a partition: {three:?}");
    assert!(load.values().all(|n| *n == 1), "{load:?}");

    producer
        .add_topic_with_partitions("six".into(), 6)
        .await
        .unwrap();
    let six = topic_meta(&mut producer, "six").await;
    assert_eq!(six.partitions.len(), 6);
    let load = per_broker(&six);
    assert_eq!(load.len(), 3, "{six:?}");
    assert!(load.values().all(|n| *n == 2), "{load:?}");

    // The brokers named in the metadata really host the partitions: each has the
    // partition's directory, and the others do not.
    for meta in [&three, &six] {
        let on = broker_index_of_partitions(&cluster, meta);
        for (partition, broker) in on {
            for b in 0..3 {
                let dir = partitions_root(&cluster, b)
                    .join(format!("{}.{}", meta.name, meta.topic_id))
                    .join(partition.to_string());
                assert_eq!(
                    dir.is_dir(),
                    b == broker,
                    "{} partition {partition} is on broker {broker}; {} exists: {}",
                    meta.name,
                    dir.display(),
                    dir.is_dir()
                );
            }
        }
    }
    // Every record sent to each partition is accepted by its broker.
    for p in 0..6u32 {
        let key = (0..1000)
            .map(|k| format!("k{k}"))
            .find(|k| logbrook::client::partitioner::partition_for_key(k.as_bytes(), 6) == p)
            .unwrap();
        let md = producer
            .send("six".into(), Some(key.as_str().into()), "v".into())
            .await
            .unwrap();
        assert_eq!(md.partition, p);
        assert_eq!(md.offset, 0);
    }
}

#[async_std::test]
async fn partitions_go_only_to_live_brokers() {
    let mut cluster = start(unreplicated(short_timeout_config(3, 3))).await;
    let mut producer = producer(&cluster).await;
    cluster.stop_broker(2).await.unwrap();
    let dead = cluster.broker_addrs()[2].clone();
    let leader = cluster.leader_addr();
    wait_until(
        Duration::from_secs(5),
        "the leader sees broker 2 dead",
        || {
            let (leader, dead) = (leader.clone(), dead.clone());
            async move {
                let res = raw_request(&leader, "GET", "/metadata", None, b"").await;
                let v = res.json();
                v["brokers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b["addr"] == dead.as_str() && b["alive"] == false)
            }
        },
    )
    .await;
    producer
        .add_topic_with_partitions("live".into(), 4)
        .await
        .unwrap();
    let meta = topic_meta(&mut producer, "live").await;
    let on = broker_index_of_partitions(&cluster, &meta);
    let mut load = BTreeMap::new();
    for b in on.values() {
        *load.entry(*b).or_insert(0) += 1;
    }
    assert_eq!(
        load,
        BTreeMap::from([(0, 2), (1, 2)]),
        "4 partitions over the 2 live brokers: {meta:?}"
    );
    assert!(meta.partitions.iter().all(|p| p.alive));
    // Unkeyed sends all succeed and reach all 4 partitions.
    let mut seen = BTreeMap::new();
    for i in 0..8 {
        let md = producer
            .send("live".into(), None, format!("v{i}").into())
            .await
            .unwrap();
        *seen.entry(md.partition).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

/// Brokers are declared dead half a second after their last heartbeat.
fn short_timeout_config(brokers: usize, partitions: usize) -> logbrook::ClusterConfig {
    logbrook::ClusterConfig {
        broker_timeout: Duration::from_millis(500),
        ..fast_config(brokers, partitions)
    }
}

#[async_std::test]
async fn creating_an_existing_topic_fails() {
    let cluster = start(fast_config(3, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("dup".into()).await.unwrap();
    let before = topic_meta(&mut producer, "dup").await;
    let err = producer.add_topic("dup".into()).await.unwrap_err();
    assert!(
        matches!(err, Error::TopicExists { ref topic } if topic == "dup"),
        "{err:?}"
    );
    let err = producer
        .add_topic_with_partitions("dup".into(), 7)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TopicExists { .. }), "{err:?}");
    // Another producer gets the same answer.
    let mut other = Producer::new(cluster.leader_addr()).await.unwrap();
    let err = other.add_topic("dup".into()).await.unwrap_err();
    assert!(matches!(err, Error::TopicExists { .. }), "{err:?}");
    // The topic is unchanged.
    let after = topic_meta(&mut producer, "dup").await;
    assert_eq!(before, after);
    assert_eq!(after.partitions.len(), 3);
}

#[async_std::test]
async fn sending_to_an_unknown_topic_fails() {
    let cluster = start(fast_config(3, 3)).await;
    let mut producer = producer(&cluster).await;
    let err = producer
        .send_message("nope".into(), "x".into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownTopic { ref topic } if topic == "nope"),
        "{err:?}"
    );
    let err = producer
        .send_message_with_key("nope".into(), "k".into(), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    let err = producer
        .send("nope".into(), None, "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    let err = producer.remove_topic("nope".into()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");

    // A producer that knew the topic before another one removed it.
    producer.add_topic("gone".into()).await.unwrap();
    producer
        .send_message("gone".into(), "a".into())
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let remover = Producer::new(cluster.leader_addr()).await.unwrap();
    remover.remove_topic("gone".into()).await.unwrap();
    let started = std::time::Instant::now();
    // send_message only queues (its metadata is stale); delivery fails and flush
    // reports it, naming the unknown topic and the count.
    producer
        .send_message("gone".into(), "b".into())
        .await
        .unwrap();
    let err = producer.flush().await.unwrap_err();
    assert!(
        matches!(&err, Error::DeliveryFailed { records: 1, reason } if reason.contains("unknown topic 'gone'")),
        "a removed topic is unknown: {err:?}"
    );
    // The next send asks the leader again and fails at once.
    let err = producer
        .send_message("gone".into(), "c".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(producer
        .list_topics()
        .await
        .unwrap()
        .iter()
        .all(|t| t.name != Topic::from("gone")));
}

#[async_std::test]
async fn subscribing_to_an_unknown_topic_fails() {
    let cluster = start(fast_config(3, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("known".into()).await.unwrap();
    let mut c = Consumer::new("c1".into(), cluster.leader_addr())
        .await
        .unwrap();
    c.join_consumer_group("g".into()).await.unwrap();
    let err = c.subscribe("unknown".into()).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownTopic { ref topic } if topic == "unknown"),
        "{err:?}"
    );
    assert_eq!(c.subscriptions().count(), 0, "failed subscription not kept");
    // The member still works: subscribe to the known topic and receive.
    c.subscribe("known".into()).await.unwrap();
    let sent = send_n(&mut producer, "known", "k", 6).await;
    let got = poll_exactly(&mut c, 6, T).await;
    assert_exactly_once(&got, &sent);
}

#[async_std::test]
async fn invalid_names_are_rejected_everywhere() {
    let cluster = start(fast_config(2, 2)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("ok".into()).await.unwrap();
    let mut c = Consumer::new("c1".into(), cluster.leader_addr())
        .await
        .unwrap();
    let long = "a".repeat(250);
    let bad = ["..", ".", "a/b", "", long.as_str(), "a b", "../etc", "x\\y"];
    for name in bad {
        let err = producer.add_topic(name.into()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "add_topic({name:?}): {err:?}"
        );
        let err = producer
            .add_topic_with_partitions(name.into(), 2)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "add_topic_with_partitions({name:?}): {err:?}"
        );
        let err = producer
            .send_message(name.into(), "v".into())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "send({name:?}): {err:?}"
        );
        let err = producer.remove_topic(name.into()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "remove_topic({name:?}): {err:?}"
        );
        let err = c.join_consumer_group(name.into()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "join_consumer_group({name:?}): {err:?}"
        );
        assert!(c.group().is_none(), "a failed join leaves no group");
    }
    c.join_consumer_group("g".into()).await.unwrap();
    for name in bad {
        let err = c.subscribe(name.into()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "subscribe({name:?}): {err:?}"
        );
        let err = c.unsubscribe(name.into()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "unsubscribe({name:?}): {err:?}"
        );
    }
    assert_eq!(c.subscriptions().count(), 0);
    // A 249-character name is the longest accepted.
    let longest = "b".repeat(249);
    producer
        .add_topic_with_partitions(longest.as_str().into(), 1)
        .await
        .unwrap();
    assert_eq!(
        producer
            .send(longest.as_str().into(), None, Value::from("v"))
            .await
            .unwrap()
            .offset,
        0
    );
    // Nothing but the two real topics exists, in the metadata and on disk.
    let mut names: Vec<String> = producer
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec![longest.clone(), "ok".to_string()]);
    let outside: Vec<_> = dir_entries(cluster.data_dir())
        .into_iter()
        .filter(|n| !["leader", "broker-0", "broker-1"].contains(&n.as_str()))
        .collect();
    assert!(outside.is_empty(), "unexpected entries: {outside:?}");
    for b in 0..2 {
        for entry in dir_entries(&partitions_root(&cluster, b)) {
            assert!(
                entry.starts_with("ok.") || entry.starts_with(&format!("{longest}.")),
                "broker {b} has {entry}"
            );
        }
    }
}

#[async_std::test]
async fn removing_a_topic_deletes_its_data_and_recreating_starts_at_zero() {
    let cluster = start(fast_config(3, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    producer.add_topic("other".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["t", "other"]).await;
    let first = send_n(&mut producer, "t", "first", 30).await;
    let other = send_n(&mut producer, "other", "other", 9).await;
    let got = poll_exactly(&mut c, 39, T).await;
    let mut expected = first.clone();
    expected.extend(other.iter().cloned());
    assert_exactly_once(&got, &expected);

    let old = topic_meta(&mut producer, "t").await;
    let old_dir = format!("t.{}", old.topic_id);
    for b in 0..3 {
        assert!(
            dir_entries(&partitions_root(&cluster, b)).contains(&old_dir),
            "broker {b} holds {old_dir} before removal"
        );
    }

    producer.remove_topic("t".into()).await.unwrap();
    assert!(producer
        .list_topics()
        .await
        .unwrap()
        .iter()
        .all(|t| t.name != Topic::from("t")));
    let roots: Vec<_> = (0..3).map(|b| partitions_root(&cluster, b)).collect();
    wait_until(T, "no broker holds the removed topic's data", || {
        let roots = roots.clone();
        async move {
            roots.iter().all(|r| {
                dir_entries(r)
                    .iter()
                    .all(|e| !(e == "t" || e.starts_with("t.")))
            })
        }
    })
    .await;
    // The other topic's data is untouched.
    let other_meta = topic_meta(&mut producer, "other").await;
    let other_dir = format!("other.{}", other_meta.topic_id);
    for r in &roots {
        assert!(dir_entries(r).contains(&other_dir), "{}", r.display());
    }
    // A member subscribed to a removed topic polls without error and gets nothing.
    let nothing = poll_quiet(&mut c, 3).await;
    assert!(nothing.is_empty(), "{:?}", values(&nothing));
    let err = producer
        .send_message("t".into(), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");

    // Created again: a new incarnation whose offsets start at 0.
    producer.add_topic("t".into()).await.unwrap();
    let new = topic_meta(&mut producer, "t").await;
    assert_ne!(new.topic_id, old.topic_id, "a new topic id");
    let mut second = Vec::new();
    let mut first_offsets = BTreeMap::new();
    for i in 0..12 {
        let v = format!("second-{i}");
        let md = producer
            .send("t".into(), None, v.as_str().into())
            .await
            .unwrap();
        first_offsets.entry(md.partition).or_insert(md.offset);
        second.push(v);
    }
    assert_eq!(first_offsets.len(), 3, "{first_offsets:?}");
    assert!(
        first_offsets.values().all(|o| *o == 0),
        "each partition of the new topic starts at offset 0: {first_offsets:?}"
    );
    for r in &roots {
        let entries = dir_entries(r);
        assert!(
            !entries.contains(&old_dir),
            "old data came back in {}: {entries:?}",
            r.display()
        );
    }
    // The group still subscribed receives the new records, from offset 0.
    let got = poll_exactly(&mut c, 12, T).await;
    assert_exactly_once(&got, &second);
    let mut min_offset = BTreeMap::new();
    for m in &got {
        assert_eq!(m.topic, Topic::from("t"));
        let e = min_offset.entry(m.partition).or_insert(m.offset);
        *e = (*e).min(m.offset);
    }
    assert!(min_offset.values().all(|o| *o == 0), "{min_offset:?}");
}

#[async_std::test]
async fn a_topic_is_spread_evenly_even_after_other_topics_were_removed() {
    // Five one-partition topics land on brokers 0,1,2,0,1; removing the one on
    // broker 2 leaves the cluster's load at (2, 2, 0). A new three-partition
    // topic must still put one partition on each broker.
    let cluster = start(unreplicated(fast_config(3, 1))).await;
    let mut producer = producer(&cluster).await;
    for name in ["a", "b", "c", "d", "e"] {
        producer.add_topic(name.into()).await.unwrap();
    }
    let c = topic_meta(&mut producer, "c").await;
    let on_c = c.partitions[0].broker_id;
    producer.remove_topic("c".into()).await.unwrap();
    let mut load = BTreeMap::new();
    for t in producer.list_topics().await.unwrap() {
        for p in &t.partitions {
            *load.entry(p.broker_id).or_insert(0) += 1;
        }
    }
    assert_eq!(load.get(&on_c), None, "cluster load before: {load:?}");

    producer
        .add_topic_with_partitions("f".into(), 3)
        .await
        .unwrap();
    let f = topic_meta(&mut producer, "f").await;
    let per = per_broker(&f);
    assert_eq!(
        per.len(),
        3,
        "each of the 3 brokers hosts one partition of the new topic, got {per:?} \
         (placement {:?})",
        f.partitions.iter().map(|p| p.broker_id).collect::<Vec<_>>()
    );
    assert!(per.values().all(|n| *n == 1), "{per:?}");
}

/// Placement tests look at where each partition lives: one replica each.
fn unreplicated(config: ClusterConfig) -> ClusterConfig {
    ClusterConfig {
        replication_factor: Some(1),
        ..config
    }
}
