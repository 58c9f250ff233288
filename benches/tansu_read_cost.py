"""How long a broker takes to hand N records of one partition back to a fresh
consumer: produce N records (200-byte values, H headers each), then read them
all with a new group from the earliest offset.

    python benches/tansu_read_cost.py BROKERS TOPIC N H

Needs confluent-kafka (scripts/test.sh installs it into
~/.cache/nba-tools/registry-client). Written to see whether tansu's sqlite
storage, not nba, is what makes runs on it slow (BENCHMARKS.md).
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

brokers, topic, n, headers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
value = b"x" * 200
record_headers = [("nba.h%d" % i, b"v") for i in range(headers)] or None
for i in range(n):
    producer.produce(topic, value=value, key=str(i).encode(), headers=record_headers)
    if i % 10000 == 0:
        producer.poll(0)
flush_started = time.monotonic()
producer.flush(120)
print(f"produced {n} (flush {time.monotonic() - flush_started:.1f} s)", flush=True)

consumer = Consumer(
    {
        "bootstrap.servers": brokers,
        "group.id": str(uuid.uuid4()),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
)
consumer.subscribe([topic])
started, first, got = time.monotonic(), None, 0
while got < n:
    message = consumer.poll(1.0)
    if message is None or message.error():
        continue
    if first is None:
        first = time.monotonic()
    got += 1
ended = time.monotonic()
print(
    f"n={n} headers={headers} read in {ended - started:.2f} s "
    f"({n / max(ended - first, 1e-9):.0f} records/s after the first)"
)
consumer.close()
