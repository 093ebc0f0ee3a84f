"""The schema tracker: per upstream table, its structure at the binlog position being synced.

DM's schema tracker (reference dm-manual-C §10) keeps "schema-I", the structure of each
upstream table as of the event being consumed, so rows decode against the structure they
were written with. Every DDL is applied to the tracker first and only then to the
downstream, so a DDL the tracker cannot follow pauses the task ("cannot track DDL", 44002)
before the downstream is touched. The structures are persisted with the checkpoint
(`to_dict`), and `operate-schema get|set|remove` reads and replaces them while the task is
paused. A table never seen as DDL has no structure here: the caller falls back, in DM's
order, to the checkpoint's table_info, the optimistic coordination metadata, the downstream
table, and, last, `Tracker.from_columns` on a relay record (which knows only the PK).

This module is the shared package's one entry point for all of it; the pieces live in
`schema_table` (the values), `schema_create` (CREATE TABLE), `schema_alter` (ALTER),
`schema_join` (optimistic join), `schema_types` (type text) and `schema_sql` (statement
text). All of it is pure: no I/O.

`Tracker.apply_ddl` handles (table names compare exactly, as with lower_case_table_names=0;
column and index names case-insensitively, as MySQL does):

| statement                                    | effect                                      |
|----------------------------------------------|---------------------------------------------|
| CREATE TABLE t (...)                         | track t, replacing a stale entry            |
| CREATE TABLE IF NOT EXISTS t (...)           | track t unless it is tracked already        |
| CREATE TABLE t LIKE s                        | track a copy of s (s must be tracked, 44003)|
| ALTER TABLE, CREATE INDEX, DROP INDEX        | `apply` (44003 if untracked); RENAME TO     |
|                                              | moves the entry                             |
| RENAME TABLE a TO b[, c TO d ...]            | move each pair, left to right; an untracked |
|                                              | `a` leaves `b` untracked                    |
| DROP TABLE a[, b ...]                        | forget them                                 |
| DROP DATABASE d                              | forget every table of d                     |
| TRUNCATE, CREATE/ALTER DATABASE, views,      | nothing                                     |
| temporary tables                             |                                             |
| anything else (CREATE TABLE ... SELECT, ...) | refused, 44002                              |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlglot import exp

from kdm.errors import ERR_SCHEMA_LOAD, ERR_SCHEMA_NOT_TRACKED
from kdm.schema_alter import apply, apply_statement
from kdm.schema_create import from_create_tree
from kdm.schema_join import compare, join
from kdm.schema_sql import Statement, alter_clauses, parse, quote_name, rename_pairs
from kdm.schema_table import Column, Index, TableSchema

__all__ = ["Column", "Index", "TableKey", "TableSchema", "Tracker", "apply", "compare", "join"]

TableKey = tuple[str, str]


class Tracker:
    """A mutable registry of table structures by (schema, table)."""

    def __init__(self, tables: Iterable[TableSchema] = ()) -> None:
        self._tables: dict[TableKey, TableSchema] = {}
        for table in tables:
            self.set(table)

    def get(self, schema: str, table: str) -> TableSchema | None:
        """The tracked structure, or None when the table is not tracked."""
        return self._tables.get((schema, table))

    def set(self, table: TableSchema) -> None:
        """Track (or replace) a structure under its own schema and table name."""
        self._tables[(table.schema, table.table)] = table

    def remove(self, schema: str, table: str) -> bool:
        """Forget a table; whether it was tracked."""
        return self._tables.pop((schema, table), None) is not None

    def __contains__(self, key: object) -> bool:
        return key in self._tables

    def __iter__(self) -> Iterator[TableSchema]:
        return iter(list(self._tables.values()))

    def __len__(self) -> int:
        return len(self._tables)

    def apply_ddl(self, default_schema: str, sql: str) -> tuple[TableKey, ...]:
        """Follow one DDL statement (table above); the keys whose structure changed or went.

        On an error nothing changed: every statement is applied to copies first."""
        stmt = parse(sql)
        handler = self._handler(stmt)
        return handler(self, stmt, default_schema)

    def _handler(self, stmt: Statement) -> _Handler:
        handler = stmt.lookup(_TREE_HANDLERS, _TEXT_HANDLERS)
        if handler is None:
            raise stmt.unparsed()
        return handler

    def require(self, key: TableKey) -> TableSchema:
        """The tracked structure of `key`, or the not-tracked error."""
        found = self._tables.get(key)
        if found is None:
            raise ERR_SCHEMA_NOT_TRACKED(table=f"{quote_name(key[0])}.{quote_name(key[1])}")
        return found

    def to_dict(self) -> dict[str, Any]:
        """{"tables": [TableSchema.to_dict(), ...]}, in a stable order."""
        return {"tables": [self._tables[k].to_dict() for k in sorted(self._tables)]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tracker:
        """Inverse of `to_dict`."""
        tables = data.get("tables")
        if not isinstance(tables, list):
            raise ERR_SCHEMA_LOAD(problem="expected {\"tables\": [...]}")
        return cls(TableSchema.from_dict(t) for t in tables)

    @staticmethod
    def from_columns(schema: str, table: str,
                     columns: Sequence[Mapping[str, Any]]) -> TableSchema:
        """A structure from a relay row record's column list, for a table never seen as DDL."""
        return TableSchema.from_columns(schema, table, columns)


