"""Shard-DDL coordination over Kafka: the messages and the protocol (DESIGN.md §6).

Sync consumers (one subtask per task x source) and the leading coordinator talk through
two topics; the coordinator keeps its locks on a third:

- `<prefix>.ddl` (key: task): consumer → coordinator. `info` (a source's shards all reached
  a DDL; optimistic: one shard's DDL with its structures), `done` (an operation was acted
  on), `table` / `drop_table` (optimistic: a shard's structure registered / a shard gone),
  and `remove_task` (written by the coordinator's own API: forget a task's locks).
- `<prefix>.ddl-ops` (key: ``<task>/<source>``): coordinator → consumers. `operation`:
  pessimistic `exec` / `skip` of a lock's DDLs for one source; optimistic, the DDLs one
  shard runs downstream (maybe none) or the conflict it pauses on.
- `<prefix>.locks` (compacted, key: lock ID): every lock's state (`to_dict()`), a tombstone
  when it is resolved. Nothing but the leading coordinator writes it.

Every message is one Avro `ShardDDLMessage` (schemas/shard_ddl.avsc): kind, mode, task,
source, lock ID and DDLs as fields a Kafka UI user can read, and the typed value as JSON.

Pessimistic protocol, step by step, with what a SIGKILL between two steps leaves:

1. The subtask meets the first shard's DDL of a target at relay offset O: it stops applying
   that shard (its later events are skipped, not lost: its table checkpoint stays at O),
   goes on with the other shards, and writes the table checkpoints with the DDL's
   downstream checkpoint. *Crash*: the subtask restarts from the smallest table
   checkpoint, O, reads the shard DDLs again and rebuilds the group; events other tables
   already applied are skipped by their checkpoints.
2. The last shard's DDL arrives (offset P): the subtask notes the ops topic's end, sends an
   `info` and waits. *Crash before the send*: as 1. *After*: the restarted subtask sends
   the info again; the coordinator's `try_sync` is idempotent.
3. The coordinator reads the info: inside one Kafka transaction it writes the lock's new
   state to the locks topic, the operations now due (`exec` for the owner once every
   source is synced) to the ops topic, and the info's offset to its consumer group.
   *Crash*: the transaction aborts; the next leader (or the restarted one, fencing the old
   by the shared transactional.id) rebuilds the locks from the locks topic and reads the
   info again. No lock is lost or doubled, no operation is sent for a state not persisted.
   A leader that starts re-sends the operations of every synced lock: operations are
   idempotent and consumers only wait for the ones addressed to them.
4. The owner runs the DDLs downstream ("already exists" errors count as done), then, in
   one downstream transaction, moves its checkpoint to P+1 and writes the seek-back plan
   (each shard's table checkpoint just after its DDL, the other tables' at P+1) and the
   `done` still to send. *Crash before that commit*: the restart re-reads from O, sends
   the info again, gets `exec` again (the lock is not executed) and re-runs the DDLs
   idempotently. *After*: the restart sends the pending `done` first.
5. The owner sends `done`, and seeks back: it re-reads from the smallest table checkpoint
   and applies, in safe mode, exactly the events it skipped. *Crash*: the plan is in the
   checkpoint; the restart does the same seek-back.
6. The coordinator marks the owner done and sends `skip` to the others (one transaction, as
   in 3). A non-owner does 4-5 with `skip` (no downstream DDL). When every source is done
   the lock is resolved and tombstoned. *Crash of a non-owner before its checkpoint*: its
   restart re-sends the info, the lock (still there, waiting for its done) answers `skip`
   again. This is stronger than DM, whose lock goes once the owner is done and so reaches
   seed 003's second manual case; here that case needs a replay of the relay to before the
   DDL (the lock then re-forms with that source alone synced) and is resolved as the seed
   says, with `unlock-ddl-lock`.

`unlock-ddl-lock` (seed 003) runs in the leader's loop: the lock is forced synced (its
state persisted), `exec` goes to the owner (or `--owner`), the API call waits for its
`done`, then skips go to the waiting sources and the lock is removed (also after a failed
exec with `--force-remove`).

Optimistic protocol: at start a subtask sends a `table` message per shard (its tracked
structure) so the joined structure knows every shard. A shard DDL becomes an `info` with
the shard's structure before and after each statement; the subtask waits for the
operation: its DDLs run downstream (possibly none), then the checkpoint moves past the DDL
and `done` is sent, as steps 4-5 without a seek-back (the shard's DML never stopped). A
conflict operation pauses the subtask with the coded error naming the table. Crashes are
handled as in 3-4: a re-sent info first resets the shard to its `table_before`, so it
yields the same DDLs, which run idempotently. An info carries its DDL's binlog position as
`info_id` and its operation echoes it: an info sent twice is answered twice, and the
second answer, arriving after the subtask moved on to the shard's next DDL, is passed over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicPartition
from sqlglot import exp

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, ERR_SHARD_DDL_UNSUPPORTED, KdmError
from kdm.relay_log import open_consumer
from kdm.schema_sql import parse, quote_name, rename_pairs
from kdm.schema_table import TableSchema
from kdm.topics import Topics

SHARD_DDL_MESSAGE = "io.kdm.control.ShardDDLMessage"
PESSIMISTIC = "pessimistic"
OPTIMISTIC = "optimistic"

TableKey = tuple[str, str, str]
"""(source, upstream schema, upstream table): one shard of a target table."""


def lock_id(task: str, schema: str, table: str) -> str:
    """The lock ID of a target table: ``<task>-`<schema>`.`<table>```."""
    return f"{task}-{quote_name(schema)}.{quote_name(table)}"


def same_ddls(a: Sequence[str], b: Sequence[str]) -> bool:
    """DM's `CompareShardingDDLs`: the same number of statements, each found in the other."""
    return len(a) == len(b) and set(a) == set(b)


