//! Bad input over raw HTTP: every failure is a 4xx with a JSON error body, no
//! path trick escapes the data dir, bad batches change nothing, and the servers
//! keep serving afterwards.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use logbrook::protocol::batch::BatchBuilder;
use logbrook::{Cluster, ClusterConfig, ServerId};

const T: Duration = Duration::from_secs(5);

fn batch(values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for v in values {
        b.push(None, v.as_bytes(), 1_700_000_000_000);
    }
    b.finish()
}

/// A cluster whose data dir sits alone inside `outer`, so anything written next
/// to it shows.
async fn cluster_in(outer: &Path, brokers: usize, partitions: usize) -> Cluster {
    start(ClusterConfig {
        data_dir: Some(outer.join("data")),
        ..fast_config(brokers, partitions)
    })
    .await
}

/// A normal produce and consume still work (on a fresh topic and group).
async fn assert_cluster_serves(cluster: &Cluster, topic: &str) {
    let mut producer = producer(cluster).await;
    producer.add_topic(topic.into()).await.unwrap();
    let mut c = member(
        cluster,
        &format!("{topic}-c"),
        &format!("{topic}-g"),
        &[topic],
    )
    .await;
    let sent = send_n(&mut producer, topic, topic, 9).await;
    assert_exactly_once(&poll_exactly(&mut c, 9, T).await, &sent);
}

/// The broker hosting partition 0 of `topic`.
async fn host_of_partition_0(cluster: &Cluster, topic: &str) -> ServerId {
    let mut producer = producer(cluster).await;
    topic_meta(&mut producer, topic).await.partitions[0]
        .broker_addr
        .clone()
}

#[async_std::test]
async fn malformed_json_bodies_are_400_with_a_json_error() {
    let outer = tempfile::tempdir().unwrap();
    let cluster = cluster_in(outer.path(), 1, 1).await;
    let leader = cluster.leader_addr();
    let json = Some("application/json");
    let cases: &[(&str, &[u8])] = &[
        ("/topics", b"{\"name\": "),
        ("/topics", b"not json at all"),
        ("/topics", b""),
        ("/topics", b"{\"name\": 5}"),
        ("/topics", b"{\"partitions\": 2}"),
        ("/topics", b"{\"name\": \"x\", \"partitions\": -1}"),
        ("/topics", b"{\"name\": \"x\", \"partitions\": \"two\"}"),
        ("/topics", b"\xff\xfe\x00garbage"),
        ("/groups/g/join", b"{\"member\": "),
        ("/groups/g/join", b"[]"),
        ("/groups/g/subscribe", b"{\"member\": \"c\"}"),
        (
            "/groups/g/commit",
            b"{\"member\": \"c\", \"generation\": \"x\"}",
        ),
        ("/consumers", b"{}"),
    ];
    for (path, body) in cases {
        let res = raw_request(&leader, "POST", path, json, body).await;
        let what = format!("POST {path} {:?}", String::from_utf8_lossy(body));
        assert_json_error(&res, 400, "invalid_request", &what);
    }
    // Zero partitions is a bad request too, and creates nothing.
    let res = raw_request(
        &leader,
        "POST",
        "/topics",
        json,
        b"{\"name\": \"zero\", \"partitions\": 0}",
    )
    .await;
    assert_json_error(&res, 400, "invalid_request", "zero partitions");
    // A JSON body over the leader's limit.
    let mut big = b"{\"name\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 << 20));
    big.extend(b"\"}");
    let res = raw_request(&leader, "POST", "/topics", json, &big).await;
    assert_json_error(&res, 413, "too_large", "2 MiB JSON body");

    let meta = raw_request(&leader, "GET", "/metadata", None, b"")
        .await
        .json();
    assert_eq!(meta["topics"].as_array().unwrap().len(), 0, "{meta}");
    assert_cluster_serves(&cluster, "after").await;
}

