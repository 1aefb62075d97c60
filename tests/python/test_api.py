"""The Python API surface: the README flow, Message, poll's timing and batching,
context managers, Cluster options, the version and the pytest plugin."""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
import sys
import textwrap
import threading
import gc
import time
from pathlib import Path

import pytest

import logbrook
from _support import assert_exactly_once, assert_quiet, collect, values

pytest_plugins = ["pytester"]


def test_readme_quickstart_flow(logbrook_cluster):
    leader = logbrook_cluster.leader_addr
    assert re.fullmatch(r"127\.0\.0\.1:\d+", leader), leader
    assert len(logbrook_cluster.broker_addrs) == 3

    with logbrook.Producer(leader) as producer, logbrook.Consumer("consumer-1", leader) as consumer:
        producer.add_topic("orders")
        consumer.join_consumer_group("billing")
        consumer.subscribe("orders")  # starts at the end of the log

        producer.send_message("orders", "hello")
        producer.send_message("orders", "keyed", key="user-7")
        producer.flush()

        got = collect(consumer, 2)
        assert sorted(values(got)) == [b"hello", b"keyed"]
        by_value = {m.value: m for m in got}
        assert by_value[b"keyed"].key == b"user-7"
        assert by_value[b"hello"].key is None
        assert all(m.topic == "orders" and 0 <= m.partition < 3 for m in got)
        assert_quiet([consumer])
        consumer.leave_consumer_group()


def test_message_fields_and_types(producer, make_consumer):
    producer.add_topic("fields", partitions=1)
    consumer = make_consumer("g", ["fields"])
    before_ms = int(time.time() * 1000)
    producer.send_message("fields", b"\x00value\xff", key=b"\x01key")
    producer.send_message("fields", b"second")
    after_ms = int(time.time() * 1000)

    first, second = collect(consumer, 2)
    assert type(first) is logbrook.Message
    assert type(first.topic) is str and first.topic == "fields"
    assert type(first.partition) is int and first.partition == 0
    assert type(first.offset) is int and (first.offset, second.offset) == (0, 1)
    assert type(first.key) is bytes and first.key == b"\x01key"
    assert type(first.value) is bytes and first.value == b"\x00value\xff"
    assert second.key is None and second.value == b"second"
    assert type(first.timestamp) is int
    # Milliseconds since the epoch, set by the producer (allow for clock granularity).
    assert before_ms - 1000 <= first.timestamp <= second.timestamp <= after_ms + 1000


def test_messages_stay_out_of_the_cyclic_garbage_collector(producer, make_consumer):
    # A Message holds no Python object, so it cannot be in a reference cycle: it is
    # untracked, and a poll of many records costs the collector nothing.
    producer.add_topic("untracked", partitions=1)
    consumer = make_consumer("g", ["untracked"])
    producer.send_messages("untracked", [b"a", b"b", b"c"])
    producer.flush()
    polled = collect(consumer, 2, max_records=1)
    iterated = next(iter(consumer))
    assert [m.value for m in polled] + [iterated.value] == [b"a", b"b", b"c"]
    for message in [*polled, iterated]:
        assert not gc.is_tracked(message), message


def test_message_is_read_only(producer, make_consumer):
    producer.add_topic("ro")
    consumer = make_consumer("g", ["ro"])
    producer.send_message("ro", b"v")
    (message,) = collect(consumer, 1)
    for field in ("topic", "partition", "offset", "key", "value", "timestamp"):
        with pytest.raises(AttributeError):
            setattr(message, field, None)
    assert message.value == b"v"


