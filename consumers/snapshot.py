"""A consistent snapshot of one upstream, and the binlog position its data reflects.

The dump reads every table inside transactions opened with `START TRANSACTION WITH
CONSISTENT SNAPSHOT`, one per reader thread (mydumpers `threads`). They must all see the
same data, and the position must be exactly the binlog point of that data, so that the sync
unit continues from there without missing or repeating a change. The task's mydumpers
`extra-args: --consistency <mode>` chooses how (Dumpling's names, DM's defaults):

=========  ==============================================================================
flush      `FLUSH TABLES WITH READ LOCK` on a control connection; every reader opens its
           snapshot; `SHOW MASTER STATUS` and the executed GTID set; `UNLOCK TABLES`.
           Commits wait only while N snapshots open (milliseconds).
lock       The same with `LOCK TABLES ... READ` on the dumped tables instead of the global
           lock (for users with LOCK TABLES but without RELOAD).
snapshot   MariaDB only, no lock at all. MariaDB commits to InnoDB in binlog order and
           reports, per connection, the binlog point its consistent snapshot matches
           (`SHOW STATUS LIKE 'binlog_snapshot_%'`); `BINLOG_GTID_POS(file, pos)` gives
           that point's GTID set. One connection is always exact. Several connections saw
           the same data exactly when they report the same point, so the readers' snapshots
           are reopened (up to MATCH_TRIES times) until all agree; a busy server may never
           let them all agree, and then the dump goes on with the readers that agree with
           the first (at least one: slower, never inconsistent).
none       No lock, no agreement: the position is read *before* the snapshots open, and the
           caller reads the position after the dump ends; the sync unit replays that window
           in safe mode (idempotent REPLACE / DELETE+REPLACE), as DM does for
           `--consistency none`.
auto       flush; when the global lock is refused (no RELOAD privilege, as on RDS/Aurora)
           or does not come within LOCK_WAIT_SECONDS: snapshot on MariaDB, none on MySQL
           (where DM also falls back to none).
=========  ==============================================================================

Reader connections return every value as bytes (`use_unicode=False`): the dump moves SQL
text rendered by the upstream, never Python values (see `consumers.dump`). Sessions use UTC,
so TIMESTAMP values are read as the load writes them. Tables are assumed transactional
(InnoDB): a MyISAM table is only consistent in the flush and lock modes' instant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from kdm.config.common import DBConfig
from kdm.errors import ERR_DUMP_CONSISTENCY, ERR_DUMP_UPSTREAM, KdmError
from kdm.log import Logger
from kdm.position import GTIDSet, Position
from kdm.schema_sql import quote_name as quote

LOCK_WAIT_SECONDS = 30
MATCH_TRIES = 5
# the global read lock is not allowed (1227: needs RELOAD) or did not come in time (1205)
LOCK_REFUSED_ERRNOS = frozenset({1044, 1045, 1142, 1227, 1205})
NO_SUCH_STATEMENT = 1064  # MySQL 8.4 renamed SHOW MASTER STATUS
READER_SESSION = ("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                  "SET SESSION time_zone = '+00:00', SESSION net_write_timeout = 3600, "
                  "SESSION group_concat_max_len = @@GLOBAL.max_allowed_packet")


@dataclass
class Snapshot:
    """Reader connections inside one snapshot, and where the binlog stood."""

    mode: str
    position: Position
    readers: list[Any]
    consistent: bool

    def close(self) -> None:
        """End the snapshot transactions and close the connections."""
        for conn in self.readers:
            _close(conn)
        self.readers = []


@dataclass(frozen=True)
class Upstream:
    """How to reach the upstream, and what kind of server it is."""

    db: DBConfig
    mariadb: bool
    require_gtid: bool

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"{self.db.host}:{self.db.port}"

    def connect(self, raw: bool = False) -> Any:
        """An autocommit connection; `raw` ones return bytes and have the reader session."""
        try:
            conn = pymysql.connect(**self.db.connect_args(), autocommit=True,
                                   use_unicode=not raw, max_allowed_packet=1 << 30)
            if raw:
                with conn.cursor() as cur:
                    for sql in READER_SESSION:
                        cur.execute(sql)
            return conn
        except pymysql.MySQLError as exc:
            raise ERR_DUMP_UPSTREAM(exc, address=self.address, op="connect") from exc


def is_mariadb(conn: Any) -> bool:
    """Whether the server is MariaDB (from its version string)."""
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return "mariadb" in _text(cur.fetchone()[0]).lower()


def read_position(conn: Any, mariadb: bool) -> Position:
    """Where the binlog stands now: `SHOW MASTER STATUS` and the executed GTID set."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.MySQLError as exc:
            if not exc.args or exc.args[0] != NO_SUCH_STATEMENT:
                raise
            cur.execute("SHOW BINARY LOG STATUS")
        row = cur.fetchone()
        if not row:
            raise ERR_DUMP_CONSISTENCY(mode="any", problem="SHOW MASTER STATUS is empty: the "
                                       "upstream has no binlog (log_bin is off)")
        cur.execute("SELECT @@GLOBAL.gtid_binlog_pos" if mariadb
                    else "SELECT @@GLOBAL.gtid_executed")
        gtid = "".join(_text(cur.fetchone()[0] or "").split())
    return Position(_text(row[0]), int(row[1]), str(GTIDSet.parse(gtid)) if gtid else "")


