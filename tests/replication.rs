//! Replication in an in-process cluster: followers copy the leader, a dead leader is
//! replaced by an in-sync follower with a new epoch and no acknowledged record is
//! lost, a restarted broker catches up and rejoins the in-sync set, idempotent
//! retries store a batch once, and oversized records are refused.
//! (`tests/faults.rs` does the same with real processes, kill -9 and SIGSTOP.)

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use logbrook::protocol::batch::{set_producer, BatchBuilder};
use logbrook::protocol::control::{PartitionInfo, ProduceResponse};
use logbrook::{Cluster, ClusterConfig, Error, Producer, ServerId};

const T: Duration = Duration::from_secs(10);

/// Three brokers, quick failure detection.
fn replicated(partitions: usize) -> ClusterConfig {
    ClusterConfig {
        replication_factor: Some(3),
        ..fast_config(3, partitions)
    }
}

async fn describe(producer: &Producer, topic: &str) -> Vec<PartitionInfo> {
    producer
        .partition_metadata(topic.into())
        .await
        .expect("describe")
}

/// Waits until `condition` holds on the topic's partitions, returning them.
async fn wait_for_partitions(
    producer: &Producer,
    topic: &str,
    what: &str,
    condition: impl Fn(&[PartitionInfo]) -> bool,
) -> Vec<PartitionInfo> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let partitions = describe(producer, topic).await;
        if condition(&partitions) {
            return partitions;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {partitions:#?}"
        );
        async_std::task::sleep(Duration::from_millis(20)).await;
    }
}

fn slot_of(cluster: &Cluster, addr: &ServerId) -> usize {
    cluster
        .broker_addrs()
        .iter()
        .position(|a| a == addr)
        .expect("a broker of the cluster")
}

