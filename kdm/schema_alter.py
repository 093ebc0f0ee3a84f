"""ALTER TABLE, CREATE INDEX and DROP INDEX applied to a TableSchema, as MySQL applies them.

Clauses run left to right; table options (CHARACTER SET, COLLATE) first, so columns added
by the same statement inherit the new default. Table options that change neither columns
nor keys (ENGINE, COMMENT, AUTO_INCREMENT=, ROW_FORMAT, ALGORITHM/LOCK, ORDER BY, FORCE,
partition management, CHECK and FOREIGN KEY constraints, index visibility) leave the
structure as it is. Everything else is refused with a coded error naming the statement,
never applied halfway: `apply` returns a new value and the caller keeps the old one.

Refused like TiDB (the target) refuses them, so the task pauses before the downstream is
touched: ADD COLUMN with an inline PRIMARY KEY / UNIQUE / AUTO_INCREMENT, and MODIFY /
CHANGE adding one of those.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from kdm.errors import (
    ERR_SCHEMA_DUPLICATE_OBJECT,
    ERR_SCHEMA_UNKNOWN_OBJECT,
    ERR_SCHEMA_UNSUPPORTED,
    KdmError,
)
from kdm.schema_create import ColumnSpec, add_key_element, column_spec, default_value
from kdm.schema_sql import Statement, alter_clauses, clause_words, parse, parse_tree, tokenize
from kdm.schema_table import TEXT_TYPES, Column, Index, TableSchema

Handler = Callable[[TableSchema, Any, str], TableSchema]


def apply(schema: TableSchema, ddl_sql: str) -> TableSchema:
    """The structure after an ALTER TABLE / CREATE INDEX / DROP INDEX on `schema`.

    The statement's table name is not checked against `schema` (the tracker picks the table);
    RENAME TO an unqualified name keeps the schema's database."""
    return apply_statement(schema, parse(ddl_sql))


def apply_statement(schema: TableSchema, stmt: Statement) -> TableSchema:
    """`apply` for an already parsed statement."""
    if isinstance(stmt.tree, exp.Alter):
        return _apply_tree(schema, stmt.tree, stmt.sql)
    if stmt.tree is None and stmt.words[:2] == ("ALTER", "TABLE"):
        return _apply_clauses(schema, stmt)
    if stmt.tree is None:
        raise stmt.unparsed()
    raise ERR_SCHEMA_UNSUPPORTED(
        sql=stmt.sql, problem="not an ALTER TABLE, CREATE INDEX or DROP INDEX statement")


def _apply_tree(schema: TableSchema, tree: exp.Alter, sql: str) -> TableSchema:
    if str(tree.args.get("kind") or "").upper() != "TABLE":
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem="only ALTER TABLE changes a table")
    for option in tree.args.get("options") or ():
        schema = _dispatch(_OPTIONS, schema, option, sql, "table option")
    for action in tree.args.get("actions") or ():
        schema = _dispatch(_ACTIONS, schema, action, sql, "clause")
    return schema


def _dispatch(table: dict[type, Handler], schema: TableSchema, node: exp.Expr, sql: str,
              what: str) -> TableSchema:
    handler = table.get(type(node))
    if handler is None:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"{what} `{node.sql('mysql')}` "
                                                      "is not supported")
    return handler(schema, node, sql)


def _unchanged(schema: TableSchema, node: Any, sql: str) -> TableSchema:
    return schema


# --- columns -------------------------------------------------------------------------------


def _add_column(schema: TableSchema, definition: exp.ColumnDef, sql: str) -> TableSchema:
    spec = column_spec(definition, sql)
    if schema.column(spec.column.name) is not None:
        if definition.args.get("exists"):
            return schema
        raise _duplicate(schema, "column", spec.column.name, sql)
    _refuse_inline_keys(schema, spec, "add", False, sql)
    at = _position(schema, definition.args.get("position"), len(schema.columns), sql)
    columns = list(schema.columns)
    columns.insert(at, spec.column)
    return replace(schema, columns=tuple(columns))


