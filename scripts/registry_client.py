"""A registry-aware client nba did not write (confluent-kafka's AvroSerializer
and AvroDeserializer, with fastavro), for scripts/e2e-registry.sh.

  registry_client.py produce RECORDING BROKERS REGISTRY_URL
      Sends the interactions of an `nba simulate --output` recording to
      nba.interactions.raw, each re-serialised with AvroSerializer under a
      schema of the producer's own: nba's Interaction plus an optional field
      nba does not know (`loyalty_tier`), registered by the serializer under
      nba.interactions.raw-value. Prints how many were sent.

  registry_client.py consume BROKERS REGISTRY_URL COUNT
      Reads nba.next-best-actions from the beginning with AvroDeserializer
      (which looks every record's schema id up in the registry) until COUNT
      are read or 60 s pass; checks each has a decision id and a propensity
      in (0, 1]. Prints how many were read.
"""

import io
import json
import sys
import time

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def produce(recording, brokers, registry_url):
    with open(recording, "rb") as f:
        records = list(fastavro.reader(f))
    registry = SchemaRegistryClient({"url": registry_url})
    with open(sys.path[0] + "/../schemas/interaction.avsc") as f:
        nba_schema = json.load(f)
    theirs = dict(nba_schema)
    theirs["fields"] = nba_schema["fields"] + [
        {"name": "loyalty_tier", "type": ["null", "string"], "default": None}
    ]
    parsed = fastavro.parse_schema(nba_schema)
    serializer = AvroSerializer(registry, json.dumps(theirs))
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    sent = 0
    for r in records:
        value = r["value"]
        # nba's own frame (magic byte, 4-byte id), then the datum.
        interaction = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)
        interaction["loyalty_tier"] = "gold"
        ctx = SerializationContext("nba.interactions.raw", MessageField.VALUE)
        producer.produce(
            "nba.interactions.raw",
            key=r["key"],
            value=serializer(interaction, ctx),
            timestamp=r["timestamp"] or 0,
        )
        sent += 1
        producer.poll(0)
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} records not delivered")
    print(sent)


def consume(brokers, registry_url, count):
    registry = SchemaRegistryClient({"url": registry_url})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "registry-e2e-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # Assigned, not subscribed: every partition from its beginning, no group.
    topic = consumer.list_topics("nba.next-best-actions", timeout=10).topics["nba.next-best-actions"]
    consumer.assign(
        [TopicPartition("nba.next-best-actions", p, OFFSET_BEGINNING) for p in topic.partitions]
    )
    read, deadline = 0, time.time() + 60
    while read < count and time.time() < deadline:
        m = consumer.poll(1.0)
        if m is None:
            continue
        if m.error():
            sys.exit(f"consumer error: {m.error()}")
        ctx = SerializationContext(m.topic(), MessageField.VALUE)
        nba = deserializer(m.value(), ctx)
        # An empty action is a decision the contact policy suppressed.
        if not (nba["decision_id"] and 0 < nba["propensity"] <= 1):
            sys.exit(f"not a next-best-action: {nba}")
        read += 1
    consumer.close()
    print(read)


if __name__ == "__main__":
    if sys.argv[1:2] == ["produce"] and len(sys.argv) == 5:
        produce(*sys.argv[2:5])
    elif sys.argv[1:2] == ["consume"] and len(sys.argv) == 5:
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
