"""Table structures as values: what the schema tracker holds for one upstream table.

A `TableSchema` is frozen; every change (an ALTER, a rename) builds a new one. Column types
are kept as SHOW CREATE TABLE prints them, lower-case, with UNSIGNED as a separate flag:
`int(11)`, `decimal(10,0)`, `varchar(300)`, `enum('a','b')`, `timestamp(3)`. A nullable
column without a DEFAULT clause has `default=None`, the same as `DEFAULT NULL`.

Dict form (JSON, the checkpoint's table_info)::

    {"schema": "db", "table": "t", "charset": "utf8mb4", "collation": "",
     "columns": [{"name": "id", "type": "bigint(20)", "unsigned": true, "nullable": false,
                  "default": null, "default_expr": false, "auto_increment": true,
                  "charset": "", "collation": "", "generated": "", "stored": false,
                  "on_update": "", "comment": ""}, ...],
     "primary": {"name": "PRIMARY", "columns": ["id"], "lengths": [null], "unique": true,
                 "kind": ""} | null,
     "indexes": [{"name": "uk_email", "columns": ["email"], "lengths": [null],
                  "unique": true, "kind": ""}, ...]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from kdm.errors import ERR_SCHEMA_LOAD
from kdm.schema_sql import quote_name, quote_text

TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext",
                        "enum", "set"})


@dataclass(frozen=True)
class Column:
    """One column: type text as SHOW CREATE TABLE prints it, and the attributes that matter."""

    name: str
    type: str
    unsigned: bool = False
    nullable: bool = True
    default: str | None = None
    default_expr: bool = False
    auto_increment: bool = False
    charset: str = ""
    collation: str = ""
    generated: str = ""
    stored: bool = False
    on_update: str = ""
    comment: str = ""

    @property
    def base_type(self) -> str:
        """The type name without parameters: `varchar` for `varchar(300)`."""
        return self.type.split("(", 1)[0]

    def render(self) -> str:
        """The column definition as CREATE TABLE takes it."""
        parts = [quote_name(self.name), self.type]
        parts += ["unsigned"] if self.unsigned else []
        parts += [f"CHARACTER SET {self.charset}"] if self.charset else []
        parts += [f"COLLATE {self.collation}"] if self.collation else []
        if self.generated:
            parts.append(f"GENERATED ALWAYS AS ({self.generated}) "
                         f"{'STORED' if self.stored else 'VIRTUAL'}")
        parts.append(self._render_null_default())
        parts += ["AUTO_INCREMENT"] if self.auto_increment else []
        parts += [f"ON UPDATE {self.on_update}"] if self.on_update else []
        parts += [f"COMMENT {quote_text(self.comment)}"] if self.comment else []
        return " ".join(p for p in parts if p)

    def _render_null_default(self) -> str:
        null = "NULL" if self.base_type == "timestamp" else ""
        if not self.nullable:
            null = "NOT NULL"
        if self.generated or (self.default is None and not self.nullable):
            return null
        value = "NULL" if self.default is None else self.default
        value = value if self.default_expr or self.default is None else quote_text(value)
        return f"{null} DEFAULT {value}".strip()

    def to_dict(self) -> dict[str, Any]:
        """The dict form (see the module docstring)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        """Inverse of `to_dict`; a missing optional field takes its default."""
        return cls(**_checked(cls, data, ("name", "type")))


