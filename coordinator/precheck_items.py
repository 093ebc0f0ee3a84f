"""The per-source check items of the task precheck (`check-task`), and their values.

Each item looks at one source and returns a `Finding`: the problems seen, each with its
severity, and one instruction for the user; `coordinator.precheck` runs the items (and the
cross-source shard check), and turns each finding into DM's checker result. Names,
descriptions, messages and instructions are DM's own (`dm/pkg/checker` in pingcap/tiflow),
so a DM user reads the same text; where kdm checks something DM does not, a comment says so.

An item reads the server through an `Upstream` (SQL answers as plain values): the real one
is `MySQLUpstream`, and tests give the items an in-memory one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import pymysql

from kdm.config.source import SourceConfig
from kdm.errors import ERR_PRECHECK_OPEN_DB, ERR_PRECHECK_QUERY, KdmError
from kdm.schema_create import parse_create
from kdm.schema_sql import quote_name
from kdm.schema_table import TableSchema

VARIABLES = ("server_id", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata")
# TiDB's character sets; MariaDB 10.6+ prints utf8 as utf8mb3.
SUPPORTED_CHARSETS = frozenset({"ascii", "binary", "gbk", "gb18030", "latin1", "utf8",
                                "utf8mb3", "utf8mb4"})
_FOREIGN_KEY = re.compile(r"CONSTRAINT\s+`((?:[^`]|``)+)`\s+FOREIGN\s+KEY", re.IGNORECASE)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class State(Enum):
    """The outcome of one check item, or the severity of one problem."""

    SUCCESS = "success"
    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True)
class Problem:
    """One entry of a result's `errors`; `self_`/`other` name the two sides of a mismatch."""

    severity: State
    short_error: str
    self_: str = ""
    other: str = ""

    def to_dict(self) -> dict[str, str]:
        """DM's JSON form: empty `self` and `other` are left out."""
        found = {"severity": self.severity.value, "short_error": self.short_error}
        found.update((k, v) for k, v in (("self", self.self_), ("other", self.other)) if v)
        return found


def fail(text: str, self_: str = "", other: str = "") -> Problem:
    """A problem that fails the precheck."""
    return Problem(State.FAIL, text, self_, other)


def warn(text: str) -> Problem:
    """A problem the user should know of; the precheck still passes."""
    return Problem(State.WARN, text)


@dataclass(frozen=True)
class Finding:
    """What an item found: its problems, one instruction, and an `extra` replacing the item's."""

    problems: tuple[Problem, ...] = ()
    instruction: str = ""
    extra: str = ""


class Upstream(Protocol):
    """What the precheck reads from one upstream server; each read may raise a KdmError."""

    def version(self) -> str:
        """SELECT VERSION()."""

    def variables(self) -> Mapping[str, str]:
        """The global VARIABLES that exist on the server, by lower-case name."""

    def grants(self) -> list[str]:
        """SHOW GRANTS of the connected user."""

    def tables(self) -> list[tuple[str, str]]:
        """Every base table as (schema, table)."""

    def create_table(self, schema: str, table: str) -> str:
        """SHOW CREATE TABLE's statement."""

    def close(self) -> None:
        """Release the connection."""


@dataclass
class SourceView:
    """One source of the task as the items see it: its server and the tables it migrates."""

    source_id: str
    address: str
    upstream: Upstream
    select: Callable[[str, str], tuple[str, str] | None]
    consistency: str = "auto"
    _tables: dict[tuple[str, str], tuple[str, str]] | None = None
    _created: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def extra(self) -> str:
        """DM's `extra` of a per-source item."""
        return f"address of db instance - {self.address}"

    def tables(self) -> dict[tuple[str, str], tuple[str, str]]:
        """The upstream tables the task migrates, each with its downstream (schema, table)."""
        if self._tables is None:
            pairs = ((name, self.select(*name)) for name in sorted(self.upstream.tables()))
            self._tables = {name: target for name, target in pairs if target is not None}
        return self._tables

    def create_sql(self, schema: str, table: str) -> str:
        """The table's CREATE TABLE, read once."""
        if (schema, table) not in self._created:
            self._created[schema, table] = self.upstream.create_table(schema, table)
        return self._created[schema, table]

    def structure(self, schema: str, table: str) -> TableSchema:
        """The table's parsed structure."""
        return parse_create(self.create_sql(schema, table), schema)


def qualified(schema: str, table: str) -> str:
    """`schema`.`table` as DM prints a table."""
    return f"{quote_name(schema)}.{quote_name(table)}"


# -- the upstream through pymysql -----------------------------------------------------------