#[async_std::test]
async fn unknown_endpoints_are_404_with_a_json_error() {
    let outer = tempfile::tempdir().unwrap();
    let cluster = cluster_in(outer.path(), 1, 1).await;
    let leader = cluster.leader_addr();
    let broker = cluster.broker_addrs()[0].clone();
    for (addr, method, path) in [
        (&leader, "GET", "/nope"),
        (&leader, "POST", "/topics/x/y"),
        (&leader, "GET", "/groups/g"),
        (&broker, "GET", "/nope"),
        (&broker, "GET", "/partitions/t"),
        (&broker, "POST", "/metadata"),
    ] {
        let res = raw_request(addr, method, path, None, b"").await;
        assert_eq!(res.status, 404, "{method} {path}: {res:?}");
        let kind = res.error_kind();
        assert_eq!(kind, "not_found", "{method} {path}");
    }
    // A wrong method on a known path is a 4xx with a JSON body too.
    let res = raw_request(&leader, "PUT", "/topics", None, b"").await;
    assert!((400..500).contains(&res.status), "{res:?}");
    res.error_kind();
    // Unknown topics and partitions are typed errors.
    let res = raw_request(&leader, "GET", "/topics/missing", None, b"").await;
    assert_json_error(&res, 404, "unknown_topic", "GET unknown topic");
    let res = raw_request(&leader, "DELETE", "/topics/missing", None, b"").await;
    assert_json_error(&res, 404, "unknown_topic", "DELETE unknown topic");
    let res = raw_request(
        &broker,
        "GET",
        "/partitions/missing/0/records?offset=0",
        None,
        b"",
    )
    .await;
    assert_json_error(&res, 421, "not_partition_owner", "fetch unhosted");
    assert_cluster_serves(&cluster, "after").await;
}

