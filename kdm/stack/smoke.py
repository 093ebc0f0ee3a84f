"""The smoke check: one Avro message through Kafka and one row through each database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_STACK_SMOKE, KdmError
from kdm.kafka_admin import delete_topics, ensure_topics
from kdm.stack.stack import LocalStack
from kdm.topics import TopicSpec

RELAY_EVENT = "io.kdm.relay.RelayEvent"


def heartbeat_record(marker: str) -> dict[str, Any]:
    """A HEARTBEAT relay event carrying `marker` in its query field."""
    return {
        "source_id": "smoke", "server_id": 1, "kind": "HEARTBEAT",
        "position": {"file": "mysql-bin.000001", "pos": 4, "gtid": "0-1-1",
                     "event_index": 0, "row_index": 0},
        "timestamp_ms": int(time.time() * 1000), "schema": "", "table": "", "op": None,
        "columns": [], "before": None, "after": None, "query": marker, "xid": None, "txn_gtid": "",
    }


def kafka_round_trip(kafka: KafkaConfig) -> str:
    """Produce one Avro record to a fresh topic, consume it back, compare; the topic used."""
    topic = f"{kafka.topic_prefix}.smoke.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [TopicSpec(topic)])
    try:
        codec = AvroCodec()
        sent = heartbeat_record(uuid.uuid4().hex)
        producer = Producer(kafka.client(**{"enable.idempotence": True, "log_level": 3}))
        producer.produce(topic, key=b"smoke", value=codec.encode(RELAY_EVENT, sent, topic))
        if producer.flush(30) != 0:
            raise ERR_STACK_SMOKE(step="kafka produce", problem="message not delivered in 30s")
        got = _consume_one(kafka, topic, codec)
        if got != sent:
            raise ERR_STACK_SMOKE(step="kafka consume", problem=f"read {got!r}, sent {sent!r}")
    finally:
        delete_topics(kafka, [topic])
    return topic


def _consume_one(kafka: KafkaConfig, topic: str, codec: AvroCodec) -> dict[str, Any]:
    settings: dict[str, str | int | float | bool] = {
        "group.id": f"{topic}.reader", "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "enable.auto.commit": False, "log_level": 3}
    consumer = Consumer(kafka.client(**settings))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() or msg.value() is None:
                continue
            _, record = codec.decode(msg.value() or b"", where=f"{topic}@{msg.offset()}")
            return record
    finally:
        consumer.close()
    raise ERR_STACK_SMOKE(step="kafka consume", problem="no message within 30s")


def database_round_trip(stack: LocalStack, which: str) -> None:
    """Write one row into a scratch schema and read it back, then drop the schema."""
    server = stack.upstream if which == "upstream" else stack.downstream
    schema = f"kdm_smoke_{uuid.uuid4().hex[:8]}"
    value = uuid.uuid4().hex
    conn = server.connect()
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{schema}`")
        try:
            cur.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(64))")
            cur.execute(f"INSERT INTO `{schema}`.t VALUES (1, %s)", (value,))
            cur.execute(f"SELECT v FROM `{schema}`.t WHERE id = 1")
            row = cur.fetchone()
        finally:
            cur.execute(f"DROP DATABASE `{schema}`")
    if row is None or row[0] != value:
        raise ERR_STACK_SMOKE(step=f"{which} database", problem=f"read {row!r}, wrote {value}")


def run(stack: LocalStack, report: Callable[[str], None]) -> None:
    """Every smoke step in turn, reporting each as it passes; raises on the first failure."""
    endpoints = stack.require_up()
    kafka = KafkaConfig(bootstrap_servers=endpoints.kafka_bootstrap)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("kafka: produced and consumed one Avro record", lambda: kafka_round_trip(kafka)),
        ("upstream mariadb: wrote and read one row",
         lambda: database_round_trip(stack, "upstream")),
        ("downstream mariadb: wrote and read one row",
         lambda: database_round_trip(stack, "downstream")),
    ]
    for label, step in steps:
        try:
            step()
        except KdmError:
            raise
        except Exception as exc:
            raise ERR_STACK_SMOKE(exc, step=label, problem=type(exc).__name__) from exc
        report(f"ok  {label}")
