"""Reading a relay topic: its last committed record, a range of records, and the offset of
a binlog position. Used by the relay producer (to resume), sync consumers (to map a task's
`meta` to an offset) and the CLI (`kdm read-topic`).

Only committed records are read (`isolation.level=read_committed`): what an aborted or
unfinished producer transaction wrote is never seen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from kdm.avro import RELAY_EVENT, AvroCodec
from kdm.errors import ERR_KAFKA_ADMIN, ERR_RELAY_TAIL, KdmError
from kdm.position import GTIDSet, Position

if TYPE_CHECKING:  # the sync consumer's relay reader process imports this module: keep it light
    from kdm.config.service import KafkaConfig

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Message:
    """One decoded record with where it sits in Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    schema: str
    value: dict[str, Any]


def reader_settings(kafka: KafkaConfig, **extra: Any) -> dict[str, Any]:
    """The librdkafka settings of `open_consumer`."""
    return kafka.client(**{
        "group.id": f"kdm-reader-{uuid.uuid4().hex[:12]}", "enable.auto.commit": False,
        "isolation.level": "read_committed", "enable.partition.eof": True,
        "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50, "log_level": 3, **extra})


def open_consumer(kafka: KafkaConfig, **extra: Any) -> Consumer:
    """A read_committed consumer outside any group (offsets are chosen by the caller)."""
    return Consumer(reader_settings(kafka, **extra))


class TopicReader:
    """Committed records of one partition of a topic, decoded."""

    def __init__(self, kafka: KafkaConfig, topic: str, partition: int = 0,
                 codec: AvroCodec | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.codec = codec or AvroCodec()
        self.consumer = open_consumer(kafka)

    def close(self) -> None:
        """Leave the cluster."""
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def bounds(self) -> tuple[int, int]:
        """(first offset, end offset) of the partition."""
        try:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, self.partition), timeout=30, cached=False)
        except KafkaException as exc:
            raise ERR_KAFKA_ADMIN(exc, op="watermarks", target=self.topic) from exc
        return int(low), int(high)

    def offset_for_time(self, timestamp_ms: int) -> int:
        """The first offset whose record time is at or after `timestamp_ms`."""
        found = self.consumer.offsets_for_times(
            [TopicPartition(self.topic, self.partition, timestamp_ms)], timeout=30)
        offset = found[0].offset
        return self.bounds()[1] if offset < 0 or offset == OFFSET_END else int(offset)

    def read(self, start: int, stop: int | None = None, follow: bool = False,
             keep_going: Callable[[], bool] = lambda: True) -> Iterator[Message]:
        """Records from offset `start` up to (not including) `stop`, or to the end; with
        `follow`, wait for new ones for as long as `keep_going()` says so."""
        self.consumer.assign([TopicPartition(self.topic, self.partition, start)])
        while True:
            msg = self.consumer.poll(POLL_SECONDS)
            error = msg.error() if msg is not None else None
            if msg is None or (error is not None and error.code() == KafkaError._PARTITION_EOF):
                if (msg is not None and not follow) or (follow and not keep_going()):
                    return
                continue
            if error is not None:
                raise ERR_KAFKA_ADMIN(KafkaException(error), op="consume", target=self.topic)
            if stop is not None and int(msg.offset() or 0) >= stop:
                return
            yield self._decode(msg)

    def _decode(self, msg: Any) -> Message:
        where = f"{self.topic}[{self.partition}]@{msg.offset()}"
        schema, value = self.codec.decode(msg.value() or b"", where)
        key = msg.key()
        return Message(self.topic, self.partition, int(msg.offset()), int(msg.timestamp()[1]),
                       key.decode("utf8", "replace") if key else None, schema, value)

    def last(self) -> Message | None:
        """The last committed record, or None when the partition holds none.

        Aborted transactions leave records and markers at the end of the log, so the window
        read backwards from the end grows until a committed record is found."""
        low, high = self.bounds()
        window = 64
        while True:
            start = max(low, high - window)
            found = None
            for message in self.read(start):
                found = message
            if found is not None or start == low:
                return found
            window *= 16

    def find(self, is_after: Callable[[dict[str, Any]], bool]) -> int:
        """The first offset whose record satisfies `is_after` (which must be monotone over
        the partition: false, ..., false, true, ..., true); the end offset if none does."""
        low, high = self.bounds()
        while low < high:
            middle = (low + high) // 2
            message = next(self.read(middle), None)
            if message is None or is_after(message.value):
                high = middle
            else:
                low = message.offset + 1
        return low


def after_position(target: Position, use_gtid: bool) -> Callable[[dict[str, Any]], bool]:
    """A predicate over relay records: the record comes after `target`, a point between
    transactions (a task's `meta`, a user's `file:pos`), so its first record qualifies.

    With GTIDs: the record's transaction is not in the target's set (records without a
    transaction compare their GTID set). Otherwise by file, position, and then inside a
    transaction (a BEGIN at the target position comes after it)."""
    if use_gtid and target.gtid:
        executed = GTIDSet.parse(target.gtid)

        def by_gtid(record: dict[str, Any]) -> bool:
            gtid = record.get("txn_gtid") or ""
            if gtid:
                return not executed.contains(gtid)
            return not GTIDSet.parse(record["position"]["gtid"]).issubset(executed)
        return by_gtid
    file_number, stem, pos, _, _ = target.sort_key()
    key = (file_number, stem, pos, False, target.event_index, target.row_index)

    def by_pos(record: dict[str, Any]) -> bool:
        n, s, p, e, r = Position.from_dict(record["position"]).sort_key()
        return (n, s, p, record["kind"] in ("BEGIN", "ROW"), e, r) > key
    return by_pos


def last_relay_record(kafka: KafkaConfig, topic: str, codec: AvroCodec) -> Message | None:
    """The last committed record of a relay topic; a coded error if it is not a relay event."""
    with TopicReader(kafka, topic, 0, codec) as reader:
        try:
            message = reader.last()
        except KdmError as exc:
            if exc.spec.resumable:  # Kafka unreachable or not ready: the caller retries
                raise
            raise ERR_RELAY_TAIL(exc, topic=topic, problem=exc.message) from exc
    if message is not None and message.schema != RELAY_EVENT:
        raise ERR_RELAY_TAIL(topic=topic, problem=f"offset {message.offset} holds a "
                             f"{message.schema}, not a relay event")
    return message