#[async_std::test]
async fn path_tricks_in_names_are_rejected_and_write_nothing_outside_the_data_dir() {
    let outer = tempfile::tempdir().unwrap();
    let cluster = cluster_in(outer.path(), 2, 2).await;
    let leader = cluster.leader_addr();
    let broker = cluster.broker_addrs()[0].clone();
    let tricks = [
        "..%2F..",
        "%2e%2e",
        "%2E%2E",
        "..%2F..%2Fevil",
        "..%5Cevil",
        "%2e%2e%2fevil",
        "..",
        "a%2Fb",
        "%00",
    ];
    for t in tricks {
        for method in ["GET", "DELETE"] {
            let path = format!("/topics/{t}");
            let res = raw_request(&leader, method, &path, None, b"").await;
            assert!(
                (400..500).contains(&res.status),
                "{method} {path}: {} {:?}",
                res.status,
                String::from_utf8_lossy(&res.body)
            );
            res.error_kind();
        }
        for path in [
            format!("/groups/{t}/join"),
            format!("/groups/{t}/subscribe"),
        ] {
            let res = raw_request(
                &leader,
                "POST",
                &path,
                Some("application/json"),
                b"{\"member\": \"c\", \"topic\": \"x\"}",
            )
            .await;
            assert!((400..500).contains(&res.status), "POST {path}: {res:?}");
        }
        let path = format!("/partitions/{t}/0/records");
        let res = raw_request(&broker, "POST", &path, None, &batch(&["evil"])).await;
        assert!(
            (400..500).contains(&res.status),
            "POST {path}: {} {:?}",
            res.status,
            String::from_utf8_lossy(&res.body)
        );
        let res = raw_request(&broker, "GET", &format!("{path}?offset=0"), None, b"").await;
        assert!((400..500).contains(&res.status), "GET {path}: {res:?}");
    }
    for name in ["../evil", "..", ".", "a/b", "..\\evil", "/abs", "evil\u{0}"] {
        let body = serde_json::json!({ "name": name, "partitions": 1 }).to_string();
        let res = raw_request(
            &leader,
            "POST",
            "/topics",
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
        assert_json_error(&res, 400, "invalid_name", &format!("create {name:?}"));
        let body = serde_json::json!({ "member": "c", "subscriptions": [name] }).to_string();
        let res = raw_request(
            &leader,
            "POST",
            "/groups/g/join",
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
        assert_json_error(&res, 400, "invalid_name", &format!("join with {name:?}"));
    }

    // Nothing was created: no topic, nothing beside the data dir, no partition
    // data on any broker, no file named like the tricks anywhere.
    let meta = raw_request(&leader, "GET", "/metadata", None, b"")
        .await
        .json();
    assert_eq!(meta["topics"].as_array().unwrap().len(), 0, "{meta}");
    assert_eq!(dir_entries(outer.path()), vec!["data".to_string()]);
    assert_eq!(
        dir_entries(&outer.path().join("data")),
        vec!["broker-0", "broker-1", "leader"]
    );
    for b in 0..2 {
        assert!(
            dir_entries(&partitions_root(&cluster, b)).is_empty(),
            "broker {b}: {:?}",
            dir_entries(&partitions_root(&cluster, b))
        );
    }
    let evil: Vec<_> = all_files(outer.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("evil"))
        .collect();
    assert!(evil.is_empty(), "{evil:?}");
    let parent = outer.path().parent().unwrap();
    assert!(!parent.join("evil").exists());
    assert_cluster_serves(&cluster, "after").await;
}

#[async_std::test]
async fn bad_produce_bodies_are_refused_and_change_nothing() {
    let outer = tempfile::tempdir().unwrap();
    let cluster = cluster_in(outer.path(), 2, 1).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c", "g", &["t"]).await;
    let good = send_n(&mut producer, "t", "good", 3).await;
    let broker = host_of_partition_0(&cluster, "t").await;
    let path = "/partitions/t/0/records";
    assert_eq!(end_offset(&broker, "t", 0).await, 3);

    let mut crc = batch(&["a", "b"]);
    let last = crc.len() - 1;
    crc[last] ^= 0x55; // a record byte: the CRC no longer matches
    let mut crc_field = batch(&["a"]);
    crc_field[17] ^= 0xff; // the CRC itself
    let mut truncated = batch(&["a", "b", "c"]);
    truncated.truncate(truncated.len() - 3);
    let mut two = batch(&["x"]);
    two.extend(batch(&["y"]));
    let mut trailing = batch(&["x"]);
    trailing.extend(b"junk");
    let mut bad_magic = batch(&["m"]);
    bad_magic[16] = 1;
    let mut bad_length = batch(&["l"]);
    bad_length[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not a record batch".to_vec()),
        ("empty body", Vec::new()),
        (
            "random bytes",
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect(),
        ),
        ("corrupted record (CRC mismatch)", crc),
        ("corrupted CRC field", crc_field),
        ("truncated batch", truncated),
        ("two batches", two),
        ("trailing bytes", trailing),
        ("bad magic", bad_magic),
        ("huge batch length", bad_length),
        ("header only", batch(&["h"])[..61].to_vec()),
    ];
    for (what, body) in &cases {
        let res = raw_request(
            &broker,
            "POST",
            path,
            Some("application/octet-stream"),
            body,
        )
        .await;
        assert_json_error(&res, 400, "invalid_request", what);
        assert_eq!(
            end_offset(&broker, "t", 0).await,
            3,
            "the end offset is unchanged after {what}"
        );
    }
    // Bad partition numbers.
    for bad in ["x", "-1", "4294967296", "0x1"] {
        let res = raw_request(
            &broker,
            "POST",
            &format!("/partitions/t/{bad}/records"),
            None,
            &batch(&["p"]),
        )
        .await;
        assert_json_error(&res, 400, "invalid_request", &format!("partition {bad}"));
    }
    // A partition this broker does not host.
    let res = raw_request(
        &broker,
        "POST",
        "/partitions/t/7/records",
        None,
        &batch(&["p"]),
    )
    .await;
    assert_json_error(&res, 421, "not_partition_owner", "partition 7");

    // A valid raw batch is accepted, at the next offset, whatever base offset it
    // claims.
    let mut ok = batch(&["raw-1", "raw-2"]);
    ok[..8].copy_from_slice(&12345i64.to_be_bytes());
    let res = raw_request(&broker, "POST", path, None, &ok).await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["base_offset"], 3);
    assert_eq!(res.json()["last_offset"], 4);
    let after = send_n(&mut producer, "t", "after", 2).await;
    let got = poll_exactly(&mut c, 7, T).await;
    let mut expected = good;
    expected.extend(["raw-1".to_string(), "raw-2".to_string()]);
    expected.extend(after);
    assert_eq!(values(&got), expected);
    let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..7).collect::<Vec<_>>());
}

