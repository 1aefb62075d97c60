"""Fixtures of logbrook's Python tests.

The ``logbrook_cluster`` fixture is not defined here: it comes from the plugin the
package installs (entry point ``pytest11``), so every test using it tests the plugin.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator, List

import pytest

import logbrook
from _support import Proc


def pytest_addoption(parser, pluginmanager) -> None:
    # pyproject.toml sets `timeout` for pytest-timeout. Without that plugin pytest
    # warns about an unknown option, and `filterwarnings = error` turns the warning
    # into an INTERNALERROR before any test runs. Declare the option then, so the
    # suite still runs (without per-test timeouts; every wait here has a deadline).
    if not pluginmanager.has_plugin("timeout"):
        parser.addini("timeout", "per-test timeout (needs pytest-timeout; ignored without it)")


@pytest.fixture
def leader(logbrook_cluster: logbrook.Cluster) -> str:
    """The address of the test's cluster leader."""
    return logbrook_cluster.leader_addr


@pytest.fixture
def producer(leader: str) -> Iterator[logbrook.Producer]:
    with logbrook.Producer(leader) as p:
        yield p


_ids = itertools.count()


@pytest.fixture
def make_consumer(leader: str) -> Iterator[Callable[..., logbrook.Consumer]]:
    """``make_consumer(group=None, topics=(), name=None)``: a new Consumer with a
    unique id, optionally in ``group`` and subscribed to ``topics``; closed after the
    test."""
    made: List[logbrook.Consumer] = []

    def make(group=None, topics=(), name=None) -> logbrook.Consumer:
        consumer = logbrook.Consumer(name or f"consumer-{next(_ids)}", leader)
        made.append(consumer)
        if group is not None:
            consumer.join_consumer_group(group)
            for topic in topics:
                consumer.subscribe(topic)
        return consumer

    yield make
    for consumer in made:
        try:
            consumer.close()
        except logbrook.LogbrookError:
            pass  # e.g. its cluster was stopped by the test


@pytest.fixture
def spawn(tmp_path) -> Iterator[Callable[..., Proc]]:
    """``spawn(args, name=..., stdin=False, cwd=None)``: starts a child process
    (see ``_support.Proc``); every one still running is killed after the test."""
    procs: List[Proc] = []

    def start(args, name="child", **kwargs) -> Proc:
        proc = Proc(args, tmp_path, name=name, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in reversed(procs):
        proc.cleanup()