def _refuse_inline_keys(schema: TableSchema, spec: ColumnSpec, verb: str, had_auto: bool,
                        sql: str) -> None:
    # the message is TiDB's, which DM shows for the same statement
    found = [name for name, present in (("PRIMARY KEY", spec.primary),
                                        ("UNIQUE KEY", spec.unique),
                                        ("AUTO_INCREMENT", spec.column.auto_increment
                                         and not had_auto)) if present]
    if found:
        raise ERR_SCHEMA_UNSUPPORTED(
            sql=sql, problem=f"unsupported {verb} column '{spec.column.name}' constraint "
                             f"{found[0]} when altering '{schema.schema}.{schema.table}'")


def _position(schema: TableSchema, position: exp.Expr | None, default: int,
              sql: str) -> int:
    if position is None:
        return default
    if str(position.args.get("position")).upper() == "FIRST":
        return 0
    return _require_column(schema, position.this.name, sql) + 1


def _require_column(schema: TableSchema, name: str, sql: str) -> int:
    at = schema.position(name)
    if at is None:
        raise ERR_SCHEMA_UNKNOWN_OBJECT(sql=sql, kind="column", name=name,
                                        table=schema.qualified)
    return at


def _duplicate(schema: TableSchema, kind: str, name: str, sql: str) -> KdmError:
    return ERR_SCHEMA_DUPLICATE_OBJECT(sql=sql, kind=kind, name=name, table=schema.qualified)


def _drop(schema: TableSchema, drop: exp.Drop, sql: str) -> TableSchema:
    kind = str(drop.args.get("kind") or "").upper()
    handler = _DROPS.get(kind)
    if handler is None:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"DROP {kind} is not supported")
    for target in drop.args.get("tables") or [drop.this]:
        schema = handler(schema, (target.name, bool(drop.args.get("exists"))), sql)
    return schema


def _drop_column(schema: TableSchema, target: tuple[str, bool], sql: str) -> TableSchema:
    name, if_exists = target
    if schema.column(name) is None and if_exists:
        return schema
    _require_column(schema, name, sql)
    if len(schema.columns) == 1:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem="cannot drop the only column of a table")
    columns = tuple(c for c in schema.columns if c.name.lower() != name.lower())
    return _map_keys(replace(schema, columns=columns), lambda i: i.without(name))


def _map_keys(schema: TableSchema, change: Callable[[Index], Index | None]) -> TableSchema:
    primary = change(schema.primary) if schema.primary else None
    indexes = tuple(i for i in map(change, schema.indexes) if i is not None)
    return replace(schema, primary=primary, indexes=indexes)


def _modify_column(schema: TableSchema, action: exp.ModifyColumn, sql: str) -> TableSchema:
    definition = action.this
    renamed_from = action.args.get("rename_from")
    at = _require_column(schema, renamed_from.name if renamed_from else definition.name, sql)
    old, spec = schema.columns[at], column_spec(definition, sql)
    _refuse_inline_keys(schema, spec, "modify", old.auto_increment, sql)
    new = spec.column
    if new.name.lower() != old.name.lower() and schema.column(new.name) is not None:
        raise _duplicate(schema, "column", new.name, sql)
    if schema.primary and schema.primary.has(old.name):
        new = replace(new, nullable=False)
    rest = [c for i, c in enumerate(schema.columns) if i != at]
    position = _position(replace(schema, columns=tuple(rest)), definition.args.get("position"),
                         at, sql)
    rest.insert(position, new)
    return _rename_in_keys(replace(schema, columns=tuple(rest)), old.name, new.name)


def _rename_in_keys(schema: TableSchema, old: str, new: str) -> TableSchema:
    return _map_keys(schema, lambda i: i.with_column_renamed(old, new))


def _rename_column(schema: TableSchema, action: exp.RenameColumn, sql: str) -> TableSchema:
    old, new = action.this.name, action.args["to"].name
    at = _require_column(schema, old, sql)
    if new.lower() != old.lower() and schema.column(new) is not None:
        raise _duplicate(schema, "column", new, sql)
    columns = list(schema.columns)
    columns[at] = replace(columns[at], name=new)
    return _rename_in_keys(replace(schema, columns=tuple(columns)), old, new)


