"""The downstream (TiDB, or a MySQL-protocol stand-in): connections and table key facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from kdm.config.common import DBConfig
from kdm.errors import ERR_SYNC_DOWNSTREAM, ErrorSpec

# Zero dates and explicit 0 in AUTO_INCREMENT columns must land as the upstream had them;
# TIMESTAMP values travel in UTC.
SESSION = ("SET SESSION sql_mode = 'IGNORE_SPACE,NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES', "
           "SESSION time_zone = '+00:00', SESSION foreign_key_checks = 0")


def connect(target: DBConfig, multi_statements: bool = False, autocommit: bool = False,
            error: ErrorSpec = ERR_SYNC_DOWNSTREAM, **extra: Any) -> Any:
    """A new downstream connection in kdm's session settings; with `multi_statements`, one
    query may hold several statements (a DML worker sends its whole transaction, COMMIT
    included, in one round trip). A failure is `error` (the unit's own code); `extra` goes
    to pymysql (e.g. the load's `max_allowed_packet`)."""
    args = {**target.connect_args(), **extra}
    if multi_statements:
        args["client_flag"] = CLIENT.MULTI_STATEMENTS
    try:
        conn = pymysql.connect(**args, autocommit=autocommit)
        with conn.cursor() as cur:
            cur.execute(SESSION)
        return conn
    except pymysql.MySQLError as exc:
        raise error(exc, address=f"{args['host']}:{args['port']}", op="connect") from exc


@dataclass(frozen=True)
class TableKeys:
    """A downstream table's unique indexes and the key used in WHERE clauses."""

    unique: tuple[tuple[str, tuple[str, ...]], ...]
    where_key: tuple[str, ...]


class KeyCache:
    """Unique keys of downstream tables, read from information_schema and cached until a
    DDL touches the table."""

    def __init__(self, target: DBConfig) -> None:
        self.target = target
        self._conn: Any = None
        self._cache: dict[tuple[str, str], TableKeys] = {}

    def keys(self, schema: str, table: str) -> TableKeys:
        """The table's keys (empty when it has none or does not exist yet)."""
        found = self._cache.get((schema, table))
        if found is None:
            found = self._cache[(schema, table)] = self._load(schema, table)
        return found

    def clear(self) -> None:
        """Forget every cached table."""
        self._cache.clear()

    def close(self) -> None:
        """Close the metadata connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _load(self, schema: str, table: str) -> TableKeys:
        try:
            return self._query(schema, table)
        except pymysql.MySQLError as exc:
            self.close()
            raise ERR_SYNC_DOWNSTREAM(exc, address=f"{self.target.host}:{self.target.port}",
                                      op=f"read the keys of {schema}.{table}") from exc

    def _query(self, schema: str, table: str) -> TableKeys:
        if self._conn is None:
            self._conn = connect(self.target)
            self._conn.autocommit(True)
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT s.INDEX_NAME, s.COLUMN_NAME, c.IS_NULLABLE FROM "
                "information_schema.STATISTICS s JOIN information_schema.COLUMNS c ON "
                "c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND "
                "c.COLUMN_NAME = s.COLUMN_NAME WHERE s.TABLE_SCHEMA = %s AND "
                "s.TABLE_NAME = %s AND s.NON_UNIQUE = 0 ORDER BY s.INDEX_NAME = 'PRIMARY' "
                "DESC, s.INDEX_NAME, s.SEQ_IN_INDEX", (schema, table))
            rows = cur.fetchall()
        indexes: dict[str, list[str]] = {}
        nullable: dict[str, bool] = {}
        for name, column, is_nullable in rows:
            indexes.setdefault(name, []).append(column)
            nullable[name] = nullable.get(name, False) or is_nullable == "YES"
        unique = tuple((name, tuple(cols)) for name, cols in indexes.items())
        where = next((cols for name, cols in unique if not nullable[name]), ())
        return TableKeys(unique, where)
