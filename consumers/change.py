"""A row change as a value, and the SQL it renders to.

A `RowChange` holds the target table, the operation, the before/after images (in the
upstream column order, with the upstream column names) and the downstream key columns.
Safe mode is a choice of rendering, not a code path:

========  =====================================  =====================================
op        normal                                 safe mode
========  =====================================  =====================================
INSERT    INSERT INTO t (cols) VALUES (...)      REPLACE INTO t (cols) VALUES (...)
UPDATE    UPDATE t SET cols=... WHERE key=old    DELETE FROM t WHERE key=old; REPLACE new
DELETE    DELETE FROM t WHERE key=old LIMIT 1    same
========  =====================================  =====================================

`render(changes, safe)` merges consecutive INSERTs (or safe-mode REPLACEs) into the same
table into one multi-row statement, and consecutive DELETEs by key into one
`DELETE ... WHERE (k) IN (...)`, when `multiple_rows` is set (DM's `multiple-rows`).
Without key columns a WHERE clause matches every column of the old row (`<=>`, so NULLs
match), as DM does for tables without a primary or unique key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from pymysql.converters import escape_item, escape_string

from kdm.schema_sql import quote_name as quote

INSERT, UPDATE, DELETE = "INSERT", "UPDATE", "DELETE"


class RowChange(NamedTuple):
    """One row change bound for one downstream table (a named tuple: the hot path builds
    one per row)."""

    schema: str
    table: str
    op: str
    columns: tuple[str, ...]
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None
    key: tuple[str, ...] = ()
    offset: int = -1

    @property
    def target(self) -> str:
        """`schema`.`table`."""
        return f"{quote(self.schema)}.{quote(self.table)}"

    def key_values(self, image: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """The key columns' values in an image (every column's when there is no key)."""
        assert image is not None
        if not self.key:
            return image
        index = {name: i for i, name in enumerate(self.columns)}
        return tuple(image[index[name]] for name in self.key)

    def where(self, image: tuple[Any, ...] | None) -> tuple[str, list[Any]]:
        """`WHERE` text and arguments selecting the row `image` by key."""
        names = self.key or self.columns
        values = self.key_values(image)
        parts = [f"{quote(n)} IS NULL" if v is None else f"{quote(n)} = %s"
                 for n, v in zip(names, values, strict=True)]
        return " AND ".join(parts), [v for v in values if v is not None]


Statement = tuple[str, list[Any] | None]
"""SQL and its `%s` arguments, or None when the SQL holds its values."""


def render(changes: Sequence[RowChange], safe: bool, multiple_rows: bool = True
           ) -> list[Statement]:
    """SQL statements applying `changes` in order."""
    out: list[Statement] = []
    i = 0
    while i < len(changes):
        change = changes[i]
        j = i + 1
        if multiple_rows and change.op in (INSERT, DELETE):
            while (j < len(changes) and changes[j].op == change.op
                   and changes[j].table == change.table
                   and changes[j].schema == change.schema
                   and changes[j].columns == change.columns and changes[j].key == change.key):
                j += 1
        out.extend(_RENDER[change.op](changes[i:j], safe))
        i = j
    return out


def literal(value: Any) -> str:
    """A value as an SQL literal, for kdm's session (backslash escapes on): ints and text,
    nearly every value, directly; anything else through pymysql's own escaping."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str:
        return "'" + escape_string(value) + "'"
    if value is None:
        return "NULL"
    return escape_item(value, "utf8mb4")


def _values_sql(change: RowChange, rows: Sequence[tuple[Any, ...] | None], verb: str
                ) -> Statement:
    """`INSERT`/`REPLACE` of whole rows, values inlined as literals (no argument list: a
    multi-row statement's values are most of what a subtask sends, so they are rendered
    by the cheapest means)."""
    columns = ", ".join(quote(c) for c in change.columns)
    values = ", ".join("(" + ", ".join(map(literal, image or ())) + ")" for image in rows)
    return f"{verb} INTO {change.target} ({columns}) VALUES {values}", None


def _insert(changes: Sequence[RowChange], safe: bool) -> list[Statement]:
    return [_values_sql(changes[0], [c.after for c in changes], "REPLACE" if safe else "INSERT")]


def _delete(changes: Sequence[RowChange], safe: bool) -> list[Statement]:
    first = changes[0]
    if len(changes) == 1 or not first.key or any(
            v is None for c in changes for v in c.key_values(c.before)):
        out: list[Statement] = []
        for change in changes:
            where, args = change.where(change.before)
            out.append((f"DELETE FROM {change.target} WHERE {where} LIMIT 1", args))
        return out
    key = ", ".join(quote(k) for k in first.key)
    row = "(" + ", ".join(["%s"] * len(first.key)) + ")"
    args = [v for c in changes for v in c.key_values(c.before)]
    return [(f"DELETE FROM {first.target} WHERE ({key}) IN ("
             + ", ".join([row] * len(changes)) + ")", args)]


def _update(changes: Sequence[RowChange], safe: bool) -> list[Statement]:
    out: list[Statement] = []
    for change in changes:
        where, where_args = change.where(change.before)
        if safe:
            out.append((f"DELETE FROM {change.target} WHERE {where} LIMIT 1", where_args))
            out.append(_values_sql(change, [change.after], "REPLACE"))
            continue
        sets = ", ".join(f"{quote(c)} = %s" for c in change.columns)
        out.append((f"UPDATE {change.target} SET {sets} WHERE {where} LIMIT 1",
                    [*(change.after or ()), *where_args]))
    return out


_RENDER = {INSERT: _insert, UPDATE: _update, DELETE: _delete}
