"""Replication from Python: partition metadata, acks, replication factors, failover
of an in-process cluster's broker, and the record size limit."""

from __future__ import annotations

import pytest

import logbrook
from _support import assert_exactly_once, collect, values, wait_until


def test_partition_metadata_shows_leader_replicas_in_sync_and_high_watermark(producer, logbrook_cluster):
    producer.add_topic("described", partitions=2, replication_factor=2)
    parts = producer.partition_metadata("described")
    assert [p.partition for p in parts] == [0, 1]
    brokers = set(logbrook_cluster.broker_addrs)
    for p in parts:
        assert isinstance(p, logbrook.PartitionMetadata)
        assert p.online and p.leader in brokers
        assert len(p.replicas) == 2 and set(p.replicas) <= brokers
        assert p.replicas[0] == p.leader and p.in_sync == p.replicas
        assert p.leader_epoch == 0 and p.high_watermark == 0
        assert "PartitionMetadata(partition=" in repr(p)
    for i in range(10):
        producer.send_message("described", f"v{i}", key="same")
    producer.flush()
    marks = [p.high_watermark for p in producer.partition_metadata("described")]
    assert sorted(marks) == [0, 10], "acks=all: committed before flush returns"
    with pytest.raises(logbrook.UnknownTopicError):
        producer.partition_metadata("nope")


def test_replication_factor_is_checked_against_live_brokers(producer, logbrook_cluster):
    n = len(logbrook_cluster.broker_addrs)
    with pytest.raises(logbrook.NoBrokersError, match="live broker"):
        producer.add_topic("too-many", replication_factor=n + 1)
    with pytest.raises(logbrook.InvalidRequestError):
        producer.add_topic("zero", replication_factor=0)
    producer.add_topic("default-rf")
    assert all(len(p.replicas) == min(3, n) for p in producer.partition_metadata("default-rf"))


@pytest.mark.parametrize("acks", ["all", "leader", "none"])
def test_every_acks_setting_delivers(acks, leader, producer, make_consumer):
    producer.add_topic(f"acks-{acks}", partitions=2)
    consumer = make_consumer("g", [f"acks-{acks}"])
    with logbrook.Producer(leader, acks=acks) as p:
        for i in range(20):
            p.send_message(f"acks-{acks}", f"{acks}-{i}")
        p.flush()
    got = collect(consumer, 20)
    assert_exactly_once(values(got), [f"{acks}-{i}".encode() for i in range(20)])


def test_bad_acks_is_a_value_error(leader):
    with pytest.raises(ValueError, match="acks"):
        logbrook.Producer(leader, acks="some")
    with pytest.raises(ValueError):
        logbrook.Producer(leader, delivery_timeout=-1)


def test_a_dead_leader_fails_over_without_losing_acknowledged_records(tmp_path):
    with logbrook.Cluster(brokers=3, partitions=1, data_dir=tmp_path / "c") as cluster:
        with logbrook.Producer(cluster.leader_addr) as producer:
            producer.add_topic("ha")
            consumer = logbrook.Consumer("ha-c", cluster.leader_addr)
            consumer.join_consumer_group("g")
            consumer.subscribe("ha")
            first = [f"a{i}".encode() for i in range(20)]
            for v in first:
                producer.send_message("ha", v)
            producer.flush()
            before = producer.partition_metadata("ha")[0]
            cluster.stop_broker(cluster.broker_addrs.index(before.leader))
            second = [f"b{i}".encode() for i in range(20)]
            for v in second:
                producer.send_message("ha", v)
            producer.flush()  # retried until the new leader took them
            after = producer.partition_metadata("ha")[0]
            assert after.leader != before.leader
            assert after.leader_epoch > before.leader_epoch
            assert before.leader not in after.in_sync
            got = collect(consumer, 40)
            assert_exactly_once(values(got), first + second)
            assert [m.offset for m in got] == list(range(40))
            consumer.close()


def test_a_record_over_the_limit_raises_naming_the_limit(producer, make_consumer):
    producer.add_topic("sized", partitions=1)
    consumer = make_consumer("g", ["sized"])
    producer.send_message("sized", b"x" * (1024 * 1024 + 1))
    with pytest.raises(logbrook.DeliveryFailedError, match="1048576"):
        producer.flush()
    producer.send_message("sized", b"fits")
    producer.flush()
    assert values(collect(consumer, 1)) == [b"fits"]
    wait_until(lambda: producer.partition_metadata("sized")[0].high_watermark == 1)
