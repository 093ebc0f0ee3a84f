"""The dump unit: which tables a subtask copies, how each is split into chunks, and how a
chunk is read inside the snapshot as ready-to-run multi-row statements.

Values never become Python objects. The upstream renders each row as the SQL text of a
VALUES tuple (`row_sql`): numbers as their exact text (FLOAT through DOUBLE, so no digit is
lost), BIT as its integer, binary strings and spatial values as `X'..'` hex, every other
type through `QUOTE()` after converting to utf8mb4 (temporal values as the server prints
them, zero dates included, TIMESTAMP in UTC), all in one explicit collation, so mixing the
columns' collations never fails. The load unit sends the text on as it is: the same
exactness as `mysqldump`, and Python only moves bytes.

Splitting. A chunk is one downstream transaction of the load unit, about `rows` rows (the
mydumpers setting) or, without it, `min(chunk-filesize, CHUNK_BYTES_CAP)` bytes by the
table's average row length. The split key is the primary key, else a unique key over NOT
NULL columns, as in DM:

- a single integer column: [MIN, MAX] cut into ceil(estimated rows / chunk rows) ranges of
  equal width;
- any other key: keyset boundaries, each `chunk rows` rows after the previous one
  (`ORDER BY key LIMIT 1 OFFSET n`);
- no such key: the whole table is one chunk.

Bounds are SQL literals of the key's values (lower inclusive, upper exclusive), and the
first and last chunks are open, so the chunks cover every key value there is or will be:
the plan is saved with the load checkpoint and a resumed dump reads exactly the same ranges
from a newer snapshot.

Reading. An integer-keyed chunk is read in key steps that hold about `statement-size`
bytes, one `SELECT GROUP_CONCAT(<row>) ... WHERE k >= a AND k < b` per statement, the step
adapting to the bytes each step returned (sparse keys grow it). A result that might have
been cut by `group_concat_max_len`, or is too large for one statement, is read again row by
row. Other chunks stream their rows through an unbuffered cursor and cut a statement every
`statement-size` bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pymysql
from pymysql.cursors import SSCursor

from consumers.applier import CONNECTION_ERRNOS
from consumers.balist import BAList
from kdm.config.task import MydumperConfig
from kdm.errors import ERR_DUMP_TABLE, ERR_DUMP_UPSTREAM
from kdm.schema_sql import quote_name as quote

DEFAULT_STATEMENT_SIZE = 1_000_000  # DM: 200 KB - 1 MB an INSERT; Dumpling's default 1 MB
CHUNK_BYTES_CAP = 8 << 20  # a chunk is held in memory and loaded as one transaction
MAX_CONCAT_STATEMENTS = 8  # a GROUP_CONCAT step above 8 statements' size is read again
FETCH_ROWS = 1000
NO_TABLE_ERRNO = 1146
OS_ERRNOS = 1000  # errors below are the server's operating-system ones (e.g. a tmp file gone)

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
DOUBLE_TYPES = frozenset({"double", "double precision", "real"})
NUMBER_TYPES = INTEGER_TYPES | DOUBLE_TYPES | {"decimal", "numeric", "year"}
DOUBLE_WIDTH = 32  # the longest DOUBLE text, -2.2250738585072014e-308, has 24 characters
BINARY_TYPES = frozenset({
    "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
    "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection", "geomcollection"})
GENERATED_WORDS = ("VIRTUAL", "STORED", "PERSISTENT")


# -- tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One stored column: its name, information_schema DATA_TYPE and character set."""

    name: str
    data_type: str
    charset: str | None = None


