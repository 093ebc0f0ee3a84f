"""CREATE TABLE (and the column and key definitions ALTER TABLE shares) read into values.

sqlglot's tree of a column definition or key is turned into `schema_table` values through
dispatch tables: column attribute -> handler (`_CONSTRAINTS`), table element -> handler
(`_KEY_ELEMENTS`). An attribute or element missing from a table is refused with a coded
error rather than dropped; the ones that change neither the rows a table holds nor how they
are keyed (CHECK, FOREIGN KEY, INVISIBLE, storage options) are read and ignored.
MySQL's implicit rules are kept: primary-key columns become NOT NULL, an unnamed key is
named after its first column (`a`, then `a_2`, ...), and a table's options other than its
default charset and collation (ENGINE, partitioning, ...) are not tracked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlglot import exp

from kdm.errors import (
    ERR_SCHEMA_DUPLICATE_OBJECT,
    ERR_SCHEMA_UNKNOWN_OBJECT,
    ERR_SCHEMA_UNSUPPORTED,
)
from kdm.schema_sql import parse
from kdm.schema_table import Column, Index, TableSchema
from kdm.schema_types import parse_type


def parse_create(sql: str, default_schema: str) -> TableSchema:
    """The structure a CREATE TABLE statement describes (`TableSchema.from_create`)."""
    stmt = parse(sql)
    tree = stmt.tree
    if tree is None:
        raise stmt.unparsed()
    if not isinstance(tree, exp.Create) or str(tree.args.get("kind")).upper() != "TABLE":
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem="not a CREATE TABLE statement")
    return from_create_tree(tree, default_schema, sql)


@dataclass(frozen=True)
class ColumnSpec:
    """A parsed column definition and the keys written inline on it."""

    column: Column
    primary: bool = False
    unique: bool = False


def from_create_tree(tree: exp.Create, default_schema: str, sql: str) -> TableSchema:
    """The TableSchema a parsed CREATE TABLE (with a column list) describes."""
    body = tree.this
    if tree.args.get("expression") is not None:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem="CREATE TABLE ... SELECT is not supported")
    if not isinstance(body, exp.Schema):
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem="CREATE TABLE without a column list")
    table = body.this
    charset, collation = table_options(tree.args.get("properties"))
    empty = TableSchema(table.db or default_schema, table.name, (), charset=charset,
                        collation=collation)
    specs = [column_spec(e, sql) for e in body.expressions if isinstance(e, exp.ColumnDef)]
    schema = _with_columns(empty, specs, sql)
    for element in body.expressions:
        if not isinstance(element, exp.ColumnDef):
            schema = add_key_element(schema, element, sql)
    return schema


def _with_columns(schema: TableSchema, specs: list[ColumnSpec], sql: str) -> TableSchema:
    names: set[str] = set()
    for spec in specs:
        if spec.column.name.lower() in names:
            raise ERR_SCHEMA_DUPLICATE_OBJECT(sql=sql, kind="column", name=spec.column.name,
                                              table=schema.qualified)
        names.add(spec.column.name.lower())
    schema = replace(schema, columns=tuple(s.column for s in specs))
    for spec in specs:
        schema = add_inline_keys(schema, spec, sql)
    return schema


def add_inline_keys(schema: TableSchema, spec: ColumnSpec, sql: str) -> TableSchema:
    """Add the PRIMARY KEY / UNIQUE written on a column definition."""
    name = spec.column.name
    if spec.primary:
        schema = add_key(schema, Index("PRIMARY", (name,), unique=True), sql)
    if spec.unique:
        schema = add_key(schema, Index(auto_index_name(schema, name), (name,), unique=True), sql)
    return schema


def table_options(properties: exp.Expr | None) -> tuple[str, str]:
    """(charset, collation) from CREATE TABLE's options; other options are ignored."""
    found = {_TABLE_OPTIONS[type(p)]: p.this.name.lower()
             for p in (properties.expressions if properties else ()) if type(p) in _TABLE_OPTIONS}
    return found.get("charset", ""), found.get("collation", "")


_TABLE_OPTIONS: dict[type, str] = {exp.CharacterSetProperty: "charset",
                                   exp.CollateProperty: "collation"}


