"""One binlog DDL statement as values: its DM event name, the tables it touches, routed SQL.

`parse_ddl(sql, schema)` turns the text of a query event (MySQL or MariaDB dialect) into one
or more `DDL` values, in five steps:

1. Lex (`consumers.ddl_scan.lex`): comments and quoted text are skipped; executable comments
   (`/*!50100 ... */`) are read as code, as the upstream server read them.
2. Classify by the leading keywords (`_EVENTS`, keyed by verb and object): a DM event name
   (the table below), "" for a statement that changes no schema (GRANT, CREATE USER, FLUSH,
   ANALYZE, SET, triggers, procedures, temporary tables...), which the sync unit skips, or a
   refusal (see below).
3. Find the table names with sqlglot (`read="mysql"`). Where sqlglot leaves an unparsed
   `Command` or fails (RENAME TABLE, ALTER DATABASE, partition maintenance, MariaDB's
   `ADD INDEX IF NOT EXISTS`, ...), a token scanner of `consumers.ddl_scan` finds them in
   their fixed grammar positions instead. Unqualified names take the event's default schema.
4. Split what DM splits: `DROP TABLE a, b` and `DROP VIEW a, b` give one statement per name;
   `RENAME TABLE a TO b, c TO d` one per pair. MariaDB's `CREATE OR REPLACE TABLE|DATABASE`,
   which TiDB lacks, becomes `DROP ... IF EXISTS` followed by the plain CREATE. An
   `ALTER TABLE t ADD x, DROP y` stays one statement.
5. `DDL.render(rename)` splices `schema`.`table` (backquoted, fully qualified) over each
   name's span of the upstream text, so column definitions, options, partitioning clauses and
   comments reach TiDB byte for byte. A renamed table inside a view's query keeps its old
   name as an alias, so `t.col` references still resolve.

Events (DM's binlog event filter names) and what `tables` holds, in textual order:

    create database / alter database / drop database   (db, "")
    create table    (t,) or (t, like-source) + REFERENCES targets
    alter table     (t,) + REFERENCES targets + EXCHANGE PARTITION partner
    rename table    (old, new) per pair; also ALTER TABLE t ... RENAME TO n (DM's choice)
    create index / drop index / truncate table / drop table / drop view   (t,)
    create view     (v,) + every table its query reads

Refused with `SyncDDLUnsupported` (36152): CREATE TABLE ... SELECT, statement-based DML,
ALTER VIEW, sequences, MariaDB's CREATE OR REPLACE INDEX. Statements that cannot be read at
all, or several statements in one event, fail with `SyncDDLUnparsable` (36151); an
unqualified name without a default schema with `SyncDDLNoSchema` (36153).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

import sqlglot
import sqlglot.errors
from sqlglot import exp

from consumers.ddl_scan import (
    RESERVED,
    Name,
    ScanError,
    Token,
    lex,
    scan_alter_table,
    scan_create_table,
    scan_database,
    scan_drop,
    scan_index,
    scan_rename_table,
)
from kdm.errors import ERR_DDL_NO_SCHEMA, ERR_DDL_UNPARSABLE, ERR_DDL_UNSUPPORTED
from kdm.schema_sql import quote_name as quote

CREATE_DATABASE = "create database"
DROP_DATABASE = "drop database"
ALTER_DATABASE = "alter database"
CREATE_TABLE = "create table"
CREATE_INDEX = "create index"
DROP_TABLE = "drop table"
TRUNCATE_TABLE = "truncate table"
RENAME_TABLE = "rename table"
DROP_INDEX = "drop index"
ALTER_TABLE = "alter table"
CREATE_VIEW = "create view"
DROP_VIEW = "drop view"
SKIP = ""

Rename = Callable[[str, str], tuple[str, str]]


@dataclass(frozen=True)
class TableRef:
    """A resolved name and its span (end exclusive) in `DDL.sql`; table is "" for a database."""

    start: int
    end: int
    schema: str
    table: str
    bare: bool = False


@dataclass(frozen=True)
class DDL:
    """One statement as the sync unit handles it; `event` is "" for non-schema statements."""

    sql: str
    event: str
    tables: tuple[tuple[str, str], ...] = ()
    refs: tuple[TableRef, ...] = field(default=(), repr=False)

    @property
    def is_schema_change(self) -> bool:
        """Whether the sync unit applies the statement (else it skips it)."""
        return self.event != SKIP

    def render(self, rename: Rename) -> str:
        """The statement with every name replaced by `rename(schema, table)`, backquoted."""
        out, at = [], 0
        for ref in self.refs:
            out += [self.sql[at:ref.start], _render_ref(ref, rename)]
            at = ref.end
        out.append(self.sql[at:])
        return "".join(out)


def _render_ref(ref: TableRef, rename: Rename) -> str:
    schema, table = rename(ref.schema, ref.table)
    if not ref.table:
        return quote(schema) + (" " if ref.start == ref.end else "")
    text = f"{quote(schema)}.{quote(table)}"
    return f"{text} AS {quote(ref.table)}" if ref.bare and table != ref.table else text


def parse_ddl(sql: str, schema: str = "") -> tuple[DDL, ...]:
    """The statements one query event becomes; `schema` is its default schema (`USE db`)."""
    text, tokens, code = _lexed(sql)
    event = _classify(_head(tokens), tokens, text)
    if event == SKIP:
        return (DDL(text, SKIP),)
    if any(token.upper == ";" for token in tokens):
        raise ERR_DDL_UNPARSABLE(sql=text, problem="several statements in one event")
    names = _names(event, tokens, code, text)
    if event == ALTER_TABLE and any(name.role == "new" for name in names):
        event = RENAME_TABLE
    refs = _resolve(names, schema, text)
    ddl = DDL(text, event, _tables(refs), refs)
    if event in _OR_REPLACE_DROPS and tokens[1].upper == "OR":
        return _or_replace(ddl, tokens)
    return _split(ddl, _SPLIT_SIZES.get((event, tokens[0].upper), 0))


def _lexed(sql: str) -> tuple[str, tuple[Token, ...], str]:
    """The statement without surrounding blanks and trailing `;`, its tokens, its code text."""
    text = sql.strip()
    try:
        lexed = lex(text)
    except ScanError as exc:
        raise ERR_DDL_UNPARSABLE(exc, sql=text, problem=str(exc)) from exc
    tokens = list(lexed.tokens)
    while tokens and tokens[-1].upper == ";":
        text = text[:tokens.pop().start].rstrip()
    return text, tuple(tokens), lexed.code[:len(text)]


@dataclass(frozen=True)
class _Head:
    """The leading keywords: the verb, the object it acts on, the modifiers in between."""

    verb: str
    noun: str = ""
    modifiers: frozenset[str] = frozenset()


_NOUNS = frozenset({
    "TABLE", "TABLES", "INDEX", "DATABASE", "SCHEMA", "VIEW", "USER", "ROLE", "TRIGGER",
    "PROCEDURE", "FUNCTION", "EVENT", "SERVER", "TABLESPACE", "LOGFILE", "INSTANCE", "RESOURCE",
    "PACKAGE", "REFERENCE", "SEQUENCE"})
_MODIFIERS = frozenset({
    "OR", "REPLACE", "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL", "ONLINE", "OFFLINE", "IGNORE",
    "ALGORITHM", "=", "UNDEFINED", "MERGE", "TEMPTABLE", "SQL", "SECURITY", "INVOKER",
    "AGGREGATE", "UNDO", "DEFINER"})


def _head(tokens: Sequence[Token]) -> _Head:
    verb = tokens[0].upper if tokens else ""
    if verb == "TRUNCATE":
        return _Head(verb, "TABLE")
    if verb not in ("CREATE", "ALTER", "DROP", "RENAME"):
        return _Head(verb)
    modifiers: set[str] = set()
    at = 1
    while at < len(tokens) and tokens[at].upper in _MODIFIERS:
        modifiers.add(tokens[at].upper)
        at = _after_modifier(tokens, at)
    noun = tokens[at].upper if at < len(tokens) and tokens[at].upper in _NOUNS else ""
    return _Head(verb, noun, frozenset(modifiers))


def _after_modifier(tokens: Sequence[Token], at: int) -> int:
    """The index after a modifier; `DEFINER = user[@host]` and `= CURRENT_USER()` as one."""
    if tokens[at].upper != "DEFINER" or at + 1 >= len(tokens) or tokens[at + 1].upper != "=":
        return at + 1
    at += 3
    if at < len(tokens) and tokens[at].upper == "@":
        at += 2
    if at + 1 < len(tokens) and tokens[at].upper == "(" and tokens[at + 1].upper == ")":
        at += 2
    return at


_EVENTS: dict[tuple[str, str], str] = {
    ("CREATE", "DATABASE"): CREATE_DATABASE, ("CREATE", "SCHEMA"): CREATE_DATABASE,
    ("ALTER", "DATABASE"): ALTER_DATABASE, ("ALTER", "SCHEMA"): ALTER_DATABASE,
    ("DROP", "DATABASE"): DROP_DATABASE, ("DROP", "SCHEMA"): DROP_DATABASE,
    ("CREATE", "TABLE"): CREATE_TABLE, ("ALTER", "TABLE"): ALTER_TABLE,
    ("DROP", "TABLE"): DROP_TABLE, ("DROP", "TABLES"): DROP_TABLE,
    ("RENAME", "TABLE"): RENAME_TABLE, ("RENAME", "TABLES"): RENAME_TABLE,
    ("TRUNCATE", "TABLE"): TRUNCATE_TABLE,
    ("CREATE", "INDEX"): CREATE_INDEX, ("DROP", "INDEX"): DROP_INDEX,
    ("CREATE", "VIEW"): CREATE_VIEW, ("DROP", "VIEW"): DROP_VIEW,
}
_SKIPPED_VERBS = frozenset({
    "GRANT", "REVOKE", "SET", "FLUSH", "ANALYZE", "OPTIMIZE", "REPAIR", "CHECK", "CHECKSUM",
    "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA", "LOCK", "UNLOCK",
    "INSTALL", "UNINSTALL", "KILL", "RESET", "PURGE", "CHANGE", "STOP", "USE", "DO", "CALL",
    "HANDLER", "BINLOG", "SIGNAL", "RESIGNAL", "CACHE", "BACKUP", "SHUTDOWN", "PREPARE",
    "EXECUTE", "DEALLOCATE", "SHOW", "HELP", "EXPLAIN", "DESCRIBE", "DESC"})
_SKIPPED_NOUNS = frozenset({
    "USER", "ROLE", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT", "SERVER", "TABLESPACE",
    "LOGFILE", "INSTANCE", "RESOURCE", "PACKAGE", "REFERENCE"})
_DML_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"})

_Refusal = Callable[[_Head, Sequence[Token]], bool]
_REFUSALS: tuple[tuple[_Refusal, str], ...] = (
    (lambda head, _: head.verb in _DML_VERBS,
     "statement-based DML (the upstream must log rows: binlog_format=ROW)"),
    (lambda head, _: head.noun == "SEQUENCE", "sequences"),
    (lambda head, _: (head.verb, head.noun) == ("ALTER", "VIEW"),
     "ALTER VIEW (TiDB has none; CREATE OR REPLACE VIEW does the same)"),
    (lambda head, tokens: (head.verb, head.noun) == ("CREATE", "TABLE")
     and any(token.upper == "SELECT" for token in tokens), "CREATE TABLE ... SELECT"),
    (lambda head, _: (head.verb, head.noun) == ("CREATE", "INDEX") and "OR" in head.modifiers,
     "CREATE OR REPLACE INDEX (replace it with DROP INDEX IF EXISTS and CREATE INDEX)"),
)


def _classify(head: _Head, tokens: Sequence[Token], text: str) -> str:
    """The DM event of the statement, SKIP, or a coded refusal."""
    if not tokens or head.verb in _SKIPPED_VERBS or head.noun in _SKIPPED_NOUNS:
        return SKIP
    if "TEMPORARY" in head.modifiers:
        return SKIP  # session-local; a ROW-format binlog only logs them by accident
    for refused, problem in _REFUSALS:
        if refused(head, tokens):
            raise ERR_DDL_UNSUPPORTED(sql=text, problem=problem)
    event = _EVENTS.get((head.verb, head.noun))
    if event is None:
        statement = " ".join(word for word in (head.verb, head.noun) if word)
        raise ERR_DDL_UNPARSABLE(sql=text, problem=f"`{statement}` is not a statement kdm knows")
    return event


def _table_name(table: exp.Expr, role: str = "target") -> Name:
    """The span and parts of a sqlglot table reference, from its identifiers' positions."""
    if isinstance(table, exp.Schema):
        table = table.this
    if not isinstance(table, exp.Table):
        raise ScanError(f"sqlglot read a {type(table).__name__} where a table name belongs")
    parts = [part for part in table.parts if isinstance(part, exp.Identifier)]
    if not parts or len(parts) != len(table.parts) or not all("start" in p.meta for p in parts):
        raise ScanError(f"sqlglot kept no position for table {table.sql('mysql')}")
    if any(not p.quoted and p.name.upper() in RESERVED for p in parts):
        raise ScanError(f"a reserved word is not a table name: {table.sql('mysql')}")
    bare = role == "query" and not table.alias
    return Name(parts[0].meta["start"], parts[-1].meta["end"] + 1,
                tuple(p.name for p in parts), role, bare)


