"""A shard-merge subtask's side of shard-DDL coordination (the protocol: kdm/shard_ddl.py).

`ShardSync` decides what a DDL record of a shard table becomes (`plan`), talks to the
coordinator (`coordinate`: send the info, wait for the operation) and keeps what must
survive a crash (`to_dict`: the table checkpoints of `consumers.sharding`, and the `done`
notices not yet sent). The subtask does the downstream work and the checkpoints.

Membership: at start the source's upstream tables (information_schema, the ones the
block/allow list keeps) are grouped by the target routing sends them to, as DM's syncer
does; CREATE TABLE adds a shard, DROP TABLE removes it.

DM's restrictions, as `plan` applies them: DROP TABLE, DROP DATABASE and TRUNCATE on shards
are not run downstream; CREATE TABLE runs as is (the target usually exists: "already
exists" counts as done); ALTER TABLE, indexes and RENAME (one table per statement) are
coordinated; anything else is refused with ShardDDLUnsupported (38007). Routing may not
change while a shard is blocked (SyncShardRoutesChanged, 36015).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pymysql

from consumers.ddl import CREATE_TABLE, DROP_DATABASE, DROP_TABLE, parse_ddl
from consumers.pipeline import Pipeline
from consumers.sharding import Group, ShardGroups, Table
from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.config.source import SourceConfig
from kdm.config.task import TaskConfig
from kdm.errors import (
    ERR_SYNC_SHARD_ADD_TABLE,
    ERR_SYNC_SHARD_REFUSED,
    ERR_SYNC_SHARD_ROUTES,
    ERR_SYNC_SHARD_TABLES,
    KdmError,
)
from kdm.log import Logger
from kdm.schema_alter import apply
from kdm.schema_table import TableSchema
from kdm.schema_tracker import Tracker
from kdm.shard_ddl import (
    OPTIMISTIC,
    OptimisticInfo,
    PessimisticInfo,
    ShardChannel,
    ShardDDLAction,
    ShardMessage,
    classify_shard_ddl,
    info_message,
    operation_message,
    table_message,
)

RESEND_SECONDS = 5.0  # a pessimistic info is sent again this often while unanswered


class Action(Enum):
    """What a DDL record of a shard-merge subtask becomes."""

    NORMAL = "normal"          # not a shard DDL (or a CREATE TABLE): the usual DDL path
    SKIP = "skip"              # applied before, or its shard is blocked: nothing at all
    TRACK = "track"            # no downstream DDL; track it and checkpoint
    LOCK = "lock"              # pessimistic: the group is synced, coordinate it
    OPTIMISTIC = "optimistic"  # optimistic: ask the coordinator what to run


@dataclass(frozen=True)
class Plan:
    """`ShardSync.plan`'s answer."""

    action: Action
    table: Table | None = None
    group: Group | None = None
    statements: tuple[str, ...] = ()