def test_message_repr_shows_every_field(producer, make_consumer):
    producer.add_topic("reprs", partitions=1)
    consumer = make_consumer("g", ["reprs"])
    producer.send_message("reprs", b"it's", key=b"k\n")
    producer.send_message("reprs", b"plain")
    keyed, plain = collect(consumer, 2)

    text = repr(keyed)
    assert text.startswith("Message(") and text.endswith(")"), text
    assert "reprs" in text
    assert "partition=0" in text and "offset=0" in text
    # key and value shown as Python bytes literals.
    assert "key=" + repr(b"k\n") in text, text
    assert "value=" + repr(b"it's") in text, text
    assert f"timestamp={keyed.timestamp}" in text
    assert "key=None" in repr(plain) and "offset=1" in repr(plain)


def test_messages_compare_and_hash_by_value(producer, make_consumer):
    producer.add_topic("eq", partitions=1)
    in_a = make_consumer("group-a", ["eq"])
    in_b = make_consumer("group-b", ["eq"])
    producer.send_message("eq", b"one", key=b"k")
    producer.send_message("eq", b"two", key=b"k")

    from_a = collect(in_a, 2)
    from_b = collect(in_b, 2)
    assert len(from_a) == len(from_b) == 2
    # The same record seen by two groups: distinct objects, equal by value.
    assert from_a[0] is not from_b[0]
    assert from_a == from_b
    assert hash(from_a[0]) == hash(from_b[0])
    assert len({*from_a, *from_b}) == 2
    # Different records (different offset and value) differ.
    assert from_a[0] != from_a[1]
    assert from_a[0] != "one" and from_a[0] != b"one"


def test_str_is_sent_as_utf8_and_bytearray_is_accepted(producer, make_consumer):
    producer.add_topic("text")
    consumer = make_consumer("g", ["text"])
    producer.send_message("text", "héllo ✓ 日本", key="ключ")
    producer.send_message("text", bytearray(b"from a bytearray"), key=bytearray(b"ba"))

    got = {m.value: m for m in collect(consumer, 2)}
    assert set(got) == {"héllo ✓ 日本".encode("utf-8"), b"from a bytearray"}
    assert got["héllo ✓ 日本".encode("utf-8")].key == "ключ".encode("utf-8")
    assert got[b"from a bytearray"].key == b"ba"


def test_send_rejects_other_types(producer):
    producer.add_topic("types")
    with pytest.raises(TypeError):
        producer.send_message("types", 42)
    with pytest.raises(TypeError):
        producer.send_message("types", b"v", key=3.5)
    with pytest.raises(TypeError):
        producer.send_message("types", ["not", "bytes"])


def test_key_keyword(producer, make_consumer):
    producer.add_topic("keys", partitions=1)
    consumer = make_consumer("g", ["keys"])
    producer.send_message("keys", b"with-key", key=b"k1")
    producer.send_message(topic="keys", value=b"all-keywords", key="k2")
    producer.send_message("keys", b"key-none", key=None)
    producer.send_message("keys", b"no-key")

    got = collect(consumer, 4)
    assert [(m.value, m.key) for m in got] == [
        (b"with-key", b"k1"),
        (b"all-keywords", b"k2"),
        (b"key-none", None),
        (b"no-key", None),
    ]


def test_send_messages_queues_a_whole_iterable(producer, make_consumer):
    producer.add_topic("many", partitions=2)
    consumer = make_consumer("g", ["many"])
    sent = [f"v{i}".encode() for i in range(500)]
    assert producer.send_messages("many", iter(sent)) == 500
    assert producer.send_messages("many", ["text", bytearray(b"ba")]) == 2
    producer.flush()
    assert_exactly_once(values(collect(consumer, 502)), sent + [b"text", b"ba"])
    with pytest.raises(TypeError):
        producer.send_messages("many", [b"ok", 42])
    with pytest.raises(logbrook.UnknownTopicError):
        producer.send_messages("nosuch", [b"x"])


def test_poll_without_timeout_returns_promptly(producer, make_consumer):
    producer.add_topic("prompt")
    consumer = make_consumer("g", ["prompt"])
    started = time.monotonic()
    got = consumer.poll()
    elapsed = time.monotonic() - started
    assert got == [] and isinstance(got, list)
    assert elapsed < 1.0, f"poll() without timeout took {elapsed:.2f}s"

    producer.send_message("prompt", b"x")
    producer.flush()
    # Without a timeout poll does not wait, but a record already stored is there.
    assert values(consumer.poll()) == [b"x"]


