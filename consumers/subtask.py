"""A subtask (task x source): the relay topic into the downstream, in rounds.

Loop: decide the start (`consumers.checkpoint`), read the relay from there, turn records
into row changes (`consumers.pipeline`), spread them over the workers by causality
(`consumers.causality`) into a round, apply the round (`consumers.applier`) while the next
one is being built, then commit the round's end offset to Kafka. A DDL ends the round and
runs alone. A round also ends at `worker-count x batch` changes, at a causality conflict,
after `ROUND_SECONDS`, or when the relay has nothing more for now.

Stages follow the stages topic (`subtask/<task>/<source>`), like the relay: pause finishes
the round in flight; an error pauses the subtask with its coded error, a resumable one
(the downstream went away) is retried with backoff.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumers import checkpoint, metrics
from consumers.applier import Applier, Round
from consumers.causality import Causality, change_keys
from consumers.change import RowChange
from consumers.ddl import parse_ddl
from consumers.downstream import KeyCache, connect
from consumers.feed import Feed, Layout
from consumers.pipeline import Pipeline, Rules
from consumers.shard_sync import Action, Plan, ShardSync
from consumers.sync_status import SyncStats
from kdm import faults
from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.config.source import SourceConfig
from kdm.config.task import TaskConfig, resolve_units
from kdm.errors import (
    ERR_KAFKA_ADMIN,
    ERR_SYNC_DOWNSTREAM,
    ERR_SYNC_EXEC,
    ERR_SYNC_INTERNAL,
    ERR_SYNC_META,
    ERR_SYNC_META_AHEAD,
    ERR_SYNC_RELAY_GAP,
    KdmError,
)
from kdm.log import Logger
from kdm.position import Position
from kdm.relay_log import TopicReader, after_position, open_consumer
from kdm.schema_sql import quote_name as quote
from kdm.schema_tracker import Tracker
from kdm.shard_ddl import OPTIMISTIC
from kdm.topics import Topics

ROUND_SECONDS = 0.1
OFFSET_SECONDS = 1.0
RELAY_WAIT_SECONDS = 15.0  # how long a subtask waits for the relay to reach its start
# DDL errors that mean "already done" (DM's ignoreDDLError): database or table exists or
# is gone, duplicate column or key name, can't drop a missing column/key, multiple primary
# keys. A missing table or column (1146, 1054) is tolerated only while replaying in safe
# mode (a DDL that ran just before a crash, e.g. a column rename).
DDL_DONE_ERRNOS = frozenset({1007, 1008, 1050, 1051, 1060, 1061, 1068, 1091})
DDL_DONE_IN_SAFE_MODE = DDL_DONE_ERRNOS | {1054, 1146}
DEADLOCK_ERRNOS = frozenset({1205, 1213})  # lock wait timeout, deadlock: retried


class Reseek(Exception):
    """A shard-DDL lock was resolved: read again from the table checkpoints."""


class Interrupted(Exception):
    """Stopped while waiting for the coordinator: nothing past the last checkpoint counts."""


class OffsetReset(Exception):
    """Someone committed another offset for the subtask's group (a replay request)."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


@dataclass
class Pending:
    """The round being built."""

    start: int
    causality: Causality
    changes: list[list[RowChange]]
    count: int = 0
    end: int = -1
    position: str = ""
    ts_ms: int = 0
    opened: float = field(default_factory=time.monotonic)