class MySQLUpstream:
    """An upstream read through one pymysql connection; a failing statement raises
    ERR_PRECHECK_QUERY with the server's error as raw cause."""

    def __init__(self, conn: pymysql.connections.Connection[Any], address: str) -> None:
        self.conn = conn
        self.address = address

    @classmethod
    def open(cls, source: SourceConfig) -> MySQLUpstream:
        """Connect to the source's upstream; ERR_PRECHECK_OPEN_DB when it cannot."""
        db = source.from_
        try:
            conn = pymysql.connect(**db.connect_args())
        except pymysql.MySQLError as exc:
            raise ERR_PRECHECK_OPEN_DB(exc, user=db.user, host=db.host, port=db.port) from exc
        return cls(conn, f"{db.host}:{db.port}")

    def rows(self, query: str, args: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Every row the statement returns."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, tuple(args) or None)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            raise ERR_PRECHECK_QUERY(exc, address=self.address, query=query) from exc

    def version(self) -> str:
        """SELECT VERSION()."""
        return str(self.rows("SELECT VERSION()")[0][0])

    def variables(self) -> dict[str, str]:
        """The global VARIABLES the items read, by lower-case name."""
        marks = ", ".join(["%s"] * len(VARIABLES))
        found = self.rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", VARIABLES)
        return {str(name).lower(): str(value) for name, value in found}

    def grants(self) -> list[str]:
        """SHOW GRANTS of the connected user."""
        return [str(row[0]) for row in self.rows("SHOW GRANTS")]

    def tables(self) -> list[tuple[str, str]]:
        """Every base table as (schema, table)."""
        found = self.rows("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                          "WHERE TABLE_TYPE = 'BASE TABLE'")
        return [(str(schema), str(table)) for schema, table in found]

    def create_table(self, schema: str, table: str) -> str:
        """SHOW CREATE TABLE's statement."""
        return str(self.rows(f"SHOW CREATE TABLE {qualified(schema, table)}")[0][1])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


# -- server: version, server_id, binlog settings ------------------------------------------

def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a VERSION() text; MariaDB's `5.5.5-` prefix is skipped."""
    body = text.removeprefix("5.5.5-") if "mariadb" in text.lower() else text
    match = _VERSION.match(body)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


# Required minimum by flavour (manual §2.2: MySQL > 5.5, MariaDB >= 10.1.2); MySQL 8.0 and
# later only warn, as DM says 8.0 is experimental.
_MIN_VERSION = {"mysql": (5, 6, 0), "mariadb": (10, 1, 2)}
_MYSQL_MAX = (8, 0, 0)


def check_version(view: SourceView) -> Finding:
    """DM's mysql_version: the upstream's flavour and version are supported."""
    text = view.upstream.version()
    if "tidb" in text.lower():
        return Finding((warn("migration from TiDB not supported"),),
                       "TiDB is not supported as an upstream database.")
    version = parse_version(text)
    if version is None:
        return Finding((fail(f"version {text} is invalid"),))
    flavor = "mariadb" if "mariadb" in text.lower() else "mysql"
    low = _MIN_VERSION[flavor]
    if version < low:
        return Finding((fail(f"version required at least {_dotted(low)} but got "
                             f"{_dotted(version)}"),), "Please upgrade your database system")
    if flavor == "mysql" and version >= _MYSQL_MAX:
        return Finding((warn(f"version suggested earlier than {_dotted(_MYSQL_MAX)} but got "
                             f"{_dotted(version)}"),),
                       "It is recommended that you select a database version that meets the "
                       "requirements before performing data migration. Otherwise data "
                       "inconsistency or task exceptions might occur.")
    return Finding()


def check_server_id(view: SourceView) -> Finding:
    """DM's mysql_server_id: server_id is set and not 0."""
    value = view.upstream.variables().get("server_id")
    if value is None:
        return Finding((fail("server_id not set"),), "Set server_id in your database, or "
                       "errors might happen in master/slave switchover")
    if value.strip() == "0":
        return Finding((fail("server_id is 0"),), "Set server_id greater than 0, or errors "
                       "might happen in master/slave switchover")
    return Finding()


@dataclass(frozen=True)
class Setting:
    """A global variable a row-based relay needs at one value."""

    variable: str
    wanted: str
    instruction: str
    absent_ok: bool = False


SETTINGS = {
    "binlog_enable": Setting("log_bin", "ON", "ref document: https://dev.mysql.com/doc/refman/"
                             "5.7/en/replication-howto-masterbaseconfig.html"),
    "binlog_format": Setting("binlog_format", "ROW",
                             "please execute 'set global binlog_format=ROW;'"),
    # Servers older than the variable (MySQL 5.6.2, MariaDB 10.1.6) always log full rows.
    "binlog_row_image": Setting("binlog_row_image", "FULL",
                                "please execute 'set global binlog_row_image = FULL;'",
                                absent_ok=True),
    # kdm's own item, not DM's: the relay reads column names from the binlog's table map
    # events, which carry them only with binlog_row_metadata=FULL (MySQL 8.0.1+, MariaDB 10.5+).
    "binlog_row_metadata": Setting("binlog_row_metadata", "FULL",
                                   "please execute 'set global binlog_row_metadata = FULL;' "
                                   "(MySQL 8.0.1+ or MariaDB 10.5+ is needed)"),
}


def check_setting(view: SourceView, setting: Setting) -> Finding:
    """The binlog items: a global variable has the value the relay needs."""
    value = view.upstream.variables().get(setting.variable)
    if value is None and setting.absent_ok:
        return Finding()
    if (value or "").upper() == setting.wanted:
        return Finding()
    shown = "not supported by this server" if value is None else value
    return Finding((fail(f"{setting.variable} is {shown}, and should be {setting.wanted}"),),
                   setting.instruction)


# -- upstream user privileges ---------------------------------------------------------------

_GRANT = re.compile(r"GRANT\s+(?P<privs>.+?)\s+ON\s+(?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE"
                    r"(?:\s+BODY)?)\s+)?(?P<level>\S+)\s+TO\s", re.IGNORECASE | re.DOTALL)
_LEVEL = re.compile(r"(`(?:[^`]|``)+`|\*|[^.`]+)\.(`(?:[^`]|``)+`|\*|[^.`]+)")
# Names SHOW GRANTS prints for what the checks need: MariaDB 10.5+ calls REPLICATION CLIENT
# BINLOG MONITOR, and SUPER covers REPLICATION CLIENT (SHOW MASTER STATUS accepts either).
_IMPLIES = {"ALL PRIVILEGES": ("ALL",), "BINLOG MONITOR": ("REPLICATION CLIENT",),
            "SUPER": ("SUPER", "REPLICATION CLIENT")}
GLOBAL_ONLY = frozenset({"RELOAD", "REPLICATION CLIENT", "REPLICATION SLAVE"})


@dataclass(frozen=True)
class Grant:
    """One GRANT line: its privileges (column-level ones left out) and its level."""

    privileges: frozenset[str]
    schema: str | None = None
    table: str | None = None

    def covers(self, privilege: str, schema: str = "", table: str = "") -> bool:
        """Whether this grant gives `privilege` on `schema`.`table` (or globally)."""
        if privilege not in self.privileges and "ALL" not in self.privileges:
            return False
        if self.schema is None:
            return True
        return (privilege not in GLOBAL_ONLY and self.schema == schema
                and self.table in (None, table))


def parse_grant(line: str) -> Grant | None:
    """The grant of a SHOW GRANTS line; None for role and proxy grants and unknown forms."""
    match = _GRANT.match(line.strip())
    level = _LEVEL.fullmatch(match["level"]) if match else None
    if match is None or level is None:
        return None
    names: set[str] = set()
    for item in _split_privileges(match["privs"]):
        if "(" not in item:
            name = " ".join(item.upper().split())
            names.update(_IMPLIES.get(name, (name,)))
    schema, table = (_unquote(part) for part in level.groups())
    return Grant(frozenset(names), schema, table)


def _split_privileges(text: str) -> list[str]:
    """Privileges split at commas outside column lists: `SELECT (a, b), RELOAD`."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [*items, current.strip()]


def _unquote(part: str) -> str | None:
    if part == "*":
        return None
    return part[1:-1].replace("``", "`") if part.startswith("`") else part


def check_replication_privilege(view: SourceView) -> Finding:
    """DM's replication privilege checker: REPLICATION SLAVE and REPLICATION CLIENT."""
    return _privileges(view, ("REPLICATION SLAVE", "REPLICATION CLIENT"), {})


def check_dump_privilege(view: SourceView) -> Finding:
    """DM's dump privilege checker: SELECT on every migrated table, and RELOAD (LOCK TABLES
    instead with --consistency lock) for the dump's consistency mode."""
    extra = {"auto": ("RELOAD",), "flush": ("RELOAD",), "lock": ("LOCK TABLES",)}
    return _privileges(view, ("SELECT", *extra.get(view.consistency, ())), _by_schema(view))


def _by_schema(view: SourceView) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for schema, table in view.tables():
        found.setdefault(schema, []).append(table)
    return found


def _privileges(view: SourceView, needed: Sequence[str],
                tables: Mapping[str, Sequence[str]]) -> Finding:
    grants = [g for g in map(parse_grant, view.upstream.grants()) if g is not None]
    if not grants:
        return Finding((fail("there is no such grant defined for current user on host '%'"),))
    lacking = "".join(_lack(grants, privilege, tables) for privilege in needed)
    if not lacking:
        return Finding()
    return Finding((fail(lacking),), "You need grant related privileges.")


def _lack(grants: Sequence[Grant], privilege: str, tables: Mapping[str, Sequence[str]]) -> str:
    """DM's text for one missing privilege: `lack of X privilege[: {tables}]; `, or ''."""
    if any(g.covers(privilege) for g in grants):
        return ""
    if privilege in GLOBAL_ONLY:
        return f"lack of {privilege} privilege; "
    missing = [[qualified(schema, t) for t in names
                if not any(g.covers(privilege, schema, t) for g in grants)]
               for schema, names in tables.items()]
    shown = "; ".join(", ".join(names) for names in missing if names)
    return f"lack of {privilege} privilege: {{{shown}}}; " if shown else ""


# -- table structure compatibility ----------------------------------------------------------

_FK_INSTRUCTION = ("TiDB does not support foreign key constraints. See the document: "
                   "https://docs.pingcap.com/tidb/stable/mysql-compatibility#unsupported-features")
_KEY_INSTRUCTION = ("You need to set primary/unique keys for the table. Otherwise replication "
                    "efficiency might become very low and exactly-once replication cannot be "
                    "guaranteed.")
_CHARSET_INSTRUCTION = ("TiDB supports the character sets ascii, binary, gbk, gb18030, latin1, "
                        "utf8 and utf8mb4; convert the table to one of them. See the document: "
                        "https://docs.pingcap.com/tidb/stable/character-set-and-collation")


def check_tables(view: SourceView) -> Finding:
    """DM's table structure compatibility check of every table the source migrates: foreign
    keys (warn), unsupported charsets (fail), no primary or unique key (warn)."""
    problems: list[Problem] = []
    instructions: dict[str, None] = {}
    for schema, table in view.tables():
        for problem, instruction in _table_issues(view, schema, table):
            text = f"table {qualified(schema, table)} {problem.short_error}"
            problems.append(Problem(problem.severity, text))
            instructions.update({instruction: None} if instruction else {})
    return Finding(tuple(problems), "; ".join(instructions))


def _table_issues(view: SourceView, schema: str, table: str) -> list[tuple[Problem, str]]:
    sql = view.create_sql(schema, table)
    issues = [(warn(f"Foreign Key {name.replace('``', '`')} is parsed but ignored by TiDB."),
               _FK_INSTRUCTION) for name in _FOREIGN_KEY.findall(sql)]
    try:
        structure = parse_create(sql, schema)
    except KdmError as exc:
        return [*issues, (warn(exc.message), "")]
    issues += [(fail(f"unsupport charset {charset}"), _CHARSET_INSTRUCTION)
               for charset in _charsets(structure) if charset.lower() not in SUPPORTED_CHARSETS]
    if structure.primary is None and not any(index.unique for index in structure.indexes):
        issues.append((warn("primary/unique key does not exist"), _KEY_INSTRUCTION))
    return issues


def _charsets(structure: TableSchema) -> list[str]:
    found = [structure.charset, *(column.charset for column in structure.columns)]
    return list(dict.fromkeys(charset for charset in found if charset))


# -- the per-source items, by their ignore-checking-items name ------------------------------

@dataclass(frozen=True)
class ItemSpec:
    """A per-source item: DM's name and description, and the function that checks."""

    name: str
    desc: str
    run: Callable[[SourceView], Finding]


def _setting_item(key: str, desc: str) -> ItemSpec:
    setting = SETTINGS[key]
    return ItemSpec(f"mysql_{key}", desc, lambda view: check_setting(view, setting))


SOURCE_ITEMS: dict[str, ItemSpec] = {
    "version": ItemSpec("mysql_version", "check whether mysql version is satisfied",
                        check_version),
    "server_id": ItemSpec("mysql_server_id",
                          "check whether mysql server_id has been greater than 0",
                          check_server_id),
    "binlog_enable": _setting_item("binlog_enable", "check whether mysql binlog is enabled"),
    "binlog_format": _setting_item("binlog_format", "check whether mysql binlog_format is ROW"),
    "binlog_row_image": _setting_item("binlog_row_image",
                                      "check whether mysql binlog_row_image is FULL"),
    "binlog_row_metadata": _setting_item("binlog_row_metadata",
                                         "check whether mysql binlog_row_metadata is FULL"),
    "dump_privilege": ItemSpec("source db dump privilege checker",
                               "check dump privileges of source DB", check_dump_privilege),
    "replication_privilege": ItemSpec("source db replication privilege checker",
                                      "check replication privileges of source DB",
                                      check_replication_privilege),
    "table_schema": ItemSpec("table structure compatibility check",
                             "check compatibility of table structure", check_tables),
}
