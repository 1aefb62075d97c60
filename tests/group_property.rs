//! Property: whatever the schedule of joins, leaves, silences (session
//! timeouts) and polls of a group's members while a producer writes, the group
//! as a whole receives exactly the records produced after its first
//! subscription, each once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use logbrook::{ClusterConfig, Consumer, ConsumerConfig, Message, Producer};
use proptest::prelude::*;

const TOPIC: &str = "p";
const GROUP: &str = "g";
const SESSION_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
enum Op {
    /// The producer sends this many records.
    Produce(usize),
    /// The producer sends records while every active member polls.
    ProduceWhilePolling(usize),
    /// Member i joins (subscribing the first time) unless it is in the group.
    Join(usize),
    /// Member i leaves if it is in the group.
    Leave(usize),
    /// Member i polls (if in the group and not silent).
    Poll(usize),
    /// Every member in the group and not silent polls, concurrently.
    PollAll,
    /// Member i stops polling (its session will time out).
    Silence(usize),
    /// Member i polls again after a silence.
    Wake(usize),
    /// Time passes (longer than the session timeout) without any poll.
    Pause,
}

#[derive(Debug, Clone)]
struct Schedule {
    members: usize,
    /// Records sent before the group's first subscription (never delivered).
    before: usize,
    /// Fewer records per poll for some cases, so positions move in small steps.
    max_poll_records: usize,
    ops: Vec<Op>,
}

fn op(members: usize) -> impl Strategy<Value = Op> {
    let m = 0..members;
    prop_oneof![
        3 => (10usize..=40).prop_map(Op::Produce),
        3 => (10usize..=40).prop_map(Op::ProduceWhilePolling),
        3 => m.clone().prop_map(Op::Join),
        2 => m.clone().prop_map(Op::Leave),
        2 => m.clone().prop_map(Op::Poll),
        3 => Just(Op::PollAll),
        1 => m.clone().prop_map(Op::Silence),
        1 => m.prop_map(Op::Wake),
        1 => Just(Op::Pause),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        2usize..=4,
        0usize..=20,
        prop_oneof![Just(10_000usize), Just(7)],
    )
        .prop_flat_map(|(members, before, max_poll_records)| {
            proptest::collection::vec(op(members), 20..40).prop_map(move |ops| Schedule {
                members,
                before,
                max_poll_records,
                ops,
            })
        })
}

struct Member {
    consumer: Consumer,
    joined: bool,
    silent: bool,
    got: Vec<Message>,
}

async fn send(producer: &mut Producer, seq: &mut usize, n: usize, sent: &mut Vec<String>) {
    for _ in 0..n {
        let v = format!("r{seq}");
        *seq += 1;
        producer
            .send_message(TOPIC.into(), v.as_str().into())
            .await
            .unwrap_or_else(|e| panic!("send {v}: {e:?}"));
        sent.push(v);
    }
    // send_message only queues: a record counts as produced once acknowledged.
    producer.flush().await.expect("flush");
}