_Handler = Callable[[Tracker, Statement, str], tuple[TableKey, ...]]


def _key(table: exp.Expr, default_schema: str) -> TableKey:
    return (table.args["db"].name if table.args.get("db") else default_schema, table.name)


def _create_table(tracker: Tracker, stmt: Statement, default_schema: str) -> tuple[TableKey, ...]:
    tree = stmt.tree
    assert isinstance(tree, exp.Create)
    properties = tree.args.get("properties")
    if properties and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions):
        return ()
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    key = _key(target, default_schema)
    if tree.args.get("exists") and key in tracker:
        return ()
    like = tree.find(exp.LikeProperty)
    if like is not None:
        table = tracker.require(_key(like.this, default_schema)).renamed(*key)
    else:
        table = from_create_tree(tree, default_schema, stmt.sql)
    tracker.set(table)
    return (key,)


def _drop_tables(tracker: Tracker, stmt: Statement, default_schema: str) -> tuple[TableKey, ...]:
    tree = stmt.tree
    assert isinstance(tree, exp.Drop)
    if tree.args.get("temporary"):
        return ()
    keys = [_key(t, default_schema) for t in tree.args.get("tables") or ()]
    return tuple(k for k in keys if tracker.remove(*k))


def _drop_database(tracker: Tracker, stmt: Statement, default_schema: str) -> tuple[TableKey,
                                                                                     ...]:
    tree = stmt.tree
    assert isinstance(tree, exp.Drop)
    target = (tree.args.get("tables") or [tree.this])[0]
    database = target.name or target.args["db"].name
    gone = tuple(k for k in [(t.schema, t.table) for t in tracker] if k[0] == database)
    for key in gone:
        tracker.remove(*key)
    return gone


def _alter_table(tracker: Tracker, stmt: Statement, default_schema: str) -> tuple[TableKey, ...]:
    target = stmt.tree.this if stmt.tree is not None else alter_clauses(stmt)[0]
    key = _key(target, default_schema)
    changed = apply_statement(tracker.require(key), stmt)
    new_key = (changed.schema, changed.table)
    if new_key != key:
        tracker.remove(*key)
    tracker.set(changed)
    return (key,) if new_key == key else (key, new_key)


def _rename_tables(tracker: Tracker, stmt: Statement, default_schema: str) -> tuple[TableKey,
                                                                                     ...]:
    pairs = [(_key(a, default_schema), _key(b, default_schema)) for a, b in rename_pairs(stmt)]
    for old, new in pairs:
        table = tracker.get(*old)
        tracker.remove(*old)
        tracker.remove(*new)
        if table is not None:
            tracker.set(table.renamed(*new))
    return tuple(dict.fromkeys(k for pair in pairs for k in pair))


def _nothing(tracker: Tracker, stmt: Statement, default_schema: str) -> tuple[TableKey, ...]:
    return ()


_TREE_HANDLERS: dict[tuple[type, str], _Handler] = {
    (exp.Create, "TABLE"): _create_table,
    (exp.Drop, "TABLE"): _drop_tables,
    (exp.Drop, "DATABASE"): _drop_database,
    (exp.Drop, "SCHEMA"): _drop_database,
    (exp.Alter, "TABLE"): _alter_table,
    (exp.TruncateTable, ""): _nothing,
    (exp.Create, "DATABASE"): _nothing,
    (exp.Create, "SCHEMA"): _nothing,
    (exp.Create, "VIEW"): _nothing,
    (exp.Drop, "VIEW"): _nothing,
}
_TEXT_HANDLERS: dict[tuple[str, ...], _Handler] = {
    ("ALTER", "TABLE"): _alter_table,
    ("RENAME", "TABLE"): _rename_tables,
    ("ALTER", "DATABASE"): _nothing,
    ("ALTER", "SCHEMA"): _nothing,
}
