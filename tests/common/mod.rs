//! Helpers shared by the integration tests: waiting for conditions, polling
//! consumers, reading the brokers' data dirs, and a raw HTTP/1.1 client for
//! requests the typed clients would never send.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use logbrook::protocol::control::TopicMetadata;
use logbrook::{Cluster, ClusterConfig, Consumer, Message, Producer, ServerId, Topic};

/// Polls `condition` every few milliseconds until it holds; panics with `what`
/// when it still does not hold after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `consumer` until at least `n` messages arrived in total; panics (showing
/// what did arrive) after `timeout`. Returns every message received, in order.
pub async fn poll_until(consumer: &mut Consumer, n: usize, timeout: Duration) -> Vec<Message> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        let batch = consumer
            .poll()
            .await
            .unwrap_or_else(|e| panic!("poll of {} failed: {e:?}", consumer.id()));
        got.extend(batch);
        if got.len() >= n {
            return got;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?}: consumer {} received {} of {n} messages: {:?}",
                consumer.id(),
                got.len(),
                values(&got)
            );
        }
        async_std::task::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `consumer` until `n` messages arrived, then polls a few more times and
/// asserts that nothing else arrives. Returns exactly `n` messages.
pub async fn poll_exactly(consumer: &mut Consumer, n: usize, timeout: Duration) -> Vec<Message> {
    let mut got = if n == 0 {
        Vec::new()
    } else {
        poll_until(consumer, n, timeout).await
    };
    got.extend(poll_quiet(consumer, 3).await);
    assert_eq!(
        got.len(),
        n,
        "consumer {} expected exactly {n} messages, got {}: {:?}",
        consumer.id(),
        got.len(),
        values(&got)
    );
    got
}

/// Polls `rounds` times (short pauses in between) and returns whatever arrived.
pub async fn poll_quiet(consumer: &mut Consumer, rounds: usize) -> Vec<Message> {
    let mut got = Vec::new();
    for _ in 0..rounds {
        got.extend(
            consumer
                .poll()
                .await
                .unwrap_or_else(|e| panic!("poll of {} failed: {e:?}", consumer.id())),
        );
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    got
}

/// Polls several consumers in turn until together they received at least `n`
/// messages. Returns the messages of each consumer.
pub async fn poll_all_until(
    consumers: &mut [&mut Consumer],
    n: usize,
    timeout: Duration,
) -> Vec<Vec<Message>> {
    let deadline = Instant::now() + timeout;
    let mut got: Vec<Vec<Message>> = vec![Vec::new(); consumers.len()];
    loop {
        for (i, c) in consumers.iter_mut().enumerate() {
            let batch = c
                .poll()
                .await
                .unwrap_or_else(|e| panic!("poll of {} failed: {e:?}", c.id()));
            got[i].extend(batch);
        }
        let total: usize = got.iter().map(Vec::len).sum();
        if total >= n {
            return got;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?}: the consumers received {total} of {n} messages");
        }
        async_std::task::sleep(Duration::from_millis(5)).await;
    }
}

/// The values of messages as strings.
pub fn values(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect()
}

/// Counts how often each value appears.
pub fn counts(messages: &[Message]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for v in values(messages) {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
}

/// Asserts that `messages` hold each of `expected` exactly once and nothing else.
pub fn assert_exactly_once(messages: &[Message], expected: &[String]) {
    let got = counts(messages);
    let mut want = BTreeMap::new();
    for v in expected {
        *want.entry(v.clone()).or_insert(0usize) += 1;
    }
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "records delivered more than once: {twice:?}"
    );
    let missing: Vec<_> = want.keys().filter(|v| !got.contains_key(*v)).collect();
    let extra: Vec<_> = got.keys().filter(|v| !want.contains_key(*v)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {} records {missing:?}; unexpected {} records {extra:?}",
        missing.len(),
        extra.len()
    );
    assert_eq!(got, want);
}

/// A cluster with fast heartbeats, so liveness changes show quickly.
pub fn fast_config(brokers: usize, partitions: usize) -> ClusterConfig {
    ClusterConfig {
        brokers,
        partitions_per_topic: partitions,
        heartbeat: Duration::from_millis(100),
        broker_timeout: Duration::from_millis(1500),
        ..Default::default()
    }
}