def _alter_column(schema: TableSchema, action: exp.AlterColumn, sql: str) -> TableSchema:
    at = _require_column(schema, action.name, sql)
    column = schema.columns[at]
    if action.args.get("drop"):
        column = replace(column, default=None, default_expr=False)
    elif action.args.get("default") is not None:
        value, is_expr = default_value(action.args["default"])
        column = replace(column, default=value, default_expr=is_expr)
    elif action.args.get("visible") is None:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"`{action.sql('mysql')}` is not "
                                                      "supported")
    columns = list(schema.columns)
    columns[at] = column
    return replace(schema, columns=tuple(columns))


# --- keys ----------------------------------------------------------------------------------


def _add_constraint(schema: TableSchema, action: exp.AddConstraint, sql: str) -> TableSchema:
    for element in action.expressions:
        schema = add_key_element(schema, element, sql)
    return schema


def _drop_index(schema: TableSchema, target: tuple[str, bool], sql: str) -> TableSchema:
    name, if_exists = target
    index = schema.index(name)
    if index is None:
        if if_exists:
            return schema
        raise ERR_SCHEMA_UNKNOWN_OBJECT(sql=sql, kind="index", name=name, table=schema.qualified)
    if index is schema.primary:
        return replace(schema, primary=None)
    return replace(schema, indexes=tuple(i for i in schema.indexes if i is not index))


def _drop_constraint(schema: TableSchema, target: tuple[str, bool], sql: str) -> TableSchema:
    # DROP CONSTRAINT names a UNIQUE key, a FOREIGN KEY or a CHECK; only the first is tracked
    return _drop_index(schema, (target[0], True), sql)


def _drop_primary(schema: TableSchema, action: exp.Expr, sql: str) -> TableSchema:
    return _drop_index(schema, ("PRIMARY", False), sql)


def _no_drop(schema: TableSchema, target: tuple[str, bool], sql: str) -> TableSchema:
    return schema


def _rename_index(schema: TableSchema, action: exp.RenameIndex, sql: str) -> TableSchema:
    old, new = action.this.name, action.args["to"].name
    index = schema.index(old)
    if index is None or index is schema.primary:
        raise ERR_SCHEMA_UNKNOWN_OBJECT(sql=sql, kind="index", name=old, table=schema.qualified)
    other = schema.index(new)
    if other is not None and other is not index:
        raise _duplicate(schema, "index", new, sql)
    return replace(schema, indexes=tuple(replace(i, name=new) if i is index else i
                                         for i in schema.indexes))


# --- table ---------------------------------------------------------------------------------


def _rename_table(schema: TableSchema, action: exp.AlterRename, sql: str) -> TableSchema:
    table = action.this
    return schema.renamed(table.db or schema.schema, table.name)


def _table_charset(schema: TableSchema, option: exp.Expr, sql: str) -> TableSchema:
    charset = option.this.name.lower()
    if charset == schema.charset:
        return schema
    return replace(_pin_charsets(schema), charset=charset, collation="")


def _table_collation(schema: TableSchema, option: exp.Expr, sql: str) -> TableSchema:
    collation = option.this.name.lower()
    if collation == schema.collation:
        return schema
    return replace(_pin_charsets(schema), collation=collation)


def _pin_charsets(schema: TableSchema) -> TableSchema:
    """Write the table default into the text columns that inherit it, before it changes.

    MySQL keeps existing columns in their character set when only the default changes."""
    def pinned(column: Column) -> Column:
        """The column with the inherited charset and collation written out."""
        if column.base_type not in TEXT_TYPES:
            return column
        inherits = column.charset in ("", schema.charset)
        return replace(column, charset=column.charset or schema.charset,
                       collation=column.collation or (schema.collation if inherits else ""))
    return replace(schema, columns=tuple(pinned(c) for c in schema.columns))


