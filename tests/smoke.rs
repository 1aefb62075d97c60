use logbrook::{Cluster, ClusterConfig, Consumer, Producer};

#[async_std::test]
async fn produce_then_consume() {
    let cluster = Cluster::start(ClusterConfig::default()).await.unwrap();
    let mut producer = Producer::new(cluster.leader_addr()).await.unwrap();
    producer.add_topic("orders".into()).await.unwrap();
    let mut consumer = Consumer::new("c1".into(), cluster.leader_addr())
        .await
        .unwrap();
    consumer.join_consumer_group("g".into()).await.unwrap();
    consumer.subscribe("orders".into()).await.unwrap();
    for i in 0..10 {
        producer
            .send_message("orders".into(), format!("m{i}").into())
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let got = consumer.poll().await.unwrap();
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(consumer.poll().await.unwrap().is_empty());
}