def _shape(node: exp.Expr, cls: type[exp.Expr] | tuple[type[exp.Expr], ...],
           *kinds: str) -> None:
    kind = str(node.args.get("kind") or "").upper()
    if not isinstance(node, cls) or (kinds and kind not in kinds):
        raise ScanError(f"sqlglot read it as {type(node).__name__} {kind}".rstrip())


_LINK_ROLES: dict[type[exp.Expr], str] = {
    exp.LikeProperty: "like", exp.Reference: "reference", exp.AlterRename: "new"}


def _linked(node: exp.Expr) -> list[Name]:
    """LIKE sources, REFERENCES targets and RENAME TO targets under `node`."""
    return [_table_name(sub.this, _LINK_ROLES[type(sub)]) for sub in node.find_all(*_LINK_ROLES)]


def _ast_create_table(node: exp.Expr) -> list[Name]:
    _shape(node, exp.Create, "TABLE")
    return [_table_name(node.this), *_linked(node)]


def _ast_alter_table(node: exp.Expr) -> list[Name]:
    _shape(node, exp.Alter, "TABLE")
    return [_table_name(node.this), *_linked(node)]


def _ast_create_index(node: exp.Expr) -> list[Name]:
    _shape(node, exp.Create, "INDEX")
    _shape(node.this, exp.Index)
    return [_table_name(node.this.args["table"])]