@dataclass(frozen=True)
class TableInfo:
    """What dumping one upstream table needs."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    integer_key: bool = False
    rows: int = 0
    avg_row_length: int = 0

    @property
    def name(self) -> tuple[str, str]:
        """(schema, table)."""
        return self.schema, self.table

    @property
    def qualified(self) -> str:
        """`schema`.`table`."""
        return f"{quote(self.schema)}.{quote(self.table)}"


def discover(conn: Any, balist: BAList) -> tuple[list[str], list[TableInfo]]:
    """The schemas and base tables the block & allow list lets through, from
    information_schema (row counts are the server's estimates)."""
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        schemas = sorted(str(s) for (s,) in cur.fetchall() if balist.allows(str(s), ""))
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, IFNULL(TABLE_ROWS, 0), "
                    "IFNULL(AVG_ROW_LENGTH, 0) FROM information_schema.TABLES "
                    "WHERE TABLE_TYPE = 'BASE TABLE'")
        stats = {(str(s), str(t)): (int(r), int(a)) for s, t, r, a in cur.fetchall()
                 if balist.allows(str(s), str(t))}
        if not stats:
            return schemas, []
        marks = ", ".join(["%s"] * len({s for s, _ in stats}))
        names = sorted({s for s, _ in stats})
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, "
                    "CHARACTER_SET_NAME, EXTRA, IS_NULLABLE FROM information_schema.COLUMNS "
                    f"WHERE TABLE_SCHEMA IN ({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME, "
                    "ORDINAL_POSITION", names)
        columns = cur.fetchall()
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM "
                    f"information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA IN "
                    f"({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME = 'PRIMARY' "
                    "DESC, INDEX_NAME, SEQ_IN_INDEX", names)
        indexes = cur.fetchall()
    return schemas, build_tables(stats, columns, indexes)


def build_tables(stats: dict[tuple[str, str], tuple[int, int]],
                 columns: Iterable[Sequence[Any]], indexes: Iterable[Sequence[Any]]
                 ) -> list[TableInfo]:
    """TableInfos from information_schema rows: (schema, table, column, type, charset, extra,
    nullable) and unique index parts (schema, table, index, column), PRIMARY first."""
    cols: dict[tuple[str, str], list[Column]] = {}
    types: dict[tuple[str, str, str], str] = {}
    nullable: set[tuple[str, str, str]] = set()
    for schema, table, name, data_type, charset, extra, is_nullable in columns:
        types[(schema, table, name)] = str(data_type).lower()
        if is_nullable == "YES":
            nullable.add((schema, table, name))
        if not any(word in str(extra or "").upper() for word in GENERATED_WORDS):
            cols.setdefault((schema, table), []).append(
                Column(str(name), str(data_type).lower(), charset and str(charset)))
    keys: dict[tuple[str, str], dict[str, list[str]]] = {}
    for schema, table, index, column in indexes:
        keys.setdefault((schema, table), {}).setdefault(str(index), []).append(str(column))
    infos = []
    for name, (rows, avg) in sorted(stats.items()):
        key = next((tuple(parts) for parts in keys.get(name, {}).values()
                    if not any((*name, c) in nullable for c in parts)), ())
        integer = len(key) == 1 and types.get((*name, key[0])) in INTEGER_TYPES
        infos.append(TableInfo(name[0], name[1], tuple(cols.get(name, ())), key, integer,
                               rows, avg))
    return infos


# -- SQL ----------------------------------------------------------------------------------


def value_sql(column: Column) -> str:
    """An expression rendering the column as an SQL literal; text in utf8mb4_bin, named
    explicitly, so that mixing the columns' collations can never fail."""
    name = quote(column.name)
    kind = column.data_type
    if kind in DOUBLE_TYPES:  # a declared width of 22 would cut -1.7976931348623157e308
        return f"IFNULL(CAST({name} AS CHAR({DOUBLE_WIDTH})),'NULL')"
    if kind == "float":
        return f"IFNULL(CAST({name}+0e0 AS CHAR({DOUBLE_WIDTH})),'NULL')"
    if kind in NUMBER_TYPES:
        return f"IFNULL({name},'NULL')"
    if kind == "bit":
        return f"IFNULL({name}+0,'NULL')"
    if kind in BINARY_TYPES or column.charset == "binary":
        return f"IF({name} IS NULL,'NULL',CONCAT('X''',HEX({name}),''''))"
    text = name if column.charset == "utf8mb4" else f"CONVERT({name} USING utf8mb4)"
    return f"QUOTE({text}) COLLATE utf8mb4_bin"