#[async_std::test]
async fn an_oversize_produce_body_is_413_and_the_broker_keeps_serving() {
    let outer = tempfile::tempdir().unwrap();
    let cluster = cluster_in(outer.path(), 1, 1).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c", "g", &["t"]).await;
    send_n(&mut producer, "t", "before", 2).await;
    let broker = cluster.broker_addrs()[0].clone();
    let big = vec![0u8; 17 << 20];
    let res = raw_request(&broker, "POST", "/partitions/t/0/records", None, &big).await;
    assert_json_error(&res, 413, "too_large", "17 MiB produce body");
    let v = res.json();
    assert_eq!(v["limit"], 16 << 20, "{v}");
    assert_eq!(end_offset(&broker, "t", 0).await, 2);
    // A well-formed batch that is too large gets the same answer.
    let mut b = BatchBuilder::new();
    b.push(None, &vec![7u8; 17 << 20], 1);
    let res = raw_request(
        &broker,
        "POST",
        "/partitions/t/0/records",
        None,
        &b.finish(),
    )
    .await;
    assert_json_error(&res, 413, "too_large", "17 MiB batch");
    assert_eq!(end_offset(&broker, "t", 0).await, 2);
    // The producer gets the typed error.
    let err = producer
        .send_message("t".into(), vec![1u8; 17 << 20].into())
        .await
        .unwrap_err();
    assert!(matches!(err, logbrook::Error::TooLarge { .. }), "{err:?}");
    // The broker keeps serving.
    let after = send_n(&mut producer, "t", "after", 3).await;
    let got = poll_exactly(&mut c, 5, T).await;
    assert_eq!(&values(&got)[2..], &after[..]);
    assert_cluster_serves(&cluster, "later").await;
}

#[async_std::test]
async fn bad_fetch_parameters_are_400_and_past_the_end_is_416() {
    let outer = tempfile::tempdir().unwrap();
    let cluster = cluster_in(outer.path(), 1, 1).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    send_n(&mut producer, "t", "r", 5).await;
    let broker = cluster.broker_addrs()[0].clone();
    for query in [
        "offset=abc",
        "offset=-1",
        "offset=1.5",
        "offset=",
        "offset=99999999999999999999999",
        "offset=0&max_bytes=lots",
        "offset=0&max_bytes=-5",
    ] {
        let path = format!("/partitions/t/0/records?{query}");
        let res = raw_request(&broker, "GET", &path, None, b"").await;
        assert_json_error(&res, 400, "invalid_request", &path);
    }
    let res = raw_request(
        &broker,
        "GET",
        "/partitions/t/zero/records?offset=0",
        None,
        b"",
    )
    .await;
    assert_json_error(&res, 400, "invalid_request", "partition zero");
    for offset in [6u64, 100, u64::MAX] {
        let path = format!("/partitions/t/0/records?offset={offset}");
        let res = raw_request(&broker, "GET", &path, None, b"").await;
        assert_json_error(&res, 416, "offset_out_of_range", &path);
        let v = res.json();
        assert_eq!(v["end"], 5, "{v}");
        assert_eq!(v["requested"], offset, "{v}");
    }
    // The end itself is a valid, empty fetch.
    let res = raw_request(
        &broker,
        "GET",
        "/partitions/t/0/records?offset=5",
        None,
        b"",
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body.is_empty());
    assert_eq!(res.header("logbrook-end-offset"), Some("5"));
    // An offset inside the log returns whole batches starting at or before it.
    let res = raw_request(
        &broker,
        "GET",
        "/partitions/t/0/records?offset=2",
        None,
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    let offsets: Vec<i64> = logbrook::protocol::batch::batches(&res.body)
        .flat_map(|b| {
            let b = b.unwrap();
            logbrook::protocol::batch::records(b)
                .unwrap()
                .map(|r| r.unwrap().offset)
                .collect::<Vec<_>>()
        })
        .collect();
    // Whole batches: the first one may start before offset 2 (clients skip those).
    assert!(
        offsets.first().is_some_and(|first| *first <= 2),
        "{offsets:?}"
    );
    let from_two: Vec<i64> = offsets.into_iter().filter(|o| *o >= 2).collect();
    assert_eq!(from_two, vec![2, 3, 4]);
    assert_cluster_serves(&cluster, "after").await;
}