class ShardSync:
    """One subtask's shard groups and its channel to the coordinator."""

    def __init__(self, task: TaskConfig, source_id: str, kafka: KafkaConfig,
                 source: SourceConfig | None, codec: AvroCodec | None = None) -> None:
        self.task = task
        self.source_id = source_id
        self.kafka = kafka
        self.source = source
        self.codec = codec or AvroCodec()
        self.mode = task.effective_shard_mode
        self.groups = ShardGroups(task.name)
        self.pending_done: list[dict[str, Any]] = []
        self.waiting = ""  # the lock this subtask waits on (query-status' unresolvedDDLLockID)
        self.routes = _fingerprint(task, source_id)
        self.saved_routes = ""
        self.registered: set[Table] = set()
        self.log = Logger("shard", task=task.name, source=source_id)
        self._channel: ShardChannel | None = None

    @property
    def channel(self) -> ShardChannel:
        """The link to the coordinator, opened on first use."""
        if self._channel is None:
            self._channel = ShardChannel(self.kafka, self.codec)
        return self._channel

    def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # -- state --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What the DDL checkpoints save."""
        return {**self.groups.to_dict(), "done": list(self.pending_done),
                "routes": self.routes}

    def restore(self, data: dict[str, Any] | None) -> None:
        """Inverse of `to_dict`."""
        data = data or {}
        self.groups.restore(data)
        self.pending_done = list(data.get("done") or ())
        self.saved_routes = str(data.get("routes") or "")

    def begin(self, pipeline: Pipeline, tracker: Tracker, offset: int, reset: bool) -> int:
        """Start reading: list the shards, send the notices a crash left, register the
        shards' structures (optimistic); the relay offset to read from."""
        if self.source is None:
            raise ERR_SYNC_SHARD_TABLES(task=self.task.name, source=self.source_id,
                                        problem="the subtask runs without the source's "
                                        "configuration (run it under the control plane)")
        if self.groups.blocked and self.saved_routes and self.saved_routes != self.routes:
            raise ERR_SYNC_SHARD_ROUTES(task=self.task.name, source=self.source_id,
                                        tables=sorted(f"{s}.{t}" for s, t in self.groups.blocked))
        self.saved_routes = self.routes
        if not self.groups.target_of:  # first start: the shards are the upstream's tables
            for table in self._upstream_tables(pipeline):
                self.groups.add(table, pipeline.rules.router.target(*table))
        self.send_done()  # the notices a crash kept from being sent
        if self.mode == OPTIMISTIC:
            for table in sorted(self.groups.target_of):
                self._register(table, tracker, pipeline)
        return self.groups.reset(offset) if reset else self.groups.start(offset)

    # -- DDL ----------------------------------------------------------------------------

    def plan(self, record: dict[str, Any], offset: int, position: str, pipeline: Pipeline,
             replaced: tuple[str, ...] | None = None) -> Plan:
        """What the DDL record at `offset` becomes (see `Action`). `replaced`: the statements
        `handle-error replace` put in the record's place, which are this shard's DDL from
        then on (pessimistic; as in DM, the other shards must then replace theirs alike)."""
        queries = (record["query"],) if replaced is None else replaced
        ddls = [ddl for query in queries for ddl in parse_ddl(query, record["schema"])]
        tables = [t for ddl in ddls for t in ddl.tables]
        table: Table = tables[0] if tables else (record["schema"], "")
        if self.groups.skips(table, offset):
            return Plan(Action.SKIP, table)
        if not table[1] or not pipeline.rules.balist.allows(*table) or \
                not any(ddl.is_schema_change for ddl in ddls):
            if ddls and ddls[0].event == DROP_DATABASE:
                groups = [self._drop(shard, pipeline)
                          for shard in [t for t in self.groups.target_of if t[0] == table[0]]]
                synced = [g for g in groups if g is not None and g.is_synced()]
                if synced and self.mode != OPTIMISTIC:
                    return Plan(Action.LOCK, table, synced[0], synced[0].ddls)
                return Plan(Action.TRACK, table)
            return Plan(Action.NORMAL, table)
        actions = [classify_shard_ddl(query, self.mode) for query in queries]  # each allowed
        action = actions[0]
        if action is ShardDDLAction.DIRECT:
            if ddls[0].event == CREATE_TABLE:
                target = pipeline.rules.router.target(*table)
                group = self.groups.groups.get(target)
                if group is not None and group.active and table not in group.members:
                    raise ERR_SYNC_SHARD_ADD_TABLE(table=f"{table[0]}.{table[1]}",
                                                   target=f"{target[0]}.{target[1]}",
                                                   ddls=list(group.ddls))
                self.groups.add(table, target)
                if self.mode == OPTIMISTIC:
                    self.registered.discard(table)
            return Plan(Action.NORMAL, table)
        if action is ShardDDLAction.IGNORE:
            group = self._drop(table, pipeline) if ddls[0].event == DROP_TABLE else None
            if group is not None and self.mode != OPTIMISTIC and group.is_synced():
                return Plan(Action.LOCK, table, group, group.ddls)
            return Plan(Action.TRACK, table)
        statements = pipeline.ddl(record).statements if replaced is None else \
            pipeline.replacement(record, replaced)
        if not statements:  # an event filter dropped it: nothing to coordinate
            return Plan(Action.TRACK, table)
        if self.groups.group_of(table) is None:
            self.groups.add(table, pipeline.rules.router.target(*table))
        if self.mode == OPTIMISTIC:
            return Plan(Action.OPTIMISTIC, table, self.groups.group_of(table), statements)
        group = self.groups.meet(table, statements, offset, position)
        return Plan(Action.LOCK if group.is_synced() else Action.TRACK, table, group,
                    group.ddls)

    def _drop(self, table: Table, pipeline: Pipeline) -> Group | None:
        group = self.groups.drop(table)
        if group is not None and self.mode == OPTIMISTIC:
            self.channel.send(table_message("drop_table", self.task.name, self.source_id,
                                            table, pipeline.rules.router.target(*table)))
            self.registered.discard(table)
        return group

    # -- talking to the coordinator -----------------------------------------------------

    def lock(self, group: Group, stopped: Callable[[], bool]) -> ShardMessage | None:
        """Pessimistic: send the group's info, wait for exec or skip (None once stopped)."""
        target = group.target
        first = min(group.synced, key=lambda t: group.synced[t])
        sources = tuple(sorted(inst.source_id for inst in self.task.mysql_instances))
        info = PessimisticInfo(self.task.name, self.source_id, first[0], first[1], target[0],
                               target[1], group.ddls, sources)
        return self._ask(info, lambda op: op.lock_id == info.lock_id and
                         op.source == self.source_id and
                         (bool((op.body or {}).get("error")) or
                          tuple(op.ddls) == tuple(info.ddls)), stopped)

    def optimistic(self, table: Table, record: dict[str, Any], statements: tuple[str, ...],
                   tracker: Tracker, pipeline: Pipeline, stopped: Callable[[], bool],
                   position: str = "") -> ShardMessage | None:
        """Optimistic: send the shard's DDL (at `position`) with its structures, wait for
        the operation answering exactly that DDL."""
        before = self._structure(table, tracker, pipeline)
        after = apply(before, record["query"])  # one upstream statement, maybe split
        target = pipeline.rules.router.target(*table)
        info = OptimisticInfo(self.task.name, self.source_id, table[0], table[1], target[0],
                              target[1], statements, before,
                              tuple([after] * len(statements)), position)
        return self._ask(info, lambda op: op.lock_id == info.lock_id and
                         op.source == self.source_id and
                         (op.body or {}).get("up_schema") == table[0] and
                         (op.body or {}).get("up_table") == table[1] and
                         # an older coordinator's answer carries no ID at all
                         (op.body or {}).get("info_id", position) == position, stopped)

    def _ask(self, info: PessimisticInfo | OptimisticInfo,
             match: Callable[[ShardMessage], bool],
             stopped: Callable[[], bool]) -> ShardMessage | None:
        mark = self.channel.mark()
        message = info_message(info)
        self.channel.send(message)
        self.waiting = info.lock_id
        self.log.info("shard ddl info sent", lock=info.lock_id, ddls=list(info.ddls))
        again = (RESEND_SECONDS, lambda: self.channel.send(message)) \
            if isinstance(info, PessimisticInfo) else None
        answer = self.channel.wait(mark, match, stopped, again)
        if answer is not None:
            error = str((answer.body or {}).get("error") or (answer.body or {}).get("conflict")
                        or "")
            if error:
                raise ERR_SYNC_SHARD_REFUSED(lock=info.lock_id, table=
                                             f"{info.up_schema}.{info.up_table}", error=error)
            self.log.info("shard ddl operation", lock=info.lock_id,
                          exec=(answer.body or {}).get("exec"), ddls=list(answer.ddls))
        return answer

    def remember_done(self, answer: ShardMessage) -> None:
        """Note the done notice to send once the checkpoint holds (saved with it)."""
        self.pending_done.append(operation_message(answer.operation(), done=True).to_record())

    def send_done(self) -> None:
        """Send the done notices the last checkpoint saved."""
        for body in list(self.pending_done):
            self.channel.send(ShardMessage.from_record(body))
            self.pending_done.remove(body)
        self.waiting = ""

    # -- shards -------------------------------------------------------------------------

    def _upstream_tables(self, pipeline: Pipeline) -> list[Table]:
        """The source's tables the block/allow list keeps (DM's sharding group members)."""
        if self.source is None:
            return []
        rows = self._upstream("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                              "WHERE TABLE_TYPE = 'BASE TABLE'")
        online = pipeline.rules.online
        return sorted((str(s), str(t)) for s, t in rows
                      if pipeline.rules.balist.allows(str(s), str(t)) and
                      (online is None or online.real_name(str(t)) == str(t)))

    def _structure(self, table: Table, tracker: Tracker, pipeline: Pipeline) -> TableSchema:
        """The shard's tracked structure, else (never seen) the upstream's own."""
        known = tracker.get(*table)
        if known is not None:
            return known
        if self.source is None:
            raise ERR_SYNC_SHARD_TABLES(task=self.task.name, source=self.source_id,
                                        problem=f"no structure of `{table[0]}`.`{table[1]}`")
        (row,) = self._upstream(f"SHOW CREATE TABLE `{table[0]}`.`{table[1]}`")
        structure = TableSchema.from_create(str(row[1]), table[0])
        tracker.set(structure)
        return structure

    def _upstream(self, sql: str) -> tuple[tuple[Any, ...], ...]:
        """The rows of one query on the source (36014 when it cannot be asked)."""
        assert self.source is not None
        try:
            conn = pymysql.connect(**self.source.from_.connect_args())
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return tuple(cur.fetchall())
            finally:
                conn.close()
        except pymysql.MySQLError as exc:
            raise ERR_SYNC_SHARD_TABLES(exc, task=self.task.name, source=self.source_id,
                                        problem=str(exc)) from exc

    def _register(self, table: Table, tracker: Tracker, pipeline: Pipeline) -> None:
        if table in self.registered:
            return
        try:
            structure = self._structure(table, tracker, pipeline)
        except KdmError as exc:
            self.log.warning("shard not registered", table=f"{table[0]}.{table[1]}",
                             error=exc.render())
            return
        self.channel.send(table_message("table", self.task.name, self.source_id, table,
                                        pipeline.rules.router.target(*table), structure))
        self.registered.add(table)


def _fingerprint(task: TaskConfig, source_id: str) -> str:
    """The routing rules of the subtask, hashed (a change is refused mid-lock)."""
    rules = [task.routes[name] for name in task.instance(source_id).route_rules]
    text = json.dumps([[r.schema_pattern, r.table_pattern, r.target_schema, r.target_table]
                       for r in rules])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
