"""Throughput of the Python client: ``python -m logbrook.bench KIND``.

``produce`` measures a plain ``send_message`` loop followed by ``flush()``;
``produce-batch`` the same records queued by ``send_messages`` calls of ``--chunk``
values each; ``consume`` a ``poll`` loop. Runs against a cluster started in this
process (default) or a running one (``--leader``). Prints records/s and MB/s;
``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

import logbrook


def _topic(kind: str) -> str:
    return f"pybench-{kind}-{os.getpid()}-{time.monotonic_ns()}"


def produce(leader: str, records: int, record_size: int) -> float:
    """Seconds to send ``records`` records with send_message and flush them."""
    producer = logbrook.Producer(leader)
    topic = _topic("produce")
    producer.add_topic(topic, partitions=1)
    value = bytes(record_size)
    send = producer.send_message
    start = time.perf_counter()
    for _ in range(records):
        send(topic, value)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.remove_topic(topic)
    producer.close()
    return elapsed


def produce_batch(leader: str, records: int, record_size: int, chunk: int) -> float:
    """Seconds to queue ``records`` records with send_messages, ``chunk`` values per
    call (the list is built before the clock starts), and flush them."""
    producer = logbrook.Producer(leader)
    topic = _topic("produce-batch")
    producer.add_topic(topic, partitions=1)
    values = [bytes(record_size)] * min(chunk, records)
    start = time.perf_counter()
    left = records
    while left > 0:
        left -= producer.send_messages(topic, values[:left] if left < len(values) else values)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.remove_topic(topic)
    producer.close()
    return elapsed


def consume(leader: str, records: int, record_size: int) -> float:
    """Seconds to poll ``records`` records produced after subscribing."""
    producer = logbrook.Producer(leader)
    topic = _topic("consume")
    producer.add_topic(topic, partitions=1)
    consumer = logbrook.Consumer(f"pybench-{os.getpid()}", leader)
    consumer.join_consumer_group(topic)
    consumer.subscribe(topic)
    value = bytes(record_size)
    for _ in range(records):
        producer.send_message(topic, value)
    producer.flush()
    received = 0
    start = time.perf_counter()
    while received < records:
        batch = consumer.poll(timeout=5.0)
        if not batch:
            raise RuntimeError(f"no records for 5 s after {received} of {records}")
        received += len(batch)
    elapsed = time.perf_counter() - start
    consumer.close()
    producer.remove_topic(topic)
    producer.close()
    return elapsed


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logbrook.bench", description=__doc__)
    parser.add_argument("kind", choices=["produce", "produce-batch", "consume"])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--chunk", type=int, default=10_000, help="values per send_messages call (produce-batch)"
    )
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--leader", help="a running cluster's leader (default: start one in this process)")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    cluster = None
    leader = opts.leader
    if leader is None:
        cluster = logbrook.Cluster(brokers=1, partitions=1)
        leader = cluster.leader_addr
    try:
        if opts.kind == "produce-batch":
            seconds = produce_batch(leader, opts.records, opts.record_size, max(1, opts.chunk))
        else:
            run = produce if opts.kind == "produce" else consume
            seconds = run(leader, opts.records, opts.record_size)
    finally:
        if cluster is not None:
            cluster.stop()
    rate = opts.records / seconds
    result = {
        "benchmark": f"python-{opts.kind}",
        "records": opts.records,
        "record_size": opts.record_size,
        "seconds": seconds,
        "records_per_sec": rate,
        "mb_per_sec": rate * opts.record_size / 1e6,
    }
    if opts.json:
        print(json.dumps(result))
    else:
        print(
            f"python {opts.kind}: {opts.records} records of {opts.record_size} B in {seconds:.3f} s: "
            f"{rate:,.0f} records/s, {result['mb_per_sec']:.1f} MB/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
