//! The optional shared secret: with an auth token, every endpoint of leader and
//! brokers answers 401 (JSON body) to requests without it or with a wrong one, and
//! changes nothing; clients with the token work end to end.

mod common;

use std::time::Duration;

use common::*;
use logbrook::http::client::HttpClient;
use logbrook::protocol::control::{ClusterMetadata, CreateTopicRequest, TopicMetadata};
use logbrook::{ClusterConfig, Consumer, ConsumerConfig, Error, Producer, ProducerConfig};

const TOKEN: &str = "s3cret-token";
const T: Duration = Duration::from_secs(5);

async fn guarded_cluster() -> logbrook::Cluster {
    start(ClusterConfig {
        auth_token: Some(TOKEN.into()),
        ..fast_config(2, 2)
    })
    .await
}

#[async_std::test]
async fn requests_without_the_token_get_401_and_change_nothing() {
    let cluster = guarded_cluster().await;
    let leader = cluster.leader_addr();
    let broker = cluster.broker_addrs()[0].clone();

    // No header at all, on the leader and on a broker: 401 with a JSON error body.
    for (addr, path) in [
        (&leader, "/metadata"),
        (&broker, "/partitions/t/0/records?offset=0"),
        (&broker, "/health"),
    ] {
        let res = raw_request(addr, "GET", path, None, b"").await;
        assert_json_error(&res, 401, "unauthorized", path);
    }
    // A wrong token cannot create a topic; the right one sees that nothing changed.
    let wrong = HttpClient::new(Duration::from_secs(5)).with_auth_token(Some("guess"));
    let create = CreateTopicRequest {
        name: "t".into(),
        partitions: Some(1),
        replication_factor: None,
    };
    let err = wrong
        .post_json::<_, TopicMetadata>(&leader, "/topics", &create)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let right = HttpClient::new(Duration::from_secs(5)).with_auth_token(Some(TOKEN));
    let meta: ClusterMetadata = right.get_json(&leader, "/metadata").await.unwrap();
    assert!(meta.topics.is_empty(), "a refused request changed nothing");
    assert_eq!(meta.brokers.len(), 2, "brokers registered with the token");

    // Clients without the token are refused with a typed error.
    let err = Producer::new(leader.clone()).await.err().expect("refused");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let err = Consumer::new("c".into(), leader.clone())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[async_std::test]
async fn clients_with_the_token_work_end_to_end() {
    let cluster = guarded_cluster().await;
    let leader = cluster.leader_addr();
    let token = Some(TOKEN.to_string());
    let mut producer = Producer::with_config(
        leader.clone(),
        ProducerConfig {
            auth_token: token.clone(),
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    producer.add_topic("t".into()).await.unwrap();
    let mut consumer = Consumer::with_config(
        "c".into(),
        leader,
        ConsumerConfig {
            auth_token: token,
            ..ConsumerConfig::default()
        },
    )
    .await
    .unwrap();
    consumer.join_consumer_group("g".into()).await.unwrap();
    consumer.subscribe("t".into()).await.unwrap();
    let sent = send_n(&mut producer, "t", "v", 20).await;
    let got = poll_exactly(&mut consumer, 20, T).await;
    assert_exactly_once(&got, &sent);
}
