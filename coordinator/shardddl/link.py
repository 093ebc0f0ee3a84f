"""The leading coordinator's Kafka side of shard-DDL coordination: one transactional link.

`KafkaLink` opens, in this order (the order is what makes a takeover safe):

1. a transactional producer with the one transactional.id every coordinator of the prefix
   shares (`Topics.shard_ddl_transactional_id`). `init_transactions` fences the previous
   leader's producer and aborts whatever transaction it left open, so nothing it did not
   commit is ever seen (every reader is read_committed);
2. a read_committed consumer of the ddl topic, assigned (no group membership, so no
   rebalance waits) at the offset committed for `Topics.shard_ddl_group`;
3. a reading of the locks topic up to its end: the latest value of every lock ID, a
   tombstone removing it.

`commit` then writes, in one transaction, the changed locks (or their tombstones), the
operations to the ddl-ops topic and, when a message was consumed, the offset after it.
A Kafka error aborts and raises ShardDDLTransaction (38013); the service drops its state
and opens a new link, which rebuilds everything from what was committed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from kdm import faults
from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, ERR_SHARD_MESSAGE_INVALID, ERR_SHARD_TRANSACTION, KdmError
from kdm.kafka_admin import ensure_topics
from kdm.log import Logger
from kdm.relay_log import open_consumer
from kdm.shard_ddl import (
    PESSIMISTIC,
    SHARD_DDL_MESSAGE,
    OptimisticOperation,
    PessimisticOperation,
    ShardMessage,
    operation_message,
)
from kdm.topics import Topics

SHARD_LOCK = "io.kdm.control.ShardLock"
TIMEOUT = 30.0
READ_LOCKS_SECONDS = 60.0
Operation = PessimisticOperation | OptimisticOperation


@dataclass(frozen=True)
class Delivery:
    """One record of the ddl topic: its message, or the coded problem that it is not one."""

    topic: str
    partition: int
    offset: int
    message: ShardMessage | None
    problem: KdmError | None = None

    @property
    def where(self) -> str:
        """topic[partition]@offset, for logs and errors."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


def lock_value(lock: dict[str, Any]) -> dict[str, Any]:
    """The ShardLock Avro record of a lock's `to_dict()`."""
    return {"id": lock["id"], "mode": lock["mode"], "task": lock["task"],
            "lock": json.dumps(lock, sort_keys=True), "updated_ms": int(time.time() * 1000)}


