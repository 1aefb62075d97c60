"""logbrook's promises (README "What it promises"), checked through Python: keys and
order, consumer groups, where subscriptions start, errors, durability, topics."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest

import logbrook
from _support import (
    assert_exactly_once,
    assert_quiet,
    collect,
    collect_group,
    collect_values,
    key_for_partition,
    partition_for_key,
    send_acked,
    values,
)


def offsets_are_contiguous(messages) -> None:
    """Per partition, in the order received: offsets 0, 1, 2, ... with no gap."""
    by_partition = defaultdict(list)
    for m in messages:
        by_partition[(m.topic, m.partition)].append(m.offset)
    for where, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), f"{where}: {offsets}"


# --- keys and order ---


def test_keyed_records_go_to_one_partition_and_keep_their_order(producer, make_consumer):
    producer.add_topic("ordered")  # 3 partitions
    consumer = make_consumer("g", ["ordered"])
    keys = [f"user-{k}" for k in range(8)]
    rounds = 30
    for i in range(rounds):
        for key in keys:
            producer.send_message("ordered", f"{key}:{i}", key=key)

    got = collect(consumer, rounds * len(keys))
    assert len(got) == rounds * len(keys)
    by_key = defaultdict(list)
    for m in got:
        by_key[m.key.decode()].append(m)
    assert sorted(by_key) == sorted(keys)
    for key, messages in by_key.items():
        # murmur2(key) % partitions, Kafka's own partitioner (README).
        assert {m.partition for m in messages} == {partition_for_key(key.encode(), 3)}, key
        assert values(messages) == [f"{key}:{i}".encode() for i in range(rounds)], key
    offsets_are_contiguous(got)


def test_unkeyed_records_spread_round_robin(producer, make_consumer):
    producer.add_topic("spread")  # 3 partitions on 3 live brokers
    consumer = make_consumer("g", ["spread"])
    for i in range(30):
        producer.send_message("spread", f"u{i}")
    got = collect(consumer, 30)
    assert Counter(m.partition for m in got) == {0: 10, 1: 10, 2: 10}
    offsets_are_contiguous(got)


def test_order_is_kept_per_partition_for_each_member_of_a_group(producer, make_consumer):
    producer.add_topic("split", partitions=4)
    members = [make_consumer("g", ["split"]) for _ in range(2)]
    for m in members:
        assert m.poll() == []  # both members know the split before records come
    sent = [f"s{i:03}".encode() for i in range(200)]
    for i, value in enumerate(sent):
        producer.send_message("split", value, key=f"k{i % 16}")
    per_member = collect_group(members, len(sent), max_records=7)
    assert_exactly_once(values(sum(per_member, [])), sent)
    partitions = [{m.partition for m in got} for got in per_member]
    assert all(partitions), "both members got partitions"
    assert not partitions[0] & partitions[1], "a partition belongs to one member"
    for got in per_member:
        offsets_are_contiguous(got)
        for key in {m.key for m in got}:
            mine = [m.value for m in got if m.key == key]
            assert mine == sorted(mine), f"order of key {key!r}"


# --- consumer groups ---


def test_group_gets_each_record_exactly_once_while_members_join_and_leave(
    producer, make_consumer
):
    producer.add_topic("churn", partitions=6)
    a = make_consumer("workers", ["churn"], name="member-a")
    b = make_consumer("workers", ["churn"], name="member-b")
    c = make_consumer(name="member-c")  # joins later
    members = {"a": a, "b": b, "c": c}
    received = {name: [] for name in members}
    active = {"a", "b"}

    def c_joins():
        c.join_consumer_group("workers")
        c.subscribe("churn")
        active.add("c")

    def leaves(name):
        def act():
            members[name].leave_consumer_group()
            active.discard(name)
            with pytest.raises(logbrook.NotInGroupError):
                members[name].poll()

        return act

    def rejoins(name):
        def act():
            members[name].join_consumer_group("workers")  # no subscribe: it is kept
            active.add(name)

        return act

    def c_closes():
        c.close()
        active.discard("c")

    schedule = {
        2: c_joins,
        4: leaves("a"),
        5: c_closes,
        6: leaves("b"),  # nobody in the group now: records wait at its positions
        7: rejoins("a"),
        9: rejoins("b"),
        11: leaves("a"),
        12: rejoins("a"),
    }
    sent = []
    for round_ in range(16):
        if round_ in schedule:
            schedule[round_]()
        for i in range(25):
            value = f"r{round_:02}-{i:02}".encode()
            producer.send_message("churn", value, key=None if i % 3 else f"k{i}")
            sent.append(value)
        for name in sorted(active):
            # Small batches, so a backlog builds up and moves between members.
            received[name].extend(members[name].poll(max_records=9))

    assert active == {"a", "b"}
    missing = len(sent) - sum(map(len, received.values()))
    rest_a, rest_b = collect_group([a, b], missing)
    received["a"] += rest_a
    received["b"] += rest_b
    everything = [m.value for got in received.values() for m in got]
    assert_exactly_once(everything, sent)
    assert all(received.values()), {k: len(v) for k, v in received.items()}
    assert_quiet([a, b])
    # Together the members saw each partition's offsets exactly once, in order.
    by_partition = defaultdict(list)
    for got in received.values():
        for m in got:
            by_partition[m.partition].append(m.offset)
    for partition, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), partition


def test_breaking_out_of_an_iteration_and_closing_loses_no_records(
    leader, producer, make_consumer
):
    # The usual Python pattern: take what you need from an iteration, then close.
    # No crash, so every record must still reach exactly one member of the group.
    producer.add_topic("handoff", partitions=1)
    later = make_consumer(name="later")
    sent = [f"h{i}".encode() for i in range(10)]
    with logbrook.Consumer("early", leader) as early:
        early.join_consumer_group("g")
        early.subscribe("handoff")
        for value in sent:
            producer.send_message("handoff", value)
        producer.flush()
        for message in early:
            first = message
            break
    later.join_consumer_group("g")
    later.subscribe("handoff")
    rest = collect(later, len(sent) - 1, timeout=3)
    assert_exactly_once([first.value, *values(rest)], sent)


def test_leaving_in_the_middle_of_an_iteration_loses_no_records(producer, make_consumer):
    producer.add_topic("midway", partitions=1)
    member = make_consumer("g", ["midway"])
    sent = [f"m{i}".encode() for i in range(10)]
    for value in sent:
        producer.send_message("midway", value)
    producer.flush()
    first = next(iter(member))
    member.leave_consumer_group()
    with pytest.raises(logbrook.NotInGroupError):
        member.poll()
    # The rest reaches the group: the other member now, or this one once back.
    other = make_consumer("g", ["midway"])
    got = [first, *collect(other, len(sent) - 1, timeout=2)]
    member.join_consumer_group("g")
    got += collect(member, len(sent) - len(got), timeout=2)
    got += other.poll()
    assert_exactly_once(values(got), sent)


def test_a_silent_member_times_out_and_rejoins_by_itself(producer, make_consumer):
    # README: a member silent for the session timeout (10 s) leaves the group; if it
    # polls again it rejoins by itself and continues from the group's positions.
    producer.add_topic("sessions", partitions=4)
    silent = make_consumer("g", ["sessions"])
    busy = make_consumer("g", ["sessions"])
    assert silent.poll() == [] and busy.poll() == []  # both hold partitions now
    sent = [f"s{i:02}".encode() for i in range(40)]
    for value in sent:
        producer.send_message("sessions", value)
    started = time.monotonic()
    # Half the records wait on the silent member's partitions until it times out.
    got_busy = collect(busy, len(sent), timeout=30)
    waited = time.monotonic() - started
    assert_exactly_once(values(got_busy), sent)
    assert waited > 5, f"the silent member's partitions moved after only {waited:.1f}s"

    more = [f"t{i:02}".encode() for i in range(40)]
    for value in more:
        producer.send_message("sessions", value)
    got_silent = silent.poll(timeout=5)  # rejoins, no NotInGroupError
    got = got_silent + sum(collect_group([silent, busy], len(more) - len(got_silent)), [])
    assert_exactly_once(values(got), more)
    assert_quiet([silent, busy])


def test_every_group_gets_every_record(producer, make_consumer):
    producer.add_topic("fanout")
    pair = [make_consumer("pair", ["fanout"]) for _ in range(2)]
    solo = make_consumer("solo", ["fanout"])
    third = make_consumer("third", ["fanout"])
    sent = [f"f{i}".encode() for i in range(30)]
    for value in sent:
        producer.send_message("fanout", value)

    assert_exactly_once(values(sum(collect_group(pair, len(sent)), [])), sent)
    assert_exactly_once(values(collect(solo, len(sent))), sent)
    assert_exactly_once(values(collect(third, len(sent))), sent)
    assert_quiet([*pair, solo, third])


def test_a_new_subscription_starts_at_the_end_of_the_log(producer, make_consumer):
    producer.add_topic("late")
    for i in range(10):
        producer.send_message("late", f"before-{i}")
    producer.flush()  # stored before anyone subscribes
    first = make_consumer("first", ["late"])
    assert first.poll(timeout=0.3) == []

    after = [f"after-{i}".encode() for i in range(6)]
    for value in after:
        producer.send_message("late", value)
    assert_exactly_once(values(collect(first, len(after))), after)

    # Another group subscribing now starts at the end too; the first group goes on.
    second = make_consumer("second", ["late"])
    more = [f"more-{i}".encode() for i in range(4)]
    for value in more:
        producer.send_message("late", value)
    assert_exactly_once(values(collect(second, len(more))), more)
    assert_exactly_once(values(collect(first, len(more))), more)
    assert_quiet([first, second])


def test_a_new_member_continues_from_its_groups_positions(producer, make_consumer):
    producer.add_topic("shared")
    first = make_consumer("g", ["shared"])
    pending = [f"p{i}".encode() for i in range(9)]
    for value in pending:
        producer.send_message("shared", value)
    # The group already reads "shared": a member subscribing now does not skip to the
    # end, the records not yet polled reach the group.
    newcomer = make_consumer("g", ["shared"])
    assert_exactly_once(values(sum(collect_group([first, newcomer], 9), [])), pending)


def test_a_member_that_leaves_and_rejoins_keeps_its_subscriptions(producer, make_consumer):
    producer.add_topic("back")
    producer.add_topic("also")
    consumer = make_consumer("g", ["back", "also"])
    producer.send_message("back", b"b1")
    producer.send_message("also", b"a1")
    assert sorted(values(collect(consumer, 2))) == [b"a1", b"b1"]

    consumer.leave_consumer_group()
    while_away = [b"b2", b"b3", b"b4"]
    for value in while_away:
        producer.send_message("back", value)
    producer.send_message("also", b"a2")
    with pytest.raises(logbrook.NotInGroupError):
        consumer.poll(timeout=0.5)

    consumer.join_consumer_group("g")  # no subscribe calls
    got = collect(consumer, 4)
    assert_exactly_once(values(got), [*while_away, b"a2"])
    assert_quiet([consumer])


def test_unsubscribe_stops_a_topic(producer, make_consumer):
    producer.add_topic("keep")
    producer.add_topic("drop")
    consumer = make_consumer("g", ["keep", "drop"])
    consumer.unsubscribe("drop")
    producer.send_message("drop", b"unwanted")
    producer.send_message("keep", b"wanted")
    assert values(collect(consumer, 1)) == [b"wanted"]
    assert_quiet([consumer])


# --- errors ---


def test_consumer_must_join_a_group_first(leader, producer, make_consumer):
    producer.add_topic("t")
    consumer = make_consumer(name="loner")
    calls = {
        "subscribe": lambda: consumer.subscribe("t"),
        "unsubscribe": lambda: consumer.unsubscribe("t"),
        "poll": lambda: consumer.poll(),
        "poll(timeout)": lambda: consumer.poll(timeout=5),
        "poll(max_records)": lambda: consumer.poll(max_records=1),
        "leave": consumer.leave_consumer_group,
        "next": lambda: next(iter(consumer)),
    }
    for what, call in calls.items():
        started = time.monotonic()
        with pytest.raises(logbrook.NotInGroupError) as caught:
            call()
        assert time.monotonic() - started < 2.0, f"{what} waited instead of raising"
        assert isinstance(caught.value, logbrook.LogbrookError)
        assert caught.value.details["error"] == "not_in_group", what
        assert caught.value.details["consumer"] == "loner", what
        assert "loner" in str(caught.value)

    # Also after leaving: an error, not an empty list.
    consumer.join_consumer_group("g")
    consumer.subscribe("t")
    assert consumer.poll() == []
    consumer.leave_consumer_group()
    with pytest.raises(logbrook.NotInGroupError):
        consumer.poll()
    with pytest.raises(logbrook.NotInGroupError):
        consumer.subscribe("t")


def test_unknown_topics_raise_unknown_topic_error(producer, make_consumer):
    consumer = make_consumer("g")
    with pytest.raises(logbrook.UnknownTopicError) as sent:
        producer.send_message("nowhere", b"x")
    assert sent.value.details["topic"] == "nowhere"
    assert sent.value.details["error"] == "unknown_topic"
    with pytest.raises(logbrook.UnknownTopicError) as subscribed:
        consumer.subscribe("nowhere")
    assert subscribed.value.details["topic"] == "nowhere"
    with pytest.raises(logbrook.UnknownTopicError):
        producer.remove_topic("nowhere")
    with pytest.raises(logbrook.UnknownTopicError):
        producer.send_message("nowhere", b"x", key=b"k")

    # Nothing was left half done: the consumer works, the topic can be created.
    assert consumer.poll() == []
    producer.add_topic("nowhere")
    consumer.subscribe("nowhere")
    producer.send_message("nowhere", b"now here")
    assert values(collect(consumer, 1)) == [b"now here"]


def test_creating_a_topic_twice_raises_topic_exists_error(leader, producer, make_consumer):
    producer.add_topic("once", partitions=2)
    consumer = make_consumer("g", ["once"])
    with pytest.raises(logbrook.TopicExistsError) as caught:
        producer.add_topic("once")
    assert caught.value.details["topic"] == "once"
    assert isinstance(caught.value, logbrook.LogbrookError)
    with logbrook.Producer(leader) as other:
        with pytest.raises(logbrook.TopicExistsError):
            other.add_topic("once", partitions=5)
        # The topic is untouched: still 2 partitions, still working.
        for i in range(6):
            other.send_message("once", f"v{i}")
    got = collect(consumer, 6)
    assert {m.partition for m in got} == {0, 1}


@pytest.mark.parametrize(
    "bad", ["", "bad/name", "..", ".", "with space", "semi;colon", "ünïcode", "x" * 250]
)
def test_invalid_names_raise_invalid_name_error(bad, leader, producer, make_consumer):
    with pytest.raises(ValueError) as as_value_error:
        producer.add_topic(bad)
    err = as_value_error.value
    assert isinstance(err, logbrook.InvalidNameError)
    assert isinstance(err, logbrook.LogbrookError)
    assert err.details["error"] == "invalid_name"
    assert err.details["what"] == "topic"

    consumer = make_consumer()
    with pytest.raises(logbrook.InvalidNameError) as group_error:
        consumer.join_consumer_group(bad)
    assert group_error.value.details["what"] in ("group", "consumer group")
    with pytest.raises(logbrook.InvalidNameError):
        producer.send_message(bad, b"x")
    consumer.join_consumer_group("g")
    with pytest.raises(logbrook.InvalidNameError):
        consumer.subscribe(bad)


def test_invalid_consumer_id_raises_invalid_name_error(leader):
    for bad in ("", "has space", "slash/id"):
        with pytest.raises(logbrook.InvalidNameError):
            logbrook.Consumer(bad, leader)


def test_topic_with_zero_partitions_is_refused(producer):
    with pytest.raises(logbrook.InvalidRequestError):
        producer.add_topic("empty", partitions=0)
    with pytest.raises(logbrook.UnknownTopicError):
        producer.send_message("empty", b"x")


# --- durability and topics ---


def test_a_broker_restart_keeps_its_data(logbrook_cluster, producer, make_consumer):
    # Unreplicated (3 partitions, one per broker): what a broker keeps on its own disk.
    producer.add_topic("durable", replication_factor=1)
    consumer = make_consumer("g", ["durable"])
    keys = [key_for_partition(p, 3) for p in range(3)]

    def send_round(label):
        sent = [f"{label}-{p}-{i}".encode() for i in range(10) for p in range(3)]
        for value in sent:
            producer.send_message("durable", value, key=keys[int(value.split(b"-")[1])])
        producer.flush()  # every one acknowledged
        return sent

    first = send_round("first")
    consumed = collect(consumer, len(first))
    assert_exactly_once(values(consumed), first)
    second = send_round("second")  # acknowledged, not consumed yet

    logbrook_cluster.stop_broker(1)
    # A producer that gives up quickly on the partition that is down.
    with logbrook.Producer(logbrook_cluster.leader_addr, delivery_timeout=1.0) as quick:
        down = [p for p, key in enumerate(keys) if not send_acked(quick, "durable", f"probe-{p}", key)]
    assert len(down) == 1, f"one partition per broker, so one is down: {down}"
    (down_partition,) = down
    probes = [f"probe-{p}".encode() for p in range(3) if p != down_partition]
    # The live partitions keep being served while the broker is down. The down
    # partition's second round may come too: the consumer may have read it before
    # the broker stopped (its prefetch, like Kafka's fetch buffer).
    live_expected = [v for v in second if int(v.split(b"-")[1]) != down_partition] + probes
    down_expected = [v for v in second if int(v.split(b"-")[1]) == down_partition]
    while_down = collect_values(consumer, live_expected)
    early = [v for v in values(while_down) if v not in live_expected]
    assert set(early) <= set(down_expected), f"unexpected while down: {early}"
    assert_exactly_once([v for v in values(while_down) if v in live_expected], live_expected)

    logbrook_cluster.restart_broker(1)
    third = send_round("third")
    rest = collect(consumer, len(down_expected) - len(early) + len(third))
    assert_exactly_once(values(while_down + rest), live_expected + down_expected + third)
    everything = consumed + while_down + rest
    by_partition = defaultdict(list)
    for m in everything:
        by_partition[m.partition].append(m.offset)
    for partition, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), (partition, offsets)
    assert len(by_partition[down_partition]) == 30, "nothing lost on the restarted broker"
    assert_quiet([consumer])


def test_a_cluster_restarted_on_its_data_dir_keeps_records_and_positions(tmp_path):
    data_dir = tmp_path / "cluster"
    with logbrook.Cluster(brokers=2, partitions=2, data_dir=data_dir) as cluster:
        leader = cluster.leader_addr
        with logbrook.Producer(leader) as producer, logbrook.Consumer("m1", leader) as consumer:
            producer.add_topic("kept")
            consumer.join_consumer_group("g")
            consumer.subscribe("kept")
            for i in range(4):
                producer.send_message("kept", f"read-{i}")
            assert len(collect(consumer, 4)) == 4
            unread = [f"unread-{i}".encode() for i in range(6)]
            for value in unread:
                producer.send_message("kept", value)

    with logbrook.Cluster(brokers=2, partitions=2, data_dir=data_dir) as cluster:
        leader = cluster.leader_addr
        with logbrook.Producer(leader) as producer, logbrook.Consumer("m2", leader) as consumer:
            with pytest.raises(logbrook.TopicExistsError):
                producer.add_topic("kept")
            consumer.join_consumer_group("g")
            consumer.subscribe("kept")  # the group's position is kept, not reset to the end
            got = collect(consumer, len(unread))
            assert_exactly_once(values(got), unread)
            # Round robin put 2 read and 3 unread records in each partition.
            for partition in (0, 1):
                offsets = sorted(m.offset for m in got if m.partition == partition)
                assert offsets == [2, 3, 4], (partition, offsets)
            assert_quiet([consumer])


def test_removing_a_topic_and_creating_it_again_starts_at_offset_zero(producer, make_consumer):
    producer.add_topic("again", partitions=2)
    producer.add_topic("other", partitions=1)
    consumer = make_consumer("g", ["again", "other"])
    old = [f"old-{i}".encode() for i in range(6)]
    for value in old:
        producer.send_message("again", value)
    got = collect(consumer, 6)
    assert_exactly_once(values(got), old)
    assert max(m.offset for m in got) == 2

    producer.remove_topic("again")
    with pytest.raises(logbrook.UnknownTopicError):
        producer.send_message("again", b"x")
    with pytest.raises(logbrook.UnknownTopicError):
        producer.remove_topic("again")
    # The group's other subscription keeps working.
    producer.send_message("other", b"still here")
    assert values(collect(consumer, 1)) == [b"still here"]

    producer.add_topic("again", partitions=2)
    consumer.subscribe("again")
    fresh = make_consumer("fresh", ["again"])
    new = [f"new-{i}".encode() for i in range(4)]
    for value in new:
        producer.send_message("again", value)
    for who in (consumer, fresh):
        received = collect(who, len(new))
        assert_exactly_once(values(received), new)
        offsets_are_contiguous(received)
    assert_quiet([consumer, fresh])
