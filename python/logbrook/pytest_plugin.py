"""pytest plugin shipped with logbrook (entry point ``pytest11``).

Gives tests a ``logbrook_cluster`` fixture: a fresh in-process cluster per test, on
free loopback ports, with its data in the test's own temporary dir.
"""

from __future__ import annotations

from typing import Iterator

import pytest

import logbrook


@pytest.fixture
def logbrook_cluster(tmp_path) -> Iterator[logbrook.Cluster]:
    """A running ``logbrook.Cluster`` (3 brokers, 3 partitions per topic), stopped after the test."""
    cluster = logbrook.Cluster(brokers=3, partitions=3, data_dir=tmp_path / "logbrook")
    try:
        yield cluster
    finally:
        cluster.stop()