def tuple_args(columns: Sequence[Column]) -> str:
    """`'(',v1,',',v2,...,')'`: the pieces of a row's `(v1,v2,...)` literal. As separate
    GROUP_CONCAT arguments each stays short enough for MariaDB's in-memory temporary
    table, where one CONCAT of a wide row would be a BLOB, and so a table on disk. That
    table's columns are as wide as each expression's declared length, which is why a
    DOUBLE, whose declared width is too small for its longest values, is cast first."""
    return "'('," + ",',',".join(map(value_sql, columns)) + ",')'"


def row_sql(columns: Sequence[Column]) -> str:
    """An expression rendering a row as `(v1,v2,...)`."""
    return f"CONCAT({tuple_args(columns)})"


def range_sql(key: Sequence[str], lower: Sequence[str] | None,
              upper: Sequence[str] | None) -> str:
    """`key >= lower AND key < upper` for a (composite) key, bounds as SQL literals; either
    bound may be open (None). Row comparisons are spelled out, which every optimizer turns
    into ranges: (a, b) >= (x, y) is `a > x OR (a = x AND b >= y)`."""
    parts = []
    if lower is not None:
        parts.append(_compare(key, lower, ">", ">="))
    if upper is not None:
        parts.append(_compare(key, upper, "<", "<"))
    return " AND ".join(parts) or "TRUE"


def _compare(key: Sequence[str], values: Sequence[str], strict: str, last: str) -> str:
    text = f"{quote(key[-1])} {last} {values[-1]}"
    for name, value in reversed(list(zip(key[:-1], values[:-1], strict=True))):
        text = f"({quote(name)} {strict} {value} OR ({quote(name)} = {value} AND {text}))"
    return text if len(key) == 1 else f"({text})"


def insert_prefix(target: tuple[str, str], columns: Sequence[Column]) -> bytes:
    """`REPLACE INTO target (cols) VALUES ` (DM's load replaces), with an explicit column
    list, so a downstream table with more columns than the upstream's takes the rows."""
    names = ",".join(quote(c.name) for c in columns)
    return f"REPLACE INTO {quote(target[0])}.{quote(target[1])} ({names}) VALUES ".encode()


