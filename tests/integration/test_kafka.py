"""Topics and Avro records against the real broker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import KdmError
from kdm.kafka_admin import admin_client, ensure_topics, partition_count, topic_configs
from kdm.topics import Topics, TopicSpec
from tests.integration.relay_support import wait_for
from tests.unit.test_avro import EXTREMES, RELAY, row_event

pytestmark = pytest.mark.integration


def test_relay_topic_is_created_with_its_settings(kafka: KafkaConfig) -> None:
    spec = Topics(kafka.topic_prefix).relay("mysql-replica-01", retention_ms=3_600_000)
    assert ensure_topics(kafka, [spec]) == [spec.name]
    admin = admin_client(kafka)
    configs = topic_configs(admin, spec.name)
    assert partition_count(admin, spec.name) == 1
    assert (configs["cleanup.policy"], configs["retention.ms"]) == ("delete", "3600000")


def test_ensure_is_idempotent_and_follows_retention(kafka: KafkaConfig) -> None:
    topics = Topics(kafka.topic_prefix)
    assert len(ensure_topics(kafka, topics.control())) == 7
    assert ensure_topics(kafka, topics.control()) == []
    configs = topic_configs(admin_client(kafka), topics.compacted("tasks").name)
    assert configs["cleanup.policy"] == "compact"
    spec = topics.relay("s", retention_ms=-1)
    ensure_topics(kafka, [spec])
    ensure_topics(kafka, [topics.relay("s", retention_ms=7_200_000)])
    # the controller accepted the change; the broker shows it a moment later
    wait_for(lambda: topic_configs(admin_client(kafka), spec.name)["retention.ms"] == "7200000",
             10, "the new retention")


def test_a_mismatched_topic_is_refused(kafka: KafkaConfig) -> None:
    name = f"{kafka.topic_prefix}.relay.s"
    ensure_topics(kafka, [TopicSpec(name, partitions=3)])
    with pytest.raises(KdmError) as caught:
        ensure_topics(kafka, [Topics(kafka.topic_prefix).relay("s")])
    assert caught.value.code == 52002 and "3 partitions" in caught.value.message
    ensure_topics(kafka, [TopicSpec(f"{name}2", cleanup_policy="compact")])
    with pytest.raises(KdmError, match=r"cleanup\.policy"):
        ensure_topics(kafka, [TopicSpec(f"{name}2")])


def consume_all(kafka: KafkaConfig, topic: str, count: int) -> list[Any]:
    """Read `count` messages from the start of `topic`, committed ones only."""
    consumer = Consumer(kafka.client(**{"group.id": f"{topic}.g", "auto.offset.reset": "earliest",
                                        "isolation.level": "read_committed"}))
    consumer.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg)
    finally:
        consumer.close()
    return got


def test_avro_records_cross_kafka_exactly(kafka: KafkaConfig) -> None:
    topic = f"{kafka.topic_prefix}.relay.types"
    ensure_topics(kafka, [TopicSpec(topic)])
    codec = AvroCodec()
    records = [row_event(EXTREMES), row_event([None] * 3)]
    producer = Producer(kafka.client())
    for record in records:
        producer.produce(topic, key=b"db.t", value=codec.encode(RELAY, record, topic))
    assert producer.flush(30) == 0
    messages = consume_all(kafka, topic, len(records))
    assert [codec.decode(m.value())[1] for m in messages] == records
    assert [m.key() for m in messages] == [b"db.t", b"db.t"]


def test_created_topics_answer_offsets_at_once(kafka: KafkaConfig) -> None:
    """ensure_topics returns only when every new partition has a leader: a client asking a
    created topic's offsets right away is answered (a fresh broker used to say "unknown
    partition" for a moment, and the relay paused on it)."""
    specs = [TopicSpec(f"{kafka.topic_prefix}.fresh{i}", partitions=3) for i in range(8)]
    assert ensure_topics(kafka, specs) == [s.name for s in specs]
    consumer = Consumer(kafka.client(**{"group.id": f"{kafka.topic_prefix}.fresh"}))
    try:
        for spec in specs:
            for partition in range(3):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(spec.name, partition), timeout=5, cached=False)
                assert (low, high) == (0, 0)
    finally:
        consumer.close()