@dataclass(frozen=True)
class PessimisticInfo:
    """A source's report that all its shards of one target ran the same DDLs.

    `ddls` are routed to the target (as the lock shows them); `sources` are the task's
    sources, the ones the lock waits for (DM's pessimist waits for every source of the
    task, shards of that target or not)."""

    task: str
    source: str
    up_schema: str
    up_table: str
    down_schema: str
    down_table: str
    ddls: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def lock_id(self) -> str:
        """The ID of the lock this info joins."""
        return lock_id(self.task, self.down_schema, self.down_table)

    def to_dict(self) -> dict[str, Any]:
        """The message form (JSON-compatible)."""
        return {"task": self.task, "source": self.source, "up_schema": self.up_schema,
                "up_table": self.up_table, "down_schema": self.down_schema,
                "down_table": self.down_table, "ddls": list(self.ddls),
                "sources": list(self.sources)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PessimisticInfo:
        """Inverse of `to_dict`."""
        return cls(str(data["task"]), str(data["source"]), str(data["up_schema"]),
                   str(data["up_table"]), str(data["down_schema"]), str(data["down_table"]),
                   tuple(str(d) for d in data["ddls"]), tuple(str(s) for s in data["sources"]))


@dataclass(frozen=True)
class PessimisticOperation:
    """The coordinator's answer to one source: execute the lock's DDLs (`exec`) or skip them.

    The consumer sends the same value back with `done` set once it has acted on it. An
    `error` (the rendered coded error, e.g. 38001 when the source's DDLs differ from the
    lock's) means neither: the subtask pauses with it and sends no `done`."""

    lock_id: str
    task: str
    source: str
    ddls: tuple[str, ...]
    exec: bool
    done: bool = False
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The message form (JSON-compatible)."""
        return {"lock_id": self.lock_id, "task": self.task, "source": self.source,
                "ddls": list(self.ddls), "exec": self.exec, "done": self.done,
                "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PessimisticOperation:
        """Inverse of `to_dict`."""
        return cls(str(data["lock_id"]), str(data["task"]), str(data["source"]),
                   tuple(str(d) for d in data["ddls"]), bool(data["exec"]),
                   bool(data.get("done", False)), str(data.get("error", "")))


@dataclass(frozen=True)
class OptimisticInfo:
    """A shard's DDLs (routed to the target) with its structure before and after each one."""

    task: str
    source: str
    up_schema: str
    up_table: str
    down_schema: str
    down_table: str
    ddls: tuple[str, ...]
    table_before: TableSchema
    tables_after: tuple[TableSchema, ...]
    info_id: str = ""  # which DDL of the shard this is (its binlog position): ops echo it

    @property
    def lock_id(self) -> str:
        """The ID of the target table's lock."""
        return lock_id(self.task, self.down_schema, self.down_table)

    @property
    def key(self) -> TableKey:
        """The shard this info is about."""
        return (self.source, self.up_schema, self.up_table)

    def to_dict(self) -> dict[str, Any]:
        """The message form (JSON-compatible; structures in TableSchema's dict form)."""
        return {"task": self.task, "source": self.source, "up_schema": self.up_schema,
                "up_table": self.up_table, "down_schema": self.down_schema,
                "down_table": self.down_table, "ddls": list(self.ddls),
                "table_before": self.table_before.to_dict(),
                "tables_after": [t.to_dict() for t in self.tables_after],
                "info_id": self.info_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimisticInfo:
        """Inverse of `to_dict`."""
        return cls(str(data["task"]), str(data["source"]), str(data["up_schema"]),
                   str(data["up_table"]), str(data["down_schema"]), str(data["down_table"]),
                   tuple(str(d) for d in data["ddls"]),
                   TableSchema.from_dict(data["table_before"]),
                   tuple(TableSchema.from_dict(t) for t in data["tables_after"]),
                   str(data.get("info_id", "")))


@dataclass(frozen=True)
class OptimisticOperation:
    """The answer to one info: the DDLs the shard's consumer runs downstream (maybe none),
    or `conflict`, the rendered error it pauses the table with; sent back with `done`.
    `info_id` is the answered info's, so a late answer to an earlier info of the same shard
    (a re-sent info answered twice) is never taken for the answer to a later one."""

    lock_id: str
    task: str
    source: str
    up_schema: str
    up_table: str
    ddls: tuple[str, ...]
    conflict: str = ""
    done: bool = False
    info_id: str = ""

    @classmethod
    def conflicted(cls, info: OptimisticInfo, error: KdmError) -> OptimisticOperation:
        """The operation telling the consumer to pause the table with `error`."""
        return cls(info.lock_id, info.task, info.source, info.up_schema, info.up_table, (),
                   str(error), info_id=info.info_id)

    def to_dict(self) -> dict[str, Any]:
        """The message form (JSON-compatible)."""
        return {"lock_id": self.lock_id, "task": self.task, "source": self.source,
                "up_schema": self.up_schema, "up_table": self.up_table,
                "ddls": list(self.ddls), "conflict": self.conflict, "done": self.done,
                "info_id": self.info_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimisticOperation:
        """Inverse of `to_dict`."""
        return cls(str(data["lock_id"]), str(data["task"]), str(data["source"]),
                   str(data["up_schema"]), str(data["up_table"]),
                   tuple(str(d) for d in data["ddls"]), str(data.get("conflict", "")),
                   bool(data.get("done", False)), str(data.get("info_id", "")))


@dataclass(frozen=True)
class ShardingGroupStatus:
    """A source-local sharding group as the sync consumer reports it in its status.

    `target` is ```<db>`.`<table>``` downstream; `synced` / `unsynced` the source's shard
    tables (```<db>`.`<table>```) that have / have not reached the group's DDLs, first seen
    at `first_pos`, e.g. "(bin|000001.000001, 3130)"."""

    target: str
    ddls: tuple[str, ...]
    first_pos: str
    synced: tuple[str, ...]
    unsynced: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """query-status' `unresolvedGroups` element (also the status message form)."""
        return {"target": self.target, "DDLs": list(self.ddls), "firstPos": self.first_pos,
                "synced": list(self.synced), "unsynced": list(self.unsynced)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardingGroupStatus:
        """Inverse of `to_dict`."""
        return cls(str(data["target"]), tuple(str(d) for d in data["DDLs"]),
                   str(data["firstPos"]), tuple(str(t) for t in data["synced"]),
                   tuple(str(t) for t in data["unsynced"]))


def unresolved_groups(groups: Iterable[ShardingGroupStatus]) -> list[dict[str, Any]]:
    """query-status' `unresolvedGroups`: groups with a shard table that reached the DDLs."""
    return [group.to_dict() for group in groups if group.synced]


def blocking_ddls(groups: Iterable[ShardingGroupStatus]) -> list[str]:
    """query-status' `blockingDDLs`: the DDLs of groups all of whose shards reached them,
    which the source waits to execute or skip; empty while any shard table is unsynced."""
    return [ddl for group in groups if group.synced and not group.unsynced
            for ddl in group.ddls]


class ShardDDLAction(Enum):
    """What the sync unit does with a shard table's DDL (dm-manual-A §7.1 restrictions)."""

    COORDINATE = "coordinate"
    IGNORE = "ignore"
    DIRECT = "direct"


_BY_TREE: dict[tuple[type, str], ShardDDLAction] = {
    (exp.Alter, "TABLE"): ShardDDLAction.COORDINATE,
    (exp.Drop, "TABLE"): ShardDDLAction.IGNORE,
    (exp.Drop, "DATABASE"): ShardDDLAction.IGNORE,
    (exp.Drop, "SCHEMA"): ShardDDLAction.IGNORE,
    (exp.TruncateTable, ""): ShardDDLAction.IGNORE,
    (exp.Create, "TABLE"): ShardDDLAction.DIRECT,
    (exp.Create, "DATABASE"): ShardDDLAction.DIRECT,
    (exp.Create, "SCHEMA"): ShardDDLAction.DIRECT,
    (exp.Create, "VIEW"): ShardDDLAction.DIRECT,
    (exp.Drop, "VIEW"): ShardDDLAction.DIRECT,
}
_BY_WORDS: dict[tuple[str, ...], ShardDDLAction] = {
    ("ALTER", "TABLE"): ShardDDLAction.COORDINATE,
    ("RENAME", "TABLE"): ShardDDLAction.COORDINATE,
    ("ALTER", "DATABASE"): ShardDDLAction.DIRECT,
    ("ALTER", "SCHEMA"): ShardDDLAction.DIRECT,
}


def classify_shard_ddl(sql: str, mode: str = PESSIMISTIC) -> ShardDDLAction:
    """How a DDL on a shard table is handled in a shard-merge task (both modes).

    IGNORE: DROP TABLE, DROP DATABASE and TRUNCATE TABLE, which DM's sync unit silently
    skips on shards (restrictions 4-5). DIRECT: CREATE TABLE (a new shard, which must
    already have the post-DDL structure), databases and views, applied without a lock.
    COORDINATE: ALTER TABLE, CREATE/DROP INDEX and RENAME TABLE, which go through the lock.
    Refused with ShardDDLUnsupported (38007): a RENAME TABLE of several tables (one rename
    per statement, restrictions 6-7) and statements no rule covers. That a rename's target
    must not exist is checked by the sync unit, which knows the tables."""
    stmt = parse(sql)
    action = stmt.lookup(_BY_TREE, _BY_WORDS)
    if action is None:
        raise ERR_SHARD_DDL_UNSUPPORTED(mode=mode, sql=sql, problem=stmt.problem or
                                        "a shard-merge task does not handle this statement")
    if stmt.words[:2] == ("RENAME", "TABLE") and len(_renames(stmt.sql)) != 1:
        raise ERR_SHARD_DDL_UNSUPPORTED(mode=mode, sql=sql,
                                        problem="only one table may be renamed per statement")
    return action


def _renames(sql: str) -> list[Any]:
    try:
        return list(rename_pairs(parse(sql)))
    except KdmError:
        return []


# -- messages -------------------------------------------------------------------------------

KINDS = ("info", "done", "table", "drop_table", "remove_task", "operation")


@dataclass(frozen=True)
class ShardMessage:
    """One message of the ddl or ddl-ops topic (see the module docstring for the kinds).

    `body` is the typed value's dict (`PessimisticInfo.to_dict()` ...); the other fields
    repeat what a user looking at the topic wants to read without decoding it."""

    kind: str
    mode: str
    task: str
    source: str
    lock_id: str = ""
    ddls: tuple[str, ...] = ()
    body: Mapping[str, Any] | None = None
    sent_ms: int = 0

    def key(self) -> str:
        """The Kafka key: the task on the ddl topic, ``<task>/<source>`` on ddl-ops."""
        return f"{self.task}/{self.source}" if self.kind == "operation" else self.task

    def to_record(self) -> dict[str, Any]:
        """The Avro record (also how a subtask saves a notice it still has to send)."""
        return {"kind": self.kind, "mode": self.mode, "task": self.task, "source": self.source,
                "lock_id": self.lock_id, "ddls": list(self.ddls),
                "body": json.dumps(self.body or {}, sort_keys=True), "sent_ms": self.sent_ms}

    def encode(self, codec: AvroCodec, topic: str) -> bytes:
        """The Avro value."""
        record = self.to_record()
        record["sent_ms"] = self.sent_ms or int(time.time() * 1000)
        return codec.encode(SHARD_DDL_MESSAGE, record, topic)

    @classmethod
    def decode(cls, codec: AvroCodec, value: bytes, where: tuple[str, int]) -> ShardMessage:
        """Inverse of `encode`; a damaged message raises the decoder's coded error."""
        _, record = codec.decode(value, where)
        return cls.from_record(record)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ShardMessage:
        """The message of a decoded Avro record."""
        return cls(str(record["kind"]), str(record["mode"]), str(record["task"]),
                   str(record["source"]), str(record["lock_id"]),
                   tuple(str(d) for d in record["ddls"]), json.loads(record["body"] or "{}"),
                   int(record["sent_ms"]))

    def operation(self) -> PessimisticOperation | OptimisticOperation:
        """The operation an `operation` or `done` message carries."""
        body = self.body or {}
        if self.mode == OPTIMISTIC:
            return OptimisticOperation.from_dict(body)
        return PessimisticOperation.from_dict(body)


def info_message(info: PessimisticInfo | OptimisticInfo) -> ShardMessage:
    """A subtask's info."""
    mode = OPTIMISTIC if isinstance(info, OptimisticInfo) else PESSIMISTIC
    return ShardMessage("info", mode, info.task, info.source, info.lock_id, info.ddls,
                        info.to_dict())


def operation_message(op: PessimisticOperation | OptimisticOperation,
                      done: bool = False) -> ShardMessage:
    """The coordinator's operation, or (`done`) the subtask's notice that it acted on it."""
    mode = OPTIMISTIC if isinstance(op, OptimisticOperation) else PESSIMISTIC
    body = op.to_dict()
    if done:
        body["done"] = True
    return ShardMessage("done" if done else "operation", mode, op.task, op.source,
                        op.lock_id, op.ddls, body)


def table_message(kind: str, task: str, source: str, up: tuple[str, str],
                  down: tuple[str, str], structure: TableSchema | None = None) -> ShardMessage:
    """Optimistic `table` (register a shard with its structure) or `drop_table`."""
    body: dict[str, Any] = {"up_schema": up[0], "up_table": up[1], "down_schema": down[0],
                            "down_table": down[1]}
    if structure is not None:
        body["structure"] = structure.to_dict()
    return ShardMessage(kind, OPTIMISTIC, task, source, lock_id(task, *down), (), body)


# -- the subtask's end of the channel -------------------------------------------------------

POLL_SECONDS = 0.2


class ShardChannel:
    """A subtask's link to the coordinator: send to the ddl topic, wait on ddl-ops."""

    def __init__(self, kafka: KafkaConfig, codec: AvroCodec | None = None) -> None:
        topics = Topics(kafka.topic_prefix)
        self.ddl = topics.ddl().name
        self.ops = topics.ddl_ops().name
        self.codec = codec or AvroCodec()
        self.producer = Producer(kafka.client(**{"acks": "all", "enable.idempotence": True,
                                                 "linger.ms": 0, "log_level": 3}))
        self.consumer = open_consumer(kafka)

    def close(self) -> None:
        """Deliver what is queued and leave."""
        self.producer.flush(10)
        self.consumer.close()

    def mark(self) -> int:
        """The ops topic's end now: an answer to a message sent after this is at or past it."""
        try:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.ops, 0),
                                                          timeout=30, cached=False)
        except KafkaException as exc:
            raise ERR_KAFKA_ADMIN(exc, op="watermarks", target=self.ops) from exc
        return int(high)

    def send(self, message: ShardMessage) -> None:
        """Send one message to the ddl topic and wait until Kafka has it."""
        failed: list[Any] = []
        self.producer.produce(self.ddl, message.encode(self.codec, self.ddl), message.key(),
                              on_delivery=lambda err, _msg: failed.append(err) if err else None)
        left = self.producer.flush(30)
        if failed or left:
            error = failed[0] if failed else "not delivered within 30 s"
            raise ERR_KAFKA_ADMIN(KafkaException(error) if failed else RuntimeError(error),
                                  op=f"send shard-DDL {message.kind}", target=self.ddl)

    def wait(self, mark: int, match: Callable[[ShardMessage], bool],
             stopped: Callable[[], bool],
             again: tuple[float, Callable[[], None]] | None = None) -> ShardMessage | None:
        """The first operation at or after `mark` that `match`es; None once `stopped()`.

        `again` = (seconds, send): send the request again every so many seconds while no
        answer came (a pessimistic info is idempotent; the coordinator holds back an info
        for a target whose previous lock still waits for other sources)."""
        self.consumer.assign([TopicPartition(self.ops, 0, mark)])
        resend_at = time.monotonic() + again[0] if again else float("inf")
        while not stopped():
            if again is not None and time.monotonic() >= resend_at:
                again[1]()
                resend_at = time.monotonic() + again[0]
            message = self.consumer.poll(POLL_SECONDS)
            if message is None or message.error() is not None:
                continue
            try:
                decoded = ShardMessage.decode(self.codec, message.value() or b"",
                                              (self.ops, message.offset() or 0))
            except KdmError:
                continue  # not ours to judge: the coordinator never writes such a record
            if decoded.kind == "operation" and match(decoded):
                return decoded
        return None