def test_poll_with_timeout_returns_as_soon_as_records_arrive(producer, make_consumer):
    producer.add_topic("soon")
    consumer = make_consumer("g", ["soon"])
    polling = threading.Event()
    sender_errors = []

    def send_later():
        polling.wait(5)
        try:
            # Give the poll time to be waiting (the point of this test), then send.
            time.sleep(0.3)
            producer.send_message("soon", b"late")
        except BaseException as err:  # noqa: BLE001 - reported below
            sender_errors.append(err)

    sender = threading.Thread(target=send_later)
    sender.start()
    polling.set()
    started = time.monotonic()
    got = consumer.poll(timeout=10)
    elapsed = time.monotonic() - started
    sender.join(5)
    assert not sender_errors
    assert values(got) == [b"late"]
    assert elapsed < 3.0, f"poll(timeout=10) took {elapsed:.2f}s although a record came at 0.3s"


def test_poll_with_timeout_waits_about_the_timeout_when_nothing_arrives(producer, make_consumer):
    producer.add_topic("idle")
    consumer = make_consumer("g", ["idle"])
    for timeout in (0.2, 0.8):
        started = time.monotonic()
        got = consumer.poll(timeout=timeout)
        elapsed = time.monotonic() - started
        assert got == []
        assert timeout - 0.02 <= elapsed <= timeout + 0.7, (timeout, elapsed)


def test_poll_rejects_bad_arguments(producer, make_consumer):
    producer.add_topic("args")
    consumer = make_consumer("g", ["args"])
    for bad in (-1, -0.5, float("nan")):
        with pytest.raises(ValueError):
            consumer.poll(timeout=bad)
    # Like time.sleep and threading.Event.wait, an infinite timeout is refused.
    with pytest.raises((ValueError, OverflowError)):
        consumer.poll(timeout=float("inf"))
    with pytest.raises(ValueError):
        consumer.poll(max_records=0)
    with pytest.raises((TypeError, OverflowError, ValueError)):
        consumer.poll(max_records=-1)
    assert consumer.poll(timeout=0) == []


def test_huge_poll_timeouts_are_handled_cleanly(producer, make_consumer):
    # A huge timeout either waits (and returns when a record comes) or is refused
    # with a Python error; it must not crash in Rust (PanicException).
    producer.add_topic("huge")
    consumer = make_consumer("g", ["huge"])
    for timeout in (1e19, 1e300):
        outcome = []

        def poll():
            try:
                outcome.append(consumer.poll(timeout=timeout))
            except BaseException as err:  # noqa: BLE001 - PanicException is a BaseException
                outcome.append(err)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        thread.join(0.5)
        if thread.is_alive():  # it waits: a record must wake it
            producer.send_message("huge", b"wake up")
            thread.join(10)
        assert not thread.is_alive()
        (result,) = outcome
        if isinstance(result, BaseException):
            assert isinstance(result, (ValueError, OverflowError)), (
                f"poll(timeout={timeout}) raised {type(result).__module__}."
                f"{type(result).__name__}: {result}"
            )
        else:
            assert values(result) == [b"wake up"]


def test_max_records_bounds_each_poll_and_loses_nothing(producer, make_consumer):
    producer.add_topic("bounded")  # 3 partitions
    consumer = make_consumer("g", ["bounded"])
    sent = [f"m{i:02}".encode() for i in range(25)]
    for value in sent:
        producer.send_message("bounded", value)
    producer.flush()  # all stored before the first poll

    sizes, got = [], []
    for _ in range(3):
        batch = consumer.poll(timeout=5, max_records=10)
        sizes.append(len(batch))
        got.extend(batch)
    assert sizes == [10, 10, 5]
    assert consumer.poll(max_records=10) == []
    assert_exactly_once(values(got), sent)
    # Per partition, the records come in offset order with no gap.
    for partition in {m.partition for m in got}:
        offsets = [m.offset for m in got if m.partition == partition]
        assert offsets == list(range(len(offsets)))