@dataclass(frozen=True)
class Index:
    """A key: PRIMARY, a UNIQUE key or a plain index; `lengths` holds prefix lengths or None."""

    name: str
    columns: tuple[str, ...]
    lengths: tuple[int | None, ...] = ()
    unique: bool = False
    kind: str = ""

    def __post_init__(self) -> None:
        if len(self.lengths) != len(self.columns):
            object.__setattr__(self, "lengths", (None,) * len(self.columns))

    def render(self) -> str:
        """The key definition as CREATE TABLE takes it."""
        parts = ", ".join(quote_name(c) + (f"({n})" if n else "")
                          for c, n in zip(self.columns, self.lengths, strict=True))
        if self.name == "PRIMARY":
            return f"PRIMARY KEY ({parts})"
        head = "UNIQUE KEY" if self.unique else f"{self.kind} KEY".strip()
        return f"{head} {quote_name(self.name)} ({parts})"

    def has(self, column: str) -> bool:
        """Whether the key includes the column (names compare case-insensitively)."""
        return column.lower() in (c.lower() for c in self.columns)

    def without(self, column: str) -> Index | None:
        """The key with a dropped column removed; None when no column is left."""
        kept = [(c, n) for c, n in zip(self.columns, self.lengths, strict=True)
                if c.lower() != column.lower()]
        if not kept:
            return None
        return replace(self, columns=tuple(c for c, _ in kept), lengths=tuple(n for _, n in kept))

    def with_column_renamed(self, old: str, new: str) -> Index:
        """The key after a column rename."""
        return replace(self, columns=tuple(new if c.lower() == old.lower() else c
                                           for c in self.columns))

    def to_dict(self) -> dict[str, Any]:
        """The dict form (see the module docstring)."""
        return {"name": self.name, "columns": list(self.columns), "lengths": list(self.lengths),
                "unique": self.unique, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Index:
        """Inverse of `to_dict`."""
        values = _checked(cls, {**data, "columns": tuple(data.get("columns") or ()),
                                "lengths": tuple(data.get("lengths") or ())}, ("name", "columns"))
        return cls(**values)


@dataclass(frozen=True)
class TableSchema:
    """The structure of one upstream table at the binlog position being synced."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    primary: Index | None = None
    indexes: tuple[Index, ...] = ()
    charset: str = ""
    collation: str = ""

    @property
    def qualified(self) -> str:
        """`schema`.`table`, quoted."""
        return f"{quote_name(self.schema)}.{quote_name(self.table)}"

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary key's columns; () when there is none."""
        return self.primary.columns if self.primary else ()

    @property
    def unique_keys(self) -> dict[str, tuple[str, ...]]:
        """UNIQUE keys other than the primary key: name -> columns."""
        return {i.name: i.columns for i in self.indexes if i.unique}

    @property
    def other_indexes(self) -> dict[str, tuple[str, ...]]:
        """Non-unique indexes (plain, FULLTEXT, SPATIAL): name -> columns."""
        return {i.name: i.columns for i in self.indexes if not i.unique}

    def column(self, name: str) -> Column | None:
        """The column of that name (case-insensitive), or None."""
        position = self.position(name)
        return None if position is None else self.columns[position]

    def position(self, name: str) -> int | None:
        """The 0-based position of the named column, or None."""
        lowered = name.lower()
        return next((i for i, c in enumerate(self.columns) if c.name.lower() == lowered), None)

    def index(self, name: str) -> Index | None:
        """The key of that name (PRIMARY included, case-insensitive), or None."""
        lowered = name.lower()
        return next((i for i in self.all_keys() if i.name.lower() == lowered), None)

    def all_keys(self) -> tuple[Index, ...]:
        """Every key: the primary key first, then the others in definition order."""
        return ((self.primary,) if self.primary else ()) + self.indexes

    def key_columns(self) -> tuple[str, ...]:
        """The columns that identify a row: the PK, else the first all-NOT-NULL UNIQUE key."""
        if self.primary:
            return self.primary.columns
        for index in self.indexes:
            if index.unique and all(not self._nullable(c) for c in index.columns):
                return index.columns
        return ()

    def all_unique_keys(self) -> tuple[tuple[str, ...], ...]:
        """The PK and every UNIQUE key, for causality: changes meeting on any must stay ordered."""
        return tuple(i.columns for i in self.all_keys() if i.unique)

    def _nullable(self, name: str) -> bool:
        column = self.column(name)
        return column is None or column.nullable

    def renamed(self, schema: str, table: str) -> TableSchema:
        """The same structure under another name."""
        return replace(self, schema=schema, table=table)

    @classmethod
    def from_create(cls, sql: str, default_schema: str) -> TableSchema:
        """Parse a CREATE TABLE (MySQL/MariaDB dialect); LIKE and AS SELECT are refused."""
        # the parser builds TableSchema values, so it is imported where it is used
        from kdm.schema_create import parse_create
        return parse_create(sql, default_schema)

    def to_create(self, qualified: bool = False) -> str:
        """A CREATE TABLE in SHOW CREATE TABLE's layout, which MariaDB, MySQL and TiDB run."""
        lines = [c.render() for c in self.columns] + [i.render() for i in self.all_keys()]
        options = [f"DEFAULT CHARSET={self.charset}"] if self.charset else []
        options += [f"COLLATE={self.collation}"] if self.collation else []
        name = self.qualified if qualified else quote_name(self.table)
        body = ",\n".join("  " + line for line in lines)
        return f"CREATE TABLE {name} (\n{body}\n) {' '.join(options)}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        """The dict form (see the module docstring)."""
        return {"schema": self.schema, "table": self.table, "charset": self.charset,
                "collation": self.collation, "columns": [c.to_dict() for c in self.columns],
                "primary": self.primary.to_dict() if self.primary else None,
                "indexes": [i.to_dict() for i in self.indexes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        """Inverse of `to_dict`; damaged data raises the coded load error."""
        try:
            primary = data.get("primary")
            return cls(str(data["schema"]), str(data["table"]),
                       tuple(Column.from_dict(c) for c in data["columns"]),
                       Index.from_dict(primary) if primary else None,
                       tuple(Index.from_dict(i) for i in data.get("indexes") or ()),
                       str(data.get("charset") or ""), str(data.get("collation") or ""))
        except (KeyError, TypeError, AttributeError) as err:
            raise ERR_SCHEMA_LOAD(err, problem=f"missing or malformed field {err}") from err

    @classmethod
    def from_columns(cls, schema: str, table: str,
                     columns: Sequence[Mapping[str, Any]]) -> TableSchema:
        """The structure a relay row record describes: columns and PK only (no defaults, UKs)."""
        try:
            built = tuple(Column(str(c["name"]), str(c["type"]), bool(c.get("unsigned", False)),
                                 bool(c.get("nullable", True)), charset=str(c.get("charset") or ""))
                          for c in columns)
            pk = tuple(str(c["name"]) for c in columns if c.get("key") == "PRI")
        except (KeyError, TypeError, AttributeError) as err:
            raise ERR_SCHEMA_LOAD(err, problem=f"relay column without {err}") from err
        return cls(schema, table, built, Index("PRIMARY", pk, unique=True) if pk else None)


def _checked(cls: type, data: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    missing = [name for name in required if name not in data]
    if missing:
        raise ERR_SCHEMA_LOAD(problem=f"{cls.__name__} without {', '.join(missing)}")
    types = {f.name: str(f.type) for f in fields(cls)}
    for key, value in data.items():
        valid = _VALID.get(types.get(key, ""))
        if valid is None or not valid(value):
            raise ERR_SCHEMA_LOAD(problem=f"{cls.__name__} field {key!r} = {value!r} is invalid")
    return dict(data)


_VALID: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "str | None": lambda v: v is None or isinstance(v, str),
    "tuple[str, ...]": lambda v: all(isinstance(x, str) for x in v),
    "tuple[int | None, ...]": lambda v: all(x is None or isinstance(x, int) for x in v),
}
