"""Helpers for the scenario tests: extra databases on either server, a barrier that proves
the subtask has applied everything before it, and what a downstream schema holds.

The barrier is a CREATE TABLE on the upstream: a DDL ends the sync round and runs only after
every earlier round has been applied, so once the barrier table exists downstream, every
change written before it has been applied (or dropped by a rule) and the tables can be
compared exactly, including rows that must *not* have arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pymysql

from kdm.stack.stack import Endpoints
from tests.integration.relay_support import wait_for
from tests.integration.sync_support import execute, rows, task_text

# Generous: another benchmark may share the stack.
WAIT_SECONDS = 90
Row = tuple[Any, ...]
# Whether a rule drops a row change: (op, old row or None, new row or None) -> bool.
Dropped = Callable[[str, Row | None, Row | None], bool]


def _server(endpoints: Endpoints, side: str) -> dict[str, Any]:
    return endpoints.upstream if side == "up" else endpoints.downstream


def query(endpoints: Endpoints, side: str, sql: str, args: tuple[Any, ...] = ()
          ) -> list[Row]:
    """The rows of one query on the upstream ("up") or downstream ("down") server."""
    server = _server(endpoints, side)
    conn = pymysql.connect(host=server["host"], port=server["port"], user=server["user"],
                           password="", autocommit=True, charset="utf8mb4", conv={})
    with conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


@contextmanager
def databases(endpoints: Endpoints, up: tuple[str, ...] = (), down: tuple[str, ...] = (),
              drop_down: tuple[str, ...] = ()) -> Iterator[None]:
    """Create databases on the upstream and downstream for the block's length; drop them
    (and `drop_down`, e.g. the task's meta schema) afterwards."""
    try:
        for side, names in (("up", up), ("down", down)):
            for name in names:
                query(endpoints, side, f"CREATE DATABASE `{name}`")
        yield
    finally:
        for side, names in (("up", up), ("down", (*down, *drop_down))):
            for name in names:
                query(endpoints, side, f"DROP DATABASE IF EXISTS `{name}`")


def per_source_task_text(name: str, endpoints: Endpoints, instances: Mapping[str, str],
                         body: str = "", worker_count: int = 4, meta_schema: str = "") -> str:
    """`task_text` with each source's own mysql-instances lines (source id -> lines)."""
    text = task_text(name, endpoints, [], body, worker_count=worker_count,
                     meta_schema=meta_schema)
    head, tail = text.split("mysql-instances:\n", 1)
    items = "".join(f"  - source-id: {source}\n    syncer-config-name: global\n" + "".join(
        f"    {line}\n" for line in lines.splitlines() if line.strip())
        for source, lines in instances.items())
    return f"{head}mysql-instances:\n{items}{tail}"


def tables_of(endpoints: Endpoints, side: str, db: str) -> set[str]:
    """The base tables of a database."""
    found = query(endpoints, side, "SELECT TABLE_NAME FROM information_schema.TABLES "
                  "WHERE TABLE_SCHEMA = %s", (db,))
    return {str(name) for (name,) in found}


def columns_of(endpoints: Endpoints, side: str, db: str, table: str) -> list[Row]:
    """(name, column type, nullable, default) of each column, in order."""
    return query(endpoints, side, "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, "
                 "COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                 "TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))


def indexes_of(endpoints: Endpoints, side: str, db: str, table: str) -> list[Row]:
    """(index name, unique, column) of each index column, sorted."""
    return query(endpoints, side, "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM "
                 "information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                 "ORDER BY INDEX_NAME, SEQ_IN_INDEX", (db, table))


def barrier(endpoints: Endpoints, up_db: str, down_db: str, table: str = "zz_barrier") -> None:
    """Create `up_db.table` upstream and wait until it exists as `down_db.table`."""
    execute(endpoints, up_db, f"CREATE TABLE `{table}` (id INT PRIMARY KEY)")
    wait_for(lambda: table in tables_of(endpoints, "down", down_db), WAIT_SECONDS,
             f"barrier table {down_db}.{table} downstream")


def by_id(table_rows: list[Row]) -> dict[Any, Row]:
    """Rows keyed by their first column."""
    return {row[0]: row for row in table_rows}


def apply_changes(model: dict[Any, Row], before: Mapping[Any, Row], after: Mapping[Any, Row],
                  dropped: Dropped | None = None) -> None:
    """Replay onto `model` the row changes that turned `before` into `after` (keyed by id),
    leaving out those `dropped(op, old, new)` says a rule drops."""
    def drop(op: str, old: Row | None, new: Row | None) -> bool:
        return dropped is not None and dropped(op, old, new)

    for key in before.keys() - after.keys():
        if not drop("DELETE", before[key], None):
            model.pop(key, None)
    for key in after.keys() - before.keys():
        if not drop("INSERT", None, after[key]):
            model[key] = after[key]
    for key in before.keys() & after.keys():
        if before[key] != after[key] and key in model and not drop("UPDATE", before[key],
                                                                    after[key]):
            model[key] = after[key]  # an UPDATE of a row the downstream lacks changes nothing


def snapshot(endpoints: Endpoints, db: str, table: str) -> dict[Any, Row]:
    """The upstream table's rows keyed by id."""
    return by_id(rows(endpoints, "up", db, table))


class Expected:
    """The downstream rows a scenario expects, table by table: each upstream statement is run
    through `run`, which replays its row changes (found by comparing the table before and
    after, keyed by the first column) onto the model, less those a rule drops."""

    def __init__(self, endpoints: Endpoints, db: str) -> None:
        self.endpoints = endpoints
        self.db = db
        self.tables: dict[str, dict[Any, Row]] = {}

    def run(self, table: str, *statements: str, dropped: Dropped | None = None) -> None:
        """Run `statements` upstream, one at a time, keeping the model of `table` in step."""
        model = self.tables.setdefault(table, {})
        for sql in statements:
            before = self._snapshot(table)
            execute(self.endpoints, self.db, sql)
            apply_changes(model, before, self._snapshot(table), dropped)

    def rows(self, table: str) -> list[Row]:
        """The expected rows of `table`, by id."""
        return [row for _, row in sorted(self.tables[table].items(), key=lambda i: int(i[0]))]

    def _snapshot(self, table: str) -> dict[Any, Row]:
        try:
            return snapshot(self.endpoints, self.db, table)
        except pymysql.err.ProgrammingError as exc:
            if exc.args[0] == 1146:  # no such table (yet, or any more)
                return {}
            raise
