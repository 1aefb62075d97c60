//! The leader watches broker heartbeats: a silent broker is marked dead, new topics
//! avoid it, unkeyed records go to live partitions, and it comes back when restarted.
//! These tests use unreplicated topics (replication factor 1), where a dead broker's
//! partitions are offline until it returns; `tests/replication.rs` covers failover.

use std::time::{Duration, Instant};

use logbrook::protocol::control::TopicMetadata;
use logbrook::{Cluster, ClusterConfig, Error, Producer, ProducerConfig};

/// Lists topics until `condition` holds on them.
async fn wait_for_topics(
    producer: &mut Producer,
    what: &str,
    condition: impl Fn(&[TopicMetadata]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition(&producer.list_topics().await.unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        async_std::task::sleep(Duration::from_millis(20)).await;
    }
}

#[async_std::test]
async fn a_silent_broker_is_marked_dead_and_work_goes_to_live_brokers() {
    let mut cluster = Cluster::start(ClusterConfig {
        brokers: 3,
        heartbeat: Duration::from_millis(50),
        broker_timeout: Duration::from_millis(400),
        replication_factor: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let config = ProducerConfig {
        // Records for an offline partition are retried this long, then reported.
        delivery_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let mut producer = Producer::with_config(cluster.leader_addr(), config)
        .await
        .unwrap();
    producer
        .add_topic_with_partitions("before".into(), 3)
        .await
        .unwrap();
    let dead_addr = cluster.broker_addrs()[1].clone();
    cluster.stop_broker(1).await.unwrap();

    wait_for_topics(&mut producer, "broker 1 marked dead", |topics| {
        topics[0]
            .partitions
            .iter()
            .any(|p| p.broker_addr == dead_addr && !p.alive)
    })
    .await;

    // A new topic is placed on live brokers only.
    producer
        .add_topic_with_partitions("after".into(), 4)
        .await
        .unwrap();
    let topics = producer.list_topics().await.unwrap();
    let after = topics.iter().find(|t| t.name.as_str() == "after").unwrap();
    assert!(after
        .partitions
        .iter()
        .all(|p| p.alive && p.broker_addr != cluster.broker_addrs()[1]));

    // Unkeyed records go to partitions whose broker is alive: every send succeeds.
    for i in 0..12 {
        let stored = producer
            .send("before".into(), None, format!("v{i}").into())
            .await
            .unwrap();
        let owner = &topics
            .iter()
            .find(|t| t.name.as_str() == "before")
            .unwrap()
            .partitions[stored.partition as usize];
        assert!(owner.alive, "record {i} went to a dead broker's partition");
    }
    // A keyed record whose partition lives on the dead broker fails clearly.
    let dead_partition = topics
        .iter()
        .find(|t| t.name.as_str() == "before")
        .unwrap()
        .partitions
        .iter()
        .find(|p| !p.alive)
        .unwrap()
        .partition;
    let key = (0..1000)
        .map(|i| format!("key-{i}"))
        .find(|k| {
            logbrook::client::partitioner::partition_for_key(k.as_bytes(), 3) == dead_partition
        })
        .unwrap();
    let err = producer
        .send("before".into(), Some(key.as_str().into()), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    // Restarted, it registers again and serves its partitions.
    cluster.restart_broker(1).await.unwrap();
    wait_for_topics(&mut producer, "broker 1 alive again", |topics| {
        topics.iter().flat_map(|t| &t.partitions).all(|p| p.alive)
    })
    .await;
    producer
        .send("before".into(), Some(key.as_str().into()), "y".into())
        .await
        .unwrap();
}