/// Starts a cluster or panics.
pub async fn start(config: ClusterConfig) -> Cluster {
    Cluster::start(config).await.expect("cluster starts")
}

/// A producer connected to the cluster.
pub async fn producer(cluster: &Cluster) -> Producer {
    Producer::new(cluster.leader_addr())
        .await
        .expect("producer connects")
}

/// A consumer in `group` subscribed to `topics`.
pub async fn member(cluster: &Cluster, id: &str, group: &str, topics: &[&str]) -> Consumer {
    let mut c = Consumer::new(id.into(), cluster.leader_addr())
        .await
        .expect("consumer connects");
    c.join_consumer_group(group.into()).await.expect("join");
    for t in topics {
        c.subscribe((*t).into()).await.expect("subscribe");
    }
    c
}

/// Sends `n` unkeyed records `"{prefix}-{i}"` and returns their values.
pub async fn send_n(producer: &mut Producer, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let v = format!("{prefix}-{i}");
        producer
            .send_message(topic.into(), v.as_str().into())
            .await
            .unwrap_or_else(|e| panic!("send {v} to {topic}: {e:?}"));
        sent.push(v);
    }
    // send_message only queues: wait until every record is acknowledged.
    producer.flush().await.expect("flush");
    sent
}

/// One topic's metadata, fresh from the leader.
pub async fn topic_meta(producer: &mut Producer, topic: &str) -> TopicMetadata {
    producer
        .list_topics()
        .await
        .expect("list topics")
        .into_iter()
        .find(|t| t.name == Topic::from(topic))
        .unwrap_or_else(|| panic!("topic {topic} is not listed"))
}

/// `data_dir/broker-i/partitions`.
pub fn partitions_root(cluster: &Cluster, broker: usize) -> PathBuf {
    cluster
        .data_dir()
        .join(format!("broker-{broker}"))
        .join("partitions")
}

/// Names of the entries in a directory (empty if it does not exist).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file below `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Which broker index (position in `broker_addrs()`) each partition lives on.
pub fn broker_index_of_partitions(cluster: &Cluster, meta: &TopicMetadata) -> HashMap<u32, usize> {
    let addrs = cluster.broker_addrs();
    meta.partitions
        .iter()
        .map(|p| {
            let i = addrs
                .iter()
                .position(|a| *a == p.broker_addr)
                .unwrap_or_else(|| panic!("partition {p:?} on an unknown broker {addrs:?}"));
            (p.partition, i)
        })
        .collect()
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the answer is a JSON error body with `error` and `message` strings;
    /// returns the `error` kind.
    pub fn error_kind(&self) -> String {
        let v = self.json();
        let kind = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"error\" string in {v}"))
            .to_string();
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no \"message\" string in {v}"
        );
        kind
    }
}

/// Sends one raw HTTP/1.1 request (`path` goes on the wire exactly as given) and
/// reads the whole answer. Write errors are ignored (a server may answer and close
/// before reading a large body), so the answer can still be read.
pub async fn raw_request(
    addr: &ServerId,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr.as_str())
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
    let mut raw = Vec::new();
    let read = async_std::io::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    if let Err(e) = read {
        // A reset after the answer arrived still leaves the answer in `raw`.
        assert!(
            !raw.is_empty(),
            "no answer to {method} {path} from {addr}: {e}"
        );
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// The end offset a broker reports for a partition (fetch from offset 0).
pub async fn end_offset(broker: &ServerId, topic: &str, partition: u32) -> u64 {
    let res = raw_request(
        broker,
        "GET",
        &format!("/partitions/{topic}/{partition}/records?offset=0"),
        None,
        b"",
    )
    .await;
    assert_eq!(
        res.status,
        200,
        "fetch {topic}/{partition} from {broker}: {:?}",
        String::from_utf8_lossy(&res.body)
    );
    res.header("logbrook-end-offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no end offset header in {:?}", res.headers))
}

/// Asserts an error answer: its status, its JSON `error` kind and content type.
pub fn assert_json_error(res: &RawResponse, status: u16, kind: &str, what: &str) {
    assert_eq!(
        res.status,
        status,
        "{what}: {:?}",
        String::from_utf8_lossy(&res.body)
    );
    assert_eq!(res.error_kind(), kind, "{what}: {}", res.json());
    assert!(
        res.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{what}: content type {:?}",
        res.header("content-type")
    );
}
