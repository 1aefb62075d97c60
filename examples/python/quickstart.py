"""logbrook quickstart: create a topic, produce, and consume as a group.

    python examples/python/quickstart.py                 # starts a cluster in-process
    python examples/python/quickstart.py 127.0.0.1:7070  # uses a running cluster

Prints each record it receives; exits 0 once it received them all.
"""

import sys
import time
from contextlib import ExitStack

import logbrook

TOPIC = "quickstart"
RECORDS = 5


def main() -> int:
    with ExitStack() as stack:
        if len(sys.argv) > 1:
            leader = sys.argv[1]
        else:
            # A leader and three brokers in this process, on free loopback ports,
            # with their data in a temporary dir removed at the end.
            cluster = stack.enter_context(logbrook.Cluster(brokers=3, partitions=3))
            leader = cluster.leader_addr
        print(f"leader at {leader}")

        producer = stack.enter_context(logbrook.Producer(leader))
        try:
            producer.add_topic(TOPIC, partitions=3)
        except logbrook.TopicExistsError:
            pass  # a running cluster may have it from an earlier run

        # A consumer must join a group before it subscribes; a new subscription
        # starts at the end of the log, so subscribe before producing.
        consumer = stack.enter_context(logbrook.Consumer("quickstart-consumer", leader))
        consumer.join_consumer_group("quickstart-group")
        consumer.subscribe(TOPIC)

        for i in range(RECORDS):
            # Records with one key always go to one partition, in order.
            producer.send_message(TOPIC, f"event {i}", key=f"user-{i % 2}")
        producer.flush()

        received = 0
        deadline = time.monotonic() + 20
        while received < RECORDS and time.monotonic() < deadline:
            for message in consumer.poll(timeout=1.0):
                key = message.key.decode() if message.key is not None else "-"
                print(
                    f"partition {message.partition} offset {message.offset} "
                    f"key {key} value {message.value.decode()}"
                )
                received += 1
        consumer.leave_consumer_group()
        print(f"received {received} messages")
        return 0 if received == RECORDS else 1


if __name__ == "__main__":
    sys.exit(main())
