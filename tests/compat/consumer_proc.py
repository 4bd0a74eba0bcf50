"""A confluent-kafka group consumer run as its own process by the compat tests (so it can be killed).

Writes one JSON line per event to the output file: {"assign": [partitions], "t": time} on every
assignment and {"p": partition, "o": offset, "v": value} per record. SIGTERM closes it cleanly
(commits and leaves the group); SIGKILL is a member death.
"""

import json
import signal
import sys
import time

from confluent_kafka import Consumer


def main() -> None:
    bootstrap, group, topic, out_path = sys.argv[1:5]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    out = open(out_path, "a", buffering=1)

    def on_assign(consumer, partitions):
        out.write(json.dumps({"assign": sorted(p.partition for p in partitions), "t": time.time()}) + "\n")

    def on_revoke(consumer, partitions):
        out.write(json.dumps({"revoke": sorted(p.partition for p in partitions), "t": time.time()}) + "\n")

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": True, "auto.commit.interval.ms": 200, "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "partition.assignment.strategy": "range"})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    out.write(json.dumps({"started": True}) + "\n")
    while not stop:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        out.write(json.dumps({"p": m.partition(), "o": m.offset(), "v": m.value().decode()}) + "\n")
    c.close()
    out.write(json.dumps({"closed": True}) + "\n")


if __name__ == "__main__":
    main()