# -- plans --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizing:
    """How big chunks and statements are."""

    statement_size: int = DEFAULT_STATEMENT_SIZE
    chunk_rows: int = 0
    chunk_bytes: int = CHUNK_BYTES_CAP

    @classmethod
    def of(cls, cfg: MydumperConfig) -> Sizing:
        """From the mydumpers settings: statement-size, rows, chunk-filesize (MB)."""
        try:
            megabytes = float(str(cfg.chunk_filesize).strip() or "64")
        except ValueError:
            megabytes = 64.0
        return cls(cfg.statement_size or DEFAULT_STATEMENT_SIZE, max(0, cfg.rows),
                   max(1, min(int(megabytes * (1 << 20)), CHUNK_BYTES_CAP)))

    def rows_per_chunk(self, avg_row_length: int) -> int:
        """Rows in a chunk of a table with that average row length."""
        if self.chunk_rows:
            return self.chunk_rows
        return max(1, self.chunk_bytes // max(avg_row_length, 1))


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk of one table: key range [lower, upper) as SQL literals, None = open."""

    schema: str
    table: str
    index: int
    key: tuple[str, ...] = ()
    integer: bool = False
    lower: tuple[str, ...] | None = None
    upper: tuple[str, ...] | None = None

    @property
    def id(self) -> str:
        """Stable name: `schema.table#index`."""
        return f"{self.schema}.{self.table}#{self.index}"

    @property
    def condition(self) -> str:
        """The WHERE condition selecting the chunk's rows."""
        return range_sql(self.key, self.lower, self.upper) if self.key else "TRUE"

    def bounds_json(self) -> str:
        """The bounds as saved with the plan."""
        return json.dumps({"key": list(self.key), "int": self.integer,
                           "lower": None if self.lower is None else list(self.lower),
                           "upper": None if self.upper is None else list(self.upper)},
                          ensure_ascii=False)

    @classmethod
    def from_saved(cls, schema: str, table: str, index: int, bounds: str) -> ChunkSpec:
        """Inverse of `bounds_json`."""
        data = json.loads(bounds)
        lower, upper = data.get("lower"), data.get("upper")
        return cls(schema, table, index, tuple(data.get("key") or ()), bool(data.get("int")),
                   None if lower is None else tuple(lower),
                   None if upper is None else tuple(upper))


def chunk_specs(info: TableInfo, bounds: Sequence[tuple[str, ...]]) -> list[ChunkSpec]:
    """Chunks between consecutive inner boundaries, the first and last open."""
    edges: list[tuple[str, ...] | None] = [None, *bounds, None]
    return [ChunkSpec(info.schema, info.table, index, info.key, info.integer_key, low, high)
            for index, (low, high) in enumerate(pairwise(edges))]


def integer_bounds(low: int, high: int, pieces: int) -> list[int]:
    """Inner boundaries cutting [low, high] into `pieces` ranges of equal width (fewer
    when the range holds fewer values)."""
    span = high - low + 1
    pieces = max(1, min(pieces, span))
    return [low + span * i // pieces for i in range(1, pieces)]


def plan_table(conn: Any, info: TableInfo, sizing: Sizing) -> list[ChunkSpec]:
    """The table's chunks (see the module docstring)."""
    per_chunk = sizing.rows_per_chunk(info.avg_row_length)
    if not info.key or info.rows <= per_chunk:
        return chunk_specs(info, [])
    with conn.cursor() as cur:
        if info.integer_key:
            key = quote(info.key[0])
            cur.execute(f"SELECT MIN({key}), MAX({key}) FROM {info.qualified}")
            low, high = cur.fetchone()
            if low is None:
                return chunk_specs(info, [])
            pieces = math.ceil(info.rows / per_chunk)
            return chunk_specs(info, [(str(b),) for b in integer_bounds(int(low), int(high),
                                                                          pieces)])
        return chunk_specs(info, keyset_bounds(cur, info, per_chunk))


def keyset_bounds(cur: Any, info: TableInfo, per_chunk: int) -> list[tuple[str, ...]]:
    """Key values every `per_chunk` rows in key order, as SQL literals."""
    types = {c.name: c for c in info.columns}
    literals = ", ".join(value_sql(types[name]) for name in info.key)
    order = ", ".join(quote(name) for name in info.key)
    bounds: list[tuple[str, ...]] = []
    while True:
        where = range_sql(info.key, bounds[-1] if bounds else None, None)
        cur.execute(f"SELECT {literals} FROM {info.qualified} WHERE {where} ORDER BY {order} "
                    f"LIMIT 1 OFFSET {per_chunk}")
        row = cur.fetchone()
        if row is None:
            return bounds
        bounds.append(tuple(_text(value) for value in row))


# -- reading ------------------------------------------------------------------------------


@dataclass
class Chunk:
    """A chunk read: its statements (bytes, ready to run), its rows, and the bytes of its
    VALUES lists (the status blocks' byte counts)."""

    spec: ChunkSpec
    statements: list[bytes] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class TableJob:
    """A table to dump, with its target and the SQL that reads and writes it."""

    info: TableInfo
    target: tuple[str, str]
    select: str
    concat: str
    prefix: bytes

    @classmethod
    def of(cls, info: TableInfo, target: tuple[str, str]) -> TableJob:
        """The job of `info` routed to `target`."""
        return cls(info, target, row_sql(info.columns),
                   f"GROUP_CONCAT({tuple_args(info.columns)} SEPARATOR ',')",
                   insert_prefix(target, info.columns))


class _Statements:
    """Row literals grouped into statements of about `size` bytes."""

    def __init__(self, chunk: Chunk, prefix: bytes, size: int) -> None:
        self.chunk, self.prefix, self.size = chunk, prefix, size
        self.parts: list[bytes] = []
        self.pending = 0

    def row(self, values: bytes) -> None:
        """One row's literal; a statement is cut once it holds `size` bytes."""
        self.parts.append(values)
        self.pending += len(values) + 1
        self.chunk.rows += 1
        if self.pending >= self.size:
            self.flush()

    def block(self, values: bytes, count: int) -> None:
        """A whole VALUES list (`count` rows) as one statement."""
        self.flush()
        self._add(values)
        self.chunk.rows += count

    def flush(self) -> None:
        """The rows held so far as one statement."""
        if self.parts:
            self._add(b",".join(self.parts))
            self.parts, self.pending = [], 0

    def _add(self, values: bytes) -> None:
        self.chunk.statements.append(self.prefix + values)
        self.chunk.bytes += len(values)


class ChunkReader:
    """Reads chunks on one reader connection of the snapshot."""

    def __init__(self, conn: Any, jobs: dict[tuple[str, str], TableJob], sizing: Sizing,
                 where: str = "", address: str = "") -> None:
        self.conn = conn
        self.jobs = jobs
        self.sizing = sizing
        self.where = f" AND ({where})" if where else ""
        self.address = address
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.group_concat_max_len")
            limit = int(cur.fetchone()[0])
        self.concat_cap = min(limit - 4, MAX_CONCAT_STATEMENTS * sizing.statement_size)

    def read(self, spec: ChunkSpec) -> Chunk:
        """The chunk's rows as statements; empty when the table is gone."""
        chunk = Chunk(spec)
        job = self.jobs.get((spec.schema, spec.table))
        if job is None:
            return chunk
        out = _Statements(chunk, job.prefix, self.sizing.statement_size)
        try:
            if spec.integer and self.concat_cap > 0:
                self._read_steps(job, spec, out)
            else:
                self._stream(job, spec.condition + self.where, out)
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] == NO_TABLE_ERRNO:
                return Chunk(spec)
            if not exc.args or exc.args[0] in CONNECTION_ERRNOS or exc.args[0] < OS_ERRNOS:
                raise ERR_DUMP_UPSTREAM(exc, address=self.address, op=f"read {spec.id}") \
                    from exc
            raise ERR_DUMP_TABLE(exc, schema=spec.schema, table=spec.table,
                                 problem=f"reading chunk {spec.index} failed") from exc
        out.flush()
        return chunk

    def _read_steps(self, job: TableJob, spec: ChunkSpec, out: _Statements) -> None:
        key = quote(spec.key[0])
        low, high = self._span(job, spec, key)
        step = max(1, self.sizing.statement_size // max(job.info.avg_row_length, 64))
        at = low
        while at < high:
            end = min(high, at + step)
            where = f"{key} >= {at} AND {key} < {end}{self.where}"
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT {job.concat}, COUNT(*) FROM {job.info.qualified} "
                            f"WHERE {where}")
                values, count = cur.fetchone()
            if values is None:
                step = min(step * 4, 1 << 62)
            elif len(values) >= self.concat_cap:
                self._stream(job, where, out)
                step = max(1, step // 4)
            else:
                out.block(values, int(count))
                step = next_step(step, len(values), end - at, self.sizing.statement_size)
            at = end

    def _span(self, job: TableJob, spec: ChunkSpec, key: str) -> tuple[int, int]:
        """[low, high) of an integer chunk; open bounds closed by the snapshot's MIN/MAX."""
        low = int(spec.lower[0]) if spec.lower is not None else None
        high = int(spec.upper[0]) if spec.upper is not None else None
        if low is None or high is None:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT MIN({key}), MAX({key}) FROM {job.info.qualified} "
                            f"WHERE {spec.condition}{self.where}")
                first, last = cur.fetchone()
            if first is None:
                return 0, 0
            low = int(first) if low is None else low
            high = int(last) + 1 if high is None else high
        return low, high

    def _stream(self, job: TableJob, where: str, out: _Statements) -> None:
        with self.conn.cursor(SSCursor) as cur:
            cur.execute(f"SELECT {job.select} FROM {job.info.qualified} WHERE {where}")
            while rows := cur.fetchmany(FETCH_ROWS):
                for (values,) in rows:
                    out.row(values)


def next_step(step: int, got: int, width: int, statement_size: int) -> int:
    """The next key step: what would have held `statement_size` bytes at the density just
    seen, changing at most fourfold at a time."""
    wanted = int(statement_size * width / max(got, 1))
    return max(1, min(step * 4, max(step // 4, wanted)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
