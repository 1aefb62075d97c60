"""logbrook: a Kafka-style distributed commit log, driven from Python.

Producer, Consumer and Cluster are implemented in Rust (``logbrook._native``); every
blocking call releases the GIL and can be interrupted with Ctrl-C, and every object
can be shared between threads (calls on one object take turns).
"""

from __future__ import annotations

import atexit
import sys
import weakref
from typing import Any, List, Optional

from . import _native
from ._errors import (
    DeliveryFailedError,
    InvalidNameError,
    InvalidRequestError,
    LogbrookError,
    NoBrokersError,
    NotInGroupError,
    NotPartitionOwnerError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    ProtocolError,
    RecordTooLargeError,
    ReplicationTimeoutError,
    StaleEpochError,
    StorageError,
    TooLargeError,
    TopicExistsError,
    UnavailableError,
    UnknownBrokerError,
    UnknownMemberError,
    UnknownPartitionError,
    UnknownTopicError,
    UnauthorizedError,
)

__version__: str = _native.__version__

Producer = _native.Producer
Consumer = _native.Consumer
Message = _native.Message
PartitionMetadata = _native.PartitionMetadata

_live_clusters: "weakref.WeakSet[Cluster]" = weakref.WeakSet()


class Cluster(_native.Cluster):
    """A leader and ``brokers`` brokers running in this process on free loopback ports.

    Use it as a context manager, or call ``stop()``; a cluster still running when the
    interpreter exits is stopped then.
    """

    def __init__(
        self,
        brokers: int = 3,
        partitions: int = 3,
        replication_factor: Optional[int] = None,
        data_dir: Optional[Any] = None,
        auth_token: Optional[str] = None,
    ) -> None:
        _live_clusters.add(self)

    def __repr__(self) -> str:
        try:
            return f"Cluster(leader_addr={self.leader_addr!r}, broker_addrs={self.broker_addrs!r})"
        except LogbrookError:
            return "Cluster(stopped)"


@atexit.register
def _stop_live_clusters() -> None:
    for cluster in list(_live_clusters):
        try:
            cluster.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def main(argv: Optional[List[str]] = None) -> None:
    """The ``logbrook`` console script: the same CLI as ``cargo run --``."""
    sys.exit(_native.main(list(sys.argv if argv is None else argv)))


__all__ = [
    "Cluster",
    "Consumer",
    "DeliveryFailedError",
    "InvalidNameError",
    "InvalidRequestError",
    "LogbrookError",
    "Message",
    "NoBrokersError",
    "NotInGroupError",
    "NotPartitionOwnerError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "PartitionMetadata",
    "Producer",
    "ProtocolError",
    "RecordTooLargeError",
    "ReplicationTimeoutError",
    "StaleEpochError",
    "StorageError",
    "TooLargeError",
    "TopicExistsError",
    "UnavailableError",
    "UnknownBrokerError",
    "UnknownMemberError",
    "UnknownPartitionError",
    "UnknownTopicError",
    "UnauthorizedError",
    "main",
    "__version__",
]
