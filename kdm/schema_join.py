"""The optimistic shard-DDL join: one table structure that accepts the rows of every shard.

In optimistic mode (reference dm-manual-A §7.2) shards run their DDL at their own pace. The
coordinator keeps every shard's tracked structure and merges them into a *joined* one; the
downstream table is kept at the joined structure, so a shard DDL reaches the downstream
only when it moves the joined structure: ADD COLUMN on any shard widens it at once, and a
DROP COLUMN takes effect only once no shard has the column any more.

Rules of `join`. A definition present on several shards must agree, otherwise the shards
conflict (error 44007, "same name, different definition"):

1. Columns: the union by name (case-insensitive), in order of first appearance; a column
   new in a later shard goes right after its predecessor in that shard.
2. A column on several shards: the type is the wider one (`schema_types.widen_type`:
   int < bigint, varchar(10) < varchar(20), decimal(5,2) + decimal(6,1) = decimal(7,2),
   enum('a') < enum('a','b'), ...); different type families conflict. UNSIGNED, DEFAULT,
   the generated expression and ON UPDATE must be equal; so must charset and collation,
   where empty (the table's default) agrees with anything. NULL wins over NOT NULL;
   AUTO_INCREMENT is kept when any shard has it.
3. A column missing from some shard must accept that shard's rows without a value: it is
   NULL-able or has a constant DEFAULT. The reference refuses `ADD COLUMN c ... NOT NULL`
   without a default and non-constant defaults such as `DEFAULT NOW()` for this reason.
4. Keys: the union by name; a key on several shards must have the same columns, prefix
   lengths, uniqueness and kind. The primary keys of the shards that have one must agree.
5. The table's default charset and collation must agree (empty agrees with anything).

`compare(a, b)` orders two structures by what they accept: 0 when they are the same, -1
when b is wider (`join(a, b)` is b), 1 when a is wider, None when each has something the
other lacks; a conflict raises as in `join`. Column order, comments and integer display
widths do not count.

Worked example (the reference's table): tbl00, tbl01, tbl02 -> tbl, all starting with
(ID int, Name varchar(20)):

| step | shard DDL                          | joined columns   | compare(old, new) | downstream |
|------|------------------------------------|------------------|-------------------|------------|
| 1    | tbl00 ADD COLUMN Level int         | ID, Name, Level  | -1                | ADD Level  |
| 3    | tbl01 ADD COLUMN Level int         | ID, Name, Level  | 0                 | nothing    |
| 4    | tbl01 DROP COLUMN Name             | ID, Name, Level  | 0 (tbl00 has Name)| nothing    |
| 6    | tbl02 ADD COLUMN Level int         | ID, Name, Level  | 0                 | nothing    |
| 7    | tbl00, tbl02 DROP COLUMN Name      | ID, Level        | 1                 | DROP Name  |

Conflicts: tbl01 `ADD COLUMN Age int DEFAULT 0` and tbl00 `ADD COLUMN Age int DEFAULT -1`
(different defaults); `Age varchar(10)` on one shard and `Age int` on another (no wider
type); `ADD COLUMN c int NOT NULL` on one shard only (the others' rows cannot fill c).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from kdm.errors import ERR_SHARD_SCHEMA_CONFLICT, KdmError
from kdm.schema_table import Column, Index, TableSchema
from kdm.schema_types import canonical_type, widen_type

_MUST_AGREE = ("unsigned", "default", "default_expr", "generated", "stored", "on_update")


def join(schemas: Sequence[TableSchema]) -> TableSchema:
    """The joined structure of the shards (rules in the module docstring), named as the first."""
    if not schemas:
        raise ValueError("join needs at least one table structure")
    first = schemas[0]
    columns = tuple(_join_column(schemas, name) for name in _column_order(schemas))
    return TableSchema(first.schema, first.table, columns, _join_primary(schemas),
                       _join_indexes(schemas), _agreed(schemas, "charset"),
                       _agreed(schemas, "collation"))


def compare(a: TableSchema, b: TableSchema) -> int | None:
    """-1 if b is wider than a, 0 if the same, 1 if a is wider, None if neither holds the other.

    Raises the conflict error (44007) when they cannot be joined."""
    joined, shape_a, shape_b = _shape(join([a, b])), _shape(a), _shape(b)
    if shape_a == shape_b:
        return 0
    if joined == shape_b:
        return -1
    return 1 if joined == shape_a else None


def _conflict(shards: Sequence[TableSchema], problem: str) -> KdmError:
    names = ", ".join(dict.fromkeys(s.qualified for s in shards))
    return ERR_SHARD_SCHEMA_CONFLICT(tables=names, problem=problem)


def _column_order(schemas: Sequence[TableSchema]) -> list[str]:
    order = [c.name for c in schemas[0].columns]
    for schema in schemas[1:]:
        at = -1
        for column in schema.columns:
            known = [n.lower() for n in order]
            if column.name.lower() in known:
                at = known.index(column.name.lower())
            else:
                at += 1
                order.insert(at, column.name)
    return order


def _join_column(schemas: Sequence[TableSchema], name: str) -> Column:
    holders = [(s, c) for s in schemas if (c := s.column(name)) is not None]
    owner, joined = holders[0]
    for shard, column in holders[1:]:
        joined = _join_pair(joined, column, (owner, shard))
    missing = next((s for s in schemas if s.column(name) is None), None)
    if missing is not None:
        _check_fillable(joined, (owner, missing))
    return joined


def _join_pair(a: Column, b: Column, shards: tuple[TableSchema, TableSchema]) -> Column:
    wider = widen_type(a.type, b.type)
    if wider is None:
        raise _conflict(shards, f"column `{a.name}` is {a.type} on one and {b.type} on the "
                                "other, and neither type holds the other's values")
    for attribute in _MUST_AGREE:
        mine, theirs = getattr(a, attribute), getattr(b, attribute)
        if mine != theirs:
            raise _conflict(shards, f"column `{a.name}` has {attribute} {mine!r} on one and "
                                    f"{theirs!r} on the other")
    return replace(a, type=wider, nullable=a.nullable or b.nullable,
                   auto_increment=a.auto_increment or b.auto_increment,
                   charset=_agree(a.charset, b.charset, f"column `{a.name}` charset", shards),
                   collation=_agree(a.collation, b.collation, f"column `{a.name}` collation",
                                    shards),
                   comment=a.comment or b.comment)


def _check_fillable(column: Column, shards: tuple[TableSchema, TableSchema]) -> None:
    if column.generated or column.auto_increment:
        return
    if not column.nullable and column.default is None:
        raise _conflict(shards, f"column `{column.name}` is NOT NULL without a DEFAULT and "
                                "missing from a shard, whose rows could not fill it")
    if column.default_expr:
        raise _conflict(shards, f"column `{column.name}` has the non-constant DEFAULT "
                                f"{column.default} and is missing from a shard: upstream "
                                "and downstream values would differ")


def _agree(mine: str, theirs: str, what: str, shards: Sequence[TableSchema]) -> str:
    if mine and theirs and mine != theirs:
        raise _conflict(shards, f"{what} is {mine!r} on one and {theirs!r} on the other")
    return mine or theirs


def _agreed(schemas: Sequence[TableSchema], attribute: str) -> str:
    given = [s for s in schemas if getattr(s, attribute)]
    for schema in given[1:]:
        _agree(getattr(given[0], attribute), getattr(schema, attribute), f"table {attribute}",
               (given[0], schema))
    return str(getattr(given[0], attribute)) if given else ""


def _join_primary(schemas: Sequence[TableSchema]) -> Index | None:
    keyed = [(s, s.primary) for s in schemas if s.primary is not None]
    for other in keyed[1:]:
        _same_key(keyed[0], other)
    return keyed[0][1] if keyed else None


def _join_indexes(schemas: Sequence[TableSchema]) -> tuple[Index, ...]:
    found: dict[str, tuple[TableSchema, Index]] = {}
    for schema in schemas:
        for index in schema.indexes:
            _same_key(found.setdefault(index.name.lower(), (schema, index)), (schema, index))
    return tuple(index for _, index in found.values())


def _same_key(a: tuple[TableSchema, Index], b: tuple[TableSchema, Index]) -> None:
    if _key_shape(a[1]) != _key_shape(b[1]):
        raise _conflict((a[0], b[0]), f"key `{a[1].name}` is {a[1].render()} on one and "
                                      f"{b[1].render()} on the other")


def _key_shape(index: Index) -> tuple[Any, ...]:
    return (index.name.lower(), tuple(c.lower() for c in index.columns), index.lengths,
            index.unique, index.kind)


def _column_shape(column: Column) -> tuple[Any, ...]:
    return (column.name.lower(), canonical_type(column.type), column.nullable,
            column.auto_increment, column.charset, column.collation,
            *(getattr(column, attribute) for attribute in _MUST_AGREE))


def _shape(schema: TableSchema) -> tuple[Any, ...]:
    """What a structure accepts, for `compare`: no order, comments or display widths."""
    columns = frozenset(_column_shape(c) for c in schema.columns)
    keys = frozenset(_key_shape(i) for i in schema.all_keys())
    return columns, keys, schema.charset, schema.collation