def _ast_drop_index(node: exp.Expr) -> list[Name]:
    _shape(node, exp.Drop, "INDEX")
    on = node.args.get("cluster")
    if not isinstance(on, exp.OnProperty):
        raise ScanError("sqlglot found no ON clause")
    return [_table_name(on.this)]


def _ast_drop(node: exp.Expr) -> list[Name]:
    _shape(node, exp.Drop, "TABLE", "VIEW")
    return [_table_name(table) for table in node.args.get("tables") or ()]


def _ast_truncate(node: exp.Expr) -> list[Name]:
    _shape(node, exp.TruncateTable)
    return [_table_name(table) for table in node.expressions]


def _ast_create_view(node: exp.Expr) -> list[Name]:
    _shape(node, exp.Create, "VIEW")
    query = node.args.get("expression")
    if not isinstance(query, exp.Query):
        raise ScanError("sqlglot found no query in the view")
    ctes = {cte.alias for cte in node.find_all(exp.CTE)}
    sources = [table for table in query.find_all(exp.Table)
               if table.db or (table.name not in ctes and table.name.upper() != "DUAL")]
    return [_table_name(node.this), *(_table_name(table, "query") for table in sources)]


def _ast_database(node: exp.Expr) -> list[Name]:
    _shape(node, (exp.Create, exp.Drop), "DATABASE", "SCHEMA")
    table = node.this if isinstance(node, exp.Create) else (node.args.get("tables") or [None])[0]
    return [replace(_table_name(table), role="database")]


