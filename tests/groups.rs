//! Consumer groups: membership errors, subscriptions kept across rejoin, splitting
//! partitions, independent groups, start positions, rejoin positions, session
//! timeouts.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use logbrook::{ClusterConfig, Consumer, Error, Topic};

const T: Duration = Duration::from_secs(5);

fn not_in_group<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::NotInGroup { .. }) => {}
        other => panic!("{what}: expected NotInGroup, got {other:?}"),
    }
}

#[async_std::test]
async fn calls_outside_a_group_fail_with_not_in_group() {
    let cluster = start(fast_config(2, 2)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = Consumer::new("c1".into(), cluster.leader_addr())
        .await
        .unwrap();
    not_in_group(c.poll().await, "poll before join");
    not_in_group(c.subscribe("t".into()).await, "subscribe before join");
    not_in_group(c.unsubscribe("t".into()).await, "unsubscribe before join");
    not_in_group(c.leave_consumer_group().await, "leave before join");
    assert!(c.group().is_none());

    c.join_consumer_group("g".into()).await.unwrap();
    c.subscribe("t".into()).await.unwrap();
    assert!(c.poll().await.unwrap().is_empty());
    c.leave_consumer_group().await.unwrap();
    assert!(c.group().is_none());
    not_in_group(c.poll().await, "poll after leave");
    not_in_group(c.subscribe("t".into()).await, "subscribe after leave");
    not_in_group(c.leave_consumer_group().await, "leave twice");
    // Records sent now are not handed to a consumer outside the group.
    send_n(&mut producer, "t", "x", 4).await;
    not_in_group(c.poll().await, "poll after leave, with records waiting");
}

#[async_std::test]
async fn subscribing_twice_is_harmless() {
    let cluster = start(fast_config(2, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["t"]).await;
    let first = send_n(&mut producer, "t", "a", 9).await;
    c.subscribe("t".into()).await.unwrap();
    let second = send_n(&mut producer, "t", "b", 9).await;
    c.subscribe("t".into()).await.unwrap();
    assert_eq!(
        c.subscriptions().cloned().collect::<Vec<_>>(),
        vec![Topic::from("t")]
    );
    let got = poll_exactly(&mut c, 18, T).await;
    let mut expected = first;
    expected.extend(second);
    assert_exactly_once(&got, &expected);
}

#[async_std::test]
async fn a_member_keeps_its_subscriptions_across_leave_and_rejoin() {
    let cluster = start(fast_config(2, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    producer.add_topic("u".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["t", "u"]).await;
    let before = send_n(&mut producer, "t", "before", 5).await;
    assert_exactly_once(&poll_exactly(&mut c, 5, T).await, &before);
    c.leave_consumer_group().await.unwrap();
    assert_eq!(c.subscriptions().count(), 2, "kept locally");
    let t_gap = send_n(&mut producer, "t", "gap", 5).await;
    let u_gap = send_n(&mut producer, "u", "ugap", 4).await;
    c.join_consumer_group("g".into()).await.unwrap();
    // No subscribe: the subscriptions came along with the join.
    let after = send_n(&mut producer, "t", "after", 5).await;
    let got = poll_exactly(&mut c, 14, T).await;
    let mut expected = t_gap;
    expected.extend(u_gap);
    expected.extend(after);
    assert_exactly_once(&got, &expected);
}

#[async_std::test]
async fn two_members_of_a_group_split_the_partitions() {
    let cluster = start(fast_config(3, 4)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut a = member(&cluster, "a", "g", &["t"]).await;
    let mut b = member(&cluster, "b", "g", &["t"]).await;
    // Both have synced with the group's current generation.
    assert!(a.poll().await.unwrap().is_empty());
    assert!(b.poll().await.unwrap().is_empty());
    let sent = send_n(&mut producer, "t", "r", 200).await;
    let got = poll_all_until(&mut [&mut a, &mut b], 200, T).await;
    let (ga, gb) = (&got[0], &got[1]);
    let mut extra = poll_quiet(&mut a, 2).await;
    extra.extend(poll_quiet(&mut b, 2).await);
    assert!(extra.is_empty(), "extra records: {:?}", values(&extra));
    let mut all = ga.clone();
    all.extend(gb.iter().cloned());
    assert_exactly_once(&all, &sent);
    let pa: BTreeSet<u32> = ga.iter().map(|m| m.partition).collect();
    let pb: BTreeSet<u32> = gb.iter().map(|m| m.partition).collect();
    assert_eq!(pa.len(), 2, "a owns two partitions: {pa:?}");
    assert_eq!(pb.len(), 2, "b owns two partitions: {pb:?}");
    assert!(pa.is_disjoint(&pb), "{pa:?} {pb:?}");
    assert_eq!(ga.len() + gb.len(), 200);
}

#[async_std::test]
async fn a_member_leaving_hands_its_partitions_to_the_other() {
    let cluster = start(fast_config(2, 4)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut a = member(&cluster, "a", "g", &["t"]).await;
    let mut b = member(&cluster, "b", "g", &["t"]).await;
    let first = send_n(&mut producer, "t", "first", 40).await;
    let got = poll_all_until(&mut [&mut a, &mut b], 40, T).await;
    assert!(!got[0].is_empty() && !got[1].is_empty());
    b.leave_consumer_group().await.unwrap();
    let second = send_n(&mut producer, "t", "second", 40).await;
    let got_a = poll_exactly(&mut a, 40, T).await;
    assert_exactly_once(&got_a, &second);
    let parts: BTreeSet<u32> = got_a.iter().map(|m| m.partition).collect();
    assert_eq!(parts.len(), 4, "a now owns every partition");
    let mut all = got.concat();
    all.extend(got_a);
    let mut expected = first;
    expected.extend(second);
    assert_exactly_once(&all, &expected);
}

#[async_std::test]
async fn two_groups_each_receive_every_record() {
    let cluster = start(fast_config(3, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut a1 = member(&cluster, "a1", "ga", &["t"]).await;
    let mut a2 = member(&cluster, "a2", "ga", &["t"]).await;
    let mut b1 = member(&cluster, "b1", "gb", &["t"]).await;
    let sent = send_n(&mut producer, "t", "r", 60).await;
    let ga = poll_all_until(&mut [&mut a1, &mut a2], 60, T).await;
    let gb = poll_exactly(&mut b1, 60, T).await;
    let mut extra = poll_quiet(&mut a1, 2).await;
    extra.extend(poll_quiet(&mut a2, 2).await);
    assert!(extra.is_empty(), "{:?}", values(&extra));
    assert_exactly_once(&ga.concat(), &sent);
    assert_exactly_once(&gb, &sent);
}

#[async_std::test]
async fn a_new_group_only_gets_records_produced_after_it_subscribed() {
    let cluster = start(fast_config(2, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let old = send_n(&mut producer, "t", "old", 20).await;
    let mut early = member(&cluster, "early", "early-group", &["t"]).await;
    let mid = send_n(&mut producer, "t", "mid", 10).await;
    let mut c = Consumer::new("late".into(), cluster.leader_addr())
        .await
        .unwrap();
    c.join_consumer_group("late-group".into()).await.unwrap();
    // Joined but not subscribed yet: nothing.
    assert!(c.poll().await.unwrap().is_empty());
    c.subscribe("t".into()).await.unwrap();
    let new = send_n(&mut producer, "t", "new", 10).await;
    assert_exactly_once(&poll_exactly(&mut c, 10, T).await, &new);
    let mut expected = mid;
    expected.extend(new);
    assert_exactly_once(&poll_exactly(&mut early, 20, T).await, &expected);
    assert_eq!(old.len(), 20);
}

#[async_std::test]
async fn a_rejoining_consumer_continues_from_the_group_position() {
    let cluster = start(fast_config(2, 3)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut c = member(&cluster, "c1", "g", &["t"]).await;
    let first = send_n(&mut producer, "t", "first", 15).await;
    assert_exactly_once(&poll_exactly(&mut c, 15, T).await, &first);
    c.leave_consumer_group().await.unwrap();
    let while_away = send_n(&mut producer, "t", "away", 15).await;
    c.join_consumer_group("g".into()).await.unwrap();
    let got = poll_exactly(&mut c, 15, T).await;
    assert_exactly_once(&got, &while_away);

    // A different consumer taking over the group also continues where it is.
    c.leave_consumer_group().await.unwrap();
    let later = send_n(&mut producer, "t", "later", 12).await;
    let mut d = member(&cluster, "c2", "g", &["t"]).await;
    assert_exactly_once(&poll_exactly(&mut d, 12, T).await, &later);

    // And a consumer switching to another group and back.
    let mut e = member(&cluster, "c3", "other", &["t"]).await;
    let more = send_n(&mut producer, "t", "more", 6).await;
    assert_exactly_once(&poll_exactly(&mut e, 6, T).await, &more);
    d.join_consumer_group("other".into()).await.unwrap();
    assert_eq!(d.group(), Some(&"other".into()));
    let last = send_n(&mut producer, "t", "last", 9).await;
    d.join_consumer_group("g".into()).await.unwrap();
    // Group g's position was at "more": it gets "more" and "last".
    let got_d = poll_exactly(&mut d, 15, T).await;
    let mut expected = more.clone();
    expected.extend(last.clone());
    assert_exactly_once(&got_d, &expected);
    // Group other: e alone now (d left it), gets "last" only.
    assert_exactly_once(&poll_exactly(&mut e, 9, T).await, &last);
}

#[async_std::test]
async fn a_silent_member_times_out_and_rejoins_when_it_polls_again() {
    let cluster = start(ClusterConfig {
        session_timeout: Duration::from_millis(300),
        ..fast_config(2, 4)
    })
    .await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut active = member(&cluster, "active", "g", &["t"]).await;
    let mut silent = member(&cluster, "silent", "g", &["t"]).await;
    let warmup = send_n(&mut producer, "t", "warm", 20).await;
    let got = poll_all_until(&mut [&mut active, &mut silent], 20, T).await;
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both own partitions at first"
    );
    let mut delivered = got.concat();

    // `silent` stops polling; `active` keeps polling and ends up with every
    // partition, so it receives all the records sent meanwhile.
    let during = send_n(&mut producer, "t", "during", 40).await;
    let got_active = poll_until(&mut active, 40, T).await;
    let parts: BTreeSet<u32> = got_active.iter().map(|m| m.partition).collect();
    assert_eq!(
        parts.len(),
        4,
        "the silent member's partitions moved: {parts:?}"
    );
    delivered.extend(got_active);

    // The silent one comes back: no error, it rejoins and shares again.
    let back = silent.poll().await;
    assert!(back.is_ok(), "poll after a session timeout: {back:?}");
    delivered.extend(back.unwrap());
    assert_eq!(silent.group(), Some(&"g".into()));
    let after = send_n(&mut producer, "t", "after", 40).await;
    let got = poll_all_until(&mut [&mut active, &mut silent], 40, T).await;
    assert!(
        !got[1].is_empty(),
        "the rejoined member owns partitions again"
    );
    delivered.extend(got.concat());
    delivered.extend(poll_quiet(&mut active, 2).await);
    delivered.extend(poll_quiet(&mut silent, 2).await);
    let mut expected = warmup;
    expected.extend(during);
    expected.extend(after);
    assert_exactly_once(&delivered, &expected);
}

#[async_std::test]
async fn records_given_back_with_rewind_reach_the_group_again_once() {
    let cluster = start(fast_config(1, 1)).await;
    let mut producer = producer(&cluster).await;
    producer.add_topic("t".into()).await.unwrap();
    let mut a = member(&cluster, "a", "g", &["t"]).await;
    let sent = send_n(&mut producer, "t", "r", 10).await;
    let took = poll_exactly(&mut a, 10, T).await;
    // The application handled the first 3 and gives the other 7 back (closing).
    let given_back = a.rewind(&took[3..]).await.unwrap();
    assert_eq!(given_back, 7);
    a.leave_consumer_group().await.unwrap();
    let mut b = member(&cluster, "b", "g", &["t"]).await;
    let again = poll_exactly(&mut b, 7, T).await;
    assert_eq!(values(&again), sent[3..].to_vec());
    assert!(poll_quiet(&mut b, 2).await.is_empty(), "nothing twice");
    // A member that left cannot rewind anything.
    assert!(matches!(
        a.rewind(&again).await,
        Err(Error::NotInGroup { .. })
    ));
}

/// A poll that does not wait returns every record acknowledged before it, also while
/// the fetch the consumer started beside its last commit (the prefetch) is still
/// out; a waiting poll takes that prefetch's records. Each record exactly once.
#[async_std::test]
async fn polls_see_every_acknowledged_record_with_a_prefetch_in_flight() {
    for partitions in [1, 3] {
        let cluster = start(fast_config(1, partitions)).await;
        let mut producer = producer(&cluster).await;
        producer.add_topic("pf".into()).await.unwrap();
        let mut c = member(&cluster, "c1", "g", &["pf"]).await;
        let mut got = Vec::new();
        let mut sent = Vec::new();
        for round in 0..5 {
            // Records acknowledged before polling: polls that do not wait return
            // them (a prefetch may hold some partitions' share: a second poll has
            // the rest), never an empty answer while records are there.
            let batch = send_n(&mut producer, "pf", &format!("now-{round}"), 10).await;
            let mut polled = Vec::new();
            for _ in 0..2 {
                let more = c.poll().await.expect("poll");
                assert!(!more.is_empty() || polled.len() == batch.len());
                polled.extend(more);
            }
            assert_eq!(
                values(&polled).len(),
                batch.len(),
                "{partitions} partition(s), round {round}: two polls returned {:?}",
                values(&polled)
            );
            got.extend(polled);
            sent.extend(batch);
            // Records that arrive while a waiting poll (and its prefetch) is out.
            let later = send_n(&mut producer, "pf", &format!("later-{round}"), 10).await;
            got.extend(poll_until(&mut c, later.len(), Duration::from_secs(10)).await);
            sent.extend(later);
        }
        assert_exactly_once(&got, &sent);
    }
}
