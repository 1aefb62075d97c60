//! Partitioning and ordering: keys pin records to a partition, unkeyed records
//! spread, offsets per partition start at 0 and are contiguous, order is kept.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use logbrook::{Consumer, ConsumerConfig, Message, Producer, Value};

const T: Duration = Duration::from_secs(10);

/// Groups consumed messages by partition, in arrival order.
fn by_partition(messages: &[Message]) -> BTreeMap<u32, Vec<&Message>> {
    let mut out: BTreeMap<u32, Vec<&Message>> = BTreeMap::new();
    for m in messages {
        out.entry(m.partition).or_default().push(m);
    }
    out
}

#[async_std::test]
async fn records_with_the_same_key_go_to_the_same_partition() {
    let cluster = start(fast_config(3, 4)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("keyed".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["keyed"]).await;

    let keys = ["alpha", "bravo", "charlie", "delta", "echo"];
    let mut partition_of: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let mut sent: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut all = Vec::new();
    for i in 0..40 {
        for key in keys {
            let v = format!("{key}-{i}");
            let md = producer
                .send("keyed".into(), Some(key.into()), v.as_str().into())
                .await
                .unwrap();
            partition_of.entry(key).or_default().insert(md.partition);
            sent.entry(key).or_default().push(v.clone());
            all.push(v);
        }
    }
    for (key, parts) in &partition_of {
        assert_eq!(parts.len(), 1, "key {key} went to partitions {parts:?}");
    }
    let distinct: BTreeSet<u32> = partition_of.values().flatten().copied().collect();
    assert!(
        distinct.len() >= 2,
        "5 keys over 4 partitions all landed in {distinct:?}"
    );

    // Another producer (fresh state) picks the same partitions, also via the
    // convenience call.
    let mut other = Producer::new(cluster.leader_addr()).await.unwrap();
    for key in keys {
        let md = other
            .send(
                "keyed".into(),
                Some(Value::from(key)),
                format!("{key}-again").into(),
            )
            .await
            .unwrap();
        let expected = *partition_of[key].iter().next().unwrap();
        assert_eq!(md.partition, expected, "key {key}");
        other
            .send_message_with_key("keyed".into(), key.into(), format!("{key}-last").into())
            .await
            .unwrap();
        sent.get_mut(key).unwrap().push(format!("{key}-last"));
        all.push(format!("{key}-again"));
        all.push(format!("{key}-last"));
    }

    let got = poll_exactly(&mut c, all.len(), T).await;
    assert_exactly_once(&got, &all);
    let mut received: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &got {
        let key = String::from_utf8(m.key.clone().expect("a keyed record keeps its key")).unwrap();
        let expected = *partition_of[key.as_str()].iter().next().unwrap();
        assert_eq!(
            m.partition, expected,
            "record {:?} of key {key} consumed from the wrong partition",
            m.value
        );
        let v = String::from_utf8(m.value.clone()).unwrap();
        if !v.ends_with("-again") {
            received.entry(key).or_default().push(v);
        }
    }
    for key in keys {
        assert_eq!(
            received[key], sent[key],
            "records of key {key} arrive in the order sent"
        );
    }
}

#[async_std::test]
async fn unkeyed_records_spread_over_all_partitions() {
    let cluster = start(fast_config(3, 6)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("spread".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["spread"]).await;
    let mut per_partition: BTreeMap<u32, usize> = BTreeMap::new();
    for i in 0..60 {
        let md = producer
            .send("spread".into(), None, format!("v{i}").into())
            .await
            .unwrap();
        *per_partition.entry(md.partition).or_insert(0) += 1;
    }
    assert_eq!(
        per_partition.keys().copied().collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>(),
        "{per_partition:?}"
    );
    assert!(
        per_partition.values().all(|n| *n >= 5),
        "roughly even: {per_partition:?}"
    );
    let got = poll_exactly(&mut c, 60, T).await;
    let mut consumed: BTreeMap<u32, usize> = BTreeMap::new();
    for m in &got {
        assert!(m.key.is_none(), "unkeyed record has a key: {m:?}");
        *consumed.entry(m.partition).or_insert(0) += 1;
    }
    assert_eq!(consumed, per_partition);
}

#[async_std::test]
async fn offsets_start_at_zero_are_contiguous_and_keep_order() {
    let cluster = start(fast_config(2, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("ord".into()).await.unwrap();
    let mut c = Consumer::with_config(
        "c1".into(),
        cluster.leader_addr(),
        ConsumerConfig {
            max_poll_records: 7,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.join_consumer_group("g".into()).await.unwrap();
    c.subscribe("ord".into()).await.unwrap();

    // Mixed keyed and unkeyed records; remember where each one went.
    let mut sent: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for i in 0..150 {
        let v = format!("r{i:03}");
        let key = (i % 3 == 0).then(|| Value::from(format!("key{}", i % 4)));
        let md = producer
            .send("ord".into(), key, v.as_str().into())
            .await
            .unwrap();
        sent.entry(md.partition).or_default().push((md.offset, v));
    }
    assert_eq!(sent.len(), 3);
    for (p, records) in &sent {
        let offsets: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
        let expected: Vec<u64> = (0..records.len() as u64).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: send offsets start at 0 and are contiguous"
        );
    }

    // Small polls: each returns at most 7 records.
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while got.len() < 150 {
        let batch = c.poll().await.unwrap();
        assert!(
            batch.len() <= 7,
            "max_poll_records exceeded: {}",
            batch.len()
        );
        got.extend(batch);
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 150 consumed",
            got.len()
        );
    }
    assert!(poll_quiet(&mut c, 3).await.is_empty());
    assert_eq!(got.len(), 150);
    for (p, msgs) in by_partition(&got) {
        let consumed: Vec<(u64, String)> = msgs
            .iter()
            .map(|m| (m.offset, String::from_utf8(m.value.clone()).unwrap()))
            .collect();
        assert_eq!(
            consumed, sent[&p],
            "partition {p}: consumed in offset order, same offsets and values as sent"
        );
    }
}

#[async_std::test]
async fn order_is_kept_across_polls_and_producers() {
    // Two producers interleave into one partition: the consumer sees the
    // partition's records in offset order, without gaps, matching what each
    // send returned.
    let cluster = start(fast_config(1, 1)).await;
    let mut a = producer(&cluster).await;
    a.add_topic("one".into()).await.unwrap();
    let mut b = Producer::new(cluster.leader_addr()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["one"]).await;
    let mut expected = BTreeMap::new();
    let mut consumed = Vec::new();
    for i in 0..40 {
        let p = if i % 2 == 0 { &mut a } else { &mut b };
        let v = format!("m{i}");
        let md = p.send("one".into(), None, v.as_str().into()).await.unwrap();
        assert_eq!(
            md,
            logbrook::RecordMetadata {
                partition: 0,
                offset: i
            }
        );
        expected.insert(md.offset, v);
        if i % 9 == 0 {
            consumed.extend(c.poll().await.unwrap());
        }
    }
    consumed.extend(poll_until(&mut c, 40 - consumed.len(), T).await);
    let offsets: Vec<u64> = consumed.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..40).collect::<Vec<_>>());
    for m in &consumed {
        assert_eq!(
            String::from_utf8(m.value.clone()).unwrap(),
            expected[&m.offset]
        );
        assert_eq!(m.partition, 0);
    }
}
