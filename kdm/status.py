"""Status records on the compacted status topic (`<prefix>.status`), read by query-status.

Keys: `relay/<source-id>` (a `RelayStatus`); subtask keys come with the sync consumer.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.kafka_admin import ensure_topics
from kdm.relay_log import TopicReader
from kdm.topics import Topics

RELAY_STATUS = "io.kdm.status.RelayStatus"


class StatusPublisher:
    """Writes status records (not transactional: the latest one wins)."""

    def __init__(self, kafka: KafkaConfig, codec: AvroCodec) -> None:
        self.topic = Topics(kafka.topic_prefix).compacted("status")
        ensure_topics(kafka, [self.topic])
        self.codec = codec
        self.producer = Producer(kafka.client(**{"acks": "all", "linger.ms": 0, "log_level": 3}))

    def publish(self, key: str, schema: str, record: dict[str, Any]) -> None:
        """Send one status record; delivery happens in the background."""
        self.producer.produce(self.topic.name, self.codec.encode(schema, record, self.topic.name),
                              key)
        self.producer.poll(0)

    def close(self) -> None:
        """Deliver what is queued."""
        self.producer.flush(10)


def read_status(kafka: KafkaConfig) -> dict[str, dict[str, Any]]:
    """The latest status record of every key."""
    topic = Topics(kafka.topic_prefix).compacted("status")
    ensure_topics(kafka, [topic])
    latest: dict[str, dict[str, Any]] = {}
    with TopicReader(kafka, topic.name) as reader:
        for message in reader.read(reader.bounds()[0]):
            if message.key is not None:
                latest[message.key] = message.value
    return latest