/// Polls every member in the group that is not silent, concurrently (each on its
/// own task), while `produce` records are sent.
async fn poll_all(
    members: &mut Vec<Member>,
    producer: &mut Producer,
    seq: &mut usize,
    produce: usize,
    sent: &mut Vec<String>,
) {
    let mut tasks = Vec::new();
    let mut idle = Vec::new();
    for (i, m) in members.drain(..).enumerate() {
        if m.joined && !m.silent {
            tasks.push(async_std::task::spawn(async move {
                // Errors travel back to the caller: a panic inside a task would not.
                let mut m = m;
                let mut error = None;
                for _ in 0..2 {
                    match m.consumer.poll().await {
                        Ok(batch) => m.got.extend(batch),
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                (i, m, error)
            }));
        } else {
            idle.push((i, m));
        }
    }
    send(producer, seq, produce, sent).await;
    for t in tasks {
        let (i, m, error) = t.await;
        if let Some(e) = error {
            panic!("poll of member {i}: {e:?}");
        }
        idle.push((i, m));
    }
    idle.sort_by_key(|(i, _)| *i);
    members.extend(idle.into_iter().map(|(_, m)| m));
}

async fn run(schedule: Schedule) {
    let cluster = start(ClusterConfig {
        session_timeout: SESSION_TIMEOUT,
        ..fast_config(2, 4)
    })
    .await;
    let mut producer = producer(&cluster).await;
    producer
        .add_topic_with_partitions(TOPIC.into(), 4)
        .await
        .unwrap();
    let mut seq = 0usize;
    let mut ignored = Vec::new();
    send(&mut producer, &mut seq, schedule.before, &mut ignored).await;

    let mut members = Vec::new();
    for i in 0..schedule.members {
        let consumer = Consumer::with_config(
            format!("m{i}").into(),
            cluster.leader_addr(),
            ConsumerConfig {
                max_poll_records: schedule.max_poll_records,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        members.push(Member {
            consumer,
            joined: false,
            silent: false,
            got: Vec::new(),
        });
    }
    // The group's first subscription: records from here on must all arrive.
    members[0]
        .consumer
        .join_consumer_group(GROUP.into())
        .await
        .unwrap();
    members[0].consumer.subscribe(TOPIC.into()).await.unwrap();
    members[0].joined = true;
    let mut sent = Vec::new();
    let mut pauses = 0;

    for op in &schedule.ops {
        match *op {
            Op::Produce(n) => send(&mut producer, &mut seq, n, &mut sent).await,
            Op::ProduceWhilePolling(n) => {
                poll_all(&mut members, &mut producer, &mut seq, n, &mut sent).await
            }
            Op::PollAll => poll_all(&mut members, &mut producer, &mut seq, 0, &mut sent).await,
            Op::Join(i) => {
                let m = &mut members[i];
                if !m.joined {
                    m.consumer
                        .join_consumer_group(GROUP.into())
                        .await
                        .unwrap_or_else(|e| panic!("join of member {i}: {e:?}"));
                    if m.consumer.subscriptions().count() == 0 {
                        m.consumer
                            .subscribe(TOPIC.into())
                            .await
                            .unwrap_or_else(|e| panic!("subscribe of member {i}: {e:?}"));
                    }
                    m.joined = true;
                    m.silent = false;
                }
            }
            Op::Leave(i) => {
                let m = &mut members[i];
                if m.joined {
                    m.consumer
                        .leave_consumer_group()
                        .await
                        .unwrap_or_else(|e| panic!("leave of member {i}: {e:?}"));
                    m.joined = false;
                    m.silent = false;
                }
            }
            Op::Poll(i) => {
                let m = &mut members[i];
                if m.joined && !m.silent {
                    let batch = m.consumer.poll().await;
                    m.got
                        .extend(batch.unwrap_or_else(|e| panic!("poll of member {i}: {e:?}")));
                }
            }
            Op::Silence(i) => {
                if members[i].joined {
                    members[i].silent = true;
                }
            }
            Op::Wake(i) => members[i].silent = false,
            Op::Pause => {
                // Letting time pass is the point here (session timeouts), not a
                // way to wait for something; at most two per schedule.
                if pauses < 2 {
                    pauses += 1;
                    async_std::task::sleep(SESSION_TIMEOUT + Duration::from_millis(150)).await;
                }
            }
        }
    }

    // The producer stops. Make sure someone is there to drain, then the members
    // still in the group (silent ones stay silent) poll until everything arrived.
    if !members.iter().any(|m| m.joined && !m.silent) {
        let m = &mut members[0];
        if !m.joined {
            m.consumer.join_consumer_group(GROUP.into()).await.unwrap();
            m.joined = true;
        }
        m.silent = false;
    }
    let total = |members: &Vec<Member>| members.iter().map(|m| m.got.len()).sum::<usize>();
    let deadline = Instant::now() + Duration::from_secs(8);
    while total(&members) < sent.len() && Instant::now() < deadline {
        poll_all(&mut members, &mut producer, &mut seq, 0, &mut Vec::new()).await;
    }
    // Quiet: a few more rounds must bring nothing new.
    for _ in 0..2 {
        poll_all(&mut members, &mut producer, &mut seq, 0, &mut Vec::new()).await;
    }
    let mut all = Vec::new();
    let mut per_member = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        per_member.insert(i, m.got.len());
        all.extend(m.got.iter().cloned());
    }
    assert!(
        all.iter().all(|m| m.topic.as_str() == TOPIC),
        "foreign records"
    );
    let got = counts(&all);
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "delivered more than once: {twice:?} (per member {per_member:?})"
    );
    let early: Vec<_> = ignored.iter().filter(|v| got.contains_key(*v)).collect();
    assert!(
        early.is_empty(),
        "records sent before the first subscription were delivered: {early:?}"
    );
    let missing: Vec<_> = sent.iter().filter(|v| !got.contains_key(*v)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} records never delivered: {missing:?} (per member {per_member:?})",
        missing.len(),
        sent.len()
    );
    assert_exactly_once(&all, &sent);
    // Per partition, the group saw offsets in a contiguous run.
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for m in &all {
        by_partition.entry(m.partition).or_default().push(m.offset);
    }
    for (p, mut offsets) in by_partition {
        offsets.sort();
        let first = offsets[0];
        let expected: Vec<u64> = (first..first + offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "partition {p}: gaps or repeats");
    }
    drop(members);
    cluster.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_group_receives_every_record_after_its_first_subscription_exactly_once(
        schedule in schedule()
    ) {
        async_std::task::block_on(run(schedule));
    }
}
