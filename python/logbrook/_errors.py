"""logbrook's exceptions: one class per kind of error the Rust core reports."""

from __future__ import annotations

from typing import Any, Dict


class LogbrookError(Exception):
    """Base class of every logbrook error.

    ``str(err)`` is the server's message. ``err.details`` holds the error's fields
    (``error`` is its kind; others name the topic, group, partition or address).
    """

    kind = "logbrook"
    details: Dict[str, Any]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.details = {}


class NotInGroupError(LogbrookError):
    """The consumer must join a consumer group before subscribe or poll."""

    kind = "not_in_group"


class UnknownTopicError(LogbrookError):
    """The topic does not exist."""

    kind = "unknown_topic"


class TopicExistsError(LogbrookError):
    """A topic with that name already exists."""

    kind = "topic_exists"


class InvalidNameError(LogbrookError, ValueError):
    """A topic, group or server name breaks the naming rules."""

    kind = "invalid_name"


class UnavailableError(LogbrookError):
    """A leader or broker could not be reached, or did not answer in time."""

    kind = "unavailable"


class NoBrokersError(UnavailableError):
    """No live broker can take the request."""

    kind = "no_brokers"


class NotPartitionOwnerError(UnavailableError):
    """The broker asked does not host the partition (stale metadata)."""

    kind = "not_partition_owner"


class UnknownPartitionError(LogbrookError):
    """The topic has no such partition."""

    kind = "unknown_partition"


class OffsetOutOfRangeError(LogbrookError):
    """A fetch asked for an offset outside the partition's log."""

    kind = "offset_out_of_range"


class UnknownMemberError(LogbrookError):
    """The group does not know this consumer (it left or timed out)."""

    kind = "unknown_member"


class UnknownBrokerError(LogbrookError):
    """The leader does not know this broker id."""

    kind = "unknown_broker"


class InvalidRequestError(LogbrookError, ValueError):
    """The request is malformed, or the object is closed."""

    kind = "invalid_request"


class TooLargeError(LogbrookError, ValueError):
    """A request or record is over the configured size limit."""

    kind = "too_large"


class DeliveryFailedError(LogbrookError):
    """Records queued by send_message could not be delivered (raised by flush)."""

    kind = "delivery_failed"


class UnauthorizedError(LogbrookError):
    """The cluster requires an auth token and the request had none, or a wrong one."""

    kind = "unauthorized"


class RecordTooLargeError(TooLargeError):
    """A record is over the brokers' ``--max-record-bytes``; ``details["limit"]`` names
    the limit. Nothing of its batch was written."""

    kind = "record_too_large"


class StaleEpochError(UnavailableError):
    """A replica acted on stale leadership (a fenced leader): retried by clients."""

    kind = "stale_epoch"


class ReplicationTimeoutError(UnavailableError):
    """With acks="all", the in-sync replicas did not confirm in time (retried)."""

    kind = "replication_timeout"


class OutOfOrderSequenceError(LogbrookError):
    """An idempotent producer's batch did not continue its sequence (a batch before
    it was lost)."""

    kind = "out_of_order_sequence"


class StorageError(LogbrookError):
    """A server could not read or write its disk."""

    kind = "storage"


class ProtocolError(LogbrookError):
    """A peer answered something this version does not understand."""

    kind = "protocol"


ERRORS_BY_KIND: Dict[str, type] = {
    cls.kind: cls
    for cls in (
        NotInGroupError,
        UnknownTopicError,
        TopicExistsError,
        InvalidNameError,
        UnavailableError,
        NoBrokersError,
        NotPartitionOwnerError,
        UnknownPartitionError,
        OffsetOutOfRangeError,
        UnknownMemberError,
        UnknownBrokerError,
        InvalidRequestError,
        TooLargeError,
        RecordTooLargeError,
        StaleEpochError,
        ReplicationTimeoutError,
        OutOfOrderSequenceError,
        DeliveryFailedError,
        UnauthorizedError,
        StorageError,
        ProtocolError,
    )
}

__all__ = ["LogbrookError", "ERRORS_BY_KIND"] + [cls.__name__ for cls in ERRORS_BY_KIND.values()]