_ACTIONS: dict[type, Handler] = {
    exp.ColumnDef: _add_column,
    exp.Drop: _drop,
    exp.DropPrimaryKey: _drop_primary,
    exp.ModifyColumn: _modify_column,
    exp.RenameColumn: _rename_column,
    exp.AlterColumn: _alter_column,
    exp.AddConstraint: _add_constraint,
    exp.RenameIndex: _rename_index,
    exp.AlterRename: _rename_table,
    exp.AlterIndex: _unchanged,
    exp.ForceProperty: _unchanged,
}
_DROPS: dict[str, Callable[[TableSchema, tuple[str, bool], str], TableSchema]] = {
    "COLUMN": _drop_column, "INDEX": _drop_index, "CONSTRAINT": _drop_constraint,
    "FOREIGN KEY": _no_drop, "CHECK": _no_drop,
}
_OPTIONS: dict[type, Handler] = {
    exp.CharacterSetProperty: _table_charset,
    exp.CollateProperty: _table_collation,
    **{kind: _unchanged for kind in (
        exp.EngineProperty, exp.SchemaCommentProperty, exp.AutoIncrementProperty,
        exp.RowFormatProperty, exp.AlgorithmProperty, exp.LockProperty, exp.Order,
        exp.Property)},
}


# --- clauses sqlglot leaves unparsed -------------------------------------------------------


def _apply_clauses(schema: TableSchema, stmt: Statement) -> TableSchema:
    _, clauses = alter_clauses(stmt)
    for clause in clauses:
        if clause_words(clause, stmt.sql, 2) in _PARTITIONING:
            break  # partition options come last and may hold commas of their own
        schema = _apply_clause(schema, clause, stmt.sql)
    return schema


def _apply_clause(schema: TableSchema, clause: str, sql: str) -> TableSchema:
    guard = _if_exists_guard(tokenize(clause, sql))
    if guard is not None:
        return _apply_guarded(schema, clause, guard, sql)
    words = clause_words(clause, sql)
    for prefix, handler in _CLAUSES:
        if words[:len(prefix)] == prefix:
            return handler(schema, clause, sql)
    tree = parse_tree(f"ALTER TABLE _t {clause}", sql)
    if not isinstance(tree, exp.Alter):
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"`{clause.strip()}` is not supported")
    return _apply_tree(schema, tree, sql)


def _if_exists_guard(tokens: list[Token]) -> tuple[int, int, bool] | None:
    """(start, end, negated) of an `IF [NOT] EXISTS` among a clause's first words."""
    for i, token in enumerate(tokens[:5]):
        follow = [t.token_type for t in tokens[i + 1:i + 3]]
        if token.token_type == TokenType.VAR and token.text.upper() == "IF" and follow:
            negated = follow[0] == TokenType.NOT
            if follow[int(negated):int(negated) + 1] == [TokenType.EXISTS]:
                return token.start, tokens[i + 1 + int(negated)].end + 1, negated
    return None


def _apply_guarded(schema: TableSchema, clause: str, guard: tuple[int, int, bool],
                   sql: str) -> TableSchema:
    """Apply a clause guarded by IF [NOT] EXISTS; a no-op when the object is missing / there.

    MariaDB has CHANGE/MODIFY COLUMN IF EXISTS and ADD INDEX IF NOT EXISTS; sqlglot does not."""
    start, end, negated = guard
    try:
        return _apply_clause(schema, clause[:start] + clause[end:], sql)
    except KdmError as err:
        tolerated = ERR_SCHEMA_DUPLICATE_OBJECT if negated else ERR_SCHEMA_UNKNOWN_OBJECT
        if err.spec is not tolerated:
            raise
        return schema


_CONVERT = re.compile(r"CONVERT\s+TO\s+(?:CHARACTER\s+SET|CHARSET)\s*=?\s*['\"`]?(\w+)['\"`]?"
                      r"(?:\s+COLLATE\s*=?\s*['\"`]?(\w+)['\"`]?)?\s*$", re.IGNORECASE)
