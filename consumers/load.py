"""The load unit: downstream schemas and tables, then each dumped chunk applied in one
transaction together with its checkpoint row (`consumers.load_checkpoint`).

Targets. Every target schema is created when missing (with the upstream schema's default
character set and collation), and every target table from the first upstream table routed
to it (`SHOW CREATE TABLE`, names replaced by the task's routes): shards merged into one
table create it once. A table that already exists downstream is used as it is: a
pre-created table may have more columns than the upstream's, since the statements name
their columns.

Chunks. A loader sends, in one transaction: the checkpoint row's `UPDATE ... SET done = 1
... WHERE done = 0` first (it must change exactly one row, and holds that row's lock, so
two processes can never both load a chunk), then the chunk's REPLACE statements, then
COMMIT. A crash anywhere before COMMIT rolls the whole chunk back, marker included. A
deadlock or lock wait timeout rolls back and retries the chunk (RETRIES times).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import pymysql

from consumers import downstream
from consumers.applier import CONNECTION_ERRNOS
from consumers.ddl import parse_ddl
from consumers.dump import Chunk, TableJob
from consumers.routing import Router
from kdm import faults
from kdm.config.common import DBConfig
from kdm.errors import ERR_LOAD_CREATE, ERR_LOAD_DOWNSTREAM, ERR_LOAD_EXEC, KdmError
from kdm.schema_sql import quote_name as quote

RETRY_ERRNOS = frozenset({1205, 1213})  # lock wait timeout, deadlock: the txn rolled back
RETRIES = 3
TABLE_EXISTS, DATABASE_EXISTS = 1050, 1007


def connect(target: DBConfig, autocommit: bool = False) -> Any:
    """A downstream connection in kdm's session (zero dates, UTC, no FK checks) that takes
    1 MB statements; a failure is the load unit's error."""
    return downstream.connect(target, autocommit=autocommit, error=ERR_LOAD_DOWNSTREAM,
                              max_allowed_packet=1 << 30)


# -- targets ------------------------------------------------------------------------------


def create_targets(down: Any, up: Any, router: Router, empty_schemas: Sequence[str],
                   jobs: Sequence[TableJob]) -> list[tuple[str, str]]:
    """Create the missing target schemas (of the jobs and of `empty_schemas`, upstream
    schemas without tables) and tables; the tables created."""
    wanted = {router.target_schema(schema): schema for schema in empty_schemas}
    wanted.update({job.target[0]: job.info.schema for job in jobs})
    created = []
    try:
        with down.cursor() as dcur, up.cursor() as ucur:
            for target, schema in wanted.items():
                _create_database(dcur, ucur, schema, target)
            existing = _existing(dcur, {job.target for job in jobs})
            for job in jobs:
                if job.target in existing:
                    continue
                if _create_table(dcur, ucur, job, router):
                    created.append(job.target)
                existing.add(job.target)
    except pymysql.MySQLError as exc:  # reading what exists, on either side
        if not exc.args or exc.args[0] in CONNECTION_ERRNOS:
            raise ERR_LOAD_DOWNSTREAM(exc, address=_address(down), op="create the targets") \
                from exc
        raise ERR_LOAD_CREATE(exc, what="the target schemas and tables",
                              problem=str(exc.args[-1])[:300]) from exc
    return created


def _create_database(dcur: Any, ucur: Any, schema: str, target: str) -> None:
    ucur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                 "information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,))
    row = ucur.fetchone()
    options = f" DEFAULT CHARACTER SET {row[0]} COLLATE {row[1]}" if row else ""
    _run(dcur, f"CREATE DATABASE IF NOT EXISTS {quote(target)}{options}",
         f"database `{target}`", DATABASE_EXISTS)


def _existing(dcur: Any, targets: set[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for schema in sorted({schema for schema, _ in targets}):
        dcur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                     (schema,))
        found.update((schema, str(name)) for (name,) in dcur.fetchall())
    return found & targets


def _create_table(dcur: Any, ucur: Any, job: TableJob, router: Router) -> bool:
    """Create the job's target from the upstream definition; False when the upstream table
    is gone (its chunks will be empty)."""
    info = job.info
    try:
        ucur.execute(f"SHOW CREATE TABLE {info.qualified}")
        text = str(ucur.fetchone()[1])
    except pymysql.MySQLError as exc:
        if exc.args and exc.args[0] == 1146:
            return False
        raise ERR_LOAD_CREATE(exc, what=f"table `{job.target[0]}`.`{job.target[1]}`",
                              problem="SHOW CREATE TABLE on the upstream failed") from exc
    (ddl,) = parse_ddl(text, info.schema)[:1]

    def rename(schema: str, table: str) -> tuple[str, str]:
        return router.target(schema, table) if table else (router.target_schema(schema), "")
    _run(dcur, ddl.render(rename), f"table `{job.target[0]}`.`{job.target[1]}`", TABLE_EXISTS)
    return True


def _run(dcur: Any, sql: str, what: str, exists: int) -> None:
    try:
        dcur.execute(sql)
    except pymysql.MySQLError as exc:
        if exc.args and exc.args[0] == exists:  # another subtask created it just now
            return
        if exc.args and exc.args[0] in CONNECTION_ERRNOS:
            raise ERR_LOAD_DOWNSTREAM(exc, address=_address(dcur.connection),
                                      op=f"create {what}") from exc
        raise ERR_LOAD_CREATE(exc, what=what, problem=str(exc.args[-1])[:300]) from exc


def _address(conn: Any) -> str:
    return f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"


# -- chunks -------------------------------------------------------------------------------


class Marker(Protocol):
    """What marks a chunk done (the load checkpoint)."""

    def mark(self, chunk: Chunk) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE statement and its arguments that mark `chunk` done."""


class ChunkLoader:
    """One downstream connection applying chunks, one transaction each."""

    def __init__(self, target: DBConfig, marker: Marker) -> None:
        self.target = target
        self.marker = marker
        self.address = f"{target.host}:{target.port}"
        self._conn: Any = None

    def apply(self, chunk: Chunk) -> bool:
        """Load the chunk and mark it done, atomically; False when it already was done."""
        for attempt in range(RETRIES):
            try:
                return self._apply(chunk)
            except pymysql.MySQLError as exc:
                errno = exc.args[0] if exc.args else 0
                self._drop()
                if errno in RETRY_ERRNOS and attempt + 1 < RETRIES:
                    continue
                raise self._error(exc, chunk) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self._drop()

    def _apply(self, chunk: Chunk) -> bool:
        if self._conn is None:
            self._conn = connect(self.target)
        conn = self._conn
        sql, args = self.marker.mark(chunk)
        with conn.cursor() as cur:
            if cur.execute(sql, args) != 1:
                conn.rollback()
                return False
            for statement in chunk.statements:
                cur.execute(statement)
        faults.point("load.before_commit")
        conn.commit()
        faults.point("load.after_commit")
        return True

    def _error(self, exc: pymysql.MySQLError, chunk: Chunk) -> KdmError:
        errno = exc.args[0] if exc.args else 0
        if errno in CONNECTION_ERRNOS or errno in RETRY_ERRNOS or not exc.args:
            return ERR_LOAD_DOWNSTREAM(exc, address=self.address, op=f"load {chunk.spec.id}")
        spec = chunk.spec
        return ERR_LOAD_EXEC(exc, chunk=spec.index, schema=spec.schema, table=spec.table,
                             problem=str(exc.args[-1])[:300])

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(pymysql.MySQLError):
            conn.rollback()
        with contextlib.suppress(pymysql.MySQLError):
            conn.close()
