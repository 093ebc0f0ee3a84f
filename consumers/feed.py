"""The relay read and decoded in a child process, so decoding runs on its own core.

A subtask's own thread is Python-bound: reading and decoding a relay record costs about as
much as everything else it does with it. `Feed` moves the Kafka consumer and the Avro
decoder into a child process, which sends the subtask lists of items through a pipe:

- ``(offset, ts_ms, layout, before, after)``: a ROW record. `layout` is an int naming a
  `Layout` (schema, table, operation, columns) sent once before its first use, as
- ``("layout", number, Layout)``;
- ``(offset, record)``: any other record, decoded whole;
- ``("raw", offset, value)``: a message the child could not decode: the subtask decodes it
  again itself, which raises the coded error in the subtask;
- ``("error", offset, code, text)``: a Kafka error other than end-of-partition.

The pipe is the back-pressure: the child blocks in `send` while the subtask is behind. The
child exits when the pipe breaks or its parent is gone (even after a SIGKILL of the parent),
and the subtask kills it by PID when it stops. Offsets are committed by the subtask, never
by the child, which reads without a consumer group.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, TopicPartition

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_SYNC_INTERNAL, KdmError
from kdm.relay_log import open_consumer

BATCH = 2000
POLL_SECONDS = 0.05


class Layout(NamedTuple):
    """What consecutive rows of one table share."""

    schema: str
    table: str
    op: str
    columns: list[dict[str, Any]]


class Feed:
    """Decoded relay records from `start` on, from a child process."""

    def __init__(self, kafka: KafkaConfig, topic: str, start: int) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a threaded process
        self._conn, child = context.Pipe(duplex=False)
        self.process = context.Process(target=_child, args=(child, kafka, topic, start,
                                                            os.getpid()),
                                       name=f"kdm-feed-{topic}", daemon=True)
        self.process.start()
        child.close()
        self.layouts: dict[int, Layout] = {}

    def next(self, timeout: float) -> list[tuple[Any, ...]]:
        """The next items (after applying layout announcements), or [] after `timeout`."""
        try:
            if not self._conn.poll(timeout):
                return []
            items: list[tuple[Any, ...]] = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise ERR_SYNC_INTERNAL(f"the relay reader process (pid {self.process.pid}) "
                                    f"stopped: exit code {self.process.exitcode}") from exc
        announced = 0
        while announced < len(items) and items[announced][0] == "layout":
            _, number, layout = items[announced]
            self.layouts[number] = layout
            announced += 1
        return items[announced:] if announced else items

    def close(self) -> None:
        """Stop the child (by PID) and wait for it."""
        self._conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(10)


class Decoder:
    """Kafka messages to feed items (see the module docstring); layouts are numbered in the
    order they first appear and announced once."""

    def __init__(self, topic: str, codec: AvroCodec | None = None) -> None:
        self.topic = topic
        self.codec = codec or AvroCodec()
        self._layouts: dict[tuple[str, str, str, int], tuple[int, Layout]] = {}
        self._numbered = 0

    def items(self, messages: list[Any]) -> list[tuple[Any, ...]]:
        """The items of a batch of messages, layout announcements first."""
        items: list[tuple[Any, ...]] = []
        announced: list[tuple[Any, ...]] = []
        for msg in messages:
            error = msg.error()
            offset = msg.offset()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    items.append(("error", offset, error.code(), error.str()))
                continue
            value = msg.value() or b""
            try:
                _, record = self.codec.decode(value, (self.topic, offset))
            except KdmError:
                items.append(("raw", offset, value))
                continue
            if record["kind"] != "ROW":
                items.append((offset, record))
                continue
            columns = record["columns"]
            slot = (record["schema"], record["table"], record["op"], id(columns))
            known = self._layouts.get(slot)
            if known is None or known[1].columns is not columns:
                if len(self._layouts) > 10_000:
                    self._layouts.clear()
                self._numbered += 1
                known = self._layouts[slot] = (self._numbered, Layout(
                    record["schema"], record["table"], record["op"], columns))
                announced.append(("layout", *known))
            items.append((offset, record["timestamp_ms"], known[0], record["before"],
                          record["after"]))
        return announced + items


def _child(conn: Connection, kafka: KafkaConfig, topic: str, start: int,
           parent: int) -> None:
    decoder = Decoder(topic)
    consumer = open_consumer(kafka, **{"auto.offset.reset": "error"})
    consumer.assign([TopicPartition(topic, 0, start)])
    try:
        while os.getppid() == parent:
            messages = consumer.consume(BATCH, POLL_SECONDS)
            if messages:
                items = decoder.items(messages)
                if items:
                    conn.send(items)
    except (BrokenPipeError, EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        consumer.close()