@dataclass(frozen=True)
class _Finders:
    """How to find an event's names: the AST reader first, then the token scanner."""

    ast: Callable[[exp.Expr], list[Name]] | None
    scan: Callable[[Sequence[Token]], list[Name]] | None = None


_FINDERS: dict[str, _Finders] = {
    CREATE_TABLE: _Finders(_ast_create_table, scan_create_table),
    ALTER_TABLE: _Finders(_ast_alter_table, scan_alter_table),
    CREATE_INDEX: _Finders(_ast_create_index, scan_index),
    DROP_INDEX: _Finders(_ast_drop_index, scan_index),
    RENAME_TABLE: _Finders(None, scan_rename_table),
    ALTER_DATABASE: _Finders(None, scan_database),
    CREATE_DATABASE: _Finders(_ast_database, scan_database),
    DROP_DATABASE: _Finders(_ast_database, scan_database),
    DROP_TABLE: _Finders(_ast_drop, scan_drop),
    DROP_VIEW: _Finders(_ast_drop, scan_drop),
    TRUNCATE_TABLE: _Finders(_ast_truncate),
    CREATE_VIEW: _Finders(_ast_create_view),
}


def _names(event: str, tokens: Sequence[Token], code: str, text: str) -> list[Name]:
    """The names of a statement of `event`: sqlglot's reading, else the scanner's."""
    finders = _FINDERS[event]
    problem: Exception | None = None
    if finders.ast is not None:
        try:
            return finders.ast(_sqlglot(code))
        except (ScanError, sqlglot.errors.SqlglotError) as exc:
            problem = exc
    if finders.scan is not None:
        try:
            return finders.scan(tokens)
        except ScanError as exc:
            problem = exc
    detail = str(problem).splitlines()[0] if problem else "no reader for it"
    raise ERR_DDL_UNPARSABLE(problem, sql=text, problem=detail)