def test_iteration_and_poll_share_records_without_loss_or_duplicates(producer, make_consumer):
    producer.add_topic("mixed")
    consumer = make_consumer("g", ["mixed"])
    sent = [f"v{i}".encode() for i in range(20)]
    for value in sent:
        producer.send_message("mixed", value)
    producer.flush()

    first = next(iter(consumer))  # one step may fetch more than one record
    second = next(consumer)
    bounded = consumer.poll(max_records=3)
    assert len(bounded) == 3
    rest = collect(consumer, 15)
    assert_exactly_once(values([first, second, *bounded, *rest]), sent)
    assert_quiet([consumer])


def test_producer_context_manager_closes(leader):
    with logbrook.Producer(leader) as producer:
        producer.add_topic("cm")
        producer.send_message("cm", b"inside")
    for call in (
        lambda: producer.send_message("cm", b"after"),
        lambda: producer.add_topic("cm2"),
        lambda: producer.remove_topic("cm"),
        producer.flush,
    ):
        with pytest.raises(logbrook.LogbrookError) as caught:
            call()
        assert isinstance(caught.value, logbrook.InvalidRequestError)
        assert "closed" in str(caught.value)
    producer.close()  # closing twice is fine


def test_consumer_context_manager_closes_and_leaves_the_group(producer, leader, make_consumer):
    producer.add_topic("cmc")
    stays = make_consumer("g", ["cmc"])
    with logbrook.Consumer("leaves", leader) as leaves:
        leaves.join_consumer_group("g")
        leaves.subscribe("cmc")
        assert leaves.poll(timeout=0.1) == []  # takes its share of the partitions
    for call in (
        lambda: leaves.poll(),
        lambda: leaves.poll(timeout=1),
        lambda: leaves.subscribe("cmc"),
        lambda: leaves.join_consumer_group("g"),
        leaves.leave_consumer_group,
    ):
        with pytest.raises(logbrook.LogbrookError):
            call()
    leaves.close()  # closing twice is fine
    # A closed consumer ends iteration at once.
    assert list(leaves) == []

    # It left its group on close: the other member now gets every partition (were it
    # still a member, a third of the records would wait for its session timeout).
    sent = [f"r{i}".encode() for i in range(12)]
    for value in sent:
        producer.send_message("cmc", value)
    assert_exactly_once(values(collect(stays, len(sent))), sent)


