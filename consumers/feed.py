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

The child is a fresh interpreter that imports this module and what it needs, nothing else
(a `multiprocessing` child would first import the parent's whole `__main__`, a CLI or a
script: half a second before the first record, every time a subtask starts). It gets the
parent's module path and its settings pickled on its stdin, never on its command line,
which anyone on the host may read. The pipe is the back-pressure: the child blocks in
`send` while the subtask is behind. The child exits when the pipe breaks or its parent is
gone (even after a SIGKILL of the parent), and the subtask kills it by PID when it stops.
Offsets are committed by the subtask, never by the child, which reads without a consumer
group.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kdm.avro import AvroCodec
from kdm.errors import KdmError
from kdm.relay_log import reader_settings

if TYPE_CHECKING:
    from kdm.config.service import KafkaConfig

# Small batches in a big pipe: the child runs some 9 batches (3 rounds of DM's default 16 x
# 100 rows) ahead, so it goes on decoding while the subtask waits for the downstream, and
# the subtask gets each batch sooner (measured: the insert phase of bench/sync.py in 4%
# less time than with batches of 2,000 in the default 64 KiB pipe).
BATCH = 500
PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process
POLL_SECONDS = 0.05
# the child's program: the parent's module path first, then this module
_CHILD = ("import pickle, sys; settings = pickle.load(sys.stdin.buffer); "
          "sys.path[:] = settings['path']; from consumers.feed import _child; _child(settings)")


class Layout(NamedTuple):
    """What consecutive rows of one table share."""

    schema: str
    table: str
    op: str
    columns: list[dict[str, Any]]


class Feed:
    """Decoded relay records from `start` on, from a child process."""

    def __init__(self, kafka: KafkaConfig, topic: str, start: int) -> None:
        settings = {"path": [path or os.getcwd() for path in sys.path], "parent": os.getpid(),
                    "topic": topic, "start": start,
                    "consumer": reader_settings(kafka, **{"auto.offset.reset": "error"})}
        read, write = os.pipe()
        try:
            self.process = subprocess.Popen([sys.executable, "-c", _CHILD],
                                            stdin=subprocess.PIPE, pass_fds=(write,))
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._conn = Connection(read, writable=False)
        _widen(self._conn)
        assert self.process.stdin is not None
        try:
            with self.process.stdin as stdin:
                stdin.write(pickle.dumps({**settings, "fd": write}))
        except BrokenPipeError:
            pass  # the child is gone already: `next` says so, with its exit code
        self.layouts: dict[int, Layout] = {}

    def next(self, timeout: float) -> list[tuple[Any, ...]]:
        """The next items (after applying layout announcements), or [] after `timeout`."""
        try:
            if not self._conn.poll(timeout):
                return []
            items: list[tuple[Any, ...]] = self._conn.recv()
        except (EOFError, OSError) as exc:
            # not coded here: the runner pauses the subtask with ERR_SYNC_INTERNAL, which
            # needs the task and source this class does not know
            raise ChildProcessError(f"the relay reader process (pid {self.process.pid}) "
                                    f"stopped: exit code {self.process.poll()}") from exc
        announced = 0
        while announced < len(items) and items[announced][0] == "layout":
            _, number, layout = items[announced]
            self.layouts[number] = layout
            announced += 1
        return items[announced:] if announced else items

    def close(self) -> None:
        """Stop the child (by PID) and wait for it."""
        self._conn.close()
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


class Decoder:
    """Kafka messages to feed items (see the module docstring); layouts are numbered in the
    order they first appear and announced once."""

    def __init__(self, topic: str, codec: AvroCodec | None = None) -> None:
        self.topic = topic
        self.codec = codec or AvroCodec()
        self._layouts: dict[tuple[str, str, str, int], tuple[int, Layout]] = {}
        self._numbered = 0
        # the layout of the last row: the next row is nearly always of the same one
        self._last: tuple[int, Layout] | None = None

    def items(self, messages: list[Any]) -> list[tuple[Any, ...]]:
        """The items of a batch of messages, layout announcements first."""
        items: list[tuple[Any, ...]] = []
        append = items.append
        announced: list[tuple[Any, ...]] = []
        decode_row = self.codec.decode_row
        topic = self.topic
        for msg in messages:
            error = msg.error()
            offset = msg.offset()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    append(("error", offset, error.code(), error.str()))
                continue
            value = msg.value() or b""
            try:
                row = decode_row(value, (topic, offset))
                if row is None:
                    _, record = self.codec.decode(value, (topic, offset))
                    if record["kind"] != "ROW":
                        append((offset, record))
                        continue
                    row = (record["timestamp_ms"], record["schema"], record["table"],
                           record["op"], record["columns"], record["before"], record["after"])
            except KdmError:
                append(("raw", offset, value))
                continue
            ts_ms, schema, table, op, columns, before, after = row
            last = self._last
            if last is None or last[1].columns is not columns or last[1].op != op or \
                    last[1].table != table or last[1].schema != schema:
                last = self._last = self._layout(schema, table, op, columns, announced)
            append((offset, ts_ms, last[0], before, after))
        return announced + items

    def _layout(self, schema: str, table: str, op: str, columns: list[dict[str, Any]],
                announced: list[tuple[Any, ...]]) -> tuple[int, Layout]:
        """The numbered layout of these rows; a new one is announced."""
        slot = (schema, table, op, id(columns))
        known = self._layouts.get(slot)
        if known is None or known[1].columns is not columns:
            if len(self._layouts) > 10_000:
                self._layouts.clear()
            self._numbered += 1
            known = self._layouts[slot] = (self._numbered, Layout(schema, table, op, columns))
            announced.append(("layout", *known))
        return known


def _widen(conn: Connection) -> None:
    """Make the pipe hold `PIPE_BYTES` (best effort: a host limit keeps the default)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _child(settings: dict[str, Any]) -> None:
    """The child's loop (see the module docstring)."""
    conn = Connection(settings["fd"], readable=False)
    topic, parent = settings["topic"], settings["parent"]
    decoder = Decoder(topic)
    consumer = Consumer(settings["consumer"])
    consumer.assign([TopicPartition(topic, 0, settings["start"])])
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
