"""Threads and signals: objects shared between threads, closing a consumer that
another thread iterates, the GIL released while waiting, Ctrl-C while blocked."""

from __future__ import annotations

import signal
import sys
import textwrap
import threading
import time

import pytest

import logbrook
from _support import WAIT, assert_exactly_once, assert_quiet, collect, values, wait_until


class Threads:
    """Starts threads and records any exception they raise."""

    def __init__(self) -> None:
        self.threads = []
        self.errors = []

    def start(self, target, *args) -> threading.Thread:
        def run():
            try:
                target(*args)
            except BaseException as err:  # noqa: BLE001 - reported by join_all
                self.errors.append(err)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def join_all(self, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not [t for t in self.threads if t.is_alive()], "threads still running"
        if self.errors:
            raise self.errors[0]


def test_one_producer_shared_by_threads(producer, make_consumer):
    producer.add_topic("shared")
    consumer = make_consumer("g", ["shared"])
    threads, per_thread = 4, 100
    start = threading.Barrier(threads)

    def send(t):
        start.wait(WAIT)
        for i in range(per_thread):
            producer.send_message("shared", f"t{t}-{i:03}", key=f"thread-{t}")

    pool = Threads()
    for t in range(threads):
        pool.start(send, t)
    pool.join_all()
    producer.flush()

    expected = [f"t{t}-{i:03}".encode() for t in range(threads) for i in range(per_thread)]
    got = collect(consumer, len(expected))
    assert_exactly_once(values(got), expected)
    for t in range(threads):
        # One thread's records share a key, so one partition, in the order it sent them.
        mine = [m for m in got if m.key == f"thread-{t}".encode()]
        assert values(mine) == [f"t{t}-{i:03}".encode() for i in range(per_thread)]
        assert len({m.partition for m in mine}) == 1
    assert_quiet([consumer])


def test_one_consumer_polled_by_threads_at_once(producer, make_consumer):
    producer.add_topic("polled")
    consumer = make_consumer("g", ["polled"])
    sent = [f"p{i:03}".encode() for i in range(300)]
    received = [[], []]
    done = threading.Event()

    def poll(i):
        while not done.is_set():
            received[i].extend(consumer.poll(timeout=0.05, max_records=7))

    pool = Threads()
    for i in range(2):
        pool.start(poll, i)
    for value in sent:
        producer.send_message("polled", value)
    wait_until(lambda: sum(map(len, received)) >= len(sent) or pool.errors, what="all records")
    done.set()
    pool.join_all()
    assert_exactly_once(values(received[0] + received[1]), sent)
    assert received[0] and received[1], "both threads got records"


def test_group_members_in_threads_get_each_record_once_while_churning(producer, make_consumer):
    producer.add_topic("busy", partitions=4)
    members = [make_consumer("g", ["busy"]) for _ in range(3)]
    received = [[] for _ in members]
    sent = [f"b{i:04}".encode() for i in range(600)]
    stop = threading.Event()
    churns = [0, 0, 0]

    def total():
        return sum(map(len, received))

    def produce():
        for chunk in range(0, len(sent), 20):
            for value in sent[chunk : chunk + 20]:
                producer.send_message("busy", value)
            # Keep the backlog small so membership changes overlap production.
            wait_until(lambda: total() >= chunk - 40 or stop.is_set(), what="consumers")

    def consume(i):
        member, polls, away = members[i], 0, 0
        while not stop.is_set():
            if away:
                away -= 1
                if away == 0:
                    member.join_consumer_group("g")
                stop.wait(0.01)
                continue
            received[i].extend(member.poll(timeout=0.02, max_records=5))
            polls += 1
            if i == 0 and polls % 7 == 0:  # leaves and rejoins at once
                member.leave_consumer_group()
                member.join_consumer_group("g")
                churns[i] += 1
            elif i == 1 and polls % 11 == 0:  # stays away for a while
                member.leave_consumer_group()
                away = 5
                churns[i] += 1
        if away:
            member.join_consumer_group("g")

    pool = Threads()
    pool.start(produce)
    for i in range(len(members)):
        pool.start(consume, i)
    try:
        wait_until(lambda: total() >= len(sent) or pool.errors, timeout=40, what="every record")
    finally:
        stop.set()
        pool.join_all()
    assert churns[0] >= 2 and churns[1] >= 1, churns
    assert_exactly_once(values(sum(received, [])), sent)
    assert all(received), [len(r) for r in received]
    assert_quiet(members)


def test_closing_a_consumer_ends_an_iteration_in_another_thread(producer, make_consumer):
    producer.add_topic("iterated")
    consumer = make_consumer("g", ["iterated"])
    got = []
    three = threading.Event()
    ended = threading.Event()

    def iterate():
        for message in consumer:
            got.append(message)
            if len(got) == 3:
                three.set()
        ended.set()

    pool = Threads()
    pool.start(iterate)
    for i in range(3):
        producer.send_message("iterated", f"i{i}")
    assert three.wait(WAIT), f"the iteration got {len(got)} records"
    # The iteration now waits for more; close it from here.
    assert not ended.is_set()
    started = time.monotonic()
    consumer.close()
    assert ended.wait(5), "the iteration did not end after close()"
    assert time.monotonic() - started < 3.0
    pool.join_all(5)
    assert sorted(values(got)) == [b"i0", b"i1", b"i2"]
    assert list(consumer) == []
    with pytest.raises(logbrook.LogbrookError):
        consumer.poll()


def test_closing_a_consumer_ends_an_iteration_that_never_got_anything(producer, make_consumer):
    producer.add_topic("silent")
    consumer = make_consumer("g", ["silent"])
    entered = threading.Event()
    got = []

    def iterate():
        entered.set()
        got.extend(consumer)

    pool = Threads()
    thread = pool.start(iterate)
    assert entered.wait(WAIT)
    thread.join(0.5)  # it blocks: nothing to read
    assert thread.is_alive()
    consumer.close()
    pool.join_all(5)
    assert got == []


def count_while(block, seconds: float) -> int:
    """How far a pure-Python counting thread gets while this thread runs ``block``."""
    stop = threading.Event()
    result = []

    def spin():
        n = 0
        while not stop.is_set():
            n += 1
        result.append(n)

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        block(seconds)
    finally:
        stop.set()
        thread.join()
    return result[0]


def test_poll_releases_the_gil(producer, make_consumer):
    producer.add_topic("gil")
    consumer = make_consumer("g", ["gil"])
    assert consumer.poll() == []
    polled = []

    def blocking_poll(seconds):
        started = time.monotonic()
        polled.append(consumer.poll(timeout=seconds))
        polled.append(time.monotonic() - started)

    baseline = count_while(time.sleep, 2.0)  # time.sleep releases the GIL
    during_poll = count_while(blocking_poll, 2.0)
    assert polled[0] == [] and polled[1] >= 1.9, polled
    assert during_poll >= 0.5 * baseline, (
        f"a thread counted to {during_poll} during poll(timeout=2) but to {baseline} "
        "during time.sleep(2): poll holds the GIL"
    )


CHILD = textwrap.dedent(
    """
    import sys, time
    import logbrook

    mode = sys.argv[1]
    with logbrook.Cluster(brokers=1, partitions=1) as cluster:
        with logbrook.Producer(cluster.leader_addr) as producer:
            producer.add_topic("t")
        consumer = logbrook.Consumer("c", cluster.leader_addr)
        consumer.join_consumer_group("g")
        consumer.subscribe("t")
        print("ready", flush=True)
        started = time.monotonic()
        try:
            if mode == "poll":
                print("returned", consumer.poll(timeout=60), flush=True)
            else:
                for message in consumer:
                    print("got", message, flush=True)
                print("iteration ended", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - started:.2f}s", flush=True)
            # The consumer is still usable after the interrupted call.
            with logbrook.Producer(cluster.leader_addr) as producer:
                producer.send_message("t", b"after the interrupt")
            got = consumer.poll(timeout=10)
            print("still works" if [m.value for m in got] == [b"after the interrupt"] else got)
            consumer.close()
            sys.exit(0)
    sys.exit(3)
    """
)


@pytest.mark.parametrize("mode", ["poll", "iterate"])
def test_ctrl_c_interrupts_a_blocking_call(mode, spawn):
    child = spawn([sys.executable, "-c", CHILD, mode], name=f"ctrl-c-{mode}")
    child.expect("ready")
    # Not synchronisation: give the child time to be inside the blocking call, which
    # is what this test is about (a signal before it would be handled anyway).
    time.sleep(0.5)
    assert child.popen.poll() is None, child.describe()
    sent_at = time.monotonic()
    child.signal(signal.SIGINT)
    status = child.wait(timeout=10)
    took = time.monotonic() - sent_at
    assert status == 0, child.describe()
    assert any(line.startswith("interrupted after") for line in child.lines), child.describe()
    assert "still works" in child.lines, child.describe()
    assert took < 5.0, f"the child took {took:.1f}s to stop after SIGINT"