def test_context_managers_do_not_swallow_exceptions(leader, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with logbrook.Producer(leader):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with logbrook.Consumer("c", leader):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with logbrook.Cluster(brokers=1, partitions=1, data_dir=tmp_path / "c") as cluster:
            raise RuntimeError("boom")
    with pytest.raises(logbrook.LogbrookError):
        cluster.leader_addr


def test_cluster_context_manager_stops_the_cluster(tmp_path):
    with logbrook.Cluster(brokers=2, partitions=2, data_dir=tmp_path / "d") as cluster:
        assert isinstance(cluster, logbrook.Cluster)
        leader = cluster.leader_addr
        assert len(cluster.broker_addrs) == 2
        with logbrook.Producer(leader) as producer:
            producer.add_topic("t")
            producer.send_message("t", b"x")
        assert "leader_addr=" in repr(cluster)
    for attr in ("leader_addr", "broker_addrs", "data_dir"):
        with pytest.raises(logbrook.LogbrookError):
            getattr(cluster, attr)
    with pytest.raises(logbrook.LogbrookError):
        cluster.stop_broker(0)
    assert repr(cluster) == "Cluster(stopped)"
    cluster.stop()  # idempotent
    with pytest.raises(logbrook.UnavailableError):
        logbrook.Producer(leader)


def test_cluster_creates_a_missing_data_dir(tmp_path):
    data_dir = tmp_path / "not" / "yet" / "there"
    with logbrook.Cluster(brokers=2, partitions=1, data_dir=data_dir) as cluster:
        assert data_dir.is_dir()
        assert Path(cluster.data_dir) == data_dir
        assert {"leader", "broker-0", "broker-1"} <= set(os.listdir(data_dir))
    assert data_dir.is_dir(), "a given data dir is kept after stop"


def test_cluster_data_dir_is_a_str_as_typed(tmp_path):
    # _native.pyi: `def data_dir(self) -> str`.
    with logbrook.Cluster(brokers=1, partitions=1, data_dir=tmp_path / "typed") as cluster:
        assert isinstance(cluster.data_dir, str), type(cluster.data_dir)
        assert cluster.data_dir == str(tmp_path / "typed")


def test_cluster_data_dir_can_be_a_str_and_is_locked_while_in_use(tmp_path):
    data_dir = str(tmp_path / "as-str")
    with logbrook.Cluster(brokers=1, partitions=1, data_dir=data_dir) as cluster:
        assert os.fspath(cluster.data_dir) == data_dir
        with pytest.raises(logbrook.StorageError) as caught:
            logbrook.Cluster(brokers=1, partitions=1, data_dir=data_dir)
        assert "in use" in str(caught.value)
        # The running cluster is unaffected.
        with logbrook.Producer(cluster.leader_addr) as producer:
            producer.add_topic("t")
    # Once stopped, the dir can be used again.
    with logbrook.Cluster(brokers=1, partitions=1, data_dir=data_dir) as again:
        with logbrook.Producer(again.leader_addr) as producer:
            with pytest.raises(logbrook.TopicExistsError):
                producer.add_topic("t")


def test_cluster_broker_index_is_checked(logbrook_cluster):
    for call in (logbrook_cluster.stop_broker, logbrook_cluster.restart_broker):
        with pytest.raises(logbrook.InvalidRequestError):
            call(3)
        with pytest.raises(OverflowError):
            call(-1)


def test_a_cluster_left_running_is_stopped_at_interpreter_exit(spawn):
    script = textwrap.dedent(
        """
        import logbrook
        cluster = logbrook.Cluster(brokers=2, partitions=2)
        producer = logbrook.Producer(cluster.leader_addr)
        producer.add_topic("t")
        consumer = logbrook.Consumer("c", cluster.leader_addr)
        consumer.join_consumer_group("g")
        consumer.subscribe("t")
        producer.send_message("t", b"x")
        print("data", cluster.data_dir, flush=True)
        # exits without stop() or close()
        """
    )
    child = spawn([sys.executable, "-c", script], name="left-running")
    data_dir = Path(child.expect(r"data (.+)").group(1))
    assert child.wait(timeout=10) == 0, child.describe()
    assert not data_dir.exists(), "the temporary data dir is removed at exit"


def test_cluster_without_data_dir_uses_a_temporary_dir_removed_at_stop():
    with logbrook.Cluster(brokers=1, partitions=1) as cluster:
        data_dir = Path(cluster.data_dir)
        assert data_dir.is_dir()
    assert not data_dir.exists()


def test_cluster_rejects_bad_arguments(tmp_path):
    with pytest.raises(logbrook.LogbrookError):
        logbrook.Cluster(brokers=0, data_dir=tmp_path / "a")
    with pytest.raises(logbrook.LogbrookError):
        logbrook.Cluster(partitions=0, data_dir=tmp_path / "b")
    with pytest.raises((TypeError, OverflowError)):
        logbrook.Cluster(brokers=-1)


@pytest.mark.parametrize(
    "addr, error",
    [
        ("free-port", logbrook.UnavailableError),
        ("", logbrook.InvalidNameError),
        ("127.0.0.1:not-a-port", logbrook.LogbrookError),
        ("127.0.0.1:999999", logbrook.LogbrookError),  # no such port (over 65535)
    ],
)
def test_bad_leader_addresses_raise_logbrook_errors(addr, error):
    if addr == "free-port":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            addr = f"127.0.0.1:{probe.getsockname()[1]}"
    for make in (lambda: logbrook.Producer(addr), lambda: logbrook.Consumer("c", addr)):
        started = time.monotonic()
        try:
            make()
        except error:
            pass
        except BaseException as err:  # noqa: BLE001 - e.g. a Rust panic
            pytest.fail(f"{addr!r}: {type(err).__module__}.{type(err).__name__}: {err}")
        else:
            pytest.fail(f"{addr!r}: no error")
        assert time.monotonic() - started < 12


def test_version_is_a_string_matching_the_distribution():
    assert isinstance(logbrook.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", logbrook.__version__)
    assert logbrook.__version__ == importlib.metadata.version("logbrook")


def test_exceptions_form_one_hierarchy():
    for name in logbrook.__all__:
        obj = getattr(logbrook, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, logbrook.LogbrookError), name
    assert issubclass(logbrook.NoBrokersError, logbrook.UnavailableError)
    assert issubclass(logbrook.InvalidNameError, ValueError)
    assert issubclass(logbrook.InvalidRequestError, ValueError)


def test_plugin_fixture_gives_a_working_cluster(logbrook_cluster, tmp_path, pytestconfig):
    from logbrook import pytest_plugin

    assert pytestconfig.pluginmanager.get_plugin("logbrook") is pytest_plugin
    assert isinstance(logbrook_cluster, logbrook.Cluster)
    assert len(logbrook_cluster.broker_addrs) == 3
    assert Path(logbrook_cluster.data_dir).is_relative_to(tmp_path)

    with logbrook.Producer(logbrook_cluster.leader_addr) as producer:
        producer.add_topic("plugin")
        with logbrook.Consumer("c", logbrook_cluster.leader_addr) as consumer:
            consumer.join_consumer_group("g")
            consumer.subscribe("plugin")
            producer.send_message("plugin", b"through the fixture")
            got = collect(consumer, 1)
    assert values(got) == [b"through the fixture"]
    assert {m.partition for m in got} <= {0, 1, 2}


def test_plugin_gives_each_test_a_fresh_cluster_and_stops_it(pytester):
    pytester.makepyfile(
        """
        import logbrook

        seen = []

        def test_first(logbrook_cluster, tmp_path):
            seen.append(logbrook_cluster)
            with logbrook.Producer(logbrook_cluster.leader_addr) as p:
                p.add_topic("t")

        def test_second(logbrook_cluster):
            first = seen[0]
            try:
                first.leader_addr
            except logbrook.LogbrookError:
                pass
            else:
                raise AssertionError("the first test's cluster is still running")
            with logbrook.Producer(logbrook_cluster.leader_addr) as p:
                p.add_topic("t")  # a fresh cluster: no TopicExistsError
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_auth_token_is_required_when_the_cluster_has_one(tmp_path):
    with logbrook.Cluster(brokers=2, partitions=2, data_dir=tmp_path / "c", auth_token="s3cret") as cluster:
        with pytest.raises(logbrook.UnauthorizedError) as refused:
            logbrook.Producer(cluster.leader_addr)
        assert refused.value.details["error"] == "unauthorized"
        with pytest.raises(logbrook.UnauthorizedError):
            logbrook.Consumer("c", cluster.leader_addr, auth_token="wrong")
        with logbrook.Producer(cluster.leader_addr, auth_token="s3cret") as producer, logbrook.Consumer(
            "c", cluster.leader_addr, auth_token="s3cret"
        ) as consumer:
            producer.add_topic("t")
            consumer.join_consumer_group("g")
            consumer.subscribe("t")
            producer.send_messages("t", [b"a", b"b"])
            producer.flush()
            assert sorted(values(collect(consumer, 2))) == [b"a", b"b"]