def _sqlglot(code: str) -> exp.Expr:
    node = sqlglot.parse_one(code, read="mysql")
    if isinstance(node, exp.Command):
        raise ScanError("sqlglot left the statement unparsed")
    return node


def _resolve(names: Sequence[Name], schema: str, text: str) -> tuple[TableRef, ...]:
    """Names in textual order, resolved against the default schema."""
    unique = {(name.start, name.end): name for name in names}
    refs = tuple(_ref(name, schema, text) for _, name in sorted(unique.items()))
    for before, after in pairwise(refs):
        if after.start < before.end:
            raise ERR_DDL_UNPARSABLE(sql=text, problem="table names overlap")
    return refs


def _ref(name: Name, schema: str, text: str) -> TableRef:
    if name.role == "database":
        database = name.parts[0] if name.parts else schema
        if not database:
            raise ERR_DDL_NO_SCHEMA(sql=text, name="database")
        return TableRef(name.start, name.end, database, "")
    if len(name.parts) == 2:
        return TableRef(name.start, name.end, name.parts[0], name.parts[1], name.bare)
    if len(name.parts) != 1:
        raise ERR_DDL_UNPARSABLE(sql=text, problem=f"`{'.'.join(name.parts)}` has too many "
                                 "qualifiers")
    if not schema:
        raise ERR_DDL_NO_SCHEMA(sql=text, name=name.parts[0])
    return TableRef(name.start, name.end, schema, name.parts[0], name.bare)


def _tables(refs: Sequence[TableRef]) -> tuple[tuple[str, str], ...]:
    return tuple(dict.fromkeys((ref.schema, ref.table) for ref in refs))


# (event, verb) -> names per split statement; ALTER TABLE ... RENAME TO is never split.
_SPLIT_SIZES: dict[tuple[str, str], int] = {
    (DROP_TABLE, "DROP"): 1, (DROP_VIEW, "DROP"): 1, (RENAME_TABLE, "RENAME"): 2}


def _split(ddl: DDL, size: int) -> tuple[DDL, ...]:
    """One statement per `size` names, each keeping the text before the first name and after
    the last one (`DROP TABLE IF EXISTS `, ` /* generated by server */`)."""
    refs = ddl.refs
    if not size or len(refs) <= size:
        return (ddl,)
    head, tail = ddl.sql[:refs[0].start], ddl.sql[refs[-1].end:]
    return tuple(_part(ddl, head, refs[at:at + size], tail) for at in range(0, len(refs), size))


def _part(ddl: DDL, head: str, group: Sequence[TableRef], tail: str) -> DDL:
    shift = len(head) - group[0].start
    refs = tuple(replace(ref, start=ref.start + shift, end=ref.end + shift) for ref in group)
    sql = head + ddl.sql[group[0].start:group[-1].end] + tail
    return DDL(sql, ddl.event, _tables(refs), refs)


_OR_REPLACE_DROPS: dict[str, tuple[str, str]] = {
    CREATE_TABLE: (DROP_TABLE, "DROP TABLE IF EXISTS "),
    CREATE_DATABASE: (DROP_DATABASE, "DROP DATABASE IF EXISTS "),
}


def _or_replace(ddl: DDL, tokens: Sequence[Token]) -> tuple[DDL, DDL]:
    """MariaDB's `CREATE OR REPLACE X n ...` as `DROP X IF EXISTS n` and `CREATE X n ...`."""
    event, prefix = _OR_REPLACE_DROPS[ddl.event]
    first = ddl.refs[0]
    name = ddl.sql[first.start:first.end]
    dropped = replace(first, start=len(prefix), end=len(prefix) + len(name))
    drop = DDL(prefix + name, event, _tables([dropped]), (dropped,))
    cut_start, cut_end = tokens[1].start, tokens[3].start
    width = cut_end - cut_start
    refs = tuple(replace(ref, start=ref.start - width, end=ref.end - width) for ref in ddl.refs)
    create = DDL(ddl.sql[:cut_start] + ddl.sql[cut_end:], ddl.event, ddl.tables, refs)
    return drop, create