@dataclass(frozen=True)
class _Open:
    """What opening a snapshot works with."""

    upstream: Upstream
    control: Any
    readers: list[Any]
    tables: Sequence[tuple[str, str]]
    log: Logger


class _LockRefused(Exception):
    """The lock a mode needs was refused or timed out."""


def open_snapshot(upstream: Upstream, control: Any, mode: str, threads: int,
                  tables: Sequence[tuple[str, str]], log: Logger) -> Snapshot:
    """`threads` reader connections inside one snapshot, by the module docstring's `mode`."""
    opener = _OPENERS.get(mode)
    if opener is None:
        raise ERR_DUMP_CONSISTENCY(mode=mode, problem="unknown mode")
    readers = [upstream.connect(raw=True) for _ in range(max(1, threads))]
    try:
        return opener(_Open(upstream, control, readers, tables, log))
    except _LockRefused as exc:
        _close_all(readers)
        raise ERR_DUMP_CONSISTENCY(exc.__cause__, mode=mode, problem=str(exc)) from exc
    except pymysql.MySQLError as exc:
        _close_all(readers)
        raise ERR_DUMP_UPSTREAM(exc, address=upstream.address, op="open a snapshot") from exc
    except KdmError:
        _close_all(readers)
        raise


def _flush(ctx: _Open) -> Snapshot:
    return _locked(ctx, "FLUSH TABLES WITH READ LOCK", "flush")


def _lock(ctx: _Open) -> Snapshot:
    if not ctx.tables:
        return _locked(ctx, "", "lock")
    names = ", ".join(f"{quote(s)}.{quote(t)} READ" for s, t in ctx.tables)
    return _locked(ctx, f"LOCK TABLES {names}", "lock")


def _locked(ctx: _Open, lock_sql: str, mode: str) -> Snapshot:
    """Under the lock: open every reader's snapshot and read the position."""
    with ctx.control.cursor() as cur:
        if lock_sql:
            cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
            try:
                cur.execute(lock_sql)
            except pymysql.MySQLError as exc:
                if exc.args and exc.args[0] in LOCK_REFUSED_ERRNOS:
                    raise _LockRefused(f"`{lock_sql[:60]}` failed: {exc.args[-1]}") from exc
                raise
        try:
            for conn in ctx.readers:
                _begin(conn)
            position = read_position(ctx.control, ctx.upstream.mariadb)
        finally:
            if lock_sql:
                cur.execute("UNLOCK TABLES")
    return Snapshot(mode, position, ctx.readers, True)


def _matched(ctx: _Open) -> Snapshot:
    """MariaDB's lock-free snapshot: readers whose snapshots match the same binlog point."""
    if not ctx.upstream.mariadb:
        raise ERR_DUMP_CONSISTENCY(mode="snapshot", problem="a lock-free snapshot needs a "
                                   "MariaDB upstream (binlog_snapshot_file/position)")
    points = [_snapshot_point(conn) for conn in ctx.readers]
    for _ in range(MATCH_TRIES - 1):
        if len(set(points)) == 1:
            break
        points = [_snapshot_point(conn) for conn in ctx.readers]
    keep = [conn for conn, point in zip(ctx.readers, points, strict=True)
            if point == points[0]]
    if len(keep) < len(ctx.readers):
        ctx.log.warning("snapshots did not agree, dumping with fewer readers",
                        readers=len(keep), wanted=len(ctx.readers))
        _close_all([conn for conn in ctx.readers if conn not in keep])
    file, pos = points[0]
    return Snapshot("snapshot", Position(file, pos, _gtid_at(ctx, file, pos)), keep, True)


def _snapshot_point(conn: Any) -> tuple[str, int]:
    """(Re)open the connection's snapshot; the binlog point it matches."""
    with conn.cursor() as cur:
        cur.execute("ROLLBACK")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = {_text(name).lower(): _text(value) for name, value in cur.fetchall()}
    return status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])


def _gtid_at(ctx: _Open, file: str, pos: int) -> str:
    with ctx.control.cursor() as cur:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        gtid = cur.fetchone()[0]
    if gtid is None and ctx.upstream.require_gtid:
        raise ERR_DUMP_CONSISTENCY(mode="snapshot", problem=f"BINLOG_GTID_POS('{file}', {pos}) "
                                   "is NULL: the upstream cannot map the point to a GTID set")
    text = "".join(_text(gtid or "").split())
    return str(GTIDSet.parse(text)) if text else ""


def _none(ctx: _Open) -> Snapshot:
    position = read_position(ctx.control, ctx.upstream.mariadb)
    for conn in ctx.readers:
        _begin(conn)
    return Snapshot("none", position, ctx.readers, False)


def _auto(ctx: _Open) -> Snapshot:
    try:
        return _flush(ctx)
    except _LockRefused as exc:
        fallback = "snapshot" if ctx.upstream.mariadb else "none"
        ctx.log.warning("global read lock refused, falling back", problem=str(exc),
                        consistency=fallback)
        return _OPENERS[fallback](ctx)


_OPENERS: dict[str, Callable[[_Open], Snapshot]] = {
    "flush": _flush, "lock": _lock, "snapshot": _matched, "none": _none, "auto": _auto}


def _begin(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _close(conn: Any) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        conn.close()


def _close_all(conns: Sequence[Any]) -> None:
    for conn in conns:
        _close(conn)
