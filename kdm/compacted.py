"""A compacted control topic followed into memory: the latest value of every key.

The control plane keeps its state in compacted topics (sources, tasks, stages, status).
Every process that needs that state follows the topic from its first offset in a thread and
keeps the newest record per key; `ready` is set once the backlog present at start has been
read, so a reader never acts on half a table. A lost broker connection is followed again
from just after the last offset applied, so the table never goes back to older values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self

from confluent_kafka import Producer

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, KdmError
from kdm.kafka_admin import ensure_topics
from kdm.log import Logger
from kdm.relay_log import TopicReader
from kdm.topics import TopicSpec


class CompactedTable:
    """The latest decoded record of every key of one compacted topic, kept current."""

    def __init__(self, kafka: KafkaConfig, spec: TopicSpec,
                 accept: Callable[[str, dict[str, Any]], bool] = lambda key, value: True
                 ) -> None:
        self.kafka = kafka
        self.spec = spec
        self.accept = accept
        self.values: dict[str, dict[str, Any]] = {}
        self.version = 0  # bumps with every record applied, so watchers can tell news
        self.applied = -1  # the last offset applied: following again never goes back
        self.ready = threading.Event()
        self.error: KdmError | None = None
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self.log = Logger("control")
        self._thread = threading.Thread(target=self._run, name=f"follow-{spec.name}",
                                        daemon=True)

    def start(self) -> Self:
        """Create the topic if needed and start following it."""
        ensure_topics(self.kafka, [self.spec])
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the backlog has been read; a coded error if it was not in time (never
        act on half a table)."""
        if not self.ready.wait(timeout):
            raise ERR_KAFKA_ADMIN(self.error, op=f"read the backlog within {timeout:.0f}s",
                                  target=self.spec.name)

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(10)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A copy of the table."""
        with self.changed:
            return dict(self.values)

    def wait_for(self, predicate: Callable[[dict[str, dict[str, Any]]], bool],
                 timeout: float) -> bool:
        """Wait until `predicate(table)` holds (True) or `timeout` passes (False)."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.values), timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except KdmError as exc:  # the broker went away: follow again, after `applied`
                self.error = exc
                self.log.warning("following the topic again", topic=self.spec.name,
                                 error=exc.render())
                self._stop.wait(1.0)

    def _follow(self) -> None:
        with TopicReader(self.kafka, self.spec.name) as reader:
            low, high = reader.bounds()
            if high <= max(low, self.applied + 1):
                self.ready.set()
            for message in reader.read(max(low, self.applied + 1), follow=True,
                                       keep_going=lambda: not self._stop.is_set()):
                self.applied = message.offset
                if message.key is not None and self.accept(message.key, message.value):
                    with self.changed:
                        self.values[message.key] = message.value
                        self.version += 1
                        self.changed.notify_all()
                if message.offset + 1 >= high:
                    self.ready.set()
                if self._stop.is_set():
                    return


class TableWriter:
    """Writes records to a compacted topic and waits until Kafka has each."""

    def __init__(self, kafka: KafkaConfig, spec: TopicSpec, codec: AvroCodec | None = None
                 ) -> None:
        self.spec = spec
        self.codec = codec or AvroCodec()
        ensure_topics(kafka, [spec])
        self.producer = Producer(kafka.client(acks="all", log_level=3))

    def put(self, key: str, schema: str, record: dict[str, Any]) -> None:
        """Write one record under `key`; raise a coded error if Kafka did not take it."""
        failures: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)
        self.producer.produce(self.spec.name, self.codec.encode(schema, record, self.spec.name),
                              key, on_delivery=delivered)
        if self.producer.flush(30) != 0 or failures:
            raise ERR_KAFKA_ADMIN(op="produce", target=self.spec.name)

    def close(self) -> None:
        """Deliver anything queued."""
        self.producer.flush(10)