_RENAME_AS = re.compile(r"^\s*RENAME\s+AS\s+", re.IGNORECASE)
_MAXLEN = {"ascii": 1, "latin1": 1, "utf8": 3, "utf8mb3": 3, "utf8mb4": 4, "gbk": 2,
           "gb18030": 4, "big5": 2, "ucs2": 2, "utf16": 4, "utf32": 4}
_TEXT_BYTES = (("tinytext", 255), ("text", 65535), ("mediumtext", 16777215),
               ("longtext", 4294967295))


def _convert(schema: TableSchema, clause: str, sql: str) -> TableSchema:
    match = _CONVERT.match(clause.strip())
    if match is None or match[1].lower() in ("default", "binary"):
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"`{clause.strip()}` is not supported")
    charset, collation = match[1].lower(), (match[2] or "").lower()
    columns = tuple(_converted(schema, c, charset, collation, sql) for c in schema.columns)
    return replace(schema, columns=columns, charset=charset, collation=collation)


def _converted(schema: TableSchema, column: Column, charset: str, collation: str,
               sql: str) -> Column:
    if column.base_type not in TEXT_TYPES:
        return column
    return replace(column, type=_text_type_for(schema, column, charset, sql), charset=charset,
                   collation=collation)


def _text_type_for(schema: TableSchema, column: Column, charset: str, sql: str) -> str:
    """MySQL widens TEXT types on conversion so they keep their length in characters."""
    sizes = dict(_TEXT_BYTES)
    if column.base_type not in sizes:
        return column.type
    old, new = _MAXLEN.get(column.charset or schema.charset), _MAXLEN.get(charset)
    if old is None or new is None:
        raise ERR_SCHEMA_UNSUPPORTED(
            sql=sql, problem=f"cannot tell how column `{column.name}` grows from character set "
                             f"'{column.charset or schema.charset}' to '{charset}'")
    needed = max(sizes[column.base_type] // old * new, sizes[column.base_type])
    return next((name for name, size in _TEXT_BYTES if size >= needed), "longtext")


def _add_columns(schema: TableSchema, clause: str, sql: str) -> TableSchema:
    """ADD [COLUMN] (a int, b int): the parenthesized list as CREATE TABLE reads it."""
    start = clause.index("(")
    tree = parse_tree(f"CREATE TABLE _t {clause[start:]}", sql)
    elements = tree.this.expressions if isinstance(tree.this, exp.Schema) else []
    if not elements or not all(isinstance(e, exp.ColumnDef) for e in elements):
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"`{clause.strip()}` is not supported")
    for definition in elements:
        schema = _add_column(schema, definition, sql)
    return schema


def _rename_as(schema: TableSchema, clause: str, sql: str) -> TableSchema:
    """RENAME AS t2, which sqlglot reads only as RENAME [TO] t2."""
    return _apply_clause(schema, _RENAME_AS.sub("RENAME TO ", clause, count=1), sql)


def _no_structure_change(schema: TableSchema, clause: str, sql: str) -> TableSchema:
    return schema


_PARTITIONING = frozenset({
    *((verb, "PARTITION") for verb in ("ADD", "DROP", "TRUNCATE", "COALESCE", "REORGANIZE",
                                       "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD",
                                       "REPAIR", "DISCARD", "IMPORT")),
    ("REMOVE", "PARTITIONING"), ("PARTITION", "BY"),
})
_NO_CHANGE_PREFIXES = (
    ("DISCARD", "TABLESPACE"), ("IMPORT", "TABLESPACE"), ("ENABLE", "KEYS"),
    ("DISABLE", "KEYS"), ("ADD", "CHECK"), ("ORDER", "BY"),
)
_CLAUSES: tuple[tuple[tuple[str, ...], Callable[[TableSchema, str, str], TableSchema]], ...] = (
    (("CONVERT", "TO"), _convert),
    (("ADD", "COLUMN", "("), _add_columns),
    (("ADD", "("), _add_columns),
    (("RENAME", "AS"), _rename_as),
    *((prefix, _no_structure_change) for prefix in _NO_CHANGE_PREFIXES),
)
