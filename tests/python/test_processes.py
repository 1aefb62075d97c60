"""The installed ``logbrook`` command as real processes, driven from Python: a leader
and brokers started separately (and one killed with SIGKILL and started again), the
one-process ``cluster`` and its signals, and the producer shell on piped stdin."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

import logbrook
from _support import (
    WAIT,
    assert_exactly_once,
    assert_quiet,
    collect,
    key_for_partition,
    logbrook_command,
    send_acked,
    values,
)

ADDR = r"(127\.0\.0\.1:(\d+))"


@pytest.fixture
def logbrook_bin() -> str:
    return logbrook_command()  # fails (does not skip) when the command is missing


def start_broker(spawn, logbrook_bin, leader, data_dir: Path, name, addr="127.0.0.1:0"):
    """Starts a broker and waits until it registered: ``(proc, id, addr)``.

    A fixed port can be held for a moment (a client retrying the killed broker may
    connect to itself from that very port), so a broker that exits before it is
    ready is started again, a few times, as the Rust fault suite does."""
    attempts = 20
    for attempt in range(attempts):
        proc = spawn(
            [
                logbrook_bin,
                "broker",
                "--leader",
                leader,
                "--data-dir",
                str(data_dir),
                "--addr",
                addr,
                "--heartbeat-ms",
                "200",
            ],
            name=f"{name}-try{attempt}" if attempt else name,
        )
        try:
            match = proc.expect(rf"broker (\d+) {ADDR}")
        except AssertionError:
            exited = proc.popen.poll() is not None
            if not exited or attempt == attempts - 1:
                raise
            time.sleep(0.1)
            continue
        return proc, int(match.group(1)), match.group(2)
    raise AssertionError("unreachable")


def test_the_command_is_installed_and_lists_its_subcommands(logbrook_bin, spawn):
    helper = spawn([logbrook_bin, "--help"], name="help")
    assert helper.wait() == 0, helper.describe()
    for sub in ("brokerlead", "broker", "cluster", "producer", "consumer"):
        assert sub in helper.output(), helper.describe()


def test_the_command_reports_the_package_version(logbrook_bin, spawn):
    version = spawn([logbrook_bin, "--version"], name="version")
    assert version.wait() == 0, version.describe()
    assert version.output().split() == ["logbrook", logbrook.__version__]


def test_separate_processes_keep_acknowledged_records_across_kill_9(
    logbrook_bin, spawn, tmp_path
):
    lead = spawn(
        [
            logbrook_bin,
            "brokerlead",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "leader"),
        ],
        name="brokerlead",
    )
    leader = lead.expect(rf"leader {ADDR}").group(1)
    brokers = {}
    for i in range(2):
        brokers[i] = start_broker(spawn, logbrook_bin, leader, tmp_path / f"b{i}", f"broker-{i}")
    ids = {brokers[i][1] for i in brokers}
    assert len(ids) == 2, f"brokers got distinct ids: {brokers}"
    assert (tmp_path / "leader").is_dir() and (tmp_path / "b0").is_dir()

    with logbrook.Producer(leader) as producer, logbrook.Consumer("c", leader) as consumer:
        # Replicated on both brokers (the default: min(3, live brokers)).
        producer.add_topic("events", partitions=4)
        consumer.join_consumer_group("g")
        consumer.subscribe("events")
        keys = [key_for_partition(p, 4) for p in range(4)]
        attempted, acked = [], []

        def send_round(label):
            for i in range(10):
                for p, key in enumerate(keys):
                    value = f"{label}-{p}-{i}".encode()
                    attempted.append(value)
                    if send_acked(producer, "events", value, key):
                        acked.append(value)

        send_round("before")
        assert len(acked) == 40
        received = collect(consumer, 20, max_records=20)
        assert len(received) == 20

        # kill -9 one broker: the partitions it led fail over to the other replica
        # (after the leader's broker timeout), so every record is still taken.
        victim, _victim_id, victim_addr = brokers[1]
        victim.signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
        send_round("down")
        assert len(acked) == 80, "the surviving replicas took every record"
        survivor = brokers[0][2]
        for p in producer.partition_metadata("events"):
            assert p.leader == survivor and p.in_sync == [survivor], p

        # Start it again on its data dir and old port: same id, same address.
        port = victim_addr.rsplit(":", 1)[1]
        _, again_id, again_addr = start_broker(
            spawn, logbrook_bin, leader, tmp_path / "b1", "broker-1-again", f"127.0.0.1:{port}"
        )
        assert again_id == brokers[1][1]
        assert again_addr == victim_addr
        send_round("after")
        assert all(v in acked for v in attempted if v.startswith(b"after"))

        received += collect(consumer, len(acked) - len(received), max_records=50)
        got = values(received)
        assert_exactly_once(got, acked)  # every acknowledged record, none twice
        assert set(got) <= set(attempted)
        by_partition = defaultdict(list)
        for m in received:
            by_partition[m.partition].append(m.offset)
        for partition, offsets in by_partition.items():
            assert offsets == list(range(len(offsets))), (partition, offsets)
        assert_quiet([consumer])

    lead.signal(signal.SIGTERM)
    assert lead.wait(timeout=10) == 0, lead.describe()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cluster_command_serves_and_stops_on_signal(sig, logbrook_bin, spawn, tmp_path):
    data_dir = tmp_path / "data"
    cluster = spawn(
        [
            logbrook_bin,
            "cluster",
            "--addr",
            "127.0.0.1:0",
            "--brokers",
            "2",
            "--data-dir",
            str(data_dir),
        ],
        name="cluster",
    )
    leader = cluster.expect(rf"leader {ADDR}").group(1)
    broker_addrs = [cluster.expect(rf"broker {i} {ADDR}").group(1) for i in range(2)]
    assert len(set(broker_addrs + [leader])) == 3
    assert {"leader", "broker-0", "broker-1"} <= {p.name for p in data_dir.iterdir()}

    with logbrook.Producer(leader) as producer, logbrook.Consumer("c", leader) as consumer:
        producer.add_topic("t")
        consumer.join_consumer_group("g")
        consumer.subscribe("t")
        for i in range(6):
            producer.send_message("t", f"m{i}")
        assert_exactly_once(values(collect(consumer, 6)), [f"m{i}".encode() for i in range(6)])

    cluster.signal(sig)
    assert cluster.wait(timeout=5) == 0, cluster.describe()


def test_producer_shell_reads_commands_from_piped_stdin(
    logbrook_bin, spawn, leader, make_consumer
):
    shell = spawn([logbrook_bin, "producer", "--leader", leader], name="producer", stdin=True)
    shell.write("create t 2\nsend t hello\nsend nosuch x\nquit\n")
    assert shell.wait(timeout=WAIT) == 0, shell.describe()
    lines = shell.lines
    assert "created topic t" in lines, shell.describe()
    sent = [line for line in lines if line.startswith("sent to t partition")]
    assert len(sent) == 1 and sent[0].endswith(" offset 0"), shell.describe()
    assert any(line.startswith("error:") and "nosuch" in line for line in lines), shell.describe()
    assert not any(line.startswith("producer>") for line in lines), "no prompts when piped"

    # The shell really created the topic with 2 partitions and stored "hello".
    partition = int(sent[0].split()[4])
    with logbrook.Producer(leader) as producer:
        with pytest.raises(logbrook.TopicExistsError):
            producer.add_topic("t")
        consumer = make_consumer("g", ["t"])
        producer.send_message("t", b"next", key=key_for_partition(partition, 2))
        (message,) = collect(consumer, 1)
    assert (message.partition, message.offset, message.value) == (partition, 1, b"next")


def test_producer_shell_exits_at_end_of_input(logbrook_bin, spawn, leader):
    shell = spawn([logbrook_bin, "producer", "--leader", leader], name="producer", stdin=True)
    shell.write("create logs 2\nsend logs hello\n")
    shell.close_stdin()
    assert shell.wait(timeout=WAIT) == 0, shell.describe()
    assert "created topic logs" in shell.lines, shell.describe()


def test_producer_shell_takes_the_leader_from_the_environment(logbrook_bin, spawn, leader):
    env = dict(os.environ, LOGBROOK_LEADER=leader)
    shell = spawn([logbrook_bin, "producer"], name="producer", stdin=True, env=env)
    shell.write("create fromenv 1\nsend fromenv hi\n")
    shell.close_stdin()
    assert shell.wait(timeout=WAIT) == 0, shell.describe()
    assert "sent to fromenv partition 0 offset 0" in shell.lines, shell.describe()


def test_consumer_shell_driven_line_by_line(logbrook_bin, spawn, leader, producer):
    producer.add_topic("orders")
    shell = spawn(
        [logbrook_bin, "consumer", "--leader", leader, "--id", "shell-consumer"],
        name="consumer",
        stdin=True,
    )
    shell.write("subscribe orders\n")
    shell.expect(r"error: .*(group|join).*")  # must join a group first
    shell.write("join billing\nsubscribe orders\n")
    shell.expect("joined group billing")
    shell.expect("subscribed orders")
    producer.send_message("orders", "an order", key="user-7")
    shell.write("poll 5\n")
    shell.expect(r"orders partition \d+ offset 0 key user-7: an order")
    shell.expect("1 message\\(s\\)")
    shell.write("quit\n")
    assert shell.wait(timeout=WAIT) == 0, shell.describe()