#[async_std::test]
async fn followers_copy_the_leader_and_the_high_watermark_covers_acknowledged_records() {
    let cluster = start(replicated(2)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let before = describe(&producer, "t").await;
    for p in &before {
        assert_eq!(p.replicas.len(), 3, "{p:?}");
        assert_eq!(p.in_sync.len(), 3, "every replica starts in sync: {p:?}");
        assert_eq!(p.replicas[0], p.broker_addr, "the preferred replica leads");
        assert_eq!(p.high_watermark, Some(0));
    }
    let sent = send_n(&mut producer, "t", "v", 50).await;
    let after = describe(&producer, "t").await;
    let committed: u64 = after.iter().map(|p| p.high_watermark.unwrap()).sum();
    assert_eq!(
        committed, 50,
        "acks=all: the high watermark covers every ack"
    );
    // Every replica holds the data: each broker has every partition's directory.
    let topic = topic_meta(&mut producer.clone(), "t").await;
    for b in 0..3 {
        for p in 0..2 {
            let dir = partitions_root(&cluster, b)
                .join(format!("t.{}", topic.topic_id))
                .join(p.to_string());
            assert!(dir.is_dir(), "broker {b} holds a replica of partition {p}");
        }
    }
    let mut c = member(&cluster, "c", "g", &[]).await;
    c.subscribe("t".into()).await.unwrap();
    let more = send_n(&mut producer, "t", "w", 20).await;
    assert_exactly_once(&poll_exactly(&mut c, 20, T).await, &more);
    drop(sent);
}

#[async_std::test]
async fn a_dead_leader_is_replaced_and_no_acknowledged_record_is_lost() {
    let mut cluster = start(replicated(1)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c", "g", &["t"]).await;
    let first = send_n(&mut producer, "t", "a", 30).await;
    let before = describe(&producer, "t").await.remove(0);
    let leader_slot = slot_of(&cluster, &before.broker_addr);
    cluster.stop_broker(leader_slot).await.unwrap();

    // Sends keep going: they wait for the new leader (retries within the delivery
    // timeout), and are acknowledged once the surviving in-sync replicas have them.
    let started = Instant::now();
    let second = send_n(&mut producer, "t", "b", 30).await;
    let took = started.elapsed();
    let after = describe(&producer, "t").await.remove(0);
    assert_ne!(after.broker_addr, before.broker_addr, "{after:?}");
    assert!(after.leader_epoch > before.leader_epoch, "{after:?}");
    assert!(!after.in_sync.contains(&before.broker_addr), "{after:?}");
    assert_eq!(after.in_sync.len(), 2, "{after:?}");
    assert!(took < Duration::from_secs(10), "failover took {took:?}");

    let mut expected = first;
    expected.extend(second);
    let got = poll_exactly(&mut c, 60, T).await;
    assert_exactly_once(&got, &expected);
    let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");

    // The old leader comes back as a follower, catches up, rejoins the in-sync set
    // and, being the preferred replica, leads again.
    cluster.restart_broker(leader_slot).await.unwrap();
    let back = cluster.broker_addrs()[leader_slot].clone();
    let healed = wait_for_partitions(&producer, "t", "the old leader back in sync", |ps| {
        ps[0].in_sync.len() == 3 && ps[0].broker_addr == back
    })
    .await;
    assert!(healed[0].leader_epoch > after.leader_epoch);
    let third = send_n(&mut producer, "t", "c", 10).await;
    assert_exactly_once(&poll_exactly(&mut c, 10, T).await, &third);
}

#[async_std::test]
async fn a_follower_that_restarts_catches_up_before_it_counts() {
    let mut cluster = start(replicated(1)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let leader = describe(&producer, "t").await.remove(0).broker_addr;
    let follower_slot = (slot_of(&cluster, &leader) + 1) % 3;
    cluster.stop_broker(follower_slot).await.unwrap();
    // The in-sync set shrinks (the follower missed heartbeats), then writes are
    // acknowledged by the two that remain.
    wait_for_partitions(&producer, "t", "the follower out of sync", |ps| {
        ps[0].in_sync.len() == 2
    })
    .await;
    send_n(&mut producer, "t", "x", 40).await;
    cluster.restart_broker(follower_slot).await.unwrap();
    let healed = wait_for_partitions(&producer, "t", "the follower back in sync", |ps| {
        ps[0].in_sync.len() == 3
    })
    .await;
    assert_eq!(healed[0].high_watermark, Some(40));
    // The follower's copy is complete: stop the other two, it alone serves the data.
    let others: Vec<usize> = (0..3).filter(|b| *b != follower_slot).collect();
    for b in &others {
        cluster.stop_broker(*b).await.unwrap();
    }
    // With the rest of the in-sync set gone, the last live in-sync replica leads.
    let lone = cluster.broker_addrs()[follower_slot].clone();
    wait_for_partitions(&producer, "t", "the follower leading alone", |ps| {
        ps[0].broker_addr == lone && ps[0].alive
    })
    .await;
    let mut c = member(&cluster, "c", "g-late", &[]).await;
    c.subscribe("t".into()).await.unwrap();
    let tail = send_n(&mut producer, "t", "y", 5).await;
    assert_exactly_once(&poll_exactly(&mut c, 5, T).await, &tail);
    let offsets: Vec<u64> = c_offsets(&mut c, &mut producer, "t").await;
    assert_eq!(offsets, vec![45]);
}

/// Sends one more record and returns the offsets it was consumed at.
async fn c_offsets(c: &mut logbrook::Consumer, producer: &mut Producer, topic: &str) -> Vec<u64> {
    producer.send(topic.into(), None, "z".into()).await.unwrap();
    poll_exactly(c, 1, T)
        .await
        .iter()
        .map(|m| m.offset)
        .collect()
}

#[async_std::test]
async fn a_retried_idempotent_batch_is_stored_once() {
    let cluster = start(replicated(1)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let leader = describe(&producer, "t").await.remove(0).broker_addr;
    let batch = |seq: i32, values: &[&str]| {
        let mut b = BatchBuilder::new();
        for v in values {
            b.push(None, v.as_bytes(), 1);
        }
        let mut bytes = b.finish();
        set_producer(&mut bytes, 77, 0, seq);
        bytes
    };
    let post = |bytes: Vec<u8>| {
        let leader = leader.clone();
        async move {
            raw_request(
                &leader,
                "POST",
                "/partitions/t/0/records?acks=all",
                Some("application/octet-stream"),
                &bytes,
            )
            .await
        }
    };
    let first = post(batch(0, &["a", "b"])).await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    let again = post(batch(0, &["a", "b"])).await;
    assert_eq!(again.status, 200, "{:?}", again.json());
    let parse = |res: &RawResponse| -> ProduceResponse {
        serde_json::from_value(res.json()).expect("a produce answer")
    };
    let (one, two) = (parse(&first), parse(&again));
    assert_eq!(one, two, "the retry gets the first append's offsets");
    // A gap in the sequence is refused: a batch was lost in between.
    let gap = post(batch(5, &["c"])).await;
    assert_json_error(&gap, 409, "out_of_order_sequence", "sequence gap");
    let next = post(batch(2, &["c"])).await;
    assert_eq!(next.status, 200, "{:?}", next.json());
    let next = parse(&next);
    assert_eq!(next.base_offset, 2);
    let parts = describe(&producer, "t").await;
    assert_eq!(parts[0].high_watermark, Some(3), "a, b, c: no duplicate");
}

#[async_std::test]
async fn a_record_over_the_limit_is_refused_and_nothing_is_written() {
    let cluster = start(ClusterConfig {
        max_record_bytes: 1000,
        ..replicated(1)
    })
    .await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c", "g", &["t"]).await;
    // The batch holds a small record and a big one: all of it is refused.
    let mut b = BatchBuilder::new();
    b.push(None, b"small", 1);
    b.push(None, &vec![b'x'; 1001], 1);
    let leader = describe(&producer, "t").await.remove(0).broker_addr;
    let res = raw_request(
        &leader,
        "POST",
        "/partitions/t/0/records",
        Some("application/octet-stream"),
        &b.finish(),
    )
    .await;
    assert_json_error(&res, 413, "record_too_large", "1001-byte record");
    assert_eq!(res.json()["limit"], 1000);
    // Through the producer: the flush reports the failure.
    producer
        .send_message("t".into(), vec![b'y'; 1001].into())
        .await
        .unwrap();
    let err = producer.flush().await.unwrap_err();
    assert!(
        matches!(&err, Error::DeliveryFailed { records: 1, reason } if reason.contains("1000")),
        "{err:?}"
    );
    let ok = send_n(&mut producer, "t", "fine", 3).await;
    assert_exactly_once(&poll_exactly(&mut c, 3, T).await, &ok);
    assert_eq!(describe(&producer, "t").await[0].high_watermark, Some(3));
}

#[async_std::test]
async fn acks_leader_and_none_are_accepted_and_deliver() {
    let cluster = start(replicated(2)).await;
    let mut admin = producer(&cluster).await;
    admin.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c", "g", &["t"]).await;
    let mut expected = Vec::new();
    for acks in [
        logbrook::protocol::control::Acks::Leader,
        logbrook::protocol::control::Acks::None,
    ] {
        let mut p = Producer::with_config(
            cluster.leader_addr(),
            logbrook::ProducerConfig {
                acks,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        expected.extend(send_n(&mut p, "t", &format!("{acks}"), 10).await);
    }
    let got = poll_exactly(&mut c, 20, T).await;
    assert_exactly_once(&got, &expected);
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for m in &got {
        per_partition.entry(m.partition).or_default().push(m.offset);
    }
    assert!(per_partition
        .values()
        .all(|o| o.windows(2).all(|w| w[0] < w[1])));
}

#[async_std::test]
async fn a_controller_restart_mid_traffic_loses_nothing() {
    let mut cluster = start(replicated(2)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c", "g", &["t"]).await;
    let before = send_n(&mut producer, "t", "before", 20).await;
    let mut got = poll_exactly(&mut c, 20, T).await;
    cluster.stop_leader().await;
    // Brokers keep serving: records sent now are acknowledged without the controller
    // (the producer knows the partition leaders).
    let during = send_n(&mut producer, "t", "during", 20).await;
    cluster.restart_leader().await.unwrap();
    let after = send_n(&mut producer, "t", "after", 20).await;
    got.extend(poll_exactly(&mut c, 40, T).await);
    let mut expected = before;
    expected.extend(during);
    expected.extend(after);
    assert_exactly_once(&got, &expected);
    let parts = describe(&producer, "t").await;
    assert!(parts.iter().all(|p| p.in_sync.len() == 3), "{parts:#?}");
}

#[async_std::test]
async fn a_consumer_reports_the_error_once_its_retry_timeout_passes() {
    let mut cluster = start(replicated(1)).await;
    let mut c = logbrook::Consumer::with_config(
        "c".into(),
        cluster.leader_addr(),
        logbrook::ConsumerConfig {
            retry_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.join_consumer_group("g".into()).await.unwrap();
    cluster.stop_leader().await;
    let started = Instant::now();
    let err = loop {
        match c.poll().await {
            Ok(none) => assert!(none.is_empty()),
            Err(err) => break err,
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no error reported"
        );
    };
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}
