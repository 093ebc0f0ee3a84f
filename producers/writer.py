"""The relay topic's writer: records go out inside Kafka transactions.

Each transaction holds a run of consecutive relay records and nothing else; the last record
committed *is* the relay's resume point, so events and resume point commit together. A
producer killed mid-transaction leaves an open transaction that the next `init_transactions`
with the same `transactional.id` aborts; readers use read_committed and never see it.

Error handling follows librdkafka's typed facts: a retriable commit error is retried, an
abortable one aborts the transaction (the caller re-reads the binlog from the last commit),
a fatal one (including being fenced by a newer producer for the same source) ends the
writer, which the caller replaces.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from kdm import faults
from kdm.avro import RELAY_EVENT, AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_RELAY_KAFKA_WRITE

TIMEOUT = 60.0


class TransactionAborted(Exception):
    """The open transaction was aborted; its records are gone and must be produced again."""


class RelayWriter:
    """Produces relay records to one topic partition in transactions."""

    def __init__(self, kafka: KafkaConfig, topic: str, transactional_id: str,
                 codec: AvroCodec) -> None:
        self.topic = topic
        self.codec = codec
        self.producer = Producer(kafka.client(**{
            "transactional.id": transactional_id, "enable.idempotence": True, "acks": "all",
            "linger.ms": 20, "compression.type": "lz4", "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576, "transaction.timeout.ms": 120_000,
            "log_level": 3}))
        self._call("init", lambda: self.producer.init_transactions(TIMEOUT))
        self.open = False
        self.pending = 0
        self.first_pending_at = 0.0
        self.last: dict[str, Any] | None = None
        self.committed: dict[str, Any] | None = None
        self._names: tuple[str, str] = ("", "")
        self._key: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        """Produce one record into the open transaction (opening one if needed)."""
        if not self.open:
            self._call("begin", self.producer.begin_transaction)
            self.open = True
            self.first_pending_at = time.monotonic()
        value = self.codec.encode(RELAY_EVENT, record, self.topic, checked_values=True)
        names = (record["schema"], record["table"])
        if names != self._names:
            self._names = names
            self._key = f"{names[0]}.{names[1]}" if names[1] else (names[0] or None)
        key = self._key
        while True:
            try:
                self.producer.produce(self.topic, value, key, partition=0)
                break
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                self._fail("produce", exc)
        self.pending += 1
        self.last = record
        faults.point("relay.after_produce")
        if self.pending % 1000 == 0:
            self.producer.poll(0)

    def commit(self) -> None:
        """Commit the open transaction; the last record becomes the resume point."""
        if not self.open:
            return
        faults.point("relay.before_commit")
        self._call("commit", lambda: self.producer.commit_transaction(TIMEOUT))
        self.open = False
        self.pending = 0
        self.committed = self.last
        faults.point("relay.after_commit")

    def abort(self) -> None:
        """Abort the open transaction, if any (best effort)."""
        if self.open:
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(TIMEOUT)
        self.open = False
        self.pending = 0
        self.last = self.committed

    def close(self) -> None:
        """Commit what is pending and flush."""
        self.commit()
        self.producer.flush(TIMEOUT)

    def _call(self, op: str, call: Any) -> None:
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.retriable() and not error.fatal():
                    time.sleep(0.5)
                    continue
                self._fail(op, exc)

    def _fail(self, op: str, exc: KafkaException) -> None:
        error: KafkaError = exc.args[0]
        if error.txn_requires_abort():
            self.abort()
            raise TransactionAborted(f"{op}: {error.str()}") from exc
        self.open = False
        raise ERR_RELAY_KAFKA_WRITE(exc, topic=self.topic) from exc
