"""Helpers shared by the Python tests: waiting on conditions with deadlines (never
fixed sleeps), Kafka's key hash, and child processes whose output can be awaited."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import logbrook

#: Upper bound for anything that should happen "soon" (generous: CI machines are slow).
WAIT = 15.0


def collect(
    consumer: logbrook.Consumer,
    n: int,
    timeout: float = WAIT,
    max_records: Optional[int] = None,
) -> List[logbrook.Message]:
    """Polls until at least ``n`` records arrived or ``timeout`` passed; returns
    everything received (possibly more than ``n``, so callers can see extras)."""
    got: List[logbrook.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        got.extend(consumer.poll(timeout=min(left, 0.5), max_records=max_records))
    return got


def collect_values(
    consumer: logbrook.Consumer, wanted: Iterable[bytes], timeout: float = WAIT
) -> List[logbrook.Message]:
    """Polls until every value in ``wanted`` arrived or ``timeout`` passed; returns
    everything received (other records too, so callers can check them)."""
    wanted = set(wanted)
    got: List[logbrook.Message] = []
    deadline = time.monotonic() + timeout
    while not wanted <= {m.value for m in got}:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        got.extend(consumer.poll(timeout=min(left, 0.5)))
    return got


def collect_group(
    consumers: Sequence[logbrook.Consumer],
    n: int,
    timeout: float = WAIT,
    max_records: Optional[int] = None,
) -> List[List[logbrook.Message]]:
    """Polls every consumer in turn until together they received at least ``n``
    records or ``timeout`` passed; returns what each one received."""
    got: List[List[logbrook.Message]] = [[] for _ in consumers]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < n and time.monotonic() < deadline:
        for i, consumer in enumerate(consumers):
            got[i].extend(consumer.poll(timeout=0.02, max_records=max_records))
    return got


def assert_quiet(consumers: Iterable[logbrook.Consumer], duration: float = 0.3) -> None:
    """Nothing more arrives (no duplicates, no records from before a subscription)."""
    for consumer in consumers:
        extra = consumer.poll(timeout=duration)
        assert extra == [], f"unexpected extra records: {extra!r}"


def values(messages: Iterable[logbrook.Message]) -> List[bytes]:
    return [m.value for m in messages]


def assert_exactly_once(received: Iterable[bytes], expected: Iterable[bytes]) -> None:
    """Every expected value received exactly once, and nothing else."""
    counts = Counter(received)
    expected = list(expected)
    duplicates = sorted(v for v, c in counts.items() if c > 1)
    missing = sorted(set(expected) - set(counts))
    unexpected = sorted(set(counts) - set(expected))
    assert not duplicates, f"received more than once: {duplicates[:20]}"
    assert not missing, f"never received ({len(missing)}): {missing[:20]}"
    assert not unexpected, f"received but not expected: {unexpected[:20]}"


#: What an undeliverable record raises: UnavailableError at send_message (a producer
#: that waits for each acknowledgement), or DeliveryFailedError at flush (a batching
#: producer reports failed deliveries there).
DELIVERY_FAILED = (logbrook.UnavailableError,) + tuple(
    [logbrook.DeliveryFailedError] if hasattr(logbrook, "DeliveryFailedError") else []
)


def send_acked(producer: logbrook.Producer, topic: str, value, key=None) -> bool:
    """Sends one record and waits for its acknowledgement: True once the broker
    stored it, False if it could not be delivered."""
    try:
        producer.send_message(topic, value, key=key)
        producer.flush()
    except DELIVERY_FAILED:
        return False
    return True


def wait_until(condition, timeout: float = WAIT, what: str = "condition") -> None:
    """Waits for ``condition()`` to be true, checking every few milliseconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


# --- Kafka's key hash (README: a keyed record goes to murmur2(key) % partitions) ---


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java client ``Utils.murmur2``), as an unsigned 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = data[full:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h ^= rest[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def key_for_partition(partition: int, partitions: int, prefix: str = "key") -> str:
    """A key whose records go to ``partition``."""
    for i in range(10_000):
        key = f"{prefix}-{i}"
        if partition_for_key(key.encode(), partitions) == partition:
            return key
    raise AssertionError(f"no key for partition {partition} of {partitions}")


# --- child processes ---


def logbrook_command() -> str:
    """The installed ``logbrook`` console script (PATH, else next to the interpreter)."""
    found = shutil.which("logbrook")
    if found is None:
        candidate = Path(sys.executable).parent / "logbrook"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    if found is None:
        raise AssertionError(
            "the logbrook command is not installed (not on PATH, not next to "
            f"{sys.executable}): pip install -e . should install it"
        )
    return found


class Proc:
    """A child process whose stdout lines are read by a thread, so tests can wait for
    a line with a deadline. stderr goes to a file, shown when an expectation fails."""

    def __init__(
        self,
        args: Sequence[str],
        log_dir: Path,
        *,
        name: str,
        stdin: bool = False,
        cwd: Optional[Path] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> None:
        self.args = list(args)
        self.name = name
        self.stderr_path = Path(log_dir) / f"{name}.{time.monotonic_ns()}.stderr"
        if env is None:
            child_env = dict(os.environ)
            child_env.pop("LOGBROOK_LEADER", None)  # only what a test passes on purpose
        else:
            child_env = dict(env)
        child_env["PYTHONUNBUFFERED"] = "1"
        with open(self.stderr_path, "wb") as stderr:
            self.popen = subprocess.Popen(
                self.args,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=cwd,
                env=child_env,
            )
        self.lines: List[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def describe(self) -> str:
        try:
            err = self.stderr_path.read_text(errors="replace")
        except OSError:
            err = "(no stderr file)"
        return (
            f"{self.name} {self.args!r} (exit status {self.popen.poll()}):\n"
            f"stdout: {self.lines!r}\nstderr: {err[-4000:]}"
        )

    def expect(self, pattern: str, timeout: float = WAIT) -> "re.Match[str]":
        """The next stdout line matching ``pattern`` (a regex matched in full)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s from {self.describe()}"
                ) from None
            if line is None:
                self.popen.wait()
                raise AssertionError(
                    f"{self.name} ended before printing {pattern!r}: {self.describe()}"
                )
            match = regex.fullmatch(line)
            if match:
                return match

    def write(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text.encode())
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        """The exit status; fails if the process is still running after ``timeout``."""
        try:
            status = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout}s: {self.describe()}"
            ) from None
        self._reader.join(timeout=5)
        return status

    def output(self) -> str:
        """Everything printed on stdout so far (call after ``wait``)."""
        return "\n".join(self.lines)

    def cleanup(self) -> None:
        """Kills the process if it is still running and closes its pipes."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        finally:
            self.close_stdin()
            self._reader.join(timeout=5)
            if self.popen.stdout is not None:
                self.popen.stdout.close()
