//! Times each request a poll makes, in isolation (a profiling aid).
use logbrook::broker::log::{FsyncPolicy, LogConfig};
use logbrook::client::api::{BrokerClient, LeaderClient};
use logbrook::http::client::HttpClient;
use logbrook::{Cluster, ClusterConfig, Producer};
use std::time::{Duration, Instant};

#[async_std::main]
async fn main() {
    let cluster = Cluster::start(ClusterConfig {
        brokers: 1,
        log: LogConfig {
            fsync: FsyncPolicy::Never,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let p = Producer::new(cluster.leader_addr()).await.unwrap();
    p.create_topic("t".into(), Some(1), None).await.unwrap();
    let http = HttpClient::new(Duration::from_secs(5));
    let leader = LeaderClient::new(http.clone(), cluster.leader_addr());
    let brokers = BrokerClient::new(http);
    let state = leader
        .join(&"g".into(), &"m".into(), vec!["t".into()])
        .await
        .unwrap();
    let a = &state.assignment[0];
    let n = 2000u32;
    let t = Instant::now();
    for _ in 0..n {
        leader.sync(&"g".into(), &"m".into()).await.unwrap();
    }
    println!("sync   {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        brokers
            .fetch(&a.broker_addr, &a.topic, 0, 0, 1 << 20, Duration::ZERO)
            .await
            .unwrap();
    }
    println!("fetch  {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        p.send("t".into(), None, "x".into()).await.unwrap();
    }
    println!("send   {:?}", t.elapsed() / n);
    let t = Instant::now();
    for pos in 0..u64::from(n) {
        let st = leader.sync(&"g".into(), &"m".into()).await.unwrap();
        let r = leader
            .commit(
                &"g".into(),
                &"m".into(),
                st.generation,
                vec![logbrook::protocol::control::OffsetMove {
                    topic: "t".into(),
                    partition: 0,
                    from: pos,
                    to: pos + 1,
                }],
            )
            .await
            .unwrap();
        assert!(r.accepted[0]);
    }
    println!("sync+commit {:?}", t.elapsed() / n);
}
