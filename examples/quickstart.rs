//! Start a cluster in-process, create a topic, produce, and consume as a group.
//!
//! Run it with `cargo run --example quickstart`. Against a running cluster, pass the
//! leader's address: `cargo run --example quickstart -- 127.0.0.1:7070`.

use logbrook::{Cluster, ClusterConfig, Consumer, Error, Producer, ServerId};

#[async_std::main]
async fn main() -> Result<(), Error> {
    // No address given: start a leader and three brokers in this process.
    let (_cluster, leader): (Option<Cluster>, ServerId) = match std::env::args().nth(1) {
        Some(addr) => (None, ServerId::new(addr)?),
        None => {
            let cluster = Cluster::start(ClusterConfig::default()).await?;
            let leader = cluster.leader_addr();
            (Some(cluster), leader)
        }
    };
    println!("leader at {leader}");

    let mut producer = Producer::new(leader.clone()).await?;
    match producer
        .add_topic_with_partitions("quickstart".into(), 3)
        .await
    {
        Ok(()) | Err(Error::TopicExists { .. }) => {}
        Err(err) => return Err(err),
    }

    // A consumer must join a group before it subscribes; a new subscription starts
    // at the end of the log, so subscribe before producing.
    let mut consumer = Consumer::new("quickstart-consumer".into(), leader).await?;
    consumer
        .join_consumer_group("quickstart-group".into())
        .await?;
    consumer.subscribe("quickstart".into()).await?;

    for i in 0..5 {
        producer
            .send_message_with_key(
                "quickstart".into(),
                format!("user-{}", i % 2).into(),
                format!("event {i}").into(),
            )
            .await?;
    }
    producer.flush().await?;

    let mut received = 0;
    while received < 5 {
        for message in consumer
            .poll_timeout(std::time::Duration::from_secs(1))
            .await?
        {
            println!(
                "partition {} offset {} key {} value {}",
                message.partition,
                message.offset,
                String::from_utf8_lossy(message.key.as_deref().unwrap_or_default()),
                String::from_utf8_lossy(&message.value),
            );
            received += 1;
        }
    }
    consumer.leave_consumer_group().await?;
    println!("received {received} messages");
    Ok(())
}
