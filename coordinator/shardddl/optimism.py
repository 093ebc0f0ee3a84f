"""Optimistic shard-DDL locks: every shard's structure, the joined one, and the DDLs it emits.

In optimistic mode (reference dm-manual-A §7.2) shards run DDLs at their own pace and keep
migrating DML. The sync consumer reports each shard DDL as an `OptimisticInfo` (the
shard's structure before, and after each statement); the coordinator keeps one
`OptimisticLock` per target table holding every shard's structure, joins them
(`kdm.schema_join.join`) and answers with the statements that move the joined structure,
the only ones the downstream runs. The consumer applies them, reports done, and goes on.

1. At subtask start the consumer registers each shard with its tracked structure
   (`add_table`, DM's source tables), so the joined structure never forgets a shard that
   has not run a DDL yet: without it a DROP COLUMN could reach the downstream while a
   silent shard still writes the column.
2. An info arrives: `try_sync` returns the operation (possibly with no DDLs), or raises a
   conflict, which the caller sends as `OptimisticOperation.conflicted`: the consumer
   pauses that table and the lock keeps the shard at its structure before the DDL.
3. A crash before the lock is persisted replays the info: the shard's stored structure is
   replaced by the info's `table_before` first (DM does the same), so the replay emits the
   same DDLs. The consumer applies them idempotently (it re-reads the op or re-sends).
   An info answered already whose operation is not done yet (the consumer died before
   running it) gets the stored answer again, not a new join: another shard's info handled
   meanwhile may have counted on those DDLs reaching the downstream.
4. The done notice clears the table's pending flag; a lock whose shards all agree and have
   nothing pending is resolved, and `show-ddl-locks` stops listing it. Unlike DM the lock is
   kept (it is the record of every shard's structure); DM rebuilds it from checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from coordinator.shardddl.keeper import LockTable
from kdm.errors import (
    ERR_SHARD_DDL_INFO,
    ERR_SHARD_DDL_UNSUPPORTED,
    ERR_SHARD_LOCK_LOAD,
    ERR_SHARD_OPTIMISTIC_CONFLICT,
    KdmError,
)
from kdm.schema_join import compare, join
from kdm.schema_sql import quote_name
from kdm.schema_table import Column, Index, TableSchema
from kdm.schema_types import canonical_type
from kdm.shard_ddl import OPTIMISTIC, OptimisticInfo, OptimisticOperation, TableKey, lock_id

MODE = OPTIMISTIC
__all__ = ["MODE", "OptimisticInfo", "OptimisticKeeper", "OptimisticLock",
           "OptimisticOperation", "TableKey"]



class OptimisticLock:
    """One target table: each shard's structure, its pending operation, its conflict.

    `dropped` maps a column (lower-case) to the shards that dropped it while another shard
    still has it, so the downstream keeps it: such a shard may not add it back (DM's
    "partially dropped column"), its rows would meet the old values downstream."""

    mode = MODE
    owner = ""
    ddls: tuple[str, ...] = ()

    def __init__(self, lock_id: str, task: str, target: tuple[str, str]) -> None:
        self.id = lock_id
        self.task = task
        self.target = target
        self.tables: dict[TableKey, TableSchema] = {}
        self.done: dict[TableKey, bool] = {}
        self.conflicts: dict[TableKey, str] = {}
        self.dropped: dict[str, set[TableKey]] = {}
        # per shard, the answered info (its ID) whose operation is not done, and the answer
        self.answered: dict[TableKey, tuple[str, tuple[str, ...]]] = {}

    def add_table(self, key: TableKey, structure: TableSchema) -> bool:
        """Register a shard with its structure; a known shard keeps the lock's."""
        if key in self.tables:
            return False
        self.tables[key] = structure
        self.done[key] = True
        return True

    def remove_table(self, key: TableKey) -> bool:
        """Forget a shard (DROP TABLE upstream, or its source left the task).

        As in DM the joined structure is not narrowed by it: no DDL is emitted."""
        if key not in self.tables:
            return False
        del self.tables[key], self.done[key]
        self.conflicts.pop(key, None)
        self.answered.pop(key, None)
        for keys in self.dropped.values():
            keys.discard(key)
        return True

    def joined(self) -> TableSchema:
        """The structure the downstream table has (or gets with the pending DDLs)."""
        return _join(self.tables, self.target)

    def ready(self) -> dict[TableKey, bool]:
        """Per shard, whether its structure is the joined one (DM's `Ready`)."""
        try:
            joined = self.joined()
        except KdmError:
            return dict.fromkeys(self.tables, False)
        return {key: _same(joined, table) for key, table in self.tables.items()}

    def is_synced(self) -> bool:
        """Whether every shard has the joined structure."""
        return all(self.ready().values())

    def is_resolved(self) -> bool:
        """Synced, with no operation pending and no conflict: nothing to show."""
        return self.is_synced() and all(self.done.values()) and not self.conflicts

    def synced(self) -> list[str]:
        """show-ddl-locks' `synced`: ``<source>-`<schema>`.`<table>``` of ready shards."""
        return sorted(_name(key) for key, ready in self.ready().items() if ready)

    def unsynced(self) -> list[str]:
        """show-ddl-locks' `unsynced`: the shards whose structure differs from the joined."""
        return sorted(_name(key) for key, ready in self.ready().items() if not ready)

    def sources(self) -> list[str]:
        """The sources with shards in the lock, sorted."""
        return sorted({key[0] for key in self.tables})

    def mark_done(self, key: TableKey) -> bool:
        """The shard's consumer applied its operation; whether the shard is known."""
        if key not in self.done:
            return False
        self.done[key] = True
        self.answered.pop(key, None)
        return True

    def try_sync(self, info: OptimisticInfo) -> tuple[str, ...]:
        """The shard's DDLs that move the joined structure (see OptimisticKeeper).

        All or nothing: on a conflict nothing is emitted, the shard stays at
        `table_before` with the conflict recorded, and the error is raised."""
        _check_info(info)
        key = info.key
        answered = self.answered.get(key)
        if info.info_id and answered is not None and answered[0] == info.info_id:
            return answered[1]  # the same info again, its answer never applied: the same
        tables = {**self.tables, key: info.table_before}
        dropped = {column: set(keys) for column, keys in self.dropped.items()}
        self.done[key] = False
        try:
            emitted = self._steps(tables, dropped, info)
        except KdmError as err:
            self.tables[key] = info.table_before
            self.conflicts[key] = err.message
            raise
        self.tables, self.dropped = tables, dropped
        self.conflicts.pop(key, None)
        if info.info_id:
            self.answered[key] = (info.info_id, emitted)
        return emitted

    def _steps(self, tables: dict[TableKey, TableSchema], dropped: dict[str, set[TableKey]],
               info: OptimisticInfo) -> tuple[str, ...]:
        emitted, prev = [], info.table_before
        for ddl, post in zip(info.ddls, info.tables_after, strict=True):
            if self._step(tables, dropped, info.key, ddl, (prev, post)):
                emitted.append(ddl)
            prev = post
        return tuple(emitted)

    def _step(self, tables: dict[TableKey, TableSchema], dropped: dict[str, set[TableKey]],
              key: TableKey, ddl: str, change: tuple[TableSchema, TableSchema]) -> bool:
        prev, post = change
        _check_supported(ddl, prev, post)
        for column in _added(prev, post):
            if key in dropped.get(column.name.lower(), ()):
                raise self._conflict(ddl, f"add column `{column.name}` that wasn't fully "
                                          "dropped in downstream")
        old = self._join(tables, ddl)
        tables[key] = post
        new = self._join(tables, ddl)
        self._check_added(ddl, old, change)
        _track_drops(dropped, key, change, new)
        if _same(old, new):
            return False
        self._check_reaches(ddl, old, new, change)
        return True

    def _join(self, tables: Mapping[TableKey, TableSchema], ddl: str) -> TableSchema:
        try:
            return _join(tables, self.target)
        except KdmError as err:
            raise self._conflict(ddl, err.message) from err

    def _check_added(self, ddl: str, old: TableSchema,
                     change: tuple[TableSchema, TableSchema]) -> None:
        """A column another shard added already must be added with the same definition."""
        for column in _added(*change):
            had = old.column(column.name)
            if had is not None and _column_shape(had) != _column_shape(column):
                raise self._conflict(ddl, f"column `{column.name}` is added as "
                                          f"{column.render()} but the downstream has it as "
                                          f"{had.render()}")

    def _check_reaches(self, ddl: str, old: TableSchema, new: TableSchema,
                       change: tuple[TableSchema, TableSchema]) -> None:
        """The statement, run on the downstream (at `old`), must give `new`."""
        for column in _added(*change):
            if old.column(column.name) is not None:
                raise self._conflict(ddl, f"the downstream has column `{column.name}` "
                                          "already; add it in a statement of its own")
        if not _same(_patched(old, *change), new):
            raise self._conflict(ddl, "run on the downstream it would not give the joined "
                                      "structure all shards' rows need")

    def _conflict(self, ddl: str, problem: str) -> KdmError:
        return ERR_SHARD_OPTIMISTIC_CONFLICT(
            lock=self.id, problem=f"there will be conflicts if DDL `{ddl}` is applied to the "
                                  f"downstream: {problem}")

    def to_dict(self) -> dict[str, Any]:
        """The persisted form (the locks topic's value, keyed by `id`)."""
        return {"id": self.id, "task": self.task, "mode": MODE, "target": list(self.target),
                "tables": [{"source": k[0], "schema": k[1], "table": k[2],
                            "structure": self.tables[k].to_dict(), "done": self.done[k],
                            "conflict": self.conflicts.get(k, ""),
                            "answered": [self.answered[k][0], list(self.answered[k][1])]
                            if k in self.answered else None}
                           for k in sorted(self.tables)],
                "dropped": {column: sorted(list(k) for k in keys)
                            for column, keys in sorted(self.dropped.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimisticLock:
        """Inverse of `to_dict`; damaged data raises ShardDDLLockLoad (38009)."""
        try:
            if data["mode"] != MODE:
                raise ValueError(f"mode {data['mode']!r} is not {MODE}")
            schema, table = data["target"]
            lock = cls(str(data["id"]), str(data["task"]), (str(schema), str(table)))
            for entry in data["tables"]:
                key = (str(entry["source"]), str(entry["schema"]), str(entry["table"]))
                lock.tables[key] = TableSchema.from_dict(entry["structure"])
                lock.done[key] = bool(entry["done"])
                if entry.get("conflict"):
                    lock.conflicts[key] = str(entry["conflict"])
                if entry.get("answered"):
                    info_id, ddls = entry["answered"]
                    lock.answered[key] = (str(info_id), tuple(str(d) for d in ddls))
            lock.dropped = {str(column): {(str(s), str(d), str(t)) for s, d, t in keys}
                            for column, keys in data["dropped"].items()}
        except (KeyError, TypeError, ValueError, AttributeError, KdmError) as err:
            raise ERR_SHARD_LOCK_LOAD(err, problem=f"optimistic lock: {err!r}") from err
        return lock


class OptimisticKeeper(LockTable[OptimisticLock]):
    """The optimistic locks of every task, by ID.

    Algorithm (DM's optimist, dm-manual-A §7.2): per DDL statement of an info, join every
    shard's structure before and after it (`kdm.schema_join.join`: union of columns, wider
    types, a column missing from a shard must be NULL-able or have a constant default). The
    statement reaches the downstream only when the joined structure changes, and only if
    running it on the downstream gives exactly the new joined structure; otherwise, or when
    the shards cannot be joined, it is a conflict (38006) and the table pauses. Statement
    forms the manual does not support (ADD COLUMN NOT NULL without a default or with a
    non-constant default, ADD and DROP COLUMN in one statement, renaming a column or an
    index) raise 38007. Worked example, the manual's: tbl00, tbl01, tbl02 -> tbl, all with
    (ID, Name):

    | info                        | joined          | emitted         | unsynced        |
    |-----------------------------|-----------------|-----------------|-----------------|
    | tbl00 ADD COLUMN Level int  | ID, Name, Level | ADD Level       | tbl01, tbl02    |
    | tbl01 ADD COLUMN Level int  | same            | nothing         | tbl02           |
    | tbl01 DROP COLUMN Name      | same            | nothing         | tbl01, tbl02    |
    | tbl02 ADD COLUMN Level int  | same            | nothing         | tbl01           |
    | tbl00 DROP COLUMN Name      | same            | nothing         | tbl00, tbl01    |
    | tbl02 DROP COLUMN Name      | ID, Level       | DROP Name       | none: synced    |

    Conflicts: tbl01 `ADD COLUMN Age int DEFAULT 0` is emitted; then tbl00 `ADD COLUMN Age
    int DEFAULT -1` cannot be joined (same name, different default) and pauses tbl00, and
    so does tbl00 `ADD COLUMN Age bigint DEFAULT 0`: it joins (bigint is wider), but a
    column added again must have the definition the downstream has."""

    def _lock(self, task: str, down_schema: str, down_table: str) -> OptimisticLock:
        key = lock_id(task, down_schema, down_table)
        return self._locks.setdefault(key, OptimisticLock(key, task, (down_schema, down_table)))

    def add_table(self, task: str, source: str, up_schema: str, up_table: str,
                  down_schema: str, down_table: str, structure: TableSchema) -> OptimisticLock:
        """Register a shard of a target with its tracked structure (see the module's step 1)."""
        lock = self._lock(task, down_schema, down_table)
        lock.add_table((source, up_schema, up_table), structure)
        return lock

    def try_sync(self, info: OptimisticInfo) -> OptimisticOperation:
        """The operation answering an info; conflicts raise 38006 or 38007 (see above)."""
        lock = self._lock(info.task, info.down_schema, info.down_table)
        ddls = lock.try_sync(info)
        return OptimisticOperation(lock.id, info.task, info.source, info.up_schema,
                                   info.up_table, ddls, info_id=info.info_id)

    def mark_done(self, lock_id: str, source: str, up_schema: str, up_table: str) -> bool:
        """A consumer applied its operation; whether the lock knows that shard."""
        lock = self._locks.get(lock_id)
        return lock is not None and lock.mark_done((source, up_schema, up_table))

    def remove_table(self, task: str, source: str, up_schema: str, up_table: str,
                     down_schema: str, down_table: str) -> bool:
        """Forget a dropped shard; a lock left without shards goes too."""
        lock = self._locks.get(lock_id(task, down_schema, down_table))
        if lock is None or not lock.remove_table((source, up_schema, up_table)):
            return False
        if not lock.tables:
            del self._locks[lock.id]
        return True

    def remove_source(self, task: str, source: str) -> list[str]:
        """Forget every shard of a source that left the task; the IDs of changed locks."""
        changed = []
        for lock in [lock for lock in self.locks() if lock.task == task]:
            keys = [key for key in lock.tables if key[0] == source]
            for key in keys:
                lock.remove_table(key)
            if keys:
                changed.append(lock.id)
            if not lock.tables:
                del self._locks[lock.id]
        return changed


def _name(key: TableKey) -> str:
    return f"{key[0]}-{quote_name(key[1])}.{quote_name(key[2])}"


def _join(tables: Mapping[TableKey, TableSchema], target: tuple[str, str]) -> TableSchema:
    return join([tables[key] for key in sorted(tables)]).renamed(*target)


def _same(a: TableSchema, b: TableSchema) -> bool:
    """Whether two structures accept the same rows (a pair that cannot be joined differs)."""
    try:
        return compare(a, b) == 0
    except KdmError:
        return False


def _check_info(info: OptimisticInfo) -> None:
    if not info.ddls or len(info.ddls) != len(info.tables_after):
        raise ERR_SHARD_DDL_INFO(source=info.source, lock=info.lock_id,
                                 problem=f"{len(info.ddls)} DDLs with "
                                         f"{len(info.tables_after)} structures after them")


def _added(prev: TableSchema, post: TableSchema) -> list[Column]:
    return [c for c in post.columns if prev.column(c.name) is None]


def _check_supported(ddl: str, prev: TableSchema, post: TableSchema) -> None:
    """The statement forms dm-manual-A §7.2 lists as unsupported in optimistic mode."""
    problem = _unsupported(prev, post)
    if problem:
        raise ERR_SHARD_DDL_UNSUPPORTED(mode=MODE, sql=ddl, problem=problem)


def _unsupported(prev: TableSchema, post: TableSchema) -> str:
    added, removed = _added(prev, post), _added(post, prev)
    for column in added:
        if column.default_expr:
            return f"column `{column.name}` is added with the non-constant DEFAULT " \
                   f"{column.default}"
        if not (column.nullable or column.generated or column.auto_increment) and \
                column.default is None:
            return f"column `{column.name}` is added NOT NULL without a DEFAULT"
    for old in removed:
        for new in added:
            if _column_shape(old) == _column_shape(new):
                return f"renaming column `{old.name}` to `{new.name}`"
    if added and removed:
        return "ADD COLUMN and DROP COLUMN in one statement"
    gone = [i for i in prev.all_keys() if post.index(i.name) is None]
    for new_key in (i for i in post.all_keys() if prev.index(i.name) is None):
        for old_key in gone:
            if _key_shape(old_key) == _key_shape(new_key):
                return f"renaming index `{old_key.name}` to `{new_key.name}`"
    return ""


def _track_drops(dropped: dict[str, set[TableKey]], key: TableKey,
                 change: tuple[TableSchema, TableSchema], new: TableSchema) -> None:
    for column in _added(change[1], change[0]):
        if new.column(column.name) is not None:
            dropped.setdefault(column.name.lower(), set()).add(key)
    for name in [name for name in dropped if new.column(name) is None]:
        del dropped[name]


def _patched(base: TableSchema, prev: TableSchema, post: TableSchema) -> TableSchema:
    """`base` with the columns, keys and table options that changed from prev to post."""
    columns = list(base.columns)
    for name in _changed_columns(prev, post):
        at = next((i for i, c in enumerate(columns) if c.name.lower() == name), None)
        after = post.column(name)
        if at is None:
            columns += [after] if after is not None else []
        elif after is None:
            del columns[at]
        else:
            columns[at] = after
    keys = {key.name.lower(): key for key in base.all_keys()}
    for name in {key.name.lower() for key in (*prev.all_keys(), *post.all_keys())}:
        before, after_key = prev.index(name), post.index(name)
        if before != after_key:
            keys.pop(name, None)
            if after_key is not None:
                keys[name] = after_key
    primary = keys.pop("primary", None)
    return replace(base, columns=tuple(columns), primary=primary, indexes=tuple(keys.values()),
                   charset=_option(base, prev, post, "charset"),
                   collation=_option(base, prev, post, "collation"))


def _changed_columns(prev: TableSchema, post: TableSchema) -> list[str]:
    names = dict.fromkeys(c.name.lower() for c in (*prev.columns, *post.columns))
    return [name for name in names if prev.column(name) != post.column(name)]


def _option(base: TableSchema, prev: TableSchema, post: TableSchema, name: str) -> str:
    return str(getattr(post if getattr(prev, name) != getattr(post, name) else base, name))


def _column_shape(column: Column) -> tuple[Any, ...]:
    """A column's definition without its name, comment and integer display width."""
    return (canonical_type(column.type), column.unsigned, column.nullable, column.default,
            column.default_expr, column.auto_increment, column.charset, column.collation,
            column.generated, column.stored, column.on_update)


def _key_shape(index: Index) -> tuple[Any, ...]:
    return (tuple(c.lower() for c in index.columns), index.lengths, index.unique, index.kind)