class Subtask:
    """Runs one task x source until stopped or paused."""

    def __init__(self, task: TaskConfig, source_id: str, kafka: KafkaConfig,
                 codec: AvroCodec | None = None, source: SourceConfig | None = None) -> None:
        self.task = task
        self.source_id = source_id
        self.kafka = kafka
        self.codec = codec or AvroCodec()
        self.sync = resolve_units(task, task.instance(source_id)).syncer
        self.workers = max(1, self.sync.worker_count)
        self.topic = Topics(kafka.topic_prefix).relay(source_id).name
        self.group = Topics(kafka.topic_prefix).sync_group(task.name, source_id)
        self.log = Logger("sync", task=task.name, source=source_id)
        self.stats = SyncStats()
        self.round = 1
        self.safe_until = 0
        self.next_offset = 0
        self.last_position = ""
        self._unflushed: tuple[int, int] | None = None
        self._ours: tuple[int | None, str] = (None, "")
        self._flushed_at = 0.0
        self.failed_ddl = ""
        self.failed_lock = False  # failed_ddl failed as a shard-DDL lock's owner running it
        self._locking = False
        self.tracker = Tracker()
        self.saved_online: dict[str, Any] | None = None
        self.used_operations: set[int] = set()
        self.operation: Callable[[], dict[str, Any] | None] = lambda: None
        # set by a full migration (task-mode all): start there instead of at `meta`, in
        # safe mode until past `safe_position`
        self.start_at: Position | None = None
        self.safe_position: Position | None = None
        # a shard-merge task's groups and link to the coordinator (DESIGN.md §6)
        self.shard = ShardSync(task, source_id, kafka, source, self.codec) \
            if task.effective_shard_mode else None
        self._stop: threading.Event | None = None

    # -- running ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Apply the relay until `stop` is set (errors propagate to the caller); start over
        from the checkpoint rules when someone moves the subtask's offset."""
        self._stop = stop
        try:
            while not stop.is_set():
                try:
                    self._run(stop)
                    return
                except OffsetReset as reset:
                    self.log.info("offset moved by someone else: replaying",
                                  offset=reset.offset)
                except Reseek:
                    self.log.info("shard ddl lock resolved: replaying the skipped events")
                except Interrupted:
                    return
        finally:
            if self.shard is not None:
                self.shard.close()

    def _run(self, stop: threading.Event) -> None:
        target = self.task.target_database
        keys = KeyCache(target)
        pipeline = Pipeline(Rules.build(self.task, self.source_id), keys)
        applier = Applier(target, self.workers, self.task.meta_schema, self.task.name,
                          self.source_id, self.sync.multiple_rows, self.sync.compact)
        # a checkpoint the relay no longer holds must stop the subtask, never jump ahead
        consumer = open_consumer(self.kafka, **{"group.id": self.group,
                                               "auto.offset.reset": "error"})
        try:
            start = self._start(consumer, pipeline)
            self._check_held(consumer, start)
            if self.saved_online and pipeline.rules.online is not None:
                pipeline.rules.online.restore(self.saved_online)
            feed = Feed(self.kafka, self.topic, start)
            try:
                self._loop(stop, consumer, feed, pipeline, applier, keys, start)
            finally:
                feed.close()
        finally:
            applier.close()
            keys.close()
            consumer.close()

    def _start(self, consumer: Consumer, pipeline: Pipeline) -> int:
        conn = connect(self.task.target_database)
        try:
            with conn.cursor() as cur:
                for sql in checkpoint.create_sql(self.task.meta_schema):
                    cur.execute(sql)
            conn.commit()
            saved = checkpoint.load(conn, self.task.meta_schema, self.task.name, self.source_id)
            self._restore(saved.state())
            committed, metadata = self._committed(consumer)
            self._ours = (committed, metadata)
            self._unflushed = None
            # meta counts only for a subtask without any checkpoint (as in DM)
            fresh = saved.newest() is None and committed is None
            fallback = self._meta_offset() if fresh else 0
            decided = checkpoint.decide(saved, committed, metadata, fallback)
            if fresh and self.safe_position is not None:
                decided = replace(decided, safe_until=max(decided.safe_until,
                                                          self._offset_after(self.safe_position)))
            for attempt in range(5):
                try:
                    self._pin(conn, decided)
                    break
                except pymysql.MySQLError as exc:
                    # another subtask pinning its rows in the same table at the same moment
                    if exc.args[0] not in DEADLOCK_ERRNOS or attempt == 4:
                        raise
                    conn.rollback()
                    time.sleep(0.05 * (attempt + 1))
        except pymysql.MySQLError as exc:
            raise ERR_SYNC_DOWNSTREAM(exc, address=self.task.target_database.host,
                                      op="read checkpoint") from exc
        finally:
            conn.close()
        self.round, self.safe_until = decided.round, decided.safe_until
        start = decided.offset
        if self.shard is not None:
            start = self.shard.begin(pipeline, self.tracker, decided.offset,
                                     reset=decided.reason.startswith("offset reset"))
            self._shard_status()
        self.log.info("subtask starting", offset=start, reason=decided.reason,
                      checkpoint=decided.offset, safe_until=decided.safe_until)
        return start

    def _pin(self, conn: Any, decided: checkpoint.Start) -> None:
        """Make exactly `worker-count` rows agree on the decided start, in one transaction,
        so neither a changed worker count nor another restart can change the decision."""
        upsert = checkpoint.upsert_sql(self.task.meta_schema)
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM {quote(self.task.meta_schema)}.{checkpoint.TABLE} "
                        "WHERE task = %s AND source = %s AND worker >= %s",
                        (self.task.name, self.source_id, self.workers))
            for worker in range(self.workers):
                cur.execute(upsert, (self.task.name, self.source_id, worker, decided.round - 1,
                                     decided.offset, decided.offset, decided.safe_until, ""))
        conn.commit()

    def _committed(self, consumer: Consumer) -> tuple[int | None, str]:
        try:
            (tp,) = consumer.committed([TopicPartition(self.topic, 0)], timeout=30)
        except Exception as exc:
            raise ERR_KAFKA_ADMIN(exc, op="committed offsets", target=self.group) from exc
        if tp.offset is None or tp.offset < 0:
            return None, ""
        return int(tp.offset), tp.metadata or ""

    def _meta_offset(self) -> int:
        """The relay offset just after `meta` (or the full migration's snapshot), else the
        relay's first record; a point the relay does not hold is an error, never a skip."""
        meta = self.task.instance(self.source_id).meta
        with TopicReader(self.kafka, self.topic, 0, self.codec) as reader:
            low, _ = reader.bounds()
            if self.start_at is not None:
                target = self.start_at
            elif meta is None or not (meta.binlog_name or meta.binlog_gtid):
                return low
            else:
                target = Position(meta.binlog_name, meta.binlog_pos, meta.binlog_gtid)
            use_gtid = bool(target.gtid)
            last = self._relay_at(reader, target, use_gtid)
            if last is None or not _reached(last.value, target, use_gtid):
                raise ERR_SYNC_META_AHEAD(task=self.task.name, source=self.source_id,
                                          meta=str(target))
            offset = reader.find(after_position(target, use_gtid))
            if offset == low and not self._covers(reader, low, target, use_gtid):
                raise ERR_SYNC_META(task=self.task.name, source=self.source_id,
                                    problem=f"meta {target} is older than the relay topic's "
                                    "first record")
            return offset

    def _relay_at(self, reader: TopicReader, target: Position, use_gtid: bool) -> Any:
        """The relay's last record, waiting a little for it to reach a full migration's
        snapshot (taken moments ago, so the relay is usually a second behind it)."""
        deadline = time.monotonic() + (RELAY_WAIT_SECONDS if self.start_at is not None else 0)
        while True:
            last = reader.last()
            if (last is not None and _reached(last.value, target, use_gtid)) or \
                    time.monotonic() >= deadline:
                return last
            time.sleep(0.5)

    def _offset_after(self, target: Position) -> int:
        """The relay offset just after `target`; the relay must have reached it (else the
        resumable ERR_SYNC_META_AHEAD: safe mode must cover every event up to it)."""
        use_gtid = bool(target.gtid)
        with TopicReader(self.kafka, self.topic, 0, self.codec) as reader:
            last = self._relay_at(reader, target, use_gtid)
            if last is None or not _reached(last.value, target, use_gtid):
                raise ERR_SYNC_META_AHEAD(task=self.task.name, source=self.source_id,
                                          meta=str(target))
            return reader.find(after_position(target, use_gtid))

    @staticmethod
    def _covers(reader: TopicReader, low: int, target: Position, use_gtid: bool) -> bool:
        first = next(reader.read(low), None)
        if first is None:
            return True
        position = Position.from_dict(first.value["position"])
        if use_gtid:
            from kdm.position import GTIDSet
            before = GTIDSet.parse(position.gtid) if position.gtid else None
            return before is None or (before.issubset(GTIDSet.parse(target.gtid)) and \
                first.value["kind"] in ("BEGIN", "ROW", "HEARTBEAT", "ROTATE"))
        return position.sort_key()[:3] <= target.sort_key()[:3]

    # -- the loop -----------------------------------------------------------------------

    def _loop(self, stop: threading.Event, consumer: Consumer, feed: Feed, pipeline: Pipeline,
              applier: Applier, keys: KeyCache, start: int) -> None:
        pending = self._new_round(start)
        inflight: tuple[list[Future[int]], Round] | None = None
        tracked: list[Any] | None = None  # the column list last checked against the tracker
        layouts = feed.layouts
        stats = self.stats
        groups = self.shard.groups if self.shard is not None else None
        while not stop.is_set():
            items = feed.next(0.05)
            for item in items:
                offset = item[0]
                if len(item) == 5:  # a ROW record: (offset, ts_ms, layout, before, after)
                    _, ts_ms, number, before, after = item
                    stats.row_seen(ts_ms)
                    pending.ts_ms = ts_ms
                    layout = layouts[number]
                    if layout.columns is not tracked:
                        self._track_columns(layout)
                        tracked = layout.columns
                    if groups is not None and groups.filtering and \
                            groups.skips((layout.schema, layout.table), offset):
                        pending.end = offset + 1
                        continue
                    change = pipeline.change(layout, before, after, offset)
                    if change is not None and not self._add(pending, change, keys):
                        inflight = self._ship(consumer, applier, pending, inflight)
                        pending = self._new_round(pending.end)
                        self._add(pending, change, keys)
                    pending.end = offset + 1
                    if pending.count >= self.workers * self.sync.batch:
                        inflight = self._ship(consumer, applier, pending, inflight)
                        pending = self._new_round(pending.end)
                    continue
                record = self._record(item, pending.start)
                stats.seen(record)
                pending.ts_ms = record["timestamp_ms"]
                kind = record["kind"]
                if groups is not None and groups.horizon and offset >= groups.horizon:
                    # the skipped events are all re-applied: save that, once they are
                    resume = max(pending.start, pending.end)
                    inflight = self._ship(consumer, applier, pending, inflight)
                    self._finish(consumer, applier, inflight)
                    inflight = None
                    pending = self._new_round(resume)
                    groups.passed(offset)
                    self._save_state(pipeline, offset)
                if kind == "DDL":
                    inflight = self._ship(consumer, applier, pending, inflight)
                    self._finish(consumer, applier, inflight)
                    inflight = None
                    self._apply_ddl(pipeline, offset, record, keys)
                    tracked = None
                    self._commit_offset(consumer, offset + 1, self.round - 1, force=True)
                    pending = self._new_round(offset + 1)
                else:
                    pending.end = offset + 1
                if kind in ("COMMIT", "DDL", "HEARTBEAT", "ROTATE"):
                    pending.position = self._mark(record)
            if pending.end > pending.start and (
                    not items or time.monotonic() - pending.opened >= ROUND_SECONDS):
                inflight = self._ship(consumer, applier, pending, inflight)
                pending = self._new_round(pending.end)
            elif not items:
                self._finish(consumer, applier, inflight)
                inflight = None
                if time.monotonic() - self._flushed_at >= OFFSET_SECONDS:
                    self._flush_offset(consumer)
        inflight = self._ship(consumer, applier, pending, inflight)
        self._finish(consumer, applier, inflight)
        self._flush_offset(consumer)

    def _record(self, item: tuple[Any, ...], offset: int) -> dict[str, Any]:
        """A non-ROW feed item's record; a feed error raised as the subtask's coded error."""
        if item[0] == "raw":  # decoding again raises the decoder's coded error
            return self.codec.decode(item[2], (self.topic, item[1]))[1]
        if item[0] == "error":
            code, text = item[2], item[3]
            if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                raise ERR_SYNC_RELAY_GAP(task=self.task.name, source=self.source_id,
                                         offset=offset, low="a later offset")
            raise ERR_KAFKA_ADMIN(KafkaException(KafkaError(code, text)), op="consume",
                                  target=self.topic)
        record: dict[str, Any] = item[1]
        return record

    def _check_held(self, consumer: Consumer, start: int) -> None:
        try:
            low, _ = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=30,
                                                    cached=False)
        except KafkaException as exc:
            raise ERR_KAFKA_ADMIN(exc, op="watermarks", target=self.topic) from exc
        if start < low:
            raise ERR_SYNC_RELAY_GAP(task=self.task.name, source=self.source_id, offset=start,
                                     low=low)

    def _new_round(self, start: int) -> Pending:
        # a round that ends inside a transaction keeps the last position passed
        return Pending(start, Causality(self.workers, self.sync.batch),
                       [[] for _ in range(self.workers)],
                       position=self.last_position)

    def _add(self, pending: Pending, change: RowChange, keys: KeyCache) -> bool:
        unique = keys.keys(change.schema, change.table).unique
        worker = pending.causality.assign(change_keys(change, unique))
        if worker is None:
            return False
        pending.changes[worker].append(change)
        pending.count += 1
        return True

    def _mark(self, record: dict[str, Any]) -> str:
        self.last_position = str(Position.from_dict(record["position"]))
        return self.last_position

    def _ship(self, consumer: Consumer, applier: Applier, pending: Pending,
              inflight: tuple[list[Future[int]], Round] | None
              ) -> tuple[list[Future[int]], Round] | None:
        """Wait for the round in flight, then start `pending` (if it covers any record)."""
        self._finish(consumer, applier, inflight)
        if pending.end <= pending.start:
            if pending.count:
                raise ERR_SYNC_INTERNAL(f"relay offsets went back to {pending.end} after "
                                        f"{pending.start}", task=self.task.name,
                                        source=self.source_id)
            return None
        batch = Round(self.round, pending.start, pending.end, pending.position,
                      tuple(tuple(c) for c in pending.changes),
                      self.sync.safe_mode or pending.start < self.safe_until, pending.ts_ms,
                      self.safe_until)
        self.round += 1
        return applier.submit(batch), batch

    def _finish(self, consumer: Consumer, applier: Applier,
                inflight: tuple[list[Future[int]], Round] | None) -> None:
        if inflight is None:
            return
        futures, batch = inflight
        started = time.monotonic()
        applier.wait(futures)
        rows = sum(len(c) for c in batch.changes)
        self.stats.applied(rows, batch.position, batch.ts_ms)
        labels = {"task": self.task.name, "source": self.source_id}
        metrics.ROWS.labels(**labels).inc(rows)
        metrics.ROUND_SECONDS.labels(**labels).observe(time.monotonic() - started)
        self._commit_offset(consumer, batch.end, batch.number)

    def _commit_offset(self, consumer: Consumer, offset: int, number: int,
                       force: bool = False) -> None:
        """Commit the checkpoint offset, at most every `OFFSET_SECONDS` (the downstream rows
        are exact in between), after checking nobody else moved it (a replay request)."""
        self.next_offset = offset
        self._unflushed = (offset, number)
        if force or time.monotonic() - self._flushed_at >= OFFSET_SECONDS:
            self._flush_offset(consumer)

    def _flush_offset(self, consumer: Consumer) -> None:
        committed, metadata = self._committed(consumer)
        if committed is not None and (committed, metadata) != self._ours and \
                not metadata.startswith(checkpoint.OUR_METADATA):
            raise OffsetReset(committed)
        self._flushed_at = time.monotonic()
        if self._unflushed is None:
            return
        offset, number = self._unflushed
        metadata = f"{checkpoint.OUR_METADATA}{number}"
        try:
            result = consumer.commit(offsets=[TopicPartition(self.topic, 0, offset,
                                                             metadata=metadata)],
                                     asynchronous=False)
        except KafkaException as exc:
            raise ERR_KAFKA_ADMIN(exc, op="commit offset", target=self.group) from exc
        if result and result[0].error is not None:
            raise ERR_KAFKA_ADMIN(KafkaException(result[0].error), op="commit offset",
                                  target=self.group)
        self._ours = (offset, metadata)
        self._unflushed = None
        self._flushed_at = time.monotonic()

    # -- DDL ----------------------------------------------------------------------------

    def _apply_ddl(self, pipeline: Pipeline, offset: int, record: dict[str, Any],
                   keys: KeyCache) -> None:
        position = self._mark(record)
        at = position.split("@", 1)[0]
        try:
            if not self._ddl(pipeline, offset, record, position, keys):
                return
        except KdmError:
            self.failed_ddl = at  # the DDL that paused the subtask: handle-error's default
            self.failed_lock = self._locking
            raise
        finally:
            self._locking = False
        self.stats.ddl(record["query"])
        metrics.DDLS.labels(task=self.task.name, source=self.source_id).inc()

    def _ddl(self, pipeline: Pipeline, offset: int, record: dict[str, Any], position: str,
             keys: KeyCache) -> bool:
        """What `handle-error` says, else the shard-DDL plan, else the DDL itself; False
        when the record is skipped (handled before, or its shard is blocked).

        `handle-error` (as in DM): `skip` skips the DDL; `replace` puts its statements in
        the DDL's place, routed like it. In a pessimistic shard-merge task a replacement is
        the shard's DDL and is coordinated like one; and when the DDL that paused the
        subtask was the lock's, which this source ran as its owner, the operation applies
        to what the owner runs (skip: nothing; replace: the statements), after which the
        lock goes on as if the owner had run its DDLs."""
        at = position.split("@", 1)[0]
        in_lock = self.shard is not None and self.failed_lock and self.failed_ddl == at
        handled = None if in_lock else self._handled(at)
        statements = replaced = None
        if handled is not None:
            coordinated = self.shard is not None and self.shard.mode != OPTIMISTIC
            if handled and coordinated:
                replaced = handled
            else:
                statements = pipeline.replacement(record, handled)
        plan = None
        if statements is None and self.shard is not None:
            plan = self.shard.plan(record, offset, position, pipeline, replaced)
            self._shard_status()
            if plan.action is Action.SKIP:
                return False
            if plan.action is Action.OPTIMISTIC:
                assert plan.table is not None
                answer = self.shard.optimistic(plan.table, record, plan.statements,
                                               self.tracker, pipeline, self._stopped,
                                               position)
                if answer is None:
                    raise Interrupted()
                self.shard.remember_done(answer)
                statements = tuple(answer.ddls)
            elif plan.action is not Action.NORMAL:
                statements = ()
        if statements is None:
            statements = pipeline.ddl(record).statements if replaced is None else \
                pipeline.replacement(record, replaced)
        self._run_ddls(pipeline, offset, record, position, statements, keys)
        if plan is not None and plan.action is Action.LOCK:
            self._lock(plan, pipeline, offset, record, position, keys, in_lock)
        elif self.shard is not None and self.shard.pending_done:
            self.shard.send_done()
            self._shard_status()
        return True

    @contextmanager
    def _meta(self, op: str) -> Iterator[Any]:
        """A downstream connection for checkpoint writes, committed at the end and closed;
        a server error is SyncDownstream naming `op`."""
        conn = connect(self.task.target_database)
        try:
            yield conn
            conn.commit()
        except pymysql.MySQLError as exc:
            raise ERR_SYNC_DOWNSTREAM(exc, address=self.task.target_database.host,
                                      op=op) from exc
        finally:
            conn.close()

    def _run_ddls(self, pipeline: Pipeline, offset: int, record: dict[str, Any] | None,
                  position: str, statements: tuple[str, ...], keys: KeyCache,
                  end: int | None = None) -> None:
        """Run a DDL record's downstream statements, track it (the upstream's structure,
        whatever handle-error ran downstream) and checkpoint past it (or at `end`)."""
        at = position.split("@", 1)[0]
        safe = self.sync.safe_mode or offset < self.safe_until
        with self._meta("checkpoint a DDL") as conn, conn.cursor() as cur:
            # a DDL commits on its own: if we die before its checkpoint, redo it safely
            cur.execute(f"UPDATE {quote(self.task.meta_schema)}.{checkpoint.TABLE} SET "
                        "safe_until = GREATEST(safe_until, %s) WHERE task = %s AND "
                        "source = %s", (offset + 1, self.task.name, self.source_id))
            conn.commit()
            for sql in statements:
                self._run_ddl(cur, sql, safe or record is None, at)
            keys.clear()  # a DDL may change any table's keys; they are re-read lazily
            # a shard DDL read again below the round checkpoint is tracked already
            if record is not None and (self.shard is None or
                                       offset >= self.shard.groups.floor):
                self._track_ddl(record)
            self._checkpoint_all(cur, offset, position, pipeline, end)

    def _lock(self, plan: Plan, pipeline: Pipeline, offset: int, record: dict[str, Any],
              position: str, keys: KeyCache, failed_here: bool) -> None:
        """Pessimistic: the group is synced; ask the coordinator, run (owner) or skip its
        DDLs, checkpoint with the seek-back plan, report done, and read again from the
        first skipped event (kdm/shard_ddl.py, steps 2-5). `failed_here`: running them
        paused the subtask before, so a `handle-error` for it says what the owner runs."""
        assert self.shard is not None and plan.group is not None
        group = plan.group
        faults.point("sync.shard.before_info")
        self.stats.lock_id = self.shard.groups.lock_id(group)
        answer = self.shard.lock(group, self._stopped)
        if answer is None:
            raise Interrupted()
        execute = bool((answer.body or {}).get("exec"))
        faults.point("sync.shard.before_ddl" if execute else "sync.shard.before_skip")
        self.shard.remember_done(answer)
        seek = self.shard.groups.resolve(group, offset)
        statements = tuple(answer.ddls) if execute else ()
        handled = self._handled(position.split("@", 1)[0]) if execute and failed_here \
            else None
        if handled is not None:
            statements = pipeline.replacement(record, handled)
        self._locking = execute
        self._run_ddls(pipeline, offset, None, position, statements, keys, end=seek)
        self._locking = False
        faults.point("sync.shard.after_checkpoint")
        self.shard.send_done()
        self._shard_status()
        self.log.info("shard ddl lock done", lock=answer.lock_id, exec=execute, seek=seek)
        raise Reseek()

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _shard_status(self) -> None:
        assert self.shard is not None
        self.stats.shard_groups = self.shard.groups.unresolved()
        self.stats.lock_id = self.shard.waiting

    def _save_state(self, pipeline: Pipeline, offset: int) -> None:
        """Write the state row alone (the rounds before `offset` are all applied)."""
        with self._meta("save the subtask state") as conn, conn.cursor() as cur:
            cur.execute(checkpoint.state_sql(self.task.meta_schema),
                        (self.task.name, self.source_id, self.round - 1, offset, offset,
                         self.safe_until, self.last_position,
                         json.dumps(self._state(pipeline))))

    # -- tracked schemas and other state kept with the checkpoint ------------------------

    def _track_columns(self, layout: Layout) -> None:
        """Start tracking a table first seen through its rows (it existed before the relay)."""
        if (layout.schema, layout.table) not in self.tracker:
            self.tracker.set(Tracker.from_columns(layout.schema, layout.table, layout.columns))

    def _track_ddl(self, record: dict[str, Any]) -> None:
        """Advance the tracked schemas; a DDL the tracker cannot follow untracks the tables
        it names (rows carry their columns, so syncing goes on) and says so."""
        try:
            self.tracker.apply_ddl(record["schema"], record["query"])
        except KdmError as exc:
            self.log.warning("schema tracker cannot follow ddl", error=exc.render())
            try:
                tables = parse_ddl(record["query"], record["schema"])
            except KdmError:
                return
            for ddl in tables:
                for schema, table in ddl.tables:
                    self.tracker.remove(schema, table)

    def _state(self, pipeline: Pipeline) -> dict[str, Any]:
        online = pipeline.rules.online
        return {"tracker": self.tracker.to_dict(),
                "online": online.to_dict() if online is not None else None,
                "handled": sorted(self.used_operations),
                "shard": self.shard.to_dict() if self.shard is not None else None}

    def _restore(self, state: str | None) -> None:
        if not state:
            return
        data = json.loads(state)
        if data.get("tracker"):
            self.tracker = Tracker.from_dict(data["tracker"])
        self.used_operations |= set(data.get("handled") or ())
        self.saved_online = data.get("online")
        if self.shard is not None:
            self.shard.restore(data.get("shard"))

    def _handled(self, at: str) -> tuple[str, ...] | None:
        """The statements `handle-error` says to run for the DDL at `at` (DM's skip and
        replace), or None to run the DDL itself. An operation applies when it names this
        position, or names none and this DDL is the one that paused the subtask."""
        op = self.operation()
        if op is None or op["revision"] in self.used_operations or op["op"] == "revert":
            return None
        if op["binlog_pos"] and op["binlog_pos"] != at:
            return None
        if not op["binlog_pos"] and self.failed_ddl != at:
            return None
        self.used_operations.add(op["revision"])
        self.failed_ddl = ""
        self.log.info("ddl handled by handle-error", op=op["op"], position=at)
        return () if op["op"] == "skip" else tuple(op["sqls"])

    def _run_ddl(self, cur: Any, sql: str, safe: bool, position: str) -> None:
        try:
            cur.execute(sql)
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in (DDL_DONE_IN_SAFE_MODE if safe else DDL_DONE_ERRNOS):
                self.log.warning("ddl already applied downstream, skipped", sql=sql[:200],
                                 errno=exc.args[0])
                return
            raise ERR_SYNC_EXEC(exc, what="a DDL", position=position, sql=sql) from exc

    def _checkpoint_all(self, cur: Any, offset: int, position: str,
                        pipeline: Pipeline, end: int | None = None) -> None:
        end = offset + 1 if end is None else end
        upsert = checkpoint.upsert_sql(self.task.meta_schema)
        for worker in range(self.workers):
            cur.execute(upsert, (self.task.name, self.source_id, worker, self.round,
                                 min(offset, end), end, self.safe_until, position))
        cur.execute(checkpoint.state_sql(self.task.meta_schema),
                    (self.task.name, self.source_id, self.round, min(offset, end), end,
                     self.safe_until, position, json.dumps(self._state(pipeline))))
        self.round += 1


def _reached(record: dict[str, Any], target: Position, use_gtid: bool) -> bool:
    """Whether the relay, whose last record is `record`, has published `target`."""
    position = Position.from_dict(record["position"])
    if use_gtid:
        from kdm.position import GTIDSet
        return bool(position.gtid) and GTIDSet.parse(target.gtid).issubset(
            GTIDSet.parse(position.gtid))
    return position.sort_key()[:3] >= target.sort_key()[:3]
