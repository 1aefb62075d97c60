"""Type stubs of the Rust extension module ``logbrook._native``."""

from os import PathLike
from types import TracebackType
from typing import Iterable, Iterator, List, Optional, Type, Union

__version__: str

_Bytes = Union[bytes, bytearray, str]

class Message:
    """A record received by a consumer. Read-only; compares equal by value."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> Optional[bytes]: ...
    @property
    def value(self) -> bytes: ...
    @property
    def timestamp(self) -> int:
        """Milliseconds since the Unix epoch, set by the producer."""

class Producer:
    """Sends records to a cluster. Safe to share between threads."""

    def __init__(
        self,
        broker_leader_addr: str,
        acks: str = "all",
        auth_token: Optional[str] = None,
        delivery_timeout: float = 30.0,
    ) -> None:
        """Connects to the leader at ``broker_leader_addr`` ("host:port").

        ``acks``: "all" (a record is acknowledged once every in-sync replica has it),
        "leader" (once the partition leader appended it) or "none" (not waited for,
        retried or reported). ``auth_token`` is the cluster's shared secret, if it has
        one. ``delivery_timeout`` (seconds) bounds how long a record is retried while
        its partition's leader moves or is unreachable before flush() reports it."""
    def add_topic(
        self,
        topic: str,
        partitions: Optional[int] = None,
        replication_factor: Optional[int] = None,
    ) -> None:
        """Creates a topic (the cluster's defaults where not given); raises
        TopicExistsError, InvalidNameError, or NoBrokersError when fewer brokers are
        alive than the replication factor."""
    def partition_metadata(self, topic: str) -> List["PartitionMetadata"]:
        """Each partition's leader, replicas, in-sync replicas, leader epoch and high
        watermark, fresh from the leader (controller)."""
    def remove_topic(self, topic: str) -> None:
        """Removes a topic and all its records; raises UnknownTopicError."""
    def send_message(self, topic: str, value: _Bytes, key: Optional[_Bytes] = None) -> None:
        """Queues one record and returns at once (str is sent as UTF-8); records with one
        key go to one partition, in order. flush() waits for delivery and raises
        DeliveryFailedError naming how many records could not be delivered; a record
        too large for a request raises TooLargeError here."""
    def send_messages(self, topic: str, values: Iterable[_Bytes]) -> int:
        """Queues every value (without a key) in one call; returns how many."""
    def flush(self) -> None:
        """Waits until every record queued is acknowledged; raises DeliveryFailedError
        if some could not be delivered."""
    def close(self) -> None:
        """Flushes and releases the producer; later calls raise InvalidRequestError."""
    def __enter__(self) -> "Producer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Consumer:
    """Reads records as a member of a consumer group. Safe to share between threads."""

    def __init__(self, addr: str, broker_leader_addr: str, auth_token: Optional[str] = None) -> None:
        """Registers consumer ``addr`` (its unique id) with the leader; ``auth_token`` is
        the cluster's shared secret, if it has one."""
    def join_consumer_group(self, consumer_group_id: str) -> None:
        """Joins a group; needed before subscribe and poll."""
    def leave_consumer_group(self) -> None:
        """Leaves the group; subscriptions are kept for the next join."""
    def subscribe(self, topic: str) -> None:
        """Receives the topic's records produced from now on; NotInGroupError outside a group."""
    def unsubscribe(self, topic: str) -> None:
        """Stops receiving a topic."""
    def poll(self, timeout: Optional[float] = None, max_records: Optional[int] = None) -> List[Message]:
        """New records: at once without ``timeout``, else waiting up to ``timeout`` seconds
        and returning as soon as some arrive. At most ``max_records``; the rest stay for
        the next poll."""
    def close(self) -> None:
        """Leaves the group and releases the consumer; an iteration in progress ends."""
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message:
        """Blocks until a record arrives; StopIteration once the consumer is closed."""
    def __enter__(self) -> "Consumer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class PartitionMetadata:
    """One partition's replication state. Read-only."""

    @property
    def partition(self) -> int: ...
    @property
    def leader(self) -> str:
        """The leader broker's "host:port" (while offline: the broker it waits for)."""
    @property
    def online(self) -> bool:
        """Whether the partition has a live leader."""
    @property
    def replicas(self) -> List[str]:
        """Every replica's "host:port", the preferred leader first."""
    @property
    def in_sync(self) -> List[str]:
        """The replicas holding every committed record (the leader included)."""
    @property
    def leader_epoch(self) -> int:
        """Bumped at every leader change."""
    @property
    def high_watermark(self) -> Optional[int]:
        """Records below this offset are committed and visible to consumers; None if
        the leader did not answer."""

class Cluster:
    """A leader and brokers in this process on free loopback ports."""

    def __init__(
        self,
        brokers: int = 3,
        partitions: int = 3,
        replication_factor: Optional[int] = None,
        data_dir: Union[str, "PathLike[str]", None] = None,
        auth_token: Optional[str] = None,
    ) -> None: ...
    @property
    def leader_addr(self) -> str: ...
    @property
    def broker_addrs(self) -> List[str]: ...
    @property
    def data_dir(self) -> str: ...
    def stop_broker(self, i: int) -> None:
        """Stops broker ``i`` (0-based)."""
    def restart_broker(self, i: int) -> None:
        """Starts broker ``i`` again with its data; returns once it has registered."""
    def stop(self) -> None:
        """Stops every node; idempotent."""
    def __enter__(self) -> "Cluster": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

def main(argv: List[str]) -> int:
    """Runs the logbrook command line; returns the exit status."""