def column_spec(definition: exp.ColumnDef, sql: str) -> ColumnSpec:
    """A column definition's Column and inline keys; unknown attributes are refused."""
    kind = definition.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"column `{definition.name}` has no type")
    type_text, unsigned = parse_type(kind, sql)
    attrs: dict[str, Any] = {"name": definition.name, "type": type_text, "unsigned": unsigned}
    for constraint in definition.constraints:
        handler = _CONSTRAINTS.get(type(constraint.kind))
        if handler is None:
            raise ERR_SCHEMA_UNSUPPORTED(
                sql=sql, problem=f"column attribute {constraint.sql('mysql')} is not supported")
        handler(attrs, constraint.kind)
    primary, unique = attrs.pop("primary", False), attrs.pop("unique", False)
    return ColumnSpec(Column(**attrs), primary, unique)


def default_value(node: exp.Expr) -> tuple[str | None, bool]:
    """A DEFAULT clause as (value, is_expression): literals unquoted, NULL as None."""
    if isinstance(node, exp.Null):
        return None, False
    if isinstance(node, exp.Literal):
        return node.name, False
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return f"-{node.this.name}", False
    if isinstance(node, exp.Boolean):
        return ("1" if node.this else "0"), False
    return expression_text(node), True


def expression_text(node: exp.Expr) -> str:
    """An SQL expression as MySQL takes it; NOW() and friends read as CURRENT_TIMESTAMP."""
    if isinstance(node, exp.CurrentTimestamp) or (
            isinstance(node, exp.Anonymous) and node.name.upper() in _NOW_ALIASES):
        precision = node.this if isinstance(node, exp.CurrentTimestamp) else (
            node.expressions[0] if node.expressions else None)
        return f"CURRENT_TIMESTAMP({precision.name})" if precision else "CURRENT_TIMESTAMP"
    return node.sql("mysql", identify=True)


_NOW_ALIASES = frozenset({"NOW", "LOCALTIME", "LOCALTIMESTAMP", "CURRENT_TIMESTAMP"})


def _set(key: str, value: Callable[[exp.Expr], Any]) -> Callable[
        [dict[str, Any], exp.Expr], None]:
    def handler(attrs: dict[str, Any], kind: exp.Expr) -> None:
        """Store the attribute's value."""
        attrs[key] = value(kind)
    return handler


def _default(attrs: dict[str, Any], kind: exp.Expr) -> None:
    attrs["default"], attrs["default_expr"] = default_value(kind.this)


def _generated(attrs: dict[str, Any], kind: exp.Expr) -> None:
    body = kind.this.this if isinstance(kind.this, exp.Paren) else kind.this
    attrs["generated"], attrs["stored"] = expression_text(body), bool(kind.args.get("persisted"))


def _ignore(attrs: dict[str, Any], kind: exp.Expr) -> None:
    """Attributes that change neither the rows a column holds nor how they are keyed."""


_CONSTRAINTS: dict[type, Callable[[dict[str, Any], exp.Expr], None]] = {
    exp.NotNullColumnConstraint: _set("nullable", lambda k: bool(k.args.get("allow_null"))),
    exp.DefaultColumnConstraint: _default,
    exp.AutoIncrementColumnConstraint: _set("auto_increment", lambda k: True),
    exp.CharacterSetColumnConstraint: _set("charset", lambda k: k.this.name.lower()),
    exp.CollateColumnConstraint: _set("collation", lambda k: k.this.name.lower()),
    exp.CommentColumnConstraint: _set("comment", lambda k: k.this.name),
    exp.OnUpdateColumnConstraint: _set("on_update", lambda k: expression_text(k.this)),
    exp.PrimaryKeyColumnConstraint: _set("primary", lambda k: True),
    exp.UniqueColumnConstraint: _set("unique", lambda k: True),
    exp.ComputedColumnConstraint: _generated,
    exp.ZeroFillColumnConstraint: _set("unsigned", lambda k: True),
    exp.InvisibleColumnConstraint: _ignore,
    exp.CheckColumnConstraint: _ignore,
    exp.Reference: _ignore,
}


# --- keys ----------------------------------------------------------------------------------


def add_key_element(schema: TableSchema, element: exp.Expr, sql: str,
                    name: str = "") -> TableSchema:
    """Add a table-level key definition (CREATE TABLE element or ALTER ... ADD)."""
    handler = _KEY_ELEMENTS.get(type(element))
    if handler is None:
        raise ERR_SCHEMA_UNSUPPORTED(
            sql=sql, problem=f"table element {element.sql('mysql')} is not supported")
    return handler(schema, element, sql, name)