class KafkaLink:
    """The producer, the ddl consumer and the locks read of one leadership session."""

    def __init__(self, kafka: KafkaConfig, codec: AvroCodec | None = None) -> None:
        topics = Topics(kafka.topic_prefix)
        self.kafka = kafka
        self.codec = codec or AvroCodec()
        self.ddl, self.ops = topics.ddl().name, topics.ddl_ops().name
        self.locks = topics.compacted("locks").name
        self.log = Logger("coordinator").bind(component="shardddl")
        self._call("create topics", lambda: ensure_topics(
            kafka, [topics.ddl(), topics.ddl_ops(), topics.compacted("locks")]))
        self.producer = Producer(kafka.client(**{
            "transactional.id": topics.shard_ddl_transactional_id(), "acks": "all",
            "enable.idempotence": True, "linger.ms": 0, "transaction.timeout.ms": 60_000,
            "log_level": 3}))
        self._call("init transactions", lambda: self.producer.init_transactions(TIMEOUT))
        self.consumer = Consumer(kafka.client(**{
            "group.id": topics.shard_ddl_group(), "enable.auto.commit": False,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
            "enable.partition.eof": False, "fetch.wait.max.ms": 100, "log_level": 3}))
        self._call("assign the ddl topic", self._assign)

    def _assign(self) -> None:
        committed = self.consumer.committed([TopicPartition(self.ddl, 0)], timeout=TIMEOUT)[0]
        start = committed.offset if committed.offset >= 0 else OFFSET_BEGINNING
        self.consumer.assign([TopicPartition(self.ddl, 0, start)])

    def close(self) -> None:
        """Leave; an open transaction is aborted by the next `init_transactions`."""
        with contextlib.suppress(KafkaException, RuntimeError):
            self.consumer.close()

    # -- the locks topic ----------------------------------------------------------------------

    def read_locks(self) -> dict[str, dict[str, Any]]:
        """Every lock's latest persisted `to_dict()`, by ID (tombstones remove)."""
        values: dict[str, dict[str, Any]] = {}
        reader = open_consumer(self.kafka)
        try:
            low, high = self._call("watermarks", lambda: reader.get_watermark_offsets(
                TopicPartition(self.locks, 0), timeout=TIMEOUT, cached=False))
            if high > low:
                reader.assign([TopicPartition(self.locks, 0, low)])
                self._read_until(reader, int(high), values)
        finally:
            reader.close()
        return values

    def _read_until(self, reader: Consumer, high: int, values: dict[str, dict[str, Any]]
                    ) -> None:
        deadline = time.monotonic() + READ_LOCKS_SECONDS
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise ERR_SHARD_TRANSACTION(KafkaException(error), op="read the locks",
                                                topic=self.locks)
                position = reader.position([TopicPartition(self.locks, 0)])[0].offset
                if max(int(msg.offset() or 0), position) >= high:
                    return
                continue
            self._apply(msg, values)
            if int(msg.offset() or 0) + 1 >= high:
                return
        raise ERR_SHARD_TRANSACTION(op=f"read the locks within {READ_LOCKS_SECONDS:.0f}s",
                                    topic=self.locks)

    def _apply(self, msg: Any, values: dict[str, dict[str, Any]]) -> None:
        key = (msg.key() or b"").decode("utf8", "replace")
        if msg.value() is None:
            values.pop(key, None)
            return
        where = f"{self.locks}@{msg.offset()}"
        try:
            schema, record = self.codec.decode(msg.value(), where)
            if schema != SHARD_LOCK:
                raise ValueError(f"a {schema} record")
            values[key] = json.loads(record["lock"])
        except (KdmError, ValueError, KeyError) as exc:
            self.log.error("stored lock skipped", where=where, error=str(exc))

    # -- the ddl topic ------------------------------------------------------------------------

    def poll(self, timeout: float) -> Delivery | None:
        """The next record of the ddl topic, decoded, or None."""
        msg = self.consumer.poll(timeout)
        if msg is None:
            return None
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise ERR_SHARD_TRANSACTION(KafkaException(error), op="consume",
                                            topic=self.locks)
            self.log.warning("ddl topic client error", error=str(error))
            return None
        topic, partition = str(msg.topic()), int(msg.partition() or 0)
        offset = int(msg.offset() or 0)
        try:
            schema, record = self.codec.decode(msg.value() or b"", (topic, offset))
            if schema != SHARD_DDL_MESSAGE:
                raise ValueError(f"a {schema} record")
            return Delivery(topic, partition, offset, ShardMessage.from_record(record))
        except KdmError as err:
            return Delivery(topic, partition, offset, None, err)
        except (ValueError, KeyError, TypeError) as exc:
            return Delivery(topic, partition, offset, None, ERR_SHARD_MESSAGE_INVALID(
                exc, kind="?", task="?", source="?", where=f"{topic}@{offset}",
                problem=repr(exc)))

    # -- one transaction ----------------------------------------------------------------------

    def commit(self, writes: Sequence[tuple[str, dict[str, Any] | None]],
               operations: Sequence[Operation], consumed: Delivery | None) -> None:
        """Locks (None: a tombstone), operations and the consumed offset, all or nothing."""
        try:
            self.producer.begin_transaction()
            for key, lock in writes:
                value = None if lock is None else self.codec.encode(
                    SHARD_LOCK, lock_value(lock), self.locks)
                self.producer.produce(self.locks, value, key)
            for op in operations:
                message = operation_message(op)
                self.producer.produce(self.ops, message.encode(self.codec, self.ops),
                                      message.key())
            if consumed is not None:
                self.producer.send_offsets_to_transaction(
                    [TopicPartition(consumed.topic, consumed.partition, consumed.offset + 1)],
                    self.consumer.consumer_group_metadata(), TIMEOUT)
            faults.point("coordinator.shardddl.before_commit")
            self.producer.commit_transaction(TIMEOUT)
        except KafkaException as exc:
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(TIMEOUT)
            raise ERR_SHARD_TRANSACTION(exc, op="commit", topic=self.locks) from exc
        faults.point("coordinator.shardddl.after_commit")

    def _call(self, op: str, call: Any) -> Any:
        try:
            return call()
        except KafkaException as exc:
            raise ERR_SHARD_TRANSACTION(exc, op=op, topic=self.locks) from exc


def send_remove_task(kafka: KafkaConfig, task: str, codec: AvroCodec | None = None) -> None:
    """Ask the leader's loop to drop every lock of `task` (start-task --remove-meta): a
    `remove_task` message on the ddl topic, handled in order with the subtasks' messages."""
    topic = Topics(kafka.topic_prefix).ddl()
    ensure_topics(kafka, [topic])
    message = ShardMessage("remove_task", PESSIMISTIC, task, "")
    failed: list[Any] = []
    producer = Producer(kafka.client(**{"acks": "all", "enable.idempotence": True,
                                        "linger.ms": 0, "log_level": 3}))
    producer.produce(topic.name, message.encode(codec or AvroCodec(), topic.name),
                     message.key(),
                     on_delivery=lambda err, _msg: failed.append(err) if err else None)
    if producer.flush(TIMEOUT) or failed:
        raise ERR_KAFKA_ADMIN(KafkaException(failed[0]) if failed else None,
                              op="send remove_task", target=topic.name)
