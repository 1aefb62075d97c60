"""A consumer group shared by two worker processes.

    python examples/python/consumer_group.py                 # starts a cluster in-process
    python examples/python/consumer_group.py 127.0.0.1:7070  # uses a running cluster

Two worker processes join one group and subscribe to one topic; the main process
then produces N records. The group splits the topic's partitions between the
workers, so each record reaches exactly one of them. Each worker prints what it got;
the main process checks that together they received every record exactly once, and
exits 1 otherwise.
"""

import multiprocessing
import os
import queue
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack

import logbrook

RECORDS = 200
PARTITIONS = 4
WORKERS = 2
DEADLINE = 20.0  # seconds for the whole exchange


def worker(name, leader, group, topic, ready, stop, results, print_lock):
    """Consumes ``topic`` in ``group`` until ``stop`` is set; reports every batch."""
    with logbrook.Consumer(f"{name}-{os.getpid()}", leader) as consumer:
        consumer.join_consumer_group(group)
        consumer.subscribe(topic)
        consumer.poll()  # learn this member's share of the partitions now
        ready.set()
        got = []
        while not stop.is_set():
            batch = consumer.poll(timeout=0.1)
            if batch:
                got.extend(batch)
                results.put(("batch", name, [m.value.decode() for m in batch]))
        partitions = sorted({m.partition for m in got})
        lines = [f"{name}: {len(got)} records from partitions {partitions}"]
        lines += [f"{name}:   partition {m.partition} offset {m.offset} {m.value.decode()}" for m in got]
        with print_lock:  # one worker's report at a time, not interleaved
            print("\n".join(lines), flush=True)
    results.put(("done", name, len(got)))


def stop_workers(procs, stop) -> None:
    stop.set()
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def main() -> int:
    # "spawn": the workers start fresh interpreters (never fork a process whose
    # cluster threads are running).
    mp = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        if len(sys.argv) > 1:
            leader = sys.argv[1]
        else:
            cluster = stack.enter_context(logbrook.Cluster(brokers=2, partitions=PARTITIONS))
            leader = cluster.leader_addr
        # Fresh names, so runs against a long-running cluster do not mix.
        run = uuid.uuid4().hex[:8]
        topic, group = f"jobs-{run}", f"workers-{run}"
        producer = stack.enter_context(logbrook.Producer(leader))
        producer.add_topic(topic, partitions=PARTITIONS)
        print(f"leader at {leader}; topic {topic}, group {group}")

        stop, results, print_lock = mp.Event(), mp.Queue(), mp.Lock()
        readies = [mp.Event() for _ in range(WORKERS)]
        procs = [
            mp.Process(
                target=worker,
                args=(f"worker-{i}", leader, group, topic, readies[i], stop, results, print_lock),
            )
            for i in range(WORKERS)
        ]
        for proc in procs:
            proc.start()
        stack.callback(stop_workers, procs, stop)
        deadline = time.monotonic() + DEADLINE
        for ready in readies:
            if not ready.wait(max(0.0, deadline - time.monotonic())):
                print("FAILED: a worker did not start in time", file=sys.stderr)
                return 1

        sent = [f"record-{i:04}" for i in range(RECORDS)]
        for value in sent:
            producer.send_message(topic, value)
        producer.flush()  # every record acknowledged
        print(f"sent {len(sent)} records")

        counts, per_worker, done = Counter(), Counter(), 0
        while done < WORKERS and time.monotonic() < deadline:
            if sum(counts.values()) >= len(sent):
                # Everything is in: stop the workers. Anything they still get (a
                # duplicate would be) is reported before their "done".
                stop.set()
            try:
                kind, name, payload = results.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "done":
                done += 1
            else:
                counts.update(payload)
                per_worker[name] += len(payload)

        expected = set(sent)
        missing = [v for v in sent if counts[v] == 0]
        twice = [v for v, n in counts.items() if n > 1]
        unexpected = [v for v in counts if v not in expected]
        print(f"received per worker: {dict(sorted(per_worker.items()))}")
        if missing or twice or unexpected or done < WORKERS:
            print(
                f"FAILED: {len(missing)} missing {missing[:5]}, {len(twice)} twice {twice[:5]}, "
                f"{len(unexpected)} unexpected, {done}/{WORKERS} workers finished",
                file=sys.stderr,
            )
            return 1
        if len(per_worker) < WORKERS:
            print("FAILED: a worker got no records: the group did not split", file=sys.stderr)
            return 1
        print(f"the workers received all {len(sent)} records, each exactly once")
        return 0


if __name__ == "__main__":
    sys.exit(main())