def _primary(schema: TableSchema, element: exp.Expr, sql: str, name: str) -> TableSchema:
    columns, lengths = key_parts(element.expressions, sql)
    return add_key(schema, Index("PRIMARY", columns, lengths, unique=True), sql)


def _unique(schema: TableSchema, element: exp.Expr, sql: str, name: str) -> TableSchema:
    body = element.this
    parts = body.expressions if isinstance(body, exp.Schema) else []
    columns, lengths = key_parts(parts, sql)
    given = body.this.name if isinstance(body, exp.Schema) and body.this else name
    index_name = given or auto_index_name(schema, columns[0])
    return add_key(schema, Index(index_name, columns, lengths, unique=True), sql)


def _plain(schema: TableSchema, element: exp.Expr, sql: str, name: str) -> TableSchema:
    columns, lengths = key_parts(element.expressions, sql)
    kind = str(element.args.get("kind") or "").upper()
    index_name = element.name or name or auto_index_name(schema, columns[0])
    return add_key(schema, Index(index_name, columns, lengths, kind=kind), sql)


def _constraint(schema: TableSchema, element: exp.Expr, sql: str,
                name: str) -> TableSchema:
    for inner in element.expressions:
        schema = add_key_element(schema, inner, sql, element.name)
    return schema


def _no_key(schema: TableSchema, element: exp.Expr, sql: str, name: str) -> TableSchema:
    return schema


_KEY_ELEMENTS: dict[type, Callable[[TableSchema, Any, str, str], TableSchema]] = {
    exp.PrimaryKey: _primary,
    exp.UniqueColumnConstraint: _unique,
    exp.IndexColumnConstraint: _plain,
    exp.Constraint: _constraint,
    exp.ForeignKey: _no_key,
    exp.CheckColumnConstraint: _no_key,
}


def key_parts(parts: Iterable[exp.Expr], sql: str) -> tuple[tuple[str, ...],
                                                                   tuple[int | None, ...]]:
    """(columns, prefix lengths) of a key's parts; functional key parts are refused."""
    pairs = [_key_part(p, sql) for p in parts]
    if not pairs:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem="a key without columns")
    return tuple(c for c, _ in pairs), tuple(n for _, n in pairs)


def _key_part(part: exp.Expr, sql: str) -> tuple[str, int | None]:
    if isinstance(part, exp.Ordered):
        return _key_part(part.this, sql)
    if isinstance(part, exp.Column | exp.Identifier):
        return part.name, None
    if isinstance(part, exp.ColumnPrefix):
        return part.this.name, int(part.expression.name)
    if isinstance(part, exp.Anonymous) and len(part.expressions) == 1:
        return part.name, int(part.expressions[0].name)
    raise ERR_SCHEMA_UNSUPPORTED(
        sql=sql, problem=f"key part {part.sql('mysql')} is not supported (functional key part)")


def add_key(schema: TableSchema, index: Index, sql: str) -> TableSchema:
    """Add a key whose name is free and whose columns exist; PK columns become NOT NULL."""
    if schema.index(index.name) is not None:
        raise ERR_SCHEMA_DUPLICATE_OBJECT(sql=sql, kind="index", name=index.name,
                                          table=schema.qualified)
    found = [schema.column(name) for name in index.columns]
    for name, column in zip(index.columns, found, strict=True):
        if column is None:
            raise ERR_SCHEMA_UNKNOWN_OBJECT(sql=sql, kind="column", name=name,
                                            table=schema.qualified)
    index = replace(index, columns=tuple(c.name for c in found if c is not None))
    if index.name != "PRIMARY":
        return replace(schema, indexes=(*schema.indexes, index))
    columns = tuple(replace(c, nullable=False) if index.has(c.name) else c
                    for c in schema.columns)
    return replace(schema, columns=columns, primary=index)


def auto_index_name(schema: TableSchema, column: str) -> str:
    """MySQL's name for an unnamed key: its first column, then `_2`, `_3`... while taken."""
    name, n = column, 2
    while schema.index(name) is not None or name.upper() == "PRIMARY":
        name, n = f"{column}_{n}", n + 1
    return name
